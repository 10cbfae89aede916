//! The data plane: what a node does on each row of the message table, prototype
//! and dkv/2, on its own writes, and on messages it must survive.

mod support;

use bytes::Bytes;
use dkv_proto::wire::v2::{Body, Envelope, Range, Step};
use dkv_proto::{key_hash, Applied, BootstrapPhase, Entry, Message, Node, NodeId, Version};
use support::*;

const OTHER: NodeId = NodeId(*b"other id");

fn set_msg(key: &str, value: &str) -> Message {
    Message::Set {
        key: key.into(),
        value: bytes(value),
    }
}

fn answer(asker: NodeId, key: &str, value: &str) -> Message {
    Message::Answer {
        asker,
        key: key.into(),
        value: bytes(value),
    }
}

fn question(asker: NodeId, key: &str) -> Message {
    Message::Question {
        asker,
        key: key.into(),
    }
}

/// Node 1, up, holding `a = 1`, `empty = ""` and a deleted `gone`, outputs drained.
fn holding() -> Node {
    let mut n = up_node(1, 1, at(0));
    deliver(
        &mut n,
        at(1),
        &put(
            2,
            vec![
                record("a", entry(1, 2, Some("1"))),
                record("empty", entry(1, 2, Some(""))),
                record("gone", entry(1, 2, None)),
            ],
        ),
    );
    drain(&mut n);
    n
}

/// Node 1, up, with a prototype peer (a beacon and no hello) at 10.0.0.9.
fn with_prototype_peer() -> Node {
    let mut n = up_node(1, 1, at(0));
    n.handle_beacon(at(0), ip(9), b"beacon 9");
    drain(&mut n);
    n
}

// ---- local writes ----

#[test]
fn a_local_set_stores_a_fresh_version_and_publishes_a_put_only() {
    let mut n = up_node(1, 1, at(0));
    n.set(at(5), "k".into(), bytes("v"));
    let out = drain(&mut n);
    let e = entry(5, 1, Some("v"));
    assert_eq!(published(&out), vec![put(1, vec![record("k", e.clone())])]);
    assert_eq!(
        applied(&out),
        vec![Applied {
            key: "k".into(),
            entry: e.clone(),
            local: true
        }]
    );
    assert_eq!(n.entry("k"), Some(e));
    assert_eq!(
        (n.stats().sets, n.stats().out_put, n.stats().out_set),
        (1, 1, 0)
    );
}

#[test]
fn with_changes_unreported_writes_and_puts_still_store_publish_and_answer_gets() {
    let mut n = up_node(1, 1, at(0));
    n.report_applied(false);
    n.set(at(5), "k".into(), bytes("v"));
    let waiting = n.get(at(5), "r".into(), None);
    drain(&mut n);
    deliver(
        &mut n,
        at(6),
        &put(2, vec![record("r", entry(6, 2, Some("remote")))]),
    );
    let out = drain(&mut n);
    assert!(applied(&out).is_empty(), "{out:?}");
    let done = completions(&out);
    assert_eq!(done.len(), 1);
    assert_eq!(
        (done[0].id, done[0].value.clone()),
        (waiting, Some(bytes("remote")))
    );
    assert_eq!(n.entry("k"), Some(entry(5, 1, Some("v"))));
    assert_eq!(n.stats().out_put, 1);
    // Turned back on, the next change is reported again.
    n.report_applied(true);
    n.set(at(7), "k".into(), bytes("w"));
    assert_eq!(applied(&drain(&mut n)).len(), 1);
}

#[test]
fn a_put_is_one_unit_a_record_over_a_limit_refuses_the_whole_batch() {
    let mut config = config(1, 1);
    config.limits.max_value_bytes = 8;
    let mut n = up(Node::new(config), 1, at(0));
    let batch = put(
        2,
        vec![
            record("a", entry(5, 2, Some("fine"))),
            record("b", entry(5, 2, Some("far too large"))),
            record("c", entry(5, 2, Some("fine"))),
        ],
    );
    deliver(&mut n, at(6), &batch);
    assert!(applied(&drain(&mut n)).is_empty());
    assert_eq!((n.entry("a"), n.entry("c")), (None, None));
    assert_eq!(n.stats().drop_value_too_large, 1);
}

