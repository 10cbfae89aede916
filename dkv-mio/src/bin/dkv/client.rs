//! The one-shot client commands (`dkv get`, `set`, `del`, `keys`, `scan`, `peers`,
//! `stats`, `status`, `watch`): one connection to a node's control socket, one
//! request in the command language, its reply printed for a person or, with
//! `--json`, as the node's JSON.

use crate::exit;
use crate::shell::MAX_LINE;
use crate::text::{self, display_key, display_token, display_value};
use std::io::{self, BufRead, BufReader, IsTerminal, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

/// How long a reply may take beyond the request's own timeout.
const REPLY_SLACK: Duration = Duration::from_secs(30);

/// What the user asked for.
pub enum Ask {
    Get {
        key: String,
        timeout_ms: Option<u64>,
    },
    Set {
        key: String,
        value: Vec<u8>,
    },
    Del {
        key: String,
    },
    Keys {
        prefix: String,
    },
    Scan {
        prefix: String,
    },
    Peers,
    Stats,
    Status,
    Watch {
        prefix: String,
    },
}

/// Where the node is and how to print.
pub struct Target {
    pub socket: PathBuf,
    pub json: bool,
}

/// One connection to a node's control socket. Its errors are already reported
/// on stderr; the `ExitCode` says which status to exit with.
pub struct Conn {
    input: BufReader<UnixStream>,
    out: UnixStream,
    socket: PathBuf,
}

fn unreachable(socket: &Path, why: impl std::fmt::Display) -> ExitCode {
    eprintln!(
        "dkv: cannot reach the node at {}: {why}\n\
         (is `dkv node` running? Point at its socket with --socket PATH, or at its beacon \
         port with --beacon-port PORT)",
        socket.display()
    );
    ExitCode::from(exit::UNREACHABLE)
}

impl Conn {
    /// Connects to the node serving `socket`.
    pub fn open(socket: &Path) -> Result<Conn, ExitCode> {
        let stream = UnixStream::connect(socket).map_err(|err| unreachable(socket, err))?;
        let input = BufReader::new(stream.try_clone().map_err(|err| unreachable(socket, err))?);
        Ok(Conn {
            input,
            out: stream,
            socket: socket.to_owned(),
        })
    }

    /// Sends one request line; returns its reply line (without the newline).
    pub fn request(&mut self, line: &str, timeout: Option<Duration>) -> Result<String, ExitCode> {
        self.send(line)?;
        self.set_timeout(timeout)?;
        self.line()
    }

    /// Sends one request line without waiting for its reply (the node answers
    /// requests in order, so several may be in flight).
    pub fn send(&mut self, line: &str) -> Result<(), ExitCode> {
        let mut bytes = line.as_bytes().to_vec();
        bytes.push(b'\n');
        self.out
            .write_all(&bytes)
            .map_err(|err| unreachable(&self.socket, err))
    }

    /// How long [`line`](Self::line) waits (`None`: for ever).
    pub fn set_timeout(&mut self, timeout: Option<Duration>) -> Result<(), ExitCode> {
        self.out
            .set_read_timeout(timeout)
            .map_err(|err| unreachable(&self.socket, err))
    }

    /// The next line from the node.
    pub fn line(&mut self) -> Result<String, ExitCode> {
        let mut buf = Vec::new();
        match self.input.read_until(b'\n', &mut buf) {
            Ok(0) => Err(unreachable(&self.socket, "the node closed the connection")),
            Ok(_) => {
                if buf.last() == Some(&b'\n') {
                    buf.pop();
                }
                String::from_utf8(buf)
                    .map_err(|_| unreachable(&self.socket, "the node's reply is not UTF-8"))
            }
            Err(err)
                if matches!(
                    err.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                Err(unreachable(&self.socket, "no reply in time"))
            }
            Err(err) => Err(unreachable(&self.socket, err)),
        }
    }
}

/// A reply that is an error: printed, with the matching exit status.
fn failed(reply: &str, json: bool) -> Option<ExitCode> {
    let is_error = if json {
        reply.starts_with("{\"error\":")
    } else {
        reply.starts_with("ERR ")
    };
    is_error.then(|| {
        if json {
            println!("{reply}");
        }
        eprintln!(
            "dkv: the node refused: {}",
            reply.trim_start_matches("ERR ")
        );
        ExitCode::from(exit::FAILED)
    })
}

/// Carries out `ask` against the node at `target`.
pub fn run(target: &Target, ask: Ask) -> ExitCode {
    match run_inner(target, ask) {
        Ok(code) | Err(code) => code,
    }
}

fn run_inner(target: &Target, ask: Ask) -> Result<ExitCode, ExitCode> {
    let line = request_line(&ask);
    if line.len() >= MAX_LINE {
        eprintln!("dkv: the request is longer than the node's {MAX_LINE}-byte line limit");
        return Ok(ExitCode::from(exit::USAGE));
    }
    let mut conn = Conn::open(&target.socket)?;
    if target.json {
        let reply = conn.request("json", Some(REPLY_SLACK))?;
        if let Some(code) = failed(&reply, true) {
            return Ok(code);
        }
    }
    let timeout = match &ask {
        Ask::Watch { .. } => None,
        Ask::Get {
            timeout_ms: Some(ms),
            ..
        } => Some(Duration::from_millis(*ms) + REPLY_SLACK),
        _ => Some(REPLY_SLACK),
    };
    let reply = conn.request(&line, timeout)?;
    if let Some(code) = failed(&reply, target.json) {
        return Ok(code);
    }
    let mut stdout = io::stdout().lock();
    let printed = if target.json {
        match ask {
            Ask::Watch { .. } => return watch(&mut conn, &mut stdout, reply),
            Ask::Get { .. } if reply.starts_with("{\"found\":false") => {
                let _ = writeln!(stdout, "{reply}");
                return Ok(ExitCode::from(exit::NOT_FOUND));
            }
            _ => writeln!(stdout, "{reply}"),
        }
    } else {
        match ask {
            Ask::Get { .. } if reply == "(nil)" => return Ok(ExitCode::from(exit::NOT_FOUND)),
            Ask::Get { .. } => print_value(&mut stdout, &reply),
            Ask::Set { .. } | Ask::Del { .. } => Ok(()),
            Ask::Keys { .. } | Ask::Peers => print_tokens(&mut stdout, &reply),
            Ask::Scan { .. } => print_pairs(&mut stdout, &reply),
            Ask::Stats | Ask::Status => print_aligned(&mut stdout, &reply),
            Ask::Watch { .. } => return watch(&mut conn, &mut stdout, reply),
        }
    };
    match printed.and_then(|()| stdout.flush()) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(err) if err.kind() == io::ErrorKind::BrokenPipe => Ok(ExitCode::SUCCESS),
        Err(err) => {
            eprintln!("dkv: cannot write the reply: {err}");
            Ok(ExitCode::from(exit::FAILED))
        }
    }
}

