//! Directed scenarios: small clusters put through one named situation each, with
//! the outcome dkv/2 promises asserted, and every oracle check shown able to fail.

use bytes::Bytes;
use dkv_proto::{BootstrapPhase, Timings};
use dkv_sim::{Clock, ConnStatus, NetConfig, Shape, Sim};
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

/// `n` dkv nodes, one per host, on a clean LAN, run until they have met and
/// reconciled.
fn lan(seed: u64, n: usize, net: NetConfig) -> (Sim, Vec<usize>) {
    let mut sim = Sim::new(net, Timings::default(), seed);
    let nodes = (0..n).map(|_| add(&mut sim)).collect();
    sim.run_for(secs(6.0));
    (sim, nodes)
}

fn add(sim: &mut Sim) -> usize {
    let h = sim.add_host();
    sim.add_node(h, Clock::default())
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
        let have: BTreeSet<_> = sim.core(s).unwrap().peers().into_iter().collect();
        assert_eq!(have, want, "node {s}'s peers");
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
    assert!(sim.violations().is_empty(), "{:#?}", sim.violations());
}

/// The oracle's convergence check passes: identical stores, each the highest
/// version every node applied.
fn assert_converged(sim: &mut Sim) {
    assert_eq!(sim.check_converged(), 1, "{:#?}", sim.violations());
    assert_clean(sim);
}

fn value(sim: &Sim, slot: usize, key: &str) -> Option<Bytes> {
    sim.core(slot)
        .unwrap()
        .value(key)
        .map(Bytes::copy_from_slice)
}

// ---- the basics ----

#[test]
fn nodes_on_a_clean_lan_meet_and_replicate_sets_and_deletes() {
    let (mut sim, n) = lan(1, 5, NetConfig::default());
    assert_full_mesh(&sim);
    sim.set(n[0], "k", "v".into());
    sim.run_for(secs(0.1));
    for &s in &n {
        assert_eq!(value(&sim, s, "k").as_deref(), Some(&b"v"[..]));
    }
    sim.delete(n[3], "k");
    sim.run_for(secs(0.1));
    for &s in &n {
        assert_eq!(value(&sim, s, "k"), None);
        assert!(sim.node(s).unwrap().entry("k").unwrap().is_tombstone());
    }
    assert_converged(&mut sim);
}

#[test]
fn a_late_joiner_reconciles_every_key_with_its_version_and_tombstones() {
    let (mut sim, n) = lan(3, 3, NetConfig::default());
    for i in 0..300 {
        let v = Bytes::from(format!("value-{i}"));
        sim.set(n[i % 3], &format!("key/{i}"), v);
    }
    for i in (0..300).step_by(7) {
        sim.delete(n[(i + 1) % 3], &format!("key/{i}"));
    }
    sim.run_for(secs(5.0));
    let late = add(&mut sim);
    let caught_up = sim.run_until_true(secs(10.0), |s| {
        s.node(late).unwrap().bootstrap().phase == BootstrapPhase::Done
    });
    assert!(caught_up, "{:?}", sim.node(late).unwrap().bootstrap());
    let node = sim.node(late).unwrap();
    assert_eq!(node.len(), 300 - 300_usize.div_ceil(7));
    assert_eq!(node.tombstones(), 300_usize.div_ceil(7));
    assert_eq!(node.summary(), sim.node(n[0]).unwrap().summary());
    assert_full_mesh(&sim);
    assert_converged(&mut sim);
}

#[test]
fn concurrent_writes_of_one_key_resolve_to_the_highest_version_everywhere() {
    let (mut sim, n) = lan(4, 4, NetConfig::default());
    for (i, &s) in n.iter().enumerate() {
        sim.set(s, "contested", Bytes::from(format!("from-{i}")));
    }
    sim.run_for(secs(1.0));
    let winner = sim.node(n[0]).unwrap().entry("contested").unwrap().clone();
    let highest = n
        .iter()
        .map(|&s| sim.held(s).unwrap()["contested"].version)
        .max()
        .unwrap();
    assert_eq!(winner.version, highest);
    assert_converged(&mut sim);
}

// ---- partitions ----

