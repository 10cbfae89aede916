//! The `dkv node` command language: one request per line in, exactly one reply
//! line out. Shared by the binary and its tests.
//!
//! | request | reply |
//! | --- | --- |
//! | `set KEY VALUE` (VALUE: the rest of the line after one space) | `OK` |
//! | `del KEY` | `OK` (the delete replicates like a set) |
//! | `get KEY [TIMEOUT_MS]` | the value, or `(nil)` (absent or deleted) |
//! | `keys` | the keys held locally, space-separated; a key that is empty, starts with `"` or holds spaces or control characters is shown quoted and escaped (`"a b"`) |
//! | `peers` | live peers as `ip:port`, space-separated |
//! | `stats` | `name=value` pairs, space-separated: identity, sizes, `fingerprint=`, `clock=`, every counter |
//! | `wait peers N [TIMEOUT_MS]` | `OK` once at least N peers are ready (a set made next reaches them) |
//! | `wait key KEY [TIMEOUT_MS]` | `OK` once KEY is held locally |
//! | `wait bootstrap [TIMEOUT_MS]` | `OK` once bootstrap is done |
//! | `help` | the list of requests |
//! | `quit` | `OK`, then the node stops |
//!
//! A bad request, or one that fails, replies with one line starting `ERR `. A blank
//! line is no request and gets no reply. A value that is UTF-8 without control
//! characters is printed as it is; any other value is printed with
//! `\n`, `\\`, `\xNN`-style escapes so the reply stays on one line.

use crate::handle::{Dkv, MAX_GET_TIMEOUT};
use dkv_proto::BootstrapPhase;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

/// The default timeout of the `wait` requests.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(10);

/// The longest timeout a `wait` request accepts.
pub const MAX_WAIT: Duration = Duration::from_secs(600);

/// The reply to `help`: every request on one line.
pub const HELP: &str = "commands: set KEY VALUE | del KEY | get KEY [TIMEOUT_MS] | keys | peers \
| stats | wait peers N [TIMEOUT_MS] | wait key KEY [TIMEOUT_MS] | wait bootstrap [TIMEOUT_MS] \
| help | quit";

/// One parsed request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// `set KEY VALUE`.
    Set {
        /// The key.
        key: String,
        /// The value: the rest of the line.
        value: String,
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
    /// `keys`.
    Keys,
    /// `peers`.
    Peers,
    /// `stats`.
    Stats,
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
            let (key, after) = split_word(rest.trim_start());
            if key.is_empty() {
                return Err("usage: set KEY VALUE (missing KEY)".into());
            }
            // The value is everything after the one separator following the key.
            let mut chars = after.chars();
            match chars.next() {
                Some(c) if c.is_whitespace() => Request::Set {
                    key: key.into(),
                    value: chars.as_str().into(),
                },
                _ => return Err("usage: set KEY VALUE (missing VALUE)".into()),
            }
        }
        "del" => match words(rest).as_slice() {
            [key] => Request::Del { key: (*key).into() },
            _ => return Err("usage: del KEY".into()),
        },
        "get" => {
            let args = words(rest);
            match args.as_slice() {
                [key] => Request::Get {
                    key: (*key).into(),
                    timeout: None,
                },
                [key, ms] => Request::Get {
                    key: (*key).into(),
                    timeout: Some(parse_ms(ms, MAX_GET_TIMEOUT)?),
                },
                _ => return Err("usage: get KEY [TIMEOUT_MS]".into()),
            }
        }
        "keys" => no_args(rest, Request::Keys, "keys")?,
        "peers" => no_args(rest, Request::Peers, "peers")?,
        "stats" => no_args(rest, Request::Stats, "stats")?,
        "help" => no_args(rest, Request::Help, "help")?,
        "quit" | "exit" => no_args(rest, Request::Quit, "quit")?,
        "wait" => parse_wait(&words(rest))?,
        other => return Err(format!("unknown command {other:?}; try help")),
    };
    Ok(Some(request))
}

