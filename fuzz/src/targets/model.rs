//! The reference model of a node's store and clock: written from the documented
//! rules (hybrid logical clock, clock-offset refusal, `Entry::merge_order`, prototype
//! echoes), not from `dkv-proto`'s code, and fed the same inputs as the node, so
//! that it predicts every [`Applied`] output, every entry counter and the clock.

use bytes::Bytes;
use dkv_proto::wire::{Body, Envelope, Item, Range, Summary};
use dkv_proto::{key_hash, Applied, DecodeError, Entry, Kind, Message, NodeId, Timestamp, Version};
use std::cmp::Ordering;
use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

/// A wall-clock anchor, read the way the node's contract says: `unix_ms` plus the
/// whole milliseconds elapsed since `at`.
#[derive(Clone, Copy, Debug)]
pub struct Wall {
    /// The instant of the reading.
    pub at: Instant,
    /// Milliseconds since the Unix epoch at `at`.
    pub unix_ms: u64,
}

impl Wall {
    /// Wall-clock milliseconds at `now` (not before `at`).
    pub fn ms(&self, now: Instant) -> u64 {
        let elapsed = now.saturating_duration_since(self.at).as_millis();
        self.unix_ms
            .saturating_add(u64::try_from(elapsed).unwrap_or(u64::MAX))
    }
}

/// The timestamp at wall time `ms` with a zero counter: `ms` in the high 48 bits.
pub fn ts_at(ms: u64) -> Timestamp {
    Timestamp(ms << 16)
}

/// What the node must do with one received message.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Prediction {
    /// The one message-verdict counter that moves: `in_<kind>` or a drop reason. For
    /// an accepted `question` or `list`, the node may count `drop_legacy_from_dkv`
    /// instead if the asker is a dkv node it heard from.
    pub verdict: &'static str,
    /// The [`Applied`] outputs, in order.
    pub applied: Vec<Applied>,
    /// Received entries stored (`entries_applied`).
    pub entries_applied: u64,
    /// Received entries that lost the merge (`entries_stale`).
    pub entries_stale: u64,
    /// Received entries refused as too far ahead (`drop_clock_ahead`).
    pub clock_ahead: u64,
    /// Prototype `set` copies of dkv/2 writes ignored (`echoes_ignored`).
    pub echoes_ignored: u64,
}

/// The counter a message of `kind` is counted in when accepted.
pub fn in_counter(kind: Kind) -> &'static str {
    match kind {
        Kind::Set => "in_set",
        Kind::Question => "in_question",
        Kind::Answer => "in_answer",
        Kind::List => "in_list",
        Kind::ListAnswer => "in_list_answer",
        Kind::Put => "in_put",
        Kind::Ask => "in_ask",
        Kind::Sync => "in_sync",
        Kind::Pull => "in_pull",
        Kind::Fetch => "in_fetch",
        Kind::Push => "in_push",
    }
}

/// The counter a message refused with `err` is counted in.
pub fn drop_counter(err: DecodeError) -> &'static str {
    match err {
        DecodeError::Empty => "drop_empty",
        DecodeError::UnknownTopic => "drop_unknown_topic",
        DecodeError::BadId => "drop_bad_id",
        DecodeError::FrameCount => "drop_frame_count",
        DecodeError::KeyNotUtf8 => "drop_key_not_utf8",
        DecodeError::UnknownVersion => "drop_unknown_version",
        DecodeError::BadBody => "drop_bad_body",
        DecodeError::Oversized => "drop_oversized",
        DecodeError::KeyTooLong => "drop_key_too_long",
        DecodeError::ValueTooLarge => "drop_value_too_large",
    }
}

/// The verdict for a decoded message at a node with id `own` (see
/// [`Prediction::verdict`]).
pub fn verdict(own: NodeId, decoded: &Result<Message, DecodeError>) -> &'static str {
    match decoded {
        Err(err) => drop_counter(*err),
        Ok(Message::Answer { asker, .. }) if *asker != own => "drop_answer_not_ours",
        Ok(Message::ListAnswer { asker, .. }) if *asker != own => "drop_list_answer_not_ours",
        Ok(Message::Dkv(e)) if e.from == own || e.to.is_some_and(|to| to != own) => "drop_not_ours",
        Ok(msg) => in_counter(msg.kind()),
    }
}

