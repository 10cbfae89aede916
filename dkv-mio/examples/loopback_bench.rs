//! Figures for dkv-mio on this host over loopback broadcast: replication
//! throughput, remote get latency, bootstrap, a stalled subscriber's cost and
//! encryption's cost. It prints figures and asserts nothing about speed. The
//! first three are measured by `dkv_mio::bench`, as `dkv bench` does (which
//! also sets them beside raw libzmq); this example runs them alone, with more
//! runs and detail.
//!
//! Run: `cargo run --release -p dkv-mio --example loopback_bench -- [SECTION] [N...]`
//! - `replication [KEYS]` (default 100000): one node sets KEYS keys of 100 bytes
//!   (`BENCH_WINDOW` in flight, default 1024), another receives them;
//! - `get [KEYS]` (default 100000): 1000 gets that miss locally, each answered by a
//!   peer;
//! - `bootstrap [N...]` (default 100000 1000000): a joiner starts next to one node
//!   holding N keys with 100-byte values; time to hold them all, median of 3 runs;
//! - `stalled [KEYS]` (default 100000): replication a -> b with and without a third
//!   subscriber that reads nothing (a child process, `frozen-reader PORT`), for
//!   100-byte values and for 16 KiB values (KEYS / 20), median of `BENCH_RUNS`
//!   runs: the rate ratio (target >= 90%) and the RSS growth against the stated
//!   bound;
//! - `encryption [KEYS]` (default 100000): what sealing costs. The same workloads
//!   with the nodes open (the default cluster), named without a key, and keyed
//!   (named + one key: every message and hello sealed), interleaved run by run,
//!   median of `BENCH_RUNS` runs: KEYS sets of 100-byte values a -> b, each set
//!   waiting for its acknowledgement (`Dkv::set`) and pipelined (`set_pending`,
//!   1,024 in flight), and a joiner's bootstrap of KEYS keys; rates, node thread
//!   CPU, and the keyed/named and keyed/open ratios;
//! - `all` (the default): replication, get and bootstrap, with their defaults.
//!
//! `BENCH_RUNS=R` sets the bootstrap runs per size;
//! `BENCH_SEND_HWM` and `BENCH_RECV_HWM` override the nodes' `send_hwm` and
//! `recv_hwm` (to choose their defaults); `BENCH_KEYED=1` runs every other section
//! keyed (cluster `bench`, one key).

mod bench;

use bench::{median, runs};
use bytes::Bytes;
use dkv_mio::bench::{self as shared, Workload};
use dkv_mio::{unused_udp_port, Cluster, Config, Dkv, Key, Keyring};
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
    if std::env::var_os("BENCH_KEYED").is_some_and(|v| v != "0") {
        Mode::Keyed.apply(&mut config);
    }
    config
}

/// How the nodes of an `encryption` run are configured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// The default: the open cluster, no key (prototype copies included).
    Open,
    /// Cluster `bench`, no key: dkv/2 only, nothing sealed.
    Named,
    /// Cluster `bench` and one key: every dkv/2 message and hello sealed.
    Keyed,
}

impl Mode {
    const ALL: [Mode; 3] = [Mode::Open, Mode::Named, Mode::Keyed];

