//! Directed scenarios: small clusters put through one named situation each, with
//! the outcome the protocol promises (or, honestly, does not promise) asserted.

use bytes::Bytes;
use dkv_proto::{BootstrapPhase, Timings};
use dkv_sim::{ConnStatus, NetConfig, Shape, Sim};
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

/// `n` nodes, one per host, on a clean LAN, run until they have met.
fn lan(seed: u64, n: usize, net: NetConfig) -> (Sim, Vec<usize>) {
    let mut sim = Sim::new(net, Timings::default(), seed);
    let nodes = (0..n)
        .map(|_| {
            let h = sim.add_host();
            sim.add_node(h, 0)
        })
        .collect();
    sim.run_for(secs(6.0));
    (sim, nodes)
}

fn add(sim: &mut Sim) -> usize {
    let h = sim.add_host();
    sim.add_node(h, 0)
}

fn peers(sim: &Sim, slot: usize) -> BTreeSet<SocketAddr> {
    sim.node(slot).unwrap().peers().collect()
}

fn ep(sim: &Sim, slot: usize) -> SocketAddr {
    sim.endpoint(slot).unwrap()
}

/// Every running node sees exactly every other running node, and its SUB socket is
/// connected to exactly those.
fn assert_full_mesh(sim: &Sim) {
    let live = sim.live();
    for &s in &live {
        let want: BTreeSet<_> = live
            .iter()
            .filter(|&&o| o != s)
            .map(|&o| ep(sim, o))
            .collect();
        assert_eq!(peers(sim, s), want, "node {s}'s peers");
        let connected: BTreeSet<_> = sim.connected(s).into_iter().collect();
        assert_eq!(connected, want, "node {s}'s connections");
        for e in want {
            assert_eq!(
                sim.conn_status(s, e),
                Some(ConnStatus::Up),
                "node {s} -> {e}"
            );
        }
    }
}

fn assert_clean(sim: &Sim) {
    assert!(sim.violations().is_empty(), "{:?}", sim.violations());
}

fn value(sim: &Sim, slot: usize, key: &str) -> Option<Bytes> {
    sim.node(slot).unwrap().value(key).cloned()
}

#[test]
fn nodes_on_a_clean_lan_meet_and_replicate_sets() {
    let (mut sim, n) = lan(1, 5, NetConfig::default());
    assert_full_mesh(&sim);
    sim.set(n[0], "k", "v".into());
    sim.run_for(secs(0.1));
    for &s in &n {
        assert_eq!(value(&sim, s, "k").as_deref(), Some(&b"v"[..]));
    }
    assert_clean(&sim);
}

#[test]
fn three_node_list_answer_crossfire_is_dropped_not_fatal() {
    // The prototype dies here: a third node's `list` makes both older nodes answer
    // `list_answer <asker>`, and each receives the other's through its `list` prefix.
    // Subscribing like the prototype puts dkv nodes in that crossfire.
    let net = NetConfig {
        prototype_list_subscription: true,
        ..NetConfig::default()
    };
    let (mut sim, n) = lan(2, 2, net);
    sim.set(n[0], "a", "1".into());
    sim.set(n[1], "b", "2".into());
    sim.run_for(secs(0.1));
    let before: Vec<_> = n
        .iter()
        .map(|&s| sim.node(s).unwrap().stats().clone())
        .collect();
    let c = add(&mut sim);
    sim.run_for(secs(8.0));
    for (&old, was) in n.iter().zip(&before) {
        let stats = sim.node(old).unwrap().stats();
        assert_eq!(
            stats.out_list_answer,
            was.out_list_answer + 1,
            "node {old} answers C's list"
        );
        // It receives the other's answer to C through its `list` prefix and drops it.
        assert_eq!(
            stats.drop_list_answer_not_ours,
            was.drop_list_answer_not_ours + 1
        );
        assert_eq!(
            stats.in_list_answer, was.in_list_answer,
            "node {old} took C's answer"
        );
    }
    let crossfire: u64 = n
        .iter()
        .zip(&before)
        .map(|(&s, was)| {
            sim.node(s).unwrap().stats().drop_list_answer_not_ours - was.drop_list_answer_not_ours
        })
        .sum();
    assert_eq!(
        crossfire, 2,
        "both old nodes received and dropped the other's"
    );
    let joiner = sim.node(c).unwrap();
    assert_eq!(joiner.bootstrap().phase, BootstrapPhase::Done);
    assert_eq!(joiner.stats().drop_list_answer_not_ours, 0);
    assert_eq!(value(&sim, c, "a").as_deref(), Some(&b"1"[..]));
    assert_eq!(value(&sim, c, "b").as_deref(), Some(&b"2"[..]));
    // Everyone keeps working afterwards.
    sim.set(n[1], "after", "3".into());
    sim.run_for(secs(0.1));
    for s in [n[0], n[1], c] {
        assert_eq!(value(&sim, s, "after").as_deref(), Some(&b"3"[..]));
    }
    assert_full_mesh(&sim);
    assert_clean(&sim);
}

