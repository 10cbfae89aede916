//! The node's entries on disk, for a node with a data dir
//! ([`Config::data_dir`](crate::Config::data_dir)): the store (one SQLite file,
//! `DIR/dkv.sqlite`), reading it back into the core at start, and the writer
//! thread that commits what the core applied and acknowledges local writes once
//! the commit holding them is on disk, under the [`SyncPolicy`].
//!
//! The core stays pure: the loop hands this module every `Output::Applied` (a put)
//! and `Output::Collected` (a remove), in order, and each local write's
//! acknowledgement after the changes it made. The writer commits the changes in
//! that order, one transaction per batch, and answers an acknowledgement only after
//! the commit that holds every change queued before it.

use crate::error::Error;
use crate::stats::TransportStats;
use dkv_proto::{Applied, Entry, Node, NodeId, Timestamp, Version};
use rusqlite::{params, Connection, ErrorCode, OpenFlags, OptionalExtension};
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The on-disk format this build writes and reads (SQLite's `user_version`). A
/// data dir with a higher one is refused ([`Error::DataDirNewer`]), never changed.
pub const FORMAT_VERSION: u32 = 1;

/// The file inside the data dir.
pub const DATA_FILE: &str = "dkv.sqlite";

/// SQLite's `application_id` of a dkv data file: `dkv` and a zero byte.
const APPLICATION_ID: i32 = 0x646b_7600;

/// The longest group-commit delay [`SyncPolicy::Group`] accepts.
pub const MAX_GROUP_DELAY: Duration = Duration::from_secs(10);

/// At most this many changes go into one commit.
const MAX_COMMIT: usize = 100_000;

/// Batches of changes the loop may queue for the writer before it waits for it.
const QUEUE: usize = 64;

/// When a durable node's changes reach the disk. Under every policy a local write
/// is acknowledged ([`Dkv::set`](crate::Dkv::set) returns, `OK` is printed) only
/// once the commit holding it is fsynced, so no acknowledged write is lost to a
/// crash or a power cut; they differ in how many writes share one fsync, and so
/// in throughput and latency.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncPolicy {
    /// One fsync per local write: each is committed alone (remote entries
    /// received meanwhile may share its commit). Throughput is the disk's fsync
    /// rate, whatever the number of writers.
    Always,
    /// Group commit: the changes that arrived while the previous commit ran are
    /// committed together, after waiting this long (zero: not at all) from the
    /// first of them for more to join. A write waits for at most the commit in
    /// progress, the delay and its own commit. The default is `Group(ZERO)`;
    /// the delay is at most [`MAX_GROUP_DELAY`].
    Group(Duration),
}

impl Default for SyncPolicy {
    /// Group commit with no added delay.
    fn default() -> SyncPolicy {
        SyncPolicy::Group(Duration::ZERO)
    }
}

impl fmt::Display for SyncPolicy {
    /// `always`, `group` or `group:MS`, as [`FromStr`] reads them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SyncPolicy::Always => write!(f, "always"),
            SyncPolicy::Group(delay) if delay.is_zero() => write!(f, "group"),
            SyncPolicy::Group(delay) => write!(f, "group:{}", delay.as_millis()),
        }
    }
}

impl FromStr for SyncPolicy {
    type Err = String;

    /// `always`, `group` (no added delay) or `group:MS`, MS from 0 to 10000.
    fn from_str(s: &str) -> Result<SyncPolicy, String> {
        let usage = || format!("{s:?} is not a sync policy: always, group or group:MS");
        match s.split_once(':') {
            None if s == "always" => Ok(SyncPolicy::Always),
            None if s == "group" => Ok(SyncPolicy::default()),
            Some(("group", ms)) => {
                let ms: u64 = ms.parse().map_err(|_| usage())?;
                let delay = Duration::from_millis(ms);
                if delay > MAX_GROUP_DELAY {
                    return Err(format!(
                        "the group-commit delay must be 0..={} ms",
                        MAX_GROUP_DELAY.as_millis()
                    ));
                }
                Ok(SyncPolicy::Group(delay))
            }
            _ => Err(usage()),
        }
    }
}

/// How far a node's local writes are acknowledged. The handle numbers writes in
/// the order the loop receives them; a write is acknowledged once its number is
/// at most `done`: once committed (in memory: once applied). One number moves
/// per commit, however many writes it holds: no message per write.
#[derive(Debug, Default)]
pub(crate) struct Acks {
    state: Mutex<AckState>,
    moved: Condvar,
}

#[derive(Debug, Default)]
struct AckState {
    /// Every write numbered up to this is acknowledged.
    done: u64,
    /// Why a commit failed: writes above `done` fail with it.
    failed: Option<String>,
    /// The node has stopped: writes above `done` never will be acknowledged.
    stopped: bool,
}

impl Acks {
    fn state(&self) -> MutexGuard<'_, AckState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Acknowledges every write numbered up to `write`.
    fn done(&self, write: u64) {
        let mut state = self.state();
        state.done = state.done.max(write);
        drop(state);
        self.moved.notify_all();
    }

