//! Discovery: which beacons are sent and when, which received beacons count,
//! peer up and down, net up and down.

mod support;

use dkv_proto::{encode_beacon, parse_beacon, BeaconError, Output, MAX_BEACON_LEN};
use std::net::SocketAddr;
use support::*;

fn beacons(outputs: &[Output]) -> Vec<Vec<u8>> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Beacon(p) => Some(p.to_vec()),
            _ => None,
        })
        .collect()
}

#[test]
fn no_beacon_before_net_up() {
    let mut n = node(1, 41017);
    assert_eq!(n.poll_timeout(), None);
    n.handle_timeout(at(5_000));
    assert!(drain(&mut n).is_empty());
}

#[test]
fn net_up_beacons_at_once_then_every_interval() {
    let mut n = node(1, 41017);
    n.handle_net_up(at(0), ip(1));
    assert_eq!(beacons(&drain(&mut n)), vec![b"beacon 41017".to_vec()]);
    assert_eq!(n.poll_timeout(), Some(at(1_000)));
    n.handle_timeout(at(999));
    assert!(beacons(&drain(&mut n)).is_empty());
    n.handle_timeout(at(1_000));
    assert_eq!(beacons(&drain(&mut n)).len(), 1);
    n.handle_timeout(at(2_000));
    assert_eq!(beacons(&drain(&mut n)).len(), 1);
    assert_eq!(n.stats().beacons_out, 3);
}

#[test]
fn a_late_timer_sends_one_beacon_not_a_burst() {
    let mut n = up_node(1, 41017, at(0));
    n.handle_timeout(at(10_500));
    assert_eq!(beacons(&drain(&mut n)).len(), 1);
    assert_eq!(n.poll_timeout(), Some(at(11_500)));
}

#[test]
fn beacon_payload_is_prefix_and_decimal_port() {
    assert_eq!(encode_beacon(5), b"beacon 5");
    assert_eq!(encode_beacon(65535), b"beacon 65535");
    assert_eq!(parse_beacon(b"beacon 41017"), Ok(41017));
}

#[test]
fn datagrams_without_the_beacon_prefix_are_not_beacons() {
    for d in [
        &b""[..],
        b"beacon",
        b"Beacon 1",
        b"beacon\t1",
        b"hello 41017",
        b" beacon 1",
    ] {
        assert_eq!(parse_beacon(d), Err(BeaconError::NotBeacon), "{d:?}");
    }
}

#[test]
fn ports_out_of_range_or_not_canonical_are_rejected() {
    for d in [
        &b"beacon "[..],
        b"beacon 0",
        b"beacon 65536",
        b"beacon 99999",
        b"beacon 123456",
        b"beacon -1",
        b"beacon +5",
        b"beacon 05",
        b"beacon 5 ",
        b"beacon 5\n",
        b"beacon  5",
        b"beacon 4x",
    ] {
        assert_eq!(parse_beacon(d), Err(BeaconError::BadPort), "{d:?}");
    }
    let long = [b"beacon ".to_vec(), vec![b'1'; MAX_BEACON_LEN]].concat();
    assert_eq!(parse_beacon(&long), Err(BeaconError::BadPort));
}

#[test]
fn first_beacon_of_a_pair_brings_the_peer_up_and_connects() {
    let mut n = up_node(1, 41017, at(0));
    n.handle_beacon(at(10), ip(2), b"beacon 5000");
    let peer: SocketAddr = "10.0.0.2:5000".parse().unwrap();
    assert_eq!(drain(&mut n), vec![Output::Connect(peer)]);
    n.handle_beacon(at(1_010), ip(2), b"beacon 5000");
    assert!(drain(&mut n).is_empty(), "a known peer is not reconnected");
    assert_eq!(n.peers().collect::<Vec<_>>(), vec![peer]);
    assert_eq!((n.stats().peers_up, n.stats().beacons_in), (1, 2));
}

#[test]
fn a_peer_is_the_pair_of_source_ip_and_port() {
    let mut n = up_node(1, 41017, at(0));
    n.handle_beacon(at(10), ip(2), b"beacon 5000");
    n.handle_beacon(at(10), ip(2), b"beacon 5001");
    n.handle_beacon(at(10), ip(3), b"beacon 5000");
    assert_eq!(n.peers().count(), 3);
    assert_eq!(n.stats().peers_up, 3);
}

