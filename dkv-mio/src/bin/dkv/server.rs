//! The control socket's server: each connection is a session of the command
//! language ([`crate::shell`]) on its own thread, and `watch` streams changes.

use crate::shell::{self, Request, Session, Shell, MAX_LINE};
use dkv_mio::Watch;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Connections served at once; more are told so and closed.
const MAX_CONNECTIONS: usize = 256;

/// Serves `listener` on a thread of its own, for as long as the process runs.
pub fn spawn(listener: UnixListener, shell: Arc<Shell>) -> io::Result<()> {
    let active = Arc::new(AtomicUsize::new(0));
    std::thread::Builder::new()
        .name("dkv-control".into())
        .spawn(move || {
            for stream in listener.incoming() {
                let mut stream = match stream {
                    Ok(stream) => stream,
                    Err(err) => {
                        tracing::warn!(%err, "control socket accept failed");
                        std::thread::sleep(Duration::from_millis(50));
                        continue;
                    }
                };
                if active.load(Ordering::SeqCst) >= MAX_CONNECTIONS {
                    let _ = writeln!(stream, "ERR too many connections");
                    continue;
                }
                active.fetch_add(1, Ordering::SeqCst);
                let (shell, active) = (Arc::clone(&shell), Arc::clone(&active));
                let spawned =
                    std::thread::Builder::new()
                        .name("dkv-client".into())
                        .spawn(move || {
                            if let Err(err) = serve(stream, &shell) {
                                tracing::debug!(%err, "control connection ended");
                            }
                            active.fetch_sub(1, Ordering::SeqCst);
                        });
                if spawned.is_err() {
                    tracing::warn!("cannot start a thread for a control connection");
                }
            }
        })?;
    Ok(())
}

/// Reads one line of at most `MAX_LINE` bytes into `buf` (cleared first).
/// `Ok(false)` at end of input; a longer line is skipped and reported as `Err`
/// of kind `InvalidData`.
pub fn read_line(input: &mut impl BufRead, buf: &mut Vec<u8>) -> io::Result<bool> {
    buf.clear();
    let read = input.take(MAX_LINE as u64).read_until(b'\n', buf)?;
    if read == 0 {
        return Ok(false);
    }
    if buf.len() >= MAX_LINE && buf.last() != Some(&b'\n') {
        skip_line(input)?;
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("line longer than {MAX_LINE} bytes"),
        ));
    }
    Ok(true)
}

fn skip_line(input: &mut impl BufRead) -> io::Result<()> {
    loop {
        let chunk = input.fill_buf()?;
        if chunk.is_empty() {
            return Ok(());
        }
        match chunk.iter().position(|&b| b == b'\n') {
            Some(at) => {
                input.consume(at + 1); // at < chunk.len(): the newline is consumed too
                return Ok(());
            }
            None => {
                let len = chunk.len();
                input.consume(len);
            }
        }
    }
}

/// One connection: request lines in, reply lines out, until the client leaves,
/// says `quit`, or starts a `watch`.
fn serve(stream: UnixStream, shell: &Shell) -> io::Result<()> {
    let mut input = BufReader::new(stream.try_clone()?);
    let mut out = stream;
    let mut session = Session::default();
    let never = AtomicBool::new(false);
    let mut buf = Vec::new();
    loop {
        let reply = match read_line(&mut input, &mut buf) {
            Ok(false) => return Ok(()),
            Ok(true) => match std::str::from_utf8(&buf) {
                Err(_) => Some(session.error(crate::NOT_UTF8)),
                Ok(line) => match shell::parse(line) {
                    Ok(Some(Request::Watch { prefix })) => {
                        let watch = match shell.dkv.watch(prefix) {
                            Ok(watch) => watch,
                            Err(err) => {
                                send_line(&mut out, &session.error(&err.to_string()))?;
                                return Ok(());
                            }
                        };
                        let ok = session.execute(
                            shell,
                            &Request::Watch {
                                prefix: String::new(),
                            },
                            &never,
                        );
                        send_line(&mut out, &ok)?;
                        return stream_watch(input, out, &session, watch);
                    }
                    Ok(Some(Request::Quit)) => {
                        let ok = session.execute(shell, &Request::Quit, &never);
                        send_line(&mut out, &ok)?;
                        return Ok(());
                    }
                    Ok(Some(request)) => Some(session.execute(shell, &request, &never)),
                    Ok(None) => None,
                    Err(reason) => Some(session.error(&reason)),
                },
            },
            Err(err) if err.kind() == io::ErrorKind::InvalidData => {
                Some(session.error(&err.to_string()))
            }
            Err(err) => return Err(err),
        };
        if let Some(reply) = reply {
            send_line(&mut out, &reply)?;
        }
    }
}

/// Writes one line per event until the client closes its side (or sends
/// anything), a write fails, or the node stops.
fn stream_watch(
    mut input: BufReader<UnixStream>,
    mut out: UnixStream,
    session: &Session,
    watch: Watch,
) -> io::Result<()> {
    let gone = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&gone);
    std::thread::Builder::new()
        .name("dkv-watch-reader".into())
        .spawn(move || {
            // Any input, or its end, ends the watch.
            let _ = input.read(&mut [0u8; 1]);
            flag.store(true, Ordering::SeqCst);
        })?;
    loop {
        match watch.recv_timeout(Duration::from_millis(100)) {
            Ok(Some(event)) => {
                send_line(&mut out, &session.event(&event))?;
            }
            Ok(None) => {}
            Err(_) => return Ok(()), // the node stopped
        }
        if gone.load(Ordering::SeqCst) {
            return Ok(());
        }
    }
}

/// Writes `line` and a newline in one write.
fn send_line(out: &mut UnixStream, line: &str) -> io::Result<()> {
    let mut bytes = Vec::with_capacity(line.len() + 1);
    bytes.extend_from_slice(line.as_bytes());
    bytes.push(b'\n');
    out.write_all(&bytes)
}
