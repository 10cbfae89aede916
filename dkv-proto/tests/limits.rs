//! Limits: each one at its limit and one past it (counted, no state change, no
//! output), local writes refused with a reason, and defaults that let normal
//! traffic through.

mod support;

use bytes::Bytes;
use dkv_proto::wire::v2::{Body, Record};
use dkv_proto::wire::{DecodeLimits, Envelope};
use dkv_proto::{
    Config, DecodeError, Limits, LimitsError, Message, Node, NodeId, Output, Rate, WriteError,
};
use std::time::Duration;
use support::*;

/// Node 1, up at `ip(1)`, with `limits`.
fn limited(limits: Limits) -> Node {
    let mut c = config(1, 1);
    c.limits = limits;
    up(Node::new(c), 1, at(0))
}

fn small() -> Limits {
    Limits {
        max_key_bytes: 8,
        max_value_bytes: 16,
        max_message_bytes: 128,
        ..Limits::default()
    }
}

fn connects(out: &[Output]) -> usize {
    out.iter()
        .filter(|o| matches!(o, Output::Connect(_)))
        .count()
}

fn frames(msg: &Message) -> Vec<Bytes> {
    msg.encode()
}

// ---- defaults ----

#[test]
fn defaults_are_valid_and_as_documented() {
    let l = Limits::default();
    assert_eq!(l.validate(), Ok(()));
    assert_eq!(l.max_key_bytes, 1024);
    assert_eq!(l.max_value_bytes, 1 << 20);
    assert_eq!(l.max_message_bytes, (1 << 20) + (64 << 10));
    assert_eq!((l.max_peers, l.max_peers_per_ip), (256, 16));
    assert_eq!(l.new_peers, Rate::per_second(20, 64));
    assert_eq!(l.bootstrap_max_keys, 1_000_000);
    assert_eq!(Config::new(id(1), 1, wall()).limits, l);
}

#[test]
fn validate_refuses_zero_limits_and_a_message_below_a_record() {
    let zero = Limits {
        max_peers: 0,
        ..Limits::default()
    };
    assert_eq!(zero.validate(), Err(LimitsError::Zero("max_peers")));
    let tight = Limits {
        max_message_bytes: 1024 + (1 << 20),
        ..Limits::default()
    };
    assert_eq!(tight.validate(), Err(LimitsError::MessageBelowRecord));
}

#[test]
fn defaults_let_a_largest_record_and_a_dozen_local_nodes_through() {
    let mut n = up_node(1, 1, at(0));
    let key = "k".repeat(1024);
    let value = Bytes::from(vec![7u8; 1 << 20]);
    deliver(
        &mut n,
        at(1),
        &put(
            2,
            vec![dkv_proto::Record {
                key: key.clone(),
                entry: dkv_proto::Entry {
                    version: version(1, 2),
                    value: Some(value.clone()),
                },
            }],
        ),
    );
    assert_eq!(n.value(&key), Some(&value[..]));
    assert_eq!(n.try_set(at(2), "mine".into(), value.clone()), Ok(()));
    // `dkv demo` runs 12 nodes on loopback: one IP, 12 ports, within a second.
    for port in 0..12u16 {
        n.handle_beacon(at(3), ip(7), format!("beacon {}", 2000 + port).as_bytes());
    }
    assert_eq!(connects(&drain(&mut n)), 12);
    let s = n.stats();
    let hits = s.drop_oversized
        + s.drop_key_too_long
        + s.drop_value_too_large
        + s.writes_refused
        + s.drop_peer_limit
        + s.drop_peer_ip_limit
        + s.drop_peer_rate;
    assert_eq!(hits, 0);
}

// ---- sizes on receive ----

