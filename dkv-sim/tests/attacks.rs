//! Directed scenarios for the core's limits and for hostile input: the bounds hold
//! for the honest nodes, and every bound check is shown able to fail by a scenario
//! that breaks its rule on purpose.

use dkv_proto::{Limits, Timings};
use dkv_sim::run::{limits_for, DEFAULT_LIMITS_UP_TO};
use dkv_sim::{Attack, Clock, NetConfig, Sim};
use std::time::Duration;

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

fn add(sim: &mut Sim) -> usize {
    let h = sim.add_host();
    sim.add_node(h, Clock::default())
}

fn assert_clean(sim: &Sim) {
    assert!(sim.violations().is_empty(), "{:#?}", sim.violations());
}

/// Limits that admit at most three peers.
fn three_peers() -> Limits {
    Limits {
        max_peers: 3,
        ..Limits::default()
    }
}

// ---- limits sized to the cluster ----

#[test]
fn runs_use_the_default_limits_up_to_128_nodes_and_room_for_every_peer_above() {
    assert_eq!(limits_for(48), Limits::default());
    assert_eq!(limits_for(DEFAULT_LIMITS_UP_TO), Limits::default());
    let big = limits_for(300);
    assert!(big.max_peers >= 2 * 300);
    assert!(big.new_peers.burst as usize > 300);
    assert_eq!(big.validate(), Ok(()));
    // A bucket that partitions drained refills for the whole cluster as fast as
    // the defaults refill for 128 nodes: 6.4 s (the peers check is 10 s after the
    // faults end). With the default 20/s, 1,001 peers would take 50 s.
    let default_refill = Limits::default().new_peers.every * DEFAULT_LIMITS_UP_TO as u32;
    for nodes in [129, 300, 1000, 5000] {
        let l = limits_for(nodes);
        assert!(
            l.new_peers.every * (nodes as u32 + 1) <= default_refill,
            "{nodes} nodes: {:?} per new peer",
            l.new_peers.every
        );
    }
}

#[test]
fn a_cluster_larger_than_max_peers_stays_within_it_and_fails_the_peers_check() {
    // The 300-node case in small: nodes configured for three peers in a cluster of
    // six see three and no more; the liveness check reports the missing ones.
    let mut sim = Sim::new(NetConfig::default(), Timings::default(), 91);
    *sim.limits_mut() = three_peers();
    let n: Vec<usize> = (0..6).map(|_| add(&mut sim)).collect();
    sim.run_for(secs(8.0));
    assert_clean(&sim);
    for &s in &n {
        assert_eq!(sim.node(s).unwrap().peers().count(), 3);
        assert!(sim.node(s).unwrap().stats().drop_peer_limit > 0);
    }
    assert_eq!(sim.check_peers(), 0);
    assert!(sim.violations()[0].what.contains("sees 3 peers, want 5"));
}

#[test]
fn a_node_that_ignores_its_max_peers_fails_the_peer_bound_check() {
    let mut sim = Sim::new(NetConfig::default(), Timings::default(), 92);
    *sim.limits_mut() = three_peers();
    sim.run_nodes_with_limits(Limits::default());
    for _ in 0..6 {
        add(&mut sim);
    }
    sim.run_for(secs(8.0));
    assert!(
        sim.violations()
            .iter()
            .any(|v| v.what.contains("over max_peers 3")),
        "{:#?}",
        sim.violations()
    );
}

// ---- a stalled subscriber ----

/// Three nodes; the third stops reading and the first writes 400 keys over 4 s.
/// Returns the sim, the nodes, and how many of the writes the second node held
/// 100 ms after their batch: all of them if the stall costs the others nothing.
fn stall_scenario(net: NetConfig) -> (Sim, Vec<usize>, usize) {
    let mut sim = Sim::new(net, Timings::default(), 93);
    let n: Vec<usize> = (0..3).map(|_| add(&mut sim)).collect();
    sim.run_for(secs(6.0));
    sim.stall(n[2]);
    let mut prompt = 0;
    for batch in 0..40 {
        for i in 0..10 {
            let key = format!("k{batch}-{i}");
            sim.set(n[0], &key, format!("v{batch}").into());
        }
        sim.run_for(secs(0.1));
        prompt += (0..10)
            .filter(|i| {
                sim.core(n[1])
                    .unwrap()
                    .value(&format!("k{batch}-{i}"))
                    .is_some()
            })
            .count();
    }
    (sim, n, prompt)
}

