//! Where a remote get's thread wakes and CPU go: `dkv bench`'s remote-get setup
//! (`dkv_mio::bench::with_remote_asker`), with every thread of this process
//! counted over the gets (context switches and CPU from `/proc/self/task`),
//! next to the raw libzmq question/answer round trip. It prints figures and
//! asserts nothing about speed.
//!
//! Run: `cargo run --release -p dkv-mio --example get_wakes -- [GETS] [ROUNDS]`
//! (default 1000 gets, 3 rounds; the raw runs take at most
//! 1,000, as `dkv bench`). Each round, alternately:
//! - `dkv remote`: GETS gets of keys only the server holds (as `dkv bench`);
//! - `dkv local`: the same keys again, now held by the asker: the handle's hop to
//!   the loop thread and back, with no network (what a remote get pays on top of
//!   the sockets);
//! - `raw 1 ctx`: `dkv bench`'s raw reference (one ZeroMQ context, so one I/O
//!   thread, serves both sides);
//! - `raw 2 ctx`: the same with a context per side, as two dkv nodes have.
//!
//! Per get it prints p50 and p99, context switches (voluntary + involuntary) and
//! CPU, for the whole process (`getrusage`, so threads that ended count too)
//! and, for dkv, per thread. Last, what a reply channel and a `poll` cost alone.

mod bench;

use bench::median;
use dkv_mio::bench::{self as shared, BenchError, Latencies, Workload};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// One thread's counters at one moment.
#[derive(Clone, Debug, Default)]
struct Task {
    name: String,
    switches: u64,
    cpu_ns: u64,
}

/// Every live thread of this process, by thread id.
fn tasks() -> BTreeMap<u32, Task> {
    let mut out = BTreeMap::new();
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return out;
    };
    for task in dir.flatten() {
        let Some(tid) = task.file_name().to_str().and_then(|t| t.parse().ok()) else {
            continue;
        };
        let read = |file: &str| std::fs::read_to_string(task.path().join(file)).unwrap_or_default();
        let switches = read("status")
            .lines()
            .filter(|line| line.contains("ctxt_switches"))
            .filter_map(|line| line.split_whitespace().nth(1)?.parse::<u64>().ok())
            .sum();
        let cpu_ns = read("schedstat")
            .split_whitespace()
            .next()
            .and_then(|ns| ns.parse().ok())
            .unwrap_or(0);
        let name = read("comm").trim_end().to_string();
        out.insert(
            tid,
            Task {
                name,
                switches,
                cpu_ns,
            },
        );
    }
    out
}

/// The process's context switches and CPU so far, threads that ended included.
fn process() -> (u64, Duration) {
    // SAFETY: getrusage only writes the zeroed struct it is given.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let time = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    (
        (usage.ru_nvcsw + usage.ru_nivcsw) as u64,
        time(usage.ru_utime) + time(usage.ru_stime),
    )
}