    fn name(self) -> &'static str {
        match self {
            Mode::Open => "open",
            Mode::Named => "named",
            Mode::Keyed => "keyed",
        }
    }

    fn apply(self, config: &mut Config) {
        if self != Mode::Open {
            config.cluster = Cluster::new("bench").expect("a valid cluster name");
        }
        if self == Mode::Keyed {
            config.keys = Some(Keyring::new(vec![Key::from_bytes([7; 32])]).expect("one key"));
        }
    }

    /// A fresh config (own beacon port) for this mode.
    fn config(self) -> Config {
        let mut config = config();
        config.cluster = Cluster::open();
        config.keys = None;
        self.apply(&mut config);
        config
    }
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
    if section != "frozen-reader" {
        println!("dkv-mio loopback figures (debug build unless --release)");
    }
    match section.as_str() {
        "replication" => replication(first(100_000)),
        "get" => remote_get(first(100_000)),
        "bootstrap" if numbers.is_empty() => bootstrap(&[100_000, 1_000_000]),
        "bootstrap" => bootstrap(&numbers),
        "stalled" => stalled(first(100_000)),
        "encryption" => encryption(first(100_000)),
        "frozen-reader" => frozen_reader(first(0)),
        "all" => {
            replication(100_000);
            remote_get(100_000);
            bootstrap(&[100_000, 1_000_000]);
        }
        other => panic!(
            "unknown section {other:?}: replication, get, bootstrap, stalled, encryption or all"
        ),
    }
}

/// The workload of the shared sections: `keys` keys of 100-byte values,
/// `BENCH_WINDOW` writes in flight (default 1024), 300 s per wait.
fn workload(keys: usize) -> Workload {
    Workload {
        keys,
        value_bytes: 100,
        window: env_number("BENCH_WINDOW").unwrap_or(1024),
        timeout: LIMIT,
    }
}

/// Two ready nodes; one sets `keys` keys, the other receives them.
fn replication(keys: usize) {
    let r = shared::dkv_replication(&config(), &workload(keys), 1).unwrap();
    println!(
        "replication: {keys} sets a -> b in {:.3} s ({:.0} sets/s; writes acknowledged in \
         {:.3} s; {} put messages; a's subscriber queue overflows {})",
        r.took.as_secs_f64(),
        r.rate,
        r.written.as_secs_f64(),
        r.put_messages,
        r.pub_overflows
    );
}

/// Remote gets: each misses locally and is answered by a peer (see
/// `dkv_mio::bench::dkv_remote_get`).
fn remote_get(keys: usize) {
    let l = shared::dkv_remote_get(&config(), &workload(keys)).unwrap();
    let us = |p| l.percentile(p).as_secs_f64() * 1e6;
    println!(
        "remote get: {} gets that missed locally, p50 {:.0} us, p99 {:.0} us, max {:.0} us, \
         {} unanswered",
        l.sorted.len(),
        us(50),
        us(99),
        us(100),
        l.unanswered
    );
}

/// Bootstrap of `n` keys with 100-byte values for each `n`: a holder is loaded
/// once; each run starts a fresh joiner next to it and times it from its start to
/// holding all `n` keys.
fn bootstrap(sizes: &[usize]) {
    for &n in sizes {
        let config = config();
        let load = Instant::now();
        let holder = shared::dkv_holder(&config, &workload(n)).unwrap();
        println!(
            "bootstrap {n}: holder loaded in {:.2} s",
            load.elapsed().as_secs_f64()
        );
        let mut took = Vec::new();
        for run in 1..=runs() {
            let holder_before = thread_cpu(&holder);
            let all = shared::dkv_bootstrap(&holder, &config, LIMIT).unwrap();
            let holder_cpu = thread_cpu(&holder).zip(holder_before).map(|(a, b)| a - b);
            println!(
                "bootstrap {n} run {run}: all keys {:.3} s after the joiner's start; holder \
                 thread CPU {}",
                all.as_secs_f64(),
                secs(holder_cpu)
            );
            took.push(all.as_secs_f64());
        }
        println!(
            "bootstrap {n}: median of {}: {:.3} s from the joiner's start",
            runs(),
            median(&mut took)
        );
        holder.shutdown().unwrap();
    }
}

/// The PUB port a `frozen-reader` child reads nothing from.
const FROZEN_TOPIC: &[u8] = b"dkv2.to frozen!!";