#[test]
fn a_message_over_the_size_limit_is_dropped_before_decoding() {
    let mut n = limited(small());
    let at_limit = Message::Set {
        key: "k".into(),
        value: Bytes::from(vec![b'v'; 16]),
    };
    deliver(&mut n, at(1), &at_limit);
    assert_eq!(n.value("k").map(|v| v.len()), Some(16));
    // Garbage frames are refused by size alone, before the topic is looked at.
    let huge: Vec<Vec<u8>> = vec![b"set".to_vec(), b"k2".to_vec(), vec![0; 200]];
    n.handle_message(at(2), &huge);
    assert_eq!(n.stats().drop_oversized, 1);
    assert_eq!(n.value("k2"), None);
    assert!(published(&drain(&mut n)).is_empty());
    // One byte over in total.
    let total: usize = frames(&at_limit).iter().map(|f| f.len()).sum();
    let l = DecodeLimits {
        max_message_bytes: total - 1,
        ..DecodeLimits::NONE
    };
    assert_eq!(
        Message::decode_limited(&frames(&at_limit), l),
        Err(DecodeError::Oversized)
    );
    let l = DecodeLimits {
        max_message_bytes: total,
        ..DecodeLimits::NONE
    };
    assert_eq!(Message::decode_limited(&frames(&at_limit), l), Ok(at_limit));
}

#[test]
fn prototype_keys_and_values_over_the_limits_are_dropped_and_counted() {
    let mut n = limited(small());
    let ok = Message::Set {
        key: "k".repeat(8),
        value: Bytes::from(vec![1; 16]),
    };
    deliver(&mut n, at(1), &ok);
    assert!(n.value(&"k".repeat(8)).is_some());
    let long_key = Message::Set {
        key: "k".repeat(9),
        value: bytes("v"),
    };
    deliver(&mut n, at(2), &long_key);
    let big_value = Message::Set {
        key: "b".into(),
        value: Bytes::from(vec![1; 17]),
    };
    deliver(&mut n, at(3), &big_value);
    let question = Message::Question {
        asker: id(9),
        key: "q".repeat(9),
    };
    deliver(&mut n, at(4), &question);
    let s = n.stats();
    assert_eq!((s.drop_key_too_long, s.drop_value_too_large), (2, 1));
    assert_eq!((s.in_set, s.in_question), (1, 0));
    assert_eq!(n.len(), 1);
    assert!(published(&drain(&mut n)).is_empty());
}

#[test]
fn dkv2_keys_and_values_over_the_limits_are_dropped_and_counted() {
    let mut n = limited(small());
    let rec = |key: &str, len: usize| {
        record(
            key,
            dkv_proto::Entry {
                version: version(1, 2),
                value: Some(Bytes::from(vec![3; len])),
            },
        )
    };
    deliver(&mut n, at(1), &put(2, vec![rec("12345678", 16)]));
    assert_eq!(n.len(), 1);
    // One record over the limit drops the whole message: nothing of it is applied.
    deliver(
        &mut n,
        at(2),
        &put(2, vec![rec("a", 1), rec("123456789", 1)]),
    );
    deliver(&mut n, at(3), &put(2, vec![rec("b", 1), rec("c", 17)]));
    let ask = to_all(2, Body::Ask { key: "x".repeat(9) });
    deliver(&mut n, at(4), &ask);
    let s = n.stats();
    assert_eq!((s.drop_key_too_long, s.drop_value_too_large), (2, 1));
    assert_eq!((s.in_put, s.in_ask), (1, 0));
    assert_eq!(n.len(), 1);
}

#[test]
fn decode_limited_within_the_caps_equals_decode() {
    let msg = Message::Dkv(Envelope {
        to: None,
        from: id(2),
        body: Body::Put {
            echo: false,
            records: vec![record("12345678", entry(1, 2, Some("0123456789abcdef")))],
        },
    });
    let f = frames(&msg);
    let l = DecodeLimits::from(&small());
    assert_eq!(Message::decode_limited(&f, l), Message::decode(&f));
}

// ---- local writes ----

