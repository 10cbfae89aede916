//! Helpers for attack tests on a namespace LAN: the attacker script
//! (`harness/attacker.py`, run with the fixture's Python inside a namespace host),
//! `dkv node` started with extra flags, and what a test measures of a victim from
//! outside: `/proc/<pid>/status` memory, `/proc/<pid>/fd`, the host's interface
//! byte counters, its TCP connections, and its `stats` counters.
//!
//! Included by `attacks_netns.rs` as `#[path = "harness/attack.rs"] mod attack;`,
//! beside `mod harness;`, so the other test binaries do not compile it.
#![allow(dead_code)]

use crate::harness::netns::Host;
use crate::harness::nodes::Timings;
use crate::harness::proc::NodeProc;
use crate::harness::{dkv_bin, pyenv};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

/// The attacker script.
pub fn attacker_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/harness/attacker.py")
}

/// Starts the attacker script in `mode` with `args` inside `host`. Its one summary
/// line is read with [`summary`]; dropping the [`NodeProc`] ends it.
pub fn attacker(host: &Host, mode: &str, args: &[String]) -> NodeProc {
    let python = pyenv::python().unwrap_or_else(|e| panic!("no Python for the attacker: {e}"));
    let mut cmd = host.command(&python.display().to_string());
    cmd.arg("-u").arg(attacker_script()).arg(mode).args(args);
    NodeProc::spawn(&format!("attacker-{mode}"), cmd)
        .unwrap_or_else(|e| panic!("starting the attacker: {e}"))
}

/// Waits up to `limit` for the attacker's summary line and parses its pairs.
pub fn summary(attacker: &mut NodeProc, limit: Duration) -> BTreeMap<String, String> {
    match attacker.next_line(limit) {
        Ok(line) => pairs(&line),
        Err(e) => panic!(
            "attacker printed no summary within {limit:?} ({e})\n{}",
            attacker.stderr_tail()
        ),
    }
}

/// `name=value` pairs of a line.
pub fn pairs(line: &str) -> BTreeMap<String, String> {
    line.split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A numeric field of `map` (a `stats` or summary map); panics if missing.
pub fn num(map: &BTreeMap<String, String>, name: &str) -> u64 {
    map.get(name)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no number {name} in {map:?}"))
}

/// Starts `dkv node` in `host` with `t`'s timings and `extra` flags (the harness's
/// `start` takes no extra flags).
pub fn start_dkv(name: &str, host: &Host, t: Timings, extra: &[&str]) -> NodeProc {
    let bin = dkv_bin().expect("dkv-mio has a dkv binary");
    let mut cmd = host.command(bin);
    cmd.args(["node", "--no-socket", "--log", "info"]);
    cmd.args([
        "--beacon-interval-ms",
        &t.beacon_interval.as_millis().to_string(),
        "--peer-timeout-ms",
        &t.peer_timeout.as_millis().to_string(),
    ]);
    cmd.args(extra);
    NodeProc::spawn(name, cmd).unwrap_or_else(|e| panic!("starting {name}: {e}"))
}

/// The pid of the one `dkv` process in `host` (`ip netns exec` execs it, so it is
/// the process the test started).
pub fn dkv_pid(host: &Host) -> u32 {
    let out = Command::new("ip")
        .args(["netns", "pids", &host.ns])
        .stdin(Stdio::null())
        .output()
        .expect("run ip netns pids");
    let pids: Vec<u32> = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c.trim() == "dkv")
        })
        .collect();
    assert_eq!(pids.len(), 1, "one dkv process in {}: {pids:?}", host.ns);
    pids[0]
}

/// Resident memory of a process, from `/proc/<pid>/status`, in KiB.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mem {
    /// `VmRSS`: resident now.
    pub rss_kib: u64,
    /// `VmHWM`: the peak resident size since the process started.
    pub hwm_kib: u64,
}

/// `VmRSS` and `VmHWM` of `pid`; panics if it is gone.
pub fn mem(pid: u32) -> Mem {
    try_mem(pid).unwrap_or_else(|| panic!("no memory figures for pid {pid}: it exited"))
}

/// `VmRSS` and `VmHWM` of `pid`, or `None` once it has exited (or is a zombie).
pub fn try_mem(pid: u32) -> Option<Mem> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<u64> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
    };
    Some(Mem {
        rss_kib: field("VmRSS:")?,
        hwm_kib: field("VmHWM:")?,
    })
}

