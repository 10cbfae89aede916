//! `dkv bench`: what dkv does on this machine, side by side with raw ZeroMQ
//! PUB/SUB sockets in the same process, as one table (or `--json`). By default
//! every dkv node runs in this process over the loopback broadcast address
//! (`dkv_mio::bench` measures); with `--socket`, replication is measured through
//! the control sockets of running nodes, and what cannot be done that way is
//! said in the table. A progress bar goes to stderr when it is a terminal.

use crate::client::Conn;
use crate::exit;
use crate::text::{display_key, json_str, quote};
use dkv_mio::bench::{self, BenchError, Workload};
use std::io::{self, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The most memory a workload may ask for, counted as `keys × (value + 16) ×
/// nodes`: every node holds every key, and the raw side may queue them all.
pub const MAX_WORKLOAD_BYTES: u64 = 1 << 30;

/// What the user asked for (each within clap's bounds; [`Options::check`]
/// checks them together).
pub struct Options {
    /// Keys per measurement.
    pub keys: usize,
    /// Bytes per value.
    pub value_bytes: usize,
    /// Peers replication is measured to, besides 1 (in this process).
    pub peers: usize,
    /// Writes in flight on the writing node.
    pub window: usize,
    /// The longest any one wait may take.
    pub timeout: Duration,
    /// Runs per figure; the median is printed.
    pub runs: usize,
    /// Control sockets of running nodes; empty: nodes in this process.
    pub sockets: Vec<PathBuf>,
    /// One JSON object instead of the table.
    pub json: bool,
}

impl Options {
    /// Refuses workloads too large for memory, and remote runs without a peer.
    pub fn check(&self) -> Result<(), String> {
        let nodes = self.peers as u64 + 1;
        let bytes = (self.keys as u64)
            .saturating_mul(self.value_bytes as u64 + 16)
            .saturating_mul(nodes);
        if bytes > MAX_WORKLOAD_BYTES {
            return Err(format!(
                "--keys {} x (--value-bytes {} + 16) x {nodes} nodes is {} MiB, over the {} MiB \
                 this benchmark may use",
                self.keys,
                self.value_bytes,
                bytes >> 20,
                MAX_WORKLOAD_BYTES >> 20
            ));
        }
        if self.sockets.len() == 1 {
            return Err(
                "--socket: give the control sockets of at least two running nodes \
                 (the first is written to, the others are watched for the keys)"
                    .into(),
            );
        }
        Ok(())
    }

    /// The most peers replication is measured to: through control sockets, the
    /// nodes watched.
    fn peers(&self) -> usize {
        if self.sockets.is_empty() {
            self.peers
        } else {
            self.sockets.len().saturating_sub(1)
        }
    }

    /// Writes in flight: through control sockets, at most [`MAX_SOCKET_WINDOW`].
    fn window(&self) -> usize {
        if self.sockets.is_empty() {
            self.window
        } else {
            self.window.min(MAX_SOCKET_WINDOW)
        }
    }

    fn workload(&self) -> Workload {
        Workload {
            keys: self.keys,
            value_bytes: self.value_bytes,
            window: self.window,
            timeout: self.timeout,
        }
    }
}

/// One row: a dkv figure, the raw one, and what they are in.
struct Row {
    /// Machine name, for `--json`.
    name: String,
    /// What a person reads.
    label: String,
    unit: &'static str,
    /// `None`: not measured (the note says why).
    dkv: Option<f64>,
    raw: Option<f64>,
    note: Option<String>,
}

impl Row {
    fn ratio(&self) -> Option<f64> {
        Some(self.dkv? / self.raw?).filter(|r| r.is_finite())
    }
}

/// The steps, for the progress bar.
struct Progress {
    state: Arc<Mutex<(usize, String)>>,
    done: Arc<AtomicBool>,
    drawer: Option<std::thread::JoinHandle<()>>,
}

impl Progress {
    /// A bar of `steps` steps, drawn on stderr after the first second if it is a
    /// terminal.
    fn start(steps: usize) -> Progress {
        let state = Arc::new(Mutex::new((0, String::new())));
        let done = Arc::new(AtomicBool::new(false));
        let drawer = io::stderr().is_terminal().then(|| {
            let (state, done) = (Arc::clone(&state), Arc::clone(&done));
            std::thread::spawn(move || {
                let started = Instant::now();
                let mut drawn = false;
                while !done.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(100));
                    if started.elapsed() < Duration::from_secs(1) {
                        continue;
                    }
                    let (step, what) = state.lock().map(|s| s.clone()).unwrap_or_default();
                    let filled = 20 * step / steps.max(1);
                    let _ = write!(
                        io::stderr(),
                        "\r\x1b[2K[{}{}] {step}/{steps} {what} ({:.0} s)",
                        "#".repeat(filled),
                        "-".repeat(20 - filled),
                        started.elapsed().as_secs_f64()
                    );
                    drawn = true;
                }
                if drawn {
                    let _ = write!(io::stderr(), "\r\x1b[2K");
                }
            })
        });
        Progress {
            state,
            done,
            drawer,
        }
    }

    /// Step `what` starts (the previous ones are done).
    fn step(&self, what: &str) {
        if let Ok(mut state) = self.state.lock() {
            if !state.1.is_empty() {
                state.0 += 1;
            }
            state.1 = what.to_string();
        }
    }

    fn finish(mut self) {
        self.done.store(true, Ordering::Relaxed);
        if let Some(drawer) = self.drawer.take() {
            let _ = drawer.join();
        }
    }
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Runs the benchmark and prints its table (or JSON).
pub fn run(options: &Options) -> ExitCode {
    if let Err(reason) = options.check() {
        eprintln!("dkv bench: {reason}");
        return ExitCode::from(exit::USAGE);
    }
    let load_before = bench::load();
    let remote = !options.sockets.is_empty();
    let peer_counts: Vec<usize> = if remote {
        vec![options.sockets.len() - 1]
    } else if options.peers == 1 {
        vec![1]
    } else {
        vec![1, options.peers]
    };
    let progress = Progress::start(steps(&peer_counts, options.runs));
    let started = Instant::now();
    let rows = rows(options, &peer_counts, &progress);
    progress.finish();
    let rows = match rows {
        Ok(rows) => rows,
        Err(err) => {
            eprintln!("dkv bench: {err}");
            let lost = err.0 == SOCKET_LOST;
            return ExitCode::from(if lost {
                exit::UNREACHABLE
            } else {
                exit::FAILED
            });
        }
    };
    let facts = Facts {
        mode: if remote { "sockets" } else { "loopback" },
        options,
        load_before,
        load_after: bench::load(),
        seconds: started.elapsed().as_secs_f64(),
    };
    let printed = if options.json {
        print_json(&facts, &rows)
    } else {
        print_table(&facts, &rows)
    };
    match printed {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) if err.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("dkv bench: cannot write the results: {err}");
            ExitCode::from(exit::FAILED)
        }
    }
}

