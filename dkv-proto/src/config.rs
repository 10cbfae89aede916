//! What a node is told at creation: identity, wall clock, randomness and timings.
//! Timing defaults are the prototype's values where the prototype has them.

use crate::clock::WallClock;
use crate::limits::{Limits, LimitsError};
use crate::node_id::NodeId;
use crate::seal::{Cluster, Keyring, ReplayConfig};
use std::time::{Duration, Instant};

/// Everything a [`Node`](crate::Node) is told at creation.
#[derive(Clone, Debug)]
pub struct Config {
    /// This node's id: 8 bytes the caller chose at random.
    pub id: NodeId,
    /// The port the node's PUB socket is bound to, announced in every beacon.
    pub pub_port: u16,
    /// The wall clock at one instant: versions are stamped with wall time read
    /// through it. Refresh it with
    /// [`Node::handle_wall_clock`](crate::Node::handle_wall_clock).
    pub wall: WallClock,
    /// Seeds the node's own random choices (which peer to reconcile with next,
    /// session ids). A transport draws it at random; a simulation from its seed.
    pub seed: u64,
    /// Timers, pacing and clock bounds.
    pub timings: Timings,
    /// Sizes, counts and rates the node accepts; every hit is counted.
    pub limits: Limits,
    /// The cluster the node belongs to. The default, [`Cluster::open`] (the name
    /// ""), is the prototype's open cluster: today's wire byte for byte, prototype
    /// nodes welcome. A named cluster is dkv-only: no prototype beacon or topics, a
    /// hello carrying the cluster's tag, and nodes of other clusters (and the open
    /// one) are never peered with. [`Cluster::new`] validates the name (at most 64
    /// bytes of UTF-8).
    pub cluster: Cluster,
    /// The cluster's pre-shared keys. With keys the node is keyed: dkv-only like a
    /// named cluster, and every dkv/2 frame and hello it sends is sealed with the
    /// first key; it accepts nothing unsealed or sealed with a key it lacks.
    /// `None` (the default): nothing is sealed.
    pub keys: Option<Keyring>,
    /// How long and how many sender runs a keyed node's replay guard remembers.
    pub replay: ReplayConfig,
}

impl Config {
    /// A config with default timings and limits and seed 0, whose wall clock read
    /// `unix_ms` at `at`.
    pub fn new(id: NodeId, pub_port: u16, wall: WallClock) -> Config {
        Config {
            id,
            pub_port,
            wall,
            seed: 0,
            timings: Timings::default(),
            limits: Limits::default(),
            cluster: Cluster::open(),
            keys: None,
            replay: ReplayConfig::default(),
        }
    }

    /// Whether the node is dkv-only: a named cluster or keys. Such a node sends no
    /// prototype beacon or message and ignores (and counts) the prototype's.
    pub fn isolated(&self) -> bool {
        !self.cluster.is_open() || self.keys.is_some()
    }

    /// Checks the timings, the limits and the replay window make sense. A
    /// transport should refuse what this rejects; [`Node::new`](crate::Node::new)
    /// accepts any config (it floors intervals, see [`Timings::validate`]). The
    /// cluster name is checked when the [`Cluster`] is made.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.timings.validate()?;
        self.limits.validate()?;
        if self.keys.is_some() && (self.replay.window_ms == 0 || self.replay.max_streams == 0) {
            return Err(ConfigError::Replay);
        }
        Ok(())
    }
}

