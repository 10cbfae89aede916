//! The `dkv` command line: `dkv node` runs one node as a service (a control
//! socket, stdin commands, graceful stop on SIGINT/SIGTERM); `dkv get`, `set`,
//! `del`, `keys`, `scan`, `peers`, `stats`, `status` and `watch` talk to a running
//! node through its control socket; `dkv demo` tells the story of a small cluster
//! on this host; `dkv bench` measures dkv beside raw ZeroMQ on this machine.

mod bench;
mod client;
mod demo;
mod logs;
mod node;
mod server;
mod shell;
mod socket;
mod text;

use clap::{Args, Parser, Subcommand};
use dkv_mio::{Config, SyncPolicy, DEFAULT_BEACON_PORT};
use std::ffi::OsString;
use std::io::Read;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use tracing_subscriber::filter::LevelFilter;

/// The binary's allocator. Replication hands buffers between threads (keys made
/// by the writing thread are freed by the node's loop thread, frames received by
/// ZeroMQ's thread are freed by the loop's): glibc's malloc spent a fifth of the
/// loop threads' time in its slow paths on that (consolidating and re-sorting
/// freed chunks); mimalloc frees across threads cheaply.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Exit statuses, the same for every command.
pub mod exit {
    /// Done; for `get`, found.
    #[allow(dead_code)]
    pub const OK: u8 = 0;
    /// `get`: the key is absent or deleted.
    pub const NOT_FOUND: u8 = 1;
    /// Bad usage: an unknown option, a bad argument (also clap's own status).
    pub const USAGE: u8 = 2;
    /// No node could be reached on the control socket, or it went away.
    pub const UNREACHABLE: u8 = 3;
    /// The node refused the request, or `dkv node` could not start.
    pub const FAILED: u8 = 4;
    /// `dkv node --socket PATH`: another live node serves PATH.
    pub const SOCKET_HELD: u8 = 5;
    /// `dkv node --data-dir DIR`: another process (a live node) holds DIR.
    pub const DATA_DIR_LOCKED: u8 = 6;
    /// `dkv node --data-dir DIR`: DIR was written by a newer dkv; left untouched.
    pub const DATA_DIR_NEWER: u8 = 7;
    /// `dkv node --data-dir DIR`: DIR's file is damaged or not dkv's; left untouched.
    pub const DATA_DIR_CORRUPT: u8 = 8;
    /// `dkv node --data-dir DIR`: DIR cannot be created, opened or read.
    pub const DATA_DIR_UNUSABLE: u8 = 9;

    /// The status of a `dkv node` that could not start: each data dir refusal has
    /// its own, anything else is [`FAILED`].
    pub fn start_failure(err: &dkv_mio::Error) -> u8 {
        use dkv_mio::Error;
        match err {
            Error::DataDirLocked { .. } => DATA_DIR_LOCKED,
            Error::DataDirNewer { .. } => DATA_DIR_NEWER,
            Error::DataDirCorrupt { .. } => DATA_DIR_CORRUPT,
            Error::DataDir { .. } => DATA_DIR_UNUSABLE,
            _ => FAILED,
        }
    }
}

/// The reply to an input line that is not UTF-8.
pub const NOT_UTF8: &str = "the line is not valid UTF-8 (type odd bytes as \"\\xNN\")";

const ABOUT: &str = "dkv: a peer-to-peer replicated key-value store for a LAN";

const LONG_ABOUT: &str = "dkv: a peer-to-peer replicated key-value store for a LAN.

Run `dkv node` on each machine of a LAN: nodes find each other by UDP broadcast \
(port 5005) and replicate every write. Then, from any shell on a machine running a \
node, read and write through the node's control socket:

    dkv set color blue
    dkv get color            # prints blue; exit 1 if absent
    dkv watch                # one line per change, until Ctrl-C

Exit statuses: 0 done or found, 1 not found, 2 bad usage, 3 cannot reach the node, \
4 the node refused or could not start, 5 the --socket path is served by another node; \
`dkv node --data-dir DIR` that cannot start on DIR: 6 DIR is held by another process, \
7 DIR is from a newer dkv, 8 DIR is corrupt, 9 DIR cannot be used (DIR is left untouched).";

