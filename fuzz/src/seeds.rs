//! The seed corpus: for every target, inputs built from `dkv-proto`'s own encoders
//! that reach each message kind and decode error, each datagram outcome and each
//! node operation. `tests/seeds.rs` checks that `fuzz/seeds/` holds exactly these
//! files.

use crate::input::Writer;
use crate::targets::beacon::{flags, PRE_BEACON, PRE_NONE, PRE_OTHER_HELLO, PRE_OTHER_SOURCE};
use crate::targets::decode::{DECODE_NODE_ID, DECODE_WALL_MS};
use crate::targets::node::{Op, Stamp, OWN_ID};
use bytes::Bytes;
use dkv_proto::wire::{Body, Envelope, Item, Range, Record, Step, Summary};
use dkv_proto::{
    encode_beacon, encode_hello, key_hash, Entry, Message, NodeId, Timestamp, Version,
};

/// One seed input: the target it is for, its file name, and its bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seed {
    /// The target's name, as in [`TARGETS`](crate::TARGETS).
    pub target: &'static str,
    /// The file name, unique within the target; stable across runs.
    pub name: String,
    /// The input.
    pub data: Vec<u8>,
}

fn frames_input<F: AsRef<[u8]>>(frames: &[F]) -> Vec<u8> {
    frames
        .iter()
        .fold(Writer::new(), |w, f| w.bytes(f.as_ref()))
        .finish()
}

const OTHER: NodeId = NodeId(*b"someone!");

/// A version at wall time `ms` by `node`.
fn at(ms: u64, node: NodeId) -> Version {
    Version {
        ts: Timestamp(ms << 16),
        node,
    }
}

fn record(key: &str, version: Version, value: Option<&'static [u8]>) -> Record {
    Record {
        key: key.into(),
        entry: Entry {
            version,
            value: value.map(Bytes::from_static),
        },
    }
}

fn dkv(to: Option<NodeId>, from: NodeId, body: Body) -> Message {
    Message::Dkv(Envelope { to, from, body })
}

