//! Discovery datagrams on the UDP beacon port: the prototype's `beacon <pub port>`,
//! and dkv's hello, which tells dkv nodes apart from prototype nodes.
//!
//! A hello is a separate datagram (the beacon must stay exactly the prototype's):
//! `dkv2\0`, the wire version, the PUB port (`u16`, big-endian) and the 8-byte node
//! id, 16 bytes in all. The prototype ignores it: it does not start with `beacon `.
//!
//! Nodes of a named or keyed cluster send no beacon and a version-2 hello instead,
//! which carries the cluster's tag ([`Cluster::tag`]). Plain (unkeyed), 25 bytes:
//! `dkv2\0 | 2 | flags=0 | tag[4] | id[8] | port:u16 | ip[4]`; sealed (keyed) it is
//! [`seal::Sealer::seal_hello`](crate::seal::Sealer::seal_hello)'s 68 bytes (flags=1).
//! Open nodes of earlier versions reject version 2 as a bad hello, so clusters never
//! merge by accident.

use crate::node_id::NodeId;
use crate::seal::{Cluster, ClusterTag, HELLO_FLAG_SEALED, HELLO_VERSION};
use crate::wire::v2::WIRE_VERSION;
use std::net::Ipv4Addr;

/// Every beacon starts with these bytes.
pub const BEACON_PREFIX: &[u8] = b"beacon ";

/// Every hello starts with these bytes.
pub const HELLO_PREFIX: &[u8] = b"dkv2\0";

/// The prototype's receive buffer: longer datagrams are truncated to this size.
pub const MAX_BEACON_LEN: usize = 1024;

/// Why a datagram is not a usable beacon or hello. A rejected datagram only bumps a
/// counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum BeaconError {
    /// The datagram is neither a beacon nor a hello.
    #[error("datagram is not a beacon")]
    NotBeacon,
    /// The text after the prefix is not a canonical decimal port in 1..=65535.
    #[error("beacon port is not a decimal number in 1..=65535")]
    BadPort,
    /// A hello of the wrong length, wire version or port 0.
    #[error("malformed hello")]
    BadHello,
}

/// A parsed discovery datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Datagram {
    /// `beacon <port>`: a node (prototype or dkv) with its PUB socket on `port`.
    Beacon(u16),
    /// A dkv node with id `id` and its PUB socket on `port`.
    Hello {
        /// The PUB port.
        port: u16,
        /// The node id.
        id: NodeId,
    },
}

impl Datagram {
    /// The announced PUB port.
    pub fn port(self) -> u16 {
        match self {
            Datagram::Beacon(port) | Datagram::Hello { port, .. } => port,
        }
    }
}

/// The beacon payload announcing PUB port `port`, e.g. `beacon 41017`.
pub fn encode_beacon(port: u16) -> Vec<u8> {
    format!("beacon {port}").into_bytes()
}

/// The hello payload of node `id` with its PUB socket on `port`.
pub fn encode_hello(port: u16, id: NodeId) -> Vec<u8> {
    let mut d = HELLO_PREFIX.to_vec();
    d.push(WIRE_VERSION);
    d.extend_from_slice(&port.to_be_bytes());
    d.extend_from_slice(&id.0);
    d
}

/// Parses a beacon payload into the announced PUB port. Accepts exactly what
/// [`encode_beacon`] produces: no sign, spaces, leading zeros or trailing bytes.
pub fn parse_beacon(datagram: &[u8]) -> Result<u16, BeaconError> {
    let digits = datagram
        .strip_prefix(BEACON_PREFIX)
        .ok_or(BeaconError::NotBeacon)?;
    let canonical = !digits.is_empty()
        && digits.len() <= 5
        && digits.iter().all(u8::is_ascii_digit)
        && digits[0] != b'0';
    if !canonical {
        return Err(BeaconError::BadPort);
    }
    let port = digits
        .iter()
        .fold(0u32, |acc, d| acc * 10 + u32::from(d - b'0'));
    u16::try_from(port).map_err(|_| BeaconError::BadPort)
}

/// Parses a beacon or a hello. Accepts exactly what [`encode_beacon`] and
/// [`encode_hello`] produce.
pub fn parse_datagram(datagram: &[u8]) -> Result<Datagram, BeaconError> {
    let Some(rest) = datagram.strip_prefix(HELLO_PREFIX) else {
        return parse_beacon(datagram).map(Datagram::Beacon);
    };
    let [version, p0, p1, id @ ..] = rest else {
        return Err(BeaconError::BadHello);
    };
    let id: [u8; 8] = id.try_into().map_err(|_| BeaconError::BadHello)?;
    let port = u16::from_be_bytes([*p0, *p1]);
    if *version != WIRE_VERSION || port == 0 {
        return Err(BeaconError::BadHello);
    }
    Ok(Datagram::Hello {
        port,
        id: NodeId(id),
    })
}

/// The length of a plain (unsealed) version-2 hello.
pub const PLAIN_HELLO_LEN: usize = 5 + 1 + 1 + 4 + 8 + 2 + 4;

