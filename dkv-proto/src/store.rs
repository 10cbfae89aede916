//! The store: every key's latest [`Entry`] (value or tombstone), the merge rule that
//! picks a winner, and the fingerprints that let two stores find their differences.
//!
//! Entries are kept in key-hash order. Each entry has a 64-bit digest of its key,
//! version and content; a range of the hash space is summarised by the wrapping sum
//! of its digests and its entry count. Sums for the top levels of the 16-ary range
//! tree are kept up to date on every change, deep enough that a range below them
//! holds a few dozen entries, so any range's summary costs O(1) or a short scan.

use crate::clock::{Timestamp, Version};
use crate::range::{key_hash, Item, Range, Summary};
use bytes::Bytes;
use std::cmp::Ordering;
use std::collections::{btree_map, BTreeMap, BTreeSet};
use xxhash_rust::xxh3::xxh3_64_with_seed;

/// The fixed seed of entry digests, so every node on every platform and version
/// digests alike.
const DIGEST_SEED: u64 = 0x646b_762f_6469_6773; // "dkv/digs"

/// A key's state on one node: its version and its value, or `None` for a tombstone
/// (the key was deleted).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Who wrote it, when.
    pub version: Version,
    /// The value; `None` is a delete.
    pub value: Option<Bytes>,
}

impl Entry {
    /// Whether this entry is a delete.
    pub fn is_tombstone(&self) -> bool {
        self.value.is_none()
    }

    /// The merge order: by version, and for equal versions (only entries learned from
    /// prototype nodes share one) a tombstone below any value and values by bytes.
    /// Total, so every node keeps the same winner.
    pub fn merge_order(&self, other: &Entry) -> Ordering {
        self.version
            .cmp(&other.version)
            .then_with(|| self.value.cmp(&other.value))
    }

    /// The digest that summarises this entry of `key_hash` in fingerprints.
    pub fn digest(&self, key_hash: u64) -> u64 {
        // Two one-shot hashes on the stack: the value, then a fixed-size record of
        // everything else and the value's hash.
        let (tag, value) = match &self.value {
            None => (0, &[][..]),
            Some(v) => (1, &v[..]),
        };
        let mut fixed = [0u8; 33];
        fixed[..8].copy_from_slice(&xxh3_64_with_seed(value, DIGEST_SEED).to_be_bytes());
        fixed[8..16].copy_from_slice(&key_hash.to_be_bytes());
        fixed[16..24].copy_from_slice(&self.version.ts.0.to_be_bytes());
        fixed[24..32].copy_from_slice(&self.version.node.0);
        fixed[32] = tag;
        xxh3_64_with_seed(&fixed, DIGEST_SEED)
    }
}

/// A key with its entry, as replicated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// The key.
    pub key: String,
    /// Its version and value (or tombstone).
    pub entry: Entry,
}

#[derive(Debug)]
struct Slot {
    key: Box<str>,
    entry: Entry,
    digest: u64,
}

impl Slot {
    fn new(key: &str, entry: &Entry, digest: u64) -> Slot {
        Slot {
            key: key.into(),
            entry: entry.clone(),
            digest,
        }
    }
}

/// The entries of one key hash: almost always one.
#[derive(Debug)]
enum Bucket {
    One(Slot),
    Many(Vec<Slot>),
}

impl Bucket {
    fn slots(&self) -> &[Slot] {
        match self {
            Bucket::One(s) => std::slice::from_ref(s),
            Bucket::Many(v) => v,
        }
    }

    fn slots_mut(&mut self) -> &mut [Slot] {
        match self {
            Bucket::One(s) => std::slice::from_mut(s),
            Bucket::Many(v) => v,
        }
    }

    /// Adds a slot for another key of the same hash.
    fn push(&mut self, slot: Slot) {
        let previous = std::mem::replace(self, Bucket::Many(Vec::new()));
        let mut slots = match previous {
            Bucket::One(s) => vec![s],
            Bucket::Many(v) => v,
        };
        slots.push(slot);
        *self = Bucket::Many(slots);
    }
}

/// Summaries of the top levels of the range tree, kept up to date.
#[derive(Debug)]
struct Tree {
    /// `levels[l][p]` summarises the range at level `l` with prefix `p`.
    levels: Vec<Vec<Summary>>,
}

impl Tree {
    /// Entries a deepest kept range holds on average before the tree grows a level.
    const LEAF: usize = 64;
    /// The deepest level kept (16^5 ranges, 16 MiB), reached at 64 Mi entries.
    const MAX_DEPTH: usize = 5;

    fn new() -> Tree {
        Tree {
            levels: vec![vec![Summary::default()]],
        }
    }

