//! The UDP side and the host facts a node starts from: the beacon socket, local
//! address detection that sends nothing, the OS randomness a node id and seed are
//! drawn from, and the wall clock.

#![allow(unsafe_code)]

use socket2::{Domain, Protocol, Socket, Type};
use std::io::{self, Read};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};

/// Opens the beacon socket: UDP on `0.0.0.0:<port>` with `SO_BROADCAST`,
/// `SO_REUSEADDR` and `SO_REUSEPORT` (so every node on the host hears every
/// broadcast), non-blocking.
pub(crate) fn beacon_socket(port: u16) -> io::Result<mio::net::UdpSocket> {
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_broadcast(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)).into())?;
    Ok(mio::net::UdpSocket::from_std(socket.into()))
}

/// A socket for sending beacons from `ip` (any port), so that with a fixed bind
/// address the beacons' source is that address, as peers and own-beacon
/// recognition expect. `SO_BROADCAST`, non-blocking.
pub(crate) fn beacon_sender(ip: Ipv4Addr) -> io::Result<UdpSocket> {
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_broadcast(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&SocketAddr::from((ip, 0)).into())?;
    Ok(socket.into())
}

/// The local address traffic toward `target` leaves from, or `None` when there is
/// no route. Found by connecting a UDP socket, which sends nothing.
pub fn detect_local_ip(target: SocketAddrV4) -> Option<Ipv4Addr> {
    let probe = || -> io::Result<SocketAddr> {
        let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
        // Connecting toward a broadcast address needs SO_BROADCAST.
        socket.set_broadcast(true)?;
        socket.connect(&SocketAddr::V4(target).into())?;
        let local = socket.local_addr()?;
        local
            .as_socket()
            .ok_or_else(|| io::Error::other("local address is not an IP address"))
    };
    match probe() {
        Ok(SocketAddr::V4(addr)) if !addr.ip().is_unspecified() => Some(*addr.ip()),
        _ => None,
    }
}

/// A UDP socket opened once, re-connected toward the beacon target at each
/// address check to read the local address traffic toward it leaves from (a
/// connect sends nothing). Keeping it open means a check needs no new descriptor,
/// so running out of them can never look like a lost network.
pub(crate) struct AddressProbe {
    socket: Socket,
}

impl AddressProbe {
    /// Opens the probe socket (`SO_BROADCAST`, to connect toward a broadcast
    /// address).
    pub(crate) fn new() -> io::Result<AddressProbe> {
        let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
        socket.set_broadcast(true)?;
        Ok(AddressProbe { socket })
    }

    /// The local address toward `target`: `Ok(None)` when there is no route or
    /// address (ENETUNREACH, EADDRNOTAVAIL, ENETDOWN: net down), an error for
    /// anything else (out of descriptors or memory: the state must not change).
    pub(crate) fn local_ip(&self, target: SocketAddrV4) -> io::Result<Option<Ipv4Addr>> {
        // Dissolve the last association first, so that the kernel picks the
        // source address afresh (it keeps the old one across a plain re-connect).
        disconnect(&self.socket);
        match self.socket.connect(&SocketAddr::V4(target).into()) {
            Ok(()) => {}
            Err(err) if is_net_down_error(&err) => return Ok(None),
            Err(err) => return Err(err),
        }
        let local = self.socket.local_addr()?;
        Ok(match local.as_socket() {
            Some(SocketAddr::V4(addr)) if !addr.ip().is_unspecified() => Some(*addr.ip()),
            _ => None,
        })
    }
}

/// `connect(AF_UNSPEC)`: ends a UDP socket's association (and the source address
/// it picked). Its result does not matter: the connect after it is what counts.
fn disconnect(socket: &Socket) {
    use std::os::fd::AsRawFd;
    let addr = libc::sockaddr {
        sa_family: libc::AF_UNSPEC as libc::sa_family_t,
        sa_data: [0; 14],
    };
    // SAFETY: a valid descriptor owned by `socket`, and a valid `sockaddr` of the
    // length passed, read only during the call.
    unsafe {
        libc::connect(
            socket.as_raw_fd(),
            &addr,
            std::mem::size_of::<libc::sockaddr>() as libc::socklen_t,
        );
    }
}

/// True for the send errors that mean the host lost its address or route:
/// ENETUNREACH, EADDRNOTAVAIL, ENETDOWN.
pub(crate) fn is_net_down_error(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::NetworkUnreachable
            | io::ErrorKind::AddrNotAvailable
            | io::ErrorKind::NetworkDown
    )
}

/// 8 random bytes from the OS, for a fresh node id or seed.
pub(crate) fn random_id() -> io::Result<[u8; 8]> {
    let mut id = [0u8; 8];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut id)?;
    Ok(id)
}

/// The wall clock now, in milliseconds since the Unix epoch (0 for a clock set
/// before 1970).
pub(crate) fn unix_ms_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A UDP port that was free a moment ago on `0.0.0.0`, for a beacon port unique to
/// one test or demo. Another process may take it before it is used; the chance is
/// small.
pub fn unused_udp_port() -> io::Result<u16> {
    let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))?;
    Ok(socket.local_addr()?.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_probe_finds_loopback_again_and_again_with_one_descriptor() {
        let probe = AddressProbe::new().unwrap();
        let target = SocketAddrV4::new(Ipv4Addr::new(127, 255, 255, 255), 9);
        for _ in 0..3 {
            assert_eq!(probe.local_ip(target).unwrap(), Some(Ipv4Addr::LOCALHOST));
        }
    }

    #[test]
    fn the_local_address_toward_loopback_broadcast_is_loopback() {
        let target = SocketAddrV4::new(Ipv4Addr::new(127, 255, 255, 255), 9);
        assert_eq!(detect_local_ip(target), Some(Ipv4Addr::LOCALHOST));
    }

    #[test]
    fn only_lost_address_or_route_errors_mean_net_down() {
        for (errno, down) in [
            (101, true),
            (99, true),
            (100, true),
            (111, false),
            (1, false),
        ] {
            let err = io::Error::from_raw_os_error(errno);
            assert_eq!(is_net_down_error(&err), down, "errno {errno}");
        }
    }

    #[test]
    fn the_wall_clock_reads_after_2020() {
        assert!(unix_ms_now() > 1_577_836_800_000);
    }

    #[test]
    fn fresh_ids_are_random() {
        assert_ne!(random_id().unwrap(), random_id().unwrap());
    }
}
