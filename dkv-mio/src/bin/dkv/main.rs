//! The `dkv` command line: `dkv node` runs one node driven by commands on stdin
//! (a REPL on a terminal, plain lines through a pipe); `dkv demo` tells the story
//! of a small cluster on this host.

mod demo;

use clap::{Args, Parser, Subcommand};
use dkv_mio::shell;
use dkv_mio::{Config, Dkv, Error, SyncPolicy, DEFAULT_BEACON_PORT};
use std::io::{self, BufRead, IsTerminal, Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::process::ExitCode;
use std::time::Duration;
use tracing_subscriber::filter::LevelFilter;

/// dkv: a peer-to-peer replicated key-value store for a LAN.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run one node. Reads one command per line from stdin and prints exactly one
    /// line per command on stdout (type `help`). Logs go to stderr.
    Node(NodeArgs),
    /// Run a small cluster in this process over the loopback broadcast address and
    /// narrate discovery, a replicated set, a replicated delete, a remote get, a late
    /// joiner's bootstrap and a peer going down. Needs no root and no network.
    Demo(DemoArgs),
}

#[derive(Args)]
struct NodeArgs {
    /// Broadcast address beacons are sent to: IP, or IP:PORT (then PORT is the
    /// beacon port). Default 255.255.255.255.
    #[arg(long, value_name = "ADDR")]
    beacon_addr: Option<String>,
    /// UDP port beacons are sent to and received on.
    #[arg(long, value_name = "PORT")]
    beacon_port: Option<u16>,
    /// Interface address to use: the PUB socket binds it only and it is the node's
    /// local address. Default: every interface; the local address is the one
    /// traffic toward the broadcast address leaves from.
    #[arg(long, value_name = "IP")]
    bind: Option<Ipv4Addr>,
    /// Time between beacons, in ms (prototype: 1000).
    #[arg(long, value_name = "MS", value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
    beacon_interval_ms: Option<u64>,
    /// A peer silent this long is down, in ms (prototype: 4000).
    #[arg(long, value_name = "MS", value_parser = clap::value_parser!(u64).range(1..=86_400_000))]
    peer_timeout_ms: Option<u64>,
    /// Default `get` timeout, in ms (prototype: 100).
    #[arg(long, value_name = "MS", value_parser = clap::value_parser!(u64).range(0..=86_400_000))]
    get_timeout_ms: Option<u64>,
    /// Wait after net up before bootstrap lists keys, in ms. Default: 2 beacon
    /// intervals.
    #[arg(long, value_name = "MS", value_parser = clap::value_parser!(u64).range(0..=86_400_000))]
    bootstrap_delay_ms: Option<u64>,
    /// Wait after the last bootstrap key before bootstrap is done, in ms. Default:
    /// 2 beacon intervals.
    #[arg(long, value_name = "MS", value_parser = clap::value_parser!(u64).range(0..=86_400_000))]
    bootstrap_settle_ms: Option<u64>,
    /// Log level on stderr: off, error, warn, info, debug or trace.
    #[arg(long, value_name = "LEVEL", default_value = "warn")]
    log: LevelFilter,
    /// Keep the node's entries on disk in DIR (created if missing; one node per
    /// dir); a restart holds what the node held. Default: in memory only.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<std::path::PathBuf>,
    /// With --data-dir, how writes share fsyncs: `group` (writes that arrive while
    /// a commit runs share the next one), `group:MS` (also wait MS ms for more to
    /// join) or `always` (one fsync per write). Under each, OK is printed only once
    /// the write is on disk.
    #[arg(long, value_name = "POLICY", default_value = "group")]
    sync: SyncPolicy,
}

#[derive(Args)]
struct DemoArgs {
    /// Nodes in the cluster, the late joiner included.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(3..=12))]
    nodes: u16,
    /// Log level on stderr: off, error, warn, info, debug or trace.
    #[arg(long, value_name = "LEVEL", default_value = "warn")]
    log: LevelFilter,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Cmd::Node(args) => {
            init_logs(args.log);
            match node_config(&args) {
                Ok(config) => run_node(config),
                Err(reason) => {
                    eprintln!("dkv node: {reason}");
                    ExitCode::from(2)
                }
            }
        }
        Cmd::Demo(args) => {
            init_logs(args.log);
            demo::run(usize::from(args.nodes))
        }
    }
}

fn init_logs(level: LevelFilter) {
    tracing_subscriber::fmt()
        .with_writer(io::stderr)
        .with_max_level(level)
        .with_ansi(io::stderr().is_terminal())
        .init();
}

