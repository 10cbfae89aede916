//! The hybrid logical clock as a node uses it: local writes are stamped with wall
//! time read through the anchor and always increase; remote versions too far ahead
//! of wall time are refused until wall time catches up; accepted ones move the
//! clock up.

mod support;

use dkv_proto::wire::v2::{Body, Item, Range, Step};
use dkv_proto::{key_hash, Message, Node, Timestamp, Version};
use std::time::Duration;
use support::*;

fn write(n: &mut Node, ms: u64, key: &str) -> Version {
    n.set(at(ms), key.into(), bytes("v"));
    drain(n);
    n.entry(key).unwrap().version
}

#[test]
fn a_local_write_is_stamped_with_wall_time_read_through_the_anchor() {
    let mut n = up_node(1, 1, at(0));
    assert_eq!(write(&mut n, 250, "a"), version(250, 1));
    n.handle_wall_clock(at(300), 5_000_000_000_000);
    let v = write(&mut n, 400, "b");
    assert_eq!(v.ts, Timestamp::from_millis(5_000_000_000_100));
    assert_eq!((v.ts.logical(), v.node), (0, id(1)));
}

#[test]
fn writes_in_one_millisecond_count_up_the_logical_counter() {
    let mut n = up_node(1, 1, at(0));
    let a = write(&mut n, 7, "a");
    let b = write(&mut n, 7, "b");
    let c = write(&mut n, 7, "a");
    assert_eq!(
        (a.ts, b.ts, c.ts),
        (ts(7), Timestamp(ts(7).0 + 1), Timestamp(ts(7).0 + 2))
    );
}

#[test]
fn versions_of_local_writes_strictly_increase_when_the_wall_clock_steps_back() {
    let mut n = up_node(1, 1, at(0));
    let a = write(&mut n, 100, "a");
    n.handle_wall_clock(at(200), WALL_MS - 60_000);
    let b = write(&mut n, 200, "b");
    let c = write(&mut n, 300, "a");
    assert!(a < b && b < c, "{a} {b} {c}");
    assert_eq!(
        b.ts.millis(),
        a.ts.millis(),
        "held at the highest time seen"
    );
    assert_eq!(n.entry("a").unwrap().version, c, "the later write wins");
    // Once wall time passes the old reading again, versions follow it again.
    let d = write(&mut n, 200 + 60_000 + 150, "d");
    assert_eq!(d.ts, ts(150));
}

#[test]
fn the_clock_never_decreases() {
    let mut n = up_node(1, 1, at(0));
    write(&mut n, 100, "a");
    let high = n.clock();
    n.handle_wall_clock(at(100), 0);
    n.handle_timeout(at(100));
    assert_eq!(n.clock(), high);
    write(&mut n, 101, "b");
    assert!(n.clock() > high);
}

#[test]
fn a_remote_entry_more_than_the_offset_ahead_is_refused_and_counted() {
    let mut n = up_node(1, 1, at(0));
    let before = n.clock();
    deliver(
        &mut n,
        at(10),
        &put(2, vec![record("k", entry(10 + 501, 2, Some("v")))]),
    );
    let out = drain(&mut n);
    assert!(applied(&out).is_empty(), "{out:?}");
    assert_eq!(n.entry("k"), None);
    assert_eq!(n.stats().drop_clock_ahead, 1);
    assert_eq!(
        n.clock(),
        before,
        "a refused version does not move the clock"
    );
    deliver(
        &mut n,
        at(10),
        &put(2, vec![record("k", entry(10 + 500, 2, Some("v")))]),
    );
    assert_eq!(
        value(&n, "k"),
        Some(&b"v"[..]),
        "exactly the offset ahead is fine"
    );
    assert_eq!(n.stats().drop_clock_ahead, 1);
}

#[test]
fn a_refused_entry_is_accepted_once_wall_time_catches_up() {
    let mut n = up_node(1, 1, at(0));
    let early = put(2, vec![record("k", entry(2_000, 2, Some("v")))]);
    deliver(&mut n, at(0), &early);
    deliver(&mut n, at(1_499), &early);
    assert_eq!((n.entry("k"), n.stats().drop_clock_ahead), (None, 2));
    deliver(&mut n, at(1_500), &early);
    assert_eq!(n.entry("k"), Some(entry(2_000, 2, Some("v"))));
}

#[test]
fn the_window_is_judged_against_the_latest_wall_reading() {
    let mut n = up_node(1, 1, at(0));
    n.handle_wall_clock(at(0), WALL_MS - 60_000);
    deliver(
        &mut n,
        at(0),
        &put(2, vec![record("k", entry(0, 2, Some("v")))]),
    );
    assert_eq!(
        n.stats().drop_clock_ahead,
        1,
        "a minute ahead of the new reading"
    );
    n.handle_wall_clock(at(0), WALL_MS + 60_000);
    deliver(
        &mut n,
        at(0),
        &put(2, vec![record("k", entry(0, 2, Some("v")))]),
    );
    assert!(n.entry("k").is_some());
}