/// Prototype `set` copies announced by `put`s with `echo`, expected to arrive: a
/// multiset remembering at most `CAP` announcements, oldest forgotten first.
#[derive(Clone, Debug, Default)]
struct Echoes {
    expected: BTreeMap<(String, Bytes), u32>,
    order: VecDeque<(String, Bytes)>,
}

impl Echoes {
    /// As many announcements as a node remembers.
    const CAP: usize = 65_536;

    fn expect(&mut self, key: &str, value: Bytes) {
        let k = (key.to_owned(), value);
        *self.expected.entry(k.clone()).or_default() += 1;
        self.order.push_back(k);
        while self.order.len() > Self::CAP {
            if let Some(old) = self.order.pop_front() {
                self.forget(&old);
            }
        }
    }

    fn consume(&mut self, key: &str, value: &Bytes) -> bool {
        let k = (key.to_owned(), value.clone());
        if !self.expected.contains_key(&k) {
            return false;
        }
        self.forget(&k);
        if let Some(i) = self.order.iter().position(|o| *o == k) {
            self.order.remove(i);
        }
        true
    }

    fn forget(&mut self, k: &(String, Bytes)) {
        if let Some(n) = self.expected.get_mut(k) {
            *n -= 1;
            if *n == 0 {
                self.expected.remove(k);
            }
        }
    }
}

/// What one node must hold: an entry per key (the maximum, under
/// `Entry::merge_order`, of every entry it accepted for the key since the key's last
/// tombstone was collected), its clock, and the echoes it expects.
#[derive(Clone, Debug)]
pub struct Model {
    own: NodeId,
    max_offset_ms: u64,
    /// The entries, by key.
    pub store: BTreeMap<String, Entry>,
    /// The clock: the highest timestamp issued or accepted.
    pub clock: Timestamp,
    echoes: Echoes,
}

impl Model {
    /// The model of a fresh node with id `own` refusing remote versions more than
    /// `max_offset` ahead of its wall time.
    pub fn new(own: NodeId, max_offset: Duration) -> Model {
        Model {
            own,
            max_offset_ms: u64::try_from(max_offset.as_millis()).unwrap_or(u64::MAX),
            store: BTreeMap::new(),
            clock: Timestamp(0),
            echoes: Echoes::default(),
        }
    }

    /// Whether a remote timestamp is refused at wall time `wall_ms`.
    pub fn too_far_ahead(&self, ts: Timestamp, wall_ms: u64) -> bool {
        ts.0 >> 16 > wall_ms.saturating_add(self.max_offset_ms)
    }

    /// A timestamp for a write at wall time `wall_ms`: the wall time, or just above
    /// the clock if the clock is ahead of it.
    fn tick(&mut self, wall_ms: u64) -> Timestamp {
        self.clock = ts_at(wall_ms).max(Timestamp(self.clock.0.saturating_add(1)));
        self.clock
    }

    /// Whether `entry` beats what the model holds for `key`.
    pub fn wins(&self, key: &str, entry: &Entry) -> bool {
        self.store
            .get(key)
            .is_none_or(|held| entry.merge_order(held) == Ordering::Greater)
    }

    fn store_if_wins(&mut self, key: &str, entry: Entry, local: bool, p: &mut Prediction) {
        if !self.wins(key, &entry) {
            p.entries_stale += 1;
            return;
        }
        if !local {
            p.entries_applied += 1;
        }
        self.store.insert(key.to_owned(), entry.clone());
        p.applied.push(Applied {
            key: key.to_owned(),
            entry,
            local,
        });
    }

    /// A received entry with a version of its own: refused if too far ahead, else
    /// observed by the clock and merged.
    fn receive_entry(&mut self, wall_ms: u64, key: &str, entry: Entry, p: &mut Prediction) {
        if entry.version != Version::UNVERSIONED {
            if self.too_far_ahead(entry.version.ts, wall_ms) {
                p.clock_ahead += 1;
                return;
            }
            self.clock = self.clock.max(entry.version.ts);
        }
        self.store_if_wins(key, entry, false, p);
    }

