//! # dkv-sim: many dkv nodes, simulated time, a faulty network, reproducible from a seed
//!
//! This crate runs any number of [`dkv_proto::Node`]s (and models of the Python
//! prototype beside them) in one thread under virtual time:
//! - [`net`](crate::NetConfig): the network model: hosts with links and addresses,
//!   UDP beacons, ZeroMQ PUB/SUB pipes over TCP, partitions and link faults;
//! - [`Sim`]: the world: nodes on hosts with their clocks, crashes and restarts,
//!   stalled subscribers, and a hostile host ([`Attack`]);
//! - [`Oracle`]: every safety check, on every node output, and the liveness checks;
//! - [`run`]: a whole randomised run from one `u64` seed: a fault phase with a
//!   workload of writes, deletes and gets, then a heal and a liveness phase whose
//!   checks must pass before deadlines.
//!
//! Nothing reads a global clock or global randomness: the same seed and the same
//! calls give the same [`Sim::trace_hash`].
//!
//! ```
//! use dkv_sim::{Clock, NetConfig, Sim};
//! use dkv_proto::Timings;
//! use std::time::Duration;
//!
//! let mut sim = Sim::new(NetConfig::default(), Timings::default(), 42);
//! let a = { let h = sim.add_host(); sim.add_node(h, Clock::default()) };
//! let b = { let h = sim.add_host(); sim.add_node(h, Clock::default()) };
//! sim.run_for(Duration::from_secs(5));
//! sim.set(a, "greeting", "hello".into());
//! sim.run_for(Duration::from_millis(100));
//! assert_eq!(sim.node(b).unwrap().value("greeting").unwrap(), b"hello");
//! sim.delete(b, "greeting");
//! sim.run_for(Duration::from_millis(100));
//! assert!(sim.node(a).unwrap().value("greeting").is_none());
//! assert!(sim.violations().is_empty());
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod hostile;
mod net;
mod node;
mod oracle;
mod prototype;
mod queue;
mod rng;
pub mod run;
mod sim;
mod trace;

pub use hostile::Attack;
pub use net::{ConnStatus, NetConfig, NetCounters, Shape};
pub use node::{Clock, Core, SIM_UNIX_MS};
pub use oracle::{Oracle, Violation};
pub use prototype::Prototype;
pub use queue::SimTime;
pub use rng::{splitmix64, Rng};
pub use run::{run_seed, Params, RunReport};
pub use sim::{HostileVerdicts, Sim};
pub use trace::TraceHash;
