//! The wire codec: the prototype's exact frames, dkv/2's topics and body format byte
//! for byte (as documented in `wire/v2.rs`), strict rejection of anything else, and
//! round trips of arbitrary messages.

use bytes::Bytes;
use dkv_proto::wire::v2::{Body, Envelope, Item, Range, Record, Step, Summary};
use dkv_proto::{subscriptions, DecodeError, Entry, Kind, Message, NodeId, Timestamp, Version};
use proptest::prelude::*;

const ASKER: NodeId = NodeId([0, b' ', 0xff, b'a', 7, 8, b' ', 0x80]);
const FROM: NodeId = NodeId(*b"from-id!");
const TO: NodeId = NodeId([b' ', 1, 2, 3, 4, 5, 6, 0xfe]);

fn frames(msg: &Message) -> Vec<Vec<u8>> {
    msg.encode().iter().map(|f| f.to_vec()).collect()
}

fn topic(name: &str, id: NodeId) -> Vec<u8> {
    let mut t = name.as_bytes().to_vec();
    t.push(b' ');
    t.extend_from_slice(&id.0);
    t
}

fn decode(frames: &[&[u8]]) -> Result<Message, DecodeError> {
    Message::decode(frames)
}

// ---- prototype messages ----

#[test]
fn set_is_topic_key_value() {
    let msg = Message::Set {
        key: "k".into(),
        value: Bytes::from_static(b"\x00v"),
    };
    assert_eq!(
        frames(&msg),
        vec![b"set".to_vec(), b"k".to_vec(), b"\x00v".to_vec()]
    );
    assert_eq!(Message::decode(&frames(&msg)), Ok(msg));
}

#[test]
fn question_is_topic_with_raw_asker_id_then_key() {
    let msg = Message::Question {
        asker: ASKER,
        key: "clé".into(),
    };
    assert_eq!(
        frames(&msg),
        vec![topic("question", ASKER), "clé".as_bytes().to_vec()]
    );
    assert_eq!(
        Message::decode(&frames(&msg)),
        Ok(msg),
        "ids may hold spaces"
    );
}

#[test]
fn answer_is_topic_with_asker_then_key_and_value() {
    let msg = Message::Answer {
        asker: ASKER,
        key: "k".into(),
        value: Bytes::from_static(b"v"),
    };
    assert_eq!(
        frames(&msg),
        vec![topic("answer", ASKER), b"k".to_vec(), b"v".to_vec()]
    );
    assert_eq!(Message::decode(&frames(&msg)), Ok(msg));
}

#[test]
fn list_is_a_lone_topic_frame() {
    let msg = Message::List { asker: ASKER };
    assert_eq!(frames(&msg), vec![topic("list", ASKER)]);
    assert_eq!(Message::decode(&frames(&msg)), Ok(msg));
}

#[test]
fn list_answer_carries_one_frame_per_key_possibly_none() {
    let empty = Message::ListAnswer {
        asker: ASKER,
        keys: vec![],
    };
    assert_eq!(frames(&empty), vec![topic("list_answer", ASKER)]);
    let two = Message::ListAnswer {
        asker: ASKER,
        keys: vec!["a".into(), "b".into()],
    };
    assert_eq!(
        frames(&two),
        vec![topic("list_answer", ASKER), b"a".to_vec(), b"b".to_vec()]
    );
    assert_eq!(Message::decode(&frames(&two)), Ok(two));
}

#[test]
fn prototype_values_may_be_any_bytes_including_empty() {
    assert_eq!(
        decode(&[b"set", b"k", b""]),
        Ok(Message::Set {
            key: "k".into(),
            value: Bytes::new()
        })
    );
    let msg = decode(&[b"set", b"k", b"\xff\x00"]).unwrap();
    assert_eq!(msg.encode()[2], Bytes::from_static(b"\xff\x00"));
}

// ---- dkv/2: topics and the body format, byte for byte ----

/// Builds a body by hand from the grammar documented in `wire/v2.rs`.
#[derive(Default)]
struct B(Vec<u8>);

