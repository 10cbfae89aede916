//! Logs on stderr through `tracing`; while the REPL reads a line they are handed
//! to the line editor, which prints them above the prompt instead of through it.

use std::io::{self, IsTerminal, Write};
use std::sync::mpsc::{self, SyncSender};
use std::sync::Mutex;
use tracing_subscriber::filter::LevelFilter;

/// Where log lines go while the REPL runs; `None`: stderr.
static REPL_SINK: Mutex<Option<SyncSender<String>>> = Mutex::new(None);

/// Log lines the REPL's printer may fall behind by; more are dropped, so a
/// logging thread (the node's) never waits for the terminal.
const REPL_BACKLOG: usize = 1024;

/// Sends logs at `level` and above to stderr.
pub fn init(level: LevelFilter) {
    tracing_subscriber::fmt()
        .with_writer(|| LogWriter)
        .with_max_level(level)
        .with_ansi(io::stderr().is_terminal())
        .init();
}

/// From now on log lines go through `printer` (rustyline's external printer).
pub fn start_repl_printer(mut printer: impl rustyline::ExternalPrinter + Send + 'static) {
    let (tx, rx) = mpsc::sync_channel::<String>(REPL_BACKLOG);
    let spawned = std::thread::Builder::new()
        .name("dkv-log-printer".into())
        .spawn(move || {
            for line in rx {
                if printer.print(line).is_err() {
                    return;
                }
            }
        });
    if spawned.is_ok() {
        *lock() = Some(tx);
    }
}

/// Log lines go to stderr again.
pub fn stop_repl_printer() {
    *lock() = None;
}

fn lock() -> std::sync::MutexGuard<'static, Option<SyncSender<String>>> {
    REPL_SINK.lock().unwrap_or_else(|p| p.into_inner())
}

/// One event's formatted line (tracing-subscriber writes each in one call).
struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let Some(sink) = lock().as_ref() {
            // Full or gone: the line is dropped rather than block the caller.
            let _ = sink.try_send(String::from_utf8_lossy(buf).into_owned());
            return Ok(buf.len());
        }
        io::stderr().write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}