/// Every well-formed message shape the decode seeds use, named.
fn messages(own: NodeId) -> Vec<(&'static str, Message)> {
    let b = |s: &'static [u8]| Bytes::from_static(s);
    let w = DECODE_WALL_MS;
    let hash = key_hash("key");
    let item_entry = Entry {
        version: at(w, OTHER),
        value: Some(b(b"v")),
    };
    vec![
        (
            "set",
            Message::Set {
                key: "key".into(),
                value: b(b"value"),
            },
        ),
        (
            "set-empty-value",
            Message::Set {
                key: "k".into(),
                value: b(b""),
            },
        ),
        (
            "set-binary-value",
            Message::Set {
                key: "clé".into(),
                value: b(b"\x00\xff v"),
            },
        ),
        (
            "question",
            Message::Question {
                asker: OTHER,
                key: "key".into(),
            },
        ),
        (
            "question-own",
            Message::Question {
                asker: own,
                key: "key".into(),
            },
        ),
        (
            "answer-own",
            Message::Answer {
                asker: own,
                key: "key".into(),
                value: b(b"v"),
            },
        ),
        (
            "answer-other",
            Message::Answer {
                asker: OTHER,
                key: "key".into(),
                value: b(b"v"),
            },
        ),
        ("list", Message::List { asker: OTHER }),
        (
            "list-answer-own-empty",
            Message::ListAnswer {
                asker: own,
                keys: vec![],
            },
        ),
        (
            "list-answer-own",
            Message::ListAnswer {
                asker: own,
                keys: vec!["a".into(), "b b".into(), "".into()],
            },
        ),
        (
            "list-answer-other",
            Message::ListAnswer {
                asker: OTHER,
                keys: vec!["a".into()],
            },
        ),
        (
            "put",
            dkv(
                None,
                OTHER,
                Body::Put {
                    echo: false,
                    records: vec![
                        record("key", at(w, OTHER), Some(b"value")),
                        record("gone", at(w - 1_000, OTHER), None),
                    ],
                },
            ),
        ),
        (
            "put-echo",
            dkv(
                None,
                OTHER,
                Body::Put {
                    echo: true,
                    records: vec![record("k", at(w, OTHER), Some(b""))],
                },
            ),
        ),
        (
            "put-clock-ahead",
            dkv(
                None,
                OTHER,
                Body::Put {
                    echo: false,
                    records: vec![
                        record("k", at(w + 501, OTHER), Some(b"future")),
                        record("k", at(w + 500, OTHER), Some(b"edge")),
                    ],
                },
            ),
        ),
        (
            "put-unversioned-tie",
            dkv(
                None,
                OTHER,
                Body::Put {
                    echo: false,
                    records: vec![
                        record("k", Version::UNVERSIONED, Some(b"v")),
                        record("k", Version::UNVERSIONED, Some(b"w")),
                        record("k", Version::UNVERSIONED, None),
                    ],
                },
            ),
        ),
        (
            "put-stale",
            dkv(
                None,
                OTHER,
                Body::Put {
                    echo: false,
                    records: vec![
                        record("k", at(w, OTHER), Some(b"new")),
                        record("k", at(w - 1, OTHER), Some(b"old")),
                    ],
                },
            ),
        ),
        (
            "put-to-own",
            dkv(
                Some(own),
                OTHER,
                Body::Put {
                    echo: false,
                    records: vec![record("key", at(w, OTHER), Some(b"v"))],
                },
            ),
        ),
        (
            "put-to-other",
            dkv(
                Some(OTHER),
                OTHER,
                Body::Put {
                    echo: false,
                    records: vec![record("key", at(w, OTHER), Some(b"v"))],
                },
            ),
        ),
        (
            "put-from-own",
            dkv(
                None,
                own,
                Body::Put {
                    echo: false,
                    records: vec![record("key", at(w, own), Some(b"v"))],
                },
            ),
        ),
        ("ask", dkv(None, OTHER, Body::Ask { key: "key".into() })),
        (
            "sync-fingerprint",
            dkv(
                Some(own),
                OTHER,
                Body::Sync {
                    session: 7,
                    initiator: true,
                    last: false,
                    steps: vec![Step::Fingerprint {
                        range: Range::ROOT,
                        summary: Summary {
                            fingerprint: 1,
                            count: 3,
                        },
                    }],
                },
            ),
        ),
        (
            "sync-items",
            dkv(
                Some(own),
                OTHER,
                Body::Sync {
                    session: 7,
                    initiator: true,
                    last: false,
                    steps: vec![Step::Items {
                        range: Range::new(1, hash >> 60).expect("a level-1 range"),
                        items: vec![Item {
                            key_hash: hash,
                            version: item_entry.version,
                            digest: item_entry.digest(hash),
                        }],
                    }],
                },
            ),
        ),
        (
            "sync-reply",
            dkv(
                Some(own),
                OTHER,
                Body::Sync {
                    session: 7,
                    initiator: false,
                    last: true,
                    steps: vec![],
                },
            ),
        ),
        (
            "pull",
            dkv(
                Some(own),
                OTHER,
                Body::Pull {
                    request: 1,
                    range: Range::ROOT,
                    after: None,
                },
            ),
        ),
        (
            "pull-after",
            dkv(
                Some(own),
                OTHER,
                Body::Pull {
                    request: 2,
                    range: Range::new(16, hash).expect("a level-16 range"),
                    after: Some(5),
                },
            ),
        ),
        (
            "fetch",
            dkv(
                Some(own),
                OTHER,
                Body::Fetch {
                    request: 3,
                    key_hashes: vec![hash, 0],
                },
            ),
        ),
        (
            "push",
            dkv(
                Some(own),
                OTHER,
                Body::Push {
                    request: 0,
                    records: vec![
                        record("key", at(w, OTHER), Some(b"v")),
                        record("a b", Version::UNVERSIONED, None),
                    ],
                    more: None,
                },
            ),
        ),
        (
            "push-more",
            dkv(
                Some(own),
                OTHER,
                Body::Push {
                    request: 4,
                    records: vec![],
                    more: Some(u64::MAX),
                },
            ),
        ),
    ]
}

/// The body frame of `msg`, a dkv/2 message.
fn body_of(msg: &Message) -> Vec<u8> {
    msg.encode()[1].to_vec()
}