#[test]
fn local_writes_over_the_limits_are_refused_with_the_reason() {
    let mut n = limited(small());
    assert_eq!(
        n.try_set(at(1), "k".repeat(9), bytes("v")),
        Err(WriteError::KeyTooLong { len: 9, max: 8 })
    );
    assert_eq!(
        n.try_set(at(1), "k".into(), Bytes::from(vec![0; 17])),
        Err(WriteError::ValueTooLarge { len: 17, max: 16 })
    );
    assert_eq!(
        n.try_delete(at(1), "k".repeat(9)),
        Err(WriteError::KeyTooLong { len: 9, max: 8 })
    );
    // The plain calls refuse the same, without panicking.
    n.set(at(1), "k".repeat(9), bytes("v"));
    n.delete(at(1), "k".repeat(9));
    let s = n.stats();
    assert_eq!((s.writes_refused, s.sets, s.deletes), (5, 0, 0));
    assert!(n.is_empty());
    assert!(drain(&mut n).is_empty());
    // At the limits: accepted.
    assert_eq!(
        n.try_set(at(2), "k".repeat(8), Bytes::from(vec![0; 16])),
        Ok(())
    );
    assert_eq!(n.try_delete(at(3), "k".repeat(8)), Ok(()));
    assert_eq!(n.stats().writes_refused, 5);
    assert_eq!(
        small().check_write("k", Some(&[0; 17])),
        Err(WriteError::ValueTooLarge { len: 17, max: 16 })
    );
}

// ---- peers ----

#[test]
fn peers_over_the_total_limit_are_ignored_and_counted() {
    let mut n = limited(Limits {
        max_peers: 3,
        ..Limits::default()
    });
    for last in 10..14u8 {
        n.handle_beacon(at(1), ip(last), b"beacon 5000");
    }
    let out = drain(&mut n);
    assert_eq!(connects(&out), 3);
    assert_eq!(n.peers().count(), 3);
    assert_eq!(n.stats().drop_peer_limit, 1);
    // A known peer is still heard.
    n.handle_beacon(at(2), ip(10), b"beacon 5000");
    assert_eq!(n.stats().drop_peer_limit, 1);
}

#[test]
fn peers_over_the_per_ip_limit_are_ignored_and_counted() {
    let mut n = limited(Limits {
        max_peers_per_ip: 2,
        ..Limits::default()
    });
    for port in 5000..5003u16 {
        n.handle_beacon(at(1), ip(10), format!("beacon {port}").as_bytes());
    }
    n.handle_beacon(at(1), ip(11), &hello(3, 5000));
    assert_eq!(connects(&drain(&mut n)), 3);
    assert_eq!(n.stats().drop_peer_ip_limit, 1);
    assert!(!n.peers().any(|a| a == addr(10, 5002)));
}

#[test]
fn new_peers_over_the_rate_are_ignored_then_admitted_later() {
    let mut n = limited(Limits {
        new_peers: Rate {
            every: Duration::from_millis(100),
            burst: 2,
        },
        ..Limits::default()
    });
    for last in 10..13u8 {
        n.handle_beacon(at(1), ip(last), b"beacon 5000");
    }
    assert_eq!(connects(&drain(&mut n)), 2);
    assert_eq!(n.stats().drop_peer_rate, 1);
    // One token back after 100 ms: the refused endpoint gets in on its next beacon.
    n.handle_beacon(at(101), ip(12), b"beacon 5000");
    assert_eq!(connects(&drain(&mut n)), 1);
    assert_eq!(n.stats().drop_peer_rate, 1);
}

// ---- work per request ----

