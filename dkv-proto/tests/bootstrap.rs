//! Bootstrap: list after the delay, fetch listed keys with a bounded window of
//! questions, settle, done; including peers that never answer.

mod support;

use bytes::Bytes;
use dkv_proto::{BootstrapPhase, Config, Message, Node, Timings};
use std::time::Duration;
use support::*;

fn list_answer(keys: &[&str]) -> Vec<Bytes> {
    Message::ListAnswer {
        asker: id(1),
        keys: keys.iter().map(|k| k.to_string()).collect(),
    }
    .encode()
}

fn answer(key: &str) -> Vec<Bytes> {
    Message::Answer {
        asker: id(1),
        key: key.into(),
        value: Bytes::from(format!("value of {key}")),
    }
    .encode()
}

fn questions(msgs: &[Message]) -> Vec<String> {
    msgs.iter()
        .filter_map(|m| match m {
            Message::Question { key, .. } => Some(key.clone()),
            _ => None,
        })
        .collect()
}

fn windowed(window: usize) -> Node {
    let mut config = Config::new(id(1), 1);
    config.timings.bootstrap_window = window;
    let mut n = Node::new(config);
    n.handle_net_up(at(0), ip(1));
    drain(&mut n);
    n
}

#[test]
fn list_is_published_two_beacon_intervals_after_net_up() {
    let mut n = up_node(1, 1, at(0));
    assert_eq!(n.bootstrap().phase, BootstrapPhase::Waiting);
    n.handle_timeout(at(1_999));
    assert!(!published(&drain(&mut n)).contains(&Message::List { asker: id(1) }));
    n.handle_timeout(at(2_000));
    assert!(published(&drain(&mut n)).contains(&Message::List { asker: id(1) }));
}

#[test]
fn listed_keys_are_asked_for_with_at_most_the_window_in_flight() {
    let mut n = windowed(2);
    n.handle_timeout(at(2_000));
    drain(&mut n);
    n.handle_message(at(2_001), &list_answer(&["a", "b", "c", "d", "e"]));
    assert_eq!(questions(&published(&drain(&mut n))), ["a", "b"]);
    assert_eq!(n.bootstrap().in_flight, 2);
    n.handle_message(at(2_002), &answer("a"));
    assert_eq!(questions(&published(&drain(&mut n))), ["c"]);
    n.handle_message(at(2_003), &answer("b"));
    n.handle_message(at(2_003), &answer("c"));
    assert_eq!(questions(&published(&drain(&mut n))), ["d", "e"]);
    n.handle_message(at(2_004), &answer("d"));
    n.handle_message(at(2_004), &answer("e"));
    assert_eq!(n.bootstrap().phase, BootstrapPhase::Settling);
    assert_eq!(n.stats().bootstrap_keys_received, 5);
    assert_eq!(n.value("e").map(|v| &v[..]), Some(&b"value of e"[..]));
}

#[test]
fn keys_already_requested_are_not_requested_again() {
    let mut n = windowed(100);
    n.handle_timeout(at(2_000));
    drain(&mut n);
    n.handle_message(at(2_001), &list_answer(&["a", "b"]));
    n.handle_message(at(2_001), &list_answer(&["b", "c", "a"]));
    assert_eq!(questions(&published(&drain(&mut n))), ["a", "b", "c"]);
    assert_eq!(n.stats().bootstrap_keys_listed, 3);
}

#[test]
fn done_two_intervals_after_the_last_key_arrives() {
    let mut n = up_node(1, 1, at(0));
    n.handle_timeout(at(2_000));
    n.handle_message(at(2_001), &list_answer(&["a"]));
    n.handle_message(at(2_010), &answer("a"));
    n.handle_timeout(at(4_009));
    assert_eq!(n.bootstrap().phase, BootstrapPhase::Settling);
    n.handle_timeout(at(4_010));
    assert_eq!(n.bootstrap().phase, BootstrapPhase::Done);
    assert_eq!(n.stats().bootstraps_done, 1);
}

