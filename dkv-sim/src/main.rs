//! The `dkv-sim` command: runs one seed (twice, comparing trace hashes), a range of
//! seeds, or as many random seeds as fit in a wall-time budget, and prints the
//! parameters, trace hash, checks, traffic and speed of each.

/// mimalloc: a run allocates and frees per event, and it spends less time there
/// than the system allocator. Allocation never decides anything in a run.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use dkv_sim::run::LIVENESS;
use dkv_sim::{run_seed, splitmix64, Params, RunReport};
use std::fmt::Write as _;
use std::process::ExitCode;
use std::sync::{mpsc, Mutex};
use std::time::{Duration, Instant};

const USAGE: &str = "usage: dkv-sim [--seed S] [--nodes N] [--duration SECS] [--seeds K]
               [--seeds-for-secs T] [--jobs J] [--soak] [--no-determinism-check] [--quiet]

  --seed S              run seed S (default: a fresh random seed); with --seeds, the first seed
  --nodes N             override the node count the seed picks (2 to 10000)
  --duration SECS       virtual seconds per run (default 60, at least 35; the last 30 are liveness)
  --seeds K             run K seeds: S, S+1, ..., S+K-1 (K at least 1)
  --seeds-for-secs T    run fresh random seeds until T wall seconds have passed (CI; T at least 1)
  --jobs J              with --seeds-for-secs/--soak: seeds run on J threads at once
                        (default: one per core); each seed's run stays on one thread
  --soak                like --seeds-for-secs 86400, printing every seed
  --no-determinism-check  do not rerun seeds to compare trace hashes
  --quiet               one line per passing seed";

/// The fewest nodes a run may have: with one, no peer, replication or bootstrap
/// check has anything to look at.
const MIN_NODES: u64 = 2;
/// The most nodes a run may have: far above the 1,000 the simulator is built for,
/// low enough that a typo cannot exhaust memory before the first event.
const MAX_NODES: u64 = 10_000;
/// The shortest run: five seconds of faults and workload, then the liveness phase.
const MIN_DURATION: Duration = Duration::from_secs(LIVENESS.as_secs() + 5);

#[derive(Debug, Default)]
struct Args {
    seed: Option<u64>,
    nodes: Option<usize>,
    duration: Option<Duration>,
    seeds: Option<u64>,
    budget: Option<Duration>,
    determinism: bool,
    quiet: bool,
    jobs: Option<usize>,
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        determinism: true,
        ..Args::default()
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match flag.as_str() {
            "--seed" => a.seed = Some(num(&value("--seed")?)?),
            "--nodes" => {
                let n = num(&value("--nodes")?)?;
                if !(MIN_NODES..=MAX_NODES).contains(&n) {
                    return Err(format!(
                        "--nodes {n} is out of range: a run has {MIN_NODES} to {MAX_NODES} nodes"
                    ));
                }
                a.nodes = Some(n as usize);
            }
            "--duration" => {
                let v = value("--duration")?;
                let s: f64 = v.parse().map_err(|_| format!("bad duration {v:?}"))?;
                if !(0.0..1e9).contains(&s) {
                    return Err(format!("bad duration {v:?}"));
                }
                let d = Duration::from_secs_f64(s);
                if d < MIN_DURATION {
                    return Err(format!(
                        "--duration {v} is too short: at least {} s (5 s of faults, then {} s of liveness)",
                        MIN_DURATION.as_secs(),
                        LIVENESS.as_secs()
                    ));
                }
                a.duration = Some(d);
            }
            "--seeds" => {
                let k = num(&value("--seeds")?)?;
                if k == 0 {
                    return Err("--seeds 0 would run nothing: give at least 1".into());
                }
                a.seeds = Some(k);
            }
            "--seeds-for-secs" => {
                let t = num(&value("--seeds-for-secs")?)?;
                if t == 0 {
                    return Err("--seeds-for-secs 0 would run nothing: give at least 1".into());
                }
                a.budget = Some(Duration::from_secs(t));
            }
            "--soak" => a.budget = Some(Duration::from_secs(86_400)),
            "--jobs" => {
                let j = num(&value("--jobs")?)?;
                if !(1..=256).contains(&j) {
                    return Err(format!("--jobs {j} is out of range: 1 to 256 threads"));
                }
                a.jobs = Some(j as usize);
            }
            "--no-determinism-check" => a.determinism = false,
            "--quiet" => a.quiet = true,
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if a.seeds.is_some() && a.budget.is_some() {
        return Err("--seeds and --seeds-for-secs/--soak exclude each other".into());
    }
    if a.jobs.is_some() && a.budget.is_none() {
        return Err("--jobs goes with --seeds-for-secs or --soak".into());
    }
    Ok(a)
}

fn num(s: &str) -> Result<u64, String> {
    s.parse().map_err(|_| format!("not a number: {s:?}"))
}

/// A seed that differs from run to run: wall clock and process id, mixed.
fn fresh_seed() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let mut s = t ^ (u64::from(std::process::id()) << 32);
    splitmix64(&mut s)
}

