//! Benchmark: prints medians over several runs of events per wall second and
//! simulated seconds per wall second, for randomised fault runs (fixed seed) and for
//! a steady cluster (no faults, a light workload) at several sizes.
//!
//! `faults` is the randomised run of seed 1 at that size; `steady` a fault-free
//! cluster with a light workload. `dkv-sim-bench` runs the default sizes; `--big`
//! adds 1000 nodes.

use dkv_proto::Timings;
use dkv_sim::{run_seed, Clock, NetConfig, Params, Sim};
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

fn main() {
    let big = std::env::args().any(|a| a == "--big");
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