#[test]
fn answers_over_the_per_asker_rate_are_dropped_and_counted() {
    let mut n = limited(Limits {
        answers_per_asker: Rate {
            every: Duration::from_secs(1),
            burst: 2,
        },
        ..Limits::default()
    });
    n.set(at(1), "k".into(), bytes("v"));
    drain(&mut n);
    let q = |asker: u8| Message::Question {
        asker: NodeId([asker; 8]),
        key: "k".into(),
    };
    for _ in 0..3 {
        deliver(&mut n, at(2), &q(9));
    }
    let answers = |out: &[Output]| {
        legacy(out)
            .into_iter()
            .filter(|m| matches!(m, Message::Answer { .. }))
            .count()
    };
    assert_eq!(answers(&drain(&mut n)), 2);
    assert_eq!(n.stats().drop_answer_rate, 1);
    // Another asker has its own bucket; the first gets one more after a second.
    deliver(&mut n, at(2), &q(8));
    deliver(&mut n, at(1_002), &q(9));
    assert_eq!(answers(&drain(&mut n)), 2);
    assert_eq!(n.stats().drop_answer_rate, 1);
}

#[test]
fn answers_over_the_total_rate_are_dropped_whoever_asks() {
    let mut n = limited(Limits {
        answers_total: Rate {
            every: Duration::from_secs(1),
            burst: 3,
        },
        ..Limits::default()
    });
    n.set(at(1), "k".into(), bytes("v"));
    drain(&mut n);
    for asker in 10..15u8 {
        let q = Message::Question {
            asker: NodeId([asker; 8]),
            key: "k".into(),
        };
        deliver(&mut n, at(2), &q);
    }
    assert_eq!(legacy(&drain(&mut n)).len(), 3);
    assert_eq!(n.stats().drop_answer_rate, 2);
}

#[test]
fn list_answers_are_limited_per_asker_and_in_all() {
    let mut n = up_node(1, 1, at(0));
    n.set(at(1), "k".into(), bytes("v"));
    drain(&mut n);
    let list = |asker: u8| Message::List {
        asker: NodeId([asker; 8]),
    };
    let answered = |n: &mut Node| {
        let sent = legacy(&drain(n));
        assert!(sent
            .iter()
            .all(|m| matches!(m, Message::ListAnswer { keys, .. } if keys == &["k"])));
        sent.len()
    };
    // Default: 3 at once per asker, then one per 10 s; 1/s in all, burst 2. A
    // prototype re-bootstrapping after a flap (same id) is answered again.
    for ms in [2, 1_500, 3_000, 4_500] {
        deliver(&mut n, at(ms), &list(9));
    }
    assert_eq!(answered(&mut n), 3);
    assert_eq!(n.stats().drop_list_rate, 1);
    // Three askers at once: the global burst answers two.
    for asker in [8, 7, 6] {
        deliver(&mut n, at(6_000), &list(asker));
    }
    assert_eq!(answered(&mut n), 2);
    assert_eq!(n.stats().drop_list_rate, 2);
    assert_eq!(n.stats().in_list, 7);
    // Later, the first asker has a token again.
    deliver(&mut n, at(20_002), &list(9));
    assert_eq!(answered(&mut n), 1);
    assert_eq!(n.stats().drop_list_rate, 2);
}

#[test]
fn forgotten_askers_stay_bounded_by_the_total_rate() {
    let mut n = limited(Limits {
        max_askers: 2,
        answers_per_asker: Rate {
            every: Duration::from_secs(60),
            burst: 1,
        },
        answers_total: Rate {
            every: Duration::from_secs(60),
            burst: 4,
        },
        ..Limits::default()
    });
    n.set(at(1), "k".into(), bytes("v"));
    drain(&mut n);
    // Cycling through more askers than remembered resets their buckets, but the
    // total rate still holds.
    for round in 0..3u64 {
        for asker in 10..13u8 {
            let q = Message::Question {
                asker: NodeId([asker; 8]),
                key: "k".into(),
            };
            deliver(&mut n, at(2 + round), &q);
        }
    }
    assert_eq!(legacy(&drain(&mut n)).len(), 4);
    assert_eq!(n.stats().drop_answer_rate, 5);
}

// ---- bootstrap ----

