//! ZeroMQ socket monitors, read like any other socket of the loop: the XPUB
//! socket's accepted and closed TCP connections (to cap subscribers in total and
//! per IP, cutting the excess), and the SUB socket's connections to peers (to
//! re-dial a live peer whose connection libzmq gave up on).
//!
//! Why re-dial: a frame over `ZMQ_MAXMSGSIZE` is a protocol error, and libzmq
//! 4.3.4 answers a protocol error by ending the session for good
//! (`session_base_t::engine_error`), even for a connection it made itself. Without
//! a re-dial, one oversized message would cut a peer off until it went down and
//! came back.

#![allow(unsafe_code)]

use crate::error::Error;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{BorrowedFd, RawFd};
use std::time::{Duration, Instant};

/// `ZMQ_EVENT_*` from zmq.h.
pub(crate) mod event {
    pub const CONNECTED: u16 = 0x0001;
    pub const CONNECT_RETRIED: u16 = 0x0004;
    pub const ACCEPTED: u16 = 0x0020;
    pub const ACCEPT_FAILED: u16 = 0x0040;
    pub const DISCONNECTED: u16 = 0x0200;
}

/// One monitor event: what happened, its value (a descriptor or an errno) and the
/// endpoint (for a connection the SUB socket made, the peer's `tcp://ip:port`).
pub(crate) struct Event {
    pub kind: u16,
    pub value: u32,
    pub endpoint: String,
}

/// The PAIR socket a monitored socket reports its events to.
pub(crate) struct Monitor {
    pair: zmq::Socket,
}

impl Monitor {
    /// Starts monitoring `socket` for `events` (a mask of [`event`] bits) through
    /// `inproc://<name>`, unique within `context`.
    pub(crate) fn new(
        context: &zmq::Context,
        socket: &zmq::Socket,
        name: &str,
        events: u16,
    ) -> Result<Monitor, Error> {
        let endpoint = format!("inproc://{name}");
        socket
            .monitor(&endpoint, i32::from(events))
            .map_err(Error::zmq("start a socket monitor"))?;
        let pair = context
            .socket(zmq::PAIR)
            .map_err(Error::zmq("create a monitor socket"))?;
        pair.set_linger(0)
            .map_err(Error::zmq("set monitor linger"))?;
        // Unlimited: the monitored socket must never block or lose events on it;
        // the loop drains it whenever it signals.
        pair.set_rcvhwm(0)
            .map_err(Error::zmq("set monitor RCVHWM"))?;
        pair.connect(&endpoint)
            .map_err(Error::zmq("connect a monitor socket"))?;
        Ok(Monitor { pair })
    }

    /// The descriptor ZeroMQ signals the monitor's readiness changes on.
    pub(crate) fn fd(&self) -> Result<RawFd, Error> {
        self.pair.get_fd().map_err(Error::zmq("get monitor fd"))
    }

    /// The next event, if one is ready.
    pub(crate) fn next(&self) -> Option<Event> {
        let frames = self.pair.recv_multipart(zmq::DONTWAIT).ok()?;
        let head = frames.first()?;
        if head.len() < 6 {
            return None;
        }
        Some(Event {
            kind: u16::from_le_bytes([head[0], head[1]]),
            value: u32::from_le_bytes([head[2], head[3], head[4], head[5]]),
            endpoint: frames
                .get(1)
                .map(|e| String::from_utf8_lossy(e).into_owned())
                .unwrap_or_default(),
        })
    }

    /// Whether an event waits (reading `ZMQ_EVENTS` also processes the socket's
    /// pending commands, so its descriptor signals the next one).
    pub(crate) fn ready(&self) -> bool {
        self.pair
            .get_events()
            .map(|e| e.contains(zmq::POLLIN))
            .unwrap_or(false)
    }
}

/// The remote address of the TCP connection on descriptor `fd`.
pub(crate) fn peer_of(fd: RawFd) -> Option<SocketAddr> {
    // SAFETY: the descriptor is only borrowed for the call; libzmq owns it. If it
    // was closed meanwhile, getpeername fails (EBADF) or names another connection,
    // which callers compare against the address they recorded.
    let fd = unsafe { BorrowedFd::borrow_raw(fd) };
    socket2::SockRef::from(&fd).peer_addr().ok()?.as_socket()
}

/// Cuts the TCP connection on `fd` (shutdown both ways; libzmq then sees it end
/// and closes it) if it still connects `peer`, so a descriptor libzmq closed and
/// reused meanwhile is left alone. True if cut.
pub(crate) fn cut(fd: RawFd, peer: SocketAddr) -> bool {
    if peer_of(fd) != Some(peer) {
        return false;
    }
    // SAFETY: as in `peer_of`; shutdown does not close the descriptor.
    let fd = unsafe { BorrowedFd::borrow_raw(fd) };
    socket2::SockRef::from(&fd)
        .shutdown(std::net::Shutdown::Both)
        .is_ok()
}

/// The XPUB socket's inbound connections now, by descriptor.
#[derive(Default)]
pub(crate) struct Inbound {
    conns: HashMap<RawFd, SocketAddr>,
}

impl Inbound {
    /// Records an accepted connection; whether it is within the caps (total
    /// `max`, `per_ip` from one address), counting it.
    pub(crate) fn accepted(
        &mut self,
        fd: RawFd,
        peer: SocketAddr,
        max: usize,
        per_ip: usize,
    ) -> bool {
        self.conns.insert(fd, peer);
        let from_ip = self.count_ip(peer.ip());
        self.conns.len() <= max && from_ip <= per_ip
    }

