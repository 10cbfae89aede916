//! `dkv node --data-dir` crashed for real: SIGKILLed at random moments in a stream
//! of writes and restarted on the same dir, a whole cluster of three killed (and
//! once stopped) and restarted, and data dirs that must be refused with their
//! exit status and left byte for byte as they were. Nodes use loopback broadcast
//! on a beacon port of their own and dirs of their own; every loop is bounded in
//! count and time.
#![cfg(feature = "cli")]

mod harness;
mod support;

use harness::proc::NodeProc;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The longest any single wait may take.
const LIMIT: Duration = Duration::from_secs(30);

/// `dkv node` on loopback with `dir` as its data dir, then `extra`.
fn node_args(port: u16, dir: &Path, extra: &[&str]) -> Vec<String> {
    let mut args = support::loopback_node_args(port);
    args.push("--data-dir".into());
    args.push(dir.display().to_string());
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

/// `dkv node` on `dir` (no control socket), driven through its stdin.
fn spawn(port: u16, dir: &Path, extra: &[&str]) -> NodeProc {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dkv"));
    cmd.args(node_args(port, dir, extra)).arg("--no-socket");
    NodeProc::spawn(&format!("node on {}", dir.display()), cmd).unwrap()
}

/// `stats` as `name -> value` (numeric fields).
fn counter(node: &mut NodeProc, name: &str) -> u64 {
    node.stats()[name].parse().unwrap()
}

/// Every live key and its value (`scan`: plain tokens in these tests).
fn live(node: &mut NodeProc) -> BTreeMap<String, String> {
    let line = node.cmd("scan");
    let tokens: Vec<&str> = line.split(' ').filter(|t| !t.is_empty()).collect();
    assert_eq!(tokens.len() % 2, 0, "scan: {line}");
    tokens
        .chunks(2)
        .map(|kv| (kv[0].to_string(), kv[1].to_string()))
        .collect()
}

/// `quit`, and a clean exit within LIMIT.
fn quit(mut node: NodeProc) {
    assert!(node.quit(LIMIT), "{}: no exit after quit", node.name());
}

/// splitmix64: the test's own seeded randomness.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// The seed from `DKV_CRASH_SEED`, else from the clock; printed either way.
fn seed(test: &str) -> u64 {
    let seed = match std::env::var("DKV_CRASH_SEED") {
        Ok(text) => text.parse().expect("DKV_CRASH_SEED is a u64"),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64,
    };
    eprintln!("{test}: seed {seed} (rerun with DKV_CRASH_SEED={seed})");
    seed
}

/// A store as the writes made it: key -> value, `None` for a deleted key.
type Model = BTreeMap<String, Option<String>>;

/// One write: a set (with its value) or a delete.
#[derive(Clone, Debug)]
struct Op {
    key: String,
    value: Option<String>,
}

impl Op {
    fn line(&self) -> String {
        match &self.value {
            Some(value) => format!("set {} {value}", self.key),
            None => format!("del {}", self.key),
        }
    }
}

/// The live part of a model.
fn live_of(model: &Model) -> BTreeMap<String, String> {
    model
        .iter()
        .filter_map(|(k, v)| Some((k.clone(), v.clone()?)))
        .collect()
}

fn tombstones_of(model: &Model) -> usize {
    model.values().filter(|v| v.is_none()).count()
}

/// The SIGKILL test proper. Each round restarts the node on the dir, checks that
/// the store it opened equals the writes up to some point at or after the last
/// acknowledged one (commits keep the writes' order, so what reached the disk is a
/// prefix of them), streams writes through its stdin (a writer thread keeps many
/// in flight), and SIGKILLs it after a random number of acknowledgements plus a
/// random delay. Rounds cycle through the sync policies.
#[test]
fn sigkill_in_a_stream_of_writes_loses_no_acknowledged_write() {
    const ROUNDS: u64 = 20;
    const KEYS: u64 = 40;
    const OPS: usize = 1_500;
    let mut rng = Rng(seed("sigkill"));
    let dir = tempfile::tempdir().unwrap();
    let port = dkv_mio::unused_udp_port().unwrap();
    let policies = ["group", "always", "group:3"];
    let started = Instant::now();
    let mut model = Model::new();
    // The writes of the last round beyond its acknowledged ones.
    let mut in_flight: Vec<Op> = Vec::new();
    for round in 0..=ROUNDS {
        assert!(
            started.elapsed() < Duration::from_secs(240),
            "round {round}: the test ran too long"
        );
        let policy = policies[round as usize % policies.len()];
        let mut node = spawn(port, dir.path(), &["--sync", policy]);

        // The store opened: it is the acknowledged writes and then a prefix of
        // the ones in flight.
        let live = live(&mut node);
        let stats = node.stats();
        let count = |name: &str| stats[name].parse::<usize>().unwrap();
        let mut candidate = model.clone();
        let mut matched = None;
        for step in 0..=in_flight.len() {
            if step > 0 {
                let op = &in_flight[step - 1];
                candidate.insert(op.key.clone(), op.value.clone());
            }
            if live_of(&candidate) == live && tombstones_of(&candidate) == count("tombstones") {
                matched = Some(candidate.clone());
                break;
            }
        }
        let Some(restored) = matched else {
            panic!(
                "round {round}: the restarted store is no prefix of the writes at or after \
                 the last acknowledged one\n got {live:?}\n acknowledged {:?}",
                live_of(&model)
            );
        };
        model = restored;
        assert_eq!(count("keys"), live.len(), "round {round}");
        assert_eq!(count("disk_restored"), model.len(), "round {round}");
        if round == ROUNDS {
            quit(node);
            break;
        }

        // A stream of writes, SIGKILLed after `target` acknowledgements.
        let ops: Vec<Op> = (0..OPS)
            .map(|i| Op {
                key: format!("k{}", rng.below(KEYS)),
                value: (rng.below(4) != 0).then(|| format!("r{round}.{i}")),
            })
            .collect();
        let target = 1 + rng.below(300) as usize;
        let delay = Duration::from_micros(rng.below(3_000));
        let mut stdin = node.take_stdin();
        let script = ops.clone();
        let writer = std::thread::spawn(move || {
            for op in &script {
                // A broken pipe: the node is dead.
                if writeln!(stdin, "{}", op.line()).is_err() || stdin.flush().is_err() {
                    return;
                }
            }
        });
        let mut acked = 0;
        let deadline = Instant::now() + LIMIT;
        while acked < target {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = node
                .next_line(left)
                .unwrap_or_else(|e| panic!("round {round}: {acked} of {target} acks: {e}"));
            assert_eq!(line, "OK", "round {round}, write {acked}");
            acked += 1;
        }
        std::thread::sleep(delay);
        node.kill();
        // Every OK printed before the kill is an acknowledgement.
        while let Ok(line) = node.next_line(LIMIT) {
            assert_eq!(line, "OK", "round {round}, write {acked}");
            acked += 1;
        }
        writer.join().unwrap();
        for op in &ops[..acked] {
            model.insert(op.key.clone(), op.value.clone());
        }
        in_flight = ops[acked..].to_vec();
        eprintln!(
            "round {round} ({policy}): killed after {acked} acks (target {target}, \
             +{delay:?})"
        );
    }
}

/// Waits until every node holds `expected` (live keys and values) and the same
/// fingerprint.
fn converge(nodes: &mut [NodeProc], expected: &BTreeMap<String, String>, what: &str) {
    let start = Instant::now();
    loop {
        let lives: Vec<_> = nodes.iter_mut().map(live).collect();
        let prints: Vec<_> = nodes.iter_mut().map(|n| n.fingerprint()).collect();
        if lives.iter().all(|l| l == expected) && prints.iter().all(|p| *p == prints[0]) {
            return;
        }
        assert!(
            start.elapsed() < LIMIT,
            "{what}: no convergence within {LIMIT:?}\nexpected {expected:?}\ngot {lives:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn wait_peers(nodes: &mut [NodeProc], n: usize) {
    for node in nodes {
        assert_eq!(node.cmd(&format!("wait peers {n} 20000")), "OK");
    }
}

/// Three nodes with data dirs on loopback. C holds `doomed/*` and is killed; A
/// deletes half of them and B writes more while C is down; then A and B are
/// killed too. All three restart: nothing acknowledged is lost, they converge,
/// and C's stale values do not bring the deleted keys back. A second run stops
/// all three gracefully and restarts them again.
#[test]
fn a_whole_cluster_killed_and_restarted_loses_nothing_and_resurrects_nothing() {
    let port = dkv_mio::unused_udp_port().unwrap();
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let start = |i: usize| spawn(port, dirs[i].path(), &[]);
    let mut nodes: Vec<NodeProc> = (0..3).map(start).collect();
    wait_peers(&mut nodes, 2);
    let mut expected = BTreeMap::new();
    for (i, node) in nodes.iter_mut().enumerate() {
        for j in 0..20 {
            let (key, value) = (format!("n{i}/{j}"), format!("v{i}.{j}"));
            assert_eq!(node.cmd(&format!("set {key} {value}")), "OK");
            expected.insert(key, value);
        }
    }
    for j in 0..10 {
        let key = format!("doomed/{j}");
        assert_eq!(nodes[0].cmd(&format!("set {key} alive")), "OK");
        expected.insert(key, "alive".to_string());
    }
    converge(&mut nodes, &expected, "before the first kill");

    // C down; A deletes half the doomed keys, B writes more.
    nodes.pop().unwrap().kill();
    for j in 0..5 {
        let key = format!("doomed/{j}");
        assert_eq!(nodes[0].cmd(&format!("del {key}")), "OK");
        expected.remove(&key);
    }
    for j in 0..10 {
        let key = format!("late/{j}");
        assert_eq!(nodes[1].cmd(&format!("set {key} b")), "OK");
        expected.insert(key, "b".to_string());
    }
    // B saw the deletes (its values turned into tombstones) before everything
    // stops; A may or may not have B's late writes.
    let t0 = Instant::now();
    while counter(&mut nodes[1], "tombstones") < 5 {
        assert!(t0.elapsed() < LIMIT, "B never saw A's deletes");
        std::thread::sleep(Duration::from_millis(20));
    }
    for mut node in nodes.drain(..) {
        node.kill();
    }

    // Everything up again on the same dirs, C first: alone, it holds what it held.
    let mut c = start(2);
    assert_eq!(
        live(&mut c)["doomed/0"],
        "alive",
        "C restarted without its data"
    );
    let mut nodes: Vec<NodeProc> = (0..2).map(start).collect();
    nodes.push(c);
    wait_peers(&mut nodes, 2);
    converge(&mut nodes, &expected, "after the kill");
    for node in &mut nodes {
        assert_eq!(counter(node, "tombstones"), 5);
    }

    // The second run: more writes, a graceful stop of all, a restart.
    for (i, node) in nodes.iter_mut().enumerate() {
        let key = format!("second/{i}");
        assert_eq!(node.cmd(&format!("set {key} v")), "OK");
        expected.insert(key, "v".to_string());
    }
    assert_eq!(nodes[2].cmd("del doomed/9"), "OK");
    expected.remove("doomed/9");
    for node in nodes.drain(..) {
        quit(node);
    }
    let mut nodes: Vec<NodeProc> = (0..3).map(start).collect();
    wait_peers(&mut nodes, 2);
    converge(&mut nodes, &expected, "after the graceful stop");
    for node in nodes {
        quit(node);
    }
}

/// Runs `dkv node --data-dir dir` with an empty stdin: a dir it accepts makes it
/// run and stop at once (exit 0).
fn run_on(dir: &Path) -> Output {
    let port = dkv_mio::unused_udp_port().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_dkv"))
        .args(node_args(port, dir, &["--no-socket"]))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdin.take());
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > LIMIT {
            child.kill().unwrap();
            panic!("no exit within {LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child.wait_with_output().unwrap()
}

/// Checks that `dir` is refused with `status` and a message holding `says`, and
/// that its file is left as it was.
fn refused(dir: &Path, status: i32, says: &str) {
    let file = dir.join(dkv_mio::DATA_FILE);
    let before = std::fs::read(&file).ok();
    let out = run_on(dir);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(status), "stderr: {stderr}");
    assert!(stderr.contains(says), "stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "stderr: {stderr}");
    assert_eq!(
        std::fs::read(&file).ok(),
        before,
        "{} changed",
        file.display()
    );
}

/// A data dir holding `keys` entries, written by a node that stopped cleanly.
fn filled_dir(keys: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let config = dkv_mio::Config {
        data_dir: Some(dir.path().to_owned()),
        ..dkv_mio::Config::loopback(dkv_mio::unused_udp_port().unwrap())
    };
    let node = dkv_mio::Dkv::start(config).unwrap();
    let pending: Vec<_> = (0..keys)
        .map(|i| {
            node.set_pending(format!("key/{i}"), "x".repeat(100))
                .unwrap()
        })
        .collect();
    for write in pending {
        write.wait().unwrap();
    }
    node.shutdown().unwrap();
    dir
}

#[test]
fn a_garbage_file_is_refused_as_corrupt_with_exit_8() {
    let dir = tempfile::tempdir().unwrap();
    let garbage: Vec<u8> = (0..20_000u32).map(|i| (i * 7919 % 251) as u8).collect();
    std::fs::write(dir.path().join(dkv_mio::DATA_FILE), garbage).unwrap();
    refused(dir.path(), 8, "corrupt");
}

#[test]
fn a_truncated_file_is_refused_as_corrupt_with_exit_8() {
    let dir = filled_dir(5_000);
    let file = dir.path().join(dkv_mio::DATA_FILE);
    let full = std::fs::read(&file).unwrap();
    assert!(full.len() > 100_000, "{} bytes", full.len());
    // Mid-page and on a page boundary, in the middle and near the start.
    for cut in [full.len() / 2 + 123, full.len() / 2 / 4096 * 4096, 50] {
        std::fs::write(&file, &full[..cut]).unwrap();
        refused(dir.path(), 8, "corrupt");
    }
    // The whole file back: it opens, with every entry.
    std::fs::write(&file, &full).unwrap();
    let out = run_on(dir.path());
    assert!(out.status.success(), "{out:?}");
}

#[test]
fn a_dir_from_a_newer_format_is_refused_with_exit_7() {
    let dir = filled_dir(10);
    let conn = rusqlite::Connection::open(dir.path().join(dkv_mio::DATA_FILE)).unwrap();
    conn.pragma_update(None, "user_version", dkv_mio::FORMAT_VERSION + 1)
        .unwrap();
    drop(conn);
    refused(dir.path(), 7, "newer");
}

#[test]
fn a_dir_another_live_node_holds_is_refused_with_exit_6() {
    let dir = tempfile::tempdir().unwrap();
    let port = dkv_mio::unused_udp_port().unwrap();
    let mut holder = spawn(port, dir.path(), &[]);
    assert_eq!(holder.cmd("set mine 1"), "OK");
    refused(dir.path(), 6, "in use by another process");
    // The holder is unharmed and keeps its data across its own restart.
    assert_eq!(holder.cmd("set mine 2"), "OK");
    quit(holder);
    let mut again = spawn(port, dir.path(), &[]);
    assert_eq!(again.cmd("get mine 0"), "2");
    quit(again);
}

#[test]
fn a_data_dir_that_is_a_file_is_unusable_with_exit_9() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"some bytes").unwrap();
    let out = run_on(&file);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(9), "stderr: {stderr}");
    assert!(stderr.contains("cannot use the data dir"), "{stderr}");
    assert_eq!(std::fs::read(&file).unwrap(), b"some bytes");
}

/// Runs a client command against the node serving `socket`.
fn client(socket: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dkv"))
        .args(args)
        .arg("--socket")
        .arg(socket)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// A process SIGKILLed (and reaped) when dropped, even when a test panics.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `dkv node` serving `socket` (stdin `/dev/null`: it runs until killed)
/// and waits until a client reaches it.
fn serving(port: u16, dir: &Path, socket: &Path) -> KillOnDrop {
    let socket_arg = socket.display().to_string();
    let child = Command::new(env!("CARGO_BIN_EXE_dkv"))
        .args(node_args(port, dir, &["--socket", &socket_arg]))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let child = KillOnDrop(child);
    let start = Instant::now();
    while !client(socket, &["status"]).status.success() {
        assert!(
            start.elapsed() < LIMIT,
            "the node never served {socket_arg}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

/// `dkv set` and `dkv del` go through the control socket to `Dkv::set` and
/// `Dkv::delete`: once they exit 0 the write is on disk, so a SIGKILL right
/// after loses none of them.
#[test]
fn client_sets_and_dels_that_exited_zero_survive_a_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let (data, socket) = (dir.path().join("data"), dir.path().join("node.sock"));
    let port = dkv_mio::unused_udp_port().unwrap();
    let node = serving(port, &data, &socket);
    for i in 0..20 {
        let out = client(&socket, &["set", &format!("k{i}"), &format!("v{i}")]);
        assert!(out.status.success(), "{out:?}");
    }
    for i in 0..5 {
        let out = client(&socket, &["del", &format!("k{i}")]);
        assert!(out.status.success(), "{out:?}");
    }
    drop(node); // SIGKILL

    let node = serving(port, &data, &socket);
    for i in 0..20 {
        let out = client(&socket, &["get", &format!("k{i}"), "--timeout", "0"]);
        if i < 5 {
            assert_eq!(out.status.code(), Some(1), "k{i} came back: {out:?}");
        } else {
            assert!(out.status.success(), "k{i}: {out:?}");
            assert_eq!(out.stdout, format!("v{i}").into_bytes());
        }
    }
    drop(node);
}

#[test]
fn a_node_whose_disk_fills_up_refuses_the_write_and_exits_with_status_4() {
    let test = "a_node_whose_disk_fills_up_refuses_the_write_and_exits_with_status_4";
    if !harness::netns::is_root() {
        assert!(!harness::in_ci(), "{test}: CI must run as root");
        return harness::skip(test, "needs root to mount a small tmpfs");
    }
    // The node runs in a mount namespace of its own with a 1 MiB tmpfs as its data
    // dir: the mount goes away with the process.
    let dir = tempfile::tempdir().unwrap();
    let port = dkv_mio::unused_udp_port().unwrap();
    let mut cmd = Command::new("unshare");
    cmd.args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg(r#"mount -t tmpfs -o size=1m dkv-full "$0" && exec "$@""#)
        .arg(dir.path())
        .arg(env!("CARGO_BIN_EXE_dkv"))
        .args(node_args(port, dir.path(), &["--no-socket"]));
    let mut node = NodeProc::spawn("node on a full disk", cmd).unwrap();
    assert_eq!(node.cmd("set small one"), "OK");
    let value = "v".repeat(64 * 1024);
    // 1 MiB holds at most 16 of these; 64 is a bound, not a goal.
    let refused = (0..64).find_map(|i| match node.try_cmd(&format!("set big{i} {value}")) {
        Ok(reply) => (reply != "OK").then_some(Ok(reply)),
        Err(e) => Some(Err(e)),
    });
    let refused = refused.expect("64 writes of 64 KiB fitted in 1 MiB");
    let refused = refused.unwrap_or_else(|e| panic!("{e}\n{}", node.stderr_tail()));
    assert!(refused.starts_with("ERR "), "{refused}");
    let status = node
        .wait_exit(LIMIT)
        .expect("the node ran on without its disk");
    assert_eq!(status.code(), Some(4), "{}", node.stderr_tail());
    let stderr = node.stderr_tail();
    assert!(stderr.contains("cannot commit to the data dir"), "{stderr}");
    assert!(stderr.contains("stopped on an error"), "{stderr}");
}
