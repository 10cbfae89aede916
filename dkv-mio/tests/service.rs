//! `dkv node` as a service and the one-shot client commands, driven as separate
//! processes the way a user, a script or systemd would: stdin closed or
//! /dev/null, signals, the control socket's life (mode, stale, held, removed), and
//! every client command with its output, `--json` and exit status. Nodes use
//! loopback broadcast on a beacon port of their own and sockets in a directory
//! of their own; every wait is bounded.
#![cfg(feature = "cli")]

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(20);

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_dkv")
}

/// A directory of this test's own, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("dkv-svc-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// How the node's stdin is set up.
#[derive(Clone, Copy)]
enum Stdin {
    /// Closed (`<&-`).
    Closed,
    /// `/dev/null`.
    Null,
    /// A pipe the test holds.
    Pipe,
}

/// A `dkv node` process; killed on drop if still running.
struct Node {
    child: Option<Child>,
    socket: Option<PathBuf>,
    stderr: mpsc::Receiver<String>,
}

impl Node {
    /// Starts a node with `extra` arguments after the loopback ones.
    fn start(port: u16, stdin: Stdin, extra: &[&str], env: &[(&str, &Path)]) -> Node {
        let mut args = support::loopback_node_args(port);
        args.extend(extra.iter().map(|s| s.to_string()));
        let mut cmd = match stdin {
            Stdin::Closed => {
                let mut cmd = Command::new("sh");
                cmd.arg("-c")
                    .arg("exec \"$0\" \"$@\" <&-")
                    .arg(bin())
                    .args(&args);
                cmd
            }
            _ => {
                let mut cmd = Command::new(bin());
                cmd.args(&args);
                cmd
            }
        };
        cmd.stdin(match stdin {
            Stdin::Pipe => Stdio::piped(),
            _ => Stdio::null(),
        })
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .env_remove("DKV_SOCKET");
        for (name, value) in env {
            cmd.env(name, value);
        }
        let mut child = cmd.spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let socket = extra
            .iter()
            .position(|a| *a == "--socket")
            .map(|at| PathBuf::from(extra[at + 1]));
        Node {
            child: Some(child),
            socket,
            stderr: rx,
        }
    }

    /// Starts a node serving `socket`, with stdin closed, and waits until it answers.
    fn serving(port: u16, socket: &Path) -> Node {
        let node = Node::start(
            port,
            Stdin::Closed,
            &["--socket", socket.to_str().unwrap()],
            &[],
        );
        node.wait_serving();
        node
    }

    fn socket(&self) -> &Path {
        self.socket.as_deref().expect("a node with --socket")
    }