#[test]
fn late_joiner_bootstraps_every_key_with_its_value() {
    let (mut sim, n) = lan(3, 3, NetConfig::default());
    for i in 0..300 {
        let v = Bytes::from(format!("value-{i}"));
        sim.set(n[i % 3], &format!("key/{i}"), v);
    }
    sim.run_for(secs(20.0));
    let late = add(&mut sim);
    sim.run_for(secs(8.0));
    let node = sim.node(late).unwrap();
    assert_eq!(node.bootstrap().phase, BootstrapPhase::Done);
    assert_eq!(node.keys().count(), 300);
    for i in 0..300 {
        let want = format!("value-{i}");
        assert_eq!(
            value(&sim, late, &format!("key/{i}")).as_deref(),
            Some(want.as_bytes())
        );
    }
    assert_full_mesh(&sim);
    assert_clean(&sim);
}

#[test]
fn symmetric_partition_splits_the_peers_and_heals_without_reconciling() {
    let (mut sim, n) = lan(4, 4, NetConfig::default());
    let (h0, h1) = (sim.host_of(n[0]), sim.host_of(n[1]));
    let cut = sim.partition(&Shape::Groups(vec![vec![h0, h1]]));
    sim.run_for(secs(6.0));
    assert_eq!(peers(&sim, n[0]), BTreeSet::from([ep(&sim, n[1])]));
    assert_eq!(peers(&sim, n[2]), BTreeSet::from([ep(&sim, n[3])]));
    sim.set(n[0], "left", "L".into());
    sim.run_for(secs(0.5));
    assert_eq!(value(&sim, n[1], "left").as_deref(), Some(&b"L"[..]));
    assert_eq!(value(&sim, n[2], "left"), None);

    sim.heal(cut);
    sim.run_for(secs(3.0));
    assert_full_mesh(&sim);
    sim.set(n[2], "after", "A".into());
    sim.run_for(secs(0.1));
    for &s in &n {
        assert_eq!(value(&sim, s, "after").as_deref(), Some(&b"A"[..]));
    }
    // Honest about the protocol: nothing re-sends what was set during the
    // partition; the other side learns it only by asking or by bootstrapping.
    assert_eq!(value(&sim, n[3], "left"), None);
    let id = sim.get(n[3], "left").unwrap();
    sim.run_for(secs(0.2));
    assert_eq!(sim.get_result(n[3], id), Some(&Some(Bytes::from("L"))));
    assert_clean(&sim);
}

#[test]
fn one_way_partition_times_out_only_the_unheard_side() {
    let (mut sim, n) = lan(5, 3, NetConfig::default());
    let (h0, h1) = (sim.host_of(n[0]), sim.host_of(n[1]));
    let cut = sim.partition(&Shape::OneWay {
        from: vec![h0],
        to: vec![h1],
    });
    sim.run_for(secs(6.0));
    // Node 1 no longer hears node 0's beacons; node 0 still hears node 1's.
    assert!(!peers(&sim, n[1]).contains(&ep(&sim, n[0])));
    assert!(peers(&sim, n[0]).contains(&ep(&sim, n[1])));
    assert!(peers(&sim, n[2]).contains(&ep(&sim, n[0])));
    sim.heal(cut);
    sim.run_for(secs(3.0));
    assert_full_mesh(&sim);
    assert_clean(&sim);
}