#[test]
fn own_beacons_are_ignored_but_same_port_on_another_ip_is_a_peer() {
    let mut n = up_node(1, 41017, at(0));
    n.handle_beacon(at(10), ip(1), b"beacon 41017");
    assert!(drain(&mut n).is_empty());
    assert_eq!(n.stats().beacons_own, 1);
    n.handle_beacon(at(10), ip(2), b"beacon 41017");
    n.handle_beacon(at(10), ip(1), b"beacon 41018");
    assert_eq!(
        n.peers().count(),
        2,
        "own ip with another port is another node"
    );
}

#[test]
fn malformed_beacons_are_counted_and_change_nothing() {
    let mut n = up_node(1, 41017, at(0));
    let before = n.poll_timeout();
    n.handle_beacon(at(10), ip(2), b"ping");
    n.handle_beacon(at(10), ip(2), b"beacon 70000");
    n.handle_beacon(at(10), ip(2), b"beacon abc");
    assert!(drain(&mut n).is_empty());
    assert_eq!(n.peers().count(), 0);
    assert_eq!(n.poll_timeout(), before);
    assert_eq!(n.stats().drop_not_beacon, 1);
    assert_eq!(n.stats().drop_beacon_bad_port, 2);
    assert_eq!(n.stats().dropped(), 3);
}

#[test]
fn beacons_heard_while_the_net_is_down_are_dropped() {
    let mut n = node(1, 41017);
    n.handle_beacon(at(0), ip(2), b"beacon 5000");
    assert!(drain(&mut n).is_empty());
    assert_eq!(n.stats().drop_beacon_net_down, 1);
}

#[test]
fn peer_times_out_after_four_silent_seconds() {
    let mut n = up_node(1, 41017, at(0));
    n.handle_beacon(at(100), ip(2), b"beacon 5000");
    drain(&mut n);
    n.handle_timeout(at(4_099));
    assert!(!drain(&mut n)
        .iter()
        .any(|o| matches!(o, Output::Disconnect(_))));
    assert_eq!(n.peers().count(), 1);
    assert!(n.poll_timeout().unwrap() <= at(4_100));
    n.handle_timeout(at(4_100));
    let peer = "10.0.0.2:5000".parse().unwrap();
    assert!(drain(&mut n).contains(&Output::Disconnect(peer)));
    assert_eq!(n.peers().count(), 0);
    assert_eq!(n.stats().peers_down, 1);
}

#[test]
fn each_beacon_restarts_the_peer_timeout() {
    let mut n = up_node(1, 41017, at(0));
    for s in 0..10u64 {
        n.handle_beacon(at(s * 1_000), ip(2), b"beacon 5000");
        n.handle_timeout(at(s * 1_000 + 500));
    }
    assert_eq!(n.peers().count(), 1);
    n.handle_timeout(at(9_000 + 4_000));
    assert_eq!(n.peers().count(), 0);
}

#[test]
fn a_peer_that_returns_after_timing_out_reconnects() {
    let mut n = up_node(1, 41017, at(0));
    n.handle_beacon(at(0), ip(2), b"beacon 5000");
    n.handle_timeout(at(5_000));
    n.handle_beacon(at(6_000), ip(2), b"beacon 5000");
    let peer = "10.0.0.2:5000".parse().unwrap();
    let out = drain(&mut n);
    assert_eq!(
        out.iter()
            .filter(|o| matches!(o, Output::Connect(_) | Output::Disconnect(_)))
            .collect::<Vec<_>>(),
        vec![
            &Output::Connect(peer),
            &Output::Disconnect(peer),
            &Output::Connect(peer)
        ]
    );
}

#[test]
fn net_down_stops_beacons_and_peers_time_out_as_usual() {
    let mut n = up_node(1, 41017, at(0));
    n.handle_beacon(at(0), ip(2), b"beacon 5000");
    drain(&mut n);
    n.handle_net_down(at(500));
    n.handle_timeout(at(3_000));
    let out = drain(&mut n);
    assert!(beacons(&out).is_empty(), "no beacon while down");
    assert_eq!(n.peers().count(), 1, "the peer is not dropped at once");
    n.handle_timeout(at(4_000));
    assert_eq!(n.peers().count(), 0);
    assert_eq!(n.local_ip(), None);
    assert_eq!(n.stats().net_down, 1);
}

