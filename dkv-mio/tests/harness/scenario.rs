//! Scenarios shared by the loopback and namespace-LAN tests, written once over node
//! [`Kind`]s and [`Place`]s: interoperation (discovery, sets both ways, remote gets,
//! bootstrap both ways) and the three-node `list_answer` crossfire.

use super::eventually;
use super::nodes::{start, Kind, Place, Timings};
use super::proc::NodeProc;
use std::time::Duration;

/// Poll period for every wait.
pub const POLL: Duration = Duration::from_millis(100);

/// Starts a node or panics with the reason.
pub fn must_start(kind: Kind, name: &str, place: Place, t: Timings) -> NodeProc {
    start(kind, name, place, t).unwrap_or_else(|e| panic!("starting {name} ({kind:?}): {e}"))
}

/// Waits until `node`'s peer list satisfies `ok`, describing the wait as `what`.
pub fn wait_peers(
    node: &mut NodeProc,
    what: &str,
    limit: Duration,
    mut ok: impl FnMut(&[String]) -> bool,
) -> Vec<String> {
    let name = node.name().to_string();
    eventually(limit, POLL, || {
        let peers = node.peers();
        if ok(&peers) {
            Ok(peers)
        } else {
            Err(format!("{name} peers {peers:?}"))
        }
    })
    .unwrap_or_else(|e| panic!("{name} never {what}: {e}\n{}", node.stderr_tail()))
}

/// Waits until `node` holds every key in `keys` locally (checked with `keys`, which
/// never asks the network).
pub fn wait_keys(node: &mut NodeProc, keys: &[String], limit: Duration) {
    let name = node.name().to_string();
    eventually(limit, POLL, || {
        let held = node.keys();
        let missing: Vec<&String> = keys.iter().filter(|k| !held.contains(k)).collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(format!("{name} still misses {missing:?}"))
        }
    })
    .unwrap_or_else(|e| panic!("{e}\n--- stderr of {name} ---\n{}", node.stderr_tail()))
}

/// Waits until a remote `get` on `node` returns a value, and returns it.
pub fn wait_get(node: &mut NodeProc, key: &str, limit: Duration) -> String {
    let name = node.name().to_string();
    eventually(limit, POLL, || {
        node.get(key, 300)
            .ok_or_else(|| format!("{name}: get {key} is (nil)"))
    })
    .unwrap_or_else(|e| panic!("{e}\n--- stderr of {name} ---\n{}", node.stderr_tail()))
}

fn value_of(key: &str) -> String {
    format!("value of {key}")
}

/// Interoperation of a node of `kind_a` and one of `kind_b`:
/// - `a` starts alone and sets ten keys; `b` joins late;
/// - `b`'s first `get` of one of them is answered over the network by `a`;
/// - each lists the other as a peer (at `ip_a` / `ip_b` if given);
/// - `b` bootstraps all ten keys without asking for them;
/// - a set on either side replicates to the other;
/// - `b` sets ten keys, `a` quits and `b` sees it go down;
/// - a fresh `a2` of `kind_a` joins late, gets a key from `b` and bootstraps every key.
pub fn interop(
    kind_a: Kind,
    kind_b: Kind,
    place_a: Place,
    place_b: Place,
    ip_a: Option<&str>,
    ip_b: Option<&str>,
    t: Timings,
) {
    let a_keys: Vec<String> = (0..10).map(|i| format!("a-key-{i}")).collect();
    let b_keys: Vec<String> = (0..10).map(|i| format!("b-key-{i}")).collect();

    let mut a = must_start(kind_a, "a", place_a, t);
    for k in &a_keys {
        a.set(k, &value_of(k));
    }
    let mut b = must_start(kind_b, "b", place_b, t);

    let got = wait_get(&mut b, "a-key-0", t.within(6));
    assert_eq!(got, value_of("a-key-0"), "b's remote get of a's key");

    let sees = |ip: Option<&str>| {
        let ip = ip.map(|s| format!("{s}:"));
        move |peers: &[String]| match &ip {
            Some(prefix) => peers.iter().any(|p| p.starts_with(prefix.as_str())),
            None => !peers.is_empty(),
        }
    };
    wait_peers(&mut a, "listed b as a peer", t.within(6), sees(ip_b));
    wait_peers(&mut b, "listed a as a peer", t.within(6), sees(ip_a));

    wait_keys(&mut b, &a_keys, t.within(10));
    assert_eq!(
        b.get("a-key-7", 0).as_deref(),
        Some(value_of("a-key-7").as_str())
    );

    a.set("from-a", "set on a, with spaces");
    wait_keys(&mut b, &["from-a".to_string()], t.within(4));
    assert_eq!(b.get("from-a", 0).as_deref(), Some("set on a, with spaces"));
    b.set("from-b", "set on b");
    wait_keys(&mut a, &["from-b".to_string()], t.within(4));
    assert_eq!(a.get("from-b", 0).as_deref(), Some("set on b"));

    for k in &b_keys {
        b.set(k, &value_of(k));
    }
    wait_keys(&mut a, &b_keys, t.within(4));
    assert!(a.quit(Duration::from_secs(5)), "a did not exit on quit");
    wait_peers(&mut b, "saw a go down", t.down_within(), |p| p.is_empty());

    let mut a2 = must_start(kind_a, "a2", place_a, t);
    let got = wait_get(&mut a2, "b-key-3", t.within(6));
    assert_eq!(got, value_of("b-key-3"), "a2's remote get of b's key");
    let mut all: Vec<String> = a_keys.iter().chain(&b_keys).cloned().collect();
    all.extend(["from-a".to_string(), "from-b".to_string()]);
    wait_keys(&mut a2, &all, t.within(10) + Duration::from_secs(5));
    assert_eq!(
        a2.get("b-key-9", 0).as_deref(),
        Some(value_of("b-key-9").as_str())
    );
    assert_eq!(
        a2.get("from-a", 0).as_deref(),
        Some("set on a, with spaces")
    );
}