    fn wait_serving(&self) {
        let start = Instant::now();
        while !run(&["status", "--socket", self.socket().to_str().unwrap()])
            .status
            .success()
        {
            assert!(start.elapsed() < LIMIT, "the node never served its socket");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Runs a client command against this node.
    fn cli(&self, args: &[&str]) -> Output {
        // Right after the subcommand, so that it comes before any `--`.
        let mut all: Vec<&str> = args.to_vec();
        let at = all.len().min(1);
        all.splice(at..at, ["--socket", self.socket().to_str().unwrap()]);
        run(&all)
    }

    /// Like [`cli`](Self::cli), expecting success; returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(out.status.success(), "{args:?}: {out:?}");
        String::from_utf8(out.stdout).unwrap()
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    fn signal(&self, name: &str) {
        let sent = Command::new("kill")
            .args([&format!("-{name}"), &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
    }

    /// Waits for the exit (bounded) and returns its status code.
    fn wait_exit(&mut self) -> Option<i32> {
        let mut child = self.child.take().unwrap();
        let start = Instant::now();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status.code();
            }
            if start.elapsed() > LIMIT {
                let _ = child.kill();
                panic!("the node did not exit within {LIMIT:?}");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Whether the node is still running.
    fn running(&mut self) -> bool {
        self.child.as_mut().unwrap().try_wait().unwrap().is_none()
    }

    /// Stderr lines so far (waiting up to `wait` for the first).
    fn stderr_lines(&self, wait: Duration) -> Vec<String> {
        let mut lines: Vec<String> = self.stderr.recv_timeout(wait).into_iter().collect();
        lines.extend(self.stderr.try_iter());
        lines
    }

    /// The node's `ready_peers` from `dkv status`.
    fn ready_peers(&self) -> u64 {
        let status = self.ok(&["status", "--json"]);
        let at = status.find("\"ready_peers\":").unwrap() + "\"ready_peers\":".len();
        let digits: String = status[at..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse().unwrap()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Runs `dkv ARGS` (stdin empty) and returns its output, within LIMIT.
fn run(args: &[&str]) -> Output {
    run_with_stdin(args, b"")
}

fn run_with_stdin(args: &[&str], input: &[u8]) -> Output {
    let mut child = Command::new(bin())
        .args(args)
        .env_remove("DKV_SOCKET")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    finish(child)
}

fn finish(mut child: Child) -> Output {
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > LIMIT {
            child.kill().unwrap();
            panic!("{:?}", child.wait_with_output().unwrap());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child.wait_with_output().unwrap()
}

fn port() -> u16 {
    dkv_mio::unused_udp_port().unwrap()
}

/// A `dkv watch` process whose lines arrive on a channel.
struct Watcher {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Watcher {
    fn start(socket: &Path, extra: &[&str]) -> Watcher {
        let mut child = Command::new(bin())
            .arg("watch")
            .args(extra)
            .args(["--socket", socket.to_str().unwrap()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let lines = support::line_channel(stdout);
        Watcher { child, lines }
    }

    fn next(&self, within: Duration) -> String {
        self.lines
            .recv_timeout(within)
            .unwrap_or_else(|e| panic!("no watch line within {within:?}: {e}"))
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until `watcher` is registered at `node` (its `watches` gauge).
fn wait_watching(node: &Node, count: u64) {
    let start = Instant::now();
    while !node
        .ok(&["stats"])
        .lines()
        .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["watches", &count.to_string()])
    {
        assert!(start.elapsed() < LIMIT, "the watch never registered");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The "done when": a node with stdin closed serves set, get, del, keys
/// and scan to separate processes; `dkv watch` sees a set and a delete made on
/// another node within a second; SIGTERM stops it with exit 0 and removes the
/// socket.
#[test]
fn a_node_with_stdin_closed_serves_clients_and_watch_sees_another_nodes_changes() {
    let dir = TempDir::new();
    let port = port();
    let mut a = Node::serving(port, &dir.path("a.sock"));
    let mut b = Node::serving(port, &dir.path("b.sock"));

    assert_eq!(a.ok(&["set", "color", "blue"]), "");
    assert_eq!(a.ok(&["get", "color"]), "blue");
    assert_eq!(a.ok(&["set", "app/one", "1"]), "");
    assert_eq!(
        a.ok(&["set", "app/two words", "a value\nwith a newline"]),
        ""
    );
    assert_eq!(a.ok(&["keys"]), "app/one\n\"app/two words\"\ncolor\n");
    assert_eq!(a.ok(&["keys", "app/"]), "app/one\n\"app/two words\"\n");
    assert_eq!(
        a.ok(&["scan", "app/"]),
        "app/one 1\n\"app/two words\" \"a value\\nwith a newline\"\n"
    );
    assert_eq!(a.ok(&["get", "app/two words"]), "a value\nwith a newline");
    assert_eq!(a.ok(&["del", "color"]), "");
    assert_eq!(a.cli(&["get", "color"]).status.code(), Some(1));
    assert_eq!(a.ok(&["keys"]), "app/one\n\"app/two words\"\n");

    // Data flows between the nodes both ways before the timed part.
    let start = Instant::now();
    while a.ready_peers() < 1 || b.ready_peers() < 1 {
        assert!(
            start.elapsed() < LIMIT,
            "the nodes never became ready peers"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let watcher = Watcher::start(a.socket(), &["w/"]);
    wait_watching(&a, 1);
    b.ok(&["set", "w/k", "from-b"]);
    let line = watcher.next(Duration::from_secs(1));
    let words: Vec<&str> = line.split(' ').collect();
    assert_eq!(words[..3], ["set", "w/k", "from-b"], "{line}");
    assert!(words[3].contains('@'), "a version: {line}");
    assert_eq!(words[4], "remote", "{line}");
    b.ok(&["del", "w/k"]);
    let line = watcher.next(Duration::from_secs(1));
    let words: Vec<&str> = line.split(' ').collect();
    assert_eq!(words[..2], ["del", "w/k"], "{line}");
    assert_eq!(words[3], "remote", "{line}");
    // A local change is seen too, and keys outside the prefix are not.
    a.ok(&["set", "other", "x"]);
    a.ok(&["set", "w/local", "y"]);
    let line = watcher.next(LIMIT);
    assert!(
        line.starts_with("set w/local y ") && line.ends_with(" local"),
        "{line}"
    );

    a.signal("TERM");
    assert_eq!(a.wait_exit(), Some(0));
    assert!(!a.socket().exists(), "the socket was not removed");
    assert!(
        !dir.path("a.sock.lock").exists(),
        "the lock was not removed"
    );
    // The watcher learns the node went away: exit 3.
    let mut watcher = watcher;
    let start = Instant::now();
    let code = loop {
        if let Some(status) = watcher.child.try_wait().unwrap() {
            break status.code();
        }
        assert!(start.elapsed() < LIMIT, "dkv watch outlived its node");
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(code, Some(3));
    b.signal("INT");
    assert_eq!(b.wait_exit(), Some(0));
}

#[test]
fn a_node_on_dev_null_runs_until_sigint_and_stops_cleanly() {
    let dir = TempDir::new();
    let socket = dir.path("n.sock");
    let mut node = Node::start(
        port(),
        Stdin::Null,
        &["--socket", socket.to_str().unwrap()],
        &[],
    );
    node.wait_serving();
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        node.running(),
        "a node on /dev/null must not stop by itself"
    );
    let mode = std::fs::symlink_metadata(&socket).unwrap();
    assert!(mode.file_type().is_socket());
    assert_eq!(mode.permissions().mode() & 0o777, 0o600);
    node.signal("INT");
    assert_eq!(node.wait_exit(), Some(0));
    assert!(!socket.exists());
}

#[test]
fn a_piped_node_still_quits_at_end_of_input_and_removes_its_socket() {
    let dir = TempDir::new();
    let socket = dir.path("p.sock");
    let mut node = Node::start(
        port(),
        Stdin::Pipe,
        &["--socket", socket.to_str().unwrap()],
        &[],
    );
    node.wait_serving();
    // The socket serves while stdin is open; closing stdin quits.
    node.ok(&["set", "k", "v"]);
    drop(node.child.as_mut().unwrap().stdin.take());
    assert_eq!(node.wait_exit(), Some(0));
    assert!(!socket.exists());
}

/// "The last sets leave first": a set made just before SIGTERM reaches the other
/// node, which cannot learn it later (the writer is gone).
#[test]
fn sigterm_lets_the_last_set_leave_before_the_node_stops() {
    let dir = TempDir::new();
    let port = port();
    let mut a = Node::serving(port, &dir.path("a.sock"));
    let b = Node::serving(port, &dir.path("b.sock"));
    let start = Instant::now();
    while a.ready_peers() < 1 {
        assert!(start.elapsed() < LIMIT, "never ready");
        std::thread::sleep(Duration::from_millis(20));
    }
    a.ok(&["set", "last", "words"]);
    a.signal("TERM");
    assert_eq!(a.wait_exit(), Some(0));
    let start = Instant::now();
    while !b.cli(&["get", "last"]).status.success() {
        assert!(start.elapsed() < LIMIT, "the last set never reached b");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(b.ok(&["get", "last"]), "words");
}

#[test]
fn a_stale_socket_is_replaced_and_a_held_one_is_refused() {
    let dir = TempDir::new();
    let socket = dir.path("s.sock");
    // A socket file left by a process that is gone.
    drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
    assert!(socket.exists());
    let first = Node::serving(port(), &socket);
    // Another node asking for the same path explicitly: exit 5, and the first
    // node's socket is untouched.
    let mut second = Node::start(
        port(),
        Stdin::Closed,
        &["--socket", socket.to_str().unwrap()],
        &[],
    );
    assert_eq!(second.wait_exit(), Some(5));
    let said = second.stderr_lines(LIMIT).join("\n");
    assert!(said.contains("another live node serves"), "{said}");
    first.ok(&["status"]);
    // A path holding something that is not a socket is left alone: exit 4.
    let file = dir.path("not-a-socket");
    std::fs::write(&file, "mine").unwrap();
    let mut third = Node::start(
        port(),
        Stdin::Closed,
        &["--socket", file.to_str().unwrap()],
        &[],
    );
    assert_eq!(third.wait_exit(), Some(4));
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "mine");
}

#[test]
fn a_node_whose_default_socket_is_held_runs_without_one_and_says_so() {
    let dir = TempDir::new();
    let runtime = dir.path("runtime");
    std::fs::create_dir(&runtime).unwrap();
    let env = [("XDG_RUNTIME_DIR", runtime.as_path())];
    let port = port();
    let mut first = Node::start(port, Stdin::Closed, &[], &env);
    let default = runtime.join(format!("dkv-{port}.sock"));
    let start = Instant::now();
    while !default.exists() {
        assert!(start.elapsed() < LIMIT, "no default socket at {default:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut second = Node::start(port, Stdin::Closed, &[], &env);
    let said = second.stderr_lines(LIMIT).join("\n");
    assert!(said.contains("runs without one"), "{said}");
    std::thread::sleep(Duration::from_millis(200));
    assert!(second.running());
    // Clients find the first node by its beacon port alone.
    let out = Command::new(bin())
        .args(["status", "--beacon-port", &port.to_string()])
        .env("XDG_RUNTIME_DIR", &runtime)
        .env_remove("DKV_SOCKET")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    // --no-socket serves none.
    let mut third = Node::start(port, Stdin::Closed, &["--no-socket"], &env);
    std::thread::sleep(Duration::from_millis(200));
    assert!(third.running());
    assert!(third.stderr_lines(Duration::from_millis(10)).is_empty());
    for node in [&mut second, &mut third, &mut first] {
        node.signal("TERM");
        assert_eq!(node.wait_exit(), Some(0));
    }
    assert!(!default.exists());
}

#[test]
fn clients_fail_at_once_with_exit_3_when_no_node_runs() {
    let dir = TempDir::new();
    let socket = dir.path("nobody.sock");
    for args in [
        vec!["get", "k"],
        vec!["set", "k", "v"],
        vec!["del", "k"],
        vec!["keys"],
        vec!["scan"],
        vec!["peers"],
        vec!["stats"],
        vec!["status"],
        vec!["watch"],
    ] {
        let mut all = args.clone();
        all.extend(["--socket", socket.to_str().unwrap()]);
        let start = Instant::now();
        let out = run(&all);
        assert_eq!(out.status.code(), Some(3), "{args:?}: {out:?}");
        assert!(start.elapsed() < LIMIT);
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(said.contains("cannot reach the node"), "{said}");
        assert!(said.contains("nobody.sock"), "{said}");
    }
    // A node that cannot start: exit 4.
    let out = Command::new(bin())
        .args(["node", "--no-socket", "--bind", "192.0.2.1"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4), "{out:?}");
}

#[test]
fn client_usage_errors_exit_2_and_not_found_exits_1() {
    let dir = TempDir::new();
    let node = Node::serving(port(), &dir.path("u.sock"));
    for args in [
        vec!["get"],
        vec!["get", "k", "--timeout", "soon"],
        vec!["set"],
        vec!["frobnicate"],
        vec!["keys", "a", "b"],
    ] {
        assert_eq!(node.cli(&args).status.code(), Some(2), "{args:?}");
    }
    let out = node.cli(&["get", "absent", "--timeout", "20"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
}

#[test]
fn set_reads_a_binary_value_from_stdin_and_get_prints_it_raw() {
    let dir = TempDir::new();
    let node = Node::serving(port(), &dir.path("b.sock"));
    let value: Vec<u8> = (0..=255u8).chain(*b"\n\"(nil)\"").collect();
    let socket = node.socket().to_str().unwrap().to_string();
    let out = run_with_stdin(&["set", "bin key", "--socket", &socket], &value);
    assert!(out.status.success(), "{out:?}");
    let out = node.cli(&["get", "bin key"]);
    assert!(out.status.success());
    assert_eq!(
        out.stdout, value,
        "the raw bytes, no newline added off a terminal"
    );
    // Values that look like replies are values too.
    for tricky in ["(nil)", "ERR not an error", "\"quoted\"", ""] {
        node.ok(&["set", "t", tricky]);
        assert_eq!(node.ok(&["get", "t"]), tricky);
    }
    // A value starting with a dash, after `--`.
    node.ok(&["set", "dash", "--", "-v"]);
    assert_eq!(node.ok(&["get", "dash"]), "-v");
}

#[test]
fn every_client_command_speaks_json() {
    let dir = TempDir::new();
    let port = port();
    let node = Node::serving(port, &dir.path("j.sock"));
    let other = Node::serving(port, &dir.path("k.sock"));
    let start = Instant::now();
    while !node.ok(&["peers"]).contains("127.0.0.1:") {
        assert!(start.elapsed() < LIMIT, "no peer");
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(other);
    assert_eq!(node.ok(&["set", "k", "v", "--json"]), "{\"ok\":true}\n");
    node.ok(&["set", "bin", "--json", "--", "x"]);
    let got = node.ok(&["get", "k", "--json"]);
    assert!(
        got.starts_with("{\"found\":true,\"key\":\"k\",\"value\":\"v\",\"version\":\""),
        "{got}"
    );
    let out = node.cli(&["get", "nope", "--json", "--timeout", "0"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "{\"found\":false,\"key\":\"nope\"}\n"
    );
    assert_eq!(node.ok(&["keys", "--json"]), "[\"bin\",\"k\"]\n");
    let scan = node.ok(&["scan", "k", "--json"]);
    assert!(
        scan.starts_with("[{\"key\":\"k\",\"value\":\"v\",\"version\":"),
        "{scan}"
    );
    let peers = node.ok(&["peers", "--json"]);
    assert!(peers.starts_with("[{\"addr\":\"127.0.0.1:"), "{peers}");
    let stats = node.ok(&["stats", "--json"]);
    assert!(
        stats.starts_with("{\"id\":\"") && stats.contains("\"sets\":2"),
        "{stats}"
    );
    let status = node.ok(&["status", "--json"]);
    for member in [
        "\"uptime_ms\":",
        "\"keys\":2",
        "\"bootstrap\":\"",
        "\"sync_sessions_completed\":",
    ] {
        assert!(status.contains(member), "{member} in {status}");
    }
    assert_eq!(node.ok(&["del", "bin", "--json"]), "{\"ok\":true}\n");
    let watcher = Watcher::start(node.socket(), &["--json"]);
    wait_watching(&node, 1);
    node.ok(&["del", "k"]);
    let event = watcher.next(LIMIT);
    assert!(
        event.starts_with("{\"event\":\"del\",\"key\":\"k\",\"version\":\""),
        "{event}"
    );
    assert!(event.ends_with(",\"local\":true}"), "{event}");
}

#[test]
fn stats_and_status_print_aligned_lines_and_peers_one_per_line() {
    let dir = TempDir::new();
    let node = Node::serving(port(), &dir.path("a.sock"));
    for command in ["stats", "status"] {
        let text = node.ok(&[command]);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines.len() > 10, "{text}");
        // Every value starts in one column.
        let column = |line: &str| {
            let name_end = line.find(' ').unwrap();
            name_end + line[name_end..].find(|c: char| c != ' ').unwrap()
        };
        let first = column(lines[0]);
        assert!(lines.iter().all(|l| column(l) == first), "{text}");
        assert!(lines.iter().all(|l| l.len() < 100), "{text}");
    }
    let status = node.ok(&["status"]);
    for name in [
        "id",
        "uptime_ms",
        "peers",
        "ready_peers",
        "keys",
        "bootstrap",
        "sync_sessions_started",
    ] {
        assert!(
            status.lines().any(|l| l.starts_with(&format!("{name} "))),
            "{name}: {status}"
        );
    }
    assert_eq!(node.ok(&["peers"]), "");
}

/// The line protocol reads back what it prints: quoted keys and escaped values.
#[test]
fn keys_with_spaces_and_binary_values_can_be_typed_on_stdin() {
    let mut child = Command::new(bin())
        .args(support::loopback_node_args(port()))
        .arg("--no-socket")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let script = "set \"a key\" \"bin\\xff\\x00ary\\n\"\n\
                  get \"a key\"\n\
                  keys\n\
                  scan\n\
                  set plain \"(nil)\"\n\
                  get plain\n\
                  del \"a key\"\n\
                  keys\n\
                  set \"open\n\
                  help\n";
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    let out = finish(child);
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[..8],
        [
            "OK",
            "\"bin\\xff\\0ary\\n\"",
            "\"a key\"",
            "\"a key\" \"bin\\xff\\0ary\\n\" plain \"(nil)\""
                .split(" plain")
                .next()
                .unwrap(),
            "OK",
            "\"(nil)\"",
            "OK",
            "plain",
        ],
        "{text}"
    );
    assert!(lines[8].starts_with("ERR "), "{text}");
    for word in ["scan", "status", "watch", "json", "keys [PREFIX]", "quit"] {
        assert!(lines[9].contains(word), "help lacks {word}: {}", lines[9]);
    }
}

#[test]
fn a_line_over_16_mib_is_refused_and_the_node_carries_on() {
    let mut child = Command::new(bin())
        .args(support::loopback_node_args(port()))
        .arg("--no-socket")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    std::thread::spawn(move || {
        let mut line = b"set big ".to_vec();
        line.resize(17 << 20, b'x');
        line.extend_from_slice(b"\nset k v\n");
        let _ = stdin.write_all(&line);
    });
    let mut stdout = child.stdout.take().unwrap();
    let mut text = String::new();
    stdout.read_to_string(&mut text).unwrap();
    let out = finish(child);
    assert!(out.status.success());
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines[0].starts_with("ERR line longer than 16777216 bytes"),
        "{text}"
    );
    assert_eq!(lines[1], "OK");
}

#[test]
fn version_and_help_speak_to_users() {
    let out = run(&["--version"]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("dkv "), "{text}");
    let out = run(&["--help"]);
    let text = String::from_utf8(out.stdout).unwrap();
    for word in [
        "node",
        "get",
        "set",
        "del",
        "keys",
        "scan",
        "watch",
        "status",
        "Exit statuses",
    ] {
        assert!(text.contains(word), "--help lacks {word}:\n{text}");
    }
    let out = run(&["node", "--help"]);
    let text = String::from_utf8(out.stdout).unwrap();
    for word in [
        "5005",
        "255.255.255.255",
        "[default: 1000]",
        "--socket",
        "--no-socket",
        "SIGTERM",
    ] {
        assert!(text.contains(word), "node --help lacks {word}:\n{text}");
    }
}

#[test]
fn bench_through_sockets_measures_replication_and_deletes_its_keys() {
    let dir = TempDir::new();
    let port = dkv_mio::unused_udp_port().unwrap();
    let a = Node::serving(port, &dir.path("a.sock"));
    let b = Node::serving(port, &dir.path("b.sock"));
    let start = Instant::now();
    while a.ready_peers() < 1 || b.ready_peers() < 1 {
        assert!(start.elapsed() < LIMIT, "a and b never became ready peers");
        std::thread::sleep(Duration::from_millis(20));
    }
    let (a_socket, b_socket) = (a.socket().to_str().unwrap(), b.socket().to_str().unwrap());
    let out = run(&[
        "bench",
        "--keys",
        "200",
        "--json",
        "--timeout",
        "15",
        "--socket",
        a_socket,
        "--socket",
        b_socket,
    ]);
    let json = String::from_utf8(out.stdout.clone()).unwrap();
    assert!(out.status.success(), "{json}\n{out:?}");
    assert!(json.contains("\"mode\":\"sockets\""), "{json}");
    let result = |name: &str| {
        let at = json.find(&format!("\"name\":\"{name}\"")).unwrap();
        let end = at + json[at..].find('}').unwrap();
        json[at..end].to_string()
    };
    let replication = result("replication_1_peer");
    assert!(!replication.contains("\"dkv\":null"), "{replication}");
    for name in ["remote_get_p50", "bootstrap", "reconciliation"] {
        let row = result(name);
        assert!(row.contains("\"dkv\":null"), "{row}");
        assert!(row.contains("not measured through sockets"), "{row}");
    }
    // Its keys are deleted: none left, 200 tombstones.
    assert_eq!(a.ok(&["keys", "bench/"]), "");
    let status = a.ok(&["status", "--json"]);
    assert!(status.contains("\"tombstones\":200"), "{status}");
}