fn decode_seeds() -> Vec<Seed> {
    let shapes = messages(DECODE_NODE_ID);
    let mut seeds: Vec<(String, Vec<u8>)> = shapes
        .iter()
        .map(|(name, msg)| (format!("ok-{name}"), frames_input(&msg.encode())))
        .collect();
    let shape = |name: &str| {
        shapes
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, m)| m.clone())
            .expect("a named shape")
    };
    let id = |name: &str, id: &[u8]| [name.as_bytes(), b" ", id].concat();
    let all = b"dkv2.all".to_vec();
    let put = body_of(&shape("put"));
    let with = |body: &[u8], at: usize, byte: u8| {
        let mut b = body.to_vec();
        b[at] = byte;
        b
    };
    // Bodies: version, kind, 8-byte sender, then the fields.
    let head = |kind: u8| [&[1, kind][..], &OTHER.0[..]].concat();
    let malformed: Vec<(&str, Vec<Vec<u8>>)> = vec![
        ("empty", vec![]),
        (
            "unknown-topic",
            vec![b"put".to_vec(), b"k".to_vec(), b"v".to_vec()],
        ),
        (
            "set-with-id",
            vec![id("set", b"12345678"), b"k".to_vec(), b"v".to_vec()],
        ),
        ("question-no-id", vec![b"question".to_vec(), b"k".to_vec()]),
        (
            "question-short-id",
            vec![id("question", b"1234567"), b"k".to_vec()],
        ),
        (
            "answer-long-id",
            vec![id("answer", b"123456789"), b"k".to_vec(), b"v".to_vec()],
        ),
        ("set-missing-value", vec![b"set".to_vec(), b"k".to_vec()]),
        (
            "list-extra-frame",
            vec![id("list", b"12345678"), b"k".to_vec()],
        ),
        (
            "key-not-utf8",
            vec![b"set".to_vec(), b"\xff\xfe".to_vec(), b"v".to_vec()],
        ),
        (
            "list-answer-key-not-utf8",
            vec![
                id("list_answer", &DECODE_NODE_ID.0),
                b"a".to_vec(),
                b"\xc3".to_vec(),
            ],
        ),
        (
            "long-value",
            vec![b"set".to_vec(), b"k".to_vec(), vec![b'x'; 300]],
        ),
        ("dkv-all-suffix", vec![b"dkv2.all x".to_vec(), put.clone()]),
        (
            "dkv-to-short-id",
            vec![b"dkv2.to 1234567".to_vec(), put.clone()],
        ),
        ("dkv-no-body", vec![all.clone()]),
        (
            "dkv-two-bodies",
            vec![all.clone(), put.clone(), put.clone()],
        ),
        ("dkv-version", vec![all.clone(), with(&put, 0, 2)]),
        ("dkv-empty-body", vec![all.clone(), vec![]]),
        ("dkv-unknown-kind", vec![all.clone(), with(&put, 1, 7)]),
        ("dkv-trailing", vec![all.clone(), [&put[..], &[0]].concat()]),
        (
            "dkv-truncated",
            vec![all.clone(), put[..put.len() - 1].to_vec()],
        ),
        ("dkv-echo-flag", vec![all.clone(), with(&put, 10, 2)]),
        (
            "dkv-key-not-utf8",
            vec![all.clone(), [&head(2)[..], &[0, 0, 0, 1, 0xff]].concat()],
        ),
        (
            "dkv-bad-range",
            vec![
                all.clone(),
                [&head(4)[..], &[0; 8], &[1], &16u64.to_be_bytes(), &[0]].concat(),
            ],
        ),
        (
            "dkv-sync-flags",
            vec![all.clone(), [&head(3)[..], &[0; 8], &[4], &[0; 4]].concat()],
        ),
        (
            "dkv-count-too-big",
            vec![all.clone(), [&head(5)[..], &[0; 8], &[0xff; 4]].concat()],
        ),
    ];
    seeds.extend(
        malformed
            .into_iter()
            .map(|(name, frames)| (format!("bad-{name}"), frames_input(&frames))),
    );
    seeds
        .into_iter()
        .map(|(name, data)| Seed {
            target: "decode",
            name,
            data,
        })
        .collect()
}

