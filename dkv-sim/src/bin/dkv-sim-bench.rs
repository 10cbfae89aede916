//! Benchmark: runs fixed seeds at several cluster sizes and prints the median
//! events per wall second and simulated seconds per wall second.

use dkv_sim::{run_seed, Params};
use std::time::Duration;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let sizes: Vec<(usize, u64, usize)> = if args.iter().any(|a| a == "--big") {
        vec![(100, 60, 5), (1000, 60, 3)]
    } else {
        vec![(10, 60, 5), (100, 60, 5), (300, 60, 3)]
    };
    println!("nodes  sim_s  runs  median_wall_s  median_events/s  median_sim_s/wall_s  events");
    for (nodes, secs, runs) in sizes {
        let params = Params::from_seed(1, Some(nodes), Some(Duration::from_secs(secs)));
        let (mut walls, mut eps, mut sps) = (Vec::new(), Vec::new(), Vec::new());
        let mut events = 0;
        for _ in 0..runs {
            let r = run_seed(&params);
            if !r.passed() {
                eprintln!(
                    "warning: bench run failed checks: {:?}",
                    &r.failures[..r.failures.len().min(3)]
                );
            }
            let wall = r.wall.as_secs_f64();
            walls.push(wall);
            eps.push(r.net.events as f64 / wall);
            sps.push(r.simulated.as_secs_f64() / wall);
            events = r.net.events;
        }
        println!(
            "{nodes:>5}  {secs:>5}  {runs:>4}  {:>13.3}  {:>15.0}  {:>19.1}  {events}",
            median(walls),
            median(eps),
            median(sps)
        );
    }
}
