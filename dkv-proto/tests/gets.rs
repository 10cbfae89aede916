//! `get`: local hits (deletes included) at once; a miss asks dkv peers (and
//! prototype ones) and completes on the first entry to arrive or at its timeout;
//! exactly one completion per id.

mod support;

use bytes::Bytes;
use dkv_proto::wire::v2::Body;
use dkv_proto::{GetDone, GetId, Message, Node, Output, Version};
use std::time::Duration;
use support::*;

fn ask(key: &str) -> Message {
    to_all(1, Body::Ask { key: key.into() })
}

fn question(key: &str) -> Message {
    Message::Question {
        asker: id(1),
        key: key.into(),
    }
}

/// Node 1, up, with a get of `k` waiting, outputs drained.
fn waiting() -> (Node, GetId) {
    let mut n = up_node(1, 1, at(0));
    let get = n.get(at(0), "k".into(), None);
    drain(&mut n);
    (n, get)
}

fn only_completion(n: &mut Node) -> GetDone {
    let done = completions(&drain(n));
    assert_eq!(done.len(), 1, "{done:?}");
    done.into_iter().next().unwrap()
}

#[test]
fn a_local_hit_completes_at_once_with_value_and_version_without_asking() {
    let mut n = up_node(1, 1, at(0));
    n.set(at(3), "k".into(), bytes("v"));
    drain(&mut n);
    let get = n.get(at(4), "k".into(), None);
    assert_eq!(
        drain(&mut n),
        vec![Output::GetDone(GetDone {
            id: get,
            key: "k".into(),
            value: Some(bytes("v")),
            version: Some(version(3, 1)),
        })]
    );
    assert_eq!((n.stats().gets_hit, n.pending_gets()), (1, 0));
}

#[test]
fn a_deleted_key_completes_at_once_with_no_value_but_the_deletes_version() {
    let mut n = up_node(1, 1, at(0));
    n.set(at(3), "k".into(), bytes("v"));
    n.delete(at(4), "k".into());
    drain(&mut n);
    let get = n.get(at(5), "k".into(), None);
    assert_eq!(
        drain(&mut n),
        vec![Output::GetDone(GetDone {
            id: get,
            key: "k".into(),
            value: None,
            version: Some(version(4, 1)),
        })],
        "nothing asked: the delete is an answer"
    );
    assert_eq!(n.stats().gets_hit, 1);
}

#[test]
fn a_stored_empty_value_is_a_hit() {
    let mut n = up_node(1, 1, at(0));
    n.set(at(0), "k".into(), Bytes::new());
    drain(&mut n);
    n.get(at(0), "k".into(), None);
    assert_eq!(only_completion(&mut n).value, Some(Bytes::new()));
}

#[test]
fn a_miss_with_no_peers_asks_dkv_nodes_and_prototypes() {
    let mut n = up_node(1, 1, at(0));
    n.get(at(1), "k".into(), None);
    let out = drain(&mut n);
    assert_eq!(published(&out), vec![ask("k"), question("k")]);
    assert!(completions(&out).is_empty());
    assert_eq!(n.pending_gets(), 1);
}

#[test]
fn a_miss_with_only_dkv_peers_asks_dkv_nodes_only() {
    let mut n = up_node(1, 1, at(0));
    n.handle_beacon(at(0), ip(2), &hello(2, 2));
    drain(&mut n);
    n.get(at(1), "k".into(), None);
    assert_eq!(published(&drain(&mut n)), vec![ask("k")]);
}

#[test]
fn a_miss_with_a_prototype_peer_also_asks_prototypes() {
    let mut n = up_node(1, 1, at(0));
    n.handle_beacon(at(0), ip(2), &hello(2, 2));
    n.handle_beacon(at(0), ip(3), b"beacon 3");
    drain(&mut n);
    n.get(at(1), "k".into(), None);
    assert_eq!(published(&drain(&mut n)), vec![ask("k"), question("k")]);
}

#[test]
fn a_second_get_of_a_key_already_asked_for_asks_nothing_more() {
    let (mut n, _) = waiting();
    n.get(at(1), "k".into(), None);
    assert!(published(&drain(&mut n)).is_empty());
    assert_eq!(n.pending_gets(), 2);
}

#[test]
fn a_push_in_reply_completes_the_get_with_its_version_and_is_kept() {
    let (mut n, get) = waiting();
    let e = entry(-5, 2, Some("v"));
    let push = Body::Push {
        request: 0,
        records: vec![record("k", e.clone())],
        more: None,
    };
    deliver(&mut n, at(20), &to_one(2, 1, push));
    let done = only_completion(&mut n);
    assert_eq!(
        (done.id, done.value, done.version),
        (get, e.value.clone(), Some(e.version))
    );
    assert_eq!(n.entry("k"), Some(e), "cached");
    assert_eq!((n.stats().gets_answered, n.pending_gets()), (1, 0));
}

#[test]
fn a_pushed_delete_completes_the_get_with_no_value_but_a_version() {
    let (mut n, get) = waiting();
    let push = Body::Push {
        request: 0,
        records: vec![record("k", entry(-5, 2, None))],
        more: None,
    };
    deliver(&mut n, at(20), &to_one(2, 1, push));
    let done = only_completion(&mut n);
    assert_eq!(
        (done.id, done.value, done.version),
        (get, None, Some(version(-5, 2)))
    );
}

