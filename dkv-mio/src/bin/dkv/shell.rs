//! The `dkv node` command language, spoken on stdin and on the control socket:
//! one request per line in, exactly one reply line out (`watch` on the socket
//! streams). Keys and values are tokens as [`crate::text`] reads and prints them.
//!
//! | request | reply |
//! | --- | --- |
//! | `set KEY VALUE` (VALUE: the rest of the line after one space, or one quoted token) | `OK` |
//! | `del KEY` | `OK` (the delete replicates like a set) |
//! | `get KEY [TIMEOUT_MS]` | the value, or `(nil)` (absent or deleted) |
//! | `keys [PREFIX]` | the keys held locally, as tokens, space-separated |
//! | `scan [PREFIX]` | `KEY VALUE` token pairs, space-separated |
//! | `peers` | live peers as `ip:port`, space-separated |
//! | `stats` | `name=value` pairs: identity, sizes, `fingerprint=`, `clock=`, every counter |
//! | `status` | `name=value` pairs: identity, uptime, peers, keys, bootstrap and sync state |
//! | `wait peers N [TIMEOUT_MS]` | `OK` once at least N peers are ready (a set made next reaches them) |
//! | `wait key KEY [TIMEOUT_MS]` | `OK` once KEY is held locally |
//! | `wait bootstrap [TIMEOUT_MS]` | `OK` once bootstrap is done |
//! | `json` | `OK`; later replies of this session are JSON, one object or array per line |
//! | `watch [PREFIX]` (socket only) | `OK`, then one line per change until the client leaves |
//! | `help` | the list of requests |
//! | `quit` | `OK`, then the node stops (on the socket: the connection ends) |
//!
//! A bad request, or one that fails, replies with one line starting `ERR ` (in
//! JSON: `{"error":…}`). A blank line is no request and gets no reply.

use crate::text::{self, display_key, display_token, display_value, json_str, json_value};
use bytes::Bytes;
use dkv_mio::{BootstrapPhase, Dkv, KeyValue, Status, WatchEvent, MAX_GET_TIMEOUT};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The default timeout of the `wait` requests.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(10);

/// The longest timeout a `wait` request accepts.
pub const MAX_WAIT: Duration = Duration::from_secs(600);

/// Longest accepted request line, on stdin and on the control socket.
pub const MAX_LINE: usize = 16 << 20;

/// The reply to `help`: every request on one line.
pub const HELP: &str = "commands: set KEY VALUE | del KEY | get KEY [TIMEOUT_MS] | keys [PREFIX] \
| scan [PREFIX] | peers | stats | status | wait peers N [TIMEOUT_MS] | wait key KEY [TIMEOUT_MS] \
| wait bootstrap [TIMEOUT_MS] | json | watch [PREFIX] (control socket) | help | quit; \
a KEY or VALUE with spaces or odd bytes is typed \"quoted\" with \\n \\\" \\\\ \\xNN \\u{N} escapes";

/// One parsed request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// `set KEY VALUE`.
    Set {
        /// The key.
        key: String,
        /// The value.
        value: Vec<u8>,
    },
    /// `del KEY`.
    Del {
        /// The key.
        key: String,
    },
    /// `get KEY [TIMEOUT_MS]`.
    Get {
        /// The key.
        key: String,
        /// The timeout; `None` is the node's default.
        timeout: Option<Duration>,
    },
    /// `keys [PREFIX]`.
    Keys {
        /// Only keys starting with this.
        prefix: String,
    },
    /// `scan [PREFIX]`.
    Scan {
        /// Only keys starting with this.
        prefix: String,
    },
    /// `peers`.
    Peers,
    /// `stats`.
    Stats,
    /// `status`.
    Status,
    /// `wait peers N [TIMEOUT_MS]`.
    WaitPeers {
        /// Ready peers to wait for.
        count: usize,
        /// How long to wait.
        timeout: Duration,
    },
    /// `wait key KEY [TIMEOUT_MS]`.
    WaitKey {
        /// The key to wait for.
        key: String,
        /// How long to wait.
        timeout: Duration,
    },
    /// `wait bootstrap [TIMEOUT_MS]`.
    WaitBootstrap {
        /// How long to wait.
        timeout: Duration,
    },
    /// `json`.
    Json,
    /// `watch [PREFIX]`.
    Watch {
        /// Only keys starting with this.
        prefix: String,
    },
    /// `help`.
    Help,
    /// `quit`.
    Quit,
}

