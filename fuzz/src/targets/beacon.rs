//! Target `beacon`: one arbitrary UDP datagram (a beacon, a hello, or anything)
//! through the datagram parsers and a node.

use super::{assert_stats_monotonic, moved, moved_by, stats_delta, Counter};
use dkv_proto::wire::{Body, Envelope, Range, Step, Summary};
use dkv_proto::{
    encode_beacon, encode_hello, parse_beacon, parse_datagram, BeaconError, Config, Datagram,
    Message, Node, NodeId, Output, WallClock, BEACON_PREFIX, HELLO_PREFIX,
};
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

/// The node's local address in the `beacon` target.
pub const BEACON_LOCAL_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
/// The node's PUB port in the `beacon` target.
pub const BEACON_PUB_PORT: u16 = 41017;
/// The node's id in the `beacon` target.
pub const BEACON_NODE_ID: NodeId = NodeId(*b"beacon!!");
/// The id of the hello heard before the datagram with [`PRE_OTHER_HELLO`].
pub const OTHER_ID: NodeId = NodeId(*b"other id");

/// Source addresses a datagram may come from: the node's own first, then others.
pub const SOURCES: [IpAddr; 8] = [
    BEACON_LOCAL_IP,
    IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)),
    IpAddr::V4(Ipv4Addr::new(192, 168, 1, 77)),
    IpAddr::V4(Ipv4Addr::LOCALHOST),
    IpAddr::V4(Ipv4Addr::UNSPECIFIED),
    IpAddr::V6(Ipv6Addr::LOCALHOST),
    IpAddr::V6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 2)),
    IpAddr::V4(Ipv4Addr::BROADCAST),
];

/// Flag bit in the `beacon` target's first byte: the node's net is up.
pub const FLAG_NET_UP: u8 = 0x01;
/// Flag bit in the `beacon` target's first byte: the datagram was already heard once
/// (so a valid beacon refreshes a known peer instead of bringing one up).
pub const FLAG_HEARD_BEFORE: u8 = 0x02;
/// The lowest bit of the source index (bits 2..5) in the first byte.
pub const SOURCE_SHIFT: u8 = 2;
/// The lowest bit of the "heard before" variant (bits 5..7) in the first byte.
pub const PRE_SHIFT: u8 = 5;
/// Variant: nothing else heard before.
pub const PRE_NONE: u8 = 0;
/// Variant: `beacon <port>` heard before from the same source (a prototype peer, or a
/// dkv peer whose hello has not arrived yet).
pub const PRE_BEACON: u8 = 1;
/// Variant: a hello of [`OTHER_ID`] with the same port heard before from the same
/// source (so a hello re-identifies the peer).
pub const PRE_OTHER_HELLO: u8 = 2;
/// Variant: the same datagram heard before from the next source (so a hello moves
/// its id to a new endpoint).
pub const PRE_OTHER_SOURCE: u8 = 3;

/// The target's first byte for these choices.
pub fn flags(net_up: bool, heard_before: bool, source: u8, pre: u8) -> u8 {
    (u8::from(net_up) * FLAG_NET_UP)
        | (u8::from(heard_before) * FLAG_HEARD_BEFORE)
        | ((source & 0x07) << SOURCE_SHIFT)
        | ((pre & 0x03) << PRE_SHIFT)
}

/// What a correct parser accepts, written independently of the parsers: exactly the
/// bytes [`encode_beacon`] produces for a port in 1..=65535, and exactly the bytes
/// [`encode_hello`] produces for a port in 1..=65535 and any id.
fn reference_parse(datagram: &[u8]) -> Result<Datagram, BeaconError> {
    if let Some(rest) = datagram.strip_prefix(HELLO_PREFIX) {
        if let [1, p0, p1, id @ ..] = rest {
            let port = u16::from_be_bytes([*p0, *p1]);
            if let Ok(id) = <[u8; 8]>::try_from(id) {
                let id = NodeId(id);
                if port != 0 && encode_hello(port, id) == datagram {
                    return Ok(Datagram::Hello { port, id });
                }
            }
        }
        return Err(BeaconError::BadHello);
    }
    let digits = datagram
        .strip_prefix(BEACON_PREFIX)
        .ok_or(BeaconError::NotBeacon)?;
    let port: Option<u16> = std::str::from_utf8(digits)
        .ok()
        .and_then(|d| d.parse().ok());
    match port {
        Some(port) if port != 0 && encode_beacon(port) == datagram => Ok(Datagram::Beacon(port)),
        _ => Err(BeaconError::BadPort),
    }
}