#[test]
fn a_put_arriving_while_waiting_completes_the_get() {
    let (mut n, get) = waiting();
    deliver(
        &mut n,
        at(20),
        &put(2, vec![record("k", entry(1, 2, Some("p")))]),
    );
    let done = only_completion(&mut n);
    assert_eq!(
        (done.id, done.value, done.version),
        (get, Some(bytes("p")), Some(version(1, 2)))
    );
}

#[test]
fn a_prototype_answer_completes_the_get_unversioned() {
    let (mut n, get) = waiting();
    let answer = Message::Answer {
        asker: id(1),
        key: "k".into(),
        value: bytes("a"),
    };
    deliver(&mut n, at(20), &answer);
    let done = only_completion(&mut n);
    assert_eq!(
        (done.id, done.value, done.version),
        (get, Some(bytes("a")), Some(Version::UNVERSIONED))
    );
}

#[test]
fn a_prototype_set_completes_the_get_with_the_version_given_here() {
    let (mut n, get) = waiting();
    let set = Message::Set {
        key: "k".into(),
        value: bytes("s"),
    };
    deliver(&mut n, at(50), &set);
    let done = only_completion(&mut n);
    assert_eq!(
        (done.id, done.value, done.version),
        (get, Some(bytes("s")), Some(version(50, 1)))
    );
}

#[test]
fn a_local_write_completes_the_get() {
    let (mut n, get) = waiting();
    n.delete(at(30), "k".into());
    let done = only_completion(&mut n);
    assert_eq!(
        (done.id, done.value, done.version),
        (get, None, Some(version(30, 1)))
    );
}

#[test]
fn an_entry_refused_for_its_clock_does_not_complete_the_get() {
    let (mut n, get) = waiting();
    deliver(
        &mut n,
        at(20),
        &put(2, vec![record("k", entry(60_000, 2, Some("future")))]),
    );
    assert!(completions(&drain(&mut n)).is_empty());
    n.handle_timeout(at(100));
    let done = only_completion(&mut n);
    assert_eq!((done.id, done.value, done.version), (get, None, None));
}

#[test]
fn an_unanswered_get_completes_empty_at_the_default_100ms_timeout() {
    let mut n = up_node(1, 1, at(0));
    let get = n.get(at(10), "k".into(), None);
    drain(&mut n);
    assert!(n.poll_timeout().unwrap() <= at(110));
    n.handle_timeout(at(109));
    assert!(completions(&drain(&mut n)).is_empty());
    n.handle_timeout(at(110));
    let done = only_completion(&mut n);
    assert_eq!((done.id, done.value, done.version), (get, None, None));
    assert_eq!((n.stats().gets_timed_out, n.pending_gets()), (1, 0));
}

#[test]
fn a_get_may_carry_its_own_timeout() {
    let mut n = up_node(1, 1, at(0));
    n.get(at(0), "k".into(), Some(Duration::from_millis(2_500)));
    n.handle_timeout(at(2_499));
    assert!(completions(&drain(&mut n)).is_empty());
    n.handle_timeout(at(2_500));
    assert_eq!(completions(&drain(&mut n)).len(), 1);
}

#[test]
fn every_get_waiting_on_a_key_completes_once_with_its_own_id() {
    let mut n = up_node(1, 1, at(0));
    let a = n.get(at(0), "k".into(), None);
    let b = n.get(at(5), "k".into(), None);
    let c = n.get(at(5), "other".into(), None);
    assert!(a != b && b != c && a != c);
    drain(&mut n);
    deliver(
        &mut n,
        at(10),
        &put(2, vec![record("k", entry(1, 2, Some("v")))]),
    );
    let ids: Vec<GetId> = completions(&drain(&mut n)).iter().map(|d| d.id).collect();
    assert_eq!(ids, vec![a, b]);
    deliver(
        &mut n,
        at(11),
        &put(2, vec![record("k", entry(2, 2, Some("w")))]),
    );
    n.handle_timeout(at(1_000));
    let ids: Vec<GetId> = completions(&drain(&mut n)).iter().map(|d| d.id).collect();
    assert_eq!(ids, vec![c], "a and b never complete twice");
}

#[test]
fn shutdown_completes_every_pending_get_with_what_is_held() {
    let mut n = up_node(1, 1, at(0));
    let a = n.get(at(0), "k".into(), None);
    let b = n.get(at(0), "j".into(), Some(Duration::MAX));
    drain(&mut n);
    n.shutdown(at(1));
    let mut done: Vec<(GetId, Option<Bytes>)> = completions(&drain(&mut n))
        .into_iter()
        .map(|d| (d.id, d.value))
        .collect();
    done.sort();
    assert_eq!(done, vec![(a, None), (b, None)]);
    assert_eq!(n.pending_gets(), 0);
    n.handle_timeout(at(10_000));
    assert!(completions(&drain(&mut n)).is_empty(), "never again");
}

#[test]
fn an_enormous_timeout_is_accepted_and_the_get_still_completes_on_arrival() {
    let mut n = up_node(1, 1, at(0));
    let get = n.get(at(0), "k".into(), Some(Duration::MAX));
    assert!(n.poll_timeout().is_some());
    deliver(
        &mut n,
        at(5),
        &put(2, vec![record("k", entry(1, 2, Some("v")))]),
    );
    let done = only_completion(&mut n);
    assert_eq!((done.id, done.value), (get, Some(bytes("v"))));
}