/// Runs `dkv` (unless `None`) and `raw` `runs` times each, alternately, and
/// returns the median of each of their figures.
fn interleaved(
    runs: usize,
    progress: &Progress,
    what: &str,
    mut dkv: Option<&mut dyn FnMut() -> Result<Vec<f64>, BenchError>>,
    raw: &mut dyn FnMut() -> Result<Vec<f64>, BenchError>,
) -> Result<(Option<Vec<f64>>, Vec<f64>), BenchError> {
    let (mut dkv_runs, mut raw_runs) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        progress.step(&format!("{what} (dkv)"));
        if let Some(dkv) = dkv.as_mut() {
            dkv_runs.push(dkv()?);
        }
        progress.step(&format!("{what} (raw)"));
        raw_runs.push(raw()?);
    }
    let medians = |runs: &[Vec<f64>]| {
        let figures = runs.first().map_or(0, Vec::len);
        (0..figures)
            .map(|i| bench::median(&mut runs.iter().map(|run| run[i]).collect::<Vec<_>>()))
            .collect::<Vec<f64>>()
    };
    let dkv = dkv.is_some().then(|| medians(&dkv_runs));
    Ok((dkv, medians(&raw_runs)))
}

/// Measurements per run: replication per peer count, then gets, bootstrap and
/// reconciliation; each has a dkv and a raw step.
fn steps(peer_counts: &[usize], runs: usize) -> usize {
    2 * runs * (peer_counts.len() + 3)
}