/// As a child process (`loopback_bench frozen-reader PORT`): a SUB socket on
/// `127.0.0.1:PORT` that reads nothing, ever (1-message queue, 4 KiB socket
/// buffer, ZMTP pings every 50 ms), for at most 300 s.
fn frozen_reader(port: usize) {
    let context = zmq::Context::new();
    let reader = context.socket(zmq::SUB).unwrap();
    reader.set_rcvhwm(1).unwrap();
    reader.set_rcvbuf(4096).unwrap();
    reader.set_linger(0).unwrap();
    reader.set_heartbeat_ivl(50).unwrap();
    reader.set_heartbeat_timeout(300_000).unwrap();
    reader.set_subscribe(b"dkv2.all").unwrap();
    reader.set_subscribe(FROZEN_TOPIC).unwrap();
    reader.connect(&format!("tcp://127.0.0.1:{port}")).unwrap();
    std::thread::sleep(Duration::from_secs(300));
}

/// This process's resident set now and at its peak, in bytes (`/proc/self/status`).
fn rss() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// One run: a sets `keys` keys of `value_len` bytes, b receives them; with
/// `stalled`, a third subscriber on a's PUB socket reads nothing throughout (its
/// stall timeout is set past the run, the worst case before the cut). Returns
/// sets/s to b, a's overflows and the RSS growth during the run.
fn replication_run(keys: usize, value_len: usize, stalled: bool) -> (f64, u64, u64) {
    let mut config = config();
    config.stall_timeout = Some(Duration::from_secs(600));
    let a = Dkv::start(config.clone()).unwrap();
    let b = Dkv::start(config).unwrap();
    wait("a and b to be ready", || {
        a.ready_peers().unwrap().len() == 1 && b.ready_peers().unwrap().len() == 1
    });
    let (rss_before, _) = rss();
    let mut child = None;
    if stalled {
        let subscribes = a.stats().unwrap().transport.subscribes;
        child = Some(
            std::process::Command::new(std::env::current_exe().unwrap())
                .args(["frozen-reader", &a.pub_port().to_string()])
                .spawn()
                .unwrap(),
        );
        wait("the frozen reader to subscribe", || {
            a.stats().unwrap().transport.subscribes > subscribes
        });
        // Fill its queue and TCP window, so it is stalled before the clock starts:
        // one key overwritten, so the stores stay small and the RSS growth is the
        // stalled subscriber's queue.
        let fill = vec![b'f'; 64 * 1024];
        wait("the frozen reader's queue to be full", || {
            a.set("fill", fill.clone()).unwrap();
            a.stats().unwrap().transport.pub_overflows > 0
        });
        for _ in 0..config_send_hwm() {
            a.set("fill", fill.clone()).unwrap();
        }
    }
    let base = keys_held(&b);
    let value = vec![b'v'; value_len];
    let start = Instant::now();
    for i in 0..keys {
        a.set(format!("key/{i:07}"), value.clone()).unwrap();
    }
    wait("b to receive every set", || keys_held(&b) >= base + keys);
    let took = start.elapsed();
    let (rss_after, _) = rss();
    let overflows = a.stats().unwrap().transport.pub_overflows;
    if let Some(mut child) = child {
        let _ = child.kill();
        let _ = child.wait();
    }
    (
        keys as f64 / took.as_secs_f64(),
        overflows,
        rss_after.saturating_sub(rss_before),
    )
}

/// The send HWM the bench's nodes run with.
fn config_send_hwm() -> i32 {
    config().send_hwm
}