#[test]
fn a_two_sided_partition_with_writes_on_both_sides_converges_after_heal() {
    let (mut sim, n) = lan(5, 4, NetConfig::default());
    let (h0, h1) = (sim.host_of(n[0]), sim.host_of(n[1]));
    let cut = sim.partition(&Shape::Groups(vec![vec![h0, h1]]));
    sim.run_for(secs(6.0));
    assert_eq!(peers(&sim, n[0]), BTreeSet::from([ep(&sim, n[1])]));
    assert_eq!(peers(&sim, n[2]), BTreeSet::from([ep(&sim, n[3])]));
    // The same key on both sides: the right side writes later, so it wins.
    sim.set(n[0], "contested", "left".into());
    sim.run_for(secs(0.5));
    sim.set(n[3], "contested", "right".into());
    sim.set(n[1], "left-only", "L".into());
    sim.set(n[2], "right-only", "R".into());
    sim.run_for(secs(0.5));
    assert_eq!(value(&sim, n[2], "left-only"), None);
    assert_eq!(
        value(&sim, n[0], "contested").as_deref(),
        Some(&b"left"[..])
    );

    sim.heal(cut);
    let healed = sim.now();
    let converged = sim.run_until_true(secs(10.0), Sim::identical_dkv_stores);
    assert!(converged, "not converged 10 s after the heal");
    assert!(
        sim.now() - healed < secs(3.0),
        "took {:?}",
        sim.now() - healed
    );
    for &s in &n {
        assert_eq!(value(&sim, s, "contested").as_deref(), Some(&b"right"[..]));
        assert_eq!(value(&sim, s, "left-only").as_deref(), Some(&b"L"[..]));
        assert_eq!(value(&sim, s, "right-only").as_deref(), Some(&b"R"[..]));
    }
    sim.run_for(secs(3.0));
    assert_full_mesh(&sim);
    assert_converged(&mut sim);
}

#[test]
fn a_delete_during_a_partition_wins_over_the_older_value_after_heal() {
    let (mut sim, n) = lan(6, 3, NetConfig::default());
    sim.set(n[0], "doomed", "here".into());
    sim.set(n[0], "revived", "here".into());
    sim.run_for(secs(0.5));
    let h2 = sim.host_of(n[2]);
    let cut = sim.partition(&Shape::Groups(vec![vec![h2]]));
    sim.run_for(secs(6.0));
    sim.delete(n[2], "doomed");
    sim.delete(n[2], "revived");
    sim.run_for(secs(0.2));
    // After the delete, the other side writes one of the two keys again: a newer
    // write beats the delete.
    sim.set(n[1], "revived", "again".into());
    sim.run_for(secs(0.5));
    assert_eq!(value(&sim, n[0], "doomed").as_deref(), Some(&b"here"[..]));
    sim.heal(cut);
    let converged = sim.run_until_true(secs(10.0), Sim::identical_dkv_stores);
    assert!(converged);
    for &s in &n {
        assert_eq!(value(&sim, s, "doomed"), None, "the deleted key came back");
        assert_eq!(value(&sim, s, "revived").as_deref(), Some(&b"again"[..]));
    }
    sim.run_for(secs(3.0));
    assert_converged(&mut sim);
}

#[test]
fn a_partition_shorter_than_the_peer_timeout_loses_nothing_even_past_a_full_pipe() {
    // Peers never go down; the pipes stall and overflow at a tiny high-water mark.
    let net = NetConfig {
        hwm: 3,
        ..NetConfig::default()
    };
    let (mut sim, n) = lan(7, 3, net);
    let h0 = sim.host_of(n[0]);
    let cut = sim.partition(&Shape::Groups(vec![vec![h0]]));
    for i in 0..20 {
        sim.set(n[0], &format!("burst/{i}"), "x".into());
    }
    sim.run_for(secs(2.0));
    sim.heal(cut);
    assert!(sim.counters().dropped_hwm > 0, "the pipe never overflowed");
    let converged = sim.run_until_true(secs(10.0), Sim::identical_dkv_stores);
    assert!(converged);
    assert_eq!(sim.node(n[1]).unwrap().len(), 20);
    assert_converged(&mut sim);
}