    /// A local `set` (`Some`) or `delete` (`None`) at wall time `wall_ms`: the entry
    /// it must store, with a version above everything the node saw.
    pub fn local_write(&mut self, wall_ms: u64, key: &str, value: Option<Bytes>) -> Applied {
        let ts = self.tick(wall_ms);
        let entry = Entry {
            version: Version { ts, node: self.own },
            value,
        };
        let mut p = Prediction::default();
        self.store_if_wins(key, entry, true, &mut p);
        let [applied] = <[Applied; 1]>::try_from(p.applied)
            .unwrap_or_else(|_| panic!("a local write to {key:?} lost the merge"));
        applied
    }

    /// A message received at wall time `wall_ms`, decoded as `decoded`: what the node
    /// must count and store. Updates the model.
    pub fn receive(&mut self, wall_ms: u64, decoded: &Result<Message, DecodeError>) -> Prediction {
        let mut p = Prediction {
            verdict: verdict(self.own, decoded),
            ..Prediction::default()
        };
        if !p.verdict.starts_with("in_") {
            return p;
        }
        let Ok(msg) = decoded else {
            return p;
        };
        match msg {
            Message::Set { key, value } => {
                if self.echoes.consume(key, value) {
                    p.echoes_ignored += 1;
                    return p;
                }
                // A prototype's write gets a version here, above everything seen;
                // being this node's own, it is never refused as too far ahead.
                let ts = self.tick(wall_ms);
                let entry = Entry {
                    version: Version { ts, node: self.own },
                    value: Some(value.clone()),
                };
                self.store_if_wins(key, entry, false, &mut p);
            }
            Message::Answer { key, value, .. } => {
                let entry = Entry {
                    version: Version::UNVERSIONED,
                    value: Some(value.clone()),
                };
                self.store_if_wins(key, entry, false, &mut p);
            }
            Message::Dkv(Envelope { body, .. }) => match body {
                Body::Put { echo, records } => {
                    for r in records {
                        if *echo {
                            let copy = r.entry.value.clone().unwrap_or_default();
                            self.echoes.expect(&r.key, copy);
                        }
                        self.receive_entry(wall_ms, &r.key, r.entry.clone(), &mut p);
                    }
                }
                Body::Push { records, .. } => {
                    for r in records {
                        self.receive_entry(wall_ms, &r.key, r.entry.clone(), &mut p);
                    }
                }
                Body::Ask { .. } | Body::Sync { .. } | Body::Pull { .. } | Body::Fetch { .. } => {}
            },
            Message::Question { .. } | Message::List { .. } | Message::ListAnswer { .. } => {}
        }
        p
    }
}

/// The fingerprint and count of the entries of `store` in `range`, summed naively.
pub fn summary(store: &BTreeMap<String, Entry>, range: Range) -> Summary {
    let mut s = Summary::default();
    for (key, entry) in store {
        let hash = key_hash(key);
        if range.contains(hash) {
            s.fingerprint = s.fingerprint.wrapping_add(entry.digest(hash));
            s.count += 1;
        }
    }
    s
}

/// The entries of `store` in `range` as items, sorted.
pub fn items(store: &BTreeMap<String, Entry>, range: Range) -> Vec<Item> {
    let mut items: Vec<Item> = store
        .iter()
        .map(|(key, entry)| (key_hash(key), entry))
        .filter(|(hash, _)| range.contains(*hash))
        .map(|(hash, entry)| Item {
            key_hash: hash,
            version: entry.version,
            digest: entry.digest(hash),
        })
        .collect();
    items.sort();
    items
}

/// The keys of `store` with a value (tombstones excluded), sorted.
pub fn live_keys(store: &BTreeMap<String, Entry>) -> Vec<String> {
    store
        .iter()
        .filter(|(_, e)| e.value.is_some())
        .map(|(k, _)| k.clone())
        .collect()
}
