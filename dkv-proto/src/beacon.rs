//! Discovery datagrams on the UDP beacon port: the prototype's `beacon <pub port>`,
//! and dkv's hello, which tells dkv nodes apart from prototype nodes.
//!
//! A hello is a separate datagram (the beacon must stay exactly the prototype's):
//! `dkv2\0`, the wire version, the PUB port (`u16`, big-endian) and the 8-byte node
//! id, 16 bytes in all. The prototype ignores it: it does not start with `beacon `.

use crate::node_id::NodeId;
use crate::wire::v2::WIRE_VERSION;

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

#[cfg(test)]
mod tests {
    use super::*;

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
