//! Scenarios shared by the loopback and namespace-LAN tests, written once over node
//! [`Kind`]s and [`Place`]s: interoperation (discovery, sets both ways, remote gets,
//! bootstrap both ways), the three-node `list_answer` crossfire, and one prototype
//! beside several dkv nodes; plus waits for readiness and for replicas to converge.

use super::eventually;
use super::nodes::{start, Kind, Place, Timings};
use super::proc::NodeProc;
use std::time::{Duration, Instant};

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
/// a third node, prototype `p2`, joins and bootstraps. Two prototypes `p1` and `s`
/// both publish a `list_answer` addressed to `p2`, and each receives the other's
/// through its `list` subscription: the prototype's worker dies on that (the fixture
/// keeps the bug), so with `s` a prototype this waits until one of them has died
/// (which first is a race). A dkv `s` leaves the list to `p1` while two prototypes
/// beacon, so then this checks that no worker dies while `p2` bootstraps. Returns
/// `p1`, `s` and `p2` for the caller's checks.
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

    let mut p2 = must_start(Kind::Prototype, "p2", places[2], t);
    if kind_s == Kind::Dkv {
        wait_bootstrapped(&mut p2, t);
        std::thread::sleep(t.beacon_interval * 4);
        assert!(
            !worker_dead(&mut p1) && !worker_dead(&mut p2),
            "a dkv node beside two prototypes killed a worker\n--- p1 ---\n{}\n--- s ---\n{}\n--- p2 ---\n{}",
            p1.stderr_tail(),
            s.stderr_tail(),
            p2.stderr_tail()
        );
        return (p1, s, p2);
    }
    eventually(t.within(6), POLL, || {
        if worker_dead(&mut p1) || worker_dead(&mut s) {
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

/// Waits until `node` (`dkv node`) has `n` ready peers: `wait peers N`.
pub fn wait_ready(node: &mut NodeProc, n: usize, limit: Duration) {
    let reply = node.cmd(&format!("wait peers {n} {}", limit.as_millis()));
    assert_eq!(
        reply,
        "OK",
        "{} never had {n} ready peers\n{}",
        node.name(),
        node.stderr_tail()
    );
}

/// Asserts a prototype fixture node's worker thread is alive.
pub fn assert_worker_alive(node: &mut NodeProc, when: &str) {
    let stats = node.stats();
    assert_eq!(
        stats.get("worker_alive").map(String::as_str),
        Some("1"),
        "{}'s worker died {when}: {stats:?}\n{}",
        node.name(),
        node.stderr_tail()
    );
}

/// Polls every node's `fingerprint=` every 20 ms until all are equal; returns how
/// long that took. Panics after `limit`, showing every node's fingerprint.
pub fn wait_converged(nodes: &mut [NodeProc], limit: Duration) -> Duration {
    let start = Instant::now();
    let mut last = Vec::new();
    while start.elapsed() < limit {
        last = nodes.iter_mut().map(|n| n.fingerprint()).collect();
        if last.windows(2).all(|w| w[0] == w[1]) {
            return start.elapsed();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let tails: Vec<String> = nodes
        .iter_mut()
        .map(|n| {
            let stats = n.cmd("stats");
            format!("--- {} ---\n{stats}\n{}", n.name(), n.stderr_tail())
        })
        .collect();
    panic!(
        "no convergence within {limit:?}: fingerprints {last:?}\n{}",
        tails.join("\n")
    );
}

/// One prototype node beside dkv nodes (`places`: the prototype, two dkv nodes, a
/// late dkv joiner): the prototype's worker stays alive throughout, while
/// - a prototype `set` reaches both dkv nodes, and a dkv `set` the prototype;
/// - a key deleted on a dkv node reads as an empty value on the prototype (the
///   delete's `set` copy) and `(nil)` on the dkv nodes;
/// - the dkv nodes converge to one fingerprint (a prototype's set gets a version
///   of its own at each of them);
/// - a late dkv joiner bootstraps by reconciliation; the dkv nodes ignore its
///   `list` (only the prototype answers it, so no `list_answer` for another node
///   reaches the prototype), and all three converge;
/// - a fresh prototype, once the first has quit, has its get of a dkv key answered,
///   bootstraps every live key, and is never offered the deleted one.
pub fn prototype_beside_dkv_nodes(places: [Place; 4], t: Timings) {
    let mut p = must_start(Kind::Prototype, "p", places[0], t);
    let mut d = vec![
        must_start(Kind::Dkv, "d1", places[1], t),
        must_start(Kind::Dkv, "d2", places[2], t),
    ];
    for node in d.iter_mut() {
        wait_peers(node, "saw two peers", t.within(6), |peers| peers.len() == 2);
        wait_ready(node, 2, t.within(8));
    }
    wait_peers(&mut p, "saw both dkv nodes", t.within(6), |peers| {
        peers.len() == 2
    });
    assert_worker_alive(&mut p, "at discovery");

    set_until_seen(&mut p, &mut d[0], "from-p", "set on p", t.within(6));
    wait_keys(&mut d[1], &["from-p".to_string()], t.within(4));
    set_until_seen(&mut d[0], &mut p, "from-d1", "set on d1", t.within(6));
    wait_keys(&mut d[1], &["from-d1".to_string()], t.within(4));
    for node in d.iter_mut() {
        assert_eq!(node.get("from-p", 0).as_deref(), Some("set on p"));
        assert_eq!(node.get("from-d1", 0).as_deref(), Some("set on d1"));
    }
    assert_eq!(p.get("from-d1", 0).as_deref(), Some("set on d1"));

    d[1].set("doomed", "soon deleted");
    wait_keys(&mut p, &["doomed".to_string()], t.within(4));
    wait_keys(&mut d[0], &["doomed".to_string()], t.within(4));
    d[1].del("doomed");
    eventually(t.within(4), POLL, || {
        let (on_p, on_d1) = (p.get("doomed", 0), d[0].get("doomed", 0));
        if on_p.as_deref() == Some("") && on_d1.is_none() {
            Ok(())
        } else {
            Err(format!("doomed: p {on_p:?}, d1 {on_d1:?}"))
        }
    })
    .unwrap_or_else(|e| panic!("the delete did not reach both: {e}"));
    assert_worker_alive(&mut p, "after sets and a delete");
    wait_converged(&mut d, t.within(20));

    d.push(must_start(Kind::Dkv, "d3", places[3], t));
    let limit = t.within(20).as_millis();
    assert_eq!(d[2].cmd(&format!("wait bootstrap {limit}")), "OK");
    let live = ["from-p".to_string(), "from-d1".to_string()];
    wait_keys(&mut d[2], &live, t.within(4));
    assert_eq!(d[2].get("doomed", 0), None);
    wait_converged(&mut d, t.within(20));
    let joiner = d[2].stats();
    let count = |stats: &std::collections::BTreeMap<String, String>, name: &str| -> u64 {
        stats.get(name).and_then(|v| v.parse().ok()).unwrap_or(0)
    };
    // Reconciled with both dkv nodes: by its own session, or by theirs that found
    // the stores equal and settled its own.
    let reconciled =
        count(&joiner, "sync_sessions_completed") + count(&joiner, "sync_sessions_settled");
    assert!(reconciled >= 2, "{joiner:?}");
    for node in d[..2].iter_mut() {
        let stats = node.stats();
        assert!(count(&stats, "in_sync") >= 1, "{}: {stats:?}", node.name());
        // The joiner's `list` (it saw a prototype peer) is the prototype's to answer.
        assert!(
            count(&stats, "drop_legacy_from_dkv") >= 1,
            "{}: {stats:?}",
            node.name()
        );
    }
    // Whatever list answers the joiner's bootstrap caused have crossed by now.
    std::thread::sleep(t.beacon_interval * 4);
    assert_worker_alive(&mut p, "after a dkv node joined and bootstrapped");

    assert!(p.quit(Duration::from_secs(5)), "p did not exit on quit");
    let mut p2 = must_start(Kind::Prototype, "p2", places[0], t);
    assert_eq!(wait_get(&mut p2, "from-d1", t.within(6)), "set on d1");
    wait_bootstrapped(&mut p2, t);
    wait_keys(&mut p2, &live, t.within(4));
    assert!(
        !p2.keys().iter().any(|k| k == "doomed"),
        "the deleted key was offered to a fresh prototype"
    );
    assert_eq!(p2.get("doomed", 300), None);
    assert_worker_alive(&mut p2, "after its bootstrap beside three dkv nodes");
    wait_converged(&mut d, t.within(4));
}
