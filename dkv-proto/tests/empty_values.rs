//! Empty values (plan chunk J): in dkv/2 an empty value is a value, never a delete.
//! A prototype's `set k ""` is stored as a visible empty value and replicates among
//! dkv nodes; only a delete makes a tombstone. A delete's prototype copy (an empty
//! `set`) is ignored as an echo only when a `put` announced it.

mod support;

use bytes::Bytes;
use dkv_proto::wire::v2::Body;
use dkv_proto::{Message, Node};
use support::*;

fn set_msg(key: &str, value: &str) -> Message {
    Message::Set {
        key: key.into(),
        value: Bytes::copy_from_slice(value.as_bytes()),
    }
}

fn echo_put(from: u8, records: Vec<dkv_proto::Record>) -> Message {
    to_all(
        from,
        Body::Put {
            echo: true,
            records,
        },
    )
}

fn is_visible_empty(n: &Node, key: &str) -> bool {
    n.value(key) == Some(&Bytes::new())
        && n.keys().any(|k| k == key)
        && !n.entry(key).unwrap().is_tombstone()
}

#[test]
fn a_prototype_empty_set_is_a_visible_empty_value() {
    let mut n = up_node(1, 7001, at(0));
    deliver(&mut n, at(1), &set_msg("k", ""));
    assert!(is_visible_empty(&n, "k"));
    let e = n.entry("k").unwrap();
    assert_eq!(e.version.node, id(1), "stamped by this node's clock");
    assert_eq!(n.stats().echoes_ignored, 0);
    assert_eq!(n.len(), 1);
    // A get finds it: a value, empty.
    let get = n.get(at(2), "k".into(), None);
    let done = completions(&drain(&mut n));
    assert_eq!(done.last().unwrap().id, get);
    assert_eq!(done.last().unwrap().value, Some(Bytes::new()));
}

#[test]
fn an_empty_value_replicates_among_dkv_nodes_as_a_value() {
    let mut a = up_node(1, 7001, at(0));
    let mut b = up_node(2, 7002, at(0));
    // A dkv node's own empty set, and a prototype's, reach b through dkv/2.
    a.set(at(1), "mine".into(), Bytes::new());
    deliver(&mut a, at(1), &set_msg("theirs", ""));
    for m in published(&drain(&mut a)) {
        deliver(&mut b, at(2), &m);
    }
    assert!(is_visible_empty(&b, "mine"));
    // The prototype's write is not in a put (it is the prototype's own): it
    // reaches b by reconciliation, as a value.
    let theirs = a.entry("theirs").unwrap().clone();
    deliver(
        &mut b,
        at(3),
        &put(1, vec![record("theirs", theirs.clone())]),
    );
    assert!(is_visible_empty(&b, "theirs"));
    assert_eq!(b.entry("theirs"), Some(theirs.clone()));
    // A late joiner gets the same entry, version and all, from a push.
    let mut c = up_node(3, 7003, at(0));
    deliver(
        &mut c,
        at(4),
        &to_one(
            1,
            3,
            Body::Push {
                request: 0,
                records: vec![record("theirs", theirs.clone())],
                more: None,
            },
        ),
    );
    assert_eq!(c.entry("theirs"), Some(theirs));
    assert!(is_visible_empty(&c, "theirs"));
}

#[test]
fn only_a_delete_makes_a_tombstone_and_its_copy_is_an_echo() {
    let mut n = up_node(1, 7001, at(0));
    deliver(&mut n, at(1), &set_msg("k", ""));
    // Node 2 deletes k: its put (echo) then its prototype copy `set k ""`.
    deliver(
        &mut n,
        at(2),
        &echo_put(2, vec![record("k", entry(10, 2, None))]),
    );
    deliver(&mut n, at(2), &set_msg("k", ""));
    assert!(n.entry("k").unwrap().is_tombstone());
    assert_eq!(n.value("k"), None);
    assert!(n.keys().all(|k| k != "k"));
    assert_eq!(n.stats().echoes_ignored, 1);
    // A prototype's empty set after that is a write again: visible.
    deliver(&mut n, at(3), &set_msg("k", ""));
    assert!(is_visible_empty(&n, "k"));
}

#[test]
fn dkv_answers_prototypes_only_for_non_empty_values_but_lists_empty_ones() {
    let mut n = up_node(1, 7001, at(0));
    n.set(at(1), "empty".into(), Bytes::new());
    drain(&mut n);
    deliver(
        &mut n,
        at(2),
        &Message::Question {
            asker: id(9),
            key: "empty".into(),
        },
    );
    assert!(
        legacy(&drain(&mut n)).is_empty(),
        "the prototype's own rule"
    );
    deliver(&mut n, at(3), &Message::List { asker: id(9) });
    let lists = legacy(&drain(&mut n));
    assert_eq!(
        lists,
        vec![Message::ListAnswer {
            asker: id(9),
            keys: vec!["empty".into()]
        }]
    );
}