impl B {
    fn head(kind: u8) -> B {
        B(vec![1, kind]).raw(&FROM.0)
    }
    fn u8(mut self, v: u8) -> B {
        self.0.push(v);
        self
    }
    fn u32(mut self, v: u32) -> B {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn u64(mut self, v: u64) -> B {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn raw(mut self, b: &[u8]) -> B {
        self.0.extend_from_slice(b);
        self
    }
    fn str(self, b: &[u8]) -> B {
        self.u32(b.len() as u32).raw(b)
    }
}

fn ver(ts: u64, node: &[u8; 8]) -> Version {
    Version {
        ts: Timestamp(ts),
        node: NodeId(*node),
    }
}

fn rec(key: &str, ts: u64, value: Option<&[u8]>) -> Record {
    Record {
        key: key.into(),
        entry: Entry {
            version: ver(ts, b"writer-1"),
            value: value.map(Bytes::copy_from_slice),
        },
    }
}

/// One body of each kind with the bytes the documented format gives it.
fn golden() -> Vec<(Body, Vec<u8>)> {
    let range = Range::new(2, 0xab).unwrap();
    vec![
        (
            Body::Put {
                echo: true,
                records: vec![rec("k", 7, Some(b"v\0")), rec("gone", 8, None)],
            },
            B::head(1)
                .u8(1)
                .u32(2)
                .str(b"k")
                .u64(7)
                .raw(b"writer-1")
                .u8(1)
                .str(b"v\0")
                .str(b"gone")
                .u64(8)
                .raw(b"writer-1")
                .u8(0)
                .0,
        ),
        (
            Body::Ask { key: "clé".into() },
            B::head(2).str("clé".as_bytes()).0,
        ),
        (
            Body::Sync {
                session: 0x0102_0304_0506_0708,
                initiator: false,
                last: true,
                steps: vec![
                    Step::Fingerprint {
                        range: Range::ROOT,
                        summary: Summary {
                            fingerprint: 0xfeed,
                            count: 3,
                        },
                    },
                    Step::Items {
                        range,
                        items: vec![Item {
                            key_hash: 0xab00_0000_0000_0001,
                            version: ver(9, b"writer-2"),
                            digest: 0x5555,
                        }],
                    },
                ],
            },
            B::head(3)
                .u64(0x0102_0304_0506_0708)
                .u8(0b10)
                .u32(2)
                .u8(0)
                .u8(0)
                .u64(0)
                .u64(0xfeed)
                .u64(3)
                .u8(1)
                .u8(2)
                .u64(0xab)
                .u32(1)
                .u64(0xab00_0000_0000_0001)
                .u64(9)
                .raw(b"writer-2")
                .u64(0x5555)
                .0,
        ),
        (
            Body::Pull {
                request: 5,
                range,
                after: Some(0xab00_0000_0000_00ff),
            },
            B::head(4)
                .u64(5)
                .u8(2)
                .u64(0xab)
                .u8(1)
                .u64(0xab00_0000_0000_00ff)
                .0,
        ),
        (
            Body::Fetch {
                request: 6,
                key_hashes: vec![1, u64::MAX],
            },
            B::head(5).u64(6).u32(2).u64(1).u64(u64::MAX).0,
        ),
        (
            Body::Push {
                request: 0,
                records: vec![rec("k", 7, Some(b""))],
                more: None,
            },
            B::head(6)
                .u64(0)
                .u32(1)
                .str(b"k")
                .u64(7)
                .raw(b"writer-1")
                .u8(1)
                .str(b"")
                .u8(0)
                .0,
        ),
    ]
}

fn dkv_msg(to: Option<NodeId>, body: Body) -> Message {
    Message::Dkv(Envelope {
        to,
        from: FROM,
        body,
    })
}

#[test]
fn every_dkv2_body_encodes_as_documented_and_decodes_back() {
    let kinds: Vec<Kind> = golden().iter().map(|(b, _)| b.kind()).collect();
    assert_eq!(kinds, &Kind::ALL[5..], "one golden body per dkv/2 kind");
    for (body, bytes) in golden() {
        for to in [None, Some(TO)] {
            let msg = dkv_msg(to, body.clone());
            let want_topic = match to {
                None => b"dkv2.all".to_vec(),
                Some(id) => topic("dkv2.to", id),
            };
            assert_eq!(frames(&msg), vec![want_topic, bytes.clone()], "{body:?}");
            assert_eq!(Message::decode(&frames(&msg)), Ok(msg));
        }
    }
}

#[test]
fn subscriptions_are_dkv2_first_then_the_prototypes_with_list_narrowed() {
    let subs: Vec<Vec<u8>> = subscriptions(ASKER).iter().map(|s| s.to_vec()).collect();
    assert_eq!(
        subs,
        vec![
            b"dkv2.all".to_vec(),
            topic("dkv2.to", ASKER),
            b"set".to_vec(),
            b"question".to_vec(),
            b"list ".to_vec(),
            topic("answer", ASKER),
            topic("list_answer", ASKER),
        ]
    );
    // ZeroMQ replays subscriptions in byte order: dkv2.* before set.
    assert!(subs[..2]
        .iter()
        .all(|dkv2| dkv2.as_slice() < b"set".as_slice()));
    let matches = |topic: &[u8]| subs.iter().any(|s| topic.starts_with(s));
    assert!(matches(&topic("list", NodeId(*b"someone!"))));
    assert!(matches(&topic("list_answer", ASKER)));
    assert!(!matches(&topic("list_answer", NodeId(*b"someone!"))));
    assert!(!matches(&topic("dkv2.to", NodeId(*b"someone!"))));
}

#[test]
fn no_prototype_subscription_matches_a_dkv2_topic() {
    // The prototype subscribes `list`, not dkv's `list `.
    let prototype: [&[u8]; 5] = [b"set", b"question", b"list", b"answer ", b"list_answer "];
    for t in [b"dkv2.all".to_vec(), topic("dkv2.to", ASKER)] {
        assert!(prototype.iter().all(|p| !t.starts_with(p)), "{t:?}");
    }
}

#[test]
fn kinds_name_their_topics_and_bodies() {
    let names: Vec<&str> = Kind::ALL.iter().map(|k| k.name()).collect();
    assert_eq!(
        names,
        [
            "set",
            "question",
            "answer",
            "list",
            "list_answer",
            "put",
            "ask",
            "sync",
            "pull",
            "fetch",
            "push"
        ]
    );
}

// ---- strict rejection ----

#[test]
fn no_frames_is_empty() {
    assert_eq!(decode(&[]), Err(DecodeError::Empty));
}

#[test]
fn unknown_prototype_topics_are_rejected() {
    for t in [&b"put"[..], b"settle", b"", b"set 12345678", b"Set"] {
        assert_eq!(
            decode(&[t, b"k", b"v"]),
            Err(DecodeError::UnknownTopic),
            "{t:?}"
        );
    }
}

#[test]
fn prototype_topics_needing_an_id_reject_a_missing_or_misshapen_one() {
    assert_eq!(decode(&[b"question", b"k"]), Err(DecodeError::BadId));
    assert_eq!(
        decode(&[b"question 1234567", b"k"]),
        Err(DecodeError::BadId)
    );
    assert_eq!(decode(&[b"list 123456789"]), Err(DecodeError::BadId));
    assert_eq!(decode(&[b"answer ", b"k", b"v"]), Err(DecodeError::BadId));
}

#[test]
fn missing_or_extra_prototype_frames_are_rejected() {
    let q = topic("question", ASKER);
    let a = topic("answer", ASKER);
    let l = topic("list", ASKER);
    assert_eq!(decode(&[b"set", b"k"]), Err(DecodeError::FrameCount));
    assert_eq!(
        decode(&[b"set", b"k", b"v", b"x"]),
        Err(DecodeError::FrameCount)
    );
    assert_eq!(decode(&[&q]), Err(DecodeError::FrameCount));
    assert_eq!(decode(&[&q, b"k", b"x"]), Err(DecodeError::FrameCount));
    assert_eq!(decode(&[&a, b"k"]), Err(DecodeError::FrameCount));
    assert_eq!(decode(&[&l, b"k"]), Err(DecodeError::FrameCount));
}

#[test]
fn non_utf8_keys_are_rejected_in_every_kind() {
    let bad: &[u8] = b"\xff\xfe";
    let q = topic("question", ASKER);
    let a = topic("answer", ASKER);
    let la = topic("list_answer", ASKER);
    assert_eq!(decode(&[b"set", bad, b"v"]), Err(DecodeError::KeyNotUtf8));
    assert_eq!(decode(&[&q, bad]), Err(DecodeError::KeyNotUtf8));
    assert_eq!(decode(&[&a, bad, b"v"]), Err(DecodeError::KeyNotUtf8));
    assert_eq!(decode(&[&la, b"ok", bad]), Err(DecodeError::KeyNotUtf8));
    let ask = B::head(2).str(bad).0;
    assert_eq!(decode(&[b"dkv2.all", &ask]), Err(DecodeError::KeyNotUtf8));
    let put = B::head(1).u8(0).u32(1).str(bad).u64(1).raw(&[1; 8]).u8(0).0;
    assert_eq!(decode(&[b"dkv2.all", &put]), Err(DecodeError::KeyNotUtf8));
}

#[test]
fn dkv2_topics_must_be_exact() {
    let body = &golden()[1].1;
    let mut short = b"dkv2.to ".to_vec();
    short.extend_from_slice(b"1234567");
    let mut long = short.clone();
    long.extend_from_slice(b"89");
    assert_eq!(decode(&[&short, body]), Err(DecodeError::BadId));
    assert_eq!(decode(&[&long, body]), Err(DecodeError::BadId));
    assert_eq!(decode(&[b"dkv2.to ", body]), Err(DecodeError::BadId));
    for t in [
        &b"dkv2.allx"[..],
        b"dkv2.all ",
        b"dkv2.to",
        b"dkv2",
        b"DKV2.all",
    ] {
        assert_eq!(decode(&[t, body]), Err(DecodeError::UnknownTopic), "{t:?}");
    }
}

#[test]
fn a_dkv2_message_is_exactly_one_body_frame() {
    let body = &golden()[1].1;
    assert_eq!(decode(&[b"dkv2.all"]), Err(DecodeError::FrameCount));
    assert_eq!(
        decode(&[b"dkv2.all", body, body]),
        Err(DecodeError::FrameCount)
    );
}

#[test]
fn every_truncation_of_every_body_is_rejected() {
    for (body, bytes) in golden() {
        for len in 0..bytes.len() {
            assert_eq!(
                decode(&[b"dkv2.all", &bytes[..len]]),
                Err(DecodeError::BadBody),
                "{:?} cut to {len} bytes",
                body.kind()
            );
        }
    }
}

#[test]
fn trailing_bytes_after_any_body_are_rejected() {
    for (body, mut bytes) in golden() {
        bytes.push(0);
        assert_eq!(
            decode(&[b"dkv2.all", &bytes]),
            Err(DecodeError::BadBody),
            "{:?}",
            body.kind()
        );
    }
}

#[test]
fn unknown_wire_versions_and_kinds_are_rejected() {
    for (_, bytes) in golden() {
        for version in [0u8, 2, 255] {
            let mut b = bytes.clone();
            b[0] = version;
            assert_eq!(decode(&[b"dkv2.all", &b]), Err(DecodeError::UnknownVersion));
        }
    }
    for code in [0u8, 7, 255] {
        let b = B::head(code).0;
        assert_eq!(
            decode(&[b"dkv2.all", &b]),
            Err(DecodeError::BadBody),
            "{code}"
        );
    }
}

#[test]
fn unknown_flag_bits_and_tags_are_rejected() {
    let bad = |b: Vec<u8>, what: &str| {
        assert_eq!(
            decode(&[b"dkv2.all", &b]),
            Err(DecodeError::BadBody),
            "{what}"
        );
    };
    bad(B::head(1).u8(2).u32(0).0, "put flags");
    bad(B::head(1).u8(0x80).u32(0).0, "put flags high bit");
    bad(B::head(3).u64(1).u8(4).u32(0).0, "sync flags");
    bad(
        B::head(3)
            .u64(1)
            .u8(1)
            .u32(1)
            .u8(2)
            .u8(0)
            .u64(0)
            .u64(0)
            .u64(0)
            .0,
        "step tag",
    );
    bad(B::head(4).u64(1).u8(0).u64(0).u8(2).0, "pull after tag");
    bad(B::head(6).u64(1).u32(0).u8(2).0, "push more tag");
    bad(
        B::head(6)
            .u64(1)
            .u32(1)
            .str(b"k")
            .u64(1)
            .raw(&[1; 8])
            .u8(2)
            .u8(0)
            .0,
        "record value tag",
    );
    // The same bodies with valid tags decode, so the tag is what is rejected.
    for ok in [
        B::head(1).u8(1).u32(0).0,
        B::head(3).u64(1).u8(3).u32(0).0,
        B::head(4).u64(1).u8(0).u64(0).u8(0).0,
        B::head(6).u64(1).u32(0).u8(0).0,
        B::head(6)
            .u64(1)
            .u32(1)
            .str(b"k")
            .u64(1)
            .raw(&[1; 8])
            .u8(0)
            .u8(0)
            .0,
    ] {
        assert!(decode(&[b"dkv2.all", &ok]).is_ok(), "{ok:?}");
    }
}

#[test]
fn ranges_out_of_bounds_are_rejected() {
    let pull = |level: u8, prefix: u64| B::head(4).u64(1).u8(level).u64(prefix).u8(0).0;
    for (level, prefix) in [(0, 1), (1, 16), (2, 256), (15, 1 << 60), (17, 0), (255, 0)] {
        assert_eq!(
            decode(&[b"dkv2.all", &pull(level, prefix)]),
            Err(DecodeError::BadBody),
            "level {level} prefix {prefix:#x}"
        );
    }
    for (level, prefix) in [(0, 0), (1, 15), (15, (1 << 60) - 1), (16, u64::MAX)] {
        let msg = decode(&[b"dkv2.all", &pull(level, prefix)]).unwrap();
        let Message::Dkv(Envelope {
            body: Body::Pull { range, .. },
            ..
        }) = msg
        else {
            panic!("{msg:?}");
        };
        assert_eq!((range.level(), range.prefix()), (level, prefix));
    }
}

#[test]
fn counts_larger_than_the_frame_are_rejected() {
    let bad = |b: Vec<u8>, what: &str| {
        assert_eq!(
            decode(&[b"dkv2.all", &b]),
            Err(DecodeError::BadBody),
            "{what}"
        );
    };
    bad(B::head(1).u8(0).u32(u32::MAX).0, "put records");
    bad(B::head(6).u64(0).u32(u32::MAX).u8(0).0, "push records");
    bad(B::head(5).u64(0).u32(2).u64(1).0, "fetch hashes");
    bad(B::head(5).u64(0).u32(u32::MAX).0, "fetch hashes, huge");
    bad(B::head(3).u64(0).u8(1).u32(u32::MAX).0, "sync steps");
    bad(
        B::head(3)
            .u64(0)
            .u8(1)
            .u32(1)
            .u8(1)
            .u8(0)
            .u64(0)
            .u32(u32::MAX)
            .0,
        "items",
    );
    bad(B::head(2).u32(u32::MAX).0, "key length");
    bad(B::head(2).u32(2).raw(b"k").0, "key length past the end");
}

// ---- properties ----

fn node_id() -> impl Strategy<Value = NodeId> {
    any::<[u8; 8]>().prop_map(NodeId)
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![any::<String>(), "[a-c ]{0,3}"]
}

fn value() -> impl Strategy<Value = Bytes> {
    proptest::collection::vec(any::<u8>(), 0..24).prop_map(Bytes::from)
}

fn version() -> impl Strategy<Value = Version> {
    (any::<u64>(), node_id()).prop_map(|(ts, node)| Version {
        ts: Timestamp(ts),
        node,
    })
}

fn record() -> impl Strategy<Value = Record> {
    (key(), version(), proptest::option::of(value())).prop_map(|(key, version, value)| Record {
        key,
        entry: Entry { version, value },
    })
}

fn range() -> impl Strategy<Value = Range> {
    (0u8..=16, any::<u64>()).prop_map(|(level, p)| {
        let prefix = match level {
            0 => 0,
            16 => p,
            l => p & ((1 << (4 * u32::from(l))) - 1),
        };
        Range::new(level, prefix).unwrap()
    })
}

fn step() -> impl Strategy<Value = Step> {
    let item =
        (any::<u64>(), version(), any::<u64>()).prop_map(|(key_hash, version, digest)| Item {
            key_hash,
            version,
            digest,
        });
    prop_oneof![
        (range(), any::<u64>(), any::<u64>()).prop_map(|(range, fingerprint, count)| {
            Step::Fingerprint {
                range,
                summary: Summary { fingerprint, count },
            }
        }),
        (range(), proptest::collection::vec(item, 0..4))
            .prop_map(|(range, items)| Step::Items { range, items }),
    ]
}

fn body() -> impl Strategy<Value = Body> {
    let records = || proptest::collection::vec(record(), 0..4);
    prop_oneof![
        (any::<bool>(), records()).prop_map(|(echo, records)| Body::Put { echo, records }),
        key().prop_map(|key| Body::Ask { key }),
        (
            any::<u64>(),
            any::<bool>(),
            any::<bool>(),
            proptest::collection::vec(step(), 0..4)
        )
            .prop_map(|(session, initiator, last, steps)| Body::Sync {
                session,
                initiator,
                last,
                steps
            }),
        (any::<u64>(), range(), any::<Option<u64>>()).prop_map(|(request, range, after)| {
            Body::Pull {
                request,
                range,
                after,
            }
        }),
        (any::<u64>(), proptest::collection::vec(any::<u64>(), 0..6)).prop_map(
            |(request, key_hashes)| Body::Fetch {
                request,
                key_hashes
            }
        ),
        (any::<u64>(), records(), any::<Option<u64>>()).prop_map(|(request, records, more)| {
            Body::Push {
                request,
                records,
                more,
            }
        }),
    ]
}

fn message() -> impl Strategy<Value = Message> {
    prop_oneof![
        (key(), value()).prop_map(|(key, value)| Message::Set { key, value }),
        (node_id(), key()).prop_map(|(asker, key)| Message::Question { asker, key }),
        (node_id(), key(), value()).prop_map(|(asker, key, value)| Message::Answer {
            asker,
            key,
            value
        }),
        node_id().prop_map(|asker| Message::List { asker }),
        (node_id(), proptest::collection::vec(key(), 0..6))
            .prop_map(|(asker, keys)| Message::ListAnswer { asker, keys }),
        (proptest::option::of(node_id()), node_id(), body())
            .prop_map(|(to, from, body)| Message::Dkv(Envelope { to, from, body })),
    ]
}

/// Re-encodes `frames` if they decode, and checks the bytes come back identical.
fn canonical(frames: &[Vec<u8>]) -> Result<(), TestCaseError> {
    if let Ok(msg) = Message::decode(frames) {
        let again: Vec<Vec<u8>> = msg.encode().iter().map(|f| f.to_vec()).collect();
        prop_assert_eq!(&again[..], frames, "{:?}", msg);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1_000))]