/// The three-node crossfire: prototype `p1` and a node `s` of `kind_s` are connected;
/// a third node, prototype `p2`, joins and bootstraps, so `p1` and `s` both publish a
/// `list_answer` addressed to `p2`, and each receives the other's through its `list`
/// subscription. The prototype's worker dies on that (the fixture keeps the bug).
/// Waits until `p1` has died, or, when `s` is a prototype too, until either has:
/// which prototype dies first is a race, and the first to die answers no more, so
/// the other may live. Returns `p1`, `s` and `p2` for the caller's checks.
pub fn crossfire(kind_s: Kind, places: [Place; 3], t: Timings) -> (NodeProc, NodeProc, NodeProc) {
    let mut p1 = must_start(Kind::Prototype, "p1", places[0], t);
    let mut s = must_start(kind_s, "s", places[1], t);
    wait_peers(&mut p1, "listed s as a peer", t.within(6), |p| {
        !p.is_empty()
    });
    wait_peers(&mut s, "listed p1 as a peer", t.within(6), |p| {
        !p.is_empty()
    });
    // Sets both ways prove both subscriptions are live before p2 arrives.
    set_until_seen(&mut s, &mut p1, "warm-s", "1", t.within(6));
    set_until_seen(&mut p1, &mut s, "warm-p1", "1", t.within(6));

    // p1 and s must be past their own bootstraps, or p2 could be caught in the
    // crossfire of s's bootstrap instead of causing its own.
    let started = std::time::Instant::now();
    wait_bootstrapped(&mut p1, t);
    if kind_s == Kind::Prototype {
        wait_bootstrapped(&mut s, t);
    }
    let settle = t.beacon_interval * 5;
    std::thread::sleep(settle.saturating_sub(started.elapsed()));

    let p2 = must_start(Kind::Prototype, "p2", places[2], t);
    eventually(t.within(6), POLL, || {
        let p1_dead = worker_dead(&mut p1);
        if p1_dead || (kind_s == Kind::Prototype && worker_dead(&mut s)) {
            Ok(())
        } else {
            Err("every prototype worker but p2's still alive".to_string())
        }
    })
    .unwrap_or_else(|e| {
        panic!(
            "the crossfire killed no prototype worker, unlike the prototype's: {e}\n--- p1 ---\n{}\n--- s ---\n{}\n--- p2 ---\n{}",
            p1.stderr_tail(),
            s.stderr_tail(),
            p2.stderr_tail()
        )
    });
    (p1, s, p2)
}

/// True if a prototype fixture node reports its worker thread dead.
pub fn worker_dead(node: &mut NodeProc) -> bool {
    node.stats().get("worker_alive").map(String::as_str) == Some("0")
}

/// Waits until a prototype fixture node reports its bootstrap done.
pub fn wait_bootstrapped(node: &mut NodeProc, t: Timings) {
    let name = node.name().to_string();
    eventually(t.within(8), POLL, || {
        match node.stats().get("bootstrap").map(String::as_str) {
            Some("done") => Ok(()),
            other => Err(format!("{name} bootstrap={other:?}")),
        }
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", node.stderr_tail()));
}

/// Sets `key` on `from` until `to` holds it. A set published before the subscriber's
/// connection is complete is lost (ZeroMQ's slow joiner, in the prototype too), so a
/// test that sets right after discovery repeats it; each repeat is a real `set`.
pub fn set_until_seen(
    from: &mut NodeProc,
    to: &mut NodeProc,
    key: &str,
    value: &str,
    limit: Duration,
) {
    let to_name = to.name().to_string();
    let from_name = from.name().to_string();
    eventually(limit, Duration::from_millis(300), || {
        from.set(key, value);
        if to.keys().iter().any(|k| k == key) {
            Ok(())
        } else {
            Err(format!("{to_name} has no {key} set on {from_name}"))
        }
    })
    .unwrap_or_else(|e| {
        panic!(
            "{e}\n--- {from_name} ---\n{}\n--- {to_name} ---\n{}",
            from.stderr_tail(),
            to.stderr_tail()
        )
    });
}