#[test]
fn with_a_prototype_peer_a_write_is_an_echo_put_then_a_prototype_set_copy() {
    let mut n = with_prototype_peer();
    n.set(at(5), "k".into(), bytes("v"));
    n.delete(at(6), "d".into());
    let msgs = published(&drain(&mut n));
    let copies: Vec<&Message> = msgs
        .iter()
        .filter(|m| !matches!(m, Message::Dkv(_)))
        .collect();
    assert_eq!(
        copies,
        [&set_msg("k", "v"), &set_msg("d", "")],
        "a delete reaches prototypes as an empty value"
    );
    for (i, m) in msgs.iter().enumerate() {
        let Message::Set { key, .. } = m else {
            continue;
        };
        let put_before = msgs[..i].iter().any(|p| match p {
            Message::Dkv(Envelope {
                body: Body::Put { echo, records },
                ..
            }) => *echo && records.iter().any(|r| &r.key == key),
            _ => false,
        });
        assert!(
            put_before,
            "the copy of {key} follows an echo put of it: {msgs:?}"
        );
    }
}

#[test]
fn with_only_dkv_peers_a_write_has_no_prototype_copy() {
    let mut n = up_node(1, 1, at(0));
    n.handle_beacon(at(0), ip(2), &hello(2, 2));
    n.handle_beacon(at(0), ip(2), b"beacon 2");
    drain(&mut n);
    n.set(at(5), "k".into(), bytes("v"));
    let out = drain(&mut n);
    assert!(legacy(&out).is_empty(), "{out:?}");
    assert_eq!(
        dkv(&out)
            .into_iter()
            .filter(|e| matches!(e.body, Body::Put { echo: false, .. }))
            .count(),
        1
    );
}

