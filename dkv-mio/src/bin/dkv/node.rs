//! `dkv node`: one node as a service. It serves the control socket, reads
//! commands from stdin when stdin is a terminal (a REPL) or a pipe or file (plain
//! lines; end of input quits), runs on when stdin is `/dev/null` or closed, and
//! stops gracefully, as `quit` does, on SIGINT or SIGTERM. On a terminal, Ctrl-C
//! cancels the running command instead.

use crate::server;
use crate::shell::{Session, Shell};
use crate::socket::{self, ServeError, Served};
use crate::{exit, logs, NOT_UTF8};
use dkv_mio::{Config, Dkv};
use signal_hook::consts::{SIGINT, SIGTERM};
use std::io::{self, BufReader, IsTerminal, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

/// Which control socket to serve.
pub enum SocketChoice {
    /// None (`--no-socket`).
    Off,
    /// The default path: if another live node holds it, run without one.
    Default(PathBuf),
    /// A path the user gave: if it cannot be served, do not start.
    Explicit(PathBuf),
}

/// What stdin is.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Input {
    /// A terminal: the REPL.
    Terminal,
    /// `/dev/null`, or closed (the runtime opens `/dev/null` on a closed stdin):
    /// nothing to read; run until a signal.
    Null,
    /// A pipe, file or socket: plain lines until the end of input.
    Lines,
}

fn classify_stdin() -> Input {
    let stdin = io::stdin();
    if stdin.is_terminal() {
        return Input::Terminal;
    }
    let is_null = || -> io::Result<bool> {
        let ours = std::fs::File::from(stdin.as_fd().try_clone_to_owned()?).metadata()?;
        let null = std::fs::metadata("/dev/null")?;
        Ok(ours.file_type().is_char_device() && ours.rdev() == null.rdev())
    };
    match is_null() {
        Ok(true) => Input::Null,
        Ok(false) => Input::Lines,
        // A stdin that cannot even be looked at cannot be read either.
        Err(_) => Input::Null,
    }
}

/// Why the node stops, or a Ctrl-C to pass on.
enum Event {
    Signal(i32),
    InputEnded(io::Result<()>),
    /// The node stopped by itself (a commit to its data dir failed).
    NodeStopped,
}

/// The cancel flag of the command the REPL is running, if any.
type Running = Arc<Mutex<Option<Arc<AtomicBool>>>>;

