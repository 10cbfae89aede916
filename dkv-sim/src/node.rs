//! A simulated node: a dkv core or the prototype model, behind one interface, and
//! its clocks (a monotonic clock with a rate error, a wall clock with an offset).

use crate::prototype::Prototype;
use crate::queue::SimTime;
use bytes::Bytes;
use dkv_proto::{GetId, Message, Node, NodeId, Output};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// Wall-clock milliseconds at virtual time 0 (2026-01-01T00:00:00Z).
pub const SIM_UNIX_MS: u64 = 1_767_225_600_000;

/// A node's clocks. The monotonic clock runs at `1 + ppm / 1_000_000` times the true
/// rate; the wall clock reads true time plus `offset_ms`, as an NTP-disciplined
/// clock with a constant error would.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Clock {
    /// Rate error of the monotonic clock, in parts per million, clamped to
    /// `±500_000`.
    pub ppm: i64,
    /// Wall-clock error in milliseconds (positive: ahead).
    pub offset_ms: i64,
}

impl Clock {
    /// Local nanoseconds per million true ones: 500,000 to 1,500,000.
    fn rate(&self) -> u64 {
        (1_000_000 + self.ppm.clamp(-500_000, 500_000)) as u64
    }

    /// The monotonic reading (nanoseconds) at true time `t`.
    pub fn local(&self, t: SimTime) -> u64 {
        if self.ppm == 0 {
            return t; // most clocks: no multiplication on every event
        }
        scale(t, self.rate(), 0, 1_000_000)
    }

    /// The earliest true time at which the monotonic reading reaches `local`.
    pub fn sim(&self, local: u64) -> SimTime {
        if self.ppm == 0 {
            return local;
        }
        let rate = self.rate();
        let mut t = scale(local, 1_000_000, rate - 1, rate);
        while self.local(t) < local {
            t += 1;
        }
        while t > 0 && self.local(t - 1) >= local {
            t -= 1;
        }
        t
    }

    /// The wall clock's reading, in milliseconds since the Unix epoch, at true time
    /// `t`.
    pub fn wall_ms(&self, t: SimTime) -> u64 {
        (SIM_UNIX_MS + t / 1_000_000).saturating_add_signed(self.offset_ms)
    }
}

/// `(x * mul + add) / div`, rounded down: in 64 bits while the product fits (any
/// run shorter than three hours; a 128-bit division is a library call, on every
/// event of a skewed node), else in 128.
fn scale(x: u64, mul: u64, add: u64, div: u64) -> u64 {
    match x.checked_mul(mul).and_then(|p| p.checked_add(add)) {
        Some(p) => p / div,
        None => ((u128::from(x) * u128::from(mul) + u128::from(add)) / u128::from(div)) as u64,
    }
}

/// What runs in a slot.
#[derive(Debug)]
pub enum Core {
    /// A dkv node.
    Dkv(Box<Node>),
    /// The prototype model.
    Prototype(Box<Prototype>),
}

impl Core {
    /// The node's id.
    pub fn id(&self) -> NodeId {
        match self {
            Core::Dkv(n) => n.id(),
            Core::Prototype(p) => p.id(),
        }
    }

    pub(crate) fn subscriptions(&self) -> Vec<Bytes> {
        match self {
            Core::Dkv(n) => n.subscriptions(),
            Core::Prototype(p) => p.subscriptions(),
        }
    }

    /// The node's local address while its net is up.
    pub fn local_ip(&self) -> Option<IpAddr> {
        match self {
            Core::Dkv(n) => n.local_ip(),
            Core::Prototype(p) => p.local_ip(),
        }
    }

    /// The node's live peers.
    pub fn peers(&self) -> Vec<SocketAddr> {
        match self {
            Core::Dkv(n) => n.peers().collect(),
            Core::Prototype(p) => p.peers().collect(),
        }
    }

    /// The value the node holds for `key` (none for a deleted key).
    pub fn value(&self, key: &str) -> Option<&[u8]> {
        match self {
            Core::Dkv(n) => n.value(key),
            Core::Prototype(p) => p.value(key).map(|v| &v[..]),
        }
    }

    pub(crate) fn handle_beacon(&mut self, now: Instant, src: IpAddr, datagram: &[u8]) {
        match self {
            Core::Dkv(n) => n.handle_beacon(now, src, datagram),
            Core::Prototype(p) => p.handle_beacon(now, src, datagram),
        }
    }