    fn depth(&self) -> usize {
        self.levels.len() - 1
    }

    fn add(&mut self, hash: u64, digest: u64) {
        for (l, level) in self.levels.iter_mut().enumerate() {
            let s = &mut level[index(hash, l)];
            s.fingerprint = s.fingerprint.wrapping_add(digest);
            s.count += 1;
        }
    }

    fn remove(&mut self, hash: u64, digest: u64) {
        for (l, level) in self.levels.iter_mut().enumerate() {
            let s = &mut level[index(hash, l)];
            s.fingerprint = s.fingerprint.wrapping_sub(digest);
            s.count -= 1;
        }
    }

    fn summary(&self, range: Range) -> Option<Summary> {
        let level = self.levels.get(usize::from(range.level()))?;
        level.get(usize::try_from(range.prefix()).ok()?).copied()
    }

    /// The depth a store of `len` entries wants.
    fn wanted_depth(len: usize) -> usize {
        let mut depth = 0;
        while depth < Self::MAX_DEPTH && len > Self::LEAF << (4 * depth) {
            depth += 1;
        }
        depth
    }
}

/// The index of `hash`'s range at `level` (< 16).
fn index(hash: u64, level: usize) -> usize {
    match level {
        0 => 0,
        l => (hash >> (64 - 4 * l)) as usize,
    }
}

/// Every entry a node holds, in key-hash order, with range summaries and an index of
/// tombstones by age.
#[derive(Debug)]
pub(crate) struct Store {
    map: BTreeMap<u64, Bucket>,
    len: usize,
    live: usize,
    tree: Tree,
    tombstones: BTreeSet<(Timestamp, u64)>,
}

impl Store {
    pub(crate) fn new() -> Store {
        Store {
            map: BTreeMap::new(),
            len: 0,
            live: 0,
            tree: Tree::new(),
            tombstones: BTreeSet::new(),
        }
    }

    /// Entries that hold a value.
    pub(crate) fn live_len(&self) -> usize {
        self.live
    }

    /// Tombstones held.
    pub(crate) fn tombstones(&self) -> usize {
        self.len - self.live
    }

    pub(crate) fn get(&self, key: &str) -> Option<&Entry> {
        self.slot(key_hash(key), key).map(|s| &s.entry)
    }

    fn slot(&self, hash: u64, key: &str) -> Option<&Slot> {
        self.map.get(&hash)?.slots().iter().find(|s| &*s.key == key)
    }

