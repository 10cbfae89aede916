//! # dkv-proto: the dkv protocol as a pure state machine
//!
//! dkv is a peer-to-peer replicated key-value store for a local network. This crate
//! is its protocol core, sans-IO: a [`Node`] takes timestamped inputs (beacons,
//! net up and down, wire messages, gets and sets) and emits [`Output`]s (messages to
//! publish, peers to connect or disconnect, beacons to send, completed gets), plus
//! the next deadline. It speaks the Python prototype's wire protocol byte for byte.
//!
//! It opens no sockets, starts no threads, reads no clock and draws no randomness,
//! so any runtime can drive it: `dkv-mio` with real sockets, `dkv-sim` under
//! simulated time, the fuzzer with arbitrary input.
//!
//! ```
//! use dkv_proto::{Config, Node, NodeId, Output};
//! use std::time::Instant;
//!
//! let now = Instant::now();
//! let mut node = Node::new(Config::new(NodeId(*b"node-one"), 41017));
//! node.handle_net_up(now, "10.0.0.5".parse().unwrap());
//! node.set(now, "greeting".into(), "hello".into());
//! let id = node.get(now, "greeting".into(), None);
//! let mut done = None;
//! while let Some(output) = node.poll_output() {
//!     match output {
//!         Output::Beacon(payload) => assert_eq!(&payload[..], b"beacon 41017"),
//!         Output::GetDone(get) => done = Some(get),
//!         _ => {}
//!     }
//! }
//! let done = done.unwrap();
//! assert_eq!((done.id, done.value.as_deref()), (id, Some(&b"hello"[..])));
//! assert!(node.poll_timeout().is_some());
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod beacon;
mod bootstrap;
mod config;
mod message;
mod node;
mod stats;

pub use beacon::{encode_beacon, parse_beacon, BeaconError, BEACON_PREFIX, MAX_BEACON_LEN};
pub use bootstrap::{BootstrapPhase, BootstrapProgress};
pub use config::{Config, Timings, TimingsError};
pub use message::{subscriptions, DecodeError, Kind, Message, NodeId};
pub use node::{GetDone, GetId, Node, Output};
pub use stats::Stats;
