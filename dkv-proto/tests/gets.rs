//! `get`: local hits at once, remote questions with a timeout, one completion per id.

mod support;

use bytes::Bytes;
use dkv_proto::{GetDone, Message, Output};
use std::time::Duration;
use support::*;

fn answer(key: &str, value: &[u8]) -> Vec<Bytes> {
    Message::Answer {
        asker: id(1),
        key: key.into(),
        value: Bytes::copy_from_slice(value),
    }
    .encode()
}

#[test]
fn local_hit_completes_at_once_without_asking() {
    let mut n = up_node(1, 1, at(0));
    n.set(at(0), "k".into(), Bytes::from_static(b"v"));
    drain(&mut n);
    let get = n.get(at(1), "k".into(), None);
    let out = drain(&mut n);
    assert_eq!(
        out,
        vec![Output::GetDone(GetDone {
            id: get,
            key: "k".into(),
            value: Some(Bytes::from_static(b"v"))
        })]
    );
    assert_eq!(n.stats().gets_hit, 1);
}

#[test]
fn miss_publishes_a_question_from_our_id() {
    let mut n = up_node(1, 1, at(0));
    n.get(at(1), "k".into(), None);
    let out = drain(&mut n);
    assert_eq!(
        published(&out),
        vec![Message::Question {
            asker: id(1),
            key: "k".into()
        }]
    );
    assert!(completions(&out).is_empty());
    assert_eq!(n.pending_gets(), 1);
}

#[test]
fn miss_completes_on_the_first_answer_and_caches_it() {
    let mut n = up_node(1, 1, at(0));
    let get = n.get(at(1), "k".into(), None);
    drain(&mut n);
    n.handle_message(at(20), &answer("k", b"v"));
    let done = completions(&drain(&mut n));
    assert_eq!(done.len(), 1);
    assert_eq!(
        (done[0].id, done[0].value.as_deref()),
        (get, Some(&b"v"[..]))
    );
    assert_eq!(n.value("k").map(|v| &v[..]), Some(&b"v"[..]), "cached");
    n.handle_message(at(21), &answer("k", b"w"));
    assert!(completions(&drain(&mut n)).is_empty(), "completes once");
    assert_eq!(
        n.value("k").map(|v| &v[..]),
        Some(&b"w"[..]),
        "last answer wins"
    );
    assert_eq!(n.stats().gets_answered, 1);
}

#[test]
fn unanswered_get_completes_empty_at_the_default_100ms_timeout() {
    let mut n = up_node(1, 1, at(0));
    let get = n.get(at(10), "k".into(), None);
    drain(&mut n);
    assert!(n.poll_timeout().unwrap() <= at(110));
    n.handle_timeout(at(109));
    assert!(completions(&drain(&mut n)).is_empty());
    n.handle_timeout(at(110));
    let done = completions(&drain(&mut n));
    assert_eq!(done.len(), 1);
    assert_eq!((done[0].id, done[0].value.clone()), (get, None));
    assert_eq!(n.stats().gets_timed_out, 1);
    assert_eq!(n.pending_gets(), 0);
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
fn a_set_arriving_while_waiting_completes_the_get_with_its_value() {
    let mut n = up_node(1, 1, at(0));
    let get = n.get(at(0), "k".into(), None);
    drain(&mut n);
    let set = Message::Set {
        key: "k".into(),
        value: Bytes::from_static(b"s"),
    };
    n.handle_message(at(50), &set.encode());
    let done = completions(&drain(&mut n));
    assert_eq!(
        (done[0].id, done[0].value.as_deref()),
        (get, Some(&b"s"[..]))
    );
}

#[test]
fn every_get_waiting_on_a_key_completes_once_with_its_own_id() {
    let mut n = up_node(1, 1, at(0));
    let a = n.get(at(0), "k".into(), None);
    let b = n.get(at(5), "k".into(), None);
    let c = n.get(at(5), "other".into(), None);
    assert!(a != b && b != c);
    drain(&mut n);
    n.handle_message(at(10), &answer("k", b"v"));
    let ids: Vec<_> = completions(&drain(&mut n)).iter().map(|d| d.id).collect();
    assert_eq!(ids, vec![a, b]);
    n.handle_timeout(at(1_000));
    let ids: Vec<_> = completions(&drain(&mut n)).iter().map(|d| d.id).collect();
    assert_eq!(ids, vec![c]);
}

#[test]
fn shutdown_completes_pending_gets() {
    let mut n = up_node(1, 1, at(0));
    let get = n.get(at(0), "k".into(), None);
    drain(&mut n);
    n.shutdown(at(1));
    let done = completions(&drain(&mut n));
    assert_eq!(done.len(), 1);
    assert_eq!((done[0].id, done[0].value.clone()), (get, None));
    assert_eq!(n.pending_gets(), 0);
}

#[test]
fn a_stored_empty_value_is_a_local_hit() {
    let mut n = up_node(1, 1, at(0));
    n.set(at(0), "k".into(), Bytes::new());
    drain(&mut n);
    n.get(at(0), "k".into(), None);
    let done = completions(&drain(&mut n));
    assert_eq!(done[0].value, Some(Bytes::new()));
}

#[test]
fn an_enormous_timeout_is_accepted_and_the_get_still_completes_on_an_answer() {
    let mut n = up_node(1, 1, at(0));
    let get = n.get(at(0), "k".into(), Some(Duration::MAX));
    assert!(n.poll_timeout().is_some());
    n.handle_message(at(5), &answer("k", b"v"));
    let done = completions(&drain(&mut n));
    assert_eq!(
        (done[0].id, done[0].value.as_deref()),
        (get, Some(&b"v"[..]))
    );
}

#[test]
fn enormous_configured_timings_never_panic() {
    let mut config = dkv_proto::Config::new(id(1), 1);
    let t = &mut config.timings;
    t.beacon_interval = Duration::MAX;
    t.peer_timeout = Duration::MAX;
    t.get_timeout = Duration::MAX;
    t.bootstrap_delay = Duration::MAX;
    t.bootstrap_settle = Duration::MAX;
    t.bootstrap_question_timeout = Duration::MAX;
    let mut n = dkv_proto::Node::new(config);
    n.handle_net_up(at(0), ip(1));
    n.handle_beacon(at(0), ip(2), b"beacon 9");
    n.get(at(0), "k".into(), None);
    n.handle_timeout(at(10_000));
    assert_eq!(n.peers().count(), 1);
    assert_eq!(n.pending_gets(), 1);
    assert!(n.poll_timeout().unwrap() > at(10_000));
}
