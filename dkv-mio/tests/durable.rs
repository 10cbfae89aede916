//! Durable nodes through the library: a restart keeps its clock above every
//! persisted version even when the wall clock is behind them, and a restarted
//! node fetches from its peers only what changed while it was down. Nodes use
//! loopback broadcast on a beacon port of their own; every wait is bounded.

mod support;

use dkv_mio::{Config, Dkv, Timestamp, DATA_FILE};
use std::path::Path;
use support::wait_until;

/// `config` with its data dir at `dir`.
fn durable(config: &Config, dir: &Path) -> Config {
    Config {
        data_dir: Some(dir.to_owned()),
        ..config.clone()
    }
}

/// One hour in timestamp units (milliseconds above the 16 logical bits).
const HOUR: i64 = 3_600_000 << 16;

#[test]
fn a_restart_issues_versions_above_the_persisted_ones_with_the_wall_clock_behind() {
    let dir = tempfile::tempdir().unwrap();
    let config = durable(&support::config(), dir.path());
    let node = Dkv::start(config.clone()).unwrap();
    node.set("kept", "before").unwrap();
    node.set("gone", "before").unwrap();
    node.delete("gone").unwrap();
    node.shutdown().unwrap();
    drop(node);

    // Every persisted version an hour ahead: what a restart sees when the wall
    // clock was set back an hour while the node was down.
    let conn = rusqlite::Connection::open(dir.path().join(DATA_FILE)).unwrap();
    let moved = conn
        .execute("UPDATE entries SET ts = ts + ?1", [HOUR])
        .unwrap();
    assert_eq!(moved, 2);
    drop(conn);

    let node = Dkv::start(config).unwrap();
    let kept = node.entry("kept").unwrap().expect("kept restored");
    let gone = node.entry("gone").unwrap().expect("the tombstone restored");
    assert_eq!(gone.value, None);
    let wall = Timestamp::from_millis(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64,
    );
    assert!(kept.version.ts > wall, "the versions were not moved ahead");
    assert!(node.status().unwrap().clock >= kept.version.ts.max(gone.version.ts));

    // New writes win over the persisted ones: their versions are above them.
    node.set("kept", "after").unwrap();
    node.set("gone", "back").unwrap();
    let kept_now = node.entry("kept").unwrap().unwrap();
    let gone_now = node.entry("gone").unwrap().unwrap();
    assert!(kept_now.version > kept.version);
    assert!(gone_now.version > gone.version);
    assert_eq!(
        node.get_local("kept").unwrap().as_deref(),
        Some(&b"after"[..])
    );
    assert_eq!(
        node.get_local("gone").unwrap().as_deref(),
        Some(&b"back"[..])
    );
    node.shutdown().unwrap();
}

/// Entries a node received from peers, whether they won the merge or not.
fn received(node: &Dkv) -> u64 {
    let stats = node.stats().unwrap().proto;
    stats.entries_applied + stats.entries_stale
}

#[test]
fn a_restarted_node_fetches_only_what_changed_while_it_was_down() {
    const KEYS: usize = 10_000;
    const NEW: usize = 10;
    let config = support::config();
    let dir = tempfile::tempdir().unwrap();
    let a = Dkv::start(durable(&config, dir.path())).unwrap();
    let b = Dkv::start(config.clone()).unwrap();
    let pending: Vec<_> = (0..KEYS)
        .map(|i| {
            a.set_pending(format!("key/{i:05}"), format!("value {i}"))
                .unwrap()
        })
        .collect();
    for write in pending {
        write.wait().unwrap();
    }
    let same = |x: &Dkv, y: &Dkv| x.status().unwrap().summary == y.status().unwrap().summary;
    wait_until("b to hold a's keys", || same(&a, &b));
    a.shutdown().unwrap();
    drop(a);

    for i in 0..NEW {
        b.set(format!("new/{i}"), "while a was down").unwrap();
    }
    let a = Dkv::start(durable(&config, dir.path())).unwrap();
    assert_eq!(
        a.status().unwrap().stats.transport.disk_restored,
        KEYS as u64
    );
    wait_until("the restarted a to catch up with b", || same(&a, &b));
    assert_eq!(a.status().unwrap().keys, KEYS + NEW);
    let restarted = received(&a);

    // The control: a node starting empty receives the whole store.
    let c = Dkv::start(config.clone()).unwrap();
    wait_until("an empty node to catch up with b", || same(&c, &b));
    let empty = received(&c);
    eprintln!("entries received: the restarted node {restarted}, an empty node {empty}");
    assert!(
        empty >= (KEYS + NEW) as u64,
        "the empty node received {empty}"
    );
    assert!(
        restarted >= NEW as u64 && restarted * 100 < empty,
        "the restarted node received {restarted} entries, an empty one {empty}"
    );
    for node in [a, b, c] {
        node.shutdown().unwrap();
    }
}