/// The parameters of `seed` under the command's overrides.
fn params(args: &Args, seed: u64) -> Params {
    Params::from_seed(seed, args.nodes, args.duration)
}

/// What one seed's run came to.
struct Outcome {
    passed: bool,
    /// How long after the faults ended its dkv nodes first held identical stores.
    converged: Option<Duration>,
    /// What to print about it.
    text: String,
}

/// Runs one seed, twice if asked, and says what happened.
fn one(args: &Args, seed: u64, determinism: bool, verbose: bool) -> Outcome {
    let params = params(args, seed);
    let mut text = String::new();
    if verbose {
        writeln!(text, "{}", params.describe()).unwrap();
    }
    let report = run_seed(&params);
    let mut ok = report.passed();
    let mut det = String::new();
    if determinism {
        let again = run_seed(&params);
        if again.trace_hash == report.trace_hash {
            det = " (same hash on a second run)".into();
        } else {
            ok = false;
            det = format!(
                " NOT DETERMINISTIC: second run hashed {:016x}",
                again.trace_hash
            );
        }
    }
    if verbose {
        writeln!(text, "{}", report.summary()).unwrap();
        writeln!(
            text,
            "determinism     = {}",
            if determinism {
                det.trim()
            } else {
                "not checked"
            }
        )
        .unwrap();
    }
    write_outcome(&mut text, &report, ok, &det, verbose);
    Outcome {
        passed: ok,
        converged: report.converged_after,
        text,
    }
}

fn write_outcome(out: &mut String, report: &RunReport, ok: bool, det: &str, verbose: bool) {
    let p = &report.params;
    if ok {
        let speed = report.simulated.as_secs_f64() / report.wall.as_secs_f64().max(1e-9);
        writeln!(
            out,
            "PASS seed {} nodes {} hash {:016x}{det}, {:.0} sim s/wall s",
            p.seed, p.nodes, report.trace_hash, speed
        )
        .unwrap();
        return;
    }
    if !verbose {
        writeln!(out, "{}", p.describe()).unwrap();
        writeln!(out, "{}", report.summary()).unwrap();
    }
    writeln!(
        out,
        "FAIL seed {} hash {:016x}{det}",
        p.seed, report.trace_hash
    )
    .unwrap();
    for f in report.failures.iter().take(20) {
        writeln!(out, "  {f}").unwrap();
    }
    if report.failures.len() > 20 {
        writeln!(out, "  ... and {} more", report.failures.len() - 20).unwrap();
    }
    writeln!(out, "reproduce: {}", p.reproduce()).unwrap();
}