fn node_config(args: &NodeArgs) -> Result<Config, String> {
    let mut config = Config::default();
    if let Some(addr) = &args.beacon_addr {
        if let Ok(ip) = addr.parse::<Ipv4Addr>() {
            config.broadcast_ip = ip;
        } else if let Ok(sock) = addr.parse::<SocketAddrV4>() {
            config.broadcast_ip = *sock.ip();
            config.beacon_port = sock.port();
        } else {
            return Err(format!(
                "--beacon-addr {addr:?} is not an IPv4 address or IPv4:PORT"
            ));
        }
    }
    if let Some(port) = args.beacon_port {
        config.beacon_port = port;
    }
    if config.beacon_port == 0 {
        return Err(format!(
            "the beacon port must be 1..=65535 (default {DEFAULT_BEACON_PORT})"
        ));
    }
    config.bind = args.bind;
    config.data_dir = args.data_dir.clone();
    config.sync = args.sync;
    let ms = Duration::from_millis;
    let t = &mut config.timings;
    if let Some(v) = args.beacon_interval_ms {
        t.beacon_interval = ms(v);
        // The prototype waits 2 beacon intervals; keep that ratio. (Cannot
        // overflow: clap caps the interval at an hour.)
        t.bootstrap_delay = 2 * t.beacon_interval;
        t.bootstrap_settle = 2 * t.beacon_interval;
    }
    if let Some(v) = args.peer_timeout_ms {
        t.peer_timeout = ms(v);
    }
    if let Some(v) = args.get_timeout_ms {
        t.get_timeout = ms(v);
    }
    if let Some(v) = args.bootstrap_delay_ms {
        t.bootstrap_delay = ms(v);
    }
    if let Some(v) = args.bootstrap_settle_ms {
        t.bootstrap_settle = ms(v);
    }
    t.validate()
        .map_err(|err| format!("invalid timings: {err}"))?;
    Ok(config)
}

fn run_node(config: Config) -> ExitCode {
    let dkv = match Dkv::start(config) {
        Ok(dkv) => dkv,
        Err(err) => {
            eprintln!("dkv node: cannot start: {err}");
            return start_failure(&err);
        }
    };
    tracing::info!(id = %dkv.id(), pub_port = dkv.pub_port(), "node running");
    let result = if io::stdin().is_terminal() {
        repl(&dkv)
    } else {
        pipe(&dkv)
    };
    let _ = dkv.shutdown();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) if err.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("dkv node: {err}");
            ExitCode::FAILURE
        }
    }
}

/// The exit status of a node that could not start: a data dir in use (3), from a
/// newer dkv (4), corrupt (5) or unusable (6) each has its own; else 1.
fn start_failure(err: &Error) -> ExitCode {
    ExitCode::from(match err {
        Error::DataDirLocked { .. } => 3,
        Error::DataDirNewer { .. } => 4,
        Error::DataDirCorrupt { .. } => 5,
        Error::DataDir { .. } => 6,
        _ => 1,
    })
}

/// The reply to an input line that is not UTF-8.
const NOT_UTF8: &str = "ERR the line is not valid UTF-8";

/// Longest accepted input line; longer lines are answered with `ERR`.
const MAX_LINE: usize = 16 << 20;

/// Plain line reading for pipes: one reply line per command, flushed at once.
fn pipe(dkv: &Dkv) -> io::Result<()> {
    let mut input = io::stdin().lock();
    let mut out = io::stdout().lock();
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let read = (&mut input)
            .take(MAX_LINE as u64)
            .read_until(b'\n', &mut buf)?;
        if read == 0 {
            return Ok(()); // end of input quits
        }
        if buf.len() >= MAX_LINE && buf.last() != Some(&b'\n') {
            skip_line(&mut input)?;
            writeln!(out, "ERR line longer than {MAX_LINE} bytes")?;
            out.flush()?;
            continue;
        }
        let (reply, quit) = match std::str::from_utf8(&buf) {
            Ok(line) => shell::respond(dkv, line),
            Err(_) => (Some(NOT_UTF8.to_string()), false),
        };
        if let Some(reply) = reply {
            writeln!(out, "{reply}")?;
            out.flush()?;
        }
        if quit {
            return Ok(());
        }
    }
}

fn skip_line(input: &mut impl BufRead) -> io::Result<()> {
    loop {
        let chunk = input.fill_buf()?;
        if chunk.is_empty() {
            return Ok(());
        }
        match chunk.iter().position(|&b| b == b'\n') {
            Some(at) => {
                input.consume(at + 1); // at < chunk.len(): the newline is consumed too
                return Ok(());
            }
            None => {
                let len = chunk.len();
                input.consume(len);
            }
        }
    }
}

/// A friendly REPL with history for terminals. Replies are written, not
/// `println!`ed, so a closed stdout ends the node quietly instead of a panic.
fn repl(dkv: &Dkv) -> io::Result<()> {
    use rustyline::error::ReadlineError;
    let mut editor = match rustyline::DefaultEditor::new() {
        Ok(editor) => editor,
        Err(err) => {
            tracing::warn!(%err, "no line editor; reading plain lines");
            return pipe(dkv);
        }
    };
    let mut out = io::stdout();
    writeln!(
        out,
        "dkv node {} on PUB port {}, beacons on port {}. Type help; quit or Ctrl-D to leave.",
        dkv.id(),
        dkv.pub_port(),
        dkv.beacon_port()
    )?;
    loop {
        match editor.readline("dkv> ") {
            Ok(line) => {
                if !line.trim().is_empty() {
                    let _ = editor.add_history_entry(line.as_str());
                }
                let (reply, quit) = shell::respond(dkv, &line);
                if let Some(reply) = reply {
                    writeln!(out, "{reply}")?;
                }
                if quit {
                    return Ok(());
                }
            }
            Err(ReadlineError::Interrupted) => {
                writeln!(out, "(Ctrl-C: type quit or Ctrl-D to leave)")?;
            }
            Err(ReadlineError::Eof) => return Ok(()),
            // Typed bytes that are not UTF-8: a bad line, not the end of input.
            Err(ReadlineError::Io(err)) if err.kind() == io::ErrorKind::InvalidData => {
                writeln!(out, "{NOT_UTF8}")?;
            }
            Err(err) => return Err(io::Error::other(err)),
        }
    }
}