fn beacon_seeds() -> Vec<Seed> {
    let beacons: Vec<(&str, Vec<u8>)> = vec![
        ("valid", encode_beacon(5005)),
        ("own-port", encode_beacon(41017)),
        ("max-port", encode_beacon(65535)),
        ("port-zero", b"beacon 0".to_vec()),
        ("port-too-big", b"beacon 65536".to_vec()),
        ("leading-zero", b"beacon 05005".to_vec()),
        ("sign", b"beacon +5005".to_vec()),
        ("trailing", b"beacon 5005\n".to_vec()),
        ("no-port", b"beacon ".to_vec()),
        ("no-space", b"beacon".to_vec()),
        ("not-beacon", b"hello".to_vec()),
        ("long", [&b"beacon "[..], &[b'1'; 1100][..]].concat()),
    ];
    let hello = encode_hello(5005, OTHER);
    let hellos: Vec<(&str, Vec<u8>)> = vec![
        ("hello", hello.clone()),
        ("hello-own-id", encode_hello(5005, NodeId(*b"beacon!!"))),
        ("hello-own-port", encode_hello(41017, OTHER)),
        ("hello-port-zero", encode_hello(0, OTHER)),
        ("hello-short", hello[..15].to_vec()),
        ("hello-long", [&hello[..], &[0]].concat()),
        ("hello-version", [&hello[..5], &[2], &hello[6..]].concat()),
        ("hello-prefix-only", b"dkv2\0".to_vec()),
    ];
    let basic = [
        ("peer", flags(true, false, 1, PRE_NONE)),
        ("own-host", flags(true, false, 0, PRE_NONE)),
        ("refresh", flags(true, true, 2, PRE_NONE)),
        ("net-down", flags(false, false, 1, PRE_NONE)),
    ];
    let heard_other = [
        ("after-beacon", flags(true, false, 1, PRE_BEACON)),
        ("after-other-hello", flags(true, false, 1, PRE_OTHER_HELLO)),
        ("moved", flags(true, false, 1, PRE_OTHER_SOURCE)),
    ];
    let mut seeds = Vec::new();
    let mut add = |name: &str, case: &str, flags: u8, payload: &[u8]| {
        seeds.push(Seed {
            target: "beacon",
            name: format!("{name}-{case}"),
            data: [&[flags][..], payload].concat(),
        });
    };
    for (name, payload) in &beacons {
        for (case, flags) in basic {
            add(name, case, flags, payload);
        }
    }
    for (case, flags) in heard_other {
        add("valid", case, flags, &encode_beacon(5005));
    }
    for (name, payload) in &hellos {
        for (case, flags) in basic.iter().chain(&heard_other) {
            add(name, case, *flags, payload);
        }
    }
    seeds
}

/// Builds a `node` target input operation by operation (see [`Op`] for the
/// operands each one reads).
#[derive(Clone, Debug)]
pub struct Script(Writer);

impl Script {
    /// An input with default timings and seed 0.
    pub fn new() -> Script {
        Script(Writer::new().u8(0))
    }

    /// An input with short timings: every interval and timeout 10 units of its scale
    /// (beacon 100 ms, peer timeout 200 ms, get 50 ms, sync 100 ms, sync timeout
    /// 50 ms, clock offset 50 ms, tombstone horizon 1 s), a bootstrap window of one.
    pub fn short_timings() -> Script {
        let w = Writer::new().u8(1);
        let w = (0..6).fold(w, |w, _| w.u8(9)).u8(0);
        Script((0..4).fold(w, |w, _| w.u8(9)))
    }