#[test]
fn flapping_link_goes_down_and_up_then_catches_up_by_bootstrap() {
    let (mut sim, n) = lan(6, 3, NetConfig::default());
    let h = sim.host_of(n[2]);
    for round in 0..5 {
        sim.link_down(h);
        sim.set(
            n[0],
            &format!("flap/{round}"),
            Bytes::from(format!("down-{round}")),
        );
        sim.run_for(secs(1.5));
        sim.link_up(h);
        sim.run_for(secs(1.5));
    }
    sim.run_for(secs(8.0));
    let stats = sim.node(n[2]).unwrap().stats();
    assert!(stats.net_down >= 5, "net_down {}", stats.net_down);
    assert!(stats.net_up >= 6, "net_up {}", stats.net_up);
    assert!(stats.bootstraps_started >= 6);
    for round in 0..5 {
        let want = format!("down-{round}");
        assert_eq!(
            value(&sim, n[2], &format!("flap/{round}")).as_deref(),
            Some(want.as_bytes())
        );
    }
    assert_full_mesh(&sim);
    assert_clean(&sim);
}

#[test]
fn link_down_longer_than_the_peer_timeout_drops_peers_and_recovers() {
    let (mut sim, n) = lan(7, 3, NetConfig::default());
    let h = sim.host_of(n[2]);
    sim.link_down(h);
    sim.run_for(secs(6.0));
    assert!(peers(&sim, n[2]).is_empty());
    assert!(!peers(&sim, n[0]).contains(&ep(&sim, n[2])));
    assert_eq!(sim.node(n[2]).unwrap().local_ip(), None);
    sim.set(n[0], "while-away", "w".into());
    sim.link_up(h);
    sim.run_for(secs(8.0));
    assert_full_mesh(&sim);
    assert_eq!(value(&sim, n[2], "while-away").as_deref(), Some(&b"w"[..]));
    assert_clean(&sim);
}

#[test]
fn node_that_moves_to_a_new_ip_is_found_there_and_forgotten_at_the_old_one() {
    let (mut sim, n) = lan(8, 3, NetConfig::default());
    let old = ep(&sim, n[2]);
    let h = sim.host_of(n[2]);
    sim.change_ip(h);
    let new = ep(&sim, n[2]);
    assert_ne!(old.ip(), new.ip());
    assert_eq!(old.port(), new.port());
    sim.run_for(secs(8.0));
    assert_eq!(sim.node(n[2]).unwrap().local_ip(), Some(new.ip()));
    for s in [n[0], n[1]] {
        let p = peers(&sim, s);
        assert!(p.contains(&new) && !p.contains(&old), "node {s}: {p:?}");
    }
    assert_full_mesh(&sim);
    sim.set(n[2], "from-moved", "m".into());
    sim.set(n[0], "to-moved", "t".into());
    sim.run_for(secs(0.1));
    assert_eq!(value(&sim, n[0], "from-moved").as_deref(), Some(&b"m"[..]));
    assert_eq!(value(&sim, n[2], "to-moved").as_deref(), Some(&b"t"[..]));
    assert_clean(&sim);
}

#[test]
fn slow_joiner_misses_sets_published_before_its_subscription_and_bootstrap_recovers_them() {
    let net = NetConfig {
        latency: Duration::from_millis(20),
        jitter: Duration::ZERO,
        ..NetConfig::default()
    };
    let (mut sim, n) = lan(9, 2, net);
    let c = add(&mut sim);
    let a_ep = ep(&sim, n[0]);
    // Wait until C has asked to connect to A but the handshake is not done.
    let connecting = sim.run_until_true(secs(3.0), |s| {
        matches!(
            s.conn_status(c, a_ep),
            Some(ConnStatus::Connecting | ConnStatus::Handshake)
        )
    });
    assert!(connecting);
    sim.set(n[0], "early", "e".into());
    sim.run_for(secs(0.5));
    assert_eq!(sim.conn_status(c, a_ep), Some(ConnStatus::Up));
    assert_eq!(value(&sim, n[1], "early").as_deref(), Some(&b"e"[..]));
    assert_eq!(
        value(&sim, c, "early"),
        None,
        "the set reached the slow joiner"
    );
    // Its bootstrap lists A's keys and fetches the one it missed.
    sim.run_for(secs(6.0));
    assert_eq!(sim.node(c).unwrap().bootstrap().phase, BootstrapPhase::Done);
    assert_eq!(value(&sim, c, "early").as_deref(), Some(&b"e"[..]));
    assert_clean(&sim);
}

