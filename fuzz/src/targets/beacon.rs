//! Target `beacon`: one arbitrary UDP datagram through the beacon parser and a node.

use super::{assert_stats_monotonic, stats_delta};
use dkv_proto::{
    encode_beacon, parse_beacon, BeaconError, Config, Node, NodeId, Output, BEACON_PREFIX,
};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

/// The node's local address in the `beacon` target.
pub const BEACON_LOCAL_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
/// The node's PUB port in the `beacon` target.
pub const BEACON_PUB_PORT: u16 = 41017;

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

/// What a correct parser accepts: exactly the bytes [`encode_beacon`] produces for
/// some port in 1..=65535. Written independently of `parse_beacon`.
fn reference_parse(datagram: &[u8]) -> Option<u16> {
    let digits = std::str::from_utf8(datagram.strip_prefix(BEACON_PREFIX)?).ok()?;
    let port: u16 = digits.parse().ok()?;
    (port != 0 && encode_beacon(port) == datagram).then_some(port)
}

/// Checks one datagram. The first byte is flags (`FLAG_NET_UP`,
/// `FLAG_HEARD_BEFORE`) and, in bits 2..5, the index of the source address in
/// `SOURCES`; the rest is the datagram. Checks:
/// - [`parse_beacon`] never panics, accepts exactly what [`encode_beacon`] produces
///   for ports 1..=65535, and says `NotBeacon` exactly when the prefix is missing;
/// - fed to a [`Node`], the datagram either makes a valid peer come up (a `Connect`
///   to `source:port`, `peers_up` + 1) or refreshes it (no output), counted once in
///   `beacons_in`, or is counted once in exactly one of `beacons_own` and the drop
///   counters; nothing else moves and nothing else is output.
pub fn beacon(data: &[u8]) {
    let Some((&flags, datagram)) = data.split_first() else {
        return;
    };
    let src = SOURCES[usize::from((flags >> 2) & 0x07)];

    let parsed = parse_beacon(datagram);
    assert_eq!(
        parsed.ok(),
        reference_parse(datagram),
        "parse_beacon disagrees"
    );
    if let Err(err) = parsed {
        let has_prefix = datagram.starts_with(BEACON_PREFIX);
        assert_eq!(err == BeaconError::NotBeacon, !has_prefix, "{err:?}");
    }

    let start = Instant::now();
    let mut node = Node::new(Config::new(NodeId(*b"beacon!!"), BEACON_PUB_PORT));
    let net_up = flags & FLAG_NET_UP != 0;
    if net_up {
        node.handle_net_up(start, BEACON_LOCAL_IP);
    }
    let mut now = start;
    if flags & FLAG_HEARD_BEFORE != 0 {
        node.handle_beacon(now, src, datagram);
        now += Duration::from_millis(500);
    }
    while node.poll_output().is_some() {}
    let known_before: Vec<SocketAddr> = node.peers().collect();

    let before = node.stats().clone();
    node.handle_beacon(now, src, datagram);
    let after = node.stats().clone();
    assert_stats_monotonic(&before, &after);
    let outputs: Vec<Output> = std::iter::from_fn(|| node.poll_output()).collect();
    let moved = stats_delta(&before, &after);

    let counted = match parsed {
        Err(BeaconError::NotBeacon) => "drop_not_beacon",
        Err(BeaconError::BadPort) => "drop_beacon_bad_port",
        Ok(_) if !net_up => "drop_beacon_net_down",
        Ok(port) if src == BEACON_LOCAL_IP && port == BEACON_PUB_PORT => "beacons_own",
        Ok(port) => {
            let addr = SocketAddr::new(src, port);
            assert!(node.peers().any(|p| p == addr), "valid beacon but no peer");
            if known_before.contains(&addr) {
                assert_eq!(outputs, vec![], "a refresh outputs nothing");
                assert_eq!(moved, vec![("beacons_in", 1)]);
            } else {
                assert_eq!(outputs, vec![Output::Connect(addr)], "a new peer");
                assert_eq!(moved, vec![("beacons_in", 1), ("peers_up", 1)]);
            }
            return;
        }
    };
    assert_eq!(moved, vec![(counted, 1)], "one counter for {parsed:?}");
    assert_eq!(outputs, vec![], "an ignored datagram outputs nothing");
    assert_eq!(
        node.peers().collect::<Vec<_>>(),
        known_before,
        "peers changed"
    );
}