    /// Every entry, in key-hash order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, &Entry)> + '_ {
        self.map
            .values()
            .flat_map(Bucket::slots)
            .map(|s| (&*s.key, &s.entry))
    }

    /// Keeps `entry` for `key` if it wins the merge; returns whether it did. One
    /// lookup in the map, whether the key is new or held.
    pub(crate) fn merge(&mut self, key: &str, entry: &Entry) -> bool {
        let hash = key_hash(key);
        let (digest, replaced) = match self.map.entry(hash) {
            btree_map::Entry::Vacant(v) => {
                let digest = entry.digest(hash);
                v.insert(Bucket::One(Slot::new(key, entry, digest)));
                (digest, None)
            }
            btree_map::Entry::Occupied(mut o) => {
                let bucket = o.get_mut();
                match bucket.slots_mut().iter_mut().find(|s| &*s.key == key) {
                    Some(slot) => {
                        if entry.merge_order(&slot.entry) != Ordering::Greater {
                            return false;
                        }
                        let digest = entry.digest(hash);
                        let old_digest = std::mem::replace(&mut slot.digest, digest);
                        let old = std::mem::replace(&mut slot.entry, entry.clone());
                        (digest, Some((old_digest, old)))
                    }
                    None => {
                        let digest = entry.digest(hash);
                        bucket.push(Slot::new(key, entry, digest));
                        (digest, None)
                    }
                }
            }
        };
        if let Some((old_digest, old)) = replaced {
            self.unindex(hash, old_digest, &old);
        }
        self.index(hash, digest, entry);
        self.grow();
        true
    }

    /// Removes and returns the slot of `key` (whose hash is `hash`).
    fn take(&mut self, hash: u64, key: &str) -> Option<Slot> {
        let bucket = self.map.get_mut(&hash)?;
        match bucket {
            Bucket::One(s) if &*s.key == key => match self.map.remove(&hash) {
                Some(Bucket::One(s)) => Some(s),
                _ => None, // unreachable: the bucket was One a moment ago
            },
            Bucket::One(_) => None,
            Bucket::Many(slots) => {
                let i = slots.iter().position(|s| &*s.key == key)?;
                let slot = slots.swap_remove(i);
                if slots.len() == 1 {
                    if let Some(last) = slots.pop() {
                        *bucket = Bucket::One(last);
                    }
                } else if slots.is_empty() {
                    self.map.remove(&hash);
                }
                Some(slot)
            }
        }
    }

    fn index(&mut self, hash: u64, digest: u64, entry: &Entry) {
        self.tree.add(hash, digest);
        self.len += 1;
        match entry.value {
            Some(_) => self.live += 1,
            None => {
                self.tombstones.insert((entry.version.ts, hash));
            }
        }
    }

    fn unindex(&mut self, hash: u64, digest: u64, entry: &Entry) {
        self.tree.remove(hash, digest);
        self.len -= 1;
        match entry.value {
            Some(_) => self.live -= 1,
            None => {
                self.tombstones.remove(&(entry.version.ts, hash));
            }
        }
    }

    /// Deepens the summary tree when the store outgrew it (O(n), amortised over the
    /// 16-fold growth between two deepenings).
    fn grow(&mut self) {
        let depth = Tree::wanted_depth(self.len);
        if depth <= self.tree.depth() {
            return;
        }
        self.tree.levels = (0..=depth)
            .map(|l| vec![Summary::default(); 1 << (4 * l)])
            .collect();
        for (&hash, bucket) in &self.map {
            for slot in bucket.slots() {
                self.tree.add(hash, slot.digest);
            }
        }
    }

    /// Removes every tombstone whose version is older than `cutoff`; returns the
    /// keys removed.
    pub(crate) fn collect_tombstones(&mut self, cutoff: Timestamp) -> Vec<String> {
        let mut removed = Vec::new();
        while let Some(&(ts, hash)) = self.tombstones.first() {
            if ts >= cutoff {
                break;
            }
            let keys: Vec<Box<str>> = self.map.get(&hash).map_or(Vec::new(), |b| {
                b.slots()
                    .iter()
                    .filter(|s| s.entry.is_tombstone() && s.entry.version.ts == ts)
                    .map(|s| s.key.clone())
                    .collect()
            });
            // The index entry goes even if (a bug) no slot matched, so this ends.
            self.tombstones.remove(&(ts, hash));
            for key in keys {
                if let Some(slot) = self.take(hash, &key) {
                    self.unindex(hash, slot.digest, &slot.entry);
                    removed.push(key.into());
                }
            }
        }
        removed
    }

    /// The oldest tombstone's timestamp.
    pub(crate) fn oldest_tombstone(&self) -> Option<Timestamp> {
        self.tombstones.first().map(|(ts, _)| *ts)
    }

    /// The fingerprint and count of `range`.
    pub(crate) fn summary(&self, range: Range) -> Summary {
        if let Some(s) = self.tree.summary(range) {
            return s;
        }
        let mut s = Summary::default();
        for bucket in self.map.range(range.first()..=range.last()).map(|(_, b)| b) {
            for slot in bucket.slots() {
                s.fingerprint = s.fingerprint.wrapping_add(slot.digest);
                s.count += 1;
            }
        }
        s
    }

    /// Every entry in `range`, as items, in hash order.
    pub(crate) fn items(&self, range: Range) -> Vec<Item> {
        self.slots_in(range)
            .map(|(hash, s)| Item {
                key_hash: hash,
                version: s.entry.version,
                digest: s.digest,
            })
            .collect()
    }

    /// Every entry in `range` as records.
    pub(crate) fn records_in(&self, range: Range) -> Vec<Record> {
        self.slots_in(range).map(|(_, s)| record(s)).collect()
    }

    fn slots_in(&self, range: Range) -> impl Iterator<Item = (u64, &Slot)> + '_ {
        self.map
            .range(range.first()..=range.last())
            .flat_map(|(&hash, b)| b.slots().iter().map(move |s| (hash, s)))
    }

    /// The entries whose key hash is `hash`.
    pub(crate) fn records_at(&self, hash: u64) -> Vec<Record> {
        self.map
            .get(&hash)
            .map_or(Vec::new(), |b| b.slots().iter().map(record).collect())
    }

    /// A page of `range`: the entries after key hash `after`, whole key hashes at a
    /// time, at most `max_bytes` of keys and values unless the first hash alone holds
    /// more (so a page with a largest value still fits the receive limit). Also the
    /// last hash included, if the range holds more after it.
    pub(crate) fn page(
        &self,
        range: Range,
        after: Option<u64>,
        max_bytes: usize,
    ) -> (Vec<Record>, Option<u64>) {
        let start = match after {
            None => range.first(),
            Some(u64::MAX) => return (Vec::new(), None),
            Some(h) => (h + 1).max(range.first()),
        };
        let mut records = Vec::new();
        if start > range.last() {
            return (records, None);
        }
        let mut bytes = 0;
        let mut last = None;
        for (&hash, bucket) in self.map.range(start..=range.last()) {
            let size: usize = (bucket.slots().iter())
                .map(|s| s.key.len() + s.entry.value.as_ref().map_or(0, Bytes::len))
                .sum();
            if last.is_some() && bytes + size > max_bytes {
                return (records, last);
            }
            records.extend(bucket.slots().iter().map(record));
            bytes += size;
            last = Some(hash);
        }
        (records, None)
    }
}