/// The node's live peers and the id it knows for each.
fn peer_ids(node: &Node) -> BTreeMap<SocketAddr, Option<NodeId>> {
    node.peers().map(|a| (a, node.peer_id(a))).collect()
}

/// Checks one datagram. The first byte is flags (see `flags`): net up, heard
/// before, the index of the source address in `SOURCES`, and what else was heard
/// before (`PRE_NONE`, `PRE_BEACON`, `PRE_OTHER_HELLO`, `PRE_OTHER_SOURCE`);
/// the rest is the datagram, heard 500 ms after those (or halfway to the node's
/// next deadline if that comes sooner: the target fires no timer). Checks:
/// - [`parse_datagram`] and [`parse_beacon`] never panic and agree with a reference
///   parser: they accept exactly what [`encode_beacon`] and [`encode_hello`] produce
///   (ports 1..=65535), and name the right error (`NotBeacon` for neither prefix,
///   `BadPort` for a bad beacon, `BadHello` for a bad hello);
/// - fed to a [`Node`], a valid datagram from a peer brings it up (a `Connect` to
///   `source:port`, `peers_up` + 1) or refreshes it, counted once in `beacons_in` or
///   `hellos_in`; a hello marks the peer as a dkv node with the hello's id (the
///   endpoint that held the id before loses it) and, if that identified it anew,
///   starts a reconciliation session (one `sync` to the id) unless one runs already;
///   a beacon leaves the peer's id as it was;
/// - any other datagram (malformed, own, or heard with the net down) is counted once
///   in exactly one of `beacons_own` and the datagram drop counters, and changes
///   nothing else;
/// - no other counter moves and nothing else is output.
pub fn beacon(data: &[u8]) {
    let Some((&flags, datagram)) = data.split_first() else {
        return;
    };
    let source = usize::from((flags >> SOURCE_SHIFT) & 0x07);
    let src = SOURCES[source];

    let parsed = parse_datagram(datagram);
    assert_eq!(
        parsed,
        reference_parse(datagram),
        "parse_datagram disagrees"
    );
    let beacon_only = match parsed {
        Ok(Datagram::Beacon(port)) => Ok(port),
        Ok(Datagram::Hello { .. }) | Err(BeaconError::BadHello) => Err(BeaconError::NotBeacon),
        Err(err) => Err(err),
    };
    assert_eq!(
        parse_beacon(datagram),
        beacon_only,
        "parse_beacon disagrees"
    );

    let start = Instant::now();
    let wall = WallClock {
        at: start,
        unix_ms: 1_700_000_000_000,
    };
    let mut node = Node::new(Config::new(BEACON_NODE_ID, BEACON_PUB_PORT, wall));
    let net_up = flags & FLAG_NET_UP != 0;
    if net_up {
        node.handle_net_up(start, BEACON_LOCAL_IP);
    }
    // The senders heard this node and subscribed: identifying one opens a session.
    if let Ok(Datagram::Hello { id, .. }) = parsed {
        node.handle_subscribed(start, id);
    }
    node.handle_subscribed(start, OTHER_ID);
    let port = parsed.map_or(5005, Datagram::port);
    match (flags >> PRE_SHIFT) & 0x03 {
        PRE_BEACON => node.handle_beacon(start, src, &encode_beacon(port)),
        PRE_OTHER_HELLO => node.handle_beacon(start, src, &encode_hello(port, OTHER_ID)),
        PRE_OTHER_SOURCE => node.handle_beacon(start, SOURCES[(source + 1) % 8], datagram),
        _ => {}
    }
    if flags & FLAG_HEARD_BEFORE != 0 {
        node.handle_beacon(start, src, datagram);
    }
    if node.poll_timeout().is_some_and(|at| at <= start) {
        node.handle_timeout(start);
    }
    // Sessions started by what was heard before: they still run at `now`.
    let mut sessions = BTreeSet::new();
    while let Some(output) = node.poll_output() {
        if let Output::Publish(Message::Dkv(Envelope {
            to: Some(to),
            body: Body::Sync { .. },
            ..
        })) = output
        {
            sessions.insert(to);
        }
    }
    // The target fires no timer, so the datagram comes before the next deadline
    // (the contract has `handle_timeout` called at each): 500 ms later, or halfway
    // to a deadline that comes sooner, such as a session's first reply wait (a
    // sixteenth of the sync timeout), which would otherwise expire and be retried.
    let mut now = start + Duration::from_millis(500);
    if let Some(at) = node.poll_timeout().filter(|&at| at <= now) {
        assert!(at > start, "deadline {at:?} still due after handle_timeout");
        now = start + (at - start) / 2;
    }
    let known_before = peer_ids(&node);

    let before = node.stats();
    node.handle_beacon(now, src, datagram);
    let after = node.stats();
    assert_stats_monotonic(&before, &after);
    let outputs: Vec<Output> = std::iter::from_fn(|| node.poll_output()).collect();
    let delta = stats_delta(&before, &after);
    let known_after = peer_ids(&node);

    let valid = match parsed {
        Err(BeaconError::NotBeacon) => Err("drop_not_beacon"),
        Err(BeaconError::BadPort) => Err("drop_beacon_bad_port"),
        // A version-2 hello is a named or keyed cluster's: another than the open one.
        Err(BeaconError::BadHello) if dkv_proto::is_hello_v2(datagram) => {
            Err("drop_hello_foreign_cluster")
        }
        Err(BeaconError::BadHello) => Err("drop_bad_hello"),
        Ok(_) if !net_up => Err("drop_beacon_net_down"),
        Ok(Datagram::Hello { id, .. }) if id == BEACON_NODE_ID => Err("beacons_own"),
        Ok(d) if src == BEACON_LOCAL_IP && d.port() == BEACON_PUB_PORT => Err("beacons_own"),
        Ok(d) => Ok(d),
    };
    let d = match valid {
        Err(counted) => {
            assert_eq!(delta, vec![(counted, 1)], "one counter for {parsed:?}");
            assert_eq!(outputs, vec![], "an ignored datagram outputs nothing");
            assert_eq!(known_after, known_before, "peers changed");
            return;
        }
        Ok(d) => d,
    };
    let addr = SocketAddr::new(src, d.port());
    let (verdict, id) = match d {
        Datagram::Beacon(_) => ("beacons_in", None),
        Datagram::Hello { id, .. } => ("hellos_in", Some(id)),
    };
    assert_eq!(
        moved(&delta, Counter::DatagramVerdict),
        vec![(verdict, 1)],
        "verdict for {d:?}"
    );
    let new = !known_before.contains_key(&addr);
    let identified = id.is_some_and(|id| known_before.get(&addr) != Some(&Some(id)));
    // Of a pair, the lower id opens at once; this node, if higher, waits a first
    // reply wait for that opening.
    let sync_to = id.filter(|id| identified && !sessions.contains(id) && BEACON_NODE_ID < *id);

    let mut want_peers = known_before.clone();
    if let Some(id) = id {
        want_peers.values_mut().for_each(|held| {
            if *held == Some(id) {
                *held = None;
            }
        });
    }
    let held = known_before.get(&addr).copied().flatten();
    want_peers.insert(addr, id.or(held));
    assert_eq!(
        known_after, want_peers,
        "peers and ids after {d:?} from {src}"
    );

    let mut want = Vec::new();
    if new {
        want.push(Output::Connect(addr));
    }
    // A prototype's beacon (no id at that endpoint) gets this node's beacon at once,
    // unless one went out for a prototype already (all of this is within 500 ms).
    assert!(
        before.beacons_out <= 1,
        "beacons before: {}",
        before.beacons_out
    );
    let answered = id.is_none() && known_after.get(&addr) == Some(&None) && before.beacons_out == 0;
    if answered {
        want.push(Output::Beacon(encode_beacon(BEACON_PUB_PORT).into()));
    }
    if let Some(to) = sync_to {
        let [Output::Publish(Message::Dkv(e))] = &outputs[want.len()..] else {
            panic!("hello from {to:?} identified it without one sync: {outputs:?}");
        };
        let Body::Sync {
            session,
            initiator: true,
            last: false,
            steps,
        } = &e.body
        else {
            panic!("not an opening sync: {e:?}");
        };
        let opening = Step::Fingerprint {
            range: Range::ROOT,
            summary: Summary::default(),
        };
        assert_eq!(steps, &vec![opening], "an empty store opens with its root");
        want.push(Output::Publish(Message::Dkv(Envelope {
            to: Some(to),
            from: BEACON_NODE_ID,
            body: Body::Sync {
                session: *session,
                initiator: true,
                last: false,
                steps: steps.clone(),
            },
        })));
    }
    assert_eq!(outputs, want, "outputs for {d:?} from {src}");
    let synced = u64::from(sync_to.is_some());
    assert_eq!(moved_by(&delta, "peers_up"), u64::from(new), "peers_up");
    assert_eq!(moved_by(&delta, "beacons_out"), u64::from(answered));
    assert_eq!(moved_by(&delta, "sync_sessions_started"), synced);
    assert_eq!(moved_by(&delta, "out_sync"), synced);
    let expected_moves = 1 + u64::from(new) + u64::from(answered) + 2 * synced;
    assert_eq!(
        delta.len() as u64,
        expected_moves,
        "other counters moved: {delta:?}"
    );
}