    /// Fails every write not yet acknowledged.
    fn fail(&self, reason: &str) {
        self.state().failed.get_or_insert_with(|| reason.to_owned());
        self.moved.notify_all();
    }

    /// The node stopped: writes not acknowledged by now never will be.
    fn stop(&self) {
        self.state().stopped = true;
        self.moved.notify_all();
    }

    /// Waits up to `timeout` for [`stop`](Self::stop); whether it came.
    pub(crate) fn wait_stopped(&self, timeout: Duration) -> bool {
        let state = self.state();
        let (state, _) = self
            .moved
            .wait_timeout_while(state, timeout, |s| !s.stopped)
            .unwrap_or_else(|p| p.into_inner());
        state.stopped
    }
}

/// A write made with [`Dkv::set_pending`](crate::Dkv::set_pending) whose
/// acknowledgement has not been waited for yet.
#[derive(Debug)]
#[must_use = "a write is acknowledged only once waited for"]
pub struct Pending {
    acks: Arc<Acks>,
    write: u64,
}

impl Pending {
    /// Write number `write` of the node whose acknowledgements are `acks`.
    pub(crate) fn new(acks: Arc<Acks>, write: u64) -> Pending {
        Pending { acks, write }
    }

    /// Waits until the write is applied and, with a data dir, committed, as
    /// [`Dkv::set`](crate::Dkv::set) does; the same errors.
    pub fn wait(self) -> Result<(), Error> {
        let mut state = self.acks.state();
        loop {
            if state.done >= self.write {
                return Ok(());
            }
            if let Some(reason) = &state.failed {
                return Err(Error::Commit(reason.clone()));
            }
            if state.stopped {
                return Err(Error::Stopped);
            }
            state = self
                .acks
                .moved
                .wait(state)
                .unwrap_or_else(|p| p.into_inner());
        }
    }
}

/// One change to the store, as the core reported it.
enum Change {
    Put {
        key: String,
        entry: Entry,
        local: bool,
    },
    Remove(String),
}

/// What the loop hands the writer at once: changes, and the number of the last
/// local write they hold (acknowledged once they are committed).
struct Batch {
    changes: Vec<Change>,
    last_write: Option<u64>,
}

/// What the store held when it was opened.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Restored {
    /// Entries put back into the core, tombstones included.
    pub(crate) entries: u64,
    /// The highest version timestamp of a tombstone this store ever removed after
    /// the horizon (`Timestamp::ZERO` if none).
    pub(crate) collected_floor: Timestamp,
}

/// An open data dir: the SQLite file, locked for this process.
pub(crate) struct Store {
    conn: Connection,
    dir: PathBuf,
    /// [`PUT`] for [`PUT_ROWS`] rows at once.
    put_rows: String,
}

const PUT: &str = "INSERT OR REPLACE INTO entries (key, ts, node, value) VALUES (?1, ?2, ?3, ?4)";
/// Runs of this many puts go in one statement ([`Store::put_rows`]).
const PUT_ROWS: usize = 32;
const REMOVE: &str = "DELETE FROM entries WHERE key = ?1 RETURNING ts";
const FLOOR: &str = "INSERT INTO meta (name, value) VALUES ('collected_floor', ?1) \
                     ON CONFLICT (name) DO UPDATE SET value = max(value, excluded.value)";

