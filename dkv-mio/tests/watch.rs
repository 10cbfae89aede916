//! The library's watch, scan and wait_for_peers over loopback nodes: events for
//! local and remote changes in order, the bounded-queue policy, unsubscribing on
//! drop, prefix scans, and what wait_for_peers promises.

mod support;

use bytes::Bytes;
use dkv_mio::{Dkv, Error, WatchEvent};
use std::time::Duration;
use support::{cluster, config, connect_fully, wait_until, LIMIT};

/// The next event, within LIMIT.
fn next(watch: &dkv_mio::Watch) -> WatchEvent {
    watch
        .recv_timeout(LIMIT)
        .expect("node running")
        .expect("an event within the limit")
}

#[test]
fn a_watch_sees_local_sets_and_deletes_under_its_prefix_in_order() {
    let dkv = Dkv::start(config()).unwrap();
    let watch = dkv.watch("app/").unwrap();
    assert_eq!(watch.prefix(), "app/");
    dkv.set("app/a", "1").unwrap();
    dkv.set("other", "x").unwrap();
    dkv.set("app/a", "2").unwrap();
    dkv.delete("app/a").unwrap();
    let mut versions = Vec::new();
    match next(&watch) {
        WatchEvent::Set {
            key,
            value,
            version,
            local,
        } => {
            assert_eq!(
                (key.as_str(), &value[..], local),
                ("app/a", &b"1"[..], true)
            );
            versions.push(version);
        }
        other => panic!("{other:?}"),
    }
    match next(&watch) {
        WatchEvent::Set { value, version, .. } => {
            assert_eq!(&value[..], b"2");
            versions.push(version);
        }
        other => panic!("{other:?}"),
    }
    match next(&watch) {
        WatchEvent::Delete {
            key,
            version,
            local,
        } => {
            assert_eq!((key.as_str(), local), ("app/a", true));
            versions.push(version);
        }
        other => panic!("{other:?}"),
    }
    assert!(versions.windows(2).all(|w| w[0] < w[1]), "{versions:?}");
    assert_eq!(versions[2], dkv.entry("app/a").unwrap().unwrap().version);
    // "other" was never reported, and nothing else is queued.
    assert_eq!(watch.try_recv().unwrap(), None);
}

#[test]
fn a_watch_sees_each_remote_change_exactly_once_in_order() {
    let config = config();
    let nodes = cluster(&config, 2);
    connect_fully(&nodes);
    let (a, b) = (&nodes[0], &nodes[1]);
    let watch = b.watch("w/").unwrap();
    for i in 0..20 {
        a.set(format!("w/{}", i % 3), i.to_string()).unwrap();
    }
    a.delete("w/1").unwrap();
    let mut seen = Vec::new();
    while seen.len() < 21 {
        match next(&watch) {
            WatchEvent::Set {
                key, value, local, ..
            } => {
                assert!(!local);
                seen.push(format!("{key}={}", String::from_utf8_lossy(&value)));
            }
            WatchEvent::Delete { key, local, .. } => {
                assert!(!local);
                seen.push(format!("{key} deleted"));
            }
            WatchEvent::Lost { count } => panic!("lost {count}"),
        }
    }
    let mut expected: Vec<String> = (0..20).map(|i| format!("w/{}={i}", i % 3)).collect();
    expected.push("w/1 deleted".into());
    assert_eq!(seen, expected);
    // Exactly once: nothing more arrives (reconciliation brings no duplicates).
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(watch.try_recv().unwrap(), None);
}