/// Replication a -> b with and without a stalled third subscriber, and the memory
/// the stalled one costs against the stated bound.
fn stalled(keys: usize) {
    let runs = runs();
    for value_len in [100usize, 16 * 1024] {
        let keys = if value_len > 1024 { keys / 20 } else { keys };
        let (mut normal, mut stalled_rates, mut growth) = (Vec::new(), Vec::new(), Vec::new());
        let (mut overflows, mut normal_growth) = (Vec::new(), Vec::new());
        for _ in 0..runs {
            let (rate, _, grew) = replication_run(keys, value_len, false);
            normal.push(rate);
            normal_growth.push(grew as f64);
            let (rate, over, grew) = replication_run(keys, value_len, true);
            stalled_rates.push(rate);
            overflows.push(over as f64);
            growth.push(grew as f64);
        }
        let (n, s) = (median(&mut normal), median(&mut stalled_rates));
        let config = config();
        let message = (value_len + 64) as f64; // one set per message at most
        let bound = config.send_hwm as f64 * message.max(64.0 * 1024.0 + 64.0) + 4.0 * 1048576.0;
        let worst =
            config.send_hwm as f64 * config.limits.max_message_bytes as f64 + 4.0 * 1048576.0;
        println!(
            "stalled {keys} sets of {value_len} B, median of {runs}: a -> b {n:.0} sets/s \
             normally, {s:.0} sets/s with a third subscriber stalled ({:.0}%; target >= 90%); \
             a's overflows {:.0}; RSS growth {:.1} MiB stalled vs {:.1} MiB normal (both \
             stores grow too; bound for the stalled subscriber with this run's messages \
             {:.1} MiB = send_hwm {} x largest message (64 KiB fill) + 4 MiB TCP buffer, \
             which is kernel memory; worst case {:.0} MiB); load {}",
            100.0 * s / n,
            median(&mut overflows),
            median(&mut growth) / 1048576.0,
            median(&mut normal_growth) / 1048576.0,
            bound / 1048576.0,
            config.send_hwm,
            worst / 1048576.0,
            bench::load()
        );
    }
}

/// What one `encryption` run measured.
#[derive(Default)]
struct Sample {
    /// Sets (or keys) per second.
    rate: f64,
    /// Both nodes' thread CPU over the run, seconds (0 where unavailable).
    cpu: f64,
    /// Messages: put messages a sent, or pages the joiner pulled.
    messages: u64,
    /// Every `drop_*` and `drop_hello_*` counter of both nodes, summed.
    drops: u64,
}

fn drops(node: &Dkv) -> u64 {
    let stats = node.stats().expect("running").proto;
    stats
        .iter()
        .filter(|(name, _)| name.starts_with("drop_"))
        .map(|(_, n)| n)
        .sum()
}

fn cpu_secs(node: &Dkv) -> f64 {
    thread_cpu(node).map_or(0.0, |d| d.as_secs_f64())
}

/// Writes `keys` keys of 100-byte values to `node` with up to `window` writes in
/// flight (1: each waits for its acknowledgement, as `Dkv::set`).
fn write_keys(node: &Dkv, keys: usize, window: usize) {
    shared::write_keys(node, 0..keys, &Bytes::from(vec![b'v'; 100]), window).unwrap();
}

/// Two fresh ready nodes in `mode`; a writes `keys` keys (`window` in flight), b
/// receives them. The rate counts until b holds every key.
fn stream_run(mode: Mode, keys: usize, window: usize) -> Sample {
    let config = mode.config();
    let a = Dkv::start(config.clone()).unwrap();
    let b = Dkv::start(config).unwrap();
    wait("a and b to be ready", || {
        a.ready_peers().unwrap().len() == 1 && b.ready_peers().unwrap().len() == 1
    });
    let cpu_before = cpu_secs(&a) + cpu_secs(&b);
    let start = Instant::now();
    write_keys(&a, keys, window);
    wait("b to receive every set", || keys_held(&b) >= keys);
    let took = start.elapsed();
    let sample = Sample {
        rate: keys as f64 / took.as_secs_f64(),
        cpu: cpu_secs(&a) + cpu_secs(&b) - cpu_before,
        messages: a.stats().unwrap().proto.out_put,
        drops: drops(&a) + drops(&b),
    };
    a.shutdown().unwrap();
    b.shutdown().unwrap();
    sample
}

