//! Replays inputs through a target outside libFuzzer:
//! `cargo run -p dkv-fuzz --release --example replay -- <target> <file or directory>`.
//! For a directory it prints how long the inputs took (total, median, the slowest
//! five). Set `DKV_FUZZ_TRACE=1` to trace the `node` target's steps and outputs.

use std::path::PathBuf;
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, target, path] = &args[..] else {
        eprintln!("usage: replay <decode|beacon|node> <file or directory>");
        std::process::exit(2);
    };
    let Some((_, run)) = dkv_fuzz::TARGETS.into_iter().find(|(n, _)| n == target) else {
        eprintln!("unknown target {target}");
        std::process::exit(2);
    };
    let path = PathBuf::from(path);
    let mut files: Vec<PathBuf> = match std::fs::read_dir(&path) {
        Ok(dir) => dir.map(|e| e.expect("readable directory").path()).collect(),
        Err(_) => vec![path],
    };
    files.sort();
    let mut times: Vec<(Duration, PathBuf)> = files
        .into_iter()
        .map(|file| {
            let data = std::fs::read(&file).expect("readable input");
            let start = Instant::now();
            run(&data);
            (start.elapsed(), file)
        })
        .collect();
    times.sort();
    let total: Duration = times.iter().map(|(t, _)| *t).sum();
    let median = times
        .get(times.len() / 2)
        .map_or(Duration::ZERO, |(t, _)| *t);
    println!(
        "{target}: {} inputs pass, total {total:?}, median {median:?}",
        times.len()
    );
    for (t, file) in times.iter().rev().take(5) {
        println!("  {t:?} {}", file.display());
    }
}
