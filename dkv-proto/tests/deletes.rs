//! Deletes: a delete is a versioned tombstone that replicates and wins like a write,
//! and is forgotten after the tombstone horizon; past it, an older write of the key
//! can come back (the documented price of forgetting).

mod support;

use dkv_proto::{Applied, Entry, Node, Version};
use std::time::Duration;
use support::*;

const HORIZON_MS: u64 = 10_000;

/// Node `n`, up, with a 10 s tombstone horizon.
fn short_horizon(n: u8) -> Node {
    let mut c = config(n, u16::from(n));
    c.timings.tombstone_horizon = Duration::from_millis(HORIZON_MS);
    up(Node::new(c), n, at(0))
}

#[test]
fn a_delete_leaves_a_tombstone_that_counts_as_an_entry_not_a_value() {
    let mut n = up_node(1, 1, at(0));
    n.set(at(1), "k".into(), bytes("v"));
    n.set(at(1), "other".into(), bytes("v"));
    drain(&mut n);
    let with_value = n.summary();
    n.delete(at(2), "k".into());
    let out = drain(&mut n);
    let tomb = entry(2, 1, None);
    assert_eq!(
        published(&out),
        vec![put(1, vec![record("k", tomb.clone())])]
    );
    assert_eq!(
        applied(&out),
        vec![Applied {
            key: "k".into(),
            entry: tomb.clone(),
            local: true
        }]
    );
    assert_eq!((n.value("k"), n.entry("k")), (None, Some(tomb)));
    assert_eq!((n.len(), n.tombstones()), (1, 1));
    assert_eq!(n.keys().collect::<Vec<_>>(), vec!["other"]);
    assert_eq!(n.entries().count(), 2);
    assert_eq!(n.summary().count, 2);
    assert_ne!(n.summary(), with_value);
    assert_eq!(n.stats().deletes, 1);
}

#[test]
fn deleting_a_key_never_written_still_leaves_a_tombstone() {
    let mut n = up_node(1, 1, at(0));
    n.delete(at(3), "never".into());
    assert_eq!(n.entry("never"), Some(entry(3, 1, None)));
    assert!(n.is_empty());
}

#[test]
fn a_delete_replicates_by_put_and_wins_over_the_older_write_it_deletes() {
    let mut a = up_node(1, 1, at(0));
    let mut b = up_node(2, 2, at(0));
    a.set(at(1), "k".into(), bytes("v"));
    for m in published(&drain(&mut a)) {
        deliver(&mut b, at(1), &m);
    }
    assert_eq!(value(&b, "k"), Some(&b"v"[..]));
    a.delete(at(2), "k".into());
    for m in published(&drain(&mut a)) {
        deliver(&mut b, at(2), &m);
    }
    assert_eq!(b.entry("k"), Some(entry(2, 1, None)));
    assert_eq!(b.entry("k"), a.entry("k"));
    assert_eq!(b.summary(), a.summary());
}

#[test]
fn a_delete_wins_over_an_older_write_arriving_later() {
    let mut n = up_node(1, 1, at(0));
    deliver(
        &mut n,
        at(1),
        &put(2, vec![record("k", entry(10, 2, None))]),
    );
    deliver(
        &mut n,
        at(2),
        &put(3, vec![record("k", entry(5, 3, Some("stale")))]),
    );
    assert_eq!(n.entry("k"), Some(entry(10, 2, None)));
    assert_eq!(n.stats().entries_stale, 1);
}

#[test]
fn a_delete_loses_to_a_newer_write() {
    let mut n = up_node(1, 1, at(0));
    n.delete(at(10), "k".into());
    deliver(
        &mut n,
        at(20),
        &put(2, vec![record("k", entry(20, 2, Some("back")))]),
    );
    assert_eq!(value(&n, "k"), Some(&b"back"[..]));
    assert_eq!(n.tombstones(), 0);
}

#[test]
fn an_older_delete_loses_to_a_value() {
    let mut n = up_node(1, 1, at(0));
    deliver(
        &mut n,
        at(1),
        &put(2, vec![record("k", entry(10, 2, Some("v")))]),
    );
    deliver(&mut n, at(2), &put(3, vec![record("k", entry(9, 3, None))]));
    assert_eq!(value(&n, "k"), Some(&b"v"[..]));
}

