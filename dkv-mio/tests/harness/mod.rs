//! Test harness shared by the LAN and prototype-compatibility tests: driving `dkv node`
//! and prototype processes through their stdin line protocol ([`proc`]), the Python
//! environment for the prototype fixture ([`pyenv`]), network-namespace LANs
//! ([`netns`]), starting either implementation ([`nodes`]), the scenarios several
//! tests share ([`scenario`]), and the skip-or-fail policy for environments that lack them.
#![allow(dead_code)]

pub mod netns;
pub mod nodes;
pub mod proc;
pub mod pyenv;
pub mod scenario;

use std::time::{Duration, Instant};

/// True when running under CI (`CI=true`), where missing capabilities that CI is
/// expected to have are failures, not skips.
pub fn in_ci() -> bool {
    std::env::var("CI")
        .map(|v| v == "true" || v == "1")
        .unwrap_or(false)
}

/// Prints a visible skip line for `test` (the test then returns and passes). It is
/// written to the real stderr, not through `eprintln!`, which libtest captures.
pub fn skip(test: &str, why: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {why}");
}

/// Prints a figure a test measured (a time, a count) where the user sees it, past
/// libtest's capture, prefixed `FIGURE`.
pub fn report(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "FIGURE {line}");
}

/// The median of `values` (the upper one of an even count); panics if empty.
pub fn median(values: &[std::time::Duration]) -> std::time::Duration {
    let mut sorted = values.to_vec();
    sorted.sort();
    sorted[sorted.len() / 2]
}

/// The `dkv` binary built for this test run, if the crate has one.
pub fn dkv_bin() -> Option<&'static str> {
    option_env!("CARGO_BIN_EXE_dkv")
}

/// The text of `dkv node --help` (stdout and stderr), or why there is none.
pub fn dkv_node_help() -> Result<String, String> {
    static HELP: std::sync::OnceLock<Result<String, String>> = std::sync::OnceLock::new();
    HELP.get_or_init(|| {
        let bin = dkv_bin().ok_or("dkv-mio has no `dkv` binary")?;
        let out = std::process::Command::new(bin)
            .args(["node", "--help"])
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|e| format!("cannot run {bin}: {e}"))?;
        Ok(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    })
    .clone()
}

/// True if `dkv node` is usable (its help names `--beacon-addr`). Otherwise prints a
/// visible skip line and returns false, except under CI, where it panics: there the
/// CLI must exist.
pub fn dkv_or_skip(test: &str) -> bool {
    let why = match dkv_node_help() {
        Ok(help) if help.contains("--beacon-addr") => return true,
        Ok(_) => {
            "`dkv node --help` does not mention --beacon-addr: no `dkv node` CLI yet".to_string()
        }
        Err(e) => e,
    };
    if in_ci() {
        panic!("{test}: {why}");
    }
    skip(test, &why);
    false
}

/// True if an interpreter with pyzmq is available for the prototype fixture;
/// otherwise prints a visible skip line (pyzmq comes from PyPI, which may be
/// unreachable) and returns false.
pub fn python_or_skip(test: &str) -> bool {
    match pyenv::python() {
        Ok(_) => true,
        Err(e) => {
            skip(
                test,
                &format!("no Python with pyzmq for the prototype fixture: {e}"),
            );
            false
        }
    }
}

/// Polls `probe` until it returns `Some`, at most `attempts` times and for at most
/// `limit`, sleeping `every` between attempts. Returns the last failure description
/// on timeout (the probe returns `Err(description)` while the condition is unmet).
pub fn eventually<T>(
    limit: Duration,
    every: Duration,
    mut probe: impl FnMut() -> Result<T, String>,
) -> Result<T, String> {
    let start = Instant::now();
    let attempts = (limit.as_millis() / every.as_millis().max(1)) as usize + 2;
    let mut last = String::from("never probed");
    for _ in 0..attempts {
        match probe() {
            Ok(v) => return Ok(v),
            Err(e) => last = e,
        }
        if start.elapsed() >= limit {
            break;
        }
        std::thread::sleep(every);
    }
    Err(format!("after {:?}: {last}", start.elapsed()))
}

/// A free UDP port on loopback right now, for a per-test beacon port.
pub fn free_udp_port() -> u16 {
    let s = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind an ephemeral UDP port");
    s.local_addr().expect("local addr of a bound socket").port()
}
