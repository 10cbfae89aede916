//! # dkv-proto: the dkv protocol as a pure state machine
//!
//! dkv is a peer-to-peer replicated key-value store for a local network. This crate
//! is its protocol core, sans-IO: a [`Node`] takes timestamped inputs (beacons,
//! net up and down, wire messages, gets, sets and deletes, wall-clock readings) and
//! emits [`Output`]s (messages to publish, peers to connect or disconnect, datagrams
//! to broadcast, completed gets, applied changes), plus the next deadline.
//!
//! Every entry carries a [`Version`] from a hybrid logical clock, so concurrent
//! writes resolve to the same winner everywhere (last writer wins), and deletes
//! leave tombstones that win like writes. Peers reconcile their whole stores by
//! comparing range fingerprints ([`reconcile`](crate#modules)), at a cost that grows
//! with their differences. The core speaks the Python prototype's wire protocol
//! byte for byte beside its own, so prototype nodes keep working in the cluster.
//!
//! It opens no sockets, starts no threads, reads no clock and draws no randomness,
//! so any runtime can drive it: `dkv-mio` with real sockets, `dkv-sim` under
//! simulated time, the fuzzer with arbitrary input.
//!
//! ```
//! use dkv_proto::{Config, Node, NodeId, Output, WallClock};
//! use std::time::Instant;
//!
//! let now = Instant::now();
//! let wall = WallClock { at: now, unix_ms: 1_700_000_000_000 };
//! let mut node = Node::new(Config::new(NodeId(*b"node-one"), 41017, wall));
//! node.handle_net_up(now, "10.0.0.5".parse().unwrap());
//! node.set(now, "greeting".into(), "hello".into());
//! let id = node.get(now, "greeting".into(), None);
//! let mut done = None;
//! while let Some(output) = node.poll_output() {
//!     match output {
//!         Output::GetDone(get) => done = Some(get),
//!         _ => {}
//!     }
//! }
//! let done = done.unwrap();
//! assert_eq!((done.id, done.value.as_deref()), (id, Some(&b"hello"[..])));
//! assert_eq!(done.version.unwrap().node, NodeId(*b"node-one"));
//! assert!(node.poll_timeout().is_some());
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod beacon;
mod bootstrap;
mod clock;
mod config;
mod gets;
mod limits;
mod node;
mod node_id;
mod peers;
mod range;
pub mod reconcile;
pub mod seal;
mod stats;
mod store;
mod timed;
pub mod wire;

/// A hash map with a fixed, fast hash (FxHash). The core draws no randomness, and
/// std's default keys each map from the OS; no map here is iterated where order
/// could matter, and each is bounded by a limit, so colliding keys stay cheap.
pub(crate) type FixedMap<K, V> = std::collections::HashMap<K, V, rustc_hash::FxBuildHasher>;

/// Lowers `kept` to `new` if `new` is lower or nothing is kept yet.
pub(crate) fn keep_min<T: Ord>(kept: &mut Option<T>, new: T) {
    if kept.as_ref().is_none_or(|k| new < *k) {
        *kept = Some(new);
    }
}

pub use beacon::{
    encode_beacon, encode_hello, encode_plain_hello, is_hello_v2, parse_beacon, parse_datagram,
    parse_plain_hello, BeaconError, Datagram, PlainHello, BEACON_PREFIX, HELLO_PREFIX,
    MAX_BEACON_LEN, PLAIN_HELLO_LEN,
};
pub use bootstrap::{BootstrapPhase, BootstrapProgress};
pub use clock::{Timestamp, Version, WallClock};
pub use config::{Config, ConfigError, Timings, TimingsError};
pub use gets::GetId;
pub use limits::{Limits, LimitsError, Rate, WriteError};
pub use node::{Applied, GetDone, Node, Output, Sealed};
pub use range::key_hash;
pub use stats::Stats;
pub use store::{Entry, Record};
pub use wire::{subscriptions, DecodeError, Kind, Message, NodeId};