#[test]
fn a_slow_watcher_loses_events_counted_and_never_stalls_the_node() {
    let dkv = Dkv::start(config()).unwrap();
    let watch = dkv.watch_with_capacity("", 4).unwrap();
    for i in 0..20 {
        dkv.set(format!("k{i:02}"), "v").unwrap();
    }
    // The node went on while nobody read: every write is there.
    assert_eq!(dkv.keys().unwrap().len(), 20);
    assert_eq!(dkv.stats().unwrap().transport.watch_events_lost, 16);
    for i in 0..4 {
        match next(&watch) {
            WatchEvent::Set { key, .. } => assert_eq!(key, format!("k{i:02}")),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(next(&watch), WatchEvent::Lost { count: 16 });
    // With room again, events flow again.
    dkv.set("after", "v").unwrap();
    assert!(matches!(next(&watch), WatchEvent::Set { key, .. } if key == "after"));
    assert!(matches!(
        dkv.watch_with_capacity("", 0),
        Err(Error::InvalidArgument(_))
    ));
}

#[test]
fn dropping_a_watch_unsubscribes_and_a_stopped_node_ends_it() {
    let dkv = Dkv::start(config()).unwrap();
    let first = dkv.watch("").unwrap();
    let second = dkv.watch("").unwrap();
    assert_eq!(dkv.stats().unwrap().transport.watches, 2);
    drop(first);
    wait_until("the dropped watch to be gone", || {
        dkv.stats().unwrap().transport.watches == 1
    });
    dkv.set("k", "v").unwrap();
    assert!(matches!(next(&second), WatchEvent::Set { .. }));
    dkv.shutdown().unwrap();
    assert!(matches!(second.recv(), Err(Error::Stopped)));
    assert!(matches!(dkv.watch(""), Err(Error::Stopped)));
    // Iterating ends too.
    assert_eq!(second.count(), 0);
}

#[test]
fn scan_and_keys_with_prefix_list_live_keys_in_order() {
    let dkv = Dkv::start(config()).unwrap();
    for (key, value) in [("b/2", "two"), ("a", "x"), ("b/1", "one"), ("b/3", "three")] {
        dkv.set(key, value).unwrap();
    }
    dkv.delete("b/3").unwrap();
    let scanned = dkv.scan("b/").unwrap();
    let pairs: Vec<(&str, &[u8])> = scanned
        .iter()
        .map(|kv| (kv.key.as_str(), &kv.value[..]))
        .collect();
    assert_eq!(pairs, [("b/1", &b"one"[..]), ("b/2", &b"two"[..])]);
    assert_eq!(
        scanned[0].version,
        dkv.entry("b/1").unwrap().unwrap().version
    );
    assert_eq!(dkv.scan("").unwrap().len(), 3);
    assert_eq!(dkv.keys_with_prefix("b/").unwrap(), ["b/1", "b/2"]);
    assert!(dkv.keys_with_prefix("zzz").unwrap().is_empty());
    assert_eq!(dkv.get("b/1", None).unwrap(), Some(Bytes::from("one")));
}

/// wait_for_peers: a set made right after it reaches the peer in its own put,
/// not later through reconciliation; short of peers it times out.
#[test]
fn a_set_made_after_wait_for_peers_reaches_the_peer_in_its_own_put() {
    let lonely = Dkv::start(config()).unwrap();
    assert!(matches!(
        lonely.wait_for_peers(1, Duration::from_millis(50)),
        Err(Error::Timeout {
            wanted: 1,
            got: 0,
            ..
        })
    ));
    lonely.wait_for_peers(0, Duration::ZERO).unwrap();
    for run in 0..3 {
        let config = config();
        let a = Dkv::start(config.clone()).unwrap();
        let b = Dkv::start(config).unwrap();
        a.wait_for_peers(1, LIMIT).unwrap();
        let before = b.stats().unwrap().proto;
        a.set("right-after", "wait").unwrap();
        wait_until("the set to reach b", || {
            b.get_local("right-after").unwrap().is_some()
        });
        let after = b.stats().unwrap().proto;
        assert!(after.in_put > before.in_put, "run {run}: no put arrived");
        assert_eq!(
            (after.sync_ranges_pulled, after.sync_fetches),
            (before.sync_ranges_pulled, before.sync_fetches),
            "run {run}: carried by reconciliation, not its put"
        );
    }
}