/// A plain version-2 hello: a dkv node of a named, unkeyed cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlainHello {
    /// The sender's cluster tag.
    pub tag: ClusterTag,
    /// The sender's node id.
    pub id: NodeId,
    /// The sender's PUB port (never 0).
    pub port: u16,
    /// The sender's address (a receiver compares it with the datagram's source).
    pub ip: Ipv4Addr,
}

/// Whether `datagram` is a version-2 hello (plain, sealed or malformed): it starts
/// with `dkv2\0` and the byte 2.
pub fn is_hello_v2(datagram: &[u8]) -> bool {
    datagram.starts_with(HELLO_PREFIX) && datagram.get(HELLO_PREFIX.len()) == Some(&HELLO_VERSION)
}

/// Whether a version-2 hello says it is sealed (flags bit 0).
pub(crate) fn hello_v2_sealed(datagram: &[u8]) -> bool {
    datagram.get(HELLO_PREFIX.len() + 1) == Some(&HELLO_FLAG_SEALED)
}

/// The plain version-2 hello of node `id` in `cluster`, PUB socket at `ip:port`.
pub fn encode_plain_hello(cluster: &Cluster, id: NodeId, port: u16, ip: Ipv4Addr) -> Vec<u8> {
    let mut d = Vec::with_capacity(PLAIN_HELLO_LEN);
    d.extend_from_slice(HELLO_PREFIX);
    d.extend_from_slice(&[HELLO_VERSION, 0]);
    d.extend_from_slice(&cluster.tag().0);
    d.extend_from_slice(&id.0);
    d.extend_from_slice(&port.to_be_bytes());
    d.extend_from_slice(&ip.octets());
    d
}

/// Parses a plain version-2 hello: exactly what [`encode_plain_hello`] produces
/// (flags 0, [`PLAIN_HELLO_LEN`] bytes, port not 0), else [`BeaconError::BadHello`].
pub fn parse_plain_hello(datagram: &[u8]) -> Result<PlainHello, BeaconError> {
    let Some(rest) = datagram.strip_prefix(HELLO_PREFIX) else {
        return Err(BeaconError::NotBeacon);
    };
    let [HELLO_VERSION, 0, t0, t1, t2, t3, rest @ ..] = rest else {
        return Err(BeaconError::BadHello);
    };
    let Ok::<[u8; 14], _>(rest) = rest.try_into() else {
        return Err(BeaconError::BadHello);
    };
    let mut id = [0; 8];
    id.copy_from_slice(&rest[..8]);
    let port = u16::from_be_bytes([rest[8], rest[9]]);
    if port == 0 {
        return Err(BeaconError::BadHello);
    }
    Ok(PlainHello {
        tag: ClusterTag([*t0, *t1, *t2, *t3]),
        id: NodeId(id),
        port,
        ip: Ipv4Addr::new(rest[10], rest[11], rest[12], rest[13]),
    })
}

/// The sender id a version-1 or version-2 hello (plain or sealed) names, read at
/// its fixed offset without checking anything else; `None` for anything shorter
/// or not a hello. Identifies own hellos heard back (a sealed one differs on every
/// send).
pub(crate) fn hello_sender(datagram: &[u8]) -> Option<NodeId> {
    let rest = datagram.strip_prefix(HELLO_PREFIX)?;
    let at = match *rest.first()? {
        WIRE_VERSION => 3,
        HELLO_VERSION => 6,
        _ => return None,
    };
    let id: [u8; 8] = rest.get(at..at + 8)?.try_into().ok()?;
    Some(NodeId(id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_hello_round_trips_and_names_its_sender() {
        let c = Cluster::new("team").unwrap();
        let id = NodeId(*b"node two");
        let ip = Ipv4Addr::new(10, 1, 2, 3);
        let d = encode_plain_hello(&c, id, 7001, ip);
        assert_eq!(d.len(), PLAIN_HELLO_LEN);
        assert!(is_hello_v2(&d) && !hello_v2_sealed(&d));
        let want = PlainHello {
            tag: c.tag(),
            id,
            port: 7001,
            ip,
        };
        assert_eq!(parse_plain_hello(&d), Ok(want));
        assert_eq!(parse_datagram(&d), Err(BeaconError::BadHello));
        assert_eq!(parse_plain_hello(&d[..24]), Err(BeaconError::BadHello));
        assert_eq!(hello_sender(&d), Some(id));
        assert_eq!(hello_sender(&encode_hello(1, id)), Some(id));
        assert_eq!(hello_sender(b"beacon 1"), None);
    }

    #[test]
    fn a_hello_round_trips_and_is_no_beacon_for_the_prototype() {
        let id = NodeId(*b"node one");
        let d = encode_hello(41017, id);
        assert_eq!(d.len(), 16);
        assert!(!d.starts_with(BEACON_PREFIX));
        assert_eq!(parse_datagram(&d), Ok(Datagram::Hello { port: 41017, id }));
        assert_eq!(parse_datagram(&d[..15]), Err(BeaconError::BadHello));
        assert_eq!(parse_datagram(b"beacon 5"), Ok(Datagram::Beacon(5)));
    }
}