/// Why [`Config::validate`] refused a config.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The timings do not make sense together.
    #[error(transparent)]
    Timings(#[from] TimingsError),
    /// A limit is out of range.
    #[error(transparent)]
    Limits(#[from] LimitsError),
    /// A keyed node with a zero replay window or no room for a single stream would
    /// refuse everything.
    #[error("replay window and replay streams must be above zero")]
    Replay,
}

/// Timers, pacing and clock bounds. All are configurable; [`Timings::default`] gives
/// the prototype's values for what the prototype has, and dkv's own for the rest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Timings {
    /// Time between two beacons. Prototype: 1 s.
    pub beacon_interval: Duration,
    /// A peer silent for this long is down. Prototype: 4 s.
    pub peer_timeout: Duration,
    /// How long a `get` that misses locally waits for an answer. Prototype: 100 ms.
    pub get_timeout: Duration,
    /// Wait after net up before bootstrap looks at who is there (and, if prototype
    /// peers are, publishes `list`). Prototype: 2 beacon intervals.
    pub bootstrap_delay: Duration,
    /// Wait after the last listed key is fetched from prototype peers before that
    /// part of bootstrap is done, so late list answers still count. Prototype: 2
    /// beacon intervals. It must cover the transfer of the largest list answer.
    pub bootstrap_settle: Duration,
    /// A question to prototype peers unanswered for this long is given up.
    pub bootstrap_question_timeout: Duration,
    /// Questions to prototype peers in flight at once. The prototype has one.
    pub bootstrap_window: usize,
    /// Every this often a node reconciles its store with one peer, chosen at
    /// random. dkv: 2 s.
    pub sync_interval: Duration,
    /// A reconciliation session or transfer request with no reply for this long is
    /// abandoned, and retried later. dkv: 1 s.
    pub sync_timeout: Duration,
    /// A remote version whose wall-clock part is more than this ahead of local wall
    /// time is refused (and counted). dkv: 500 ms.
    pub max_clock_offset: Duration,
    /// Tombstones older than this are forgotten. A node that missed a delete and
    /// comes back later than this brings the key back. dkv: 24 h.
    pub tombstone_horizon: Duration,
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
    /// Below [`Timings::MIN_BEACON_INTERVAL`], reconciliation would flood peers.
    #[error("sync_interval and sync_timeout must be at least 1 ms")]
    SyncTooShort,
}

impl Timings {
    /// The shortest beacon or sync interval a node uses; shorter ones are raised.
    pub const MIN_BEACON_INTERVAL: Duration = Duration::from_millis(1);

    /// Checks the timings make sense together. [`Node::new`](crate::Node::new)
    /// accepts any value (it raises too-short intervals to the minimum, so it can
    /// never spin), but a transport should refuse what this rejects.
    pub fn validate(&self) -> Result<(), TimingsError> {
        if self.beacon_interval < Self::MIN_BEACON_INTERVAL {
            return Err(TimingsError::BeaconIntervalTooShort);
        }
        if self.peer_timeout <= self.beacon_interval {
            return Err(TimingsError::PeerTimeoutNotAboveBeaconInterval);
        }
        if self.sync_interval < Self::MIN_BEACON_INTERVAL
            || self.sync_timeout < Self::MIN_BEACON_INTERVAL
        {
            return Err(TimingsError::SyncTooShort);
        }
        Ok(())
    }

    /// The timings with every interval raised to the minimum, as a node uses them.
    pub(crate) fn floored(mut self) -> Timings {
        for d in [
            &mut self.beacon_interval,
            &mut self.sync_interval,
            &mut self.sync_timeout,
        ] {
            *d = (*d).max(Self::MIN_BEACON_INTERVAL);
        }
        self
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
            sync_interval: Duration::from_secs(2),
            sync_timeout: Duration::from_secs(1),
            max_clock_offset: Duration::from_millis(500),
            tombstone_horizon: Duration::from_secs(24 * 3600),
        }
    }
}

/// `now + delay`, saturating at a far future instead of panicking on overflow, so
/// no timing or timeout a caller passes can make the node panic.
pub(crate) fn later(now: Instant, delay: Duration) -> Instant {
    const FAR: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
    now.checked_add(delay.min(FAR))
        .or_else(|| now.checked_add(Duration::from_secs(24 * 3600)))
        .unwrap_or(now)
}
