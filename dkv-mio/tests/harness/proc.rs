//! One node process (`dkv node` or the Python prototype fixture) driven through its
//! stdin line protocol: one command in, exactly one line out. Owns the child process:
//! dropping a [`NodeProc`] sends `quit`, then kills the child if it has not exited.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long one command may take to print its line (a `get` waits at most its own
/// timeout, which tests keep far below this).
pub const REPLY_LIMIT: Duration = Duration::from_secs(15);

/// How many stderr lines are kept for failure reports.
const STDERR_KEPT: usize = 200;

/// A running node and the pipes that drive it.
pub struct NodeProc {
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl NodeProc {
    /// Starts `cmd` with piped stdio. `name` labels it in failure messages.
    pub fn spawn(name: &str, mut cmd: Command) -> Result<NodeProc, String> {
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("{name}: cannot start {cmd:?}: {e}"))?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("stdout was piped");
        let stderr_pipe = child.stderr.take().expect("stderr was piped");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                match line {
                    Ok(l) => {
                        if tx.send(l).is_err() {
                            return;
                        }
                    }
                    Err(_) => return,
                }
            }
        });
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let kept = Arc::clone(&stderr);
        let label = name.to_string();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr_pipe).lines() {
                let Ok(l) = line else { return };
                if std::env::var_os("DKV_TEST_ECHO").is_some() {
                    eprintln!("[{label}] {l}");
                }
                let mut v = kept.lock().unwrap_or_else(|p| p.into_inner());
                if v.len() >= STDERR_KEPT {
                    v.remove(0);
                }
                v.push(l);
            }
        });
        Ok(NodeProc {
            name: name.to_string(),
            child,
            stdin,
            lines,
            stderr,
        })
    }

    /// The child's process id (to signal it).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The label given at spawn.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The last lines the process wrote to stderr, for failure messages.
    pub fn stderr_tail(&self) -> String {
        let v = self.stderr.lock().unwrap_or_else(|p| p.into_inner());
        let from = v.len().saturating_sub(40);
        v[from..].join("\n")
    }

    /// Sends one command line and returns its one reply line; panics with the
    /// process's stderr if no line comes within [`REPLY_LIMIT`].
    pub fn cmd(&mut self, line: &str) -> String {
        match self.try_cmd(line) {
            Ok(reply) => reply,
            Err(e) => panic!(
                "{e}\n--- stderr of {} ---\n{}",
                self.name,
                self.stderr_tail()
            ),
        }
    }

    /// Like [`NodeProc::cmd`], but returns an error instead of panicking.
    pub fn try_cmd(&mut self, line: &str) -> Result<String, String> {
        // Anything unread from an earlier command would shift every reply by one.
        if let Ok(stray) = self.lines.try_recv() {
            return Err(format!("{}: unexpected extra line {stray:?}", self.name));
        }
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| format!("{}: stdin already closed", self.name))?;
        writeln!(stdin, "{line}")
            .and_then(|_| stdin.flush())
            .map_err(|e| format!("{}: writing {line:?}: {e}", self.name))?;
        match self.lines.recv_timeout(REPLY_LIMIT) {
            Ok(reply) => Ok(reply),
            Err(RecvTimeoutError::Timeout) => Err(format!(
                "{}: no reply to {line:?} within {REPLY_LIMIT:?}",
                self.name
            )),
            Err(RecvTimeoutError::Disconnected) => Err(format!(
                "{}: exited ({:?}) instead of replying to {line:?}",
                self.name,
                self.child.try_wait()
            )),
        }
    }

    /// `set KEY VALUE`; panics unless the reply is `OK`.
    pub fn set(&mut self, key: &str, value: &str) {
        let reply = self.cmd(&format!("set {key} {value}"));
        assert_eq!(reply, "OK", "{}: set {key} answered {reply:?}", self.name);
    }

    /// `del KEY`; panics unless the reply is `OK`.
    pub fn del(&mut self, key: &str) {
        let reply = self.cmd(&format!("del {key}"));
        assert_eq!(reply, "OK", "{}: del {key} answered {reply:?}", self.name);
    }

    /// Writes every line at once (as a pipe would deliver them), then collects one
    /// reply per line; panics if one is missing after [`REPLY_LIMIT`].
    pub fn pipeline(&mut self, lines: &[String]) -> Vec<String> {
        if let Ok(stray) = self.lines.try_recv() {
            panic!("{}: unexpected extra line {stray:?}", self.name);
        }
        let mut replies = Vec::with_capacity(lines.len());
        // Written in chunks, with replies read in between, so neither pipe fills.
        for chunk in lines.chunks(1000) {
            let stdin = self.stdin.as_mut().expect("stdin open");
            let text: String = chunk.iter().map(|l| format!("{l}\n")).collect();
            stdin
                .write_all(text.as_bytes())
                .and_then(|_| stdin.flush())
                .unwrap_or_else(|e| panic!("{}: writing a pipeline: {e}", self.name));
            for _ in chunk {
                match self.lines.recv_timeout(REPLY_LIMIT) {
                    Ok(reply) => replies.push(reply),
                    Err(e) => panic!(
                        "{}: reply {} of a pipeline missing: {e}\n{}",
                        self.name,
                        replies.len() + 1,
                        self.stderr_tail()
                    ),
                }
            }
        }
        replies
    }

    /// The `fingerprint=` field of `stats` (the store's fingerprint and entry count).
    pub fn fingerprint(&mut self) -> String {
        let stats = self.stats();
        stats
            .get("fingerprint")
            .cloned()
            .unwrap_or_else(|| panic!("{}: no fingerprint in stats {stats:?}", self.name))
    }

    /// `get KEY TIMEOUT_MS`: the value, or `None` for `(nil)`.
    pub fn get(&mut self, key: &str, timeout_ms: u64) -> Option<String> {
        let reply = self.cmd(&format!("get {key} {timeout_ms}"));
        assert!(
            !reply.starts_with("ERR"),
            "{}: get {key} answered {reply:?}",
            self.name
        );
        (reply != "(nil)").then_some(reply)
    }

    /// `keys`, split on spaces.
    pub fn keys(&mut self) -> Vec<String> {
        words(&self.cmd("keys"))
    }

    /// `peers`, split on spaces (each `ip:port`).
    pub fn peers(&mut self) -> Vec<String> {
        words(&self.cmd("peers"))
    }

    /// The IPs in `peers`, without ports.
    pub fn peer_ips(&mut self) -> Vec<String> {
        self.peers()
            .into_iter()
            .map(|p| {
                p.rsplit_once(':')
                    .map(|(ip, _)| ip.to_string())
                    .unwrap_or(p)
            })
            .collect()
    }

    /// `stats` as a map of its `name=value` pairs.
    pub fn stats(&mut self) -> BTreeMap<String, String> {
        self.cmd("stats")
            .split_whitespace()
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// Hands over stdin, for a writer of its own (each line still gets one reply,
    /// read with [`NodeProc::next_line`]); [`NodeProc::cmd`] cannot be used after.
    pub fn take_stdin(&mut self) -> ChildStdin {
        self.stdin.take().expect("stdin still held")
    }

    /// The next line the process prints, within `limit`; an error once it timed
    /// out or the process exited with nothing more printed.
    pub fn next_line(&mut self, limit: Duration) -> Result<String, RecvTimeoutError> {
        self.lines.recv_timeout(limit)
    }

    /// SIGKILL, at once, and reap.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits up to `limit` for the process to exit by itself; its status, or
    /// `None` if it is still running.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if start.elapsed() >= limit {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// True while the process has not exited.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Sends `quit` and waits up to `limit` for a clean exit; returns whether it exited
    /// by itself (it is killed otherwise).
    pub fn quit(&mut self, limit: Duration) -> bool {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = writeln!(stdin, "quit");
            let _ = stdin.flush();
        }
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Ok(Some(_)) = self.child.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        false
    }
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.quit(Duration::from_secs(3));
        }
    }
}

fn words(line: &str) -> Vec<String> {
    line.split_whitespace().map(str::to_string).collect()
}