    #[test]
    fn every_message_round_trips(msg in message()) {
        prop_assert_eq!(Message::decode(&msg.encode()), Ok(msg));
    }

    #[test]
    fn garbage_frames_never_panic_and_what_decodes_is_canonical(
        frames in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..24), 0..6)
    ) {
        canonical(&frames)?;
    }

    #[test]
    fn garbage_after_a_dkv2_topic_never_panics_and_what_decodes_is_canonical(
        to in proptest::option::of(node_id()),
        body in proptest::collection::vec(any::<u8>(), 0..80),
        version_ok in any::<bool>(),
        code in 0u8..8,
    ) {
        let mut body = body;
        if version_ok && body.len() >= 2 {
            body[0] = 1;
            body[1] = code;
        }
        let topic = Message::Dkv(Envelope {
            to,
            from: FROM,
            body: Body::Ask { key: String::new() },
        })
        .topic();
        canonical(&[topic.to_vec(), body])?;
    }

    #[test]
    fn mutated_bodies_never_panic_and_what_decodes_is_canonical(
        msg in message(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..4),
    ) {
        let mut frames = frames(&msg);
        let last = frames.len() - 1;
        let target = &mut frames[last];
        for (at, byte, op) in edits {
            match op {
                0 if !target.is_empty() => {
                    let i = at.index(target.len());
                    target[i] = byte;
                }
                1 => {
                    let i = at.index(target.len() + 1);
                    target.insert(i, byte);
                }
                _ if !target.is_empty() => {
                    let i = at.index(target.len());
                    target.remove(i);
                }
                _ => {}
            }
        }
        canonical(&frames)?;
    }

    #[test]
    fn plausible_prototype_topics_with_garbage_never_panic(
        name in prop::sample::select(vec!["set", "question", "answer", "list", "list_answer", "dkv2.to", "dkv2.all"]),
        id in proptest::collection::vec(any::<u8>(), 0..10),
        rest in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..8), 0..4),
        space in any::<bool>(),
    ) {
        let mut topic = name.as_bytes().to_vec();
        if space { topic.push(b' '); topic.extend_from_slice(&id); }
        let mut frames = vec![topic];
        frames.extend(rest);
        canonical(&frames)?;
    }
}