#[test]
fn a_one_way_partition_times_out_only_the_unheard_side_and_heals() {
    let (mut sim, n) = lan(8, 3, NetConfig::default());
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
    sim.set(n[0], "from-0", "a".into());
    sim.set(n[1], "from-1", "b".into());
    sim.heal(cut);
    sim.run_for(secs(6.0));
    assert_full_mesh(&sim);
    assert_converged(&mut sim);
    assert_eq!(value(&sim, n[1], "from-0").as_deref(), Some(&b"a"[..]));
}

// ---- links, addresses, restarts ----

#[test]
fn a_flapping_link_catches_up_by_reconciliation() {
    let (mut sim, n) = lan(9, 3, NetConfig::default());
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
    for round in 0..5 {
        let want = format!("down-{round}");
        assert_eq!(
            value(&sim, n[2], &format!("flap/{round}")).as_deref(),
            Some(want.as_bytes())
        );
    }
    assert_full_mesh(&sim);
    assert_converged(&mut sim);
}

#[test]
fn writes_made_while_cut_off_reach_the_others_when_the_link_returns() {
    let (mut sim, n) = lan(10, 3, NetConfig::default());
    let h = sim.host_of(n[2]);
    sim.link_down(h);
    sim.run_for(secs(6.0));
    assert!(peers(&sim, n[2]).is_empty());
    assert_eq!(sim.node(n[2]).unwrap().local_ip(), None);
    sim.set(n[0], "while-away", "w".into());
    sim.set(n[2], "made-alone", "m".into());
    sim.set(n[0], "both", "older".into());
    sim.run_for(secs(0.1));
    sim.set(n[2], "both", "newer, alone".into());
    sim.link_up(h);
    sim.run_for(secs(8.0));
    assert_full_mesh(&sim);
    for &s in &n {
        assert_eq!(value(&sim, s, "while-away").as_deref(), Some(&b"w"[..]));
        assert_eq!(value(&sim, s, "made-alone").as_deref(), Some(&b"m"[..]));
        assert_eq!(
            value(&sim, s, "both").as_deref(),
            Some(&b"newer, alone"[..])
        );
    }
    assert_converged(&mut sim);
}

#[test]
fn a_node_that_moves_to_a_new_ip_is_found_there_and_forgotten_at_the_old_one() {
    let (mut sim, n) = lan(11, 3, NetConfig::default());
    let old = ep(&sim, n[2]);
    let h = sim.host_of(n[2]);
    sim.change_ip(h);
    let new = ep(&sim, n[2]);
    assert_ne!(old.ip(), new.ip());
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
    assert_converged(&mut sim);
}

#[test]
fn a_slow_joiner_misses_sets_before_its_subscription_and_reconciliation_recovers_them() {
    let net = NetConfig {
        latency: Duration::from_millis(20),
        jitter: Duration::ZERO,
        ..NetConfig::default()
    };
    let (mut sim, n) = lan(12, 2, net);
    let c = add(&mut sim);
    let a_ep = ep(&sim, n[0]);
    let connecting = sim.run_until_true(secs(3.0), |s| {
        matches!(
            s.conn_status(c, a_ep),
            Some(ConnStatus::Connecting | ConnStatus::Handshake)
        )
    });
    assert!(connecting);
    sim.set(n[0], "early", "e".into());
    sim.run_for(secs(0.1));
    assert_eq!(value(&sim, c, "early"), None, "it reached the slow joiner");
    sim.run_for(secs(3.0));
    assert_eq!(value(&sim, c, "early").as_deref(), Some(&b"e"[..]));
    assert_converged(&mut sim);
}

/// As dkv-mio does, the net holds a node's message for a dkv peer whose
/// subscription is not up yet. b beacons as it starts, so a hears b first and b
/// hears a at a's next beacon: b's first session asks a, whose reply leaves before
/// b's own connection to a is up. Held, it arrives; published at once (the hold
/// off), it is lost and the session times out.
#[test]
fn a_reply_that_leaves_before_the_askers_subscription_is_held_not_lost() {
    let joiner_sessions = |hold: bool| {
        let net = NetConfig {
            latency: secs(0.01),
            jitter: Duration::ZERO,
            hold,
            ..NetConfig::default()
        };
        let (mut sim, _) = lan(44, 1, net);
        // Half a beacon interval after a's beacon: a hears b 0.5 s before b hears a.
        sim.run_for(secs(0.5));
        let b = add(&mut sim);
        sim.run_for(secs(3.0));
        assert_converged(&mut sim);
        let stats = sim.node(b).unwrap().stats();
        (
            stats.sync_sessions_completed,
            stats.sync_sessions_timed_out,
            sim.counters().held,
        )
    };
    let (completed, timed_out, held) = joiner_sessions(true);
    assert!(completed >= 1, "b completed no session");
    assert!(held >= 1, "nothing was held");
    assert_eq!(timed_out, 0, "b's first session lost its reply");
    let (_, timed_out, held) = joiner_sessions(false);
    assert_eq!(held, 0);
    assert!(timed_out >= 1, "b's first reply arrived without the hold");
}