/// Parses one line. `Ok(None)` for a blank line; `Err` carries the reason, to be
/// shown after `ERR `.
pub fn parse(line: &str) -> Result<Option<Request>, String> {
    let line = line.strip_suffix('\n').unwrap_or(line);
    let line = line.strip_suffix('\r').unwrap_or(line);
    let trimmed = line.trim_start();
    if trimmed.trim().is_empty() {
        return Ok(None);
    }
    let (word, rest) = split_word(trimmed);
    let request = match word {
        "set" => {
            if rest.trim().is_empty() {
                return Err("usage: set KEY VALUE (missing KEY)".into());
            }
            let (key, after) = text::parse_key(rest)?;
            // The value is everything after the one separator following the key.
            let mut chars = after.chars();
            match chars.next() {
                Some(c) if c.is_whitespace() => Request::Set {
                    key,
                    value: text::parse_value(chars.as_str())?,
                },
                _ => return Err("usage: set KEY VALUE (missing VALUE)".into()),
            }
        }
        "del" => match keys_and_words(rest)?.as_slice() {
            [key] => Request::Del { key: key.clone() },
            _ => return Err("usage: del KEY".into()),
        },
        "get" => match keys_and_words(rest)?.as_slice() {
            [key] => Request::Get {
                key: key.clone(),
                timeout: None,
            },
            [key, ms] => Request::Get {
                key: key.clone(),
                timeout: Some(parse_ms(ms, MAX_GET_TIMEOUT)?),
            },
            _ => return Err("usage: get KEY [TIMEOUT_MS]".into()),
        },
        "keys" => Request::Keys {
            prefix: optional_prefix(rest, "keys [PREFIX]")?,
        },
        "scan" => Request::Scan {
            prefix: optional_prefix(rest, "scan [PREFIX]")?,
        },
        "watch" => Request::Watch {
            prefix: optional_prefix(rest, "watch [PREFIX]")?,
        },
        "peers" => no_args(rest, Request::Peers, "peers")?,
        "stats" => no_args(rest, Request::Stats, "stats")?,
        "status" => no_args(rest, Request::Status, "status")?,
        "json" => no_args(rest, Request::Json, "json")?,
        "help" => no_args(rest, Request::Help, "help")?,
        "quit" | "exit" => no_args(rest, Request::Quit, "quit")?,
        "wait" => parse_wait(&keys_and_words(rest)?)?,
        other => return Err(format!("unknown command {other:?}; try help")),
    };
    Ok(Some(request))
}

/// The arguments as UTF-8 tokens (keys, numbers, words).
fn keys_and_words(rest: &str) -> Result<Vec<String>, String> {
    text::tokens(rest)?
        .into_iter()
        .map(|token| String::from_utf8(token).map_err(|_| "a key must be UTF-8 text".into()))
        .collect()
}

fn optional_prefix(rest: &str, usage: &str) -> Result<String, String> {
    match keys_and_words(rest)?.as_slice() {
        [] => Ok(String::new()),
        [prefix] => Ok(prefix.clone()),
        _ => Err(format!("usage: {usage}")),
    }
}

