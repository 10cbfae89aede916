//! The `dkv-sim` command: runs one seed (twice, comparing trace hashes), a range of
//! seeds, or as many random seeds as fit in a wall-time budget, and prints the
//! parameters, trace hash, checks, traffic and speed of each.

use dkv_sim::run::LIVENESS;
use dkv_sim::{run_seed, splitmix64, Params, RunReport};
use std::process::ExitCode;
use std::time::{Duration, Instant};

const USAGE: &str = "usage: dkv-sim [--seed S] [--nodes N] [--duration SECS] [--seeds K]
               [--seeds-for-secs T] [--soak] [--no-determinism-check] [--quiet]

  --seed S              run seed S (default: a fresh random seed); with --seeds, the first seed
  --nodes N             override the node count the seed picks (2 to 10000)
  --duration SECS       virtual seconds per run (default 60, at least 35; the last 30 are liveness)
  --seeds K             run K seeds: S, S+1, ..., S+K-1 (K at least 1)
  --seeds-for-secs T    run fresh random seeds until T wall seconds have passed (CI; T at least 1)
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
            "--no-determinism-check" => a.determinism = false,
            "--quiet" => a.quiet = true,
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if a.seeds.is_some() && a.budget.is_some() {
        return Err("--seeds and --seeds-for-secs/--soak exclude each other".into());
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

/// Runs one seed, twice if asked, and prints what happened. Whether it passed, and
/// how long after the faults ended its dkv nodes first held identical stores.
fn one(args: &Args, seed: u64, determinism: bool, verbose: bool) -> (bool, Option<Duration>) {
    let params = params(args, seed);
    if verbose {
        println!("{}", params.describe());
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
        println!("{}", report.summary());
        println!(
            "determinism     = {}",
            if determinism {
                det.trim()
            } else {
                "not checked"
            }
        );
    }
    print_outcome(&report, ok, &det, verbose);
    (ok, report.converged_after)
}

fn print_outcome(report: &RunReport, ok: bool, det: &str, verbose: bool) {
    let p = &report.params;
    if ok {
        let speed = report.simulated.as_secs_f64() / report.wall.as_secs_f64().max(1e-9);
        println!(
            "PASS seed {} nodes {} hash {:016x}{det}, {:.0} sim s/wall s",
            p.seed, p.nodes, report.trace_hash, speed
        );
        return;
    }
    if !verbose {
        println!("{}", p.describe());
        println!("{}", report.summary());
    }
    println!("FAIL seed {} hash {:016x}{det}", p.seed, report.trace_hash);
    for f in report.failures.iter().take(20) {
        println!("  {f}");
    }
    if report.failures.len() > 20 {
        println!("  ... and {} more", report.failures.len() - 20);
    }
    println!("reproduce: {}", p.reproduce());
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
        let mut state = args.seed.unwrap_or_else(fresh_seed);
        println!("random seeds for {budget:?}, seed stream from {state}");
        let (mut ran, mut failed) = (0u64, Vec::new());
        let mut slowest: Option<(Duration, u64)> = None;
        let (mut keyed, mut slowest_keyed): (u64, Option<(Duration, u64)>) = (0, None);
        let (mut keyed_hostile, mut named) = (0u64, 0u64);
        while started.elapsed() < budget {
            let seed = splitmix64(&mut state);
            let det = args.determinism && ran % 4 == 0;
            let (ok, converged) = one(&args, seed, det, false);
            if !ok {
                failed.push(seed);
            }
            let p = params(&args, seed);
            let is_keyed = p.keyed;
            keyed += u64::from(is_keyed);
            keyed_hostile += u64::from(is_keyed && !p.hostile.is_empty());
            named += u64::from(p.named);
            if let Some(c) = converged {
                if slowest.is_none_or(|(d, _)| c > d) {
                    slowest = Some((c, seed));
                }
                if is_keyed && slowest_keyed.is_none_or(|(d, _)| c > d) {
                    slowest_keyed = Some((c, seed));
                }
            }
            ran += 1;
        }
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
        if !one(&args, seed, args.determinism, verbose).0 {
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