#[test]
fn pushed_entries_are_refused_like_put_ones() {
    let mut n = up_node(1, 1, at(0));
    let push = Body::Push {
        request: 0,
        records: vec![record("k", entry(60_000, 2, None))],
        more: None,
    };
    deliver(&mut n, at(0), &to_one(2, 1, push));
    assert_eq!((n.entry("k"), n.stats().drop_clock_ahead), (None, 1));
}

#[test]
fn the_offset_is_configurable() {
    let mut c = config(1, 1);
    c.timings.max_clock_offset = Duration::ZERO;
    let mut n = up(Node::new(c), 1, at(0));
    deliver(
        &mut n,
        at(5),
        &put(2, vec![record("k", entry(6, 2, Some("v")))]),
    );
    assert_eq!(n.stats().drop_clock_ahead, 1);
    deliver(
        &mut n,
        at(5),
        &put(2, vec![record("k", entry(5, 2, Some("v")))]),
    );
    assert!(n.entry("k").is_some());
}

#[test]
fn the_clock_moves_up_to_an_accepted_remote_version() {
    let mut n = up_node(1, 1, at(0));
    deliver(
        &mut n,
        at(0),
        &put(2, vec![record("k", entry(400, 2, Some("v")))]),
    );
    assert_eq!(n.clock(), ts(400));
    let mine = write(&mut n, 1, "k");
    assert_eq!(
        mine.ts,
        Timestamp(ts(400).0 + 1),
        "above the remote version"
    );
    assert_eq!(
        n.entry("k").unwrap().version,
        mine,
        "so a later local write wins"
    );
}

#[test]
fn an_older_remote_version_leaves_the_clock_where_it_is() {
    let mut n = up_node(1, 1, at(0));
    write(&mut n, 100, "a");
    let high = n.clock();
    deliver(
        &mut n,
        at(100),
        &put(2, vec![record("k", entry(-5_000, 2, Some("v")))]),
    );
    assert_eq!(n.clock(), high);
    assert!(
        n.entry("k").is_some(),
        "old versions are accepted, not refused"
    );
}

#[test]
fn an_unversioned_answer_does_not_move_the_clock() {
    let mut n = up_node(1, 1, at(0));
    write(&mut n, 100, "a");
    let high = n.clock();
    let answer = Message::Answer {
        asker: id(1),
        key: "k".into(),
        value: bytes("v"),
    };
    deliver(&mut n, at(100), &answer);
    assert_eq!(n.clock(), high);
    assert_eq!(n.stats().drop_clock_ahead, 0);
}

#[test]
fn a_prototype_set_is_stamped_by_the_local_clock() {
    let mut n = up_node(1, 1, at(0));
    deliver(
        &mut n,
        at(0),
        &put(2, vec![record("x", entry(300, 2, Some("v")))]),
    );
    let set = Message::Set {
        key: "k".into(),
        value: bytes("v"),
    };
    deliver(&mut n, at(10), &set);
    assert_eq!(
        n.entry("k").unwrap().version,
        Version {
            ts: Timestamp(ts(300).0 + 1),
            node: id(1)
        }
    );
}

#[test]
fn reconciliation_does_not_fetch_entries_too_far_ahead() {
    let mut n = up_node(1, 1, at(0));
    let item = |key: &str, ms: i64| Item {
        key_hash: key_hash(key),
        version: version(ms, 2),
        digest: 1,
    };
    let mut items = vec![item("future", 60_000), item("present", 0)];
    items.sort();
    let sync = Body::Sync {
        session: 1,
        initiator: true,
        last: false,
        steps: vec![Step::Items {
            range: Range::ROOT,
            items,
        }],
    };
    deliver(&mut n, at(0), &to_one(2, 1, sync));
    let fetched: Vec<Vec<u64>> = dkv(&drain(&mut n))
        .into_iter()
        .filter_map(|e| match e.body {
            Body::Fetch { key_hashes, .. } => Some(key_hashes),
            _ => None,
        })
        .collect();
    assert_eq!(fetched, vec![vec![key_hash("present")]]);
}

#[test]
fn timestamps_pack_milliseconds_over_a_16_bit_counter() {
    let t = Timestamp::from_millis(1_700_000_000_123);
    assert_eq!((t.millis(), t.logical()), (1_700_000_000_123, 0));
    let next = Timestamp(t.0 + 0xffff);
    assert_eq!((next.millis(), next.logical()), (1_700_000_000_123, 0xffff));
    assert_eq!(Timestamp(next.0 + 1).millis(), 1_700_000_000_124);
    assert_eq!(t.to_string(), "1700000000123.0");
}

#[test]
fn a_write_made_with_the_wall_clock_at_the_epoch_still_beats_an_answer() {
    let mut n = up_node(1, 1, at(0));
    n.handle_wall_clock(at(0), 0);
    let answer = Message::Answer {
        asker: id(1),
        key: "k".into(),
        value: bytes("zzz"),
    };
    deliver(&mut n, at(0), &answer);
    let v = write(&mut n, 0, "k");
    assert!(v > Version::UNVERSIONED);
    assert_eq!(value(&n, "k"), Some(&b"v"[..]));
}
