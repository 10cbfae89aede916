//! Discovery: the hello and beacon a node sends and when, which received datagrams
//! count, peer up and down, telling dkv peers from prototype ones, net up and down.

mod support;

use dkv_proto::reconcile::MAX_SESSIONS;
use dkv_proto::wire::v2::Body;
use dkv_proto::{
    encode_beacon, encode_hello, parse_beacon, parse_datagram, BeaconError, Config, Datagram,
    Limits, Node, NodeId, Output, Timings, TimingsError, HELLO_PREFIX, MAX_BEACON_LEN,
};
use std::net::SocketAddr;
use std::time::Duration;
use support::*;

const PORT: u16 = 41017;

/// What an open node announces each interval while no prototype is heard.
fn own_hello() -> Vec<Vec<u8>> {
    vec![hello(1, PORT)]
}

/// What it announces while one is: the hello, then the prototype's beacon.
fn own_pair() -> Vec<Vec<u8>> {
    vec![hello(1, PORT), b"beacon 41017".to_vec()]
}

fn dials(out: &[Output]) -> Vec<Output> {
    out.iter()
        .filter(|o| matches!(o, Output::Connect(_) | Output::Disconnect(_)))
        .cloned()
        .collect()
}

/// The sessions `out` starts: the peers sent an initiator's first `sync`.
fn syncs_to(out: &[Output]) -> Vec<NodeId> {
    dkv(out)
        .into_iter()
        .filter(|e| {
            matches!(
                e.body,
                Body::Sync {
                    initiator: true,
                    ..
                }
            )
        })
        .filter_map(|e| e.to)
        .collect()
}

/// How long a new session waits for its first reply: a sixteenth of the sync
/// timeout.
fn first_wait() -> Duration {
    Timings::default().sync_timeout / 16
}

// ---- what a node sends ----

#[test]
fn no_datagram_and_no_timer_before_net_up() {
    let mut n = node(1, PORT);
    assert_eq!(n.poll_timeout(), None);
    n.handle_timeout(at(5_000));
    assert!(drain(&mut n).is_empty());
}

#[test]
fn net_up_sends_a_hello_at_once_then_every_interval() {
    let mut n = node(1, PORT);
    n.handle_net_up(at(0), ip(1));
    assert_eq!(datagrams(&drain(&mut n)), own_hello());
    assert_eq!(n.poll_timeout(), Some(at(1_000)));
    n.handle_timeout(at(999));
    assert!(datagrams(&drain(&mut n)).is_empty());
    n.handle_timeout(at(1_000));
    assert_eq!(datagrams(&drain(&mut n)), own_hello());
    n.handle_timeout(at(2_000));
    assert_eq!(datagrams(&drain(&mut n)), own_hello());
    assert_eq!((n.stats().hellos_out, n.stats().beacons_out), (3, 0));
}

#[test]
fn a_prototype_gets_a_beacon_at_once_then_every_interval_until_a_peer_timeout_of_silence() {
    let mut n = up_node(1, PORT, at(0));
    n.handle_beacon(at(300), ip(2), b"beacon 5000");
    assert_eq!(
        drain(&mut n),
        vec![
            Output::Connect(addr(2, 5000)),
            Output::Beacon(b"beacon 41017".to_vec().into())
        ],
        "the prototype learns of this node without waiting an interval"
    );
    n.handle_beacon(at(400), ip(3), b"beacon 5000");
    assert_eq!(
        drain(&mut n),
        vec![Output::Connect(addr(3, 5000))],
        "one beacon at once per prototype quiet spell, not per prototype"
    );
    for t in [1_000, 2_000, 3_000, 4_000] {
        n.handle_timeout(at(t));
        assert_eq!(datagrams(&drain(&mut n)), own_pair(), "at {t} ms");
    }
    n.handle_timeout(at(5_000));
    assert_eq!(datagrams(&drain(&mut n)), own_hello(), "4 s after the last");
    assert_eq!((n.stats().hellos_out, n.stats().beacons_out), (6, 5));
}

