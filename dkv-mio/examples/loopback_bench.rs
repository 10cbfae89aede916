//! Figures for dkv-mio on this host over loopback broadcast: replication
//! throughput, remote get latency, and how fast a joiner bootstraps a node holding
//! many keys. It prints figures and asserts nothing about speed.
//!
//! Run: `cargo run --release -p dkv-mio --example loopback_bench -- [SECTION] [N...]`
//! - `replication [KEYS]` (default 100000): one node sets KEYS keys, another
//!   receives them;
//! - `get [KEYS]` (default 100000): 1000 gets that miss locally, each answered by a
//!   peer's push;
//! - `bootstrap [N...]` (default 100000 1000000): a joiner starts next to one node
//!   holding N keys with 100-byte values; time to hold them all, median of 3 runs;
//! - `all` (the default): the three, with their defaults.
//!
//! `BENCH_RUNS=R` sets the bootstrap runs per size; `BENCH_DEBUG=1` prints the
//! joiner's status when its bootstrap is done and when it holds every key;
//! `BENCH_SEND_HWM` and `BENCH_RECV_HWM` override the nodes' `send_hwm` and
//! `recv_hwm` (to choose their defaults).

mod bench;

use bench::{median, runs};
use dkv_mio::{unused_udp_port, BootstrapPhase, Config, Dkv, LOOPBACK_BROADCAST};
use std::net::{Ipv4Addr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(300);
/// Polls `done` every `every` until it holds; panics after LIMIT.
fn wait_every(what: &str, every: Duration, mut done: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < LIMIT, "timed out waiting for {what}");
        std::thread::sleep(every);
    }
    start.elapsed()
}

fn wait(what: &str, done: impl FnMut() -> bool) -> Duration {
    wait_every(what, Duration::from_millis(2), done)
}

fn config() -> Config {
    let port = unused_udp_port().expect("a free UDP port");
    let mut config = Config {
        timings: Config::fast_timings(),
        ..Config::loopback(port)
    };
    config.timings.peer_timeout = Duration::from_secs(2);
    if let Some(hwm) = env_number("BENCH_SEND_HWM") {
        config.send_hwm = hwm;
    }
    if let Some(hwm) = env_number("BENCH_RECV_HWM") {
        config.recv_hwm = hwm;
    }
    config
}

/// A number from the environment, if set.
fn env_number<T: std::str::FromStr>(name: &str) -> Option<T> {
    let value = std::env::var(name).ok()?;
    Some(
        value
            .parse()
            .unwrap_or_else(|_| panic!("{name} must be a number")),
    )
}

fn keys_held(node: &Dkv) -> usize {
    node.status().expect("running").keys
}

/// CPU time the node's thread (named `dkv-<id hex>`) has used.
fn thread_cpu(node: &Dkv) -> Option<Duration> {
    bench::thread_cpu(&format!("dkv-{}", node.id().to_hex()))
}

fn secs(d: Option<Duration>) -> String {
    d.map_or("n/a".into(), |d| format!("{:.3} s", d.as_secs_f64()))
}

fn main() {
    let (section, numbers) = bench::section_and_numbers("all");
    let first = |default| numbers.first().copied().unwrap_or(default);
    println!("dkv-mio loopback figures (debug build unless --release)");
    match section.as_str() {
        "replication" => replication(first(100_000)),
        "get" => remote_get(first(100_000)),
        "bootstrap" if numbers.is_empty() => bootstrap(&[100_000, 1_000_000]),
        "bootstrap" => bootstrap(&numbers),
        "all" => {
            replication(100_000);
            remote_get(100_000);
            bootstrap(&[100_000, 1_000_000]);
        }
        other => panic!("unknown section {other:?}: replication, get, bootstrap or all"),
    }
}

