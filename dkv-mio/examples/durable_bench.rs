//! Figures for durable nodes (`Config::data_dir`) on this host: `set` throughput in
//! memory, with group commit and with a commit per write, and how soon a node
//! restarted on a data dir holding many keys is serving. Prints figures (medians)
//! and asserts nothing about speed.
//!
//! Run: `cargo run --release -p dkv-mio --example durable_bench -- [SECTION] [N...]`
//! - `sets [SETS] [IN_FLIGHT] [THREADS]` (default 200000, 4096 and 64): SETS
//!   acknowledged sets on one node, in memory and under the sync policies `group`,
//!   `group:2` and `always` (one fsync per write; at most 5000 sets), made first by
//!   one thread keeping IN_FLIGHT in flight (`Dkv::set_pending`), then by THREADS
//!   threads each waiting for its set;
//! - `restart [KEYS]` (default 1000000): a data dir is filled with KEYS keys of
//!   100-byte values; a node restarted on it is timed from `Dkv::start` to holding
//!   every key and answering a get;
//! - `all` (the default): both.
//!
//! `BENCH_RUNS=R` (default 3) sets the runs per figure. Data dirs go under
//! `target/` (the build's disk).

mod bench;

use bench::{load, median, runs};
use dkv_mio::{unused_udp_port, Config, Dkv, SyncPolicy};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// A fresh empty directory under `target/bench-data/`.
fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../target/bench-data")
        .join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn config(data_dir: Option<PathBuf>, sync: SyncPolicy) -> Config {
    let port = unused_udp_port().expect("a free UDP port");
    Config {
        timings: Config::fast_timings(),
        data_dir,
        sync,
        ..Config::loopback(port)
    }
}

/// Seconds of CPU the thread named `name` has used; 0 where unavailable.
fn thread_cpu(name: &str) -> f64 {
    bench::thread_cpu(name).map_or(0.0, |d| d.as_secs_f64())
}

/// How the clients of a run write.
#[derive(Clone, Copy)]
enum Clients {
    /// This many threads, each waiting for its set to be acknowledged.
    Threads(usize),
    /// One thread keeping this many sets in flight (`Dkv::set_pending`).
    Pipelined(usize),
}

impl std::fmt::Display for Clients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Clients::Threads(n) => write!(f, "{n} writer threads"),
            Clients::Pipelined(n) => write!(f, "1 thread, {n} in flight"),
        }
    }
}

/// Sets/s of `clients` making `sets` acknowledged sets on one node.
fn set_rate(node: &Dkv, sets: usize, clients: Clients, value: &str) -> f64 {
    let start = Instant::now();
    match clients {
        Clients::Threads(writers) => {
            let next = AtomicUsize::new(0);
            std::thread::scope(|s| {
                for _ in 0..writers {
                    s.spawn(|| loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= sets {
                            return;
                        }
                        node.set(format!("key/{i:08}"), value.to_owned()).unwrap();
                    });
                }
            });
        }
        Clients::Pipelined(window) => {
            let mut pending = std::collections::VecDeque::with_capacity(window);
            for i in 0..sets {
                if pending.len() >= window {
                    let oldest: dkv_mio::Pending = pending.pop_front().unwrap();
                    oldest.wait().unwrap();
                }
                let write = node.set_pending(format!("key/{i:08}"), value.to_owned());
                pending.push_back(write.unwrap());
            }
            for write in pending {
                write.wait().unwrap();
            }
        }
    }
    sets as f64 / start.elapsed().as_secs_f64()
}