fn parse_wait(args: &[&str]) -> Result<Request, String> {
    let timeout = |arg: Option<&&str>| match arg {
        Some(ms) => parse_ms(ms, MAX_WAIT),
        None => Ok(DEFAULT_WAIT),
    };
    match args {
        ["peers", n] | ["peers", n, _] => {
            let count = n
                .parse::<usize>()
                .map_err(|_| format!("peer count {n:?} is not a whole number"))?;
            Ok(Request::WaitPeers {
                count,
                timeout: timeout(args.get(2))?,
            })
        }
        ["key", key] | ["key", key, _] => Ok(Request::WaitKey {
            key: (*key).into(),
            timeout: timeout(args.get(2))?,
        }),
        ["bootstrap"] | ["bootstrap", _] => Ok(Request::WaitBootstrap {
            timeout: timeout(args.get(1))?,
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

fn words(s: &str) -> Vec<&str> {
    s.split_whitespace().collect()
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

/// Carries out one request and returns its one reply line (without newline).
/// `Quit` only replies; stopping is the caller's job.
pub fn execute(dkv: &Dkv, request: &Request) -> String {
    match run(dkv, request) {
        Ok(reply) => reply,
        Err(err) => format!("ERR {err}"),
    }
}

/// Parses and carries out one line. Returns its one reply (`None` for a blank
/// line) and whether the line was `quit`, after which the caller stops reading.
pub fn respond(dkv: &Dkv, line: &str) -> (Option<String>, bool) {
    match parse(line) {
        Ok(None) => (None, false),
        Ok(Some(request)) => (Some(execute(dkv, &request)), request == Request::Quit),
        Err(reason) => (Some(format!("ERR {reason}")), false),
    }
}

fn run(dkv: &Dkv, request: &Request) -> Result<String, crate::Error> {
    Ok(match request {
        Request::Set { key, value } => {
            dkv.set(key.clone(), value.clone())?;
            "OK".into()
        }
        Request::Del { key } => {
            dkv.delete(key.clone())?;
            "OK".into()
        }
        Request::Get { key, timeout } => match dkv.get(key.clone(), *timeout)? {
            Some(value) => display_value(&value),
            None => "(nil)".into(),
        },
        Request::Keys => keys_line(&dkv.keys()?),
        Request::Peers => dkv
            .peers()?
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(" "),
        Request::Stats => stats_line(dkv)?,
        Request::WaitPeers { count, timeout } => {
            let (mut ready, mut up) = (0, 0);
            let met = wait_until(*timeout, || {
                let status = dkv.status()?;
                (ready, up) = (status.ready_peers, status.peers);
                Ok(ready >= *count)
            })?;
            if met {
                "OK".into()
            } else {
                let ms = timeout.as_millis();
                format!("ERR timeout: {ready} of {count} peers ready after {ms} ms ({up} up)")
            }
        }
        Request::WaitKey { key, timeout } => {
            let met = wait_until(*timeout, || Ok(dkv.get_local(key.clone())?.is_some()))?;
            if met {
                "OK".into()
            } else {
                let ms = timeout.as_millis();
                format!("ERR timeout: key {key:?} not held after {ms} ms")
            }
        }
        Request::WaitBootstrap { timeout } => {
            let mut phase = BootstrapPhase::Idle;
            let met = wait_until(*timeout, || {
                phase = dkv.bootstrap()?.phase;
                Ok(phase == BootstrapPhase::Done)
            })?;
            if met {
                "OK".into()
            } else {
                let (name, ms) = (phase_name(phase), timeout.as_millis());
                format!("ERR timeout: bootstrap {name} after {ms} ms")
            }
        }
        Request::Help => HELP.into(),
        Request::Quit => "OK".into(),
    })
}

/// Checks `done` every 10 ms until it holds (true) or `timeout` passes (false).
/// A timeout too long for the clock never passes.
fn wait_until(
    timeout: Duration,
    mut done: impl FnMut() -> Result<bool, crate::Error>,
) -> Result<bool, crate::Error> {
    let deadline = Instant::now().checked_add(timeout);
    loop {
        if done()? {
            return Ok(true);
        }
        if deadline.is_some_and(|at| Instant::now() >= at) {
            return Ok(false);
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

/// The `stats` reply: identity and state first, then every counter.
/// `fingerprint=` is the whole store's fingerprint (16 hex digits), a dash and its
/// entry count, tombstones included: two nodes showing the same hold the same
/// entries.
fn stats_line(dkv: &Dkv) -> Result<String, crate::Error> {
    let status = dkv.status()?;
    let local_ip = match status.local_ip {
        Some(ip) => ip.to_string(),
        None => "none".into(),
    };
    let mut line = format!(
        "id={} local_ip={} pub_port={} beacon_port={} peers={} ready_peers={} keys={} \
         tombstones={} fingerprint={:016x}-{} clock={} bootstrap={}",
        dkv.id(),
        local_ip,
        dkv.pub_port(),
        dkv.beacon_port(),
        status.peers,
        status.ready_peers,
        status.keys,
        status.tombstones,
        status.summary.fingerprint,
        status.summary.count,
        status.clock,
        phase_name(status.bootstrap.phase),
    );
    for (name, value) in status.stats.iter() {
        let _ = write!(line, " {name}={value}");
    }
    Ok(line)
}

/// A value as one line: as it is when it is UTF-8 without control characters or
/// line separators, else escaped (`\n`, `\\`, `\xNN`, ...).
pub fn display_value(value: &[u8]) -> String {
    match std::str::from_utf8(value) {
        Ok(text) if !text.chars().any(breaks_lines) => text.to_owned(),
        _ => value.escape_ascii().to_string(),
    }
}

/// A key as one space-free word: as it is when that is unambiguous, else quoted
/// and escaped like a Rust string (`"a b"`, `"x\ny"`, `""`). Keys from peers may
/// hold any UTF-8, spaces and newlines included.
pub fn display_key(key: &str) -> String {
    let plain = !key.is_empty()
        && !key.starts_with('"')
        && !key.chars().any(|c| c.is_whitespace() || breaks_lines(c));
    if plain {
        key.to_owned()
    } else {
        format!("{key:?}")
    }
}

/// Control characters, and the Unicode line and paragraph separators some
/// readers split lines on.
fn breaks_lines(c: char) -> bool {
    c.is_control() || c == '\u{2028}' || c == '\u{2029}'
}

/// The `keys` reply: every key as [`display_key`] shows it, space-separated.
fn keys_line(keys: &[String]) -> String {
    let shown: Vec<String> = keys.iter().map(|key| display_key(key)).collect();
    shown.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_value_is_the_rest_of_the_line_after_one_space() {
        assert_eq!(
            parse("set k  hello  world \r\n"),
            Ok(Some(Request::Set {
                key: "k".into(),
                value: " hello  world ".into()
            }))
        );
        assert_eq!(
            parse("set k "),
            Ok(Some(Request::Set {
                key: "k".into(),
                value: "".into()
            }))
        );
    }

    #[test]
    fn set_without_value_or_key_is_an_error() {
        assert!(parse("set k").unwrap_err().contains("missing VALUE"));
        assert!(parse("set").unwrap_err().contains("missing KEY"));
    }

    #[test]
    fn get_takes_an_optional_timeout_in_ms() {
        assert_eq!(
            parse("get k 250"),
            Ok(Some(Request::Get {
                key: "k".into(),
                timeout: Some(Duration::from_millis(250))
            }))
        );
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
        assert!(HELP.contains("del KEY"));
    }

    #[test]
    fn a_deleted_key_reads_nil_and_leaves_keys_and_shows_as_a_tombstone() {
        let port = crate::unused_udp_port().unwrap();
        let dkv = Dkv::start(crate::Config::loopback(port)).unwrap();
        for line in ["set a 1", "set b 2", "del a"] {
            assert_eq!(respond(&dkv, line).0.as_deref(), Some("OK"));
        }
        assert_eq!(execute(&dkv, &parse("get a 0").unwrap().unwrap()), "(nil)");
        assert_eq!(execute(&dkv, &Request::Keys), "b");
        let stats = execute(&dkv, &Request::Stats);
        for field in [" keys=1 ", " tombstones=1 ", " deletes=1 ", " sets=2 "] {
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
    fn blank_lines_are_no_request_and_unknown_words_are_errors() {
        assert_eq!(parse("   \r\n"), Ok(None));
        assert!(parse("frobnicate").unwrap_err().contains("unknown command"));
        assert!(parse("keys extra").is_err());
    }

    #[test]
    fn wait_requests_parse_with_default_timeouts() {
        assert_eq!(
            parse("wait peers 2"),
            Ok(Some(Request::WaitPeers {
                count: 2,
                timeout: DEFAULT_WAIT
            }))
        );
        assert_eq!(
            parse("wait key k 50"),
            Ok(Some(Request::WaitKey {
                key: "k".into(),
                timeout: Duration::from_millis(50)
            }))
        );
        assert_eq!(
            parse("wait bootstrap"),
            Ok(Some(Request::WaitBootstrap {
                timeout: DEFAULT_WAIT
            }))
        );
        assert!(parse("wait peers many").is_err());
        assert!(parse("wait").is_err());
    }

    #[test]
    fn values_with_control_bytes_or_bad_utf8_print_escaped_on_one_line() {
        assert_eq!(display_value(b"hello world"), "hello world");
        assert_eq!(display_value("h\u{e9}".as_bytes()), "h\u{e9}");
        assert_eq!(display_value(b"a\nb"), "a\\nb");
        assert_eq!(display_value(&[0xff, b'a']), "\\xffa");
        assert_eq!(display_value("a\u{2028}b".as_bytes()), "a\\xe2\\x80\\xa8b");
    }

    #[test]
    fn wait_requests_built_with_huge_timeouts_do_not_panic() {
        let port = crate::unused_udp_port().unwrap();
        let dkv = Dkv::start(crate::Config::loopback(port)).unwrap();
        let request = Request::WaitPeers {
            count: 0,
            timeout: Duration::MAX,
        };
        assert_eq!(execute(&dkv, &request), "OK");
        dkv.set("k", "v").unwrap();
        let request = Request::WaitKey {
            key: "k".into(),
            timeout: Duration::MAX,
        };
        assert_eq!(execute(&dkv, &request), "OK");
    }

    #[test]
    fn quit_is_reported_so_the_caller_stops_reading() {
        let port = crate::unused_udp_port().unwrap();
        let dkv = Dkv::start(crate::Config::loopback(port)).unwrap();
        assert_eq!(respond(&dkv, "quit\n"), (Some("OK".into()), true));
        assert_eq!(respond(&dkv, "  \n"), (None, false));
        assert_eq!(respond(&dkv, "set k v"), (Some("OK".into()), false));
        assert!(respond(&dkv, "quit now").0.unwrap().starts_with("ERR "));
    }

    #[test]
    fn keys_from_peers_with_spaces_or_newlines_stay_one_unambiguous_line() {
        let port = crate::unused_udp_port().unwrap();
        let dkv = Dkv::start(crate::Config::loopback(port)).unwrap();
        for key in ["plain", "two words", "x\ny", "", "\"q", "tab\there"] {
            dkv.set(key, "v").unwrap();
        }
        let line = execute(&dkv, &Request::Keys);
        assert!(!line.contains('\n') && !line.contains('\t'), "{line:?}");
        assert_eq!(line, r#""" "\"q" plain "tab\there" "two words" "x\ny""#);
        assert_eq!(display_key("h\u{e9}"), "h\u{e9}");
        assert_eq!(display_key("a\u{2028}b"), r#""a\u{2028}b""#);
    }
}