/// Runs fresh seeds from `stream` on `jobs` threads until `budget` has passed
/// (a seed started before then runs to its end), handing each outcome to `seen`
/// on this thread, in the order they finish. Every fourth seed drawn is run twice
/// if `args.determinism`. Each run is on one thread, so it is as deterministic as
/// a lone one; only which seeds fit in the budget depends on the machine.
fn run_for(
    args: &Args,
    budget: Duration,
    stream: u64,
    jobs: usize,
    mut seen: impl FnMut(u64, Outcome),
) {
    let started = Instant::now();
    // Seeds drawn so far, and the stream's state.
    let next = Mutex::new((0u64, stream));
    let draw = || {
        let mut next = next.lock().unwrap_or_else(|e| e.into_inner());
        if started.elapsed() >= budget {
            return None;
        }
        let index = next.0;
        next.0 += 1;
        Some((index, splitmix64(&mut next.1)))
    };
    let (tx, rx) = mpsc::channel();
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            let tx = tx.clone();
            let draw = &draw;
            scope.spawn(move || {
                while let Some((index, seed)) = draw() {
                    let det = args.determinism && index % 4 == 0;
                    if tx.send((seed, one(args, seed, det, false))).is_err() {
                        return;
                    }
                }
            });
        }
        drop(tx);
        for (seed, outcome) in rx {
            seen(seed, outcome);
        }
    });
}

fn main() -> ExitCode {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("dkv-sim: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    if let Some(budget) = args.budget {
        let started = Instant::now();
        let state = args.seed.unwrap_or_else(fresh_seed);
        let jobs = args.jobs.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
        });
        println!("random seeds for {budget:?} on {jobs} threads, seed stream from {state}");
        let (mut ran, mut failed) = (0u64, Vec::new());
        let mut slowest: Option<(Duration, u64)> = None;
        let (mut keyed, mut slowest_keyed): (u64, Option<(Duration, u64)>) = (0, None);
        let (mut keyed_hostile, mut named) = (0u64, 0u64);
        run_for(&args, budget, state, jobs, |seed, outcome| {
            print!("{}", outcome.text);
            if !outcome.passed {
                failed.push(seed);
            }
            let p = params(&args, seed);
            let is_keyed = p.keyed;
            keyed += u64::from(is_keyed);
            keyed_hostile += u64::from(is_keyed && !p.hostile.is_empty());
            named += u64::from(p.named);
            if let Some(c) = outcome.converged {
                if slowest.is_none_or(|(d, _)| c > d) {
                    slowest = Some((c, seed));
                }
                if is_keyed && slowest_keyed.is_none_or(|(d, _)| c > d) {
                    slowest_keyed = Some((c, seed));
                }
            }
            ran += 1;
        });
        println!(
            "ran {ran} random seeds in {:.1} s: {} passed, {} failed",
            started.elapsed().as_secs_f64(),
            ran - failed.len() as u64,
            failed.len()
        );
        if let Some((d, seed)) = slowest {
            println!(
                "slowest convergence after the faults ended: {:.1} s (seed {seed})",
                d.as_secs_f64()
            );
        }
        println!(
            "keyed clusters: {keyed} of the {ran} seeds, {keyed_hostile} with a hostile host; {named} named"
        );
        if let Some((d, seed)) = slowest_keyed {
            println!(
                "slowest keyed convergence: {:.1} s (seed {seed})",
                d.as_secs_f64()
            );
        }
        for s in &failed {
            println!("failed seed {s}: {}", params(&args, *s).reproduce());
        }
        return if failed.is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        };
    }
    let first = args.seed.unwrap_or_else(fresh_seed);
    let count = args.seeds.unwrap_or(1);
    let mut failed = Vec::new();
    for i in 0..count {
        let seed = first.wrapping_add(i);
        let verbose = !args.quiet || count == 1;
        if verbose && count > 1 {
            println!("---");
        }
        let outcome = one(&args, seed, args.determinism, verbose);
        print!("{}", outcome.text);
        if !outcome.passed {
            failed.push(seed);
        }
    }
    if count > 1 {
        println!(
            "ran {count} seeds: {} passed, {} failed",
            count - failed.len() as u64,
            failed.len()
        );
    }
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