impl Store {
    /// Opens (or creates) the data dir `dir` and takes it for this process. A dir
    /// another process holds, from a newer format, or whose file is not a sound
    /// dkv store is refused with its own error, and left as it is.
    pub(crate) fn open(dir: &Path) -> Result<Store, Error> {
        let fail = |reason: String| Error::DataDir {
            path: dir.to_owned(),
            reason,
        };
        std::fs::create_dir_all(dir).map_err(|e| fail(format!("cannot create it: {e}")))?;
        let path = dir.join(DATA_FILE);
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(&path, flags).map_err(|e| classify(dir, e))?;
        let rows = vec!["(?, ?, ?, ?)"; PUT_ROWS].join(", ");
        let mut store = Store {
            conn,
            dir: dir.to_owned(),
            put_rows: format!(
                "INSERT OR REPLACE INTO entries (key, ts, node, value) VALUES {rows}"
            ),
        };
        let mode = store.setup().map_err(|e| classify(dir, e))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(fail(format!(
                "cannot turn on SQLite's write-ahead log (journal mode {mode})"
            )));
        }
        store.check()?;
        Ok(store)
    }

    /// Locks the file for this connection until it closes (no other process can
    /// read or write it), turns on the write-ahead log and full syncs. Returns the
    /// journal mode now in force.
    fn setup(&mut self) -> rusqlite::Result<String> {
        // Fail at once if another process holds the file, never wait.
        self.conn.busy_timeout(Duration::ZERO)?;
        self.conn.pragma_update(None, "locking_mode", "EXCLUSIVE")?;
        self.conn.pragma_update(None, "page_size", 16384)?;
        // The first read: a file that is not SQLite fails here.
        let mode: String =
            self.conn
                .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
        // In WAL mode, FULL fsyncs the log at every commit.
        self.conn.pragma_update(None, "synchronous", "FULL")?;
        Ok(mode)
    }

    /// Creates the tables in a fresh file; checks an existing one's identity and
    /// format. Takes the write lock, so a second opener fails here at the latest.
    fn check(&mut self) -> Result<(), Error> {
        let dir = self.dir.clone();
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(|e| classify(&dir, e))?;
        let read = |tx: &rusqlite::Transaction| -> rusqlite::Result<(i32, i64, i64)> {
            let app = tx.pragma_query_value(None, "application_id", |r| r.get(0))?;
            let version = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
            let objects = tx.query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get(0))?;
            Ok((app, version, objects))
        };
        let (app, version, objects) = read(&tx).map_err(|e| classify(&dir, e))?;
        let corrupt = |reason: String| Error::DataDirCorrupt {
            path: dir.clone(),
            reason,
        };
        if app == 0 && version == 0 && objects == 0 {
            tx.execute_batch(&format!(
                "CREATE TABLE entries (key TEXT PRIMARY KEY NOT NULL, ts INTEGER NOT NULL, \
                   node BLOB NOT NULL, value BLOB) WITHOUT ROWID;
                 CREATE TABLE meta (name TEXT PRIMARY KEY NOT NULL, value INTEGER NOT NULL) \
                   WITHOUT ROWID;
                 PRAGMA application_id = {APPLICATION_ID};
                 PRAGMA user_version = {FORMAT_VERSION};"
            ))
            .map_err(|e| classify(&dir, e))?;
            tracing::info!(dir = %dir.display(), "created a data dir");
        } else if app != APPLICATION_ID {
            return Err(corrupt(format!(
                "{DATA_FILE} is an SQLite file, but not dkv's (application id {app:#x})"
            )));
        } else if version > i64::from(FORMAT_VERSION) {
            return Err(Error::DataDirNewer {
                path: dir,
                found: version,
                supported: FORMAT_VERSION,
            });
        } else if version < 1 {
            return Err(corrupt(format!("format version {version} is not one")));
        }
        tx.commit().map_err(|e| classify(&dir, e))
    }

    /// Puts every entry back into `node` ([`Node::restore`]), before its first net
    /// up. A row that cannot be an entry is corruption: nothing is skipped.
    ///
    /// The entries are read first and fed to the core in its key-hash order, in
    /// which its store's inserts are sequential: 1,000,000 random-order inserts
    /// take about twice as long as the read, the sort and the ordered inserts.
    pub(crate) fn restore(&mut self, node: &mut Node, now: Instant) -> Result<Restored, Error> {
        let dir = self.dir.clone();
        let mut restored = Restored::default();
        let mut all = Vec::new();
        let mut read = || -> Result<(), RowError> {
            let floor: Option<i64> = self
                .conn
                .query_row(
                    "SELECT value FROM meta WHERE name = 'collected_floor'",
                    [],
                    |r| r.get(0),
                )
                .optional()?;
            restored.collected_floor = Timestamp(floor.map_or(0, |ts| ts as u64));
            let mut select = self
                .conn
                .prepare("SELECT key, ts, node, value FROM entries")?;
            let mut rows = select.query([])?;
            while let Some(row) = rows.next()? {
                let key = row.get_ref(0)?.as_str()?;
                let ts = row.get_ref(1)?.as_i64()?;
                let id: [u8; 8] = row.get_ref(2)?.as_blob()?.try_into().map_err(|_| {
                    RowError::Shape(format!("the node id of {key:?} is not 8 bytes"))
                })?;
                let value = row.get_ref(3)?.as_blob_or_null()?;
                let entry = Entry {
                    version: Version {
                        // Stored as the same 64 bits (SQLite integers are signed).
                        ts: Timestamp(ts as u64),
                        node: NodeId(id),
                    },
                    value: value.map(bytes::Bytes::copy_from_slice),
                };
                all.push((dkv_proto::key_hash(key), key.to_owned(), entry));
            }
            Ok(())
        };
        read().map_err(|e| match e {
            RowError::Sql(e) => classify(&dir, e),
            RowError::Shape(reason) => Error::DataDirCorrupt { path: dir, reason },
        })?;
        all.sort_unstable_by_key(|(hash, _, _)| *hash);
        restored.entries = all.len() as u64;
        for (_, key, entry) in all {
            node.restore(now, &key, entry);
        }
        Ok(restored)
    }

    /// Commits `changes` in one transaction (fsynced: `synchronous = FULL`).
    fn commit(&mut self, changes: &[Change]) -> rusqlite::Result<()> {
        let tx = self.conn.transaction()?;
        {
            let mut put = tx.prepare_cached(PUT)?;
            let mut remove = tx.prepare_cached(REMOVE)?;
            let mut floor: Option<i64> = None;
            let mut put_rows = tx.prepare_cached(&self.put_rows)?;
            let mut rest = changes;
            while let Some(change) = rest.first() {
                let puts = rest
                    .iter()
                    .take(PUT_ROWS)
                    .take_while(|c| matches!(c, Change::Put { .. }))
                    .count();
                if puts == PUT_ROWS {
                    for (i, change) in rest[..PUT_ROWS].iter().enumerate() {
                        if let Change::Put { key, entry, .. } = change {
                            put_rows.raw_bind_parameter(4 * i + 1, key)?;
                            put_rows.raw_bind_parameter(4 * i + 2, entry.version.ts.0 as i64)?;
                            put_rows.raw_bind_parameter(4 * i + 3, &entry.version.node.0[..])?;
                            put_rows.raw_bind_parameter(4 * i + 4, entry.value.as_deref())?;
                        }
                    }
                    put_rows.raw_execute()?;
                    rest = &rest[PUT_ROWS..];
                    continue;
                }
                rest = &rest[1..];
                match change {
                    Change::Put { key, entry, .. } => {
                        put.execute(params![
                            key,
                            entry.version.ts.0 as i64,
                            &entry.version.node.0[..],
                            entry.value.as_deref(),
                        ])?;
                    }
                    Change::Remove(key) => {
                        let ts: Option<i64> = remove.query_row([key], |r| r.get(0)).optional()?;
                        // Compared as the unsigned timestamps they are.
                        if let Some(ts) = ts {
                            if floor.is_none_or(|f| (ts as u64) > (f as u64)) {
                                floor = Some(ts);
                            }
                        }
                    }
                }
            }
            if let Some(floor) = floor {
                tx.execute(FLOOR, [floor])?;
            }
        }
        tx.commit()
    }
}