/// Every row: for each, the dkv figure (nodes in this process, or through the
/// control sockets where that can be measured) and the raw one, each the median
/// of `--runs` runs taken alternately.
fn rows(
    options: &Options,
    peer_counts: &[usize],
    progress: &Progress,
) -> Result<Vec<Row>, BenchError> {
    let workload = options.workload();
    let config = bench::loopback_config()?;
    let remote = !options.sockets.is_empty();
    let runs = options.runs;
    let not_remote = |why: &str| Some(format!("not measured through sockets: {why}"));
    let mut rows = Vec::new();
    for &peers in peer_counts {
        let plural = if peers == 1 { "" } else { "s" };
        let (dkv, raw) = interleaved(
            runs,
            progress,
            &format!("replication to {peers}"),
            Some(&mut || {
                Ok(vec![if remote {
                    remote_replication(options)?
                } else {
                    bench::dkv_replication(&config, &workload, peers)?.rate
                }])
            }),
            &mut || Ok(vec![bench::raw_replication(&workload, peers)?]),
        )?;
        rows.push(Row {
            name: format!("replication_{peers}_peer{plural}"),
            label: format!("replication to {peers} peer{plural}"),
            unit: "sets/s",
            dkv: dkv.map(|figures| figures[0]),
            raw: Some(raw[0]),
            note: remote.then(|| "through the control socket, one request per set".into()),
        });
    }
    let mut unanswered = 0;
    let mut dkv_gets = || {
        let latencies = bench::dkv_remote_get(&config, &workload)?;
        unanswered += latencies.unanswered;
        Ok(vec![
            micros(latencies.percentile(50)),
            micros(latencies.percentile(99)),
        ])
    };
    let (dkv, raw) = interleaved(
        runs,
        progress,
        "remote gets",
        (!remote).then_some(&mut dkv_gets as &mut dyn FnMut() -> _),
        &mut || {
            let latencies = bench::raw_remote_get(&workload)?;
            Ok(vec![
                micros(latencies.percentile(50)),
                micros(latencies.percentile(99)),
            ])
        },
    )?;
    let note = if remote {
        not_remote("every node holds every key")
    } else {
        (unanswered > 0).then(|| format!("{unanswered} unanswered"))
    };
    for (i, p) in [50, 99].into_iter().enumerate() {
        rows.push(Row {
            name: format!("remote_get_p{p}"),
            label: format!(
                "remote get p{p} ({} gets)",
                bench::get_samples(options.keys)
            ),
            unit: "µs",
            dkv: dkv.as_ref().map(|figures| figures[i]),
            raw: Some(raw[i]),
            note: note.clone(),
        });
    }
    let holder = if remote {
        None
    } else {
        Some(bench::dkv_holder(&config, &workload)?)
    };
    let mut dkv_bootstrap = || match &holder {
        Some(holder) => Ok(vec![millis(bench::dkv_bootstrap(
            holder,
            &config,
            workload.timeout,
        )?)]),
        None => Err(BenchError("no node holds the keys".into())),
    };
    let (dkv, raw) = interleaved(
        runs,
        progress,
        "bootstrap",
        (!remote).then_some(&mut dkv_bootstrap as &mut dyn FnMut() -> _),
        &mut || Ok(vec![millis(bench::raw_bootstrap(&workload)?)]),
    )?;
    if let Some(holder) = holder {
        holder.shutdown()?;
    }
    rows.push(Row {
        name: "bootstrap".into(),
        label: format!("bootstrap of {} keys", options.keys),
        unit: "ms",
        dkv: dkv.map(|figures| figures[0]),
        raw: Some(raw[0]),
        note: remote
            .then(|| not_remote("needs a node started here"))
            .flatten(),
    });
    let mut dkv_reconciliation =
        || Ok(vec![millis(bench::dkv_reconciliation(&config, &workload)?)]);
    let (dkv, raw) = interleaved(
        runs,
        progress,
        "reconciliation",
        (!remote).then_some(&mut dkv_reconciliation as &mut dyn FnMut() -> _),
        &mut || Ok(vec![millis(bench::raw_reconciliation(&workload)?)]),
    )?;
    let extra = bench::partition_writes(options.keys);
    rows.push(Row {
        name: "reconciliation".into(),
        label: format!(
            "reconciliation: {} shared + {extra} + {extra} keys",
            options.keys
        ),
        unit: "ms",
        dkv: dkv.map(|figures| figures[0]),
        raw: Some(raw[0]),
        note: remote
            .then(|| not_remote("needs a partition made here"))
            .flatten(),
    });
    Ok(rows)
}

/// A control-socket failure: its reason is already on stderr.
/// (The client reports every such failure as [`exit::UNREACHABLE`].)
fn socket_failed(_code: ExitCode) -> BenchError {
    BenchError(SOCKET_LOST.into())
}

/// The text of [`socket_failed`]'s error, which exits [`exit::UNREACHABLE`]
/// as the other client commands do.
const SOCKET_LOST: &str = "a control socket could not be reached (see above)";