/// What one measured phase cost per get.
struct PerGet {
    p50: f64,
    p99: f64,
    switches: f64,
    cpu_us: f64,
    /// Per thread (dkv only): role, switches, CPU µs.
    threads: Vec<(String, f64, f64)>,
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Runs `gets` gets of keys 1..=gets on `asker`, counting every thread.
fn dkv_phase(asker: &dkv_mio::Dkv, gets: usize) -> Result<PerGet, BenchError> {
    let before = tasks();
    let process_before = process();
    let latencies = shared::timed_gets(asker, gets)?;
    let process_after = process();
    let after = tasks();
    // Threads are created in order: per node its ZeroMQ reaper, its ZeroMQ I/O
    // thread and its loop (server, writer, asker), then the hello sender.
    // (The asker's id is not needed: its loop is the last.)
    let loops: Vec<u32> = after
        .iter()
        .filter(|(_, t)| t.name.starts_with("dkv-"))
        .map(|(tid, _)| *tid)
        .collect();
    let pid = std::process::id();
    let nodes = ["server", "writer", "asker"];
    let mut roles: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    let mut zmq_seen = [0; 3];
    for (tid, task) in &after {
        let Some(old) = before.get(tid) else { continue };
        let node = loops.iter().take_while(|l| *l < tid).count();
        let role = if *tid == pid {
            "user thread (handle)".to_string()
        } else if node >= nodes.len() {
            "hello sender".to_string()
        } else if loops.contains(tid) {
            format!("{} loop", nodes[node])
        } else {
            zmq_seen[node] += 1;
            let which = if zmq_seen[node] == 1 { "reaper" } else { "I/O" };
            format!("{} ZeroMQ {which}", nodes[node])
        };
        let entry = roles.entry(role).or_default();
        entry.0 += (task.switches - old.switches) as f64 / gets as f64;
        entry.1 += (task.cpu_ns - old.cpu_ns) as f64 / 1e3 / gets as f64;
    }
    if latencies.unanswered > 0 {
        let unanswered = latencies.unanswered;
        return Err(BenchError(format!(
            "{unanswered} of {gets} gets unanswered"
        )));
    }
    Ok(PerGet {
        p50: micros(latencies.percentile(50)),
        p99: micros(latencies.percentile(99)),
        switches: (process_after.0 - process_before.0) as f64 / gets as f64,
        cpu_us: micros(process_after.1 - process_before.1) / gets as f64,
        threads: roles.into_iter().map(|(r, (s, c))| (r, s, c)).collect(),
    })
}

/// A raw run of `gets` gets and one of a tenth as many; the difference gives
/// the per-get counters without the setup.
fn raw_phase(gets: usize, separate: bool) -> Result<PerGet, BenchError> {
    let run = |gets: usize| -> Result<(Latencies, u64, Duration), BenchError> {
        let before = process();
        let latencies = shared::raw_remote_get_on(&workload(gets), separate)?;
        let after = process();
        Ok((latencies, after.0 - before.0, after.1 - before.1))
    };
    let (few, few_switches, few_cpu) = run(gets / 10)?;
    let (latencies, switches, cpu) = run(gets)?;
    let extra = latencies
        .sorted
        .len()
        .saturating_sub(few.sorted.len())
        .max(1) as f64;
    Ok(PerGet {
        p50: micros(latencies.percentile(50)),
        p99: micros(latencies.percentile(99)),
        switches: switches.saturating_sub(few_switches) as f64 / extra,
        cpu_us: micros(cpu.saturating_sub(few_cpu)) / extra,
        threads: Vec::new(),
    })
}

fn workload(gets: usize) -> Workload {
    Workload {
        keys: gets + 1,
        value_bytes: 100,
        window: 1024,
        timeout: Duration::from_secs(120),
    }
}

/// What two pieces of a get cost alone, on one thread (no wake): a reply
/// channel made, sent on and received from (the handle makes one per get), and
/// a `poll` of an idle socket (libzmq checks a socket's command mailbox so; the
/// loops make about four per get). Nanoseconds each, median of 5 runs.
fn pieces() -> (f64, f64) {
    const N: u32 = 20_000;
    let mut channel = Vec::new();
    let mut poll = Vec::new();
    let (idle, _other) = std::os::unix::net::UnixStream::pair().expect("a socket pair");
    let fd = std::os::fd::AsRawFd::as_raw_fd(&idle);
    for _ in 0..5 {
        let start = Instant::now();
        for i in 0..N {
            let (reply, answer) = std::sync::mpsc::channel();
            reply.send(i).expect("the receiver is here");
            std::hint::black_box(answer.recv().expect("sent"));
        }
        channel.push(start.elapsed().as_secs_f64() * 1e9 / f64::from(N));
        let start = Instant::now();
        for _ in 0..N {
            let mut pfd = libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd, for the duration of the call.
            std::hint::black_box(unsafe { libc::poll(&mut pfd, 1, 0) });
        }
        poll.push(start.elapsed().as_secs_f64() * 1e9 / f64::from(N));
    }
    (median(&mut channel), median(&mut poll))
}

fn main() -> Result<(), BenchError> {
    let numbers: Vec<usize> = std::env::args()
        .skip(1)
        .map(|arg| arg.parse().expect("GETS and ROUNDS are numbers"))
        .collect();
    let gets = numbers.first().copied().unwrap_or(1000).clamp(10, 100_000);
    let rounds = numbers.get(1).copied().unwrap_or(3).clamp(1, 50);
    let mut config = shared::loopback_config()?;
    // The server answers every get, however many per second.
    let unlimited = dkv_proto::Rate::per_second(1_000_000, 1_000_000);
    config.limits.requests_per_asker = unlimited;
    config.limits.requests_total = unlimited;
    let mut figures: BTreeMap<&str, Vec<PerGet>> = BTreeMap::new();
    println!(
        "{gets} gets per phase, {rounds} rounds, load {}",
        bench::load()
    );
    if std::env::var_os("RAW2_ONLY").is_some() {
        for _ in 0..rounds {
            shared::raw_remote_get_on(&workload(gets), true)?;
        }
        return Ok(());
    }
    if std::env::var_os("DKV_ONLY").is_some() {
        for _ in 0..rounds {
            shared::with_remote_asker(&config, &workload(gets), |asker| dkv_phase(asker, gets))?;
        }
        return Ok(());
    }
    for round in 0..rounds {
        let (remote, local) = shared::with_remote_asker(&config, &workload(gets), |asker| {
            let remote = dkv_phase(asker, gets)?;
            let local = dkv_phase(asker, gets)?;
            Ok((remote, local))
        })?;
        for (name, per) in [
            ("dkv remote", remote),
            ("dkv local", local),
            ("raw 1 ctx", raw_phase(gets, false)?),
            ("raw 2 ctx", raw_phase(gets, true)?),
        ] {
            println!(
                "round {round} {name:<10}: p50 {:7.1} us  p99 {:7.1} us  {:5.2} switches  {:6.1} us CPU per get",
                per.p50, per.p99, per.switches, per.cpu_us
            );
            for (role, switches, cpu) in &per.threads {
                println!("      {role:<28} {switches:5.2} switches {cpu:6.1} us CPU");
            }
            figures.entry(name).or_default().push(per);
        }
    }
    let (channel_ns, poll_ns) = pieces();
    println!(
        "one thread, no wake: reply channel made, sent, received {channel_ns:.0} ns; \
         poll of an idle socket {poll_ns:.0} ns"
    );
    println!("medians over {rounds} rounds, load {}:", bench::load());
    let column =
        |per: &[PerGet], f: fn(&PerGet) -> f64| median(&mut per.iter().map(f).collect::<Vec<_>>());
    let raw_p50 = column(&figures["raw 1 ctx"], |p| p.p50);
    for (name, per) in &figures {
        let p50 = column(per, |p| p.p50);
        println!(
            "{name:<10}: p50 {p50:7.1} us ({:.2}x raw 1 ctx)  p99 {:7.1} us  {:5.2} switches  {:6.1} us CPU per get",
            p50 / raw_p50,
            column(per, |p| p.p99),
            column(per, |p| p.switches),
            column(per, |p| p.cpu_us),
        );
    }
    Ok(())
}