/// Six nodes join a clean LAN one by one, each mid-way between the others'
/// beacons, so every pair hears each other at different times; the cluster's
/// statistics once it has converged.
fn six_staggered_joiners(timings: Timings) -> dkv_proto::Stats {
    let net = NetConfig {
        latency: secs(0.01),
        jitter: Duration::ZERO,
        ..NetConfig::default()
    };
    let mut sim = Sim::new(net, timings, 46);
    for _ in 0..6 {
        add(&mut sim);
        sim.run_for(secs(0.37));
    }
    sim.run_for(secs(6.0));
    assert_converged(&mut sim);
    sim.node_stats()
}

/// Each session opens once the peer has subscribed (the net reports it, as
/// dkv-mio's XPUB socket does), so none waits on an opening the peer cannot get
/// yet: every session completes and none times out.
#[test]
fn sessions_open_once_the_peer_subscribed_and_none_times_out_on_a_clean_lan() {
    let stats = six_staggered_joiners(Timings::default());
    assert!(
        stats.sync_sessions_completed >= 30,
        "{} sessions completed",
        stats.sync_sessions_completed
    );
    assert_eq!(stats.sync_sessions_timed_out, 0);
    assert_eq!(stats.sync_stale_replies, 0);
}

/// Of each pair of nodes that meet, the lower id opens a session as soon as the
/// other listens. Its opening finds the stores equal, usually before the higher
/// id has heard of the lower one's subscription, which then settles the higher
/// id's waiting session: one session per pair, not two (22 with that undone).
#[test]
fn each_pair_that_meets_on_a_clean_lan_runs_one_session() {
    // No periodic session within the run.
    let stats = six_staggered_joiners(Timings {
        sync_interval: secs(60.0),
        ..Timings::default()
    });
    let pairs = 6 * 5 / 2;
    assert_eq!(
        (stats.sync_sessions_started, stats.sync_sessions_settled),
        (pairs, pairs)
    );
    assert_eq!(stats.sync_sessions_timed_out, 0);
}

/// Joiners in `writes_on_arrival`, each making one write.
const ARRIVALS: usize = 12;

/// `ARRIVALS` joiners arrive one at a time on a LAN that loses beacons. The moment
/// `pick` first names a peer of a joiner, the joiner writes a key of its own.
/// Returns how many of those writes the named peer took from the joiner's own
/// `put` (its `in_put` counter moved; no other node writes meanwhile).
fn writes_on_arrival(pick: impl Fn(&dkv_proto::Node) -> Vec<SocketAddr>) -> usize {
    let net = NetConfig {
        latency: Duration::from_millis(2),
        beacon_loss: 0.4,
        ..NetConfig::default()
    };
    let (mut sim, _) = lan(31, 2, net);
    let mut by_put = 0;
    for i in 0..ARRIVALS {
        let joiner = add(&mut sim);
        let named = sim.run_until_true(secs(10.0), |s| {
            s.node(joiner).is_some_and(|n| !pick(n).is_empty())
        });
        assert!(named, "joiner {i} named no peer within 10 s");
        let peer_ep = pick(sim.node(joiner).unwrap())[0];
        let peer = (0..sim.slots())
            .find(|&s| sim.endpoint(s) == Some(peer_ep))
            .unwrap();
        let before = sim.node(peer).unwrap().stats().in_put;
        sim.set(joiner, &format!("arrival-{i}"), "x".into());
        sim.run_for(secs(1.0));
        if sim.node(peer).unwrap().stats().in_put > before {
            by_put += 1;
        }
    }
    sim.run_for(secs(3.0));
    assert_converged(&mut sim);
    by_put
}

