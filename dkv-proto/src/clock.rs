//! Versions and the hybrid logical clock that issues them: a [`Timestamp`] is
//! wall-clock milliseconds plus a logical counter, a [`Version`] adds the writer's
//! id as the tie-break, and [`WallClock`] is how physical time reaches the pure core.

use crate::node_id::NodeId;
use std::fmt;
use std::time::{Duration, Instant};

/// A hybrid logical clock reading: milliseconds since the Unix epoch in the high
/// 48 bits, a logical counter in the low 16. Ordered as one `u64`, so a counter that
/// overflows carries into the milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub u64);

impl Timestamp {
    /// The lowest timestamp: what entries learned from prototype nodes carry.
    pub const ZERO: Timestamp = Timestamp(0);
    const LOGICAL_BITS: u32 = 16;

    /// The timestamp at `millis` with a zero counter (`millis` wraps above 2^48).
    pub fn from_millis(millis: u64) -> Timestamp {
        Timestamp(millis << Self::LOGICAL_BITS)
    }

    /// The physical part: milliseconds since the Unix epoch.
    pub fn millis(self) -> u64 {
        self.0 >> Self::LOGICAL_BITS
    }

    /// The logical counter.
    pub fn logical(self) -> u16 {
        self.0 as u16
    }

    fn next(self) -> Timestamp {
        Timestamp(self.0.saturating_add(1))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.millis(), self.logical())
    }
}

/// The version of an entry: when it was written and by whom. Versions are totally
/// ordered, timestamp first, then writer id, so every node picks the same winner
/// among concurrent writes of one key (last writer wins).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version {
    /// The writer's clock when it wrote.
    pub ts: Timestamp,
    /// The writer.
    pub node: NodeId,
}

impl Version {
    /// The version of entries learned from prototype nodes (which have none): it
    /// loses to every write made by a dkv node.
    pub const UNVERSIONED: Version = Version {
        ts: Timestamp::ZERO,
        node: NodeId([0; 8]),
    };
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.ts, self.node)
    }
}

/// Where the caller's wall clock stood at one instant: `unix_ms` milliseconds since
/// the Unix epoch at `at`. The core reads wall time as `unix_ms + (now - at)`; a
/// transport refreshes the anchor with
/// [`Node::handle_wall_clock`](crate::Node::handle_wall_clock) so that steps and drift
/// of the real clock reach the core.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WallClock {
    /// The instant of the reading.
    pub at: Instant,
    /// Milliseconds since the Unix epoch at `at`.
    pub unix_ms: u64,
}

impl WallClock {
    /// Wall-clock milliseconds at `now`, saturating instead of overflowing.
    pub fn millis_at(&self, now: Instant) -> u64 {
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        match now.checked_duration_since(self.at) {
            Some(ahead) => self.unix_ms.saturating_add(ms(ahead)),
            None => self.unix_ms.saturating_sub(ms(self.at - now)),
        }
    }
}

/// A remote timestamp further ahead of local wall time than the configured maximum
/// offset: the entry carrying it is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ClockAhead;

/// The node's hybrid logical clock. Every timestamp it issues is above every one it
/// issued or accepted before, so its clock never runs backward, whatever the wall
/// clock does; remote timestamps too far ahead are refused, so one node with a wrong
/// clock cannot drag the others' clocks forward.
#[derive(Debug)]
pub(crate) struct Hlc {
    last: Timestamp,
    max_offset_ms: u64,
}

impl Hlc {
    pub(crate) fn new(max_offset: Duration) -> Hlc {
        Hlc {
            last: Timestamp::ZERO,
            max_offset_ms: u64::try_from(max_offset.as_millis()).unwrap_or(u64::MAX),
        }
    }

    /// The highest timestamp issued or accepted so far.
    pub(crate) fn last(&self) -> Timestamp {
        self.last
    }

    /// A timestamp for a local write at wall time `wall_ms`: above everything seen.
    pub(crate) fn tick(&mut self, wall_ms: u64) -> Timestamp {
        self.last = Timestamp::from_millis(wall_ms).max(self.last.next());
        self.last
    }

    /// Accepts a remote timestamp unless it is more than the maximum offset ahead of
    /// wall time `wall_ms`; an accepted one moves the clock up to it.
    pub(crate) fn observe(&mut self, remote: Timestamp, wall_ms: u64) -> Result<(), ClockAhead> {
        if self.too_far_ahead(remote, wall_ms) {
            return Err(ClockAhead);
        }
        self.last = self.last.max(remote);
        Ok(())
    }

    /// Raises the clock to at least `floor` (a restored entry's version), so no
    /// version issued later is below it.
    pub(crate) fn raise_to(&mut self, floor: Timestamp) {
        self.last = self.last.max(floor);
    }

    /// Whether `remote` is beyond the maximum offset ahead of `wall_ms`.
    pub(crate) fn too_far_ahead(&self, remote: Timestamp, wall_ms: u64) -> bool {
        !self.acceptable_after(remote, wall_ms).is_zero()
    }

    /// How long after wall time `wall_ms` `remote` stops being too far ahead.
    pub(crate) fn acceptable_after(&self, remote: Timestamp, wall_ms: u64) -> Duration {
        let ms = remote
            .millis()
            .saturating_sub(wall_ms.saturating_add(self.max_offset_ms));
        Duration::from_millis(ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_never_go_backward_even_when_wall_time_does() {
        let mut hlc = Hlc::new(Duration::from_millis(500));
        let a = hlc.tick(1_000);
        let b = hlc.tick(900);
        let c = hlc.tick(1_000);
        let d = hlc.tick(1_001);
        assert!(a < b && b < c && c < d, "{a} {b} {c} {d}");
        assert_eq!(d, Timestamp::from_millis(1_001));
    }

    #[test]
    fn a_remote_time_beyond_the_offset_is_refused_and_changes_nothing() {
        let mut hlc = Hlc::new(Duration::from_millis(500));
        hlc.tick(1_000);
        let before = hlc.last();
        assert_eq!(
            hlc.observe(Timestamp::from_millis(1_501), 1_000),
            Err(ClockAhead)
        );
        assert_eq!(hlc.last(), before);
        assert_eq!(hlc.observe(Timestamp::from_millis(1_500), 1_000), Ok(()));
        assert!(hlc.tick(1_000) > Timestamp::from_millis(1_500));
    }

    #[test]
    fn the_logical_counter_carries_into_the_milliseconds() {
        let t = Timestamp(Timestamp::from_millis(7).0 | 0xffff);
        assert_eq!(t.next(), Timestamp::from_millis(8));
    }

    #[test]
    fn wall_clock_reads_before_and_after_its_anchor() {
        let at = Instant::now() + Duration::from_secs(10);
        let wall = WallClock { at, unix_ms: 5_000 };
        assert_eq!(wall.millis_at(at + Duration::from_millis(250)), 5_250);
        assert_eq!(wall.millis_at(at - Duration::from_millis(250)), 4_750);
        assert_eq!(wall.millis_at(at - Duration::from_secs(9)), 0);
    }
}
