//! Resident bytes per key of a whole in-memory dkv-mio node (`Dkv`: its loop
//! thread, ZeroMQ sockets and queues, and its core) holding KEYS keys (16-byte keys,
//! 100-byte values) received from a peer over loopback. The writing peer runs in a
//! child process, so only the receiving node's memory counts. It prints figures and
//! asserts nothing about them.
//!
//! `cargo run -p dkv-mio --release --example memory_node -- [replication|bootstrap] [KEYS]`
//! (default: both, 1,000,000 keys):
//! - `replication`: the node is synced with the writer before the writer's sets
//!   (pipelined, 1,024 in flight) arrive as puts; the time counts from the
//!   writer's start;
//! - `bootstrap`: the writer holds every key first; the node joins and pulls them;
//!   the time counts from the joiner's start.
//!
//! Every wait is bounded (300 s); beacons go to the loopback broadcast address only.

use dkv_mio::{unused_udp_port, Config, Dkv};
use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(300);
const RAW: f64 = 16.0 + 100.0;
const WINDOW: usize = 1024;

/// Polls `done` every 10 ms until it holds; panics after LIMIT.
fn wait(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < LIMIT, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn config(port: u16) -> Config {
    Config {
        timings: Config::fast_timings(),
        ..Config::loopback(port)
    }
}

/// This process's resident set, in bytes.
fn rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = (statm.split_whitespace().nth(1))
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn keys_held(node: &Dkv) -> usize {
    node.status().expect("running").keys
}

/// The child: a node on `port` that writes `keys` keys, once it has a ready peer
/// unless `first`, then says `written` and runs until its stdin closes.
fn writer(port: u16, keys: usize, first: bool) {
    let node = Dkv::start(config(port)).unwrap();
    if !first {
        wait("the writer's peer", || {
            node.ready_peers().unwrap().len() == 1
        });
    }
    let value = bytes::Bytes::from(vec![b'v'; 100]);
    let mut in_flight = VecDeque::with_capacity(WINDOW);
    for i in 0..keys {
        in_flight.push_back(
            node.set_pending(format!("key-{i:012}"), value.clone())
                .unwrap(),
        );
        if in_flight.len() >= WINDOW {
            in_flight.pop_front().unwrap().wait().unwrap();
        }
    }
    in_flight.into_iter().for_each(|p| p.wait().unwrap());
    println!("written");
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
    node.shutdown().unwrap();
}

fn spawn_writer(port: u16, keys: usize, first: bool) -> Child {
    let role = if first { "writer-first" } else { "writer" };
    Command::new(std::env::current_exe().unwrap())
        .args([role, &port.to_string(), &keys.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits for the child's `written` line (bounded by its own waits).
fn written(child: &mut Child) {
    let mut line = String::new();
    let stdout = child.stdout.as_mut().unwrap();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "written", "the writer failed");
}

fn measure(mode: &str, keys: usize) {
    let port = unused_udp_port().expect("a free UDP port");
    let before = rss();
    // From the first set, or from the joiner's start.
    let (node, mut child, start) = match mode {
        "replication" => {
            let node = Dkv::start(config(port)).unwrap();
            let child = spawn_writer(port, keys, false);
            (node, child, Instant::now())
        }
        "bootstrap" => {
            let mut child = spawn_writer(port, keys, true);
            written(&mut child);
            let start = Instant::now();
            (Dkv::start(config(port)).unwrap(), child, start)
        }
        other => panic!("unknown section {other:?}: replication or bootstrap"),
    };
    wait("the node to hold every key", || keys_held(&node) >= keys);
    let took = start.elapsed();
    let held = rss();
    std::thread::sleep(Duration::from_secs(1));
    let settled = rss();
    drop(child.stdin.take());
    let _ = child.wait();
    let per_key = |rss: u64| rss.saturating_sub(before) as f64 / keys as f64;
    println!(
        "{mode}: {keys} keys in {:.2} s; whole node {:.0} B resident per key when it held \
         them all, {:.0} B 1 s later ({:.2}x the {RAW} raw bytes); load {}",
        took.as_secs_f64(),
        per_key(held),
        per_key(settled),
        per_key(settled) / RAW,
        dkv_mio::bench::load(),
    );
    node.shutdown().unwrap();
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let number = |i: usize, default: usize| {
        args.get(i)
            .map_or(default, |a| a.parse().expect("KEYS must be a number"))
    };
    match args.first().map(String::as_str) {
        Some(role @ ("writer" | "writer-first")) => {
            let port = u16::try_from(number(1, 0)).expect("a port");
            writer(port, number(2, 0), role == "writer-first")
        }
        Some(mode @ ("replication" | "bootstrap")) => measure(mode, number(1, 1_000_000)),
        Some(other) => panic!("unknown section {other:?}: replication or bootstrap"),
        None => {
            // Each in its own process, so one's heap does not count in the other's.
            for mode in ["replication", "bootstrap"] {
                let status = Command::new(std::env::current_exe().unwrap())
                    .arg(mode)
                    .status()
                    .unwrap();
                assert!(status.success(), "the {mode} run failed");
            }
        }
    }
}