/// `ready_peers` (and `Dkv::wait_for_peers`, built on it) promises that a write
/// made now reaches those peers in the writer's own `put`.
#[test]
fn a_write_made_once_a_peer_is_ready_reaches_it_in_the_writers_own_put() {
    let by_put = writes_on_arrival(|n| n.ready_peers().collect());
    assert_eq!(by_put, ARRIVALS, "a ready peer missed a write's put");
}

/// The same check, with a peer taken as ready as soon as it is heard (the rule
/// README's sixth round tried and dropped): some writes miss their peer, which
/// has not subscribed to the joiner yet, and the check sees it.
#[test]
fn a_peer_taken_as_ready_when_only_heard_misses_writes_and_the_check_sees_it() {
    let by_put = writes_on_arrival(|n| n.peers().collect());
    assert!(
        by_put < ARRIVALS,
        "every write reached a merely heard peer: {by_put} of {ARRIVALS}"
    );
}

#[test]
fn a_crashed_node_restarts_empty_with_a_new_identity_and_catches_up() {
    let (mut sim, n) = lan(13, 3, NetConfig::default());
    sim.set(n[0], "kept", "k".into());
    sim.delete(n[0], "gone");
    sim.run_for(secs(0.1));
    let old_ep = ep(&sim, n[1]);
    let old_id = sim.node(n[1]).unwrap().id();
    sim.crash(n[1]);
    sim.run_for(secs(6.0));
    assert!(!peers(&sim, n[0]).contains(&old_ep));
    sim.restart(n[1]);
    assert_ne!(sim.node(n[1]).unwrap().id(), old_id);
    assert_eq!(value(&sim, n[1], "kept"), None);
    sim.run_for(secs(4.0));
    assert_eq!(value(&sim, n[1], "kept").as_deref(), Some(&b"k"[..]));
    assert!(sim
        .node(n[1])
        .unwrap()
        .entry("gone")
        .unwrap()
        .is_tombstone());
    assert_full_mesh(&sim);
    assert_converged(&mut sim);
}

#[test]
fn a_graceful_stop_disconnects_everything_it_connected() {
    let (mut sim, n) = lan(14, 4, NetConfig::default());
    // Not vacuous: it was connected to all three others when it stopped.
    assert_eq!(sim.connected(n[3]).len(), 3);
    sim.stop(n[3]);
    assert!(sim.node(n[3]).is_none());
    sim.run_for(secs(6.0));
    assert_full_mesh(&sim);
    assert_clean(&sim);
}

#[test]
fn several_nodes_on_one_host_tell_their_own_beacons_from_each_others() {
    let mut sim = Sim::new(NetConfig::default(), Timings::default(), 15);
    let h = sim.add_host();
    let n: Vec<usize> = (0..3).map(|_| sim.add_node(h, Clock::default())).collect();
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
    let (mut sim, _) = lan(16, 5, net);
    sim.run_for(secs(20.0));
    assert!(sim.counters().beacons_duplicated > 0 && sim.counters().beacons_lost > 0);
    assert_full_mesh(&sim);
    assert_converged(&mut sim);
}

#[test]
fn a_small_send_hwm_drops_messages_in_order_and_anti_entropy_repairs_them() {
    let net = NetConfig {
        hwm: 5,
        jitter: Duration::from_millis(10),
        ..NetConfig::default()
    };
    // Periodic reconciliation rare enough not to step in before the look below.
    let timings = Timings {
        sync_interval: secs(5.0),
        ..Timings::default()
    };
    let mut sim = Sim::new(net, timings, 17);
    let n: Vec<usize> = (0..2).map(|_| add(&mut sim)).collect();
    sim.run_for(secs(3.0));
    for i in 0..50 {
        sim.set(n[0], "seq", Bytes::from(format!("{i:03}")));
    }
    sim.run_for(secs(0.03));
    assert!(sim.counters().dropped_hwm >= 45);
    // FIFO: what arrived last is the last of the five that fit, never an older one.
    assert_eq!(value(&sim, n[1], "seq").as_deref(), Some(&b"004"[..]));
    // The next periodic reconciliation brings the last write.
    sim.run_for(secs(11.0));
    assert_eq!(value(&sim, n[1], "seq").as_deref(), Some(&b"049"[..]));
    assert_converged(&mut sim);
}

