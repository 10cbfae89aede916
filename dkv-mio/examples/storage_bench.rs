//! Compares embedded stores on what a durable dkv node asks of one: committing
//! batches of writes with one fsync each (group commit), one write per fsync, and
//! reading every entry back at start. Prints figures and asserts nothing about speed.
//!
//! Run: `cargo run --release -p dkv-mio --example storage_bench -- [ENTRIES] [ROUNDS]`
//! (defaults 1000000 and 3). Each figure is the median of ROUNDS runs. Entries are
//! what dkv stores: keys `key/NNNNNNNN`, values a 17-byte version header and 100
//! bytes. Files go to a temporary directory under `target/` (same disk as the build).

mod bench;

use bench::{load, median};
use std::path::Path;
use std::time::{Duration, Instant};

const VALUE_LEN: usize = 117;

fn key(i: usize) -> String {
    format!("key/{i:08}")
}

fn value(i: usize) -> Vec<u8> {
    let mut v = vec![b'v'; VALUE_LEN];
    v[..8].copy_from_slice(&(i as u64).to_be_bytes());
    v
}

/// One candidate store, as dkv would use it.
trait Candidate {
    fn name(&self) -> &'static str;
    /// Writes `keys` in one transaction (or batch) and makes it durable (fsync).
    fn commit(&mut self, keys: std::ops::Range<usize>);
    /// Reads every entry back, returning how many there were and their bytes.
    fn scan(&mut self) -> (usize, usize);
    /// Closes and reopens the store (what a restart does).
    fn reopen(&mut self);
}

struct Redb {
    path: std::path::PathBuf,
    db: Option<redb::Database>,
}

const TABLE: redb::TableDefinition<&str, &[u8]> = redb::TableDefinition::new("entries");

impl Redb {
    fn open(dir: &Path) -> Redb {
        let path = dir.join("redb");
        let db = redb::Database::create(&path).unwrap();
        Redb { path, db: Some(db) }
    }
}

impl Candidate for Redb {
    fn name(&self) -> &'static str {
        "redb 2.6"
    }
    fn commit(&mut self, keys: std::ops::Range<usize>) {
        let tx = self.db.as_ref().unwrap().begin_write().unwrap();
        {
            let mut table = tx.open_table(TABLE).unwrap();
            for i in keys {
                table.insert(key(i).as_str(), value(i).as_slice()).unwrap();
            }
        }
        tx.commit().unwrap();
    }
    fn scan(&mut self) -> (usize, usize) {
        use redb::ReadableTable;
        let tx = self.db.as_ref().unwrap().begin_read().unwrap();
        let table = tx.open_table(TABLE).unwrap();
        let (mut n, mut bytes) = (0, 0);
        for row in table.iter().unwrap() {
            let (k, v) = row.unwrap();
            n += 1;
            bytes += k.value().len() + v.value().len();
        }
        (n, bytes)
    }
    fn reopen(&mut self) {
        self.db = None;
        self.db = Some(redb::Database::create(&self.path).unwrap());
    }
}

struct Fjall {
    path: std::path::PathBuf,
    keyspace: Option<(fjall::Keyspace, fjall::PartitionHandle)>,
}

impl Fjall {
    fn open(dir: &Path) -> Fjall {
        let path = dir.join("fjall");
        let mut f = Fjall {
            path,
            keyspace: None,
        };
        f.reopen();
        f
    }
}

impl Candidate for Fjall {
    fn name(&self) -> &'static str {
        "fjall 2.11"
    }
    fn commit(&mut self, keys: std::ops::Range<usize>) {
        let (ks, part) = self.keyspace.as_ref().unwrap();
        let mut batch = ks.batch().durability(Some(fjall::PersistMode::SyncAll));
        for i in keys {
            batch.insert(part, key(i), value(i));
        }
        batch.commit().unwrap();
    }
    fn scan(&mut self) -> (usize, usize) {
        let (_, part) = self.keyspace.as_ref().unwrap();
        let (mut n, mut bytes) = (0, 0);
        for row in part.iter() {
            let (k, v) = row.unwrap();
            n += 1;
            bytes += k.len() + v.len();
        }
        (n, bytes)
    }
    fn reopen(&mut self) {
        self.keyspace = None;
        let ks = fjall::Config::new(&self.path).open().unwrap();
        let part = ks
            .open_partition("entries", fjall::PartitionCreateOptions::default())
            .unwrap();
        self.keyspace = Some((ks, part));
    }
}

struct Sqlite {
    path: std::path::PathBuf,
    conn: Option<rusqlite::Connection>,
}

impl Sqlite {
    fn open(dir: &Path) -> Sqlite {
        let mut s = Sqlite {
            path: dir.join("sqlite.db"),
            conn: None,
        };
        s.reopen();
        s
    }
}