/// Why a row could not be read back.
enum RowError {
    Sql(rusqlite::Error),
    Shape(String),
}

impl From<rusqlite::Error> for RowError {
    fn from(e: rusqlite::Error) -> RowError {
        RowError::Sql(e)
    }
}

impl From<rusqlite::types::FromSqlError> for RowError {
    fn from(e: rusqlite::types::FromSqlError) -> RowError {
        RowError::Shape(format!("a row is not an entry: {e}"))
    }
}

/// Sorts SQLite's errors about a data dir into locked, corrupt and the rest.
fn classify(dir: &Path, e: rusqlite::Error) -> Error {
    let path = dir.to_owned();
    match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => Error::DataDirLocked { path },
        Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => Error::DataDirCorrupt {
            path,
            reason: e.to_string(),
        },
        _ => Error::DataDir {
            path,
            reason: e.to_string(),
        },
    }
}

/// Counters the writer keeps for the loop's [`TransportStats`].
#[derive(Default)]
struct Counters {
    commits: AtomicU64,
    puts: AtomicU64,
    removes: AtomicU64,
    restored: AtomicU64,
}

/// The loop's side of persistence: changes and acknowledgements gathered while
/// outputs are drained, handed to the writer (or, in memory, acknowledged) when
/// the drain ends.
pub(crate) struct Persistence {
    disk: Option<Disk>,
    changes: Vec<Change>,
    /// The number of the last local write applied since the last flush.
    last_write: Option<u64>,
    acks: Arc<Acks>,
}

/// A running writer thread.
struct Disk {
    queue: Option<mpsc::SyncSender<Batch>>,
    thread: Option<JoinHandle<()>>,
    failed: Arc<AtomicBool>,
    counters: Arc<Counters>,
}

impl Persistence {
    /// A node in memory: writes are acknowledged once applied.
    pub(crate) fn memory(acks: Arc<Acks>) -> Persistence {
        Persistence {
            disk: None,
            changes: Vec::new(),
            last_write: None,
            acks,
        }
    }

    /// Starts the writer thread on `store`. `wake` is called (from the writer)
    /// when a commit fails, so the loop notices [`failed`](Self::failed).
    pub(crate) fn start(
        store: Store,
        policy: SyncPolicy,
        restored: Restored,
        acks: Arc<Acks>,
        name: String,
        wake: impl Fn() + Send + 'static,
    ) -> Result<Persistence, Error> {
        let (queue, batches) = mpsc::sync_channel(QUEUE);
        let failed = Arc::new(AtomicBool::new(false));
        let counters = Arc::new(Counters::default());
        counters.restored.store(restored.entries, Ordering::Relaxed);
        let writer = Writer {
            store,
            policy,
            batches,
            acks: Arc::clone(&acks),
            failed: Arc::clone(&failed),
            counters: Arc::clone(&counters),
            wake: Box::new(wake),
        };
        let thread = std::thread::Builder::new()
            .name(name)
            .spawn(move || writer.run())
            .map_err(Error::EventLoop)?;
        Ok(Persistence {
            disk: Some(Disk {
                queue: Some(queue),
                thread: Some(thread),
                failed,
                counters,
            }),
            changes: Vec::new(),
            last_write: None,
            acks,
        })
    }

    /// Records a change the core applied (persisted at the next [`flush`](Self::flush)).
    pub(crate) fn applied(&mut self, applied: Applied) {
        if self.disk.is_some() {
            self.changes.push(Change::Put {
                key: applied.key,
                entry: applied.entry,
                local: applied.local,
            });
        }
    }

    /// Whether changes are recorded ([`applied`](Self::applied)): only with a data
    /// dir.
    pub(crate) fn records_changes(&self) -> bool {
        self.disk.is_some()
    }

