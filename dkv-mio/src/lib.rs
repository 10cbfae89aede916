//! # dkv-mio: dkv over real sockets
//!
//! This crate runs the [`dkv_proto`] state machine on a real network: UDP broadcast
//! beacons for discovery and ZeroMQ PUB/SUB for data, all in one thread around a
//! `mio::Poll`. Values are versioned (last writer wins), deletes replicate, and
//! peers reconcile their whole stores, so replicas converge after any outage. It
//! also speaks the Python prototype's protocol, so dkv nodes and prototype nodes on
//! one LAN form one cluster.
//!
//! [`Dkv::start`] starts a node and returns a handle to it; the handle is
//! `Send + Sync`. [`Dkv::watch`] follows changes, [`Dkv::scan`] lists a prefix and
//! [`Dkv::wait_for_peers`] waits until writes reach peers. With
//! [`Config::data_dir`] a node keeps its entries on disk (SQLite) and starts with
//! what it held; a write then returns once committed, under the [`SyncPolicy`].
//! The `dkv` binary (the
//! default feature `cli`; leave it out with `default-features = false`) wraps it in
//! a command line: `dkv node` as a service with a control socket, one-shot clients
//! (`dkv get`, `set`, `watch`, …), `dkv demo` and `dkv bench`.
//!
//! # Example
//! Two nodes on this host, talking over the loopback broadcast address on a beacon
//! port of their own, so nothing leaves the machine:
//!
//! ```
//! use dkv_mio::{unused_udp_port, Config, Dkv};
//! use std::time::{Duration, Instant};
//!
//! let port = unused_udp_port()?;
//! let config = Config {
//!     timings: Config::fast_timings(),
//!     ..Config::loopback(port)
//! };
//! let alice = Dkv::start(config.clone())?;
//! let bob = Dkv::start(config)?;
//! alice.set("greeting", "hello")?;
//!
//! // Bob has no value yet: his get asks the cluster and keeps the answer.
//! // Connections take a moment to form, so ask until answered (bounded).
//! let deadline = Instant::now() + Duration::from_secs(10);
//! let mut value = None;
//! while value.is_none() && Instant::now() < deadline {
//!     value = bob.get("greeting", Some(Duration::from_millis(200)))?;
//! }
//! assert_eq!(value.as_deref(), Some(&b"hello"[..]));
//! assert_eq!(bob.keys()?, vec!["greeting".to_string()]);
//! // Every value carries a version: who wrote it, and when (the last writer wins).
//! let (_, version) = bob.get_versioned("greeting", None)?.expect("held");
//! assert_eq!(version.node, alice.id());
//!
//! // A delete replicates like a set.
//! alice.delete("greeting")?;
//! while bob.get_local("greeting")?.is_some() && Instant::now() < deadline {
//!     std::thread::sleep(Duration::from_millis(10));
//! }
//! assert_eq!(bob.get("greeting", None)?, None);
//!
//! bob.shutdown()?;
//! alice.shutdown()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Network use
//! A node binds UDP `0.0.0.0:<beacon port>` and a TCP port for its PUB socket, and
//! sends beacons to [`Config::broadcast_ip`]. To find its local address it connects
//! a UDP socket toward the broadcast address and reads the local side, which sends
//! nothing.

#![deny(unsafe_code)]
#![warn(missing_docs)]

mod config;
mod error;
mod event_loop;
mod fds;
mod handle;
mod keyfile;
mod monitor;
mod net;
mod stats;
mod storage;
mod watch;
mod zmq_io;

#[cfg(feature = "cli")]
pub mod bench;

pub use config::{Config, DEFAULT_BEACON_PORT, LOOPBACK_BROADCAST, MAX_ADDRESS_CHECK_INTERVAL};
pub use dkv_proto::seal::{Cluster, Key, Keyring};
pub use dkv_proto::wire::Summary;
pub use dkv_proto::{
    BootstrapPhase, BootstrapProgress, Entry, NodeId, Timestamp, Timings, TimingsError, Version,
};
pub use error::Error;
pub use handle::{Dkv, KeyValue, MAX_GET_TIMEOUT, MAX_PEER_TIMEOUT};
pub use keyfile::{generate_key_hex, read_key_file, MAX_KEY_FILE_BYTES};
pub use net::{detect_local_ip, unused_udp_port};
pub use stats::{Stats, Status, TransportStats};
pub use storage::{Pending, SyncPolicy, DATA_FILE, FORMAT_VERSION, MAX_GROUP_DELAY};
pub use watch::{Watch, WatchEvent, WATCH_CAPACITY};

/// The top-level README's Rust examples, compiled by `cargo test` as doctests (the
/// library example is `no_run`: it would broadcast on the LAN).
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
mod readme {}