impl Candidate for Sqlite {
    fn name(&self) -> &'static str {
        "sqlite 3 (rusqlite 0.32, WAL, synchronous=FULL)"
    }
    fn commit(&mut self, keys: std::ops::Range<usize>) {
        let conn = self.conn.as_mut().unwrap();
        let tx = conn.transaction().unwrap();
        {
            let mut put = tx
                .prepare_cached("INSERT OR REPLACE INTO entries (key, entry) VALUES (?1, ?2)")
                .unwrap();
            for i in keys {
                put.execute(rusqlite::params![key(i), value(i)]).unwrap();
            }
        }
        tx.commit().unwrap();
    }
    fn scan(&mut self) -> (usize, usize) {
        let conn = self.conn.as_ref().unwrap();
        let mut stmt = conn.prepare("SELECT key, entry FROM entries").unwrap();
        let mut rows = stmt.query([]).unwrap();
        let (mut n, mut bytes) = (0, 0);
        while let Some(row) = rows.next().unwrap() {
            let k = row.get_ref(0).unwrap().as_str().unwrap().len();
            let v = row.get_ref(1).unwrap().as_blob().unwrap().len();
            n += 1;
            bytes += k + v;
        }
        (n, bytes)
    }
    fn reopen(&mut self) {
        self.conn = None;
        let conn = rusqlite::Connection::open(&self.path).unwrap();
        conn.pragma_update(None, "journal_mode", "WAL").unwrap();
        conn.pragma_update(None, "synchronous", "FULL").unwrap();
        conn.execute(
            "CREATE TABLE IF NOT EXISTS entries (key TEXT PRIMARY KEY, entry BLOB NOT NULL) \
             WITHOUT ROWID",
            [],
        )
        .unwrap();
        self.conn = Some(conn);
    }
}

fn dir_size(path: &Path) -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir(path).unwrap() {
        let entry = entry.unwrap();
        let meta = entry.metadata().unwrap();
        total += if meta.is_dir() {
            dir_size(&entry.path())
        } else {
            meta.len()
        };
    }
    total
}

/// Writes/s committing `batch` writes per fsync, for about `budget`, starting at
/// key `from` (keys are new, as a stream of writes would mostly be).
fn commit_rate(c: &mut dyn Candidate, batch: usize, from: usize, budget: Duration) -> f64 {
    let start = Instant::now();
    let mut next = from;
    let mut commits = 0;
    while commits < 10_000 && (commits < 3 || start.elapsed() < budget) {
        c.commit(next..next + batch);
        next += batch;
        commits += 1;
    }
    (next - from) as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("ENTRIES and ROUNDS are numbers"))
        .collect();
    let entries = args.first().copied().unwrap_or(1_000_000);
    let rounds = args.get(1).copied().unwrap_or(3).max(1);
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target");
    std::fs::create_dir_all(&base).unwrap();
    println!(
        "storage bench: {entries} entries of {VALUE_LEN}-byte values; medians of {rounds}; \
         load average {}",
        load()
    );
    type Open = fn(&Path) -> Box<dyn Candidate>;
    let candidates: [Open; 3] = [
        |d| Box::new(Redb::open(d)),
        |d| Box::new(Fjall::open(d)),
        |d| Box::new(Sqlite::open(d)),
    ];
    for open in candidates {
        let (mut single, mut group100, mut group1000) = (vec![], vec![], vec![]);
        let (mut fill, mut reopen, mut scan, mut size) = (vec![], vec![], vec![], 0);
        let mut name = "";
        for _ in 0..rounds {
            let dir = tempfile::tempdir_in(&base).unwrap();
            let mut c = open(dir.path());
            name = c.name();
            // A stream of writes on an empty store.
            single.push(commit_rate(&mut *c, 1, 10_000_000, Duration::from_secs(3)));
            group100.push(commit_rate(
                &mut *c,
                100,
                20_000_000,
                Duration::from_secs(3),
            ));
            group1000.push(commit_rate(
                &mut *c,
                1000,
                30_000_000,
                Duration::from_secs(3),
            ));
            // Fill to `entries` in commits of 10,000, then a restart reads them back.
            let start = Instant::now();
            for from in (0..entries).step_by(10_000) {
                c.commit(from..(from + 10_000).min(entries));
            }
            fill.push(start.elapsed().as_secs_f64());
            let start = Instant::now();
            c.reopen();
            reopen.push(start.elapsed().as_secs_f64());
            let start = Instant::now();
            let (n, _bytes) = c.scan();
            scan.push(start.elapsed().as_secs_f64());
            assert!(n >= entries, "{} read back {n} of {entries}", c.name());
            // And the writes go on after the restart: one per fsync, the big store.
            single.push(commit_rate(&mut *c, 1, 40_000_000, Duration::from_secs(2)));
            size = dir_size(dir.path());
        }
        println!(
            "{name}: 1 write/fsync {:.0}/s; 100/fsync {:.0}/s; 1000/fsync {:.0}/s; \
             fill {entries} in {:.2} s; reopen {:.3} s; read all {:.3} s; {:.0} MB on disk",
            median(&mut single),
            median(&mut group100),
            median(&mut group1000),
            median(&mut fill),
            median(&mut reopen),
            median(&mut scan),
            size as f64 / 1e6
        );
    }
}