#[test]
fn a_late_timer_sends_one_hello_not_a_burst() {
    let mut n = up_node(1, PORT, at(0));
    n.handle_timeout(at(10_500));
    assert_eq!(datagrams(&drain(&mut n)), own_hello());
    assert_eq!(n.poll_timeout(), Some(at(11_500)));
}

// ---- datagram formats ----

#[test]
fn the_beacon_is_the_prototypes_prefix_and_decimal_port() {
    assert_eq!(encode_beacon(5), b"beacon 5");
    assert_eq!(encode_beacon(65535), b"beacon 65535");
    assert_eq!(parse_beacon(b"beacon 41017"), Ok(41017));
    assert_eq!(parse_datagram(b"beacon 41017"), Ok(Datagram::Beacon(41017)));
}

#[test]
fn the_hello_is_prefix_version_port_and_id_in_16_bytes() {
    let id = NodeId([0, b' ', 2, 3, 4, 5, 6, 0xff]);
    let h = encode_hello(0x1234, id);
    assert_eq!(h, b"dkv2\0\x01\x12\x34\x00 \x02\x03\x04\x05\x06\xff");
    assert!(h.starts_with(HELLO_PREFIX));
    assert_eq!(parse_datagram(&h), Ok(Datagram::Hello { port: 0x1234, id }));
    assert_eq!(
        parse_beacon(&h),
        Err(BeaconError::NotBeacon),
        "a prototype ignores it"
    );
}

#[test]
fn malformed_hellos_are_rejected() {
    let good = encode_hello(7, NodeId(*b"12345678"));
    let mut v2 = good.clone();
    v2[5] = 2;
    let mut port0 = good.clone();
    port0[6..8].copy_from_slice(&[0, 0]);
    let long = [good.clone(), vec![0]].concat();
    for d in [&good[..15], &long[..], &v2[..], &port0[..], HELLO_PREFIX] {
        assert_eq!(parse_datagram(d), Err(BeaconError::BadHello), "{d:?}");
    }
}

#[test]
fn datagrams_without_either_prefix_are_not_beacons() {
    for d in [
        &b""[..],
        b"beacon",
        b"Beacon 1",
        b"beacon\t1",
        b"hello 41017",
        b" beacon 1",
        b"dkv2",
    ] {
        assert_eq!(parse_datagram(d), Err(BeaconError::NotBeacon), "{d:?}");
    }
}