#[test]
fn writes_made_back_to_back_travel_in_one_put() {
    // Node's contract: "writes made back to back travel in one put".
    let mut n = up_node(1, 1, at(0));
    n.set(at(5), "a".into(), bytes("1"));
    n.set(at(5), "b".into(), bytes("2"));
    n.delete(at(5), "c".into());
    let puts: Vec<Envelope> = dkv(&drain(&mut n));
    let keys: Vec<Vec<String>> = puts
        .iter()
        .map(|e| match &e.body {
            Body::Put { records, .. } => records.iter().map(|r| r.key.clone()).collect(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(keys, vec![vec!["a", "b", "c"]]);
}

// ---- prototype rows ----

#[test]
fn a_prototype_set_gets_a_fresh_version_from_this_node_and_is_not_republished() {
    let mut n = up_node(1, 1, at(0));
    deliver(&mut n, at(10), &set_msg("k", "one"));
    let out = drain(&mut n);
    assert!(published(&out).is_empty(), "{out:?}");
    assert_eq!(
        applied(&out),
        vec![Applied {
            key: "k".into(),
            entry: entry(10, 1, Some("one")),
            local: false
        }]
    );
    deliver(&mut n, at(10), &set_msg("k", "two"));
    assert_eq!(value(&n, "k"), Some(&b"two"[..]), "a later set overwrites");
    assert!(n.entry("k").unwrap().version > version(10, 1));
    assert_eq!((n.stats().in_set, n.stats().entries_applied), (2, 2));
}

#[test]
fn a_prototype_set_overwrites_a_dkv_write() {
    let mut n = up_node(1, 1, at(0));
    deliver(
        &mut n,
        at(10),
        &put(2, vec![record("k", entry(10, 2, Some("dkv")))]),
    );
    deliver(&mut n, at(10), &set_msg("k", "proto"));
    assert_eq!(value(&n, "k"), Some(&b"proto"[..]));
}

#[test]
fn a_question_is_answered_with_a_live_non_empty_value_only() {
    let mut n = holding();
    for key in ["a", "empty", "gone", "missing"] {
        deliver(&mut n, at(2), &question(OTHER, key));
    }
    assert_eq!(published(&drain(&mut n)), vec![answer(OTHER, "a", "1")]);
    assert_eq!((n.stats().in_question, n.stats().out_answer), (4, 1));
}

#[test]
fn a_list_is_answered_with_live_keys_never_deleted_ones() {
    let mut n = up_node(1, 1, at(0));
    deliver(&mut n, at(1), &Message::List { asker: OTHER });
    assert_eq!(
        published(&drain(&mut n)),
        vec![Message::ListAnswer {
            asker: OTHER,
            keys: vec![]
        }]
    );
    let mut n = holding();
    deliver(&mut n, at(2), &Message::List { asker: OTHER });
    let msgs = published(&drain(&mut n));
    let [Message::ListAnswer { asker, keys }] = &msgs[..] else {
        panic!("{msgs:?}");
    };
    let mut keys = keys.clone();
    keys.sort();
    assert_eq!((*asker, keys), (OTHER, vec!["a".into(), "empty".into()]));
}

#[test]
fn question_and_list_from_a_node_known_by_its_hello_are_ignored_and_counted() {
    let mut n = holding();
    n.handle_beacon(at(2), ip(3), &hello(3, 3));
    drain(&mut n);
    deliver(&mut n, at(3), &question(id(3), "a"));
    deliver(&mut n, at(3), &Message::List { asker: id(3) });
    assert!(legacy(&drain(&mut n)).is_empty());
    let s = n.stats();
    assert_eq!(
        (s.drop_legacy_from_dkv, s.in_question, s.in_list),
        (2, 0, 0)
    );
    deliver(&mut n, at(4), &question(OTHER, "a"));
    assert_eq!(published(&drain(&mut n)), vec![answer(OTHER, "a", "1")]);
}

#[test]
fn question_and_list_from_a_node_known_by_its_dkv2_messages_are_ignored() {
    let mut n = holding(); // node 2 sent the put that filled it, but never a hello
    assert_eq!(n.peer_id(addr(2, 2)), None);
    deliver(&mut n, at(3), &question(id(2), "a"));
    deliver(&mut n, at(3), &Message::List { asker: id(2) });
    assert!(published(&drain(&mut n)).is_empty());
    assert_eq!(n.stats().drop_legacy_from_dkv, 2);
}

#[test]
fn an_answer_is_stored_unversioned() {
    let mut n = up_node(1, 1, at(0));
    deliver(&mut n, at(1), &answer(id(1), "k", "v"));
    assert_eq!(
        n.entry("k"),
        Some(Entry {
            version: Version::UNVERSIONED,
            value: Some(bytes("v"))
        })
    );
    assert_eq!(n.stats().in_answer, 1);
}

#[test]
fn an_answer_loses_to_any_versioned_entry() {
    let mut n = up_node(1, 1, at(0));
    let ancient = entry(-1_000_000_000, 2, Some("old dkv write"));
    deliver(&mut n, at(1), &put(2, vec![record("k", ancient.clone())]));
    deliver(&mut n, at(2), &answer(id(1), "k", "answer"));
    assert_eq!(n.entry("k"), Some(ancient));
    assert_eq!(n.stats().entries_stale, 1);
    // And the other way round: a versioned write replaces an answer.
    deliver(&mut n, at(3), &answer(id(1), "j", "answer"));
    deliver(
        &mut n,
        at(4),
        &put(2, vec![record("j", entry(-1_000_000_000, 2, None))]),
    );
    assert!(n.entry("j").unwrap().is_tombstone());
}

#[test]
fn between_two_answers_the_larger_value_wins_whatever_their_order() {
    let mut n = up_node(1, 1, at(0));
    deliver(&mut n, at(1), &answer(id(1), "k", "b"));
    deliver(&mut n, at(2), &answer(id(1), "k", "a"));
    assert_eq!(value(&n, "k"), Some(&b"b"[..]));
    deliver(&mut n, at(3), &answer(id(1), "k", "c"));
    assert_eq!(value(&n, "k"), Some(&b"c"[..]));
}

#[test]
fn an_answer_for_another_node_is_dropped_and_counted() {
    let mut n = up_node(1, 1, at(0));
    deliver(&mut n, at(1), &answer(OTHER, "k", "v"));
    assert_eq!(n.entry("k"), None);
    assert!(drain(&mut n).is_empty());
    assert_eq!(
        (n.stats().drop_answer_not_ours, n.stats().in_answer),
        (1, 0)
    );
}

#[test]
fn a_list_answer_for_another_node_is_dropped_and_counted() {
    let mut n = with_prototype_peer();
    n.handle_timeout(at(2_000));
    drain(&mut n);
    assert_eq!(
        n.bootstrap().phase,
        BootstrapPhase::Settling,
        "still listening"
    );
    let stray = Message::ListAnswer {
        asker: OTHER,
        keys: vec!["k".into()],
    };
    deliver(&mut n, at(2_001), &stray);
    assert!(
        drain(&mut n).is_empty(),
        "no question for someone else's list"
    );
    assert_eq!(n.stats().drop_list_answer_not_ours, 1);
    assert_eq!(n.bootstrap().listed, 0);
    assert_eq!(n.bootstrap().phase, BootstrapPhase::Settling);
}

#[test]
fn a_list_answer_while_bootstrapping_asks_for_the_keys_not_held() {
    let mut n = with_prototype_peer();
    deliver(
        &mut n,
        at(1),
        &put(
            2,
            vec![
                record("held", entry(1, 2, Some("x"))),
                record("deleted", entry(1, 2, None)),
            ],
        ),
    );
    n.handle_timeout(at(2_000));
    assert_eq!(
        legacy(&drain(&mut n)),
        vec![Message::List { asker: id(1) }],
        "a prototype peer is there when the delay ends"
    );
    let ours = Message::ListAnswer {
        asker: id(1),
        keys: vec!["held".into(), "new".into(), "deleted".into()],
    };
    deliver(&mut n, at(2_001), &ours);
    assert_eq!(legacy(&drain(&mut n)), vec![question(id(1), "new")]);
    deliver(&mut n, at(2_002), &answer(id(1), "new", "v"));
    assert_eq!(value(&n, "new"), Some(&b"v"[..]));
    assert_eq!(n.stats().bootstrap_keys_received, 1);
}

#[test]
fn a_list_answer_while_not_bootstrapping_is_ignored() {
    let mut n = node(1, 1);
    let ours = Message::ListAnswer {
        asker: id(1),
        keys: vec!["k".into()],
    };
    deliver(&mut n, at(0), &ours);
    assert!(drain(&mut n).is_empty());
    assert_eq!(n.bootstrap().phase, BootstrapPhase::Idle);
    assert_eq!(n.stats().in_list_answer, 1);
}

#[test]
fn without_prototype_peers_no_list_is_published() {
    let mut n = up_node(1, 1, at(0));
    n.handle_beacon(at(0), ip(2), &hello(2, 2));
    n.handle_timeout(at(2_000));
    assert!(legacy(&drain(&mut n)).is_empty());
    assert_eq!(n.stats().out_list, 0);
}

// ---- dkv/2 rows ----

#[test]
fn a_put_applies_each_record_by_the_merge_rule_and_reports_the_winners_in_order() {
    let mut n = up_node(1, 1, at(0));
    deliver(
        &mut n,
        at(1),
        &put(2, vec![record("k", entry(10, 2, Some("mid")))]),
    );
    drain(&mut n);
    deliver(
        &mut n,
        at(2),
        &put(
            3,
            vec![
                record("k", entry(5, 3, Some("older"))),
                record("j", entry(1, 3, Some("new key"))),
                record("k", entry(10, 3, Some("same ms, higher id"))),
                record("k", entry(10, 2, Some("mid"))),
            ],
        ),
    );
    let out = drain(&mut n);
    assert!(
        published(&out).is_empty(),
        "a put is not republished: {out:?}"
    );
    let won: Vec<(String, Entry)> = applied(&out)
        .into_iter()
        .map(|a| (a.key, a.entry))
        .collect();
    assert_eq!(
        won,
        vec![
            ("j".into(), entry(1, 3, Some("new key"))),
            ("k".into(), entry(10, 3, Some("same ms, higher id"))),
        ]
    );
    let s = n.stats();
    assert_eq!((s.in_put, s.entries_applied, s.entries_stale), (2, 3, 2));
}

#[test]
fn a_put_with_echo_makes_the_following_prototype_copy_ignored() {
    let mut n = up_node(1, 1, at(0));
    let echo = |records| {
        to_all(
            2,
            Body::Put {
                echo: true,
                records,
            },
        )
    };
    deliver(
        &mut n,
        at(1),
        &echo(vec![
            record("k", entry(1, 2, Some("v"))),
            record("d", entry(1, 2, None)),
        ]),
    );
    deliver(&mut n, at(1), &set_msg("k", "v"));
    deliver(&mut n, at(1), &set_msg("d", ""));
    assert_eq!(
        n.entry("k"),
        Some(entry(1, 2, Some("v"))),
        "not re-versioned"
    );
    assert!(n.entry("d").unwrap().is_tombstone());
    assert_eq!(n.stats().echoes_ignored, 2);
    // Each record expects one copy: a second identical set is a prototype's write.
    deliver(&mut n, at(2), &set_msg("k", "v"));
    assert_eq!(n.entry("k").unwrap().version.node, id(1));
    assert_eq!(n.stats().echoes_ignored, 2);
}

#[test]
fn without_echo_the_same_set_after_a_put_is_a_prototype_write() {
    let mut n = up_node(1, 1, at(0));
    deliver(
        &mut n,
        at(1),
        &put(2, vec![record("k", entry(1, 2, Some("v")))]),
    );
    deliver(&mut n, at(1), &set_msg("k", "v"));
    assert_eq!(n.entry("k").unwrap().version.node, id(1));
    assert_eq!(n.stats().echoes_ignored, 0);
}

#[test]
fn an_ask_is_answered_with_a_push_of_the_entry_tombstones_included() {
    let mut n = holding();
    for key in ["a", "gone", "missing"] {
        deliver(&mut n, at(2), &to_all(3, Body::Ask { key: key.into() }));
    }
    assert_eq!(
        published(&drain(&mut n)),
        vec![
            to_one(
                1,
                3,
                Body::Push {
                    request: 0,
                    records: vec![record("a", entry(1, 2, Some("1")))],
                    more: None
                }
            ),
            to_one(
                1,
                3,
                Body::Push {
                    request: 0,
                    records: vec![record("gone", entry(1, 2, None))],
                    more: None
                }
            ),
        ]
    );
    assert_eq!(n.stats().in_ask, 3);
}

#[test]
fn a_push_applies_its_records_by_the_merge_rule() {
    let mut n = holding();
    let push = |records| {
        to_one(
            3,
            1,
            Body::Push {
                request: 0,
                records,
                more: None,
            },
        )
    };
    deliver(
        &mut n,
        at(2),
        &push(vec![
            record("a", entry(0, 3, Some("older"))),
            record("gone", entry(2, 3, Some("back"))),
            record("new", entry(2, 3, None)),
        ]),
    );
    assert_eq!(value(&n, "a"), Some(&b"1"[..]));
    assert_eq!(value(&n, "gone"), Some(&b"back"[..]));
    assert!(n.entry("new").unwrap().is_tombstone());
    assert!(published(&drain(&mut n)).is_empty());
    assert_eq!((n.stats().in_push, n.stats().entries_stale), (1, 1));
}

fn sync(from: u8, session: u64, steps: Vec<Step>) -> Message {
    to_one(
        from,
        1,
        Body::Sync {
            session,
            initiator: true,
            last: false,
            steps,
        },
    )
}

#[test]
fn a_sync_that_matches_the_whole_store_gets_one_empty_last_reply() {
    let mut n = holding();
    let steps = vec![Step::Fingerprint {
        range: Range::ROOT,
        summary: n.summary(),
    }];
    deliver(&mut n, at(2), &sync(3, 42, steps));
    assert_eq!(
        published(&drain(&mut n)),
        vec![to_one(
            1,
            3,
            Body::Sync {
                session: 42,
                initiator: false,
                last: true,
                steps: vec![]
            }
        )]
    );
    assert_eq!(n.stats().in_sync, 1);
}

#[test]
fn a_sync_that_differs_in_a_small_range_gets_the_items_listed() {
    let mut n = holding();
    let mut summary = n.summary();
    summary.fingerprint ^= 1;
    deliver(
        &mut n,
        at(2),
        &sync(
            3,
            42,
            vec![Step::Fingerprint {
                range: Range::ROOT,
                summary,
            }],
        ),
    );
    let msgs = dkv(&drain(&mut n));
    let [Envelope {
        to,
        body:
            Body::Sync {
                session: 42,
                initiator: false,
                last: true,
                steps,
            },
        ..
    }] = &msgs[..]
    else {
        panic!("{msgs:?}");
    };
    assert_eq!(*to, Some(id(3)));
    let [Step::Items {
        range: Range::ROOT,
        items,
    }] = &steps[..]
    else {
        panic!("{steps:?}");
    };
    let mut listed: Vec<(u64, Version)> = items.iter().map(|i| (i.key_hash, i.version)).collect();
    listed.sort();
    let mut want: Vec<(u64, Version)> = ["a", "empty", "gone"]
        .iter()
        .map(|k| (key_hash(k), version(1, 2)))
        .collect();
    want.sort();
    assert_eq!(listed, want, "tombstones are listed too");
}

#[test]
fn a_sync_from_an_empty_peer_gets_our_summary_back_so_it_pulls() {
    let mut n = holding();
    let empty = Step::Fingerprint {
        range: Range::ROOT,
        summary: Default::default(),
    };
    deliver(&mut n, at(2), &sync(3, 7, vec![empty]));
    assert_eq!(
        published(&drain(&mut n)),
        vec![to_one(
            1,
            3,
            Body::Sync {
                session: 7,
                initiator: false,
                last: true,
                steps: vec![Step::Fingerprint {
                    range: Range::ROOT,
                    summary: n.summary()
                }]
            }
        )]
    );
}

#[test]
fn a_pull_is_answered_with_a_page_of_the_range_after_the_given_hash() {
    let mut n = holding();
    deliver(
        &mut n,
        at(2),
        &to_one(
            3,
            1,
            Body::Pull {
                request: 9,
                range: Range::ROOT,
                after: None,
            },
        ),
    );
    let msgs = dkv(&drain(&mut n));
    let [Envelope {
        to: Some(to),
        body:
            Body::Push {
                request: 9,
                records,
                more: None,
            },
        ..
    }] = &msgs[..]
    else {
        panic!("{msgs:?}");
    };
    assert_eq!(*to, id(3));
    let hashes: Vec<u64> = records.iter().map(|r| key_hash(&r.key)).collect();
    assert!(hashes.windows(2).all(|w| w[0] < w[1]), "in hash order");
    assert_eq!(records.len(), 3, "tombstones included");
    let after = hashes[0];
    deliver(
        &mut n,
        at(3),
        &to_one(
            3,
            1,
            Body::Pull {
                request: 10,
                range: Range::ROOT,
                after: Some(after),
            },
        ),
    );
    let msgs = dkv(&drain(&mut n));
    let Body::Push {
        request: 10,
        records: rest,
        more: None,
    } = &msgs[0].body
    else {
        panic!("{msgs:?}");
    };
    assert_eq!(rest, &records[1..]);
    assert_eq!(n.stats().in_pull, 2);
}

#[test]
fn a_fetch_is_answered_with_the_entries_of_the_hashes_held() {
    let mut n = holding();
    let fetch = Body::Fetch {
        request: 11,
        key_hashes: vec![key_hash("gone"), key_hash("missing")],
    };
    deliver(&mut n, at(2), &to_one(3, 1, fetch));
    assert_eq!(
        published(&drain(&mut n)),
        vec![to_one(
            1,
            3,
            Body::Push {
                request: 11,
                records: vec![record("gone", entry(1, 2, None))],
                more: None
            }
        )]
    );
}

#[test]
fn dkv2_messages_for_another_node_or_from_this_node_are_dropped_and_counted() {
    let mut n = up_node(1, 1, at(0));
    let stray_push = to_one(
        3,
        4,
        Body::Push {
            request: 0,
            records: vec![record("k", entry(1, 3, Some("v")))],
            more: None,
        },
    );
    deliver(&mut n, at(1), &stray_push);
    deliver(
        &mut n,
        at(1),
        &put(1, vec![record("j", entry(1, 1, Some("v")))]),
    );
    deliver(&mut n, at(1), &to_one(4, 4, Body::Ask { key: "x".into() }));
    assert_eq!((n.entry("k"), n.entry("j")), (None, None));
    assert!(drain(&mut n).is_empty());
    assert_eq!(
        (
            n.stats().drop_not_ours,
            n.stats().in_push + n.stats().in_put
        ),
        (3, 0)
    );
}

// ---- survival and counting ----

#[test]
fn malformed_messages_are_counted_and_leave_the_state_untouched() {
    let mut n = holding();
    let before: Vec<(String, Entry)> = n.entries().map(|(k, e)| (k.into(), e.clone())).collect();
    let deadline = n.poll_timeout();
    let bad_body = [&b"dkv2.all"[..], b"\x01\x01"];
    let old_version = [&b"dkv2.all"[..], b"\x00\x01abcdefgh"];
    let garbage: Vec<Vec<&[u8]>> = vec![
        vec![],
        vec![b"nope", b"k", b"v"],
        vec![b"question", b"k"],
        vec![b"set", b"k"],
        vec![b"set", b"\xff", b"v"],
        vec![b"set", b"k", b"v", b"extra"],
        bad_body.to_vec(),
        old_version.to_vec(),
    ];
    for frames in &garbage {
        n.handle_message(at(1), frames);
    }
    assert!(drain(&mut n).is_empty());
    let after: Vec<(String, Entry)> = n.entries().map(|(k, e)| (k.into(), e.clone())).collect();
    assert_eq!(after, before);
    assert_eq!(n.poll_timeout(), deadline);
    let s = n.stats();
    assert_eq!(
        (
            s.drop_empty,
            s.drop_unknown_topic,
            s.drop_bad_id,
            s.drop_frame_count,
            s.drop_key_not_utf8,
            s.drop_bad_body,
            s.drop_unknown_version,
        ),
        (1, 1, 1, 2, 1, 1, 1)
    );
    assert_eq!(s.dropped(), 8);
    assert_eq!(
        s.in_set + s.in_question + s.in_put,
        1,
        "only holding()'s put"
    );
}

#[test]
fn traffic_is_counted_by_kind_both_ways() {
    let mut n = with_prototype_peer();
    n.set(at(1), "k".into(), bytes("v"));
    n.get(at(1), "x".into(), None);
    deliver(&mut n, at(1), &Message::List { asker: OTHER });
    deliver(&mut n, at(1), &to_all(3, Body::Ask { key: "k".into() }));
    drain(&mut n);
    let s = n.stats();
    assert_eq!(
        (
            s.out_put,
            s.out_set,
            s.out_ask,
            s.out_question,
            s.out_list_answer,
            s.out_push
        ),
        (1, 1, 1, 1, 1, 1)
    );
    assert_eq!((s.in_list, s.in_ask), (1, 1));
}

#[test]
fn stats_name_every_counter_and_start_at_zero() {
    let n = node(1, 1);
    let names: Vec<&str> = n.stats().iter().map(|(name, _)| name).collect();
    for expected in [
        "in_push",
        "out_sync",
        "drop_clock_ahead",
        "drop_legacy_from_dkv",
        "echoes_ignored",
        "tombstones_collected",
        "sync_sessions_completed",
    ] {
        assert!(names.contains(&expected), "{expected} missing");
    }
    assert!(n.stats().iter().all(|(_, v)| v == 0));
    let mut twice = n.stats();
    let mut one = n.stats();
    one.sets = 2;
    twice.add(&one);
    twice.add(&one);
    assert_eq!(twice.sets, 4);
}

#[test]
fn bytes_of_a_value_are_kept_exactly() {
    let mut n = up_node(1, 1, at(0));
    let v = Bytes::from_static(b"\x00\xff\x00");
    n.set(at(1), "k".into(), v.clone());
    assert_eq!(n.value("k"), Some(&v[..]));
}

#[test]
fn set_all_is_the_same_as_each_set_in_turn() {
    // Enough keys for several warm-ahead groups, a key written twice, a refused
    // key, and a prototype peer so every write also has its echo copy.
    let too_long = "k".repeat(2000);
    let mut writes: Vec<(String, Bytes)> = (0..40)
        .map(|i| (format!("key/{i}"), bytes(&format!("value {i}"))))
        .collect();
    writes.insert(5, ("key/3".into(), bytes("again")));
    writes.insert(9, (too_long, bytes("refused")));
    let (mut one_by_one, mut together) = (with_prototype_peer(), with_prototype_peer());
    for (key, value) in writes.clone() {
        one_by_one.set(at(1), key, value);
    }
    together.set_all(at(1), writes);
    let outputs = drain(&mut together);
    assert_eq!(outputs, drain(&mut one_by_one));
    assert_eq!(dkv(&outputs).len(), 1, "one put carries them all");
    assert_eq!(together.stats(), one_by_one.stats());
    assert_eq!(
        (together.stats().sets, together.stats().writes_refused),
        (41, 1)
    );
    assert_eq!(together.summary(), one_by_one.summary());
    assert_eq!(together.value("key/3"), Some(&b"again"[..]));
}
