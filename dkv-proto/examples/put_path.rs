//! CPU time of the replication path inside the state machine, with no threads,
//! sockets or scheduler in the way, so it can be compared between builds on a busy
//! machine: a writer node takes KEYS local sets (16-byte keys, 100-byte values), in
//! runs of 64 as the event loop hands them over (`Node::set_all`), and its `put`s
//! are encoded as a transport would; a receiver node then decodes and applies
//! those frames. Prints ns per set for each side, the median of RUNS runs
//! (fresh nodes each). It asserts nothing about speed.
//!
//! Run: `cargo run --release -p dkv-proto --example put_path -- [KEYS] [RUNS]`
//! (defaults 100000 and 5).
use bytes::Bytes;
use dkv_proto::{Config, Message, Node, NodeId, Output, WallClock};
use std::time::{Duration, Instant};

/// Sets handled before the writer's outputs are drained, as the event loop does.
const COMMANDS_PER_TURN: usize = 1024;

/// Sets handed to the writer together (`Node::set_all`), as the event loop hands
/// it a run of queued sets.
const SETS_PER_RUN: usize = 64;

fn node(id: &[u8; 8], now: Instant) -> Node {
    let wall = WallClock {
        at: now,
        unix_ms: 1_700_000_000_000,
    };
    let mut node = Node::new(Config::new(NodeId(*id), 7000, wall));
    node.report_applied(false);
    node
}

/// Writes `keys` keys on a fresh node; returns the time taken and the encoded puts.
fn write(keys: usize, now: Instant) -> (Duration, Vec<Vec<Bytes>>) {
    let mut writer = node(b"writer-0", now);
    let value = Bytes::from(vec![b'v'; 100]);
    let mut frames = Vec::new();
    let mut run = Vec::with_capacity(SETS_PER_RUN);
    let start = Instant::now();
    for i in 0..keys {
        run.push((format!("bench/{i:010}"), value.clone()));
        if run.len() == SETS_PER_RUN || i + 1 == keys {
            writer.set_all(
                now,
                std::mem::replace(&mut run, Vec::with_capacity(SETS_PER_RUN)),
            );
        }
        if i % COMMANDS_PER_TURN == COMMANDS_PER_TURN - 1 || i + 1 == keys {
            while let Some(out) = writer.poll_output() {
                if let Output::Publish(msg @ Message::Dkv(_)) = out {
                    frames.push(msg.encode());
                }
            }
        }
    }
    (start.elapsed(), frames)
}

/// Decodes and applies `frames` on a fresh node; returns the time taken and the
/// keys it then holds.
fn receive(frames: &[Vec<Bytes>], now: Instant) -> (Duration, usize) {
    let mut receiver = node(b"receiv-0", now);
    let start = Instant::now();
    for message in frames {
        receiver.handle_message(now, message);
        while receiver.poll_output().is_some() {}
    }
    (start.elapsed(), receiver.len())
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<usize>().ok());
    let keys = args.next().flatten().unwrap_or(100_000).max(1);
    let runs = args.next().flatten().unwrap_or(5).max(1);
    let now = Instant::now();
    let (mut writes, mut receives) = (Vec::new(), Vec::new());
    let mut messages = 0;
    for _ in 0..runs {
        let (took, frames) = write(keys, now);
        writes.push(took);
        messages = frames.len();
        let (took, held) = receive(&frames, now);
        assert_eq!(held, keys, "the receiver holds every key");
        receives.push(took);
    }
    let per_set = |d: Duration| d.as_nanos() as f64 / keys as f64;
    println!(
        "{keys} sets in {messages} messages, median of {runs}: writer {:.0} ns/set, \
         receiver {:.0} ns/set",
        per_set(median(writes)),
        per_set(median(receives))
    );
}