    /// Appends an operand byte.
    pub fn u8(self, value: u8) -> Script {
        Script(self.0.u8(value))
    }
    /// Appends a `u16` operand.
    pub fn u16(self, value: u16) -> Script {
        Script(self.0.u16(value))
    }
    /// Appends a `u64` operand.
    pub fn u64(self, value: u64) -> Script {
        Script(self.0.u64(value))
    }
    /// Appends a byte-string operand.
    pub fn bytes(self, value: &[u8]) -> Script {
        Script(self.0.bytes(value))
    }
    /// Appends an opcode.
    pub fn op(self, op: Op) -> Script {
        self.u8(op as u8)
    }
    /// `NetUp` with `IPS[ip]`.
    pub fn net_up(self, ip: u8) -> Script {
        self.op(Op::NetUp).u8(ip)
    }
    /// `Beacon` from `IPS[ip]` announcing `port`.
    pub fn beacon(self, ip: u8, port: u16) -> Script {
        self.op(Op::Beacon).u8(ip).u16(port)
    }
    /// `Hello` from `IPS[ip]` announcing `port` and `IDS[id]`.
    pub fn hello(self, ip: u8, port: u16, id: u8) -> Script {
        self.op(Op::Hello).u8(ip).u16(port).u8(id)
    }
    /// `RawBeacon` from `IPS[ip]`.
    pub fn raw_beacon(self, ip: u8, datagram: &[u8]) -> Script {
        self.op(Op::RawBeacon).u8(ip).bytes(datagram)
    }
    /// A pool key by index (see `KEYS`).
    pub fn key(self, index: u8) -> Script {
        self.u8(index)
    }
    /// `Message`: prototype `kind` (0 set, 1 question, 2 answer, 3 list, 4 list
    /// answer) with `IDS[id]`, pool key `key`, and `value` or `more` keys as it needs.
    pub fn message(self, kind: u8, id: u8, key: u8, value: &[u8], more: &[u8]) -> Script {
        let s = self.op(Op::Message).u8(kind).u8(id).key(key);
        match kind {
            0 | 2 => s.bytes(value),
            4 => more.iter().fold(s.u8(more.len() as u8), |s, &k| s.key(k)),
            _ => s,
        }
    }
    /// `RawMessage` with these frames.
    pub fn raw_message(self, frames: &[&[u8]]) -> Script {
        let s = self.op(Op::RawMessage).u8(frames.len() as u8);
        frames.iter().fold(s, |s, f| s.bytes(f))
    }
    /// `Get` of pool key `key` (timeout 0: the default).
    pub fn get(self, key: u8, timeout_ms: u16) -> Script {
        self.op(Op::Get).key(key).u16(timeout_ms)
    }
    /// `Set` of pool key `key`.
    pub fn set(self, key: u8, value: &[u8]) -> Script {
        self.op(Op::Set).key(key).bytes(value)
    }
    /// `Delete` of pool key `key`.
    pub fn delete(self, key: u8) -> Script {
        self.op(Op::Delete).key(key)
    }
    /// `Writes`: sets (`Some`) and deletes (`None`) of pool keys, back to back.
    pub fn writes(self, writes: &[(u8, Option<&[u8]>)]) -> Script {
        let s = self.op(Op::Writes).u8(writes.len() as u8);
        writes.iter().fold(s, |s, (key, value)| match value {
            Some(v) => s.key(*key).u8(0).bytes(v),
            None => s.key(*key).u8(1),
        })
    }
    /// `WallClock`: `amount` units (0 ms, 1 s, 2 min, 3 h, 4 days), back if `back`.
    pub fn wall(self, unit: u8, amount: u16, back: bool) -> Script {
        self.op(Op::WallClock)
            .u8(unit | if back { 0x80 } else { 0 })
            .u16(amount)
    }
    /// `Advance` by `ms`.
    pub fn advance(self, ms: u16) -> Script {
        self.op(Op::Advance).u16(ms)
    }
    /// `Jump` by `secs`.
    pub fn jump(self, secs: u8) -> Script {
        self.op(Op::Jump).u8(secs)
    }
    /// The head of `Dkv`: from `IDS[from]`, to (0 every node, 1 this node, 2
    /// another node), body kind (0 put, 1 ask, 2 sync, 3 pull, 4 fetch, 5 push); the
    /// body's operands follow.
    pub fn dkv(self, from: u8, to: u8, kind: u8) -> Script {
        self.op(Op::Dkv).u8(from).u8(to).u8(kind)
    }
    /// A record operand: pool key `key`, a version of `stamp` by `writer` (counter 7
    /// for `NowCounter`, 1 ms for `Raw`), and a value or (`None`) a tombstone.
    pub fn record(self, key: u8, stamp: Stamp, writer: u8, value: Option<&[u8]>) -> Script {
        let s = self.key(key).u8(stamp.by(writer));
        let s = match stamp {
            Stamp::NowCounter => s.u16(7),
            Stamp::Raw => s.u64(1 << 16),
            _ => s,
        };
        match value {
            Some(v) => s.u8(0).bytes(v),
            None => s.u8(1),
        }
    }
    /// A range operand: `level` and, above level 0, the range of pool key `key`.
    pub fn range(self, level: u8, key: u8) -> Script {
        match level {
            0 => self.u8(0),
            _ => self.u8(level).u8(key),
        }
    }
    /// The input built so far.
    pub fn finish(self) -> Vec<u8> {
        self.0.finish()
    }
}

impl Default for Script {
    fn default() -> Script {
        Script::new()
    }
}

/// From peer one (`IDS[1]`), to this node.
const PEER: u8 = 1;
const TO_ALL: u8 = 0;
const TO_ME: u8 = 1;
const TO_OTHER: u8 = 2;
const PUT: u8 = 0;
const ASK: u8 = 1;
const SYNC: u8 = 2;
const PULL: u8 = 3;
const FETCH: u8 = 4;
const PUSH: u8 = 5;
/// Writer of a record's version: peer one.
const BY_PEER: u8 = 0;
/// An id operand picking the node's most recent session or request id.
const RECENT: u8 = 0;