fn parse_wait(args: &[String]) -> Result<Request, String> {
    let timeout = |arg: Option<&String>| match arg {
        Some(ms) => parse_ms(ms, MAX_WAIT),
        None => Ok(DEFAULT_WAIT),
    };
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        ["peers", n] | ["peers", n, _] => {
            let count = n
                .parse::<usize>()
                .map_err(|_| format!("peer count {n:?} is not a whole number"))?;
            Ok(Request::WaitPeers {
                count,
                timeout: timeout(args.get(2).map(|s| s.to_string()).as_ref())?,
            })
        }
        ["key", key] | ["key", key, _] => Ok(Request::WaitKey {
            key: (*key).into(),
            timeout: timeout(args.get(2).map(|s| s.to_string()).as_ref())?,
        }),
        ["bootstrap"] | ["bootstrap", _] => Ok(Request::WaitBootstrap {
            timeout: timeout(args.get(1).map(|s| s.to_string()).as_ref())?,
        }),
        _ => Err(
            "usage: wait peers N [TIMEOUT_MS] | wait key KEY [TIMEOUT_MS] | wait bootstrap [TIMEOUT_MS]"
                .into(),
        ),
    }
}

fn split_word(s: &str) -> (&str, &str) {
    match s.find(char::is_whitespace) {
        // `at` is where a char starts (found by `find`), so both slices hold.
        Some(at) => (&s[..at], &s[at..]),
        None => (s, ""),
    }
}

fn no_args(rest: &str, request: Request, name: &str) -> Result<Request, String> {
    if rest.trim().is_empty() {
        Ok(request)
    } else {
        Err(format!("{name} takes no arguments"))
    }
}

fn parse_ms(arg: &str, max: Duration) -> Result<Duration, String> {
    let ms = arg
        .parse::<u64>()
        .map_err(|_| format!("timeout {arg:?} is not a whole number of milliseconds"))?;
    let timeout = Duration::from_millis(ms);
    if timeout > max {
        return Err(format!(
            "timeout {ms} ms is above the limit of {} ms",
            max.as_millis()
        ));
    }
    Ok(timeout)
}

/// A running node as the command language sees it.
pub struct Shell {
    /// The node.
    pub dkv: Arc<Dkv>,
    /// When the node started, for `status`.
    pub started: Instant,
}

/// One reader's conversation: the reply format it chose.
#[derive(Clone, Default)]
pub struct Session {
    /// Replies are JSON (after `json`).
    pub json: bool,
}

impl Session {
    /// Parses and carries out one line. Returns its one reply (`None` for a blank
    /// line) and whether the line was `quit`. `watch` is refused here: only the
    /// control socket can stream. A `wait` ends early, as `ERR interrupted`, once
    /// `cancel` is set.
    pub fn respond(
        &mut self,
        shell: &Shell,
        line: &str,
        cancel: &AtomicBool,
    ) -> (Option<String>, bool) {
        match parse(line) {
            Ok(None) => (None, false),
            Ok(Some(Request::Watch { .. })) => (
                Some(self.error("watch streams changes only on the control socket (dkv watch)")),
                false,
            ),
            Ok(Some(request)) => (
                Some(self.execute(shell, &request, cancel)),
                request == Request::Quit,
            ),
            Err(reason) => (Some(self.error(&reason)), false),
        }
    }

    /// Carries out one request and returns its one reply line (without newline).
    /// `Quit` and `Watch` only reply `OK`; the caller does the rest.
    pub fn execute(&mut self, shell: &Shell, request: &Request, cancel: &AtomicBool) -> String {
        if *request == Request::Json {
            self.json = true;
        }
        match run(shell, request, self.json, cancel) {
            Ok(reply) => reply,
            Err(err) => self.error(&err.to_string()),
        }
    }

    /// An error reply in this session's format.
    pub fn error(&self, reason: &str) -> String {
        if self.json {
            format!("{{\"error\":{}}}", json_str(reason))
        } else {
            format!("ERR {reason}")
        }
    }