#[test]
fn a_bootstrap_fetches_at_most_the_key_limit_and_counts_the_rest() {
    let mut n = limited(Limits {
        bootstrap_max_keys: 2,
        ..Limits::default()
    });
    n.handle_beacon(at(0), ip(9), b"beacon 9");
    drain(&mut n);
    n.handle_timeout(at(2_000));
    assert_eq!(legacy(&drain(&mut n)), vec![Message::List { asker: id(1) }]);
    let answer = Message::ListAnswer {
        asker: id(1),
        keys: vec!["a".into(), "b".into(), "c".into(), "d".into()],
    };
    deliver(&mut n, at(2_001), &answer);
    let asked = legacy(&drain(&mut n));
    assert_eq!(asked.len(), 2);
    let b = n.bootstrap();
    assert_eq!(b.listed, 2);
    assert_eq!(n.stats().bootstrap_keys_over_limit, 2);
}

#[test]
fn a_list_answer_is_exempt_from_the_message_size_limit() {
    let mut n = limited(small());
    n.handle_beacon(at(0), ip(9), b"beacon 9");
    drain(&mut n);
    n.handle_timeout(at(2_000));
    drain(&mut n);
    // 40 keys of 8 bytes: far over 128 bytes in all, each key within its limit.
    let keys: Vec<String> = (0..40).map(|i| format!("key{i:05}")).collect();
    let answer = Message::ListAnswer { asker: id(1), keys };
    deliver(&mut n, at(2_001), &answer);
    assert_eq!(n.stats().drop_oversized, 0);
    assert_eq!(n.stats().in_list_answer, 1);
    assert_eq!(n.bootstrap().listed, 40);
}

// ---- transfer from one peer ----

/// A node that takes `burst` new keys from each dkv peer, then one a second.
fn with_new_key_budget(burst: u32) -> Node {
    limited(Limits {
        peer_new_keys: Rate {
            every: Duration::from_secs(1),
            burst,
        },
        ..Limits::default()
    })
}

/// Records of `keys`, each with value "v" and version (`ms`, node 2).
fn recs(keys: &[&str], ms: i64) -> Vec<Record> {
    keys.iter()
        .map(|k| record(k, entry(ms, 2, Some("v"))))
        .collect()
}

#[test]
fn new_keys_over_a_peers_budget_are_refused_and_counted() {
    let mut n = with_new_key_budget(2);
    deliver(&mut n, at(1), &put(2, recs(&["a", "b", "c"], 1)));
    assert_eq!(n.len(), 2);
    assert_eq!(n.stats().sync_peer_over_budget, 1);
    // Updates of held keys cost nothing; another peer has its own budget.
    deliver(&mut n, at(2), &put(2, recs(&["a", "b"], 2)));
    let push = to_one(
        3,
        1,
        Body::Push {
            request: 0,
            records: recs(&["c"], 3),
            more: None,
        },
    );
    deliver(&mut n, at(3), &push);
    assert_eq!(n.len(), 3);
    assert_eq!(n.entry("a").unwrap().version, version(2, 2));
    assert_eq!(n.stats().sync_peer_over_budget, 1);
    // The budget refills with time.
    deliver(&mut n, at(1_004), &put(2, recs(&["d"], 4)));
    assert_eq!(n.len(), 4);
    assert_eq!(n.stats().sync_peer_over_budget, 1);
}

#[test]
fn a_put_within_a_peers_budget_is_charged_only_for_the_keys_it_adds() {
    let mut n = with_new_key_budget(4);
    deliver(&mut n, at(1), &put(2, recs(&["a", "b"], 1)));
    // Updates only: nothing taken, so two new keys still fit.
    deliver(&mut n, at(2), &put(2, recs(&["a", "b"], 2)));
    deliver(&mut n, at(3), &put(2, recs(&["c", "a", "d"], 3)));
    assert_eq!(n.len(), 4);
    assert_eq!(n.entry("a").unwrap().version, version(3, 2));
    assert_eq!(n.stats().sync_peer_over_budget, 0);
    // The budget is spent: a fifth key is refused, an update still passes.
    deliver(&mut n, at(4), &put(2, recs(&["e", "b"], 4)));
    assert_eq!(n.len(), 4);
    assert_eq!(n.entry("b").unwrap().version, version(4, 2));
    assert_eq!(n.stats().sync_peer_over_budget, 1);
}