    /// Records a tombstone the core forgot.
    pub(crate) fn collected(&mut self, key: String) {
        if self.disk.is_some() {
            self.changes.push(Change::Remove(key));
        }
    }

    /// Holds back local write number `write`'s acknowledgement until every change
    /// recorded before it is committed (in memory: until the next flush).
    pub(crate) fn ack(&mut self, write: u64) {
        self.last_write = Some(write);
    }

    /// Hands what was recorded to the writer; in memory, acknowledges at once.
    /// Blocks while the writer's queue is full (the disk is behind).
    pub(crate) fn flush(&mut self) {
        if self.changes.is_empty() && self.last_write.is_none() {
            return;
        }
        let batch = Batch {
            changes: std::mem::take(&mut self.changes),
            last_write: self.last_write.take(),
        };
        match self.disk.as_ref().and_then(|d| d.queue.as_ref()) {
            // A writer that is gone has failed and said so to the waiters.
            Some(queue) => {
                let _ = queue.send(batch);
            }
            None => {
                if let Some(write) = batch.last_write {
                    self.acks.done(write);
                }
            }
        }
    }

    /// Whether a commit failed: the node must stop.
    pub(crate) fn failed(&self) -> bool {
        self.disk
            .as_ref()
            .is_some_and(|d| d.failed.load(Ordering::Relaxed))
    }

    /// Copies the writer's counters into `stats`.
    pub(crate) fn fill_stats(&self, stats: &mut TransportStats) {
        if let Some(disk) = &self.disk {
            let c = &disk.counters;
            stats.disk_commits = c.commits.load(Ordering::Relaxed);
            stats.disk_puts = c.puts.load(Ordering::Relaxed);
            stats.disk_removes = c.removes.load(Ordering::Relaxed);
            stats.disk_restored = c.restored.load(Ordering::Relaxed);
        }
    }

    /// Flushes, then waits for the writer to commit everything and close the file;
    /// writes not acknowledged by then fail as stopped.
    pub(crate) fn close(&mut self) {
        self.flush();
        if let Some(disk) = &mut self.disk {
            disk.queue = None;
            if let Some(thread) = disk.thread.take() {
                if thread.join().is_err() {
                    tracing::error!("the disk writer thread panicked");
                }
            }
        }
        self.acks.stop();
    }
}

impl Drop for Persistence {
    fn drop(&mut self) {
        self.close();
    }
}

/// The writer thread: commits batches in order, then acknowledges their writes.
struct Writer {
    store: Store,
    policy: SyncPolicy,
    batches: mpsc::Receiver<Batch>,
    acks: Arc<Acks>,
    failed: Arc<AtomicBool>,
    counters: Arc<Counters>,
    wake: Box<dyn Fn() + Send>,
}

impl Writer {
    fn run(mut self) {
        let mut changes = Vec::new();
        let mut last_write = None;
        // Until the loop closes the queue: take a batch, gather more (waiting
        // for them under group commit), commit, answer.
        while let Ok(first) = self.batches.recv() {
            let mut open = true;
            take(first, &mut changes, &mut last_write);
            let delay = match self.policy {
                SyncPolicy::Group(delay) => delay,
                SyncPolicy::Always => Duration::ZERO,
            };
            if !delay.is_zero() {
                let deadline = Instant::now() + delay;
                while changes.len() < MAX_COMMIT {
                    let left = deadline.saturating_duration_since(Instant::now());
                    match self.batches.recv_timeout(left) {
                        Ok(batch) => take(batch, &mut changes, &mut last_write),
                        Err(mpsc::RecvTimeoutError::Timeout) => break,
                        Err(mpsc::RecvTimeoutError::Disconnected) => {
                            open = false;
                            break;
                        }
                    }
                }
            }
            while open && changes.len() < MAX_COMMIT {
                match self.batches.try_recv() {
                    Ok(batch) => take(batch, &mut changes, &mut last_write),
                    Err(mpsc::TryRecvError::Empty) => break,
                    Err(mpsc::TryRecvError::Disconnected) => open = false,
                }
            }
            self.commit(&mut changes, last_write.take());
        }
    }

    /// Commits `changes` (under `Always`, one transaction per local write), then
    /// acknowledges the writes up to `last_write`, or fails every write waiting.
    fn commit(&mut self, changes: &mut Vec<Change>, last_write: Option<u64>) {
        let mut result = Ok(());
        let mut rest = &changes[..];
        while !rest.is_empty() && result.is_ok() {
            let take = match self.policy {
                // Up to and with the next local write.
                SyncPolicy::Always => rest
                    .iter()
                    .position(|c| matches!(c, Change::Put { local: true, .. }))
                    .map_or(rest.len(), |at| at + 1),
                SyncPolicy::Group(_) => rest.len(),
            };
            let (now, later) = rest.split_at(take);
            rest = later;
            result = if self.failed.load(Ordering::Relaxed) {
                Err("an earlier commit failed".to_string())
            } else {
                self.store.commit(now).map_err(|e| e.to_string())
            };
            if result.is_ok() {
                let removes = now
                    .iter()
                    .filter(|c| matches!(c, Change::Remove(_)))
                    .count() as u64;
                let c = &self.counters;
                c.commits.fetch_add(1, Ordering::Relaxed);
                c.removes.fetch_add(removes, Ordering::Relaxed);
                c.puts
                    .fetch_add(now.len() as u64 - removes, Ordering::Relaxed);
            }
        }
        if self.failed.load(Ordering::Relaxed) && result.is_ok() {
            result = Err("an earlier commit failed".to_string());
        }
        match &result {
            Ok(()) => {
                if let Some(write) = last_write {
                    self.acks.done(write);
                }
            }
            Err(reason) => {
                self.acks.fail(reason);
                if !self.failed.swap(true, Ordering::Relaxed) {
                    tracing::error!(
                        dir = %self.store.dir.display(),
                        %reason,
                        "cannot commit to the data dir; stopping the node"
                    );
                    (self.wake)();
                }
            }
        }
        changes.clear();
    }
}

