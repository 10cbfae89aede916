//! The data plane: what a node does on each row of the message table, and on
//! messages it must survive.

mod support;

use bytes::Bytes;
use dkv_proto::{BootstrapPhase, Message, NodeId};
use support::*;

const OTHER: NodeId = NodeId(*b"other id");

fn set_frames(key: &str, value: &[u8]) -> Vec<Bytes> {
    Message::Set {
        key: key.into(),
        value: Bytes::copy_from_slice(value),
    }
    .encode()
}

#[test]
fn local_set_stores_and_publishes_set() {
    let mut n = up_node(1, 1, at(0));
    n.set(at(1), "k".into(), Bytes::from_static(b"v"));
    assert_eq!(
        published(&drain(&mut n)),
        vec![Message::Set {
            key: "k".into(),
            value: Bytes::from_static(b"v")
        }]
    );
    assert_eq!(n.value("k").map(|v| &v[..]), Some(&b"v"[..]));
}

#[test]
fn received_set_stores_and_overwrites() {
    let mut n = up_node(1, 1, at(0));
    n.handle_message(at(1), &set_frames("k", b"one"));
    n.handle_message(at(2), &set_frames("k", b"two"));
    assert_eq!(n.value("k").map(|v| &v[..]), Some(&b"two"[..]));
    assert!(
        drain(&mut n).is_empty(),
        "a received set is not republished"
    );
    assert_eq!(n.stats().in_set, 2);
}

#[test]
fn question_for_a_held_non_empty_value_is_answered_to_the_asker() {
    let mut n = up_node(1, 1, at(0));
    n.handle_message(at(1), &set_frames("k", b"v"));
    let question = Message::Question {
        asker: OTHER,
        key: "k".into(),
    };
    n.handle_message(at(2), &question.encode());
    assert_eq!(
        published(&drain(&mut n)),
        vec![Message::Answer {
            asker: OTHER,
            key: "k".into(),
            value: Bytes::from_static(b"v")
        }]
    );
}

#[test]
fn question_for_a_missing_or_empty_value_gets_no_answer() {
    let mut n = up_node(1, 1, at(0));
    n.handle_message(at(1), &set_frames("empty", b""));
    for key in ["missing", "empty"] {
        let q = Message::Question {
            asker: OTHER,
            key: key.into(),
        };
        n.handle_message(at(2), &q.encode());
    }
    assert!(drain(&mut n).is_empty());
    assert_eq!(n.stats().in_question, 2);
}

#[test]
fn answer_to_us_is_stored() {
    let mut n = up_node(1, 1, at(0));
    let answer = Message::Answer {
        asker: id(1),
        key: "k".into(),
        value: Bytes::from_static(b"v"),
    };
    n.handle_message(at(1), &answer.encode());
    assert_eq!(n.value("k").map(|v| &v[..]), Some(&b"v"[..]));
}

#[test]
fn answer_to_another_node_is_dropped() {
    let mut n = up_node(1, 1, at(0));
    let answer = Message::Answer {
        asker: OTHER,
        key: "k".into(),
        value: Bytes::from_static(b"v"),
    };
    n.handle_message(at(1), &answer.encode());
    assert_eq!(n.value("k"), None);
    assert_eq!(n.stats().drop_answer_not_ours, 1);
}

#[test]
fn list_is_answered_with_every_key_held() {
    let mut n = up_node(1, 1, at(0));
    n.handle_message(at(1), &Message::List { asker: OTHER }.encode());
    assert_eq!(
        published(&drain(&mut n)),
        vec![Message::ListAnswer {
            asker: OTHER,
            keys: vec![]
        }]
    );
    n.handle_message(at(2), &set_frames("b", b"2"));
    n.handle_message(at(2), &set_frames("a", b""));
    n.handle_message(at(3), &Message::List { asker: OTHER }.encode());
    assert_eq!(
        published(&drain(&mut n)),
        vec![Message::ListAnswer {
            asker: OTHER,
            keys: vec!["a".into(), "b".into()]
        }]
    );
}

#[test]
fn list_answer_to_another_node_is_ignored_not_fatal() {
    let mut n = up_node(1, 1, at(0));
    n.handle_timeout(at(2_000));
    drain(&mut n);
    assert_eq!(n.bootstrap().phase, BootstrapPhase::Settling);
    let stray = Message::ListAnswer {
        asker: OTHER,
        keys: vec!["k".into()],
    };
    n.handle_message(at(2_001), &stray.encode());
    assert!(
        drain(&mut n).is_empty(),
        "no question for someone else's list"
    );
    assert_eq!(n.stats().drop_list_answer_not_ours, 1);
    assert_eq!(n.bootstrap().listed, 0);
}

#[test]
fn list_answer_while_not_bootstrapping_is_ignored() {
    let mut n = node(1, 1);
    let ours = Message::ListAnswer {
        asker: id(1),
        keys: vec!["k".into()],
    };
    n.handle_message(at(0), &ours.encode());
    assert!(drain(&mut n).is_empty());
    assert_eq!(n.bootstrap().phase, BootstrapPhase::Idle);
}

#[test]
fn malformed_messages_are_counted_and_leave_the_state_untouched() {
    let mut n = up_node(1, 1, at(0));
    n.set(at(0), "k".into(), Bytes::from_static(b"v"));
    drain(&mut n);
    let before: Vec<(String, Bytes)> = n.entries().map(|(k, v)| (k.into(), v.clone())).collect();
    let deadline = n.poll_timeout();
    let garbage: Vec<Vec<&[u8]>> = vec![
        vec![],
        vec![b"nope", b"k", b"v"],
        vec![b"question", b"k"],
        vec![b"set", b"k"],
        vec![b"set", b"\xff", b"v"],
        vec![b"set", b"k", b"v", b"extra"],
    ];
    for frames in &garbage {
        n.handle_message(at(1), frames);
    }
    assert!(drain(&mut n).is_empty());
    let after: Vec<(String, Bytes)> = n.entries().map(|(k, v)| (k.into(), v.clone())).collect();
    assert_eq!(after, before);
    assert_eq!(n.poll_timeout(), deadline);
    let s = n.stats();
    assert_eq!(
        (
            s.drop_empty,
            s.drop_unknown_topic,
            s.drop_bad_id,
            s.drop_frame_count,
            s.drop_key_not_utf8
        ),
        (1, 1, 1, 2, 1)
    );
    assert_eq!(s.in_set + s.in_question, 0);
}

#[test]
fn stats_list_every_counter_by_name() {
    let n = node(1, 1);
    let names: Vec<&str> = n.stats().iter().map(|(name, _)| name).collect();
    for expected in [
        "in_set",
        "out_list_answer",
        "drop_key_not_utf8",
        "peers_up",
        "gets_timed_out",
        "bootstrap_keys_received",
    ] {
        assert!(names.contains(&expected), "{expected} missing");
    }
    assert!(n.stats().iter().all(|(_, v)| v == 0));
}

#[test]
fn outputs_are_counted_by_kind() {
    let mut n = up_node(1, 1, at(0));
    n.set(at(0), "k".into(), Bytes::from_static(b"v"));
    n.get(at(0), "x".into(), None);
    n.handle_message(at(0), &Message::List { asker: OTHER }.encode());
    drain(&mut n);
    let s = n.stats();
    assert_eq!((s.out_set, s.out_question, s.out_list_answer), (1, 1, 1));
    assert_eq!(s.in_list, 1);
}