#[test]
fn at_equal_versions_a_value_wins_over_a_tombstone_in_either_order() {
    let tomb = Entry {
        version: Version::UNVERSIONED,
        value: None,
    };
    let empty = Entry {
        version: Version::UNVERSIONED,
        value: Some(bytes("")),
    };
    assert!(tomb.merge_order(&empty).is_lt() && empty.merge_order(&tomb).is_gt());
    for (first, second) in [(None, Some("v")), (Some("v"), None)] {
        let mut n = up_node(1, 1, at(0));
        deliver(
            &mut n,
            at(1),
            &put(2, vec![record("k", entry(5, 2, first))]),
        );
        deliver(
            &mut n,
            at(1),
            &put(2, vec![record("k", entry(5, 2, second))]),
        );
        assert_eq!(value(&n, "k"), Some(&b"v"[..]));
    }
}

#[test]
fn a_tombstone_is_collected_once_older_than_the_horizon() {
    let mut n = short_horizon(1);
    n.set(at(0), "live".into(), bytes("v"));
    n.delete(at(0), "k".into());
    drain(&mut n);
    assert!(n.poll_timeout().unwrap() <= at(HORIZON_MS + 1));
    n.handle_timeout(at(HORIZON_MS));
    assert_eq!((n.tombstones(), n.stats().tombstones_collected), (1, 0));
    n.handle_timeout(at(HORIZON_MS + 1));
    assert_eq!(n.entry("k"), None);
    assert_eq!((n.tombstones(), n.stats().tombstones_collected), (0, 1));
    assert_eq!(value(&n, "live"), Some(&b"v"[..]), "live entries stay");
    assert_eq!(n.summary().count, 1);
    assert!(
        applied(&drain(&mut n)).is_empty(),
        "forgetting is not a change"
    );
}

#[test]
fn each_tombstone_is_collected_at_its_own_horizon() {
    let mut n = short_horizon(1);
    n.delete(at(0), "first".into());
    n.delete(at(5_000), "second".into());
    n.handle_timeout(at(HORIZON_MS + 1));
    assert_eq!((n.entry("first"), n.tombstones()), (None, 1));
    assert!(n.poll_timeout().unwrap() <= at(5_000 + HORIZON_MS + 1));
    n.handle_timeout(at(5_000 + HORIZON_MS + 1));
    assert_eq!((n.tombstones(), n.stats().tombstones_collected), (0, 2));
}

#[test]
fn a_received_tombstone_ages_from_its_version_not_its_arrival() {
    let mut n = short_horizon(1);
    deliver(
        &mut n,
        at(0),
        &put(2, vec![record("k", entry(-6_000, 2, None))]),
    );
    n.handle_timeout(at(HORIZON_MS - 6_000));
    assert_eq!(n.tombstones(), 1);
    n.handle_timeout(at(HORIZON_MS - 6_000 + 1));
    assert_eq!(n.tombstones(), 0);
}

#[test]
fn a_tombstone_already_past_the_horizon_is_forgotten_at_the_next_timer() {
    let mut n = short_horizon(1);
    deliver(
        &mut n,
        at(0),
        &put(2, vec![record("k", entry(-60_000, 2, None))]),
    );
    assert_eq!(n.tombstones(), 1);
    let due = n.poll_timeout().unwrap();
    assert!(due <= at(1), "{:?}", due - at(0));
    n.handle_timeout(due);
    assert_eq!((n.tombstones(), n.stats().tombstones_collected), (0, 1));
}

#[test]
fn a_tombstone_overwritten_by_a_value_is_never_collected() {
    let mut n = short_horizon(1);
    n.delete(at(0), "k".into());
    n.set(at(1), "k".into(), bytes("v"));
    n.handle_timeout(at(HORIZON_MS + 10));
    assert_eq!(value(&n, "k"), Some(&b"v"[..]));
    assert_eq!(n.stats().tombstones_collected, 0);
}

#[test]
fn past_the_horizon_an_older_write_of_the_key_comes_back() {
    // Documented: "A node that missed a delete and comes back later than this
    // brings the key back."
    let mut n = short_horizon(1);
    let old = put(2, vec![record("k", entry(-100, 2, Some("old")))]);
    deliver(&mut n, at(0), &old);
    n.delete(at(0), "k".into());
    deliver(&mut n, at(1), &old);
    assert_eq!(n.value("k"), None, "within the horizon the delete wins");
    n.handle_timeout(at(HORIZON_MS + 1));
    assert_eq!(n.entry("k"), None);
    deliver(&mut n, at(HORIZON_MS + 2), &old);
    assert_eq!(value(&n, "k"), Some(&b"old"[..]), "the key is back");
}