    pub(crate) fn handle_decoded(&mut self, now: Instant, msg: Message) {
        match self {
            Core::Dkv(n) => n.handle_decoded(now, msg),
            Core::Prototype(p) => p.handle_decoded(now, msg),
        }
    }

    pub(crate) fn handle_net_up(&mut self, now: Instant, ip: IpAddr) {
        match self {
            Core::Dkv(n) => n.handle_net_up(now, ip),
            Core::Prototype(p) => p.handle_net_up(now, ip),
        }
    }

    pub(crate) fn handle_net_down(&mut self, now: Instant) {
        match self {
            Core::Dkv(n) => n.handle_net_down(now),
            Core::Prototype(p) => p.handle_net_down(now),
        }
    }

    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        match self {
            Core::Dkv(n) => n.handle_timeout(now),
            Core::Prototype(p) => p.handle_timeout(now),
        }
    }

    pub(crate) fn set(&mut self, now: Instant, key: String, value: Bytes) {
        match self {
            Core::Dkv(n) => n.set(now, key, value),
            Core::Prototype(p) => p.set(now, key, value),
        }
    }

    pub(crate) fn get(&mut self, now: Instant, key: String, timeout: Option<Duration>) -> GetId {
        match self {
            Core::Dkv(n) => n.get(now, key, timeout),
            Core::Prototype(p) => p.get(now, key),
        }
    }

    pub(crate) fn shutdown(&mut self, now: Instant) {
        match self {
            Core::Dkv(n) => n.shutdown(now),
            Core::Prototype(p) => p.shutdown(now),
        }
    }

    pub(crate) fn poll_output(&mut self) -> Option<Output> {
        match self {
            Core::Dkv(n) => n.poll_output(),
            Core::Prototype(p) => p.poll_output(),
        }
    }

    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        match self {
            Core::Dkv(n) => n.poll_timeout(),
            Core::Prototype(p) => p.poll_timeout(),
        }
    }

    /// The dkv node, if this is one.
    pub fn dkv(&self) -> Option<&Node> {
        match self {
            Core::Dkv(n) => Some(n),
            Core::Prototype(_) => None,
        }
    }

    /// The prototype model, if this is one.
    pub fn prototype(&self) -> Option<&Prototype> {
        match self {
            Core::Dkv(_) => None,
            Core::Prototype(p) => Some(p),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skewed_clocks_are_monotonic_and_invert_exactly() {
        for ppm in [-50_000, -1, 0, 1, 999, 50_000] {
            let c = Clock { ppm, offset_ms: 0 };
            let mut last = 0;
            for t in (0..5_000_000_000u64).step_by(333_333_333) {
                let l = c.local(t);
                assert!(l >= last);
                last = l;
                let back = c.sim(l);
                assert!(c.local(back) >= l && back <= t);
            }
        }
    }

    #[test]
    fn clock_scaling_is_exact_past_where_64_bits_overflow() {
        let exact = |x: u64, mul: u64, add: u64, div: u64| {
            ((u128::from(x) * u128::from(mul) + u128::from(add)) / u128::from(div)) as u64
        };
        let edge = u64::MAX / 1_500_000;
        for x in [
            0,
            1,
            60_000_000_000,
            edge - 1,
            edge,
            edge + 1,
            1 << 60,
            u64::MAX / 2,
        ] {
            for (mul, add, div) in [(1_500_000, 0, 1_000_000), (1_000_000, 499_999, 500_000)] {
                assert_eq!(scale(x, mul, add, div), exact(x, mul, add, div), "{x}");
            }
        }
        // A skewed clock hours into a run still inverts exactly.
        let c = Clock {
            ppm: 50_000,
            offset_ms: 0,
        };
        let t = 20_000_000_000_000; // 5.5 hours
        assert_eq!(c.local(t), exact(t, 1_050_000, 0, 1_000_000));
        assert!(c.local(c.sim(c.local(t))) == c.local(t) && c.sim(c.local(t)) <= t);
    }

    #[test]
    fn the_wall_clock_is_true_time_plus_its_offset() {
        let c = Clock {
            ppm: 50_000,
            offset_ms: -1_500,
        };
        assert_eq!(c.wall_ms(2_000_000_000), SIM_UNIX_MS + 2_000 - 1_500);
    }
}
