//! Restoring what a node held before it stopped (a persisting transport's input):
//! entries come back without outputs, the clock restarts above them, and restored
//! tombstones keep deleted keys deleted and are collected at their horizon.

mod support;

use dkv_proto::{Output, Timings};
use std::time::Duration;
use support::*;

#[test]
fn restored_entries_are_held_without_any_output() {
    let mut n = node(1, 7001);
    n.restore(at(0), "a", entry(-5_000, 2, Some("x")));
    n.restore(at(0), "gone", entry(-4_000, 2, None));
    assert!(
        drain(&mut n).is_empty(),
        "restoring is not a change to report"
    );
    assert_eq!(value(&n, "a"), Some(&b"x"[..]));
    assert!(n.entry("gone").unwrap().is_tombstone());
    assert_eq!((n.len(), n.tombstones()), (1, 1));
    assert_eq!(n.summary().count, 2);
}

#[test]
fn of_two_restored_entries_of_a_key_the_higher_version_is_kept() {
    let mut n = node(1, 7001);
    n.restore(at(0), "k", entry(-1_000, 2, Some("newer")));
    n.restore(at(0), "k", entry(-2_000, 2, Some("older")));
    assert_eq!(value(&n, "k"), Some(&b"newer"[..]));
}

#[test]
fn the_clock_restarts_above_every_restored_version_even_if_wall_time_is_behind() {
    let mut n = node(1, 7001);
    // Restored from a run whose clock was an hour ahead of this one's wall time.
    n.restore(at(0), "k", entry(3_600_000, 1, Some("old run")));
    assert!(n.clock() >= ts(3_600_000));
    let mut n = up(n, 1, at(0));
    n.set(at(10), "k".into(), bytes("this run"));
    let written = applied(&drain(&mut n));
    assert_eq!(written.len(), 1);
    assert!(written[0].entry.version.ts > ts(3_600_000));
    assert_eq!(value(&n, "k"), Some(&b"this run"[..]));
}

#[test]
fn a_restored_tombstone_keeps_an_older_write_out() {
    let mut n = up_node(1, 7001, at(0));
    n.restore(at(0), "k", entry(-1_000, 2, None));
    deliver(
        &mut n,
        at(1),
        &put(3, vec![record("k", entry(-2_000, 3, Some("old")))]),
    );
    assert_eq!(value(&n, "k"), None, "a deleted key came back");
    assert_eq!(n.stats().entries_stale, 1);
}

#[test]
fn a_restored_tombstone_is_collected_at_its_horizon() {
    let mut config = config(1, 7001);
    config.timings = Timings {
        tombstone_horizon: Duration::from_secs(10),
        ..Timings::default()
    };
    let mut n = dkv_proto::Node::new(config);
    n.restore(at(0), "k", entry(-4_000, 2, None));
    let due = n.poll_timeout().expect("collection is armed");
    assert!(due <= at(6_001) && due > at(5_000), "{:?}", due - at(0));
    n.handle_timeout(at(6_001));
    let out = drain(&mut n);
    assert!(out.contains(&Output::Collected("k".into())));
    assert!(n.entry("k").is_none());
}