/// Two ready nodes; one sets `keys` keys, the other receives them.
fn replication(keys: usize) {
    let config = config();
    let a = Dkv::start(config.clone()).unwrap();
    let b = Dkv::start(config).unwrap();
    wait("a and b to be ready", || {
        a.ready_peers().unwrap().len() == 1 && b.ready_peers().unwrap().len() == 1
    });
    let start = Instant::now();
    for i in 0..keys {
        a.set(format!("key/{i:07}"), format!("value-{i:07}"))
            .unwrap();
    }
    let queued = start.elapsed();
    wait("b to receive every set", || keys_held(&b) >= keys);
    let took = start.elapsed();
    let stats = a.stats().unwrap();
    let t = &stats.transport;
    println!(
        "replication: {keys} sets a -> b in {:.3} s ({:.0} sets/s; handle calls took {:.3} s; \
         {} put messages; a's subscriber queue overflows {})",
        took.as_secs_f64(),
        keys as f64 / took.as_secs_f64(),
        queued.as_secs_f64(),
        stats.proto.out_put,
        t.pub_overflows
    );
}

/// Sends each node the other's prototype beacon (no hello) every 100 ms until
/// `stop`: each takes the other for a prototype peer, so neither reconciles, and a
/// get that misses is answered only by the other's reply to its `ask`.
fn cross_beacons(a: &Dkv, b: &Dkv, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    let pairs = [
        (a.pub_port(), b.beacon_port()),
        (b.pub_port(), a.beacon_port()),
    ];
    std::thread::spawn(move || {
        let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        socket.set_broadcast(true).unwrap();
        while !stop.load(Ordering::Relaxed) {
            for (pub_port, beacon_port) in pairs {
                let beacon = format!("beacon {pub_port}");
                let _ = socket.send_to(beacon.as_bytes(), (LOOPBACK_BROADCAST, beacon_port));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    })
}

/// Remote gets: a server holding `keys` keys and an asker on beacon ports of their
/// own, introduced to each other by hand-made beacons so that they do not
/// reconcile; each get misses locally and is answered by the server's push.
fn remote_get(keys: usize) {
    let server = Dkv::start(config()).unwrap();
    for i in 0..keys {
        server
            .set(format!("key/{i:07}"), format!("value-{i:07}"))
            .unwrap();
    }
    wait("the server to hold every key", || {
        keys_held(&server) >= keys
    });
    // No prototype bootstrap (list, then questions) either: only gets ask.
    let mut asker_config = config();
    asker_config.timings.bootstrap_delay = Duration::from_secs(3600);
    let asker = Dkv::start(asker_config).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let beacons = cross_beacons(&server, &asker, Arc::clone(&stop));
    wait("the asker's first remote get", || {
        asker
            .get("key/0000000", Some(Duration::from_millis(100)))
            .unwrap()
            .is_some()
    });
    let samples = 1000.min(keys - 1);
    let mut latencies = Vec::with_capacity(samples);
    let mut misses = 0;
    for i in 1..=samples {
        let start = Instant::now();
        let value = asker
            .get(format!("key/{i:07}"), Some(Duration::from_secs(1)))
            .unwrap();
        latencies.push(start.elapsed());
        misses += usize::from(value.is_none());
    }
    stop.store(true, Ordering::Relaxed);
    beacons.join().unwrap();
    latencies.sort();
    let pct = |p: usize| latencies[(latencies.len() - 1) * p / 100].as_secs_f64() * 1e6;
    let stats = asker.stats().unwrap().proto;
    println!(
        "remote get: {samples} gets that missed locally, p50 {:.0} us, p99 {:.0} us, max {:.0} us, \
         {misses} unanswered ({} answered by a push; {} pages pulled, {} bootstrap questions)",
        pct(50),
        pct(99),
        pct(100),
        stats.gets_answered,
        stats.sync_pull_pages,
        stats.bootstrap_keys_requested
    );
}

/// Bootstrap of `n` keys with 100-byte values for each `n`: a holder is loaded
/// once; each run starts a fresh joiner next to it and times it from its start and
/// from when it first sees the holder to holding all `n` keys (and to bootstrap
/// done).
fn bootstrap(sizes: &[usize]) {
    for &n in sizes {
        let config = config();
        let holder = Dkv::start(config.clone()).unwrap();
        let load = Instant::now();
        let value = "v".repeat(100);
        for i in 0..n {
            holder.set(format!("key/{i:08}"), value.clone()).unwrap();
        }
        wait_every(
            "the holder to hold every key",
            Duration::from_millis(20),
            || keys_held(&holder) >= n,
        );
        println!(
            "bootstrap {n}: holder loaded in {:.2} s",
            load.elapsed().as_secs_f64()
        );
        let (mut from_start, mut from_seen, mut done_after) = (Vec::new(), Vec::new(), Vec::new());
        let (mut joiner_cpu, mut holder_cpu) = (Vec::new(), Vec::new());
        for run in 1..=runs() {
            let holder_before = thread_cpu(&holder);
            let started = Instant::now();
            let joiner = Dkv::start(config.clone()).unwrap();
            let mut seen = None;
            let mut done = None;
            wait_every(
                "the joiner to hold every key",
                Duration::from_millis(1),
                || {
                    if seen.is_none() && !joiner.peers().unwrap().is_empty() {
                        seen = Some(started.elapsed());
                    }
                    let status = joiner.status().unwrap();
                    if done.is_none() && status.bootstrap.phase == BootstrapPhase::Done {
                        done = Some(started.elapsed());
                        if std::env::var_os("BENCH_DEBUG").is_some() {
                            eprintln!("done at {:?}: {status:?}", started.elapsed());
                        }
                    }
                    status.keys >= n
                },
            );
            let all = started.elapsed();
            let cpu = (thread_cpu(&joiner), thread_cpu(&holder));
            let cpu = (cpu.0, cpu.1.zip(holder_before).map(|(a, b)| a - b));
            let seen = seen.unwrap_or(all);
            wait("the joiner's bootstrap to be done", || {
                joiner.bootstrap().unwrap().phase == BootstrapPhase::Done
            });
            let done = done.unwrap_or_else(|| started.elapsed());
            let stats = joiner.stats().unwrap();
            if std::env::var_os("BENCH_DEBUG").is_some() {
                eprintln!("all keys: {:?}", joiner.status().unwrap());
            }
            println!(
                "bootstrap {n} run {run}: all keys {:.3} s after start, {:.3} s after seeing the \
                 holder (seen at {:.3} s); bootstrap done at {:.3} s; {} pages, {} pull timeouts, \
                 {} messages in; thread CPU until then: joiner {}, holder {}",
                all.as_secs_f64(),
                (all - seen).as_secs_f64(),
                seen.as_secs_f64(),
                done.as_secs_f64(),
                stats.proto.sync_pull_pages,
                stats.proto.sync_pulls_timed_out,
                stats.transport.zmq_in,
                secs(cpu.0),
                secs(cpu.1)
            );
            joiner_cpu.extend(cpu.0.map(|d| d.as_secs_f64()));
            holder_cpu.extend(cpu.1.map(|d| d.as_secs_f64()));
            from_start.push(all.as_secs_f64());
            from_seen.push((all - seen).as_secs_f64());
            done_after.push(done.as_secs_f64());
            joiner.shutdown().unwrap();
        }
        let cpu = |v: &mut Vec<f64>| {
            if v.is_empty() {
                "n/a".to_string()
            } else {
                format!("{:.3} s", median(v))
            }
        };
        println!(
            "bootstrap {n}: median of {}: {:.3} s from the joiner's start, {:.3} s from \
             seeing the holder; bootstrap done {:.3} s after start; thread CPU: joiner {}, \
             holder {}",
            runs(),
            median(&mut from_start),
            median(&mut from_seen),
            median(&mut done_after),
            cpu(&mut joiner_cpu),
            cpu(&mut holder_cpu)
        );
    }
}