fn record(slot: &Slot) -> Record {
    Record {
        key: String::from(&*slot.key),
        entry: slot.entry.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node_id::NodeId;

    fn entry(ts: u64, value: Option<&str>) -> Entry {
        Entry {
            version: Version {
                ts: Timestamp::from_millis(ts),
                node: NodeId([1; 8]),
            },
            value: value.map(|v| Bytes::copy_from_slice(v.as_bytes())),
        }
    }

    #[test]
    fn the_higher_version_wins_and_equal_versions_order_by_content() {
        let mut s = Store::new();
        assert!(s.merge("k", &entry(2, Some("b"))));
        assert!(!s.merge("k", &entry(1, Some("z"))));
        assert!(!s.merge("k", &entry(2, None)), "tombstone below a value");
        assert!(s.merge("k", &entry(2, Some("c"))));
        assert!(!s.merge("k", &entry(2, Some("c"))), "the same entry again");
        assert!(s.merge("k", &entry(3, None)));
        assert_eq!((s.len, s.live_len(), s.tombstones()), (1, 0, 1));
    }

    #[test]
    fn summaries_match_a_scan_at_every_level_as_the_tree_deepens() {
        let mut s = Store::new();
        for i in 0..5_000u64 {
            s.merge(&format!("key-{i}"), &entry(i, Some("v")));
        }
        assert!(s.tree.depth() >= 2);
        for range in [
            Range::ROOT,
            Range::new(1, 3).unwrap(),
            Range::new(2, 0x3a).unwrap(),
            Range::new(4, 0x3a7f).unwrap(),
        ] {
            let mut want = Summary::default();
            for (hash, slot) in s.slots_in(range) {
                assert!(range.contains(hash));
                want.fingerprint = want.fingerprint.wrapping_add(slot.digest);
                want.count += 1;
            }
            assert_eq!(s.summary(range), want, "{range:?}");
        }
        assert_eq!(s.summary(Range::ROOT).count, 5_000);
    }

    #[test]
    fn equal_stores_have_equal_summaries_whatever_the_insertion_order() {
        let (mut a, mut b) = (Store::new(), Store::new());
        for i in 0..300u64 {
            a.merge(&format!("k{i}"), &entry(i, Some("x")));
            b.merge(&format!("k{}", 299 - i), &entry(299 - i, Some("x")));
        }
        b.merge("k7", &entry(1000, None));
        assert_ne!(a.summary(Range::ROOT), b.summary(Range::ROOT));
        a.merge("k7", &entry(1000, None));
        assert_eq!(a.summary(Range::ROOT), b.summary(Range::ROOT));
    }

    #[test]
    fn tombstones_older_than_the_cutoff_are_collected() {
        let mut s = Store::new();
        s.merge("gone", &entry(5, None));
        s.merge("young", &entry(50, None));
        s.merge("live", &entry(1, Some("v")));
        let removed = s.collect_tombstones(Timestamp::from_millis(10));
        assert_eq!(removed, vec!["gone".to_string()]);
        assert!(s.get("gone").is_none() && s.get("young").is_some());
        assert_eq!(s.oldest_tombstone(), Some(Timestamp::from_millis(50)));
        assert_eq!(s.summary(Range::ROOT).count, 2);
    }

    #[test]
    fn pages_cover_a_range_exactly_once() {
        let mut s = Store::new();
        for i in 0..1_000u64 {
            s.merge(&format!("k{i}"), &entry(i, Some("0123456789")));
        }
        let range = Range::new(1, 9).unwrap();
        let mut after = None;
        let mut seen = Vec::new();
        loop {
            let (records, more) = s.page(range, after, 200);
            assert!(!records.is_empty() || more.is_none());
            seen.extend(records.into_iter().map(|r| r.key));
            match more {
                Some(h) => after = Some(h),
                None => break,
            }
        }
        let mut want: Vec<String> = s.records_in(range).into_iter().map(|r| r.key).collect();
        seen.sort();
        want.sort();
        assert_eq!(seen, want);
        assert!(!want.is_empty());
    }
}