fn node_seeds() -> Vec<Seed> {
    let own_answer_topic = [&b"answer "[..], &OWN_ID.0[..]].concat();
    let scripts: Vec<(&str, Script)> = vec![
        ("empty-default-timings", Script::new()),
        ("net-up-beacons", Script::new().net_up(0).advance(3500)),
        (
            "peer-up-then-times-out",
            Script::new().net_up(0).beacon(1, 5005).advance(6000),
        ),
        (
            "own-beacon-ignored",
            Script::new().net_up(0).beacon(0, 41017).advance(100),
        ),
        (
            "same-host-other-port-is-a-peer",
            Script::new()
                .net_up(0)
                .beacon(0, 41018)
                .beacon(0, 41018)
                .advance(1000),
        ),
        (
            "bad-beacon",
            Script::new().net_up(0).raw_beacon(1, b"beacon 0"),
        ),
        ("beacon-while-net-down", Script::new().beacon(1, 5005)),
        (
            "net-down-then-up-new-ip",
            Script::new()
                .net_up(0)
                .beacon(1, 5005)
                .op(Op::NetDown)
                .advance(1000)
                .net_up(2)
                .advance(5000),
        ),
        ("set-then-get-hits", Script::new().set(0, b"v").get(0, 0)),
        (
            "get-miss-times-out",
            Script::new().net_up(0).get(1, 0).advance(200),
        ),
        ("get-miss-long-timeout", Script::new().get(1, 60000).jump(2)),
        (
            "get-answered",
            Script::new().get(2, 500).message(2, 0, 2, b"val", &[]),
        ),
        (
            "get-completed-by-set-message",
            Script::new().get(3, 0).message(0, 1, 3, b"x", &[]),
        ),
        (
            "get-then-shutdown",
            Script::new().get(3, 1000).op(Op::Shutdown),
        ),
        (
            "question-answered",
            Script::new().set(0, b"v").message(1, 1, 0, b"", &[]),
        ),
        (
            "question-empty-value-unanswered",
            Script::new().set(0, b"").message(1, 2, 0, b"", &[]),
        ),
        (
            "answer-for-other-ignored",
            Script::new().get(0, 0).message(2, 1, 0, b"v", &[]),
        ),
        (
            "list-answered",
            Script::new()
                .set(0, b"1")
                .set(1, b"2")
                .message(3, 1, 0, b"", &[]),
        ),
        (
            "bootstrap-fetches-listed-keys",
            Script::new()
                .net_up(0)
                .beacon(1, 5005)
                .advance(2000)
                .message(4, 0, 0, b"", &[1, 2, 3])
                .message(2, 0, 0, b"va", &[])
                .message(2, 0, 1, b"vb", &[])
                .advance(600)
                .advance(2500),
        ),
        (
            "bootstrap-window-of-one",
            Script::short_timings()
                .net_up(0)
                .beacon(1, 5005)
                .op(Op::NextDeadline)
                .message(4, 0, 0, b"", &[1, 2, 3, 4, 5, 6, 7])
                .message(2, 0, 0, b"v", &[])
                .op(Op::NextDeadline)
                .op(Op::NextDeadline)
                .advance(3000),
        ),
        (
            "list-answer-crossfire",
            Script::new()
                .net_up(0)
                .advance(2000)
                .message(4, 1, 0, b"", &[1]),
        ),
        (
            "raw-answer-own",
            Script::new()
                .get(0, 0)
                .raw_message(&[&own_answer_topic, b"a", b"v"]),
        ),
        (
            "raw-garbage",
            Script::new().raw_message(&[b"set", b"\xff", b"v"]),
        ),
        ("raw-no-frames", Script::new().raw_message(&[])),
        (
            "shutdown-with-peers",
            Script::new()
                .net_up(0)
                .beacon(1, 5005)
                .beacon(5, 6000)
                .get(0, 0)
                .op(Op::Shutdown),
        ),
        (
            "timeout-early",
            Script::new()
                .net_up(0)
                .op(Op::TimeoutNow)
                .op(Op::TimeoutNow),
        ),
        (
            "delete-then-get-completes-deleted",
            Script::new().set(0, b"v").delete(0).get(0, 0),
        ),
        (
            "deleted-key-neither-listed-nor-answered",
            Script::new()
                .set(0, b"v")
                .set(1, b"w")
                .delete(0)
                .message(3, 1, 0, b"", &[])
                .message(1, 1, 0, b"", &[]),
        ),
        (
            "wall-clock-back-then-writes",
            Script::new()
                .set(0, b"1")
                .wall(3, 1, true)
                .set(0, b"2")
                .wall(1, 30, false)
                .delete(0),
        ),
        (
            "wall-clock-forward-then-collect",
            Script::short_timings()
                .delete(0)
                .set(1, b"kept")
                .wall(4, 2, false)
                .advance(1100),
        ),
        (
            "short-horizon-collects-tombstone",
            Script::short_timings()
                .delete(0)
                .advance(1500)
                .set(0, b"back"),
        ),
        (
            "writes-batched",
            Script::new().writes(&[(0, Some(b"1")), (1, None), (0, Some(b"2"))]),
        ),
        (
            "writes-echoed-to-prototype-peer",
            Script::new()
                .net_up(0)
                .beacon(1, 5005)
                .writes(&[(0, Some(b"1")), (1, None)]),
        ),
        (
            "hello-identifies-and-syncs",
            Script::new().net_up(0).hello(1, 5005, 1).advance(2500),
        ),
        (
            "hello-own-id-ignored",
            Script::new().net_up(0).hello(1, 5005, 0),
        ),
        (
            "hello-after-beacon",
            Script::new().net_up(0).beacon(1, 5005).hello(1, 5005, 2),
        ),
        (
            "legacy-question-from-dkv-dropped",
            Script::new()
                .net_up(0)
                .hello(1, 5005, 1)
                .set(0, b"v")
                .message(1, 1, 0, b"", &[]),
        ),
        (
            "put-every-stamp",
            Stamp::ALL
                .chunks(7)
                .fold(Script::new().net_up(0), |s, stamps| {
                    let s = s.dkv(PEER, TO_ALL, PUT).u8(0).u8(stamps.len() as u8);
                    stamps.iter().enumerate().fold(s, |s, (i, &stamp)| {
                        let value: Option<&[u8]> = if i % 3 == 2 { None } else { Some(b"v") };
                        s.record(i as u8, stamp, i as u8 % 4, value)
                    })
                }),
        ),
        (
            "put-clock-edges",
            Script::new()
                .dkv(PEER, TO_ALL, PUT)
                .u8(0)
                .u8(7)
                .record(0, Stamp::Edge, 1, Some(b"edge"))
                .record(1, Stamp::EdgeFull, BY_PEER, Some(b"full"))
                .record(2, Stamp::PastEdge, BY_PEER, Some(b"past"))
                .record(3, Stamp::HourAhead, BY_PEER, None)
                .record(4, Stamp::Max, BY_PEER, Some(b"max"))
                .record(5, Stamp::Unversioned, BY_PEER, Some(b"u"))
                .record(0, Stamp::Edge, BY_PEER, Some(b"higher writer"))
                .dkv(PEER, TO_ALL, PUT)
                .u8(0)
                .u8(1)
                .record(0, Stamp::Held, BY_PEER, Some(b"tie")),
        ),
        (
            "put-echo-then-set-copy-ignored",
            Script::new()
                .dkv(PEER, TO_ALL, PUT)
                .u8(1)
                .u8(2)
                .record(0, Stamp::Now, BY_PEER, Some(b"v"))
                .record(1, Stamp::Now, BY_PEER, None)
                .message(0, 0, 0, b"v", &[])
                .message(0, 0, 1, b"", &[])
                .message(0, 0, 1, b"", &[]),
        ),
        (
            "put-not-ours-ignored",
            Script::new()
                .dkv(PEER, TO_OTHER, PUT)
                .u8(0)
                .u8(1)
                .record(0, Stamp::Now, BY_PEER, Some(b"v"))
                .dkv(0, TO_ALL, PUT)
                .u8(0)
                .u8(1)
                .record(0, Stamp::Now, BY_PEER, Some(b"v")),
        ),
        (
            "get-answered-by-push",
            Script::new()
                .net_up(0)
                .get(2, 500)
                .dkv(PEER, TO_ME, PUSH)
                .u8(0x80)
                .u8(1)
                .record(2, Stamp::SecondAgo, BY_PEER, Some(b"pushed"))
                .u8(0),
        ),
        (
            "ask-answered-with-push",
            Script::new().set(3, b"v").dkv(PEER, TO_ALL, ASK).key(3),
        ),
        (
            "pull-answered-in-pages",
            Script::new()
                .set(0, b"1")
                .set(1, b"2")
                .delete(2)
                .dkv(PEER, TO_ME, PULL)
                .u8(0x81)
                .range(0, 0)
                .u8(0)
                .dkv(PEER, TO_ME, PULL)
                .u8(0x82)
                .range(1, 0)
                .u8(1)
                .u8(1),
        ),
        (
            "fetch-answered",
            Script::new()
                .set(0, b"1")
                .dkv(PEER, TO_ME, FETCH)
                .u8(0x83)
                .u8(2)
                .u8(0)
                .u8(1),
        ),
        (
            "sync-responder-splits-and-lists",
            Script::new()
                .set(0, b"1")
                .set(1, b"2")
                .dkv(PEER, TO_ME, SYNC)
                .u8(0x85)
                .u8(1)
                .u8(3)
                .u8(0)
                .range(0, 0)
                .u8(2)
                .u8(1)
                .range(1, 0)
                .u8(1)
                .record(0, Stamp::HourAhead, BY_PEER, Some(b"x"))
                .u8(3)
                .range(2, 1),
        ),
        (
            "sync-session-round-trip",
            Script::new()
                .net_up(0)
                .set(0, b"mine")
                .hello(1, 5005, PEER)
                .dkv(PEER, TO_ME, SYNC)
                .u8(RECENT)
                .u8(2)
                .u8(1)
                .u8(1)
                .range(0, 0)
                .u8(2)
                .record(1, Stamp::SecondAgo, BY_PEER, Some(b"theirs"))
                .record(0, Stamp::SecondAgo, BY_PEER, Some(b"older"))
                .dkv(PEER, TO_ME, PUSH)
                .u8(RECENT)
                .u8(1)
                .record(1, Stamp::SecondAgo, BY_PEER, Some(b"theirs"))
                .u8(0)
                .advance(3000),
        ),
        (
            "sync-pull-of-empty-store",
            Script::new()
                .net_up(0)
                .hello(1, 5005, PEER)
                .dkv(PEER, TO_ME, SYNC)
                .u8(RECENT)
                .u8(2)
                .u8(1)
                .u8(0)
                .range(0, 0)
                .u8(3)
                .u64(9)
                .u64(5000)
                .dkv(PEER, TO_ME, PUSH)
                .u8(RECENT)
                .u8(1)
                .record(2, Stamp::Now, BY_PEER, Some(b"page"))
                .u8(1)
                .u8(2)
                .advance(2000),
        ),
        (
            "hello-gap-while-session-runs",
            Script::new()
                .net_up(0)
                .hello(1, 5005, PEER)
                .advance(2600)
                .hello(1, 5005, PEER)
                .op(Op::TimeoutNow)
                .advance(1000),
        ),
    ];
    scripts
        .into_iter()
        .map(|(name, script)| Seed {
            target: "node",
            name: name.into(),
            data: script.finish(),
        })
        .collect()
}

