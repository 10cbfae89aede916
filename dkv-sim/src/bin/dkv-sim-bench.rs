//! Benchmark: prints medians over several runs of events per wall second and
//! simulated seconds per wall second, for randomised fault runs (fixed seed) and for
//! a steady cluster (no faults, a light workload) at several sizes.
//!
//! `faults` is the randomised run of seed 1 at that size; `steady` a fault-free
//! cluster with a light workload. `dkv-sim-bench` runs the default sizes; `--big`
//! adds 1000 nodes.
//!
//! It first prints the convergence figure: three nodes holding 10,000 keys are
//! split by a partition, each side writes (the same keys, other keys, deletes),
//! the partition heals, and the simulated time until every node holds identical
//! entries is measured, for a partition longer than the peer timeout (peers go
//! down and come back) and one shorter (peers stay up; beacons resume).

/// mimalloc: a run allocates and frees per event, and it spends less time there
/// than the system allocator. Allocation never decides anything in a run.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use bytes::Bytes;
use dkv_proto::Timings;
use dkv_sim::run::limits_for;
use dkv_sim::{run_seed, Clock, NetConfig, Params, Shape, Sim};
use std::time::{Duration, Instant};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

struct Sample {
    wall: f64,
    events: u64,
    simulated: f64,
}

fn report(label: &str, nodes: usize, samples: Vec<Sample>) {
    let events = samples[0].events;
    let wall = median(samples.iter().map(|s| s.wall).collect());
    let eps = median(samples.iter().map(|s| s.events as f64 / s.wall).collect());
    let sps = median(samples.iter().map(|s| s.simulated / s.wall).collect());
    println!(
        "{label:<14} {nodes:>5} {:>6.0} {:>5} {wall:>10.3} {eps:>12.0} {sps:>10.1} {events:>10}",
        samples[0].simulated,
        samples.len()
    );
}

/// A fault-free cluster of `nodes` with 20 sets and 20 gets per second for `secs`.
fn steady(nodes: usize, secs: u64) -> Sample {
    let started = Instant::now();
    let mut sim = Sim::new(NetConfig::default(), Timings::default(), 7);
    *sim.limits_mut() = limits_for(nodes);
    for i in 0..nodes {
        let h = sim.add_host();
        sim.add_node(h, Clock::default());
        if i % 50 == 49 {
            sim.run_for(Duration::from_millis(100));
        }
    }
    let mut i = 0u64;
    while sim.now() < Duration::from_secs(secs) {
        sim.run_for(Duration::from_millis(50));
        let slot = (i as usize * 7919) % nodes;
        sim.set(slot, &format!("k{}", i % 100), format!("v{i}").into());
        sim.get((slot + 1) % nodes, &format!("k{}", (i * 13) % 150));
        i += 1;
        if i % 100 == 0 {
            sim.forget_get_results();
        }
    }
    assert!(sim.violations().is_empty(), "{:?}", &sim.violations()[..1]);
    Sample {
        wall: started.elapsed().as_secs_f64(),
        events: sim.counters().events,
        simulated: sim.now().as_secs_f64(),
    }
}

fn faults(nodes: usize) -> Sample {
    let params = Params::from_seed(1, Some(nodes), Some(Duration::from_secs(60)));
    let r = run_seed(&params);
    if !r.passed() {
        eprintln!("warning: bench run failed checks: {:?}", r.failures.first());
    }
    Sample {
        wall: r.wall.as_secs_f64(),
        events: r.net.events,
        simulated: r.simulated.as_secs_f64(),
    }
}

/// Simulated seconds from the heal until three nodes holding 10,000 keys, split
/// for `split` with `diffs` writes on each side, hold identical entries.
fn heal(seed: u64, split: Duration, diffs: usize) -> f64 {
    let mut sim = Sim::new(NetConfig::default(), Timings::default(), seed);
    let n: Vec<usize> = (0..3)
        .map(|_| {
            let h = sim.add_host();
            sim.add_node(h, Clock::default())
        })
        .collect();
    sim.run_for(Duration::from_secs(3));
    for i in 0..10_000 {
        sim.set(
            n[i % 3],
            &format!("key/{i:05}"),
            Bytes::from(vec![b'v'; 100]),
        );
        if i % 500 == 499 {
            sim.run_for(Duration::from_millis(10));
        }
    }
    sim.run_for(Duration::from_secs(3));
    assert!(sim.identical_dkv_stores(), "not converged before the split");
    let cut = sim.partition(&Shape::Groups(vec![vec![sim.host_of(n[2])]]));
    for i in 0..diffs {
        let key = format!("key/{:05}", (i * 7919) % 10_000);
        match i % 4 {
            0 => sim.set(n[0], &key, "left".into()),
            1 => sim.set(n[2], &key, "right".into()),
            2 => sim.delete(n[1], &key),
            _ => sim.set(n[2], &format!("new/{i}"), "fresh".into()),
        }
        sim.run_for(split / diffs as u32);
    }
    // Heal at a different point of the beacon interval in each seed.
    sim.run_for(Duration::from_millis(seed * 197 % 1000));
    sim.heal(cut);
    let healed = sim.now();
    let converged = sim.run_until_true(Duration::from_secs(60), Sim::identical_dkv_stores);
    assert!(
        converged && sim.violations().is_empty(),
        "{:?}",
        sim.violations()
    );
    (sim.now() - healed).as_secs_f64()
}

fn main() {
    let big = std::env::args().any(|a| a == "--big");
    for (label, split) in [
        ("10 s", Duration::from_secs(10)),
        ("2 s", Duration::from_secs(2)),
    ] {
        let times: Vec<f64> = (1..=9).map(|seed| heal(seed, split, 200)).collect();
        let max = times.iter().copied().fold(0.0, f64::max);
        println!(
            "heal: 3 nodes x 10,000 keys, {label} partition, 200 writes: identical {:.2} s after the heal (median of 9 seeds; max {:.2} s)",
            median(times),
            max
        );
    }
    println!("mode           nodes  sim_s  runs  median_wall_s  events/s  sim_s/wall_s  events");
    let mut rows: Vec<(&str, usize, usize)> = vec![
        ("faults", 10, 5),
        ("faults", 100, 5),
        ("steady", 100, 5),
        ("faults", 300, 3),
        ("steady", 300, 3),
    ];
    if big {
        rows.extend([("steady", 1000, 1), ("faults", 1000, 1)]);
    }
    for (mode, nodes, runs) in rows {
        let samples = (0..runs)
            .map(|_| match mode {
                "faults" => faults(nodes),
                _ => steady(nodes, 60),
            })
            .collect();
        report(mode, nodes, samples);
    }
}
