//! Benchmark: a joiner bootstraps N keys from one peer over a simulated LAN link.
//!
//! Prints, per bootstrap window, the median over several runs of (a) the simulated
//! time from `list` to the last key fetched at the given one-way latency, and (b)
//! the wall time both cores spent doing it (codec included).
//!
//! `cargo run -p dkv-proto --release --example bootstrap_bench -- [KEYS] [LATENCY_US] [RUNS]`

use bytes::Bytes;
use dkv_proto::{BootstrapPhase, Config, Node, NodeId, Output};
use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

struct Link {
    in_flight: VecDeque<(Instant, Vec<Bytes>)>,
}

/// Runs one bootstrap; returns (simulated fetch time, wall time).
fn run(keys: usize, window: usize, latency: Duration) -> (Duration, Duration) {
    let t0 = Instant::now();
    let mut nodes = [0u8, 1].map(|i| {
        let mut config = Config::new(NodeId([i; 8]), 5000 + u16::from(i));
        config.timings.bootstrap_window = window;
        config.timings.bootstrap_question_timeout = Duration::from_secs(3600);
        Node::new(config)
    });
    let ips = [0u8, 1].map(|i| IpAddr::V4(Ipv4Addr::new(10, 0, 0, i + 1)));
    for i in 0..keys {
        nodes[0].set(t0, format!("key-{i:06}"), Bytes::from(format!("value-{i}")));
    }
    while nodes[0].poll_output().is_some() {}
    let wall = Instant::now();
    let mut links = [0, 1].map(|_| Link {
        in_flight: VecDeque::new(),
    });
    let mut now = t0;
    for (node, ip) in nodes.iter_mut().zip(ips) {
        node.handle_net_up(now, ip);
    }
    let mut list_sent = None;
    for _ in 0..100_000_000u64 {
        for i in 0..2 {
            while let Some(output) = nodes[i].poll_output() {
                match output {
                    Output::Publish(msg) => {
                        if matches!(msg, dkv_proto::Message::List { .. }) {
                            list_sent = Some(now);
                        }
                        links[i].in_flight.push_back((now + latency, msg.encode()));
                    }
                    Output::Beacon(payload) => nodes[1 - i].handle_beacon(now, ips[i], &payload),
                    _ => {}
                }
            }
        }
        let joiner = nodes[1].bootstrap();
        if joiner.phase == BootstrapPhase::Settling && joiner.listed == keys {
            let fetched = nodes[1].stats().bootstrap_keys_received as usize;
            assert_eq!(fetched, keys, "every key arrives");
            return (now - list_sent.unwrap(), wall.elapsed());
        }
        let arrival = |l: &Link| l.in_flight.front().map(|(at, _)| *at);
        let next = [
            arrival(&links[0]),
            arrival(&links[1]),
            nodes[0].poll_timeout(),
            nodes[1].poll_timeout(),
        ]
        .into_iter()
        .flatten()
        .min()
        .expect("something is always scheduled");
        now = now.max(next);
        for i in 0..2 {
            while links[i].in_flight.front().is_some_and(|(at, _)| *at <= now) {
                let (_, frames) = links[i].in_flight.pop_front().unwrap();
                nodes[1 - i].handle_message(now, &frames);
            }
            if nodes[i].poll_timeout().is_some_and(|t| t <= now) {
                nodes[i].handle_timeout(now);
            }
        }
    }
    panic!("bootstrap did not finish");
}

fn median(mut xs: Vec<Duration>) -> Duration {
    xs.sort();
    xs[xs.len() / 2]
}

fn main() {
    let mut args = std::env::args().skip(1);
    let keys: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let latency_us: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(100);
    let runs: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(5);
    let latency = Duration::from_micros(latency_us);
    println!("bootstrap of {keys} keys, one-way latency {latency_us} us, median of {runs} runs");
    println!(
        "{:>8} {:>16} {:>14} {:>12}",
        "window", "simulated fetch", "core wall", "keys/s sim"
    );
    for window in [1usize, 16, 64, 256, 1024] {
        let n = if window == 1 { keys.min(10_000) } else { keys };
        let (sims, walls): (Vec<_>, Vec<_>) = (0..runs).map(|_| run(n, window, latency)).unzip();
        let (sim, wall) = (median(sims), median(walls));
        let rate = n as f64 / sim.as_secs_f64();
        let note = if n < keys {
            format!("  ({n} keys)")
        } else {
            String::new()
        };
        println!(
            "{window:>8} {:>16.3?} {:>14.3?} {rate:>12.0}{note}",
            sim, wall
        );
    }
    println!(
        "prototype (measured): ~10 keys/s, i.e. ~{} s for {keys} keys",
        keys / 10
    );
}
