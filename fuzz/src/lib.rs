//! # dkv-fuzz: the fuzz targets of dkv, as plain functions
//!
//! Each target takes arbitrary bytes and panics only if dkv is wrong: a panic in
//! `dkv-proto` itself, or a broken invariant the target checks. The logic lives here,
//! not in the libFuzzer binaries, so that `cargo test` on stable replays the
//! checked-in corpus (`tests/corpus_replay.rs`) without any fuzzing toolchain; the
//! binaries in `fuzz_targets/` (feature `libfuzzer`) are one call each.
//!
//! - [`decode`]: multipart frames (prototype and dkv/2) through the strict decoder,
//!   back, and into a fresh node.
//! - [`beacon`]: one UDP datagram (beacon, hello or junk) through the parsers and a
//!   node.
//! - [`node`]: a whole sequence of inputs through one node, checking its contract
//!   against a model of its store and clock.
//! - [`seal`]: key files, sealed frames and hellos, and a keyed node refusing all
//!   but genuine sealed input.
//!
//! [`seeds`] builds the seed corpus from `dkv-proto`'s own encoders.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod input;
pub mod seeds;
mod targets;

pub use targets::beacon::beacon;
pub use targets::decode::{decode, split_frames};
pub use targets::node::{node, node_run, Op, Stamp};
pub use targets::seal::seal;

/// A target: checks one input, panicking only if dkv is wrong.
pub type Target = fn(&[u8]);

/// The targets by name, as `cargo fuzz` and the corpus directories call them.
pub const TARGETS: [(&str, Target); 4] = [
    ("decode", decode),
    ("beacon", beacon),
    ("node", node),
    ("seal", seal),
];