fn sets(total: usize, clients: &[Clients]) {
    let value = "v".repeat(100);
    let policies: [(&str, Option<SyncPolicy>); 4] = [
        ("in memory", None),
        ("group", Some(SyncPolicy::default())),
        ("group:2", Some(SyncPolicy::Group(Duration::from_millis(2)))),
        ("always", Some(SyncPolicy::Always)),
    ];
    for &client in clients {
        let mut memory = 0.0;
        for (name, policy) in policies {
            let (mut rates, mut per_commit) = (Vec::new(), Vec::new());
            let (mut loop_cpu, mut disk_cpu) = (Vec::new(), Vec::new());
            // Under `always` each set is an fsync: fewer, so a run takes seconds.
            let sets = if policy == Some(SyncPolicy::Always) {
                total.min(5_000)
            } else {
                total
            };
            for _ in 0..runs() {
                let dir = policy.map(|_| scratch("sets"));
                let node = Dkv::start(config(dir.clone(), policy.unwrap_or_default())).unwrap();
                let hex = node.id().to_hex();
                let (loop_name, disk_name) = (format!("dkv-{hex}"), format!("dkvd-{hex}"));
                let before = (thread_cpu(&loop_name), thread_cpu(&disk_name));
                rates.push(set_rate(&node, sets, client, &value));
                loop_cpu.push(1e6 * (thread_cpu(&loop_name) - before.0) / sets as f64);
                disk_cpu.push(1e6 * (thread_cpu(&disk_name) - before.1) / sets as f64);
                let stats = node.stats().unwrap().transport;
                if stats.disk_commits > 0 {
                    per_commit.push(stats.disk_puts as f64 / stats.disk_commits as f64);
                }
                node.shutdown().unwrap();
                if let Some(dir) = dir {
                    let _ = std::fs::remove_dir_all(dir);
                }
            }
            let rate = median(&mut rates);
            if policy.is_none() {
                memory = rate;
            }
            let batching = if per_commit.is_empty() {
                String::new()
            } else {
                format!(", {:.0} writes per fsync", median(&mut per_commit))
            };
            println!(
                "sets, {client}, {name}: {rate:.0} sets/s ({:.0}% of in memory{batching}; CPU \
                 per set: loop {:.1} us, disk writer {:.1} us) [load {}]",
                100.0 * rate / memory,
                median(&mut loop_cpu),
                median(&mut disk_cpu),
                load()
            );
        }
    }
}

fn restart(keys: usize) {
    let dir = scratch("restart");
    let group = SyncPolicy::default();
    let fill = Instant::now();
    {
        let node = Dkv::start(config(Some(dir.clone()), group)).unwrap();
        set_rate(&node, keys, Clients::Pipelined(4096), &"v".repeat(100));
        node.shutdown().unwrap();
    }
    let size: u64 = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    println!(
        "restart: {keys} keys written in {:.1} s, {:.0} MB on disk",
        fill.elapsed().as_secs_f64(),
        size as f64 / 1e6
    );
    let probe = format!("key/{:08}", keys / 2);
    let (mut started, mut serving) = (Vec::new(), Vec::new());
    for run in 1..=runs() {
        let t0 = Instant::now();
        let node = Dkv::start(config(Some(dir.clone()), group)).unwrap();
        let start = t0.elapsed();
        let value = node.get(probe.clone(), Some(Duration::ZERO)).unwrap();
        let held = node.status().unwrap().keys;
        let serve = t0.elapsed();
        assert!(value.is_some(), "{probe} not held after the restart");
        assert_eq!(held, keys, "keys held after the restart");
        println!(
            "restart run {run}: Dkv::start returned after {:.3} s; holding {held} keys and \
             answering gets after {:.3} s [load {}]",
            start.as_secs_f64(),
            serve.as_secs_f64(),
            load()
        );
        started.push(start.as_secs_f64());
        serving.push(serve.as_secs_f64());
        node.shutdown().unwrap();
    }
    println!(
        "restart with {keys} keys: serving after {:.3} s (median of {}; start returned after \
         {:.3} s)",
        median(&mut serving),
        runs(),
        median(&mut started)
    );
    let _ = std::fs::remove_dir_all(dir);
}

fn main() {
    let (section, numbers) = bench::section_and_numbers("all");
    let nth = |i: usize, default| numbers.get(i).copied().unwrap_or(default);
    println!(
        "dkv-mio durable figures (debug build unless --release); load average {}",
        load()
    );
    match section.as_str() {
        "sets" => sets(
            nth(0, 200_000),
            &[
                Clients::Pipelined(nth(1, 4096)),
                Clients::Threads(nth(2, 64)),
            ],
        ),
        "restart" => restart(nth(0, 1_000_000)),
        "all" => {
            sets(200_000, &[Clients::Pipelined(4096), Clients::Threads(64)]);
            restart(1_000_000);
        }
        other => panic!("unknown section {other:?}: sets, restart or all"),
    }
}
