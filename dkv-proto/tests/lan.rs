//! Several cores on the simulated LAN of `dkv-sim` (the one LAN every multi-node test
//! uses): discovery, get timeouts, and the bootstrap from prototype peers with its
//! pacing, window, settle time, give-ups and restarts.

use bytes::Bytes;
use dkv_proto::{BootstrapPhase, Timings};
use dkv_sim::{Clock, NetConfig, Sim};
use std::time::Duration;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn dkv(sim: &mut Sim) -> usize {
    let h = sim.add_host();
    sim.add_node(h, Clock::default())
}

fn prototype(sim: &mut Sim) -> usize {
    let h = sim.add_host();
    sim.add_prototype(h)
}

#[test]
fn three_nodes_discover_each_other_within_one_and_a_half_seconds() {
    let mut sim = Sim::new(NetConfig::default(), Timings::default(), 1);
    let n: Vec<usize> = (0..3).map(|_| dkv(&mut sim)).collect();
    sim.run_for(ms(1_500));
    for &s in &n {
        let node = sim.node(s).unwrap();
        assert_eq!(node.peers().count(), 2, "node {s}");
        assert_eq!(sim.connected(s).len(), 2);
        assert!(n.iter().filter(|&&o| o != s).all(|&o| {
            let addr = sim.endpoint(o).unwrap();
            node.peer_id(addr) == Some(sim.node(o).unwrap().id())
        }));
    }
    assert!(sim.violations().is_empty(), "{:?}", sim.violations());
}

#[test]
fn a_get_of_a_key_nobody_holds_completes_empty_at_its_timeout() {
    let mut sim = Sim::new(NetConfig::default(), Timings::default(), 2);
    let n: Vec<usize> = (0..3).map(|_| dkv(&mut sim)).collect();
    sim.run_for(ms(3_000));
    let id = sim.get(n[0], "nobody").unwrap();
    sim.run_for(ms(99));
    assert_eq!(
        sim.get_result(n[0], id),
        None,
        "completed before its timeout"
    );
    sim.run_for(ms(2));
    assert_eq!(sim.get_result(n[0], id), Some(&None));
    assert!(sim.violations().is_empty(), "{:?}", sim.violations());
}

/// A prototype holding `keys` keys (`key/0` empty, which it never answers), and a
/// dkv node that starts once it has them.
fn prototype_then_dkv(seed: u64, keys: usize, timings: Timings) -> (Sim, usize, usize) {
    let mut sim = Sim::new(NetConfig::default(), timings, seed);
    let p = prototype(&mut sim);
    for i in 0..keys {
        let value = if i == 0 {
            Bytes::new()
        } else {
            Bytes::from(format!("value-{i}"))
        };
        sim.set(p, &format!("key/{i}"), value);
    }
    let d = dkv(&mut sim);
    (sim, p, d)
}

#[test]
fn a_dkv_node_bootstraps_from_a_prototype_by_list_and_pipelined_questions() {
    let (mut sim, p, d) = prototype_then_dkv(3, 50, Timings::default());
    // `list` goes out the bootstrap delay (2 s) after net up, not before.
    sim.run_for(ms(1_999));
    assert_eq!(sim.node(d).unwrap().stats().out_list, 0);
    sim.run_for(ms(2));
    assert_eq!(sim.node(d).unwrap().stats().out_list, 1);
    let done = sim.run_until_true(Duration::from_secs(10), |s| {
        s.node(d).unwrap().bootstrap().phase == BootstrapPhase::Done
    });
    assert!(done);
    let node = sim.node(d).unwrap();
    let stats = node.stats();
    assert_eq!(stats.bootstrap_keys_listed, 50);
    assert_eq!(stats.bootstrap_keys_requested, 50, "each key asked once");
    assert_eq!(stats.bootstrap_keys_received, 49);
    assert_eq!(stats.bootstrap_keys_unanswered, 1, "the empty value");
    assert_eq!(node.len(), 49);
    // What a prototype answers has no version: any dkv write beats it.
    let e = node.entry("key/7").unwrap();
    assert_eq!(e.version, dkv_proto::Version::UNVERSIONED);
    assert_eq!(e.value.as_deref(), Some(&b"value-7"[..]));
    assert!(sim.prototype(p).unwrap().dead().is_none());
    assert!(sim.violations().is_empty(), "{:?}", sim.violations());
}

#[test]
fn bootstrap_questions_stay_within_the_window() {
    let timings = Timings {
        bootstrap_window: 2,
        ..Timings::default()
    };
    let (mut sim, _, d) = prototype_then_dkv(4, 40, timings);
    let mut widest = 0;
    let done = sim.run_until_true(Duration::from_secs(15), |s| {
        let b = s.node(d).unwrap().bootstrap();
        widest = widest.max(b.in_flight);
        b.phase == BootstrapPhase::Done
    });
    assert!(done);
    assert_eq!(widest, 2);
    assert_eq!(sim.node(d).unwrap().len(), 39);
}

#[test]
fn bootstrap_settles_for_its_settle_time_after_the_last_answer() {
    let (mut sim, _, d) = prototype_then_dkv(5, 10, Timings::default());
    // Settling once every listed key was answered or given up (the empty one is
    // given up after the question timeout).
    let settling = sim.run_until_true(Duration::from_secs(10), |s| {
        let node = s.node(d).unwrap();
        node.bootstrap().phase == BootstrapPhase::Settling
            && node.stats().bootstrap_keys_unanswered == 1
    });
    assert!(settling);
    let since = sim.now();
    let done = sim.run_until_true(Duration::from_secs(5), |s| {
        s.node(d).unwrap().bootstrap().phase == BootstrapPhase::Done
    });
    assert!(done);
    let waited = sim.now() - since;
    assert!(
        waited >= ms(1_990) && waited <= ms(2_100),
        "settled for {waited:?}"
    );
    assert_eq!(sim.node(d).unwrap().stats().bootstraps_done, 1);
}

#[test]
fn with_no_peers_bootstrap_is_done_when_the_delay_ends() {
    let mut sim = Sim::new(NetConfig::default(), Timings::default(), 6);
    let d = dkv(&mut sim);
    sim.run_for(ms(1_999));
    assert_eq!(
        sim.node(d).unwrap().bootstrap().phase,
        BootstrapPhase::Waiting
    );
    sim.run_for(ms(2));
    assert_eq!(sim.node(d).unwrap().bootstrap().phase, BootstrapPhase::Done);
    assert_eq!(
        sim.node(d).unwrap().stats().out_list,
        0,
        "no prototype, no list"
    );
}

#[test]
fn losing_the_net_abandons_bootstrap_and_the_next_net_up_starts_afresh() {
    let (mut sim, _, d) = prototype_then_dkv(7, 30, Timings::default());
    let fetching = sim.run_until_true(Duration::from_secs(5), |s| {
        s.node(d).unwrap().bootstrap().phase == BootstrapPhase::Fetching
    });
    assert!(fetching);
    let h = sim.host_of(d);
    sim.link_down(h);
    sim.run_for(ms(1_500));
    assert_eq!(sim.node(d).unwrap().bootstrap().phase, BootstrapPhase::Idle);
    sim.link_up(h);
    let done = sim.run_until_true(Duration::from_secs(15), |s| {
        s.node(d).unwrap().bootstrap().phase == BootstrapPhase::Done
    });
    assert!(done);
    let stats = sim.node(d).unwrap().stats();
    assert_eq!(stats.bootstraps_started, 2);
    assert_eq!(sim.node(d).unwrap().len(), 29);
    assert!(sim.violations().is_empty(), "{:?}", sim.violations());
}
