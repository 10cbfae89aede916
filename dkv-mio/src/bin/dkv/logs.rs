//! Logs on stderr through `tracing`. While the REPL waits for a line, a log line
//! is printed above the prompt: the prompt line is cleared, the log line written,
//! and the prompt with what was typed so far drawn again, all in one write.
//!
//! (rustyline's external printer would do this, but with it rustyline stalls on
//! typed-ahead or pasted input until the next key: it waits for the terminal to
//! be readable while the input sits in its own buffer.)

use std::io::{self, IsTerminal, Write};
use std::sync::Mutex;
use tracing_subscriber::filter::LevelFilter;

/// The REPL's prompt.
pub const PROMPT: &str = "dkv> ";

/// While the REPL waits for a line: what has been typed so far.
static TYPED: Mutex<Option<String>> = Mutex::new(None);

/// Sends logs at `level` and above to stderr.
pub fn init(level: LevelFilter) {
    tracing_subscriber::fmt()
        .with_writer(|| LogWriter)
        .with_max_level(level)
        .with_ansi(io::stderr().is_terminal())
        .init();
}

fn typed() -> std::sync::MutexGuard<'static, Option<String>> {
    TYPED.lock().unwrap_or_else(|p| p.into_inner())
}

/// The REPL now waits for a line at the prompt (`true`) or does not (`false`).
pub fn prompt_shown(shown: bool) {
    *typed() = shown.then(String::new);
}

/// The line being typed changed (called by the line editor on every edit).
pub fn typed_line(line: &str) {
    if let Some(typed) = typed().as_mut() {
        line.clone_into(typed);
    }
}

/// One event's formatted line (tracing-subscriber writes each in one call).
struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // Held while writing, so the prompt cannot change in between.
        let typed = typed();
        let Some(line) = typed.as_ref() else {
            return io::stderr().write(buf);
        };
        let mut all = b"\r\x1b[K".to_vec();
        all.extend_from_slice(buf);
        all.extend_from_slice(PROMPT.as_bytes());
        all.extend_from_slice(line.as_bytes());
        io::stderr().write_all(&all)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}