fn take(batch: Batch, changes: &mut Vec<Change>, last_write: &mut Option<u64>) {
    changes.extend(batch.changes);
    *last_write = batch.last_write.or(*last_write);
}

#[cfg(test)]
mod tests {
    use super::*;
    use dkv_proto::WallClock;

    const T0: u64 = 1_700_000_000_000;

    fn node() -> Node {
        let wall = WallClock {
            at: Instant::now(),
            unix_ms: T0,
        };
        Node::new(dkv_proto::Config::new(NodeId(*b"restored"), 1, wall))
    }

    fn entry(ms: u64, writer: u8, value: Option<&'static str>) -> Entry {
        Entry {
            version: Version {
                ts: Timestamp::from_millis(ms),
                node: NodeId([writer; 8]),
            },
            value: value.map(|v| bytes::Bytes::from_static(v.as_bytes())),
        }
    }

    fn put(key: &str, entry: Entry) -> Change {
        Change::Put {
            key: key.into(),
            entry,
            local: true,
        }
    }

    /// Opens `dir` and reads it into a fresh node.
    fn reopen(dir: &Path) -> Result<(Node, Restored), Error> {
        let mut store = Store::open(dir)?;
        let mut node = node();
        let restored = store.restore(&mut node, Instant::now())?;
        Ok((node, restored))
    }

    /// The error opening `dir` gives; `what` names the mistake if it opens.
    fn refused(dir: &Path, what: &str) -> Error {
        match reopen(dir) {
            Ok(_) => panic!("{what}"),
            Err(err) => err,
        }
    }

    /// A raw connection to a closed data dir's file, to damage it.
    fn raw(dir: &Path) -> Connection {
        Connection::open(dir.join(DATA_FILE)).unwrap()
    }