    /// A watch event in this session's format.
    pub fn event(&self, event: &WatchEvent) -> String {
        let place = |local: bool| if local { "local" } else { "remote" };
        match (event, self.json) {
            (
                WatchEvent::Set {
                    key,
                    value,
                    version,
                    local,
                },
                false,
            ) => format!(
                "set {} {} {version} {}",
                display_key(key),
                display_token(value),
                place(*local)
            ),
            (
                WatchEvent::Delete {
                    key,
                    version,
                    local,
                },
                false,
            ) => format!("del {} {version} {}", display_key(key), place(*local)),
            (WatchEvent::Lost { count }, false) => format!("lost {count}"),
            (
                WatchEvent::Set {
                    key,
                    value,
                    version,
                    local,
                },
                true,
            ) => format!(
                "{{\"event\":\"set\",\"key\":{},{},\"version\":\"{version}\",\"local\":{local}}}",
                json_str(key),
                json_value(value)
            ),
            (
                WatchEvent::Delete {
                    key,
                    version,
                    local,
                },
                true,
            ) => format!(
                "{{\"event\":\"del\",\"key\":{},\"version\":\"{version}\",\"local\":{local}}}",
                json_str(key)
            ),
            (WatchEvent::Lost { count }, true) => {
                format!("{{\"event\":\"lost\",\"count\":{count}}}")
            }
        }
    }
}

fn ok(json: bool) -> String {
    if json {
        "{\"ok\":true}".into()
    } else {
        "OK".into()
    }
}

fn run(
    shell: &Shell,
    request: &Request,
    json: bool,
    cancel: &AtomicBool,
) -> Result<String, dkv_mio::Error> {
    let dkv = &shell.dkv;
    Ok(match request {
        Request::Set { key, value } => {
            dkv.set(key.clone(), Bytes::from(value.clone()))?;
            ok(json)
        }
        Request::Del { key } => {
            dkv.delete(key.clone())?;
            ok(json)
        }
        Request::Get { key, timeout } => {
            let found = dkv.get_versioned(key.clone(), *timeout)?;
            match (found, json) {
                (Some((value, _)), false) => display_value(&value),
                (None, false) => "(nil)".into(),
                (Some((value, version)), true) => format!(
                    "{{\"found\":true,\"key\":{},{},\"version\":\"{version}\"}}",
                    json_str(key),
                    json_value(&value)
                ),
                (None, true) => format!("{{\"found\":false,\"key\":{}}}", json_str(key)),
            }
        }
        Request::Keys { prefix } => {
            let keys = dkv.keys_with_prefix(prefix.clone())?;
            if json {
                let items: Vec<String> = keys.iter().map(|k| json_str(k)).collect();
                format!("[{}]", items.join(","))
            } else {
                let shown: Vec<String> = keys.iter().map(|k| display_key(k)).collect();
                shown.join(" ")
            }
        }
        Request::Scan { prefix } => scan_reply(&dkv.scan(prefix.clone())?, json),
        Request::Peers => {
            let ready = dkv.ready_peers()?;
            let peers = dkv.peers()?;
            if json {
                let items: Vec<String> = peers
                    .iter()
                    .map(|p| format!("{{\"addr\":\"{p}\",\"ready\":{}}}", ready.contains(p)))
                    .collect();
                format!("[{}]", items.join(","))
            } else {
                let shown: Vec<String> = peers.iter().map(ToString::to_string).collect();
                shown.join(" ")
            }
        }
        Request::Stats => pairs_reply(&stats_pairs(dkv, &dkv.status()?), json),
        Request::Status => pairs_reply(&status_pairs(shell, &dkv.status()?), json),
        Request::WaitPeers { count, timeout } => {
            let (mut ready, mut up) = (0, 0);
            let waited = wait_until(*timeout, cancel, || {
                let status = dkv.status()?;
                (ready, up) = (status.ready_peers, status.peers);
                Ok(ready >= *count)
            })?;
            wait_reply(waited, json, || {
                let ms = timeout.as_millis();
                format!("timeout: {ready} of {count} peers ready after {ms} ms ({up} up)")
            })
        }
        Request::WaitKey { key, timeout } => {
            let waited = wait_until(*timeout, cancel, || {
                Ok(dkv.get_local(key.clone())?.is_some())
            })?;
            wait_reply(waited, json, || {
                let ms = timeout.as_millis();
                format!("timeout: key {} not held after {ms} ms", display_key(key))
            })
        }
        Request::WaitBootstrap { timeout } => {
            let mut phase = BootstrapPhase::Idle;
            let waited = wait_until(*timeout, cancel, || {
                phase = dkv.bootstrap()?.phase;
                Ok(phase == BootstrapPhase::Done)
            })?;
            wait_reply(waited, json, || {
                let (name, ms) = (phase_name(phase), timeout.as_millis());
                format!("timeout: bootstrap {name} after {ms} ms")
            })
        }
        Request::Help => {
            if json {
                format!("{{\"help\":{}}}", json_str(HELP))
            } else {
                HELP.into()
            }
        }
        Request::Json | Request::Watch { .. } | Request::Quit => ok(json),
    })
}