// ---- clocks ----

#[test]
fn fast_and_slow_monotonic_clocks_still_meet_and_replicate() {
    let mut sim = Sim::new(NetConfig::default(), Timings::default(), 18);
    let n: Vec<usize> = [-50_000, 0, 50_000, 20_000]
        .into_iter()
        .map(|ppm| {
            let h = sim.add_host();
            sim.add_node(h, Clock { ppm, offset_ms: 0 })
        })
        .collect();
    sim.run_for(secs(30.0));
    assert_full_mesh(&sim);
    sim.set(n[0], "skew", "s".into());
    sim.run_for(secs(0.1));
    for &s in &n {
        assert_eq!(value(&sim, s, "skew").as_deref(), Some(&b"s"[..]));
    }
    assert_converged(&mut sim);
}

#[test]
fn a_clock_beyond_the_maximum_offset_has_its_writes_refused_until_time_catches_up() {
    let mut sim = Sim::new(NetConfig::default(), Timings::default(), 19);
    let n: Vec<usize> = (0..3).map(|_| add(&mut sim)).collect();
    let h = sim.add_host();
    let ahead = sim.add_node(
        h,
        Clock {
            ppm: 0,
            offset_ms: 3_000,
        },
    );
    sim.run_for(secs(6.0));
    let clocks_before: Vec<_> = n.iter().map(|&s| sim.node(s).unwrap().clock()).collect();
    sim.set(ahead, "from-the-future", "f".into());
    sim.set(n[0], "from-now", "n".into());
    sim.run_for(secs(1.0));
    for &s in &n {
        let node = sim.node(s).unwrap();
        assert_eq!(node.value("from-the-future"), None, "accepted too early");
        assert!(node.stats().drop_clock_ahead > 0);
        // The bad clock did not drag the others' clocks 3 s ahead.
        let wall = sim.clock(s).wall_ms(sim.now().as_nanos() as u64);
        assert!(node.clock().millis() <= wall + 500, "clock dragged ahead");
    }
    // Its own store takes the others' writes: they are behind it, not ahead.
    assert_eq!(value(&sim, ahead, "from-now").as_deref(), Some(&b"n"[..]));
    // Once real time is within the offset of its timestamp, the write is accepted.
    let accepted = sim.run_until_true(secs(10.0), |s| {
        n.iter()
            .all(|&o| s.node(o).unwrap().value("from-the-future").is_some())
    });
    assert!(accepted);
    assert!(sim.now() >= secs(6.0 + 2.5), "accepted at {:?}", sim.now());
    for (s, before) in n.iter().zip(clocks_before) {
        assert!(sim.node(*s).unwrap().clock() > before);
    }
    sim.run_for(secs(3.0));
    assert_converged(&mut sim);
}

#[test]
fn a_clock_behind_beyond_the_maximum_offset_takes_the_others_writes_late_and_loses_races() {
    let mut sim = Sim::new(NetConfig::default(), Timings::default(), 20);
    let fine = add(&mut sim);
    let h = sim.add_host();
    let behind = sim.add_node(
        h,
        Clock {
            ppm: 0,
            offset_ms: -2_000,
        },
    );
    sim.run_for(secs(6.0));
    sim.set(fine, "k", "from fine".into());
    sim.run_for(secs(0.1));
    // To the node behind, that version is 2 s in the future: refused for now.
    assert_eq!(value(&sim, behind, "k"), None);
    assert!(sim.node(behind).unwrap().stats().drop_clock_ahead > 0);
    // Written later in real time, but stamped with its slow clock: it loses.
    sim.set(behind, "k", "from behind".into());
    sim.run_for(secs(0.5));
    assert_eq!(value(&sim, fine, "k").as_deref(), Some(&b"from fine"[..]));
    // Once its wall clock is within the offset of that version, it takes it.
    let took = sim.run_until_true(secs(10.0), |s| {
        s.node(behind).unwrap().value("k") == Some(b"from fine")
    });
    assert!(took);
    assert!(sim.now() >= secs(6.0 + 1.5), "taken at {:?}", sim.now());
    sim.run_for(secs(3.0));
    assert_converged(&mut sim);
}

// ---- prototypes beside dkv nodes ----