    #[test]
    fn sync_policies_parse_and_print_as_the_cli_takes_them() {
        for (text, policy) in [
            ("always", SyncPolicy::Always),
            ("group", SyncPolicy::Group(Duration::ZERO)),
            ("group:7", SyncPolicy::Group(Duration::from_millis(7))),
        ] {
            assert_eq!(text.parse::<SyncPolicy>(), Ok(policy));
            assert_eq!(policy.to_string(), text);
        }
        assert_eq!("group:0".parse(), Ok(SyncPolicy::default()));
        for bad in ["", "never", "group:", "group:x", "group:10001", "always:1"] {
            assert!(bad.parse::<SyncPolicy>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn committed_entries_come_back_with_their_versions_and_tombstones() {
        let dir = tempfile::tempdir().unwrap();
        let now = T0 - 60_000;
        let unversioned = Entry {
            version: Version::UNVERSIONED,
            value: Some(bytes::Bytes::from_static(b"from a prototype")),
        };
        let changes = [
            put("a", entry(now, 1, Some("one"))),
            put("gone", entry(now + 1, 2, None)),
            put("proto", unversioned.clone()),
            put("a", entry(now + 2, 3, Some("two"))),
            put("b\n\u{e9} b", entry(now + 3, 4, Some(""))),
        ];
        Store::open(dir.path()).unwrap().commit(&changes).unwrap();
        let (node, restored) = reopen(dir.path()).unwrap();
        assert_eq!(restored.entries, 4);
        assert_eq!(restored.collected_floor, Timestamp::ZERO);
        assert_eq!(node.entry("a"), Some(entry(now + 2, 3, Some("two"))));
        assert_eq!(node.entry("gone"), Some(entry(now + 1, 2, None)));
        assert_eq!(node.value("gone"), None);
        assert_eq!(node.entry("proto"), Some(unversioned));
        assert_eq!(node.entry("b\n\u{e9} b"), Some(entry(now + 3, 4, Some(""))));
        assert_eq!((node.len(), node.tombstones()), (3, 1));
        // The clock restarts above every restored version.
        assert!(node.clock() >= Timestamp::from_millis(now + 3));
    }

    #[test]
    fn a_restored_clock_is_above_versions_ahead_of_the_wall_clock() {
        let dir = tempfile::tempdir().unwrap();
        let ahead = entry(T0 + 3_600_000, 9, Some("from the future"));
        Store::open(dir.path())
            .unwrap()
            .commit(&[put("k", ahead.clone())])
            .unwrap();
        let (mut node, _) = reopen(dir.path()).unwrap();
        assert!(node.clock() >= ahead.version.ts);
        node.set(Instant::now(), "k".into(), "now".into());
        assert!(node.entry("k").unwrap().version > ahead.version);
    }

    #[test]
    fn puts_committed_many_per_statement_keep_their_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut changes = Vec::new();
        for i in 0..10 {
            changes.push(put(&format!("k{i}"), entry(T0 + i, 1, Some("first"))));
        }
        // In the same statement as the first k3.
        changes.push(put("k3", entry(T0 + 50, 2, Some("second"))));
        for i in 10..40 {
            changes.push(put(&format!("k{i}"), entry(T0 + i, 1, Some("first"))));
        }
        changes.push(Change::Remove("k5".into()));
        for i in 40..80 {
            changes.push(put(&format!("k{i}"), entry(T0 + i, 1, Some("first"))));
        }
        changes.push(put("k7", entry(T0 + 90, 3, Some("third"))));
        assert!(changes.len() > 2 * PUT_ROWS);
        Store::open(dir.path()).unwrap().commit(&changes).unwrap();
        let (node, restored) = reopen(dir.path()).unwrap();
        assert_eq!(restored.entries, 79);
        assert_eq!(node.entry("k3"), Some(entry(T0 + 50, 2, Some("second"))));
        assert_eq!(node.entry("k5"), None);
        assert_eq!(node.entry("k7"), Some(entry(T0 + 90, 3, Some("third"))));
        assert_eq!(node.entry("k79"), Some(entry(T0 + 79, 1, Some("first"))));
    }

    #[test]
    fn removes_drop_rows_and_raise_the_collected_floor() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path()).unwrap();
        store
            .commit(&[
                put("old", entry(T0 - 10, 1, None)),
                put("older", entry(T0 - 20, 1, None)),
                put("kept", entry(T0 - 5, 1, Some("v"))),
            ])
            .unwrap();
        let removes = [
            Change::Remove("older".into()),
            Change::Remove("old".into()),
            Change::Remove("never held".into()),
        ];
        store.commit(&removes).unwrap();
        // A lower floor later never lowers it.
        store.commit(&[put("x", entry(T0 - 30, 1, None))]).unwrap();
        store.commit(&[Change::Remove("x".into())]).unwrap();
        drop(store);
        let (node, restored) = reopen(dir.path()).unwrap();
        assert_eq!(restored.entries, 1);
        assert_eq!(node.keys().collect::<Vec<_>>(), ["kept"]);
        assert_eq!(restored.collected_floor, Timestamp::from_millis(T0 - 10));
    }

    #[test]
    fn a_second_open_of_a_held_dir_is_refused_as_locked() {
        let dir = tempfile::tempdir().unwrap();
        let held = Store::open(dir.path()).unwrap();
        match Store::open(dir.path()) {
            Err(Error::DataDirLocked { path }) => assert_eq!(path, dir.path()),
            other => panic!("expected DataDirLocked, got {:?}", other.err()),
        }
        drop(held);
        Store::open(dir.path()).unwrap();
    }

    #[test]
    fn a_newer_format_is_refused_and_left_as_it_is() {
        let dir = tempfile::tempdir().unwrap();
        Store::open(dir.path())
            .unwrap()
            .commit(&[put("k", entry(T0, 1, Some("v")))])
            .unwrap();
        let newer = i64::from(FORMAT_VERSION) + 1;
        raw(dir.path())
            .pragma_update(None, "user_version", newer)
            .unwrap();
        match reopen(dir.path()) {
            Err(Error::DataDirNewer {
                found, supported, ..
            }) => assert_eq!((found, supported), (newer, FORMAT_VERSION)),
            other => panic!("expected DataDirNewer, got {:?}", other.err()),
        }
        let conn = raw(dir.path());
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        let rows: i64 = conn
            .query_row("SELECT count(*) FROM entries", [], |r| r.get(0))
            .unwrap();
        assert_eq!((version, rows), (newer, 1));
    }

    #[test]
    fn garbage_and_foreign_files_are_corrupt_and_left_as_they_are() {
        let garbage: Vec<u8> = (0..10_000u32).map(|i| (i * 7919 % 251) as u8).collect();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(DATA_FILE), &garbage).unwrap();
        let err = refused(dir.path(), "garbage opened");
        assert!(matches!(err, Error::DataDirCorrupt { .. }), "{err}");
        assert_eq!(std::fs::read(dir.path().join(DATA_FILE)).unwrap(), garbage);

