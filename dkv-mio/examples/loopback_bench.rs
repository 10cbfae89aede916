//! Figures for dkv-mio on this host over loopback broadcast: replication
//! throughput, remote get latency, and how fast a late joiner bootstraps many keys.
//! It prints figures and asserts nothing about speed.
//!
//! Run: `cargo run --release -p dkv-mio --example loopback_bench -- [KEYS]`
//! (KEYS defaults to 100000).

use dkv_mio::{unused_udp_port, BootstrapPhase, Config, Dkv};
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(120);

fn wait(what: &str, mut done: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < LIMIT, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
    start.elapsed()
}

fn main() {
    let keys: usize = std::env::args()
        .nth(1)
        .map(|arg| arg.parse().expect("KEYS must be a number"))
        .unwrap_or(100_000);
    let port = unused_udp_port().expect("a free UDP port");
    let mut config = Config {
        timings: Config::fast_timings(),
        ..Config::loopback(port)
    };
    config.timings.peer_timeout = Duration::from_secs(2);
    let a = Dkv::start(config.clone()).unwrap();
    let b = Dkv::start(config.clone()).unwrap();
    wait("a and b to meet", || {
        a.peers().unwrap().len() == 1 && b.peers().unwrap().len() == 1
    });
    wait("a's sets to reach b", || {
        a.set("probe", "x").unwrap();
        std::thread::sleep(Duration::from_millis(10));
        b.get_local("probe").unwrap().is_some()
    });
    println!("dkv-mio loopback figures ({keys} keys, debug build unless --release)");

    // Replication: a sets, b receives.
    let before = b.stats().unwrap().proto.in_set;
    let start = Instant::now();
    for i in 0..keys {
        a.set(format!("key/{i:07}"), format!("value-{i:07}"))
            .unwrap();
    }
    let queued = start.elapsed();
    wait("b to receive every set", || {
        b.stats().unwrap().proto.in_set - before >= keys as u64
    });
    let took = start.elapsed();
    let t = a.stats().unwrap().transport;
    println!(
        "replication: {keys} sets a -> b in {:.3} s ({:.0} sets/s; handle calls took {:.3} s; \
         a's PUB backlogged {} and dropped {})",
        took.as_secs_f64(),
        keys as f64 / took.as_secs_f64(),
        queued.as_secs_f64(),
        t.pub_backlogged,
        t.pub_dropped
    );

    // Remote get latency: a node that never bootstraps asks for keys it lacks.
    let mut asker_config = config.clone();
    asker_config.timings.bootstrap_delay = Duration::from_secs(3600);
    let asker = Dkv::start(asker_config).unwrap();
    wait("the asker to meet a and b", || {
        asker.peers().unwrap().len() == 2 && [&a, &b].iter().all(|n| n.peers().unwrap().len() == 2)
    });
    wait("the asker's first remote get", || {
        asker
            .get("probe", Some(Duration::from_millis(100)))
            .unwrap()
            .is_some()
    });
    let samples = 1000.min(keys);
    let mut latencies = Vec::with_capacity(samples);
    let mut misses = 0;
    for i in 0..samples {
        let start = Instant::now();
        let value = asker
            .get(format!("key/{i:07}"), Some(Duration::from_secs(1)))
            .unwrap();
        latencies.push(start.elapsed());
        misses += usize::from(value.is_none());
    }
    latencies.sort();
    let pct = |p: usize| latencies[(latencies.len() - 1) * p / 100].as_secs_f64() * 1e6;
    println!(
        "remote get: {samples} gets, p50 {:.0} us, p99 {:.0} us, max {:.0} us, {misses} unanswered",
        pct(50),
        pct(99),
        pct(100)
    );
    drop(asker);

    // Bootstrap: a late joiner fetches every key.
    // A list answer of many keys takes a while to cross; settle long enough for it.
    let mut late_config = config.clone();
    late_config.timings.bootstrap_settle = Duration::from_secs(1);
    let late = Dkv::start(late_config).unwrap();
    let started = Instant::now();
    let mut fetching_at = None;
    let mut settled_at = None;
    wait("the late joiner's bootstrap", || {
        let phase = late.bootstrap().unwrap().phase;
        if phase == BootstrapPhase::Fetching && fetching_at.is_none() {
            fetching_at = Some(started.elapsed());
        }
        if phase == BootstrapPhase::Fetching {
            // The last moment still fetching; phases may repeat as list answers come.
            settled_at = Some(started.elapsed());
        }
        phase == BootstrapPhase::Done
    });
    let held = late.keys().unwrap().len();
    if std::env::var_os("BENCH_DEBUG").is_some() {
        eprintln!(
            "late peers {:?} stats {:?}",
            late.peers().unwrap(),
            late.stats().unwrap()
        );
        eprintln!("a stats {:?}", a.stats().unwrap());
    }
    let stats = late.stats().unwrap().proto;
    let fetch = match (fetching_at, settled_at) {
        (Some(from), Some(to)) => format!("about {:.3} s", (to - from).as_secs_f64()),
        _ => "n/a (phase changes too quick to observe)".into(),
    };
    println!(
        "bootstrap: late joiner holds {held} keys; list -> all fetched in {fetch} \
         ({} listed, {} received, {} unanswered; done {:.3} s after start incl. {} ms delay and {} ms settle)",
        stats.bootstrap_keys_listed,
        stats.bootstrap_keys_received,
        stats.bootstrap_keys_unanswered,
        started.elapsed().as_secs_f64(),
        config.timings.bootstrap_delay.as_millis(),
        1000
    );
}