#[test]
fn a_stalled_subscriber_does_not_slow_replication_to_the_others_and_catches_up_after() {
    let net = NetConfig {
        hwm: 50,
        ..NetConfig::default()
    };
    let (mut sim, n, prompt) = stall_scenario(net);
    assert_eq!(prompt, 400, "every write reached the reading node at once");
    assert!(sim.counters().dropped_hwm > 0, "the stalled pipe filled up");
    assert!(sim.core(n[2]).unwrap().value("k0-0").is_none());
    assert_clean(&sim);
    // Its peers still see it (its beacons go on), and when it reads again it has
    // the backlog at once and the rest by reconciliation.
    assert_eq!(sim.node(n[0]).unwrap().peers().count(), 2);
    sim.resume(n[2]);
    sim.run_for(secs(10.0));
    assert_eq!(sim.check_converged(), 1, "{:#?}", sim.violations());
    assert_eq!(sim.core(n[2]).unwrap().value("k39-9").unwrap(), b"v39");
    assert_clean(&sim);
}

#[test]
fn with_nodrop_one_stalled_subscriber_stops_replication_to_everyone() {
    // The network as ZeroMQ's XPUB_NODROP behaves: the same scenario fails the
    // promptness check.
    let net = NetConfig {
        hwm: 50,
        nodrop: true,
        ..NetConfig::default()
    };
    let (sim, _, prompt) = stall_scenario(net);
    assert!(prompt < 400 / 2, "only {prompt} of 400 arrived at once");
    assert!(sim.counters().blocked_nodrop > 0);
}

// ---- a hostile host ----

/// `n` honest nodes and a hostile host sending `attacks` for `attack_secs`, then
/// quiet; honest writes go on throughout.
fn hostile_lan(seed: u64, n: usize, attacks: &[Attack], attack_secs: f64) -> (Sim, Vec<usize>) {
    hostile_lan_paced(seed, n, attacks, attack_secs, None)
}

/// [`hostile_lan`] with the hostile host's pace: a burst every so often, floods of
/// up to so many.
fn hostile_lan_paced(
    seed: u64,
    n: usize,
    attacks: &[Attack],
    attack_secs: f64,
    pace: Option<(Duration, u64)>,
) -> (Sim, Vec<usize>) {
    let mut sim = Sim::new(NetConfig::default(), Timings::default(), seed);
    let nodes: Vec<usize> = (0..n).map(|_| add(&mut sim)).collect();
    sim.run_for(secs(3.0));
    let h = sim.add_host();
    sim.add_hostile(h, attacks);
    if let Some((every, flood)) = pace {
        sim.hostile_pace(every, flood);
    }
    let steps = (attack_secs * 10.0) as usize;
    for i in 0..steps {
        let w = nodes[i % n];
        sim.set(w, &format!("k{}", i % 40), format!("honest-{i}").into());
        sim.run_for(secs(0.1));
    }
    sim.calm_hostile();
    (sim, nodes)
}

/// After the attack, the honest nodes see each other (and no one else, once the
/// spoofed peers time out), hold identical stores, and take fresh writes.
fn assert_recovers(sim: &mut Sim, nodes: &[usize]) {
    sim.run_for(secs(12.0));
    assert_clean(sim);
    assert_eq!(
        sim.check_peers(),
        nodes.len() as u64,
        "{:#?}",
        sim.violations()
    );
    assert_eq!(sim.check_converged(), 1, "{:#?}", sim.violations());
    assert_eq!(sim.check_store_bounds(), nodes.len() as u64);
    let fresh = vec![("fresh".to_string(), bytes::Bytes::from("after"))];
    sim.set(nodes[0], "fresh", "after".into());
    sim.run_for(secs(1.0));
    assert_eq!(sim.check_holds(&fresh), nodes.len() as u64);
    assert_clean(sim);
}

fn stats(sim: &Sim) -> dkv_proto::Stats {
    sim.node_stats()
}

#[test]
fn forged_and_replayed_writes_are_taken_in_the_open_cluster_and_the_honest_checks_hold() {
    let (mut sim, n) = hostile_lan(
        101,
        4,
        &[
            Attack::Forge,
            Attack::ForgePush,
            Attack::Replay,
            Attack::Corrupt,
        ],
        10.0,
    );
    assert!(sim.hostile_sent() > 20);
    // By design, the open cluster takes forged writes: some landed.
    let forged = n
        .iter()
        .flat_map(|&s| {
            sim.node(s)
                .unwrap()
                .entries()
                .map(|(_, e)| e.clone())
                .collect::<Vec<_>>()
        })
        .filter(|e| e.value.as_ref().is_some_and(|v| v.starts_with(b"forged-")))
        .count();
    assert!(forged > 0);
    let st = stats(&sim);
    assert!(st.drop_clock_ahead > 0, "versions far ahead are refused");
    assert_recovers(&mut sim, &n);
}

#[test]
fn oversized_input_is_dropped_and_counted_before_decoding() {
    let (mut sim, n) = hostile_lan(102, 3, &[Attack::Oversized], 5.0);
    let st = stats(&sim);
    assert!(st.drop_oversized > 0, "{st:?}");
    assert!(st.drop_key_too_long + st.drop_value_too_large > 0, "{st:?}");
    assert!(n
        .iter()
        .all(|&s| sim.node(s).unwrap().entries().all(|(k, _)| k.len() <= 1024)));
    assert_recovers(&mut sim, &n);
}

