//! Prototype compatibility on one machine, over the loopback broadcast address
//! (127.255.255.255) on a port unique to each test: `dkv node` and the Python
//! prototype fixture (tests/prototype/prototype.py) discover each other, replicate
//! sets both ways, answer each other's gets and bootstrap from each other; and dkv
//! survives the three-node `list_answer` crossfire that kills the prototype's worker.
//! The fixture's own behaviour is checked first, so a failure with dkv is dkv's.
//!
//! Needs no root. Skips with a visible message when no Python with pyzmq can be
//! made (see harness/pyenv.rs) or the crate has no `dkv` binary.

mod harness;

use harness::nodes::{Kind, Place, Timings};
use harness::scenario::{
    crossfire, interop, must_start, prototype_beside_dkv_nodes, wait_get, wait_keys, worker_dead,
};
use harness::{dkv_or_skip, eventually, free_udp_port, python_or_skip};
use std::time::{Duration, Instant};

#[test]
fn fixture_prototypes_discover_replicate_answer_and_bootstrap_each_other() {
    let test = "fixture_prototypes_discover_replicate_answer_and_bootstrap_each_other";
    if !python_or_skip(test) {
        return;
    }
    let port = free_udp_port();
    let p = Place::Loopback(port);
    interop(
        Kind::Prototype,
        Kind::Prototype,
        p,
        p,
        Some("127.0.0.1"),
        Some("127.0.0.1"),
        Timings::short(),
    );
}

#[test]
fn fixture_prototype_worker_dies_in_the_list_answer_crossfire() {
    let test = "fixture_prototype_worker_dies_in_the_list_answer_crossfire";
    if !python_or_skip(test) {
        return;
    }
    let p = Place::Loopback(free_udp_port());
    let (mut p1, mut s, _p2) = crossfire(Kind::Prototype, [p, p, p], Timings::short());
    // Which of the two dies first is a race; crossfire() waited for one. Report both.
    eprintln!(
        "crossfire: p1 worker dead={}, s worker dead={}",
        worker_dead(&mut p1),
        worker_dead(&mut s)
    );
}

#[test]
fn dkv_late_joiner_and_prototype_late_joiner_interoperate_over_loopback() {
    let test = "dkv_late_joiner_and_prototype_late_joiner_interoperate_over_loopback";
    if !python_or_skip(test) || !dkv_or_skip(test) {
        return;
    }
    let p = Place::Loopback(free_udp_port());
    // a = prototype, b = dkv: dkv bootstraps from the prototype, then a fresh
    // prototype bootstraps from dkv.
    interop(
        Kind::Prototype,
        Kind::Dkv,
        p,
        p,
        Some("127.0.0.1"),
        Some("127.0.0.1"),
        Timings::fast(),
    );
}

#[test]
fn prototype_late_joiner_and_dkv_late_joiner_interoperate_over_loopback() {
    let test = "prototype_late_joiner_and_dkv_late_joiner_interoperate_over_loopback";
    if !python_or_skip(test) || !dkv_or_skip(test) {
        return;
    }
    let p = Place::Loopback(free_udp_port());
    // a = dkv, b = prototype: the prototype bootstraps from dkv, then a fresh dkv
    // bootstraps from the prototype.
    interop(
        Kind::Dkv,
        Kind::Prototype,
        p,
        p,
        Some("127.0.0.1"),
        Some("127.0.0.1"),
        Timings::fast(),
    );
}

#[test]
fn a_dkv_node_beside_two_prototypes_kills_neither_and_serves_both() {
    let test = "a_dkv_node_beside_two_prototypes_kills_neither_and_serves_both";
    if !python_or_skip(test) || !dkv_or_skip(test) {
        return;
    }
    let t = Timings::fast();
    let p = Place::Loopback(free_udp_port());
    let (_p1, mut dkv, mut p2) = crossfire(Kind::Dkv, [p, p, p], t);
    // p2 bootstrapped from p1's list answer (dkv left that list to p1, so p1's worker
    // lives), and dkv serves both ways.
    wait_keys(
        &mut p2,
        &["warm-s".to_string(), "warm-p1".to_string()],
        t.within(10),
    );
    dkv.set("after-crossfire", "still here");
    wait_keys(&mut p2, &["after-crossfire".to_string()], t.within(4));
    p2.set("from-p2", "late");
    wait_keys(&mut dkv, &["from-p2".to_string()], t.within(4));
    assert_eq!(
        wait_get(&mut p2, "after-crossfire", t.within(2)),
        "still here"
    );
    assert!(dkv.is_running(), "dkv exited after the crossfire");
}

/// The rule: one prototype node survives beside any number of dkv nodes, and
/// they serve each other both ways (see the scenario).
#[test]
fn one_prototype_survives_and_interoperates_beside_three_dkv_nodes_over_loopback() {
    let test = "one_prototype_survives_and_interoperates_beside_three_dkv_nodes_over_loopback";
    if !python_or_skip(test) || !dkv_or_skip(test) {
        return;
    }
    let p = Place::Loopback(free_udp_port());
    prototype_beside_dkv_nodes([p; 4], Timings::fast());
}

/// dkv's pipelined bootstrap against a real prototype peer: the prototype answers a
/// window of questions in flight without losing any (its SUB and PUB queues hold
/// them), so dkv learns thousands of keys, where the prototype itself would fetch
/// about ten a second. The time taken is printed, not asserted.
#[test]
fn dkv_bootstraps_thousands_of_keys_from_a_prototype() {
    let test = "dkv_bootstraps_thousands_of_keys_from_a_prototype";
    if !python_or_skip(test) || !dkv_or_skip(test) {
        return;
    }
    const KEYS: usize = 2000;
    let t = Timings::fast();
    let p = Place::Loopback(free_udp_port());
    let mut proto = must_start(Kind::Prototype, "prototype", p, t);
    for i in 0..KEYS {
        proto.set(&format!("bulk-{i:05}"), &format!("bulk value {i}"));
    }
    let started = Instant::now();
    let mut dkv = must_start(Kind::Dkv, "dkv", p, t);
    let limit = t.within(8) + Duration::from_secs(30);
    eventually(limit, Duration::from_millis(200), || {
        let held = dkv.keys().len();
        if held >= KEYS {
            Ok(())
        } else {
            Err(format!("dkv holds {held} of {KEYS} keys"))
        }
    })
    .unwrap_or_else(|e| panic!("{e}\n--- dkv ---\n{}", dkv.stderr_tail()));
    eprintln!(
        "dkv bootstrapped {KEYS} keys from a prototype peer in {:?} from its start \
         (bootstrap delay {:?} included; prototype pace: ~{} s)",
        started.elapsed(),
        t.beacon_interval * 2,
        KEYS / 10
    );
    assert_eq!(dkv.get("bulk-01234", 0).as_deref(), Some("bulk value 1234"));
    assert_eq!(
        proto.stats().get("worker_alive").map(String::as_str),
        Some("1")
    );
}