/// The `keys=N` field of a node's `status` reply.
fn remote_keys(conn: &mut Conn) -> Result<usize, BenchError> {
    let reply = conn
        .request("status", Some(Duration::from_secs(30)))
        .map_err(socket_failed)?;
    reply
        .split(' ')
        .find_map(|pair| pair.strip_prefix("keys="))
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| BenchError(format!("the node's status has no key count: {reply:?}")))
}

/// The most requests in flight on one control socket. Each unread reply holds a
/// kernel buffer of its own (about 768 bytes for 3), so about 280 unread replies
/// fill the node's default 208 KiB send buffer: the node then stops reading
/// requests while this side is still writing them, and both wait for ever.
const MAX_SOCKET_WINDOW: usize = 128;

/// Sends `lines` through `conn` with up to `window` replies outstanding; every
/// reply must be `OK`.
fn pipelined(
    conn: &mut Conn,
    lines: impl Iterator<Item = String>,
    window: usize,
) -> Result<(), BenchError> {
    let window = window.max(1);
    conn.set_timeout(Some(Duration::from_secs(30)))
        .map_err(socket_failed)?;
    let mut outstanding = 0;
    let check = |conn: &mut Conn| -> Result<(), BenchError> {
        let reply = conn.line().map_err(socket_failed)?;
        if reply == "OK" {
            Ok(())
        } else {
            Err(BenchError(format!("the node refused a write: {reply}")))
        }
    };
    for line in lines {
        conn.send(&line).map_err(socket_failed)?;
        outstanding += 1;
        if outstanding >= window {
            check(conn)?;
            outstanding -= 1;
        }
    }
    for _ in 0..outstanding {
        check(conn)?;
    }
    Ok(())
}

/// Replication through control sockets: keys written through the first
/// node's socket (under a fresh `bench/` prefix), watched arriving at the others
/// (their key counts); sets per second until all hold every key. The keys are
/// deleted after.
fn remote_replication(options: &Options) -> Result<f64, BenchError> {
    let mut conns = options
        .sockets
        .iter()
        .map(|path| Conn::open(path).map_err(socket_failed))
        .collect::<Result<Vec<_>, _>>()?;
    let before = conns
        .iter_mut()
        .map(remote_keys)
        .collect::<Result<Vec<_>, _>>()?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let prefix = format!("bench/{}-{nanos:09}/", std::process::id());
    let key = |i: usize| display_key(&format!("{prefix}{i:010}"));
    let value = quote(&options.workload().value());
    let start = Instant::now();
    let Some((writer, watched)) = conns.split_first_mut() else {
        return Err(BenchError("no control socket given".into()));
    };
    pipelined(
        writer,
        (0..options.keys).map(|i| format!("set {} {value}", key(i))),
        options.window(),
    )?;
    bench::wait_for(
        "every watched node to hold every key",
        options.timeout,
        Duration::from_millis(5),
        || {
            for (conn, before) in watched.iter_mut().zip(&before[1..]) {
                if remote_keys(conn)? < before + options.keys {
                    return Ok(false);
                }
            }
            Ok(true)
        },
    )?;
    let rate = options.keys as f64 / start.elapsed().as_secs_f64();
    pipelined(
        writer,
        (0..options.keys).map(|i| format!("del {}", key(i))),
        options.window(),
    )?;
    Ok(rate)
}

/// What a run was, for the header.
struct Facts<'a> {
    mode: &'static str,
    options: &'a Options,
    load_before: String,
    load_after: String,
    seconds: f64,
}