#[test]
fn net_up_again_resumes_beacons_and_bootstraps() {
    let mut n = up_node(1, 41017, at(0));
    n.handle_net_down(at(500));
    n.handle_net_up(at(10_000), ip(1));
    assert_eq!(beacons(&drain(&mut n)).len(), 1);
    assert_eq!(n.stats().bootstraps_started, 2);
    assert_eq!(n.stats().net_up, 2);
}

#[test]
fn repeating_the_current_address_changes_nothing_but_a_new_ip_is_a_new_net_up() {
    let mut n = up_node(1, 41017, at(0));
    n.handle_net_up(at(300), ip(1));
    assert!(drain(&mut n).is_empty());
    assert_eq!(n.stats().net_up, 1);
    n.handle_net_up(at(600), ip(9));
    assert_eq!(beacons(&drain(&mut n)).len(), 1, "announces itself at once");
    assert_eq!(n.local_ip(), Some(ip(9)));
    assert_eq!(n.stats().bootstraps_started, 2);
    n.handle_beacon(at(700), ip(9), b"beacon 41017");
    assert_eq!(
        n.stats().beacons_own,
        1,
        "own beacons are recognised at the new ip"
    );
}

#[test]
fn shutdown_takes_every_peer_down() {
    let mut n = up_node(1, 41017, at(0));
    n.handle_beacon(at(0), ip(2), b"beacon 5000");
    n.handle_beacon(at(0), ip(3), b"beacon 5000");
    drain(&mut n);
    n.shutdown(at(100));
    let downs = drain(&mut n)
        .into_iter()
        .filter(|o| matches!(o, Output::Disconnect(_)))
        .count();
    assert_eq!(downs, 2);
    assert_eq!(n.peers().count(), 0);
    assert_eq!(n.poll_timeout(), None, "a stopped node has no timers");
}

#[test]
fn moving_onto_an_address_a_peer_held_drops_that_stale_peer() {
    let mut n = up_node(1, 41017, at(0));
    n.handle_beacon(at(0), ip(2), b"beacon 41017");
    drain(&mut n);
    n.handle_net_up(at(100), ip(2));
    let stale: SocketAddr = "10.0.0.2:41017".parse().unwrap();
    assert!(drain(&mut n).contains(&Output::Disconnect(stale)));
    assert_eq!(n.peers().count(), 0, "never connected to its own endpoint");
}

#[test]
fn a_zero_beacon_interval_is_rejected_by_validate_and_never_spins_a_node() {
    use dkv_proto::{Config, Node, Timings, TimingsError};
    let mut timings = Timings {
        beacon_interval: std::time::Duration::ZERO,
        ..Timings::default()
    };
    assert_eq!(
        timings.validate(),
        Err(TimingsError::BeaconIntervalTooShort)
    );
    let mut config = Config::new(id(1), 1);
    config.timings = timings.clone();
    let mut n = Node::new(config);
    n.handle_net_up(at(0), ip(1));
    drain(&mut n);
    assert!(
        n.poll_timeout().unwrap() > at(0),
        "the next beacon is in the future"
    );
    timings.beacon_interval = timings.peer_timeout;
    assert_eq!(
        timings.validate(),
        Err(TimingsError::PeerTimeoutNotAboveBeaconInterval)
    );
    assert_eq!(Timings::default().validate(), Ok(()));
}

#[test]
fn a_new_address_redials_every_live_peer_but_the_same_address_does_not() {
    let mut n = up_node(1, 41017, at(0));
    n.handle_beacon(at(0), ip(2), b"beacon 5000");
    drain(&mut n);
    let peer: SocketAddr = "10.0.0.2:5000".parse().unwrap();
    let dials = |out: Vec<Output>| -> Vec<Output> {
        out.into_iter()
            .filter(|o| matches!(o, Output::Connect(_) | Output::Disconnect(_)))
            .collect()
    };
    n.handle_net_down(at(100));
    n.handle_net_up(at(200), ip(1));
    assert!(
        dials(drain(&mut n)).is_empty(),
        "same address: connections still good"
    );
    n.handle_net_down(at(300));
    n.handle_net_up(at(400), ip(7));
    assert_eq!(
        dials(drain(&mut n)),
        vec![Output::Disconnect(peer), Output::Connect(peer)]
    );
    assert_eq!(n.peers().collect::<Vec<_>>(), vec![peer]);
    assert_eq!(
        n.stats().peers_down,
        0,
        "a re-dial is not a peer going down"
    );
}
