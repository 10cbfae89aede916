//! A node's identity and timings. Defaults are the prototype's values.

use crate::message::NodeId;
use std::time::Duration;

/// Everything a [`Node`](crate::Node) is told at creation.
#[derive(Clone, Debug)]
pub struct Config {
    /// This node's id: 8 bytes the caller chose at random.
    pub id: NodeId,
    /// The port the node's PUB socket is bound to, announced in every beacon.
    pub pub_port: u16,
    /// Timers and bootstrap pacing.
    pub timings: Timings,
}

impl Config {
    /// A config with the prototype's timings.
    pub fn new(id: NodeId, pub_port: u16) -> Config {
        Config {
            id,
            pub_port,
            timings: Timings::default(),
        }
    }
}

/// Timers and bootstrap pacing. All are configurable; [`Timings::default`] gives the
/// prototype's values, and bootstrap pipelines `bootstrap_window` questions at once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Timings {
    /// Time between two beacons. Prototype: 1 s.
    pub beacon_interval: Duration,
    /// A peer silent for this long is down. Prototype: 4 s.
    pub peer_timeout: Duration,
    /// How long a `get` that misses locally waits for an answer. Prototype: 100 ms.
    pub get_timeout: Duration,
    /// Wait after net up before publishing `list`, so peers can connect.
    /// Prototype: 2 beacon intervals.
    pub bootstrap_delay: Duration,
    /// Wait after the last listed key is fetched before bootstrap is done, so late
    /// list answers still count. Prototype: 2 beacon intervals. The settle timer
    /// also runs from `list` until the first answer arrives, so it must cover the
    /// transfer of the largest list answer (100,000 keys is about 1.3 MB).
    pub bootstrap_settle: Duration,
    /// A bootstrap question unanswered for this long is given up (a peer may hold
    /// the key with an empty value, which is never answered).
    pub bootstrap_question_timeout: Duration,
    /// Bootstrap questions in flight at once. The prototype has one.
    pub bootstrap_window: usize,
}

/// A [`Timings`] value that would make a node misbehave.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TimingsError {
    /// Below [`Timings::MIN_BEACON_INTERVAL`], beacons would flood the LAN.
    #[error("beacon_interval must be at least 1 ms")]
    BeaconIntervalTooShort,
    /// Peers would go down between two of their beacons.
    #[error("peer_timeout must be longer than beacon_interval")]
    PeerTimeoutNotAboveBeaconInterval,
}

impl Timings {
    /// The shortest beacon interval a node uses; shorter settings are raised to it.
    pub const MIN_BEACON_INTERVAL: Duration = Duration::from_millis(1);

    /// Checks the timings make sense together. [`Node::new`](crate::Node::new)
    /// accepts any value (it raises a too-short beacon interval to the minimum, so it
    /// can never spin), but a transport should refuse what this rejects.
    pub fn validate(&self) -> Result<(), TimingsError> {
        if self.beacon_interval < Self::MIN_BEACON_INTERVAL {
            return Err(TimingsError::BeaconIntervalTooShort);
        }
        if self.peer_timeout <= self.beacon_interval {
            return Err(TimingsError::PeerTimeoutNotAboveBeaconInterval);
        }
        Ok(())
    }
}

impl Default for Timings {
    fn default() -> Self {
        Timings {
            beacon_interval: Duration::from_secs(1),
            peer_timeout: Duration::from_secs(4),
            get_timeout: Duration::from_millis(100),
            bootstrap_delay: Duration::from_secs(2),
            bootstrap_settle: Duration::from_secs(2),
            bootstrap_question_timeout: Duration::from_millis(500),
            bootstrap_window: 256,
        }
    }
}

/// `now + delay`, saturating at a far future instead of panicking on overflow, so
/// no timing or timeout a caller passes can make the node panic.
pub(crate) fn later(now: std::time::Instant, delay: Duration) -> std::time::Instant {
    const FAR: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
    now.checked_add(delay.min(FAR))
        .or_else(|| now.checked_add(Duration::from_secs(24 * 3600)))
        .unwrap_or(now)
}