#[test]
fn a_mixed_cluster_interoperates_and_the_dkv_nodes_converge() {
    let mut sim = Sim::new(NetConfig::default(), Timings::default(), 21);
    let p = {
        let h = sim.add_host();
        sim.add_prototype(h)
    };
    let d: Vec<usize> = (0..3).map(|_| add(&mut sim)).collect();
    sim.run_for(secs(8.0));
    assert_full_mesh(&sim);
    // A prototype's set reaches every dkv node and gets a version there.
    sim.set(p, "from-proto", "P".into());
    // A dkv set reaches the prototype.
    sim.set(d[0], "from-dkv", "D".into());
    sim.run_for(secs(0.5));
    for &s in &d {
        let e = sim.node(s).unwrap().entry("from-proto").unwrap().clone();
        assert_eq!(e.value.as_deref(), Some(&b"P"[..]));
        assert_ne!(e.version, dkv_proto::Version::UNVERSIONED);
    }
    assert_eq!(value(&sim, p, "from-dkv").as_deref(), Some(&b"D"[..]));
    // A delete reaches the prototype as an empty value (its nearest to a delete).
    sim.set(d[1], "doomed", "x".into());
    sim.run_for(secs(0.2));
    sim.delete(d[2], "doomed");
    sim.run_for(secs(0.5));
    assert_eq!(value(&sim, p, "doomed").as_deref(), Some(&b""[..]));
    // Echoes (the prototype copies of dkv writes) never made a second version.
    assert!(sim.node_stats().echoes_ignored > 0);
    // dkv nodes joining and restarting bootstrap beside the prototype: it survives.
    let late = add(&mut sim);
    sim.stop(d[0]);
    sim.restart(d[0]);
    sim.run_for(secs(8.0));
    assert!(sim.prototype(p).unwrap().dead().is_none());
    assert_eq!(value(&sim, late, "from-proto").as_deref(), Some(&b"P"[..]));
    // A second prototype joins late. With two prototypes about, dkv nodes leave
    // its list to the other prototype: any list_answer reaches every prototype and
    // kills the worker of each it is not meant for. It still learns the keys, never
    // the deleted one (prototypes and dkv nodes answer only non-empty values).
    let p2 = {
        let h = sim.add_host();
        sim.add_prototype(h)
    };
    let learned = sim.run_until_true(secs(20.0), |s| {
        s.prototype(p2).is_some_and(|x| x.bootstrapped())
    });
    assert!(learned);
    assert_eq!(value(&sim, p2, "from-dkv").as_deref(), Some(&b"D"[..]));
    assert_eq!(value(&sim, p2, "doomed"), None);
    assert_converged(&mut sim);
}

// ---- the oracle's checks can fail ----

#[test]
fn three_prototypes_kill_each_other_and_the_oracle_reports_it() {
    // The prototype's own bug: the third one's list is answered by both others,
    // and each receives the other's answer. The check that no prototype worker
    // dies is live.
    let mut sim = Sim::new(NetConfig::default(), Timings::default(), 22);
    for _ in 0..3 {
        let h = sim.add_host();
        sim.add_prototype(h);
        sim.run_for(secs(3.0));
    }
    sim.run_for(secs(5.0));
    assert!(
        sim.violations()
            .iter()
            .any(|v| v.what.contains("the prototype's worker died")),
        "{:?}",
        sim.violations()
    );
}

#[test]
fn stores_kept_apart_fail_the_convergence_check() {
    let (mut sim, n) = lan(23, 2, NetConfig::default());
    let h = sim.host_of(n[0]);
    sim.partition(&Shape::Groups(vec![vec![h]]));
    sim.run_for(secs(6.0));
    sim.set(n[0], "only-here", "x".into());
    sim.run_for(secs(3.0));
    assert!(!sim.identical_dkv_stores());
    assert_eq!(sim.check_converged(), 0);
    assert!(sim.violations()[0].what.contains("store differs"));
}

#[test]
fn a_fresh_key_that_never_arrives_fails_the_holds_check() {
    let (mut sim, n) = lan(24, 2, NetConfig::default());
    let h = sim.host_of(n[1]);
    sim.link_down(h);
    sim.set(n[0], "fresh", "f".into());
    sim.run_for(secs(1.0));
    let keys = vec![("fresh".to_string(), Bytes::from("f"))];
    assert_eq!(sim.check_holds(&keys), 1);
    assert!(sim.violations()[0].what.contains("arrived as None"));
}

