//! Starting nodes of either implementation, `dkv node` or the Python prototype
//! fixture, on this host (loopback broadcast) or inside a namespace host, with
//! matching timings.

use super::netns::Host;
use super::proc::NodeProc;
use super::{dkv_bin, dkv_node_help, pyenv};
use std::process::Command;
use std::time::Duration;

/// Which implementation a node runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `dkv node`.
    Dkv,
    /// tests/prototype/prototype.py.
    Prototype,
}

/// Beacon timings given to every node of a test. Both implementations get the same
/// values, so neither times the other out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timings {
    /// Time between beacons.
    pub beacon_interval: Duration,
    /// Silence after which a peer is down.
    pub peer_timeout: Duration,
    /// Whether these are passed as flags (false: both run their defaults).
    pub as_flags: bool,
}

impl Timings {
    /// The prototype's defaults: 1 s beacons, 4 s peer timeout; no flags passed.
    pub fn defaults() -> Timings {
        Timings {
            beacon_interval: Duration::from_secs(1),
            peer_timeout: Duration::from_secs(4),
            as_flags: false,
        }
    }

    /// Short timings (250 ms beacons, 2 s peer timeout) if `dkv node` accepts
    /// `--beacon-interval-ms` and `--peer-timeout-ms`, else the defaults.
    pub fn fast() -> Timings {
        if dkv_accepts_timing_flags() {
            Timings::short()
        } else {
            Timings::defaults()
        }
    }

    /// Short timings (250 ms beacons, 2 s peer timeout), passed as flags whatever
    /// `dkv node` accepts: for tests of prototype fixtures alone. Eight beacons per
    /// timeout, so a loaded machine does not make peers flap.
    pub fn short() -> Timings {
        Timings {
            beacon_interval: Duration::from_millis(250),
            peer_timeout: Duration::from_millis(2000),
            as_flags: true,
        }
    }

    /// A generous bound for something that takes `intervals` beacon intervals.
    pub fn within(&self, intervals: u32) -> Duration {
        self.beacon_interval * intervals + Duration::from_secs(5)
    }

    /// A bound for a peer to be seen down: the timeout, plus slack.
    pub fn down_within(&self) -> Duration {
        self.peer_timeout + self.beacon_interval * 4 + Duration::from_secs(5)
    }

    fn flags(&self) -> Vec<String> {
        if !self.as_flags {
            return Vec::new();
        }
        vec![
            "--beacon-interval-ms".into(),
            self.beacon_interval.as_millis().to_string(),
            "--peer-timeout-ms".into(),
            self.peer_timeout.as_millis().to_string(),
        ]
    }
}

fn dkv_accepts_timing_flags() -> bool {
    dkv_node_help()
        .map(|h| h.contains("--beacon-interval-ms") && h.contains("--peer-timeout-ms"))
        .unwrap_or(false)
}

/// Where a node runs and where its beacons go.
#[derive(Clone, Copy, Debug)]
pub enum Place<'a> {
    /// On this host, beaconing to 127.255.255.255 on the given port.
    Loopback(u16),
    /// Inside a namespace host, with the default beacon address and port.
    Host(&'a Host),
}

/// Starts a node of `kind` named `name` at `place` with `timings`. Errors say what
/// is missing (no dkv binary, no Python with pyzmq) or what failed to start.
pub fn start(kind: Kind, name: &str, place: Place, timings: Timings) -> Result<NodeProc, String> {
    let (program, mut args): (String, Vec<String>) = match kind {
        Kind::Dkv => {
            let bin = dkv_bin().ok_or("dkv-mio has no `dkv` binary")?;
            // Driven through stdin; a control socket would only leave stale files
            // behind the nodes a test kills.
            (bin.to_string(), vec!["node".into(), "--no-socket".into()])
        }
        Kind::Prototype => {
            let python = pyenv::python()?;
            (
                python.display().to_string(),
                vec!["-u".into(), pyenv::prototype_script().display().to_string()],
            )
        }
    };
    if let Place::Loopback(port) = place {
        args.extend([
            "--beacon-addr".into(),
            "127.255.255.255".into(),
            "--beacon-port".into(),
            port.to_string(),
        ]);
    }
    args.extend(timings.flags());
    args.extend(["--log".into(), "info".into()]);
    let mut cmd = match place {
        Place::Loopback(_) => Command::new(&program),
        Place::Host(host) => host.command(&program),
    };
    cmd.args(&args);
    NodeProc::spawn(name, cmd)
}
