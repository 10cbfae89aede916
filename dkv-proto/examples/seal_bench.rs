//! Benchmark: the seal module's cost per dkv/2 body frame. For each body size, seals
//! and opens frames on `dkv2.all` in a loop (one thread) and prints the median of 9
//! runs: µs per seal, per open and per seal+open, and seal+open throughput in MB/s
//! of body bytes (10^6 bytes). Also a sealed hello's seal+open, and the load average.
//!
//! `cargo run -p dkv-proto --release --example seal_bench`
//! Without SIMD (portable ChaCha20 and Poly1305), as on a host without AVX2/SSE2:
//! `RUSTFLAGS='--cfg chacha20_backend="soft" --cfg poly1305_backend="soft"'`

use dkv_proto::seal::{Cluster, HelloAddr, Key, Keyring, Sealer};
use dkv_proto::NodeId;
use std::hint::black_box;
use std::net::Ipv4Addr;
use std::time::Instant;

const RUNS: usize = 9;
const SIZES: [usize; 6] = [64, 1024, 16 * 1024, 64 * 1024, 256 * 1024, 1024 * 1024];
const TOPIC: &[u8] = b"dkv2.all";
/// Bytes sealed per run and size (at least 200 frames), so each run takes ~10-50 ms.
const BYTES_PER_RUN: usize = 16 << 20;

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

fn main() {
    let keys = Keyring::new(vec![Key::from_bytes([7; 32])]).unwrap();
    let cluster = Cluster::new("bench").unwrap();
    let mut sealer = Sealer::new(NodeId(*b"bench-01"), 42);
    println!("seal_bench: XChaCha20-Poly1305, median of {RUNS} runs, one thread");
    println!("load average before: {}", load_average());
    println!(
        "{:>9} {:>8} {:>10} {:>10} {:>12} {:>10}",
        "body", "frames", "seal µs", "open µs", "seal+open µs", "MB/s"
    );
    for size in SIZES {
        let body = vec![0xA5u8; size];
        let n = (BYTES_PER_RUN / size).max(200);
        let (mut seals, mut opens) = (Vec::new(), Vec::new());
        for _ in 0..RUNS {
            let t = Instant::now();
            let frames: Vec<Vec<u8>> = (0..n)
                .map(|i| {
                    sealer
                        .seal_frame(&keys, &cluster, TOPIC, &body, i as u64)
                        .unwrap()
                })
                .collect();
            let sealed = t.elapsed().as_secs_f64();
            let t = Instant::now();
            for frame in &frames {
                let opened = keys.open_frame(&cluster, TOPIC, black_box(frame)).unwrap();
                black_box(opened.body.len());
            }
            opens.push(t.elapsed().as_secs_f64() / n as f64);
            seals.push(sealed / n as f64);
        }
        let (seal, open) = (median(seals), median(opens));
        let both = seal + open;
        println!(
            "{:>9} {:>8} {:>10.2} {:>10.2} {:>12.2} {:>10.0}",
            size,
            n,
            seal * 1e6,
            open * 1e6,
            both * 1e6,
            size as f64 / both / 1e6
        );
    }
    let n = 100_000;
    let addr = HelloAddr {
        port: 41017,
        ip: Ipv4Addr::new(10, 0, 0, 5),
    };
    let mut runs = Vec::new();
    for _ in 0..RUNS {
        let t = Instant::now();
        for i in 0..n {
            let hello = sealer.seal_hello(&keys, &cluster, addr, i).unwrap();
            black_box(keys.open_hello(&cluster, black_box(&hello)).unwrap());
        }
        runs.push(t.elapsed().as_secs_f64() / n as f64);
    }
    println!("hello (68 B) seal+open: {:.2} µs", median(runs) * 1e6);
    println!("load average after: {}", load_average());
}