#[test]
fn floods_of_questions_lists_asks_and_syncs_are_rate_limited() {
    // About 50,000 requests a second, mostly for held keys: past every global rate.
    let (mut sim, n) = hostile_lan_paced(
        103,
        3,
        &[
            Attack::QuestionFlood,
            Attack::ListFlood,
            Attack::AskFlood,
            Attack::SyncFlood,
        ],
        2.0,
        Some((Duration::from_millis(10), 600)),
    );
    let st = stats(&sim);
    assert!(st.drop_list_rate > 0, "{st:?}");
    assert!(st.drop_answer_rate > 0, "{st:?}");
    assert!(st.drop_request_rate > 0, "{st:?}");
    // The oracle's work bound held on every answer (no violation so far).
    assert_recovers(&mut sim, &n);
}

#[test]
fn spoofed_beacons_on_many_ports_stay_within_the_peer_limits() {
    let (mut sim, n) = hostile_lan(104, 3, &[Attack::BeaconFlood], 10.0);
    let st = stats(&sim);
    assert!(st.drop_peer_ip_limit + st.drop_peer_rate > 0, "{st:?}");
    // The oracle checked every connect against max_peers and max_peers_per_ip.
    for &s in &n {
        assert!(sim.node(s).unwrap().peers().count() <= Limits::default().max_peers);
    }
    assert_recovers(&mut sim, &n);
}

#[test]
fn a_hostile_run_is_bit_identical_per_seed() {
    let run = || {
        let (mut sim, _) = hostile_lan(105, 3, &Attack::ALL, 3.0);
        sim.run_for(secs(1.0));
        sim.hash_stores();
        (sim.trace_hash(), sim.hostile_sent())
    };
    assert_eq!(run(), run());
}

// ---- each hostile bound check can fail ----

#[test]
fn nodes_that_ignore_their_peer_limits_under_spoofed_beacons_fail_the_bound_check() {
    let mut sim = Sim::new(NetConfig::default(), Timings::default(), 106);
    sim.run_nodes_with_limits(Limits {
        max_peers_per_ip: 100_000,
        max_peers: 100_000,
        new_peers: dkv_proto::Rate::per_second(100_000, 100_000),
        ..Limits::default()
    });
    add(&mut sim);
    add(&mut sim);
    let h = sim.add_host();
    sim.add_hostile(h, &[Attack::BeaconFlood]);
    sim.run_for(secs(5.0));
    assert!(
        sim.violations()
            .iter()
            .any(|v| v.what.contains("over max_peers_per_ip")),
        "{:#?}",
        sim.violations()
    );
}

#[test]
fn nodes_that_ignore_their_answer_rates_under_a_flood_fail_the_work_bound_check() {
    let mut sim = Sim::new(NetConfig::default(), Timings::default(), 107);
    sim.run_nodes_with_limits(Limits {
        list_answers_per_asker: dkv_proto::Rate::per_second(100_000, 100_000),
        list_answers_total: dkv_proto::Rate::per_second(100_000, 100_000),
        ..Limits::default()
    });
    add(&mut sim);
    add(&mut sim);
    let h = sim.add_host();
    sim.add_hostile(h, &[Attack::ListFlood]);
    sim.run_for(secs(5.0));
    assert!(
        sim.violations()
            .iter()
            .any(|v| v.what.contains("list answers in")),
        "{:#?}",
        sim.violations()
    );
}

#[test]
fn the_store_cap_bounds_invented_keys_and_a_node_past_it_fails_the_check() {
    let small = Limits {
        max_store_keys: 30,
        ..Limits::default()
    };
    // Within the cap: refused and counted, the check passes.
    let mut sim = Sim::new(NetConfig::default(), Timings::default(), 108);
    *sim.limits_mut() = small.clone();
    let n: Vec<usize> = (0..3).map(|_| add(&mut sim)).collect();
    sim.run_for(secs(3.0));
    let h = sim.add_host();
    sim.add_hostile(h, &[Attack::Forge]);
    sim.run_for(secs(15.0));
    assert!(stats(&sim).drop_store_full > 0);
    assert_eq!(sim.check_store_bounds(), n.len() as u64);
    assert_clean(&sim);
    // The same with nodes that ignore the cap: the check fires.
    let mut sim = Sim::new(NetConfig::default(), Timings::default(), 108);
    *sim.limits_mut() = small;
    sim.run_nodes_with_limits(Limits::default());
    for _ in 0..3 {
        add(&mut sim);
    }
    sim.run_for(secs(3.0));
    let h = sim.add_host();
    sim.add_hostile(h, &[Attack::Forge]);
    sim.run_for(secs(15.0));
    assert_eq!(sim.check_store_bounds(), 0);
    assert!(sim.violations()[0].what.contains("over max_store_keys 30"));
}
