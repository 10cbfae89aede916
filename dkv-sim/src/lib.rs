//! # dkv-sim: many dkv nodes, simulated time, a faulty network, reproducible from a seed
//!
//! This crate runs any number of [`dkv_proto::Node`]s in one thread under virtual
//! time. [`Sim`] is the world: hosts with links and addresses, UDP beacons, ZeroMQ
//! PUB/SUB pipes over TCP, partitions, crashes and clock skew, with safety checks on
//! every node output. [`run`] drives a whole randomised run from one `u64` seed: a
//! fault phase with a workload of sets and gets, then a heal and a liveness phase
//! whose checks must pass before a deadline.
//!
//! Nothing reads a global clock or global randomness: the same seed and the same
//! calls give the same [`Sim::trace_hash`].
//!
//! ```
//! use dkv_sim::{NetConfig, Sim};
//! use dkv_proto::Timings;
//! use std::time::Duration;
//!
//! let mut sim = Sim::new(NetConfig::default(), Timings::default(), 42);
//! let a = { let h = sim.add_host(); sim.add_node(h, 0) };
//! let b = { let h = sim.add_host(); sim.add_node(h, 0) };
//! sim.run_for(Duration::from_secs(5));
//! sim.set(a, "greeting", "hello".into());
//! sim.run_for(Duration::from_millis(100));
//! assert_eq!(sim.node(b).unwrap().value("greeting").unwrap(), "hello");
//! assert!(sim.violations().is_empty());
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod rng;
pub mod run;
mod sim;
mod trace;

pub use rng::{splitmix64, Rng};
pub use run::{run_seed, Params, RunReport};
pub use sim::{Clock, ConnStatus, NetConfig, NetCounters, Shape, Sim, SimTime, Violation};
pub use trace::TraceHash;