/// Every seed of every target, in a fixed order with fixed names.
pub fn all() -> Vec<Seed> {
    let mut seeds = decode_seeds();
    seeds.extend(beacon_seeds());
    seeds.extend(node_seeds());
    seeds.extend(seal_seeds());
    seeds
}

/// The `seal` target's seeds: key files, each genuine frame and hello (as such and
/// with a byte flipped), to the parsers and to the keyed node.
fn seal_seeds() -> Vec<Seed> {
    use crate::targets::seal::{genuine_frames, genuine_hellos, SEAL_KEY_FILE};
    let mut out: Vec<(String, Vec<u8>)> = vec![
        (
            "keys-one".into(),
            [&[0u8][..], SEAL_KEY_FILE.as_bytes()].concat(),
        ),
        (
            "keys-bad-line".into(),
            [&[0u8][..], b"# c\n00zz\n"].concat(),
        ),
    ];
    let flip = |b: &[u8], at: usize| {
        let mut v = b.to_vec();
        let i = at % v.len();
        v[i] ^= 1;
        v
    };
    for (i, (topic, frame)) in genuine_frames().iter().enumerate() {
        for (kind, frame) in [("genuine", frame.to_vec()), ("flipped", flip(frame, 20))] {
            let pair = Writer::new().bytes(topic).bytes(&frame).finish();
            out.push((format!("frame-{i}-{kind}"), [&[1u8][..], &pair].concat()));
            let node = Writer::new().u8(2).bytes(topic).bytes(&frame).finish();
            out.push((
                format!("node-frame-{i}-{kind}"),
                [&[3u8][..], &node].concat(),
            ));
        }
    }
    for (i, hello) in genuine_hellos().iter().enumerate() {
        for (kind, h) in [("genuine", hello.to_vec()), ("flipped", flip(hello, 50))] {
            out.push((format!("hello-{i}-{kind}"), [&[2u8][..], &h].concat()));
            out.push((format!("node-hello-{i}-{kind}"), [&[4u8][..], &h].concat()));
        }
    }
    out.into_iter()
        .map(|(name, data)| Seed {
            target: "seal",
            name,
            data,
        })
        .collect()
}