#[test]
fn new_bytes_over_a_peers_budget_are_refused_and_counted() {
    let mut n = limited(Limits {
        peer_new_kib: Rate {
            every: Duration::from_secs(1),
            burst: 3,
        },
        ..Limits::default()
    });
    let big = |k: &str| {
        record(
            k,
            dkv_proto::Entry {
                version: version(1, 2),
                value: Some(Bytes::from(vec![0; 1500])),
            },
        )
    };
    // Each record is 2 KiB rounded up: the second is over a 3 KiB budget.
    deliver(&mut n, at(1), &put(2, vec![big("a"), big("b")]));
    assert_eq!(n.len(), 1);
    assert_eq!(n.stats().sync_peer_over_budget, 1);
}

#[test]
fn pull_pages_of_largest_values_fit_the_default_message_limit() {
    let mut n = up_node(1, 1, at(0));
    // Pages of 256 KiB: medium values before a largest one would overflow a page
    // that only stops once past its budget.
    for i in 0..6u8 {
        let value = Bytes::from(vec![i; 1 << 20]);
        n.set(at(1), format!("{i}").repeat(1024), value);
        n.set(at(1), format!("medium{i}"), Bytes::from(vec![i; 100 << 10]));
    }
    drain(&mut n);
    let limit = Limits::default().max_message_bytes;
    let (mut after, mut got) = (None, 0);
    for request in 0..20u64 {
        let pull = to_one(
            2,
            1,
            Body::Pull {
                request,
                range: dkv_proto::wire::Range::ROOT,
                after,
            },
        );
        deliver(&mut n, at(2), &pull);
        let out = drain(&mut n);
        let pushes: Vec<Message> = published(&out);
        assert_eq!(pushes.len(), 1);
        let size: usize = pushes[0].encode().iter().map(|f| f.len()).sum();
        assert!(size <= limit, "page of {size} bytes over {limit}");
        let Message::Dkv(Envelope {
            body: Body::Push { records, more, .. },
            ..
        }) = &pushes[0]
        else {
            panic!("not a push: {:?}", pushes[0].kind());
        };
        got += records.len();
        after = *more;
        if after.is_none() {
            break;
        }
    }
    assert_eq!((got, after), (12, None));
}

#[test]
fn asks_over_the_rate_are_unanswered_and_counted() {
    let mut n = limited(Limits {
        requests_per_asker: Rate {
            every: Duration::from_secs(1),
            burst: 2,
        },
        requests_total: Rate {
            every: Duration::from_secs(1),
            burst: 3,
        },
        ..Limits::default()
    });
    n.set(at(1), "k".into(), bytes("v"));
    drain(&mut n);
    let ask = |from: u8| to_all(from, Body::Ask { key: "k".into() });
    let pushes = |n: &mut Node| dkv(&drain(n)).len();
    for _ in 0..3 {
        deliver(&mut n, at(2), &ask(2));
    }
    assert_eq!(pushes(&mut n), 2);
    assert_eq!(n.stats().drop_request_rate, 1);
    // Another asker: one left in the total bucket.
    deliver(&mut n, at(2), &ask(3));
    deliver(&mut n, at(2), &ask(3));
    assert_eq!(pushes(&mut n), 1);
    assert_eq!(n.stats().drop_request_rate, 2);
    assert_eq!(n.stats().in_ask, 5);
}

