//! Discovery beacons: the UDP payload `beacon <pub port>` and its strict parser.

/// Every beacon starts with these bytes.
pub const BEACON_PREFIX: &[u8] = b"beacon ";

/// The prototype's receive buffer: longer datagrams are truncated to this size.
pub const MAX_BEACON_LEN: usize = 1024;

/// Why a datagram is not a usable beacon. A rejected datagram only bumps a counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum BeaconError {
    /// The datagram does not start with `beacon `.
    #[error("datagram is not a beacon")]
    NotBeacon,
    /// The text after the prefix is not a canonical decimal port in 1..=65535.
    #[error("beacon port is not a decimal number in 1..=65535")]
    BadPort,
}

/// The beacon payload announcing PUB port `port`, e.g. `beacon 41017`.
pub fn encode_beacon(port: u16) -> Vec<u8> {
    format!("beacon {port}").into_bytes()
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