#[test]
fn with_no_peers_bootstrap_is_done_after_list_delay_plus_settle() {
    let mut n = up_node(1, 1, at(0));
    n.handle_timeout(at(2_000));
    n.handle_timeout(at(3_999));
    assert_ne!(n.bootstrap().phase, BootstrapPhase::Done);
    n.handle_timeout(at(4_000));
    assert_eq!(n.bootstrap().phase, BootstrapPhase::Done);
}

#[test]
fn a_late_list_answer_while_settling_resumes_fetching() {
    let mut n = up_node(1, 1, at(0));
    n.handle_timeout(at(2_000));
    drain(&mut n);
    assert_eq!(n.bootstrap().phase, BootstrapPhase::Settling);
    n.handle_message(at(3_000), &list_answer(&["late"]));
    assert_eq!(questions(&published(&drain(&mut n))), ["late"]);
    assert_eq!(n.bootstrap().phase, BootstrapPhase::Fetching);
    n.handle_message(at(3_001), &answer("late"));
    n.handle_timeout(at(5_001));
    assert_eq!(n.bootstrap().phase, BootstrapPhase::Done);
}

#[test]
fn a_question_never_answered_is_given_up_and_bootstrap_still_finishes() {
    let mut n = up_node(1, 1, at(0));
    let timeout = n.config().timings.bootstrap_question_timeout;
    n.handle_timeout(at(2_000));
    n.handle_message(at(2_000), &list_answer(&["held-empty", "answered"]));
    n.handle_message(at(2_001), &answer("answered"));
    drain(&mut n);
    let give_up = at(2_000) + timeout;
    n.handle_timeout(give_up - Duration::from_millis(1));
    assert_eq!(n.bootstrap().in_flight, 1);
    n.handle_timeout(give_up);
    assert_eq!(n.bootstrap().in_flight, 0);
    assert_eq!(n.stats().bootstrap_keys_unanswered, 1);
    n.handle_timeout(give_up + Duration::from_secs(2));
    assert_eq!(n.bootstrap().phase, BootstrapPhase::Done);
    assert_eq!(n.value("held-empty"), None);
}

#[test]
fn list_answers_after_done_are_ignored() {
    let mut n = up_node(1, 1, at(0));
    n.handle_timeout(at(2_000));
    n.handle_timeout(at(4_000));
    drain(&mut n);
    n.handle_message(at(5_000), &list_answer(&["x"]));
    assert!(published(&drain(&mut n)).is_empty());
}

#[test]
fn net_down_abandons_bootstrap_and_net_up_starts_afresh() {
    let mut n = windowed(1);
    n.handle_timeout(at(2_000));
    n.handle_message(at(2_000), &list_answer(&["a", "b"]));
    drain(&mut n);
    n.handle_net_down(at(2_100));
    assert_eq!(n.bootstrap().phase, BootstrapPhase::Idle);
    n.handle_net_up(at(9_000), ip(1));
    n.handle_timeout(at(11_000));
    n.handle_message(at(11_000), &list_answer(&["a", "b"]));
    assert_eq!(
        questions(&published(&drain(&mut n))),
        ["a"],
        "keys asked before are asked again in the new bootstrap"
    );
}

#[test]
fn timings_default_to_the_prototype() {
    let t = Timings::default();
    assert_eq!(t.beacon_interval, Duration::from_secs(1));
    assert_eq!(t.peer_timeout, Duration::from_secs(4));
    assert_eq!(t.get_timeout, Duration::from_millis(100));
    assert_eq!(t.bootstrap_delay, Duration::from_secs(2));
    assert_eq!(t.bootstrap_settle, Duration::from_secs(2));
}

#[test]
fn a_zero_window_still_makes_progress_one_key_at_a_time() {
    let mut n = windowed(0);
    n.handle_timeout(at(2_000));
    n.handle_message(at(2_000), &list_answer(&["a", "b"]));
    assert_eq!(questions(&published(&drain(&mut n))), ["a"]);
}