// ---- durable nodes ----

fn durable(sim: &mut Sim) -> usize {
    let h = sim.add_host();
    sim.add_durable_node(h, Clock::default())
}

#[test]
fn a_durable_node_cut_off_and_crashed_brings_its_writes_back_from_disk() {
    let mut sim = Sim::new(NetConfig::default(), Timings::default(), 30);
    let n: Vec<usize> = (0..3).map(|_| durable(&mut sim)).collect();
    sim.run_for(secs(6.0));
    sim.set(n[0], "shared", "before".into());
    sim.run_for(secs(0.5));
    let h = sim.host_of(n[2]);
    let cut = sim.partition(&Shape::Groups(vec![vec![h]]));
    sim.run_for(secs(6.0));
    // Written only on the cut-off node, then it dies before anyone has them.
    sim.set(n[2], "only-on-disk", "kept".into());
    sim.delete(n[2], "shared");
    sim.crash(n[2]);
    sim.heal(cut);
    sim.run_for(secs(2.0));
    assert_eq!(value(&sim, n[0], "only-on-disk"), None);
    sim.restart(n[2]);
    assert_eq!(
        value(&sim, n[2], "only-on-disk").as_deref(),
        Some(&b"kept"[..]),
        "not restored from disk"
    );
    sim.run_for(secs(6.0));
    for &s in &n {
        assert_eq!(
            value(&sim, s, "only-on-disk").as_deref(),
            Some(&b"kept"[..])
        );
        assert_eq!(value(&sim, s, "shared"), None, "the delete was lost");
    }
    assert_converged(&mut sim);
}

#[test]
fn a_power_cut_of_a_durable_cluster_loses_nothing_and_an_in_memory_one_loses_all() {
    let mut sim = Sim::new(NetConfig::default(), Timings::default(), 31);
    let kept: Vec<usize> = (0..3).map(|_| durable(&mut sim)).collect();
    sim.run_for(secs(6.0));
    for i in 0..50 {
        sim.set(kept[i % 3], &format!("k{i}"), Bytes::from(format!("v{i}")));
    }
    sim.delete(kept[0], "k7");
    sim.run_for(secs(1.0));
    for &s in &kept {
        sim.crash(s);
    }
    sim.run_for(secs(5.0));
    for &s in &kept {
        sim.restart(s);
    }
    sim.run_for(secs(6.0));
    for &s in &kept {
        let node = sim.node(s).unwrap();
        assert_eq!((node.len(), node.tombstones()), (49, 1));
    }
    assert_converged(&mut sim);

    let mut sim = Sim::new(NetConfig::default(), Timings::default(), 32);
    let lost: Vec<usize> = (0..3).map(|_| add(&mut sim)).collect();
    sim.run_for(secs(6.0));
    sim.set(lost[0], "k", "v".into());
    sim.run_for(secs(1.0));
    for &s in &lost {
        sim.crash(s);
    }
    for &s in &lost {
        sim.restart(s);
    }
    sim.run_for(secs(6.0));
    assert!(lost.iter().all(|&s| sim.node(s).unwrap().is_empty()));
    assert_clean(&sim);
}

#[test]
fn a_node_restarted_with_its_wall_clock_set_back_still_writes_above_its_disk() {
    let mut sim = Sim::new(NetConfig::default(), Timings::default(), 33);
    let d = durable(&mut sim);
    let other = add(&mut sim);
    sim.run_for(secs(6.0));
    sim.set(d, "k", "first".into());
    sim.run_for(secs(0.5));
    sim.crash(d);
    // The machine comes back with its clock 10 s behind.
    sim.set_clock(
        d,
        Clock {
            ppm: 0,
            offset_ms: -10_000,
        },
    );
    sim.restart(d);
    sim.set(d, "k", "second".into());
    sim.run_for(secs(13.0));
    // The oracle checks every local version is above the restored ones; the newer
    // write wins everywhere (once the other node's clock accepts it, it is not
    // ahead at all: it is behind, stamped just above the first write).
    assert_eq!(value(&sim, other, "k").as_deref(), Some(&b"second"[..]));
    assert_converged(&mut sim);
}