/// A joiner in `holder`'s mode starts next to it and pulls all `keys` keys.
fn bootstrap_run(holder: &Dkv, config: &Config, keys: usize) -> Sample {
    let holder_before = cpu_secs(holder);
    let started = Instant::now();
    let joiner = Dkv::start(config.clone()).unwrap();
    wait_every(
        "the joiner to hold every key",
        Duration::from_millis(1),
        || keys_held(&joiner) >= keys,
    );
    let took = started.elapsed();
    let sample = Sample {
        rate: keys as f64 / took.as_secs_f64(),
        cpu: cpu_secs(&joiner) + cpu_secs(holder) - holder_before,
        messages: joiner.stats().unwrap().proto.sync_pull_pages,
        drops: drops(&joiner),
    };
    joiner.shutdown().unwrap();
    sample
}

/// The `encryption` section: every workload in every mode, the modes interleaved
/// (each run starts with the next mode), medians and ratios.
fn encryption(keys: usize) {
    let runs = runs();
    println!(
        "encryption {keys}: {runs} runs, load before {}",
        bench::load()
    );
    // One loaded holder per mode, kept for every bootstrap run.
    let holders: Vec<(Dkv, Config)> = Mode::ALL
        .iter()
        .map(|mode| {
            let config = mode.config();
            let holder = Dkv::start(config.clone()).unwrap();
            write_keys(&holder, keys, 1024);
            (holder, config)
        })
        .collect();
    const WORKLOADS: [&str; 3] = ["acked sets", "pipelined sets", "bootstrap"];
    // samples[workload][mode]
    let mut samples: Vec<Vec<Vec<Sample>>> = (0..WORKLOADS.len())
        .map(|_| Mode::ALL.iter().map(|_| Vec::new()).collect())
        .collect();
    for run in 0..runs {
        for m in 0..Mode::ALL.len() {
            let m = (m + run) % Mode::ALL.len();
            let mode = Mode::ALL[m];
            let (holder, config) = &holders[m];
            let figures = [
                stream_run(mode, keys, 1),
                stream_run(mode, keys, 1024),
                bootstrap_run(holder, config, keys),
            ];
            for (w, sample) in figures.into_iter().enumerate() {
                println!(
                    "encryption run {} {:5} {:14}: {:8.0} /s, node CPU {:.3} s, {} {}, \
                     {} drops",
                    run + 1,
                    mode.name(),
                    WORKLOADS[w],
                    sample.rate,
                    sample.cpu,
                    sample.messages,
                    if w == 2 { "pages" } else { "puts" },
                    sample.drops
                );
                samples[w][m].push(sample);
            }
        }
    }
    let load = bench::load();
    println!("encryption {keys} keys of 100 B, median of {runs} interleaved runs, load {load}:");
    println!("| workload | open | named | keyed | keyed/named | keyed/open |");
    println!("|---|---|---|---|---|---|");
    for (w, name) in WORKLOADS.iter().enumerate() {
        let rate = |m: usize| median(&mut samples[w][m].iter().map(|s| s.rate).collect::<Vec<_>>());
        let cpu = |m: usize| {
            median(&mut samples[w][m].iter().map(|s| s.cpu).collect::<Vec<_>>()) * 1e6 / keys as f64
        };
        let (open, named, keyed) = (rate(0), rate(1), rate(2));
        println!(
            "| {name} (keys/s) | {open:.0} | {named:.0} | {keyed:.0} | {:.0}% | {:.0}% |",
            100.0 * keyed / named,
            100.0 * keyed / open
        );
        let (open, named, keyed) = (cpu(0), cpu(1), cpu(2));
        println!(
            "| {name} (node CPU µs/key) | {open:.1} | {named:.1} | {keyed:.1} | {:.0}% | {:.0}% |",
            100.0 * keyed / named,
            100.0 * keyed / open
        );
    }
    for (holder, _) in holders {
        holder.shutdown().unwrap();
    }
}