/// Sets `key` on `from` (again every 300 ms) until `to` holds it; false if that
/// does not happen within `limit` (a non-panicking `set_until_seen`).
pub fn seen_within(from: &mut NodeProc, to: &mut NodeProc, key: &str, limit: Duration) -> bool {
    let start = std::time::Instant::now();
    while start.elapsed() < limit {
        if from.try_cmd(&format!("set {key} x")).as_deref() != Ok("OK") {
            return false;
        }
        if holds(to, &[key.to_string()]) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    false
}

/// True once `node` holds every key of `keys` locally, polled every 100 ms for at
/// most `limit`.
pub fn holds_within(node: &mut NodeProc, keys: &[String], limit: Duration) -> bool {
    let start = std::time::Instant::now();
    loop {
        if holds(node, keys) {
            return true;
        }
        if start.elapsed() >= limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn holds(node: &mut NodeProc, keys: &[String]) -> bool {
    let Ok(line) = node.try_cmd("keys") else {
        return false;
    };
    let held: std::collections::HashSet<&str> = line.split_whitespace().collect();
    keys.iter().all(|k| held.contains(k.as_str()))
}

/// How many file descriptors `pid` holds open.
pub fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or_else(|e| panic!("read /proc/{pid}/fd: {e}"))
}

/// Bytes sent and received on `host`'s LAN interface (its `/proc/net/dev` row):
/// everything the processes of that host sent or received.
pub fn iface_bytes(host: &Host) -> (u64, u64) {
    let out = host
        .command("cat")
        .arg("/proc/net/dev")
        .stdin(Stdio::null())
        .output()
        .expect("read /proc/net/dev in the namespace");
    let text = String::from_utf8_lossy(&out.stdout);
    let row = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("eth0:"))
        .unwrap_or_else(|| panic!("no eth0 in /proc/net/dev of {}: {text}", host.ns));
    let cols: Vec<u64> = row
        .split_whitespace()
        .map(|c| c.parse().unwrap_or(0))
        .collect();
    (cols[8], cols[0])
}

/// The remote ends (`ip:port`) of the established TCP connections to local port
/// `port` in `host`.
pub fn connections_to(host: &Host, port: u16) -> Vec<String> {
    let out = host
        .command("ss")
        .args(["-Htn", "state", "established"])
        .arg(format!("( sport = :{port} )"))
        .stdin(Stdio::null())
        .output()
        .expect("run ss in the namespace");
    // Columns: Recv-Q Send-Q Local:Port Peer:Port.
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().nth(3).map(str::to_string))
        .collect()
}

/// `ss -tnio` lines (queues, timers, TCP info) of the established connections to
/// local port `port` in `host`, for failure messages.
pub fn connection_details(host: &Host, port: u16) -> String {
    host.command("ss")
        .args(["-Htnio", "state", "established"])
        .arg(format!("( sport = :{port} )"))
        .stdin(Stdio::null())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_else(|e| format!("ss failed: {e}"))
}

/// Gives `host` `count` more addresses on its LAN interface,
/// 10.231.x.`first`..`first + count`, and returns them.
pub fn add_addresses(host: &Host, first: u8, count: u8) -> Vec<Ipv4Addr> {
    let [a, b, c, _] = host.ip.octets();
    (first..first + count)
        .map(|last| {
            let ip = Ipv4Addr::new(a, b, c, last);
            crate::harness::netns::ip(&[
                "-n",
                &host.ns,
                "addr",
                "add",
                &format!("{ip}/24"),
                "dev",
                crate::harness::netns::HOST_IF,
            ])
            .unwrap_or_else(|e| panic!("add {ip} to {}: {e}", host.ns));
            ip
        })
        .collect()
}

/// Sends `signal` (e.g. `STOP`, `CONT`) to `pid`.
pub fn signal(pid: u32, signal: &str) {
    let ok = Command::new("kill")
        .args([format!("-{signal}"), pid.to_string()])
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "kill -{signal} {pid} failed");
}

/// Resumes a stopped process when dropped, so a failing test never leaves one
/// frozen (its `NodeProc` could not `quit` it).
pub struct Thaw(pub u32);

impl Drop for Thaw {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-CONT", &self.0.to_string()])
            .stderr(Stdio::null())
            .status();
    }
}

/// Failures of checks that must not stop the test early (so one run reports every
/// bound it breaks); [`Checks::finish`] panics with all of them.
#[derive(Default)]
pub struct Checks(Vec<String>);

impl Checks {
    /// Records `what` as failed unless `ok`.
    pub fn check(&mut self, ok: bool, what: impl Into<String>) {
        if !ok {
            let what = what.into();
            crate::harness::report(&format!("CHECK FAILED: {what}"));
            self.0.push(what);
        }
    }

    /// Panics listing every failed check, if any.
    pub fn finish(self, test: &str) {
        assert!(
            self.0.is_empty(),
            "{test}: {} check(s) failed:\n- {}",
            self.0.len(),
            self.0.join("\n- ")
        );
    }
}

/// KiB as MiB, for figures.
pub fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}