/// Runs the node until `quit`, the end of piped input, or a signal.
pub fn run(config: Config, socket_choice: SocketChoice) -> ExitCode {
    let input = classify_stdin();
    let (events_tx, events) = mpsc::channel();
    // Signals first: from here on SIGINT and SIGTERM stop the node gracefully.
    let mut signals = match signal_hook::iterator::Signals::new([SIGINT, SIGTERM]) {
        Ok(signals) => signals,
        Err(err) => {
            eprintln!("dkv node: cannot handle signals: {err}");
            return ExitCode::from(exit::FAILED);
        }
    };
    let tx = events_tx.clone();
    let spawned = std::thread::Builder::new()
        .name("dkv-signals".into())
        .spawn(move || {
            for signal in signals.forever() {
                if tx.send(Event::Signal(signal)).is_err() {
                    return;
                }
            }
        });
    if let Err(err) = spawned {
        eprintln!("dkv node: cannot start the signal thread: {err}");
        return ExitCode::from(exit::FAILED);
    }
    let served = match take_socket(&socket_choice) {
        Ok(served) => served,
        Err(code) => return code,
    };
    let dkv = match Dkv::start(config) {
        Ok(dkv) => Arc::new(dkv),
        Err(err) => {
            eprintln!("dkv node: cannot start: {err}");
            return ExitCode::from(exit::start_failure(&err));
        }
    };
    let (watched, tx) = (Arc::clone(&dkv), events_tx.clone());
    let spawned = std::thread::Builder::new()
        .name("dkv-stopped".into())
        .spawn(move || {
            while !watched.wait_stopped(Duration::from_secs(3600)) {}
            let _ = tx.send(Event::NodeStopped);
        });
    if let Err(err) = spawned {
        eprintln!("dkv node: cannot start the watch on the node: {err}");
        return ExitCode::from(exit::FAILED);
    }
    let shell = Arc::new(Shell {
        dkv: Arc::clone(&dkv),
        started: Instant::now(),
    });
    let socket_path = served.as_ref().map(|s| s.path.clone());
    tracing::info!(id = %dkv.id(), pub_port = dkv.pub_port(), socket = ?socket_path, ?input, "node running");
    if let Some(served) = &served {
        match served.listener.try_clone() {
            Ok(listener) => {
                if let Err(err) = server::spawn(listener, Arc::clone(&shell)) {
                    eprintln!("dkv node: cannot serve the control socket: {err}");
                    return ExitCode::from(exit::FAILED);
                }
            }
            Err(err) => {
                eprintln!("dkv node: cannot serve the control socket: {err}");
                return ExitCode::from(exit::FAILED);
            }
        }
    }
    let running: Running = Arc::new(Mutex::new(None));
    let saved_terminal = match input {
        Input::Terminal => nix::sys::termios::tcgetattr(io::stdin()).ok(),
        _ => None,
    };
    if input != Input::Null {
        let (shell, running, tx) = (Arc::clone(&shell), Arc::clone(&running), events_tx.clone());
        let socket_path = socket_path.clone();
        let spawned = std::thread::Builder::new()
            .name("dkv-stdin".into())
            .spawn(move || {
                let result = match input {
                    Input::Terminal => repl(&shell, &running, socket_path),
                    _ => pipe(&shell),
                };
                let _ = tx.send(Event::InputEnded(result));
            });
        if let Err(err) = spawned {
            eprintln!("dkv node: cannot start the input thread: {err}");
            return ExitCode::from(exit::FAILED);
        }
    }
    drop(events_tx);
    let code = loop {
        match events.recv() {
            Ok(Event::Signal(SIGINT)) if input == Input::Terminal => {
                // Ctrl-C cancels the running command, not the node.
                if let Some(cancel) = lock(&running).as_ref() {
                    cancel.store(true, Ordering::SeqCst);
                }
            }
            Ok(Event::Signal(signal)) => {
                tracing::info!(signal, "stopping on a signal");
                break ExitCode::SUCCESS;
            }
            Ok(Event::NodeStopped) => {
                eprintln!("dkv node: the node stopped on an error (logged above)");
                break ExitCode::from(exit::FAILED);
            }
            Ok(Event::InputEnded(Ok(()))) => break ExitCode::SUCCESS,
            Ok(Event::InputEnded(Err(err))) if err.kind() == io::ErrorKind::BrokenPipe => {
                break ExitCode::SUCCESS
            }
            Ok(Event::InputEnded(Err(err))) => {
                eprintln!("dkv node: {err}");
                break ExitCode::FAILURE;
            }
            Err(_) => break ExitCode::SUCCESS,
        }
    };
    // The REPL may be inside a line read, with the terminal in raw mode.
    if let Some(saved) = saved_terminal {
        logs::prompt_shown(false);
        let _ =
            nix::sys::termios::tcsetattr(io::stdin(), nix::sys::termios::SetArg::TCSANOW, &saved);
    }
    // The last sets leave before the sockets close (bounded; see Dkv::shutdown).
    let _ = dkv.shutdown();
    drop(served); // removes the socket
    code
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// Serves the chosen socket, or says why not: a held default path is no error.
fn take_socket(choice: &SocketChoice) -> Result<Option<Served>, ExitCode> {
    match choice {
        SocketChoice::Off => Ok(None),
        SocketChoice::Default(path) => match socket::serve(path) {
            Ok(served) => Ok(Some(served)),
            Err(ServeError::Held) => {
                eprintln!(
                    "dkv node: another node serves the control socket {}; this one runs \
                     without one (give it its own with --socket PATH)",
                    path.display()
                );
                Ok(None)
            }
            Err(ServeError::Io(why)) => {
                eprintln!(
                    "dkv node: no control socket at {} ({why}); running without one",
                    path.display()
                );
                Ok(None)
            }
        },
        SocketChoice::Explicit(path) => match socket::serve(path) {
            Ok(served) => Ok(Some(served)),
            Err(ServeError::Held) => {
                eprintln!(
                    "dkv node: another live node serves the control socket {}",
                    path.display()
                );
                Err(ExitCode::from(exit::SOCKET_HELD))
            }
            Err(ServeError::Io(why)) => {
                eprintln!(
                    "dkv node: cannot serve the control socket {}: {why}",
                    path.display()
                );
                Err(ExitCode::from(exit::FAILED))
            }
        },
    }
}

/// Plain line reading for pipes and files: one reply line per command, flushed
/// at once; the end of input quits.
fn pipe(shell: &Shell) -> io::Result<()> {
    let mut input = BufReader::new(io::stdin().lock());
    let mut out = io::stdout().lock();
    let mut session = Session::default();
    let never = AtomicBool::new(false);
    let mut buf = Vec::new();
    loop {
        let (reply, quit) = match server::read_line(&mut input, &mut buf) {
            Ok(false) => return Ok(()), // end of input quits
            Ok(true) => match std::str::from_utf8(&buf) {
                Ok(line) => session.respond(shell, line, &never),
                Err(_) => (Some(session.error(NOT_UTF8)), false),
            },
            Err(err) if err.kind() == io::ErrorKind::InvalidData => {
                (Some(session.error(&err.to_string())), false)
            }
            Err(err) => return Err(err),
        };
        if let Some(reply) = reply {
            writeln!(out, "{reply}")?;
            out.flush()?;
        }
        if quit {
            return Ok(());
        }
    }
}

/// A friendly REPL with history for terminals. Each command runs on a thread of
/// its own so that Ctrl-C (a SIGINT, see [`run`]) can abandon it; replies are
/// written, not `println!`ed, so a closed stdout ends the node quietly.
fn repl(shell: &Arc<Shell>, running: &Running, socket: Option<PathBuf>) -> io::Result<()> {
    use rustyline::error::ReadlineError;
    let mut editor = match rustyline::Editor::<TrackTyped, _>::new() {
        Ok(editor) => editor,
        Err(err) => {
            tracing::warn!(%err, "no line editor; reading plain lines");
            return pipe(shell);
        }
    };
    editor.set_helper(Some(TrackTyped));
    let mut out = io::stdout();
    let dkv = &shell.dkv;
    let socket = match socket {
        Some(path) => format!("control socket {}", path.display()),
        None => "no control socket".into(),
    };
    writeln!(
        out,
        "dkv node {} on PUB port {}, beacons on port {}, {socket}.\n\
         Type help; Ctrl-C cancels a command; quit or Ctrl-D leaves.",
        dkv.id(),
        dkv.pub_port(),
        dkv.beacon_port()
    )?;
    let mut session = Session::default();
    loop {
        // Log lines are printed above the prompt meanwhile, not through it.
        logs::prompt_shown(true);
        let read = editor.readline(logs::PROMPT);
        logs::prompt_shown(false);
        match read {
            Ok(line) => {
                if !line.trim().is_empty() {
                    let _ = editor.add_history_entry(line.as_str());
                }
                let (reply, quit) = run_cancellable(shell, &mut session, running, line);
                if let Some(reply) = reply {
                    writeln!(out, "{reply}")?;
                }
                if quit {
                    return Ok(());
                }
            }
            Err(ReadlineError::Interrupted) => {
                writeln!(out, "(Ctrl-C: type quit or Ctrl-D to leave)")?;
            }
            Err(ReadlineError::Eof) => return Ok(()),
            // Typed bytes that are not UTF-8: a bad line, not the end of input.
            Err(ReadlineError::Io(err)) if err.kind() == io::ErrorKind::InvalidData => {
                writeln!(out, "{}", session.error(NOT_UTF8))?;
            }
            Err(err) => return Err(io::Error::other(err)),
        }
    }
}

/// A line-editor helper that only tells [`logs`] what is being typed.
struct TrackTyped;

impl rustyline::Helper for TrackTyped {}
impl rustyline::highlight::Highlighter for TrackTyped {}
impl rustyline::validate::Validator for TrackTyped {}
impl rustyline::completion::Completer for TrackTyped {
    type Candidate = String;
}

impl rustyline::hint::Hinter for TrackTyped {
    type Hint = String;

    fn hint(&self, line: &str, _pos: usize, _ctx: &rustyline::Context<'_>) -> Option<String> {
        logs::typed_line(line);
        None
    }
}

/// Runs one line on a thread; returns its reply, or `ERR interrupted` as soon as
/// the command's cancel flag is set (a wait then stops; a get is left to finish
/// in the background and its reply dropped).
fn run_cancellable(
    shell: &Arc<Shell>,
    session: &mut Session,
    running: &Running,
    line: String,
) -> (Option<String>, bool) {
    let cancel = Arc::new(AtomicBool::new(false));
    *lock(running) = Some(Arc::clone(&cancel));
    let (tx, rx) = mpsc::channel();
    let (shell2, cancel2) = (Arc::clone(shell), Arc::clone(&cancel));
    let mut session2 = session.clone();
    let spawned = std::thread::Builder::new()
        .name("dkv-command".into())
        .spawn(move || {
            let result = session2.respond(&shell2, &line, &cancel2);
            let _ = tx.send((result, session2));
        });
    let result = match spawned {
        Err(err) => (Some(format!("ERR cannot run the command: {err}")), false),
        Ok(_) => loop {
            match rx.recv_timeout(Duration::from_millis(20)) {
                Ok((result, after)) => {
                    *session = after;
                    break result;
                }
                Err(mpsc::RecvTimeoutError::Timeout) if cancel.load(Ordering::SeqCst) => {
                    // A wait sees the flag within 10 ms; give it a moment to say so.
                    match rx.recv_timeout(Duration::from_millis(100)) {
                        Ok((result, _)) => break result,
                        Err(_) => break (Some("ERR interrupted".into()), false),
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    break (Some("ERR the command failed".into()), false)
                }
            }
        },
    };
    *lock(running) = None;
    result
}
