//! What the dkv-mio benchmarks share: their command line, runs per figure,
//! medians, the load average and a thread's CPU time.
#![allow(dead_code)] // each bench uses a different part

use std::time::Duration;

/// `[SECTION] [N...]` from the command line: the section (`default` when none is
/// given) and the numbers after it. Panics with a message on a number that is not.
pub fn section_and_numbers(default: &'static str) -> (String, Vec<usize>) {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let section = args.first().map_or(default.to_string(), String::clone);
    let numbers = args
        .iter()
        .skip(1)
        .map(|arg| arg.parse().expect("N must be a number"))
        .collect();
    (section, numbers)
}

/// Runs per figure: `BENCH_RUNS`, default 3, at least 1.
pub fn runs() -> usize {
    std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
        .max(1)
}

pub use dkv_mio::bench::{load, median};

/// CPU time this process's thread named `name` (cut to the kernel's 15 bytes)
/// has used, from `/proc/self/task/*/schedstat`; `None` where unavailable.
pub fn thread_cpu(name: &str) -> Option<Duration> {
    let name = &name[..15.min(name.len())];
    for task in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.trim_end() == name {
            let sched = std::fs::read_to_string(task.path().join("schedstat")).ok()?;
            let ns = sched.split_whitespace().next()?.parse().ok()?;
            return Some(Duration::from_nanos(ns));
        }
    }
    None
}