/// A figure: whole, with thousands separators, from 100; three significant
/// digits below.
fn figure(value: Option<f64>) -> String {
    let Some(value) = value else {
        return "n/a".into();
    };
    if value < 100.0 {
        // Three significant digits.
        let decimals = if value < 1.0 {
            3
        } else if value < 10.0 {
            2
        } else {
            1
        };
        return format!("{value:.decimals$}");
    }
    let digits = format!("{value:.0}");
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn print_table(facts: &Facts, rows: &[Row]) -> io::Result<()> {
    let o = facts.options;
    let mut out = io::stdout().lock();
    writeln!(
        out,
        "dkv bench {}: {} keys, {}-byte values, {} writes in flight, {}; {}; {:.1} s, load \
         {} -> {}",
        env!("CARGO_PKG_VERSION"),
        o.keys,
        o.value_bytes,
        o.window(),
        if o.runs == 1 {
            "1 run".to_string()
        } else {
            format!("medians of {} runs", o.runs)
        },
        if facts.mode == "loopback" {
            "nodes in this process over 127.255.255.255".to_string()
        } else {
            format!("nodes at {} control sockets", o.sockets.len())
        },
        facts.seconds,
        facts.load_before,
        facts.load_after
    )?;
    let header = ["measurement", "unit", "dkv", "raw libzmq", "dkv/raw"];
    let cells: Vec<[String; 5]> = rows
        .iter()
        .map(|row| {
            [
                row.label.clone(),
                row.unit.to_string(),
                figure(row.dkv),
                figure(row.raw),
                row.ratio().map_or("n/a".into(), |r| format!("{r:.2}")),
            ]
        })
        .collect();
    let width = |i: usize| {
        cells
            .iter()
            .map(|c| c[i].chars().count())
            .chain([header[i].len()])
            .max()
            .unwrap_or(0)
    };
    let widths: Vec<usize> = (0..5).map(width).collect();
    let line = |cells: [&str; 5]| {
        let mut s = String::from("|");
        for (i, cell) in cells.iter().enumerate() {
            let pad = widths[i] - cell.chars().count();
            if i >= 2 {
                s.push_str(&format!(" {}{cell} |", " ".repeat(pad)));
            } else {
                s.push_str(&format!(" {cell}{} |", " ".repeat(pad)));
            }
        }
        s
    };
    writeln!(out, "{}", line(header))?;
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    writeln!(
        out,
        "{}",
        line([&rule[0], &rule[1], &rule[2], &rule[3], &rule[4]])
    )?;
    for c in &cells {
        writeln!(out, "{}", line([&c[0], &c[1], &c[2], &c[3], &c[4]]))?;
    }
    writeln!(
        out,
        "dkv/raw: for sets/s above 1 is faster than raw libzmq; for µs and ms below 1 is."
    )?;
    for row in rows {
        if let Some(note) = &row.note {
            writeln!(out, "{}: {note}", row.label)?;
        }
    }
    writeln!(out, "How each figure is made (raw: plain ZeroMQ PUB/SUB over loopback TCP in this process, no dkv):")?;
    let extra = bench::partition_writes(o.keys);
    for explanation in [
        "replication: one node writes every key (in-process: set_pending; through --socket: requests on its control socket; bounded in flight); until every peer holds every key. Raw: one 3-frame message (set, key, value) per set to that many SUB sockets, until all arrived.".to_string(),
        "remote get: gets of keys only a peer holds (the peer answers each); raw: a question and its answer over two PUB/SUB pairs, one at a time.".to_string(),
        "bootstrap: a joiner starts next to a node holding every key; until it holds them all. Raw: a SUB socket connects and one message per key streams to it.".to_string(),
        format!("reconciliation: two nodes share {} keys; one restarts from its data dir on another beacon port (the partition) and each side writes {extra} keys of its own; then it restarts on the shared port, and the time runs until both hold the union (it includes that start from disk). Raw: each side streams its {extra} keys to the other, the differences known in advance.", o.keys),
    ] {
        if facts.mode == "loopback" || explanation.starts_with("replication") {
            writeln!(out, "- {explanation}")?;
        }
    }
    out.flush()
}

fn json_number(value: Option<f64>) -> String {
    value
        .filter(|v| v.is_finite())
        .map_or("null".into(), |v| format!("{v:.3}"))
}

fn print_json(facts: &Facts, rows: &[Row]) -> io::Result<()> {
    let o = facts.options;
    let results: Vec<String> = rows
        .iter()
        .map(|row| {
            format!(
                "{{\"name\":{},\"label\":{},\"unit\":{},\"dkv\":{},\"raw\":{},\"ratio\":{},\"note\":{}}}",
                json_str(&row.name),
                json_str(&row.label),
                json_str(row.unit),
                json_number(row.dkv),
                json_number(row.raw),
                json_number(row.ratio()),
                row.note.as_deref().map_or("null".into(), json_str)
            )
        })
        .collect();
    let mut out = io::stdout().lock();
    writeln!(
        out,
        "{{\"version\":{},\"mode\":{},\"keys\":{},\"value_bytes\":{},\"peers\":{},\"window\":{},\
         \"runs\":{},\"seconds\":{:.3},\"load_before\":{},\"load_after\":{},\"results\":[{}]}}",
        json_str(env!("CARGO_PKG_VERSION")),
        json_str(facts.mode),
        o.keys,
        o.value_bytes,
        o.peers(),
        o.window(),
        o.runs,
        facts.seconds,
        json_str(&facts.load_before),
        json_str(&facts.load_after),
        results.join(",")
    )?;
    out.flush()
}