#[test]
fn list_answers_are_wanted_only_while_the_prototype_bootstrap_runs() {
    let mut n = node(1, 1);
    assert!(!n.wants_list_answers(), "before net up");
    n.handle_net_up(at(0), ip(1));
    drain(&mut n);
    assert!(n.wants_list_answers(), "waiting for the bootstrap delay");
    // No prototype peer when the delay ends: that part is done at once.
    n.handle_timeout(at(2_000));
    drain(&mut n);
    assert!(!n.wants_list_answers());
    // With a prototype peer, wanted until the list was answered and settled.
    let mut p = up_node(1, 1, at(0));
    p.handle_beacon(at(0), ip(9), b"beacon 9");
    p.handle_timeout(at(2_000));
    drain(&mut p);
    assert!(p.wants_list_answers());
    let answer = Message::ListAnswer {
        asker: id(1),
        keys: vec![],
    };
    deliver(&mut p, at(2_001), &answer);
    for ms in [2_002, 4_002, 6_002, 8_002] {
        p.handle_beacon(at(ms), ip(9), b"beacon 9");
        p.handle_timeout(at(ms));
    }
    drain(&mut p);
    assert!(!p.wants_list_answers());
    p.handle_net_down(at(9_000));
    assert!(!p.wants_list_answers());
}

#[test]
fn a_bootstrap_gives_up_after_too_many_questions_unanswered_in_a_row() {
    let mut n = limited(Limits {
        bootstrap_max_unanswered: 3,
        ..Limits::default()
    });
    n.handle_beacon(at(0), ip(9), b"beacon 9");
    n.handle_timeout(at(2_000));
    drain(&mut n);
    let keys: Vec<String> = (0..10).map(|i| format!("k{i}")).collect();
    let answer = Message::ListAnswer { asker: id(1), keys };
    deliver(&mut n, at(2_001), &answer);
    let asked = legacy(&drain(&mut n)).len();
    assert_eq!(asked, 10, "the window holds every key");
    // One answer, then every question times out: 9 unanswered in a row >= 3.
    let a = Message::Answer {
        asker: id(1),
        key: "k0".into(),
        value: bytes("v"),
    };
    deliver(&mut n, at(2_002), &a);
    n.handle_timeout(at(2_600));
    drain(&mut n);
    let s = n.stats();
    assert_eq!(s.bootstrap_abandoned, 1);
    assert_eq!(s.bootstrap_keys_received, 1);
    assert_eq!(s.bootstrap_keys_unanswered, 9);
    assert_eq!(n.bootstrap().phase, dkv_proto::BootstrapPhase::Settling);
}

#[test]
fn new_keys_from_others_are_refused_when_the_store_is_full() {
    let mut n = limited(Limits {
        max_store_keys: 2,
        ..Limits::default()
    });
    deliver(
        &mut n,
        at(1),
        &put(2, vec![record("a", entry(1, 2, Some("1")))]),
    );
    deliver(&mut n, at(2), &put(2, vec![record("b", entry(2, 2, None))]));
    // Full with a value and a tombstone: a new key is refused, from a dkv peer or
    // a prototype; updates and deletes of held keys pass.
    deliver(
        &mut n,
        at(3),
        &put(2, vec![record("c", entry(3, 2, Some("3")))]),
    );
    let set = Message::Set {
        key: "d".into(),
        value: bytes("4"),
    };
    deliver(&mut n, at(4), &set);
    assert_eq!(n.stats().drop_store_full, 2);
    assert_eq!((n.entry("c"), n.entry("d")), (None, None));
    deliver(
        &mut n,
        at(5),
        &put(
            2,
            vec![
                record("a", entry(5, 2, None)),
                record("b", entry(5, 2, Some("x"))),
            ],
        ),
    );
    assert_eq!(value(&n, "b"), Some(&b"x"[..]));
    assert_eq!(n.entry("a").unwrap().value, None);
    // The owner's own writes are never refused for space.
    assert_eq!(n.try_set(at(6), "mine".into(), bytes("v")), Ok(()));
    assert_eq!(n.stats().drop_store_full, 2);
}
