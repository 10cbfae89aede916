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
    /// list answers still count. Prototype: 2 beacon intervals.
    pub bootstrap_settle: Duration,
    /// A bootstrap question unanswered for this long is given up (a peer may hold
    /// the key with an empty value, which is never answered).
    pub bootstrap_question_timeout: Duration,
    /// Bootstrap questions in flight at once. The prototype has one.
    pub bootstrap_window: usize,
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