/// dkv: a peer-to-peer replicated key-value store for a LAN.
#[derive(Parser)]
#[command(name = "dkv", version, about = ABOUT, long_about = LONG_ABOUT)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run one node (as a service: it keeps running until SIGINT or SIGTERM).
    ///
    /// Serves a control socket for the other commands. Also reads one command per
    /// line from stdin and prints exactly one line per command (a REPL on a
    /// terminal; type `help`); the end of piped input stops it, while a stdin of
    /// /dev/null or closed does not. Logs go to stderr.
    Node(Box<NodeArgs>),
    /// Print a key's value (raw bytes; a newline is added only on a terminal).
    /// Exit 1 if the key is absent or deleted.
    Get {
        /// The key.
        key: String,
        /// Ask peers for this long when the node does not hold the key [default:
        /// the node's get timeout, 100 ms].
        #[arg(long, value_name = "MS", value_parser = clap::value_parser!(u64).range(0..=86_400_000))]
        timeout: Option<u64>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Set a key; without VALUE the value is read from stdin (any bytes).
    Set {
        /// The key.
        key: String,
        /// The value [default: all of stdin].
        value: Option<OsString>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Delete a key (replicated like a set).
    Del {
        /// The key.
        key: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// List the keys held, one per line (quoted when they hold spaces or odd
    /// characters).
    Keys {
        /// Only keys starting with this.
        prefix: Option<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// List keys and values under a prefix, one `KEY VALUE` per line.
    Scan {
        /// Only keys starting with this [default: every key].
        prefix: Option<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// List the node's live peers, one `ip:port` per line.
    Peers {
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Show every counter of the node, one per line.
    Stats {
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Show the node's identity, uptime, peers, keys, and bootstrap and sync state.
    Status {
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Print one line per change (local or from peers, set or delete) until
    /// interrupted: `set KEY VALUE VERSION local|remote`, `del KEY VERSION
    /// local|remote`, or `lost N` when this client fell behind.
    Watch {
        /// Only keys starting with this.
        prefix: Option<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Run a small cluster in this process over the loopback broadcast address and
    /// narrate discovery, a replicated set, a replicated delete, a remote get, a late
    /// joiner's bootstrap and a peer going down. Needs no root and no network.
    Demo(DemoArgs),
    /// Measure replication, remote gets, bootstrap and reconciliation on this
    /// machine, side by side with raw ZeroMQ PUB/SUB sockets in the same process.
    ///
    /// By default every node runs in this process over the loopback broadcast
    /// address (no root, no network). With --socket (twice or more), keys are
    /// written through the first running node's control socket and watched
    /// arriving at the others (under a fresh `bench/` prefix, deleted after).
    /// Prints a table with the dkv/raw ratios, or one JSON object with --json.
    Bench(BenchArgs),
    /// Print a fresh key for `dkv node --key-file`: 64 hex digits from the OS's
    /// randomness. Put it in a file only its owner can read (chmod 600).
    Keygen,
}

#[derive(Args)]
struct ClientArgs {
    /// The node's control socket [default: the one of the node on --beacon-port:
    /// $XDG_RUNTIME_DIR/dkv-PORT.sock, else /tmp/dkv-UID/dkv-PORT.sock].
    #[arg(long, value_name = "PATH", env = "DKV_SOCKET")]
    socket: Option<PathBuf>,
    /// The beacon port of the node to talk to, to find its default socket.
    #[arg(long, value_name = "PORT", default_value_t = DEFAULT_BEACON_PORT)]
    beacon_port: u16,
    /// Print the node's reply as JSON (one object or array per line).
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct NodeArgs {
    /// Broadcast address beacons are sent to: IP, or IP:PORT (then PORT is the
    /// beacon port) [default: 255.255.255.255].
    #[arg(long, value_name = "ADDR")]
    beacon_addr: Option<String>,
    /// UDP port beacons are sent to and received on [default: 5005].
    #[arg(long, value_name = "PORT")]
    beacon_port: Option<u16>,
    /// Interface address to use: the PUB socket binds it only and it is the node's
    /// local address [default: every interface; the local address is the one
    /// traffic toward the broadcast address leaves from].
    #[arg(long, value_name = "IP")]
    bind: Option<Ipv4Addr>,
    /// Control socket path [default: $XDG_RUNTIME_DIR/dkv-PORT.sock, else
    /// /tmp/dkv-UID/dkv-PORT.sock, PORT being the beacon port; if another node
    /// serves the default path, this one runs without a socket]. A PATH another
    /// live node serves is an error (exit 5).
    #[arg(
        long,
        value_name = "PATH",
        env = "DKV_SOCKET",
        conflicts_with = "no_socket"
    )]
    socket: Option<PathBuf>,
    /// Serve no control socket.
    #[arg(long)]
    no_socket: bool,
    /// Time between beacons, in ms [default: 1000].
    #[arg(long, value_name = "MS", value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
    beacon_interval_ms: Option<u64>,
    /// A peer silent this long is down, in ms [default: 4000].
    #[arg(long, value_name = "MS", value_parser = clap::value_parser!(u64).range(1..=86_400_000))]
    peer_timeout_ms: Option<u64>,
    /// Default `get` timeout, in ms [default: 100].
    #[arg(long, value_name = "MS", value_parser = clap::value_parser!(u64).range(0..=86_400_000))]
    get_timeout_ms: Option<u64>,
    /// Wait after net up before bootstrap, in ms [default: 2 beacon intervals].
    #[arg(long, value_name = "MS", value_parser = clap::value_parser!(u64).range(0..=86_400_000))]
    bootstrap_delay_ms: Option<u64>,
    /// Wait after the last bootstrap key before bootstrap is done, in ms [default:
    /// 2 beacon intervals].
    #[arg(long, value_name = "MS", value_parser = clap::value_parser!(u64).range(0..=86_400_000))]
    bootstrap_settle_ms: Option<u64>,
    /// The largest value a write may carry and a peer's message may hold, in
    /// bytes [default: 1048576]. Run the same limits on every node. The message
    /// limit grows with it (key + value + 64 KiB).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=(1 << 30)))]
    max_value_bytes: Option<u64>,
    /// The most peers this node keeps at once [default: 256]; its descriptor
    /// budget and subscriber cap (N + 16) follow.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=65_536))]
    max_peers: Option<u64>,
    /// Cut a subscriber that leaves this node's data unacknowledged this long, in
    /// ms [default: the peer timeout].
    #[arg(long, value_name = "MS", value_parser = clap::value_parser!(u64).range(1..=86_400_000))]
    stall_timeout_ms: Option<u64>,
    /// Log level on stderr: off, error, warn, info, debug or trace.
    #[arg(long, value_name = "LEVEL", default_value = "warn")]
    log: LevelFilter,
    /// Keep the node's entries on disk in DIR (created if missing; one node per
    /// dir); a restart holds what the node held. Default: in memory only.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// With --data-dir, how writes share fsyncs: `group` (writes that arrive while
    /// a commit runs share the next one), `group:MS` (also wait MS ms for more to
    /// join) or `always` (one fsync per write). Under each, OK is printed only once
    /// the write is on disk.
    #[arg(long, value_name = "POLICY", default_value = "group")]
    sync: SyncPolicy,
    /// Join only nodes of this cluster (at most 64 bytes). A named cluster never
    /// peers with other clusters or with prototype nodes; a guard against mistakes,
    /// not attackers (use --key-file for that) [default: the prototype's open cluster].
    #[arg(long, value_name = "NAME", env = "DKV_CLUSTER")]
    cluster: Option<String>,
    /// Seal everything with the keys in PATH (one key of 64 hex digits per line,
    /// `#` comments; the first key seals, every key opens; mode 600). A keyed node
    /// talks only to nodes holding one of the keys. `dkv keygen` makes a key.
    #[arg(long, value_name = "PATH", env = "DKV_KEY_FILE")]
    key_file: Option<PathBuf>,
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

#[derive(Args)]
struct BenchArgs {
    /// Keys per measurement (written, held by the peer answering gets,
    /// bootstrapped, shared before the partition).
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(2..=2_000_000))]
    keys: u64,
    /// Bytes per value.
    #[arg(long, value_name = "N", default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=65_536))]
    value_bytes: u64,
    /// Peers replication is measured to, besides 1.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=8))]
    peers: u64,
    /// Writes in flight at once on the writing node (through --socket, at most
    /// 128 requests).
    #[arg(long, value_name = "N", default_value_t = 1024, value_parser = clap::value_parser!(u64).range(1..=65_536))]
    window: u64,
    /// The longest any one wait may take, in seconds; past it the benchmark fails.
    #[arg(long, value_name = "SECS", default_value_t = 120, value_parser = clap::value_parser!(u64).range(1..=3_600))]
    timeout: u64,
    /// Runs per figure, dkv and raw alternately; the table shows the medians.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=99))]
    runs: u64,
    /// The control socket of a running node (give two or more: keys are written
    /// through the first and watched arriving at the others). Default: nodes in
    /// this process on loopback.
    #[arg(long = "socket", value_name = "PATH")]
    sockets: Vec<PathBuf>,
    /// Print the results as one JSON object.
    #[arg(long)]
    json: bool,
    /// Log level on stderr: off, error, warn, info, debug or trace.
    #[arg(long, value_name = "LEVEL", default_value = "error")]
    log: LevelFilter,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let (client, ask) = match cli.command {
        Cmd::Node(args) => {
            logs::init(args.log);
            return match node_config(&args) {
                Ok(config) => {
                    let choice = if args.no_socket {
                        node::SocketChoice::Off
                    } else if let Some(path) = args.socket {
                        node::SocketChoice::Explicit(path)
                    } else {
                        node::SocketChoice::Default(socket::default_path(config.beacon_port))
                    };
                    node::run(config, choice)
                }
                Err(reason) => {
                    eprintln!("dkv node: {reason}");
                    ExitCode::from(exit::USAGE)
                }
            };
        }
        Cmd::Demo(args) => {
            logs::init(args.log);
            return demo::run(usize::from(args.nodes));
        }
        Cmd::Bench(args) => {
            logs::init(args.log);
            // Cannot truncate: clap bounds each well within usize.
            return bench::run(&bench::Options {
                keys: args.keys as usize,
                value_bytes: args.value_bytes as usize,
                peers: args.peers as usize,
                window: args.window as usize,
                timeout: Duration::from_secs(args.timeout),
                runs: args.runs as usize,
                sockets: args.sockets,
                json: args.json,
            });
        }
        Cmd::Keygen => {
            return match dkv_mio::generate_key_hex() {
                Ok(key) => {
                    println!("{key}");
                    ExitCode::SUCCESS
                }
                Err(err) => {
                    eprintln!("dkv keygen: {err}");
                    ExitCode::from(exit::FAILED)
                }
            };
        }
        Cmd::Get {
            key,
            timeout,
            client,
        } => (
            client,
            client::Ask::Get {
                key,
                timeout_ms: timeout,
            },
        ),
        Cmd::Set { key, value, client } => {
            let value = match value {
                Some(value) => std::os::unix::ffi::OsStringExt::into_vec(value),
                None => {
                    let mut value = Vec::new();
                    if let Err(err) = std::io::stdin().read_to_end(&mut value) {
                        eprintln!("dkv set: cannot read the value from stdin: {err}");
                        return ExitCode::from(exit::USAGE);
                    }
                    value
                }
            };
            (client, client::Ask::Set { key, value })
        }
        Cmd::Del { key, client } => (client, client::Ask::Del { key }),
        Cmd::Keys { prefix, client } => (
            client,
            client::Ask::Keys {
                prefix: prefix.unwrap_or_default(),
            },
        ),
        Cmd::Scan { prefix, client } => (
            client,
            client::Ask::Scan {
                prefix: prefix.unwrap_or_default(),
            },
        ),
        Cmd::Peers { client } => (client, client::Ask::Peers),
        Cmd::Stats { client } => (client, client::Ask::Stats),
        Cmd::Status { client } => (client, client::Ask::Status),
        Cmd::Watch { prefix, client } => (
            client,
            client::Ask::Watch {
                prefix: prefix.unwrap_or_default(),
            },
        ),
    };
    let target = client::Target {
        socket: client
            .socket
            .unwrap_or_else(|| socket::default_path(client.beacon_port)),
        json: client.json,
    };
    client::run(&target, ask)
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
    if let Some(name) = &args.cluster {
        config.cluster = dkv_mio::Cluster::new(name).map_err(|err| format!("--cluster: {err}"))?;
    }
    if let Some(path) = &args.key_file {
        config.keys = Some(dkv_mio::read_key_file(path).map_err(|err| err.to_string())?);
    }
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
    config.stall_timeout = args.stall_timeout_ms.map(ms);
    let limits = &mut config.limits;
    if let Some(n) = args.max_value_bytes {
        // Cannot truncate: clap caps it at 1 GiB.
        limits.max_value_bytes = n as usize;
        let record = limits.max_key_bytes + limits.max_value_bytes;
        limits.max_message_bytes = limits.max_message_bytes.max(record + (64 << 10));
    }
    if let Some(n) = args.max_peers {
        limits.max_peers = n as usize;
        limits.max_peers_per_ip = limits.max_peers_per_ip.min(limits.max_peers);
    }
    limits
        .validate()
        .map_err(|err| format!("invalid limits: {err}"))?;
    Ok(config)
}