        let foreign = tempfile::tempdir().unwrap();
        raw(foreign.path())
            .execute_batch("CREATE TABLE notes (body TEXT); INSERT INTO notes VALUES ('mine');")
            .unwrap();
        let err = refused(foreign.path(), "a foreign file opened");
        assert!(matches!(err, Error::DataDirCorrupt { .. }), "{err}");
        assert!(err.to_string().contains("not dkv's"), "{err}");
        let kept: String = raw(foreign.path())
            .query_row("SELECT body FROM notes", [], |r| r.get(0))
            .unwrap();
        assert_eq!(kept, "mine");
    }

    #[test]
    fn a_damaged_page_is_reported_as_corruption_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let changes: Vec<Change> = (0..5_000)
            .map(|i| {
                put(
                    &format!("key/{i:05}"),
                    entry(T0, 1, Some("some value bytes")),
                )
            })
            .collect();
        Store::open(dir.path()).unwrap().commit(&changes).unwrap();
        let path = dir.path().join(DATA_FILE);
        let mut bytes = std::fs::read(&path).unwrap();
        let pages = bytes.len() / 4096;
        assert!(pages > 10, "{pages} pages");
        let middle = pages / 2 * 4096;
        bytes[middle..middle + 4096].fill(0xa5);
        std::fs::write(&path, &bytes).unwrap();
        let err = refused(dir.path(), "a damaged store restored");
        assert!(matches!(err, Error::DataDirCorrupt { .. }), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), bytes, "the file was changed");
    }

    #[test]
    fn a_row_that_is_not_an_entry_is_corruption() {
        let dir = tempfile::tempdir().unwrap();
        drop(Store::open(dir.path()).unwrap());
        raw(dir.path())
            .execute(
                "INSERT INTO entries (key, ts, node, value) VALUES ('k', 1, x'0102', NULL)",
                [],
            )
            .unwrap();
        let err = refused(dir.path(), "a bad row restored");
        assert!(err.to_string().contains("not 8 bytes"), "{err}");
        assert!(matches!(err, Error::DataDirCorrupt { .. }), "{err}");
    }

    /// Starts a writer on `dir`, makes `writes` local puts through it (each
    /// acknowledged), closes it and returns its commit count.
    fn write_through(dir: &Path, policy: SyncPolicy, writes: usize) -> u64 {
        let store = Store::open(dir).unwrap();
        let acks = Arc::new(Acks::default());
        let restored = Restored::default();
        let mut persist = Persistence::start(
            store,
            policy,
            restored,
            Arc::clone(&acks),
            "t".into(),
            || {},
        )
        .unwrap();
        for i in 0..writes {
            persist.applied(Applied {
                key: format!("k{i}"),
                entry: entry(T0 + i as u64, 1, Some("v")),
                local: true,
            });
            persist.ack(i as u64 + 1);
        }
        persist.flush();
        for i in 0..writes {
            Pending::new(Arc::clone(&acks), i as u64 + 1)
                .wait()
                .unwrap();
        }
        let mut stats = TransportStats::default();
        persist.fill_stats(&mut stats);
        assert_eq!(stats.disk_puts, writes as u64);
        persist.close();
        stats.disk_commits
    }

    #[test]
    fn acknowledged_writes_are_committed_one_fsync_each_under_always() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(write_through(dir.path(), SyncPolicy::Always, 20), 20);
        let (node, _) = reopen(dir.path()).unwrap();
        assert_eq!(node.len(), 20);
    }

    #[test]
    fn group_commit_puts_writes_queued_together_under_one_fsync() {
        let dir = tempfile::tempdir().unwrap();
        let policy = SyncPolicy::Group(Duration::from_millis(5));
        assert_eq!(write_through(dir.path(), policy, 20), 1);
        let (node, _) = reopen(dir.path()).unwrap();
        assert_eq!(node.len(), 20);
    }

    #[test]
    fn a_node_in_memory_acknowledges_at_the_flush_and_fails_the_rest_when_it_stops() {
        let acks = Arc::new(Acks::default());
        let mut persist = Persistence::memory(Arc::clone(&acks));
        persist.applied(Applied {
            key: "k".into(),
            entry: entry(T0, 1, Some("v")),
            local: true,
        });
        persist.ack(1);
        assert_eq!(acks.state().done, 0, "acknowledged before the flush");
        persist.flush();
        assert_eq!(acks.state().done, 1);
        assert!(!persist.failed());
        persist.close();
        Pending::new(Arc::clone(&acks), 1).wait().unwrap();
        let never = Pending::new(acks, 2).wait();
        assert!(matches!(never, Err(Error::Stopped)), "{never:?}");
    }

    #[test]
    fn a_failed_commit_fails_the_writes_after_the_last_acknowledged_one() {
        let acks = Arc::new(Acks::default());
        acks.done(3);
        acks.fail("the disk is full");
        acks.fail("a later failure");
        acks.stop();
        Pending::new(Arc::clone(&acks), 3).wait().unwrap();
        match Pending::new(acks, 4).wait() {
            Err(Error::Commit(reason)) => assert_eq!(reason, "the disk is full"),
            other => panic!("expected a commit error, got {other:?}"),
        }
    }

    #[test]
    fn a_waiter_wakes_when_its_write_is_acknowledged() {
        let acks = Arc::new(Acks::default());
        let waiter = {
            let pending = Pending::new(Arc::clone(&acks), 2);
            std::thread::spawn(move || pending.wait())
        };
        acks.done(1);
        std::thread::sleep(Duration::from_millis(20));
        assert!(!waiter.is_finished(), "woke for an earlier write");
        acks.done(2);
        waiter.join().unwrap().unwrap();
    }
}