fn wait_reply(waited: Waited, json: bool, timeout: impl FnOnce() -> String) -> String {
    let reason = match waited {
        Waited::Met => return ok(json),
        Waited::TimedOut => timeout(),
        Waited::Cancelled => "interrupted".into(),
    };
    if json {
        format!("{{\"error\":{}}}", json_str(&reason))
    } else {
        format!("ERR {reason}")
    }
}

/// The `scan` reply: `KEY VALUE` token pairs, or a JSON array of objects.
fn scan_reply(items: &[KeyValue], json: bool) -> String {
    if json {
        let items: Vec<String> = items
            .iter()
            .map(|item| {
                format!(
                    "{{\"key\":{},{},\"version\":\"{}\"}}",
                    json_str(&item.key),
                    json_value(&item.value),
                    item.version
                )
            })
            .collect();
        format!("[{}]", items.join(","))
    } else {
        let shown: Vec<String> = items
            .iter()
            .map(|item| format!("{} {}", display_key(&item.key), display_token(&item.value)))
            .collect();
        shown.join(" ")
    }
}

/// `name=value` pairs on one line, or one JSON object (numbers as numbers).
fn pairs_reply(pairs: &[(String, String)], json: bool) -> String {
    if json {
        let members: Vec<String> = pairs
            .iter()
            .map(|(name, value)| {
                let value = if value.parse::<u64>().is_ok() {
                    value.clone()
                } else {
                    json_str(value)
                };
                format!("{}:{value}", json_str(name))
            })
            .collect();
        format!("{{{}}}", members.join(","))
    } else {
        let mut line = String::new();
        for (name, value) in pairs {
            if !line.is_empty() {
                line.push(' ');
            }
            let _ = write!(line, "{name}={value}");
        }
        line
    }
}

/// How a wait ended.
enum Waited {
    Met,
    TimedOut,
    Cancelled,
}