/// The request line for `ask`: keys and values always as tokens that read back
/// exactly (a value always quoted).
fn request_line(ask: &Ask) -> String {
    match ask {
        Ask::Get { key, timeout_ms } => match timeout_ms {
            Some(ms) => format!("get {} {ms}", display_key(key)),
            None => format!("get {}", display_key(key)),
        },
        Ask::Set { key, value } => format!("set {} {}", display_key(key), text::quote(value)),
        Ask::Del { key } => format!("del {}", display_key(key)),
        Ask::Keys { prefix } => with_prefix("keys", prefix),
        Ask::Scan { prefix } => with_prefix("scan", prefix),
        Ask::Peers => "peers".into(),
        Ask::Stats => "stats".into(),
        Ask::Status => "status".into(),
        Ask::Watch { prefix } => with_prefix("watch", prefix),
    }
}

fn with_prefix(word: &str, prefix: &str) -> String {
    if prefix.is_empty() {
        word.into()
    } else {
        format!("{word} {}", display_key(prefix))
    }
}

fn bad_reply(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("the node's reply {what}"),
    )
}

/// The raw value; a newline after it only on a terminal.
fn print_value(out: &mut impl Write, reply: &str) -> io::Result<()> {
    let value = text::parse_value(reply).map_err(|e| bad_reply(&e))?;
    out.write_all(&value)?;
    if io::stdout().is_terminal() && value.last() != Some(&b'\n') {
        out.write_all(b"\n")?;
    }
    Ok(())
}

/// One token per line, as the node wrote it.
fn print_tokens(out: &mut impl Write, reply: &str) -> io::Result<()> {
    for token in text::tokens(reply).map_err(|e| bad_reply(&e))? {
        writeln!(out, "{}", display_token(&token))?;
    }
    Ok(())
}

/// `KEY VALUE` per line, as `set KEY VALUE` reads them back.
fn print_pairs(out: &mut impl Write, reply: &str) -> io::Result<()> {
    let tokens = text::tokens(reply).map_err(|e| bad_reply(&e))?;
    for pair in tokens.chunks(2) {
        let [key, value] = pair else {
            return Err(bad_reply("has a key without a value"));
        };
        writeln!(out, "{} {}", display_token(key), display_value(value))?;
    }
    Ok(())
}

/// `name=value` pairs as aligned `name  value` lines.
fn print_aligned(out: &mut impl Write, reply: &str) -> io::Result<()> {
    let pairs: Vec<(&str, &str)> = reply
        .split(' ')
        .filter_map(|pair| pair.split_once('='))
        .collect();
    let width = pairs.iter().map(|(name, _)| name.len()).max().unwrap_or(0);
    for (name, value) in pairs {
        writeln!(out, "{name:<width$}  {value}")?;
    }
    Ok(())
}

/// Copies change lines to `out` until the node goes away.
fn watch(conn: &mut Conn, out: &mut impl Write, _ok: String) -> Result<ExitCode, ExitCode> {
    loop {
        let line = conn.line()?;
        let written = writeln!(out, "{line}").and_then(|()| out.flush());
        if written.is_err() {
            return Ok(ExitCode::SUCCESS); // the reader went away (`| head`)
        }
    }
}