    /// Forgets a closed connection; whether it was known.
    pub(crate) fn closed(&mut self, fd: RawFd) -> bool {
        self.conns.remove(&fd).is_some()
    }

    fn count_ip(&self, ip: IpAddr) -> usize {
        self.conns.values().filter(|p| p.ip() == ip).count()
    }

    /// Connections now.
    pub(crate) fn len(&self) -> usize {
        self.conns.len()
    }
}

/// The first re-dial waits this long after a disconnect…
const REDIAL_FIRST: Duration = Duration::from_millis(100);
/// …each next one twice as long as the last, up to this…
const REDIAL_MAX: Duration = Duration::from_secs(5);
/// …until a connection lasts this long.
const REDIAL_RESET: Duration = Duration::from_secs(10);

/// Re-dial state of one peer endpoint.
struct Redial {
    /// When to re-dial, if libzmq does not reconnect by itself first.
    due: Option<Instant>,
    /// The wait before the next re-dial.
    delay: Duration,
    /// When the current connection was made.
    connected_at: Option<Instant>,
}

/// Which SUB connections to re-dial, and when (module docs).
#[derive(Default)]
pub(crate) struct Redials {
    peers: HashMap<SocketAddr, Redial>,
}

impl Redials {
    /// Takes one SUB monitor event into account.
    pub(crate) fn on_event(&mut self, now: Instant, ev: &Event) {
        let Some(addr) = ev
            .endpoint
            .strip_prefix("tcp://")
            .and_then(|a| a.parse::<SocketAddr>().ok())
        else {
            return;
        };
        let entry = self.peers.entry(addr).or_insert(Redial {
            due: None,
            delay: REDIAL_FIRST,
            connected_at: None,
        });
        match ev.kind {
            event::CONNECTED => {
                entry.due = None;
                entry.connected_at = Some(now);
            }
            // libzmq is reconnecting by itself.
            event::CONNECT_RETRIED => entry.due = None,
            event::DISCONNECTED => {
                if entry
                    .connected_at
                    .take()
                    .is_some_and(|at| now.saturating_duration_since(at) >= REDIAL_RESET)
                {
                    entry.delay = REDIAL_FIRST;
                }
                entry.due = Some(now + entry.delay);
                entry.delay = (entry.delay * 2).min(REDIAL_MAX);
            }
            _ => {}
        }
    }

    /// The peer went down (the node disconnected it): no re-dial.
    pub(crate) fn forget(&mut self, addr: SocketAddr) {
        self.peers.remove(&addr);
    }

    /// The endpoints whose re-dial is due at `now`; each is then no longer due.
    pub(crate) fn due(&mut self, now: Instant) -> Vec<SocketAddr> {
        let mut due = Vec::new();
        for (addr, redial) in &mut self.peers {
            if redial.due.is_some_and(|at| at <= now) {
                redial.due = None;
                due.push(*addr);
            }
        }
        due
    }

    /// The earliest pending re-dial.
    pub(crate) fn next_due(&self) -> Option<Instant> {
        self.peers.values().filter_map(|r| r.due).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(kind: u16) -> Event {
        Event {
            kind,
            value: 0,
            endpoint: "tcp://127.0.0.1:5555".into(),
        }
    }

    #[test]
    fn a_disconnect_not_followed_by_a_retry_is_re_dialed_with_backoff() {
        let mut r = Redials::default();
        let t0 = Instant::now();
        r.on_event(t0, &ev(event::CONNECTED));
        r.on_event(t0, &ev(event::DISCONNECTED));
        assert_eq!(r.next_due(), Some(t0 + REDIAL_FIRST));
        assert!(r.due(t0).is_empty());
        assert_eq!(r.due(t0 + REDIAL_FIRST).len(), 1);
        assert!(r.due(t0 + REDIAL_MAX).is_empty(), "due once");
        // A second disconnect soon after waits twice as long.
        r.on_event(t0, &ev(event::CONNECTED));
        r.on_event(t0, &ev(event::DISCONNECTED));
        assert_eq!(r.next_due(), Some(t0 + 2 * REDIAL_FIRST));
        // libzmq retrying by itself cancels the re-dial.
        r.on_event(t0, &ev(event::CONNECT_RETRIED));
        assert_eq!(r.next_due(), None);
        // A connection that lasted resets the backoff.
        r.on_event(t0, &ev(event::CONNECTED));
        r.on_event(t0 + REDIAL_RESET, &ev(event::DISCONNECTED));
        assert_eq!(r.next_due(), Some(t0 + REDIAL_RESET + REDIAL_FIRST));
    }

    #[test]
    fn inbound_connections_are_capped_in_total_and_per_ip() {
        let mut inbound = Inbound::default();
        let a = |port| SocketAddr::from(([10, 0, 0, 1], port));
        let b = |port| SocketAddr::from(([10, 0, 0, 2], port));
        assert!(inbound.accepted(3, a(1), 3, 2));
        assert!(inbound.accepted(4, a(2), 3, 2));
        assert!(!inbound.accepted(5, a(3), 3, 2), "third from one IP");
        assert!(inbound.closed(5));
        assert!(inbound.accepted(6, b(1), 3, 2));
        assert!(!inbound.accepted(7, b(2), 3, 2), "fourth in all");
        assert!(inbound.closed(7));
        assert!(!inbound.closed(7));
        assert_eq!(inbound.len(), 3);
    }
}