/// Checks `done` every 10 ms until it holds, `timeout` passes or `cancel` is set.
/// A timeout too long for the clock never passes.
fn wait_until(
    timeout: Duration,
    cancel: &AtomicBool,
    mut done: impl FnMut() -> Result<bool, dkv_mio::Error>,
) -> Result<Waited, dkv_mio::Error> {
    let deadline = Instant::now().checked_add(timeout);
    loop {
        if done()? {
            return Ok(Waited::Met);
        }
        if cancel.load(Ordering::SeqCst) {
            return Ok(Waited::Cancelled);
        }
        if deadline.is_some_and(|at| Instant::now() >= at) {
            return Ok(Waited::TimedOut);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The name `stats` shows for a bootstrap phase.
pub fn phase_name(phase: BootstrapPhase) -> &'static str {
    match phase {
        BootstrapPhase::Idle => "idle",
        BootstrapPhase::Waiting => "waiting",
        BootstrapPhase::Fetching => "fetching",
        BootstrapPhase::Settling => "settling",
        BootstrapPhase::Done => "done",
    }
}

fn ip_or_none(status: &Status) -> String {
    match status.local_ip {
        Some(ip) => ip.to_string(),
        None => "none".into(),
    }
}

/// Who and where the node is, and its store: the first pairs of `stats` and
/// `status`. `fingerprint=` is the whole store's fingerprint (16 hex digits), a
/// dash and its entry count, tombstones included: two nodes showing the same hold
/// the same entries.
fn node_pairs(dkv: &Dkv, status: &Status) -> Vec<(String, String)> {
    [
        ("id", dkv.id().to_string()),
        ("local_ip", ip_or_none(status)),
        ("pub_port", dkv.pub_port().to_string()),
        ("beacon_port", dkv.beacon_port().to_string()),
        ("peers", status.peers.to_string()),
        ("ready_peers", status.ready_peers.to_string()),
        ("keys", status.keys.to_string()),
        ("tombstones", status.tombstones.to_string()),
        ("fingerprint", fingerprint(status)),
        ("clock", status.clock.to_string()),
        ("bootstrap", phase_name(status.bootstrap.phase).to_string()),
        ("cluster", crate::text::display_key(&status.cluster)),
        ("security", status.security().to_string()),
        (
            "send_key",
            status
                .send_key
                .map_or_else(|| "none".to_string(), |k| k.to_string()),
        ),
        (
            "refused_unauthenticated",
            status.stats.proto.refused_unauthenticated().to_string(),
        ),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_string(), value))
    .collect()
}

/// The `stats` pairs: [`node_pairs`], then every counter.
fn stats_pairs(dkv: &Dkv, status: &Status) -> Vec<(String, String)> {
    let mut pairs = node_pairs(dkv, status);
    for (name, value) in status.stats.iter() {
        pairs.push((name.to_string(), value.to_string()));
    }
    pairs
}

fn fingerprint(status: &Status) -> String {
    format!(
        "{:016x}-{}",
        status.summary.fingerprint, status.summary.count
    )
}

/// The `status` pairs: [`node_pairs`], how long the node has run, and where
/// anti-entropy stands.
fn status_pairs(shell: &Shell, status: &Status) -> Vec<(String, String)> {
    let proto = &status.stats.proto;
    let mut pairs = node_pairs(&shell.dkv, status);
    let uptime = shell.started.elapsed().as_millis();
    pairs.extend(
        [
            ("uptime_ms", uptime.to_string()),
            (
                "sync_sessions_started",
                proto.sync_sessions_started.to_string(),
            ),
            (
                "sync_sessions_completed",
                proto.sync_sessions_completed.to_string(),
            ),
            (
                "sync_sessions_timed_out",
                proto.sync_sessions_timed_out.to_string(),
            ),
            ("watches", status.stats.transport.watches.to_string()),
        ]
        .into_iter()
        .map(|(name, value)| (name.to_string(), value)),
    );
    pairs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shell() -> Shell {
        let port = dkv_mio::unused_udp_port().unwrap();
        Shell {
            dkv: Arc::new(Dkv::start(dkv_mio::Config::loopback(port)).unwrap()),
            started: Instant::now(),
        }
    }

    fn say(shell: &Shell, line: &str) -> String {
        let never = AtomicBool::new(false);
        Session::default().respond(shell, line, &never).0.unwrap()
    }

    #[test]
    fn set_value_is_the_rest_of_the_line_after_one_space() {
        assert_eq!(
            parse("set k  hello  world \r\n"),
            Ok(Some(Request::Set {
                key: "k".into(),
                value: b" hello  world ".to_vec()
            }))
        );
        assert_eq!(
            parse("set k "),
            Ok(Some(Request::Set {
                key: "k".into(),
                value: vec![]
            }))
        );
    }

    #[test]
    fn quoted_keys_and_values_are_read_back() {
        assert_eq!(
            parse(r#"set "a key" "two\nlines\xff""#),
            Ok(Some(Request::Set {
                key: "a key".into(),
                value: b"two\nlines\xff".to_vec()
            }))
        );
        assert_eq!(
            parse(r#"get "a key" 20"#),
            Ok(Some(Request::Get {
                key: "a key".into(),
                timeout: Some(Duration::from_millis(20))
            }))
        );
        assert_eq!(
            parse(r#"del """#),
            Ok(Some(Request::Del { key: "".into() }))
        );
        assert!(parse(r#"set "open value"#).is_err());
        assert!(parse(r#"set k "closed" then more"#).is_err());
    }

    #[test]
    fn set_without_value_or_key_is_an_error() {
        assert!(parse("set k").unwrap_err().contains("missing VALUE"));
        assert!(parse("set").unwrap_err().contains("missing KEY"));
    }

    #[test]
    fn get_takes_an_optional_timeout_in_ms() {
        assert_eq!(
            parse("get k"),
            Ok(Some(Request::Get {
                key: "k".into(),
                timeout: None
            }))
        );
        assert!(parse("get k soon").is_err());
        assert!(parse("get k -1").is_err());
        assert!(parse("get k 99999999999999999999").is_err());
        assert!(parse("get").is_err());
        assert!(parse("get a b c").is_err());
    }

    #[test]
    fn huge_timeouts_are_refused_not_overflowed() {
        assert!(parse(&format!("get k {}", u64::MAX)).is_err());
        assert!(parse(&format!("wait peers 1 {}", u64::MAX)).is_err());
    }

    #[test]
    fn del_takes_exactly_one_key() {
        assert_eq!(parse("del k\n"), Ok(Some(Request::Del { key: "k".into() })));
        assert!(parse("del").unwrap_err().contains("usage: del KEY"));
        assert!(parse("del a b").is_err());
    }

    #[test]
    fn help_lists_every_command_the_parser_knows() {
        for (line, word) in [
            ("set k v", "set KEY VALUE"),
            ("del k", "del KEY"),
            ("get k", "get KEY"),
            ("keys", "keys [PREFIX]"),
            ("scan", "scan [PREFIX]"),
            ("peers", "peers"),
            ("stats", "stats"),
            ("status", "status"),
            ("wait peers 1", "wait peers N"),
            ("wait key k", "wait key KEY"),
            ("wait bootstrap", "wait bootstrap"),
            ("json", "json"),
            ("watch", "watch [PREFIX]"),
            ("help", "help"),
            ("quit", "quit"),
        ] {
            assert!(parse(line).unwrap().is_some(), "{line}");
            assert!(HELP.contains(word), "help lacks {word}");
        }
    }

    #[test]
    fn a_deleted_key_reads_nil_and_leaves_keys_and_shows_as_a_tombstone() {
        let shell = shell();
        for line in ["set a 1", "set b 2", "del a"] {
            assert_eq!(say(&shell, line), "OK");
        }
        assert_eq!(say(&shell, "get a 0"), "(nil)");
        assert_eq!(say(&shell, "keys"), "b");
        let stats = say(&shell, "stats");
        for field in [
            " keys=1 ",
            " tombstones=1 ",
            " deletes=1 ",
            " sets=2 ",
            " watches=0 ",
        ] {
            assert!(stats.contains(field), "no {field:?} in {stats}");
        }
        let fingerprint = stats
            .split(' ')
            .find_map(|pair| pair.strip_prefix("fingerprint="))
            .unwrap();
        let (hex, count) = fingerprint.split_once('-').unwrap();
        assert_eq!((hex.len(), count), (16, "2"), "{fingerprint}");
        assert!(u64::from_str_radix(hex, 16).is_ok());
    }

    #[test]
    fn keys_and_scan_take_a_prefix_and_print_tokens() {
        let shell = shell();
        for line in ["set app/a 1", r#"set "app/b c" "two words""#, "set other x"] {
            assert_eq!(say(&shell, line), "OK");
        }
        assert_eq!(say(&shell, "keys app/"), r#"app/a "app/b c""#);
        assert_eq!(say(&shell, "scan app/"), r#"app/a 1 "app/b c" "two words""#);
        assert_eq!(say(&shell, "keys nothing"), "");
        assert_eq!(say(&shell, r#"get "app/b c""#), "two words");
    }

    #[test]
    fn json_replies_are_one_line_each() {
        let shell = shell();
        let never = AtomicBool::new(false);
        let mut session = Session::default();
        let mut say = |line: &str| session.respond(&shell, line, &never).0.unwrap();
        assert_eq!(say("json"), r#"{"ok":true}"#);
        assert_eq!(say("set k v"), r#"{"ok":true}"#);
        let got = say("get k");
        assert!(
            got.starts_with(r#"{"found":true,"key":"k","value":"v","version":""#),
            "{got}"
        );
        assert_eq!(say("get nope 0"), r#"{"found":false,"key":"nope"}"#);
        assert_eq!(say("keys"), r#"["k"]"#);
        assert!(say("scan").starts_with(r#"[{"key":"k","value":"v","version":"#));
        assert_eq!(say("peers"), "[]");
        let status = say("status");
        assert!(status.contains(r#""keys":1,"#), "{status}");
        assert!(status.contains(r#""bootstrap":""#), "{status}");
        assert_eq!(
            say("frob"),
            r#"{"error":"unknown command \"frob\"; try help"}"#
        );
    }

    #[test]
    fn a_cancelled_wait_ends_at_once_as_interrupted() {
        let shell = shell();
        let cancel = AtomicBool::new(true);
        let start = Instant::now();
        let reply = Session::default()
            .respond(&shell, "wait peers 5 60000", &cancel)
            .0;
        assert_eq!(reply.as_deref(), Some("ERR interrupted"));
        assert!(start.elapsed() < Duration::from_secs(30));
    }

    #[test]
    fn blank_lines_are_no_request_and_unknown_words_are_errors() {
        assert_eq!(parse("   \r\n"), Ok(None));
        assert!(parse("frobnicate").unwrap_err().contains("unknown command"));
        assert!(parse("peers extra").is_err());
        assert!(parse("keys a b").is_err());
    }

    #[test]
    fn wait_requests_built_with_huge_timeouts_do_not_panic() {
        let shell = shell();
        let never = AtomicBool::new(false);
        let mut session = Session::default();
        let request = Request::WaitPeers {
            count: 0,
            timeout: Duration::MAX,
        };
        assert_eq!(session.execute(&shell, &request, &never), "OK");
        shell.dkv.set("k", "v").unwrap();
        let request = Request::WaitKey {
            key: "k".into(),
            timeout: Duration::MAX,
        };
        assert_eq!(session.execute(&shell, &request, &never), "OK");
    }

    #[test]
    fn quit_is_reported_so_the_caller_stops_reading_and_watch_is_refused_here() {
        let shell = shell();
        let never = AtomicBool::new(false);
        let mut session = Session::default();
        assert_eq!(
            session.respond(&shell, "quit\n", &never),
            (Some("OK".into()), true)
        );
        assert_eq!(session.respond(&shell, "  \n", &never), (None, false));
        assert!(session
            .respond(&shell, "quit now", &never)
            .0
            .unwrap()
            .starts_with("ERR "));
        assert!(session
            .respond(&shell, "watch", &never)
            .0
            .unwrap()
            .starts_with("ERR watch"));
    }

    #[test]
    fn keys_from_peers_with_spaces_or_newlines_stay_one_unambiguous_line() {
        let shell = shell();
        for key in ["plain", "two words", "x\ny", "", "\"q", "tab\there"] {
            shell.dkv.set(key, "v").unwrap();
        }
        let line = say(&shell, "keys");
        assert!(!line.contains('\n') && !line.contains('\t'), "{line:?}");
        assert_eq!(line, r#""" "\"q" plain "tab\there" "two words" "x\ny""#);
    }
}