#[test]
fn crashed_node_restarts_empty_with_a_new_identity_and_bootstraps() {
    let (mut sim, n) = lan(10, 3, NetConfig::default());
    sim.set(n[0], "kept", "k".into());
    sim.run_for(secs(0.1));
    let old_ep = ep(&sim, n[1]);
    let old_id = sim.node(n[1]).unwrap().id();
    sim.crash(n[1]);
    sim.run_for(secs(6.0));
    assert!(!peers(&sim, n[0]).contains(&old_ep));
    sim.restart(n[1]);
    assert_ne!(sim.node(n[1]).unwrap().id(), old_id);
    assert_ne!(ep(&sim, n[1]), old_ep);
    assert_eq!(value(&sim, n[1], "kept"), None);
    sim.run_for(secs(8.0));
    assert_eq!(value(&sim, n[1], "kept").as_deref(), Some(&b"k"[..]));
    assert_full_mesh(&sim);
    assert_clean(&sim);
}

#[test]
fn graceful_stop_disconnects_everything_it_connected() {
    let (mut sim, n) = lan(11, 4, NetConfig::default());
    // Not vacuous: it was connected to all three others when it stopped (`stop`
    // reports a violation for every connect its shutdown did not undo).
    assert_eq!(sim.connected(n[3]).len(), 3);
    sim.stop(n[3]);
    assert!(sim.node(n[3]).is_none());
    sim.run_for(secs(6.0));
    assert_full_mesh(&sim);
    assert_clean(&sim);
}

#[test]
fn fast_and_slow_clocks_still_meet_and_replicate() {
    let mut sim = Sim::new(NetConfig::default(), Timings::default(), 12);
    let n: Vec<usize> = [-50_000, 0, 50_000, 20_000]
        .into_iter()
        .map(|ppm| {
            let h = sim.add_host();
            sim.add_node(h, ppm)
        })
        .collect();
    sim.run_for(secs(30.0));
    assert_full_mesh(&sim);
    sim.set(n[0], "skew", "s".into());
    sim.run_for(secs(0.1));
    for &s in &n {
        assert_eq!(value(&sim, s, "skew").as_deref(), Some(&b"s"[..]));
    }
    assert_clean(&sim);
}

#[test]
fn several_nodes_on_one_host_tell_their_own_beacons_from_each_others() {
    let mut sim = Sim::new(NetConfig::default(), Timings::default(), 13);
    let h = sim.add_host();
    let n: Vec<usize> = (0..3).map(|_| sim.add_node(h, 0)).collect();
    let other = add(&mut sim);
    sim.run_for(secs(6.0));
    assert_full_mesh(&sim);
    for &s in &n {
        assert!(sim.node(s).unwrap().stats().beacons_own > 0);
    }
    sim.set(other, "k", "v".into());
    sim.run_for(secs(0.1));
    assert_eq!(value(&sim, n[2], "k").as_deref(), Some(&b"v"[..]));
    assert_clean(&sim);
}

#[test]
fn lossy_duplicating_beacons_keep_peers_up() {
    let net = NetConfig {
        beacon_loss: 0.3,
        beacon_dup: 0.3,
        beacon_jitter: Duration::from_millis(400),
        ..NetConfig::default()
    };
    let (mut sim, _) = lan(14, 5, net);
    sim.run_for(secs(20.0));
    assert!(sim.counters().beacons_duplicated > 0 && sim.counters().beacons_lost > 0);
    assert_full_mesh(&sim);
    assert_clean(&sim);
}

#[test]
fn small_send_hwm_drops_messages_but_never_reorders_them() {
    let net = NetConfig {
        hwm: 5,
        jitter: Duration::from_millis(10),
        ..NetConfig::default()
    };
    let (mut sim, n) = lan(15, 2, net);
    for i in 0..50 {
        sim.set(n[0], "seq", Bytes::from(format!("{i:03}")));
    }
    sim.run_for(secs(1.0));
    assert!(sim.counters().dropped_hwm >= 45);
    // FIFO: what arrived last is the last of the five that fit, never an older one.
    assert_eq!(value(&sim, n[1], "seq").as_deref(), Some(&b"004"[..]));
    assert_clean(&sim);
}

#[test]
fn dkv_list_subscription_keeps_the_crossfire_off_the_wire_and_still_bootstraps() {
    let (mut sim, n) = lan(16, 3, NetConfig::default());
    sim.set(n[0], "a", "1".into());
    sim.run_for(secs(0.1));
    let c = add(&mut sim);
    sim.run_for(secs(8.0));
    assert_eq!(sim.node_stats().drop_list_answer_not_ours, 0);
    assert_eq!(sim.node(c).unwrap().bootstrap().phase, BootstrapPhase::Done);
    assert_eq!(value(&sim, c, "a").as_deref(), Some(&b"1"[..]));
    assert_clean(&sim);
}