#[test]
fn beacon_ports_out_of_range_or_not_canonical_are_rejected() {
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

// ---- peers up, identified, down ----

#[test]
fn a_beacon_from_a_new_pair_brings_up_a_prototype_peer() {
    let mut n = up_node(1, PORT, at(0));
    n.handle_beacon(at(10), ip(2), b"beacon 5000");
    let peer = addr(2, 5000);
    assert_eq!(dials(&drain(&mut n)), vec![Output::Connect(peer)]);
    n.handle_beacon(at(1_010), ip(2), b"beacon 5000");
    assert!(drain(&mut n).is_empty(), "a known peer is not reconnected");
    assert_eq!(n.peers().collect::<Vec<_>>(), vec![peer]);
    assert_eq!(n.peer_id(peer), None, "no hello: a prototype");
    assert_eq!(
        n.ready_peers().collect::<Vec<_>>(),
        vec![peer],
        "prototypes are ready at once"
    );
    assert_eq!((n.stats().peers_up, n.stats().beacons_in), (1, 2));
}

#[test]
fn a_hello_after_the_beacon_identifies_the_peer_and_starts_a_session() {
    let mut n = up_node(1, PORT, at(0));
    n.handle_subscribed(at(0), id(2));
    n.handle_beacon(at(10), ip(2), b"beacon 5000");
    drain(&mut n);
    n.handle_beacon(at(10), ip(2), &hello(2, 5000));
    let out = drain(&mut n);
    assert!(dials(&out).is_empty(), "the same peer: {out:?}");
    assert_eq!(syncs_to(&out), vec![id(2)]);
    assert_eq!(n.peer_id(addr(2, 5000)), Some(id(2)));
    assert_eq!((n.stats().hellos_in, n.stats().peers_up), (1, 1));
}

#[test]
fn a_hello_before_any_beacon_brings_up_a_dkv_peer_that_a_beacon_keeps() {
    let mut n = up_node(1, PORT, at(0));
    n.handle_subscribed(at(0), id(2));
    n.handle_beacon(at(10), ip(2), &hello(2, 5000));
    let out = drain(&mut n);
    assert_eq!(dials(&out), vec![Output::Connect(addr(2, 5000))]);
    assert_eq!(syncs_to(&out), vec![id(2)]);
    n.handle_beacon(at(10), ip(2), b"beacon 5000");
    assert!(drain(&mut n).is_empty());
    assert_eq!(
        n.peer_id(addr(2, 5000)),
        Some(id(2)),
        "a beacon does not forget the id"
    );
    assert_eq!(
        n.ready_peers().count(),
        0,
        "not ready before a session completes"
    );
}

#[test]
fn a_dkv_peer_is_ready_once_a_session_with_it_completes() {
    let mut n = up_node(1, PORT, at(0));
    n.handle_subscribed(at(0), id(2));
    n.handle_beacon(at(10), ip(2), &hello(2, 5000));
    let out = dkv(&drain(&mut n));
    let Body::Sync { session, .. } = out[0].body else {
        panic!("{out:?}")
    };
    let reply = Body::Sync {
        session: session ^ 1,
        initiator: false,
        last: true,
        steps: vec![],
    };
    deliver(&mut n, at(20), &to_one(2, 1, reply));
    assert_eq!(n.ready_peers().count(), 0, "a reply to another session");
    assert_eq!(n.stats().sync_stale_replies, 1);
    let reply = Body::Sync {
        session,
        initiator: false,
        last: true,
        steps: vec![],
    };
    deliver(&mut n, at(20), &to_one(2, 1, reply));
    assert_eq!(n.ready_peers().collect::<Vec<_>>(), vec![addr(2, 5000)]);
    assert_eq!(n.stats().sync_sessions_completed, 1);
}

#[test]
fn a_peer_is_the_pair_of_source_ip_and_port() {
    let mut n = up_node(1, PORT, at(0));
    n.handle_beacon(at(10), ip(2), b"beacon 5000");
    n.handle_beacon(at(10), ip(2), b"beacon 5001");
    n.handle_beacon(at(10), ip(3), b"beacon 5000");
    n.handle_beacon(at(10), ip(3), &hello(3, 5000));
    assert_eq!(n.peers().count(), 3);
    assert_eq!(n.stats().peers_up, 3);
}

#[test]
fn an_id_heard_from_a_new_address_moves_there() {
    let mut n = up_node(1, PORT, at(0));
    n.handle_beacon(at(10), ip(2), &hello(2, 5000));
    n.handle_beacon(at(20), ip(3), &hello(2, 5000));
    assert_eq!(n.peer_id(addr(3, 5000)), Some(id(2)));
    assert_eq!(n.peer_id(addr(2, 5000)), None, "the old endpoint is stale");
}

#[test]
fn a_new_id_at_a_known_address_is_a_restarted_node_to_reconcile_with() {
    let mut n = up_node(1, PORT, at(0));
    n.handle_subscribed(at(0), id(2));
    n.handle_subscribed(at(0), id(7));
    n.handle_beacon(at(10), ip(2), &hello(2, 5000));
    drain(&mut n);
    n.handle_beacon(at(20), ip(2), &hello(7, 5000));
    let out = drain(&mut n);
    assert_eq!(syncs_to(&out), vec![id(7)]);
    assert_eq!(n.peer_id(addr(2, 5000)), Some(id(7)));
}

#[test]
fn own_datagrams_are_ignored_but_the_same_port_elsewhere_is_a_peer() {
    let mut n = up_node(1, PORT, at(0));
    n.handle_beacon(at(10), ip(1), b"beacon 41017");
    n.handle_beacon(at(10), ip(1), &hello(1, PORT));
    n.handle_beacon(at(10), ip(5), &hello(1, 999));
    assert!(drain(&mut n).is_empty());
    assert_eq!(n.peers().count(), 0);
    assert_eq!(n.stats().beacons_own, 3, "own id from anywhere is own");
    n.handle_beacon(at(10), ip(2), b"beacon 41017");
    n.handle_beacon(at(10), ip(1), b"beacon 41018");
    assert_eq!(
        n.peers().count(),
        2,
        "own ip with another port is another node"
    );
    assert_eq!(n.stats().beacons_in, 2);
}

#[test]
fn malformed_datagrams_are_counted_and_change_nothing() {
    let mut n = up_node(1, PORT, at(0));
    let before = n.poll_timeout();
    n.handle_beacon(at(10), ip(2), b"ping");
    n.handle_beacon(at(10), ip(2), b"beacon 70000");
    n.handle_beacon(at(10), ip(2), b"beacon abc");
    n.handle_beacon(at(10), ip(2), &hello(2, 5000)[..15]);
    assert!(drain(&mut n).is_empty());
    assert_eq!(n.peers().count(), 0);
    assert_eq!(n.poll_timeout(), before);
    let s = n.stats();
    assert_eq!(
        (s.drop_not_beacon, s.drop_beacon_bad_port, s.drop_bad_hello),
        (1, 2, 1)
    );
    assert_eq!((s.dropped(), s.beacons_in, s.hellos_in), (4, 0, 0));
}

#[test]
fn datagrams_heard_while_the_net_is_down_are_dropped() {
    let mut n = node(1, PORT);
    n.handle_beacon(at(0), ip(2), b"beacon 5000");
    n.handle_beacon(at(0), ip(2), &hello(2, 5000));
    assert!(drain(&mut n).is_empty());
    assert_eq!(n.stats().drop_beacon_net_down, 2);
}

#[test]
fn a_peer_goes_down_after_four_silent_seconds() {
    let mut n = up_node(1, PORT, at(0));
    n.handle_beacon(at(100), ip(2), &hello(2, 5000));
    drain(&mut n);
    n.handle_timeout(at(4_099));
    assert!(dials(&drain(&mut n)).is_empty());
    assert!(n.poll_timeout().unwrap() <= at(4_100));
    n.handle_timeout(at(4_100));
    assert_eq!(
        dials(&drain(&mut n)),
        vec![Output::Disconnect(addr(2, 5000))]
    );
    assert_eq!((n.peers().count(), n.peer_id(addr(2, 5000))), (0, None));
    assert_eq!(n.stats().peers_down, 1);
}

#[test]
fn each_beacon_or_hello_restarts_the_peer_timeout() {
    let mut n = up_node(1, PORT, at(0));
    for s in 0..10u64 {
        let d = if s % 2 == 0 {
            b"beacon 5000".to_vec()
        } else {
            hello(2, 5000)
        };
        n.handle_beacon(at(s * 1_000), ip(2), &d);
        n.handle_timeout(at(s * 1_000 + 500));
    }
    assert_eq!(n.peers().count(), 1);
    n.handle_timeout(at(9_000 + 4_000));
    assert_eq!(n.peers().count(), 0);
}

#[test]
fn a_peer_that_returns_after_timing_out_reconnects() {
    let mut n = up_node(1, PORT, at(0));
    n.handle_beacon(at(0), ip(2), b"beacon 5000");
    n.handle_timeout(at(5_000));
    n.handle_beacon(at(6_000), ip(2), b"beacon 5000");
    let peer = addr(2, 5000);
    assert_eq!(
        dials(&drain(&mut n)),
        vec![
            Output::Connect(peer),
            Output::Disconnect(peer),
            Output::Connect(peer)
        ]
    );
}

/// Node 1, up, whose periodic reconciliation is out of the way (1 min).
fn quiet_node() -> Node {
    let mut c = config(1, PORT);
    c.timings.sync_interval = Duration::from_secs(60);
    up(Node::new(c), 1, at(0))
}

/// Answers every session `out` starts with an empty last reply: the stores agree.
fn agree(n: &mut Node, out: &[Output], now: std::time::Instant) {
    for e in dkv(out) {
        if let (
            Some(to),
            Body::Sync {
                session,
                initiator: true,
                ..
            },
        ) = (e.to, &e.body)
        {
            let reply = Body::Sync {
                session: *session,
                initiator: false,
                last: true,
                steps: vec![],
            };
            n.handle_decoded(
                now,
                dkv_proto::Message::Dkv(dkv_proto::wire::Envelope {
                    to: Some(id(1)),
                    from: to,
                    body: reply,
                }),
            );
        }
    }
}

#[test]
fn a_dkv_peer_heard_again_after_a_gap_is_reconciled_with_again() {
    let mut n = quiet_node();
    n.handle_subscribed(at(0), id(2));
    n.handle_beacon(at(0), ip(2), &hello(2, 5000));
    let out = drain(&mut n);
    agree(&mut n, &out, at(10));
    assert_eq!(n.stats().sync_sessions_completed, 1);
    n.handle_beacon(at(2_400), ip(2), &hello(2, 5000)); // 2.4 s: on time
    assert!(syncs_to(&drain(&mut n)).is_empty());
    n.handle_beacon(at(4_950), ip(2), &hello(2, 5000)); // 2.55 s: a gap
    assert_eq!(syncs_to(&drain(&mut n)), vec![id(2)]);
}

#[test]
fn a_session_with_a_new_peer_waits_for_its_subscription() {
    let mut n = quiet_node();
    n.handle_beacon(at(10), ip(2), &hello(2, 5000));
    let out = drain(&mut n);
    assert_eq!(dials(&out), vec![Output::Connect(addr(2, 5000))]);
    assert!(
        syncs_to(&out).is_empty(),
        "opened before it subscribed: {out:?}"
    );
    n.handle_subscribed(at(700), id(2));
    let out = drain(&mut n);
    assert_eq!(syncs_to(&out), vec![id(2)]);
    agree(&mut n, &out, at(710));
    n.handle_subscribed(at(720), id(2));
    assert!(drain(&mut n).is_empty(), "a repeated report starts nothing");
    assert_eq!(n.stats().sync_sessions_timed_out, 0);
    // Gone: a session after a gap waits for the subscription again.
    n.handle_unsubscribed(at(800), id(2));
    n.handle_beacon(at(3_500), ip(2), &hello(2, 5000));
    assert!(syncs_to(&drain(&mut n)).is_empty());
    n.handle_subscribed(at(3_600), id(2));
    assert_eq!(syncs_to(&drain(&mut n)), vec![id(2)]);
}

#[test]
fn a_session_waits_one_peer_timeout_at_most_for_a_subscription_never_reported() {
    let mut n = quiet_node();
    n.handle_beacon(at(10), ip(2), &hello(2, 5000));
    drain(&mut n);
    let wait = Timings::default().peer_timeout;
    assert_eq!(n.poll_timeout(), Some(at(1_000)), "the next beacon");
    for ms in (1_000..4_000).step_by(500) {
        n.handle_beacon(at(ms), ip(2), &hello(2, 5000));
        n.handle_timeout(at(ms));
        assert!(syncs_to(&drain(&mut n)).is_empty(), "opened at {ms} ms");
    }
    n.handle_timeout(at(10) + wait);
    assert_eq!(syncs_to(&drain(&mut n)), vec![id(2)]);
}

#[test]
fn at_the_subscription_cap_an_id_no_live_peer_has_is_forgotten() {
    let mut n = quiet_node();
    n.handle_subscribed(at(0), id(3));
    n.handle_beacon(at(0), ip(3), &hello(3, 5000));
    let out = drain(&mut n);
    assert_eq!(syncs_to(&out), vec![id(3)]);
    agree(&mut n, &out, at(1));
    // A host subscribes to ids nobody beacons until the table is full; they sort
    // after the live peer's.
    let cap = Limits::default().max_peers * 2;
    for i in 1..cap as u64 {
        n.handle_subscribed(at(2), NodeId((u64::MAX - i).to_be_bytes()));
    }
    assert_eq!(n.stats().sync_subscriptions_forgotten, 0);
    n.handle_beacon(at(10), ip(2), &hello(2, 5000));
    assert!(
        syncs_to(&drain(&mut n)).is_empty(),
        "opened before it subscribed"
    );
    n.handle_subscribed(at(20), id(2));
    let out = drain(&mut n);
    assert_eq!(syncs_to(&out), vec![id(2)], "crowded out");
    agree(&mut n, &out, at(21));
    assert_eq!(n.stats().sync_subscriptions_forgotten, 1);
    // The live peer's subscription stayed: after a gap its session opens at once.
    n.handle_beacon(at(3_000), ip(3), &hello(3, 5000));
    assert_eq!(syncs_to(&drain(&mut n)), vec![id(3)]);
}

/// Node 1 (quiet) hearing `MAX_SESSIONS + 4` dkv peers at once; returns them and
/// the sessions it starts.
fn many_peers() -> (Node, Vec<NodeId>, Vec<Output>) {
    let mut n = quiet_node();
    let peers: Vec<u8> = (2..).take(MAX_SESSIONS + 4).collect();
    for &p in &peers {
        n.handle_subscribed(at(0), id(p));
        n.handle_beacon(at(0), ip(p), &hello(p, 5000));
    }
    let out = drain(&mut n);
    (n, peers.into_iter().map(id).collect(), out)
}

#[test]
fn at_most_max_sessions_run_at_once_and_a_waiting_peer_starts_when_one_ends() {
    let (mut n, peers, out) = many_peers();
    let first = syncs_to(&out);
    assert_eq!(first.len(), MAX_SESSIONS);
    assert_eq!(
        n.poll_timeout(),
        Some(at(0) + first_wait()),
        "the waiting peers wake nothing while every slot is taken, only the sessions' replies' deadline"
    );
    let one: Vec<Output> = out
        .iter()
        .filter(|o| !syncs_to(std::slice::from_ref(*o)).is_empty())
        .take(1)
        .cloned()
        .collect();
    agree(&mut n, &one, at(10));
    let next = syncs_to(&drain(&mut n));
    assert_eq!(next.len(), 1, "the freed slot is taken at once");
    assert!(peers.contains(&next[0]) && !first.contains(&next[0]));
    assert_eq!(n.stats().sync_sessions_started, MAX_SESSIONS as u64 + 1);
}

#[test]
fn peers_whose_session_got_no_reply_wait_behind_peers_not_tried_yet() {
    let (mut n, peers, out) = many_peers();
    let first = syncs_to(&out);
    // No reply: every session times out after its first-reply wait.
    n.handle_timeout(at(0) + first_wait());
    let again = syncs_to(&drain(&mut n));
    assert_eq!(n.stats().sync_sessions_timed_out, MAX_SESSIONS as u64);
    assert_eq!(again.len(), MAX_SESSIONS);
    let untried: Vec<NodeId> = peers.into_iter().filter(|p| !first.contains(p)).collect();
    assert_eq!(untried.len(), 4);
    assert!(
        untried.iter().all(|p| again.contains(p)),
        "{untried:?} go first: {again:?}"
    );
}

#[test]
fn the_timeout_is_never_later_than_the_first_peer_to_fall_silent() {
    // Beacons far apart and a short peer timeout (Node::new takes any timings), so
    // the first peer expiry is the node's earliest deadline.
    let mut c = config(1, PORT);
    c.timings.beacon_interval = Duration::from_secs(10);
    c.timings.peer_timeout = Duration::from_secs(1);
    c.timings.bootstrap_delay = Duration::from_secs(60);
    let mut n = up(Node::new(c), 1, at(0));
    for (ms, peer) in [(100, 2), (200, 3), (300, 4)] {
        n.handle_beacon(at(ms), ip(peer), b"beacon 5000");
    }
    assert_eq!(
        n.poll_timeout(),
        Some(at(1_100)),
        "peer 2 falls silent first"
    );
    // A beacon moves no deadline: the timeout may come early, never late.
    n.handle_beacon(at(400), ip(3), b"beacon 5000");
    n.handle_beacon(at(500), ip(2), b"beacon 5000");
    assert_eq!(n.poll_timeout(), Some(at(1_100)), "early, peer 2 was heard");
    drain(&mut n);
    n.handle_timeout(at(1_100));
    assert_eq!(n.peers().count(), 3, "nobody fell silent");
    assert_eq!(
        n.poll_timeout(),
        Some(at(1_300)),
        "exact again: peer 4 is the oldest"
    );
    n.handle_beacon(at(600), ip(4), b"beacon 5000");
    n.handle_timeout(at(1_300));
    assert_eq!(n.peers().count(), 3);
    assert_eq!(n.poll_timeout(), Some(at(1_400)), "then peer 3");
    n.handle_timeout(at(1_399));
    assert_eq!(n.peers().count(), 3, "not a moment early");
    drain(&mut n);
    n.handle_timeout(at(1_400));
    assert_eq!(n.peers().count(), 2, "peer 3 is down");
    assert_eq!(n.poll_timeout(), Some(at(1_500)));
}

// ---- net up and down ----

#[test]
fn net_down_stops_datagrams_and_peers_time_out_as_usual() {
    let mut n = up_node(1, PORT, at(0));
    n.handle_beacon(at(0), ip(2), b"beacon 5000");
    drain(&mut n);
    n.handle_net_down(at(500));
    n.handle_timeout(at(3_000));
    assert!(
        datagrams(&drain(&mut n)).is_empty(),
        "nothing sent while down"
    );
    assert_eq!(n.peers().count(), 1, "the peer is not dropped at once");
    n.handle_timeout(at(4_000));
    assert_eq!(n.peers().count(), 0);
    assert_eq!((n.local_ip(), n.stats().net_down), (None, 1));
}

#[test]
fn net_up_again_resumes_datagrams_and_bootstraps() {
    let mut n = up_node(1, PORT, at(0));
    n.handle_net_down(at(500));
    n.handle_net_up(at(10_000), ip(1));
    assert_eq!(datagrams(&drain(&mut n)), own_hello());
    assert_eq!((n.stats().bootstraps_started, n.stats().net_up), (2, 2));
}

#[test]
fn repeating_the_current_address_changes_nothing_but_a_new_ip_is_a_new_net_up() {
    let mut n = up_node(1, PORT, at(0));
    n.handle_net_up(at(300), ip(1));
    assert!(drain(&mut n).is_empty());
    assert_eq!(n.stats().net_up, 1);
    n.handle_net_up(at(600), ip(9));
    assert_eq!(
        datagrams(&drain(&mut n)),
        own_hello(),
        "announces itself at once"
    );
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
fn a_new_address_redials_every_live_peer_but_the_same_address_does_not() {
    let mut n = up_node(1, PORT, at(0));
    n.handle_beacon(at(0), ip(2), b"beacon 5000");
    drain(&mut n);
    let peer = addr(2, 5000);
    n.handle_net_down(at(100));
    n.handle_net_up(at(200), ip(1));
    assert!(
        dials(&drain(&mut n)).is_empty(),
        "same address: connections still good"
    );
    n.handle_net_down(at(300));
    n.handle_net_up(at(400), ip(7));
    assert_eq!(
        dials(&drain(&mut n)),
        vec![Output::Disconnect(peer), Output::Connect(peer)]
    );
    assert_eq!(n.peers().collect::<Vec<_>>(), vec![peer]);
    assert_eq!(
        n.stats().peers_down,
        0,
        "a re-dial is not a peer going down"
    );
}

#[test]
fn a_new_address_reconciles_with_every_dkv_peer_again() {
    let mut n = quiet_node();
    n.handle_subscribed(at(0), id(2));
    n.handle_subscribed(at(0), id(3));
    n.handle_beacon(at(0), ip(2), &hello(2, 5000));
    n.handle_beacon(at(0), ip(3), &hello(3, 5000));
    let out = drain(&mut n);
    agree(&mut n, &out, at(10));
    assert_eq!(n.stats().sync_sessions_completed, 2);
    n.handle_net_up(at(500), ip(1));
    assert!(syncs_to(&drain(&mut n)).is_empty(), "the same address");
    n.handle_net_up(at(600), ip(7));
    let mut to = syncs_to(&drain(&mut n));
    to.sort();
    assert_eq!(to, vec![id(2), id(3)]);
}

#[test]
fn shutdown_takes_every_peer_down() {
    let mut n = up_node(1, PORT, at(0));
    n.handle_beacon(at(0), ip(2), b"beacon 5000");
    n.handle_beacon(at(0), ip(3), &hello(3, 5000));
    drain(&mut n);
    n.shutdown(at(100));
    let out = drain(&mut n);
    let mut downs = dials(&out);
    downs.sort_by_key(|o| format!("{o:?}"));
    assert_eq!(
        downs,
        vec![
            Output::Disconnect(addr(2, 5000)),
            Output::Disconnect(addr(3, 5000))
        ]
    );
    assert_eq!(n.peers().count(), 0);
    assert_eq!(
        n.poll_timeout(),
        None,
        "a stopped node with no tombstones has no timers"
    );
}

#[test]
fn moving_onto_an_address_a_peer_held_drops_that_stale_peer() {
    let mut n = up_node(1, PORT, at(0));
    n.handle_beacon(at(0), ip(2), b"beacon 41017");
    drain(&mut n);
    n.handle_net_up(at(100), ip(2));
    let stale: SocketAddr = addr(2, PORT);
    assert!(drain(&mut n).contains(&Output::Disconnect(stale)));
    assert_eq!(n.peers().count(), 0, "never connected to its own endpoint");
}

// ---- timings ----

#[test]
fn too_short_intervals_are_rejected_by_validate_and_never_spin_a_node() {
    let mut timings = Timings {
        beacon_interval: Duration::ZERO,
        sync_interval: Duration::ZERO,
        sync_timeout: Duration::ZERO,
        ..Timings::default()
    };
    assert_eq!(
        timings.validate(),
        Err(TimingsError::BeaconIntervalTooShort)
    );
    let mut config: Config = config(1, 1);
    config.timings = timings.clone();
    let mut n = Node::new(config);
    n.handle_net_up(at(0), ip(1));
    n.handle_beacon(at(0), ip(2), &hello(2, 2));
    drain(&mut n);
    assert!(
        n.poll_timeout().unwrap() > at(0),
        "the next timer is in the future"
    );
    timings.beacon_interval = Duration::from_secs(1);
    assert_eq!(timings.validate(), Err(TimingsError::SyncTooShort));
    timings.sync_interval = Duration::from_secs(1);
    timings.sync_timeout = Duration::from_secs(1);
    timings.peer_timeout = timings.beacon_interval;
    assert_eq!(
        timings.validate(),
        Err(TimingsError::PeerTimeoutNotAboveBeaconInterval)
    );
}

#[test]
fn timings_default_to_the_prototype_and_dkv_values() {
    let t = Timings::default();
    assert_eq!(t.validate(), Ok(()));
    assert_eq!(
        (t.beacon_interval, t.peer_timeout, t.get_timeout),
        (
            Duration::from_secs(1),
            Duration::from_secs(4),
            Duration::from_millis(100)
        )
    );
    assert_eq!(
        (t.bootstrap_delay, t.bootstrap_settle),
        (Duration::from_secs(2), Duration::from_secs(2))
    );
    assert_eq!(
        (
            t.sync_interval,
            t.sync_timeout,
            t.max_clock_offset,
            t.tombstone_horizon
        ),
        (
            Duration::from_secs(2),
            Duration::from_secs(1),
            Duration::from_millis(500),
            Duration::from_secs(24 * 3600)
        )
    );
}
