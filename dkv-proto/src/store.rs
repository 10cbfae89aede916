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
use std::collections::BTreeSet;
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
        merge_order(
            (self.version, self.value.as_deref()),
            (other.version, other.value.as_deref()),
        )
    }

    /// The digest that summarises this entry of `key_hash` in fingerprints.
    pub fn digest(&self, key_hash: u64) -> u64 {
        digest(key_hash, self.version, self.value.as_deref())
    }
}

/// [`Entry::merge_order`] of two (version, value) pairs.
fn merge_order(a: (Version, Option<&[u8]>), b: (Version, Option<&[u8]>)) -> Ordering {
    a.0.cmp(&b.0).then_with(|| a.1.cmp(&b.1))
}

/// [`Entry::digest`] of an entry of `key_hash` with `version` and `value`.
fn digest(key_hash: u64, version: Version, value: Option<&[u8]>) -> u64 {
    // Two one-shot hashes on the stack: the value, then a fixed-size record of
    // everything else and the value's hash.
    let (tag, value) = match value {
        None => (0, &[][..]),
        Some(v) => (1, v),
    };
    let mut fixed = [0u8; 33];
    fixed[..8].copy_from_slice(&xxh3_64_with_seed(value, DIGEST_SEED).to_be_bytes());
    fixed[8..16].copy_from_slice(&key_hash.to_be_bytes());
    fixed[16..24].copy_from_slice(&version.ts.0.to_be_bytes());
    fixed[24..32].copy_from_slice(&version.node.0);
    fixed[32] = tag;
    xxh3_64_with_seed(&fixed, DIGEST_SEED)
}

/// A key with its entry, as replicated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// The key.
    pub key: String,
    /// Its version and value (or tombstone).
    pub entry: Entry,
}

/// Key bytes a slot holds inline; a longer key has an allocation of its own.
const INLINE_KEY: usize = 22;

/// A stored key: inline when short (no allocation), else boxed.
#[derive(Debug)]
enum StoredKey {
    Inline(u8, [u8; INLINE_KEY]),
    Boxed(Box<str>),
}

impl StoredKey {
    /// A copy of `key`.
    fn copied(key: &str) -> StoredKey {
        Self::inline(key).unwrap_or_else(|| StoredKey::Boxed(key.into()))
    }

    /// `key` itself when it is long (its buffer kept, not copied), else inline.
    fn adopted(key: String) -> StoredKey {
        Self::inline(&key).unwrap_or_else(|| StoredKey::Boxed(key.into_boxed_str()))
    }

    fn inline(key: &str) -> Option<StoredKey> {
        let mut bytes = [0; INLINE_KEY];
        bytes.get_mut(..key.len())?.copy_from_slice(key.as_bytes());
        Some(StoredKey::Inline(key.len() as u8, bytes))
    }

    fn bytes(&self) -> &[u8] {
        match self {
            StoredKey::Inline(len, bytes) => &bytes[..usize::from(*len)],
            StoredKey::Boxed(key) => key.as_bytes(),
        }
    }
}

/// One key's entry as stored (its key hash is kept apart, in its [`Leaf`]): inline
/// but for a long key and the value, whose allocation is the one the decoder made
/// when the entry came from a peer (the store adopts it) and a copy otherwise.
/// Never a slice of a received frame, which would keep the frame alive. 64 bytes
/// on 64-bit targets.
#[derive(Debug)]
pub(crate) struct Slot {
    digest: u64,
    version: Version,
    /// `None` for a tombstone.
    value: Option<Box<[u8]>>,
    key: StoredKey,
}

impl Slot {
    /// The key.
    pub(crate) fn key(&self) -> &str {
        // The bytes were copied from a `str`, whole, so they are UTF-8.
        std::str::from_utf8(self.key.bytes()).unwrap_or_default()
    }

    /// The value; `None` for a tombstone.
    pub(crate) fn value(&self) -> Option<&[u8]> {
        self.value.as_deref()
    }

    /// Whether this is a tombstone.
    pub(crate) fn is_tombstone(&self) -> bool {
        self.value.is_none()
    }

    /// The entry, its value copied out.
    pub(crate) fn entry(&self) -> Entry {
        Entry {
            version: self.version,
            value: self.value().map(Bytes::copy_from_slice),
        }
    }
}

/// A value to store: copied if borrowed, adopted if owned (no copy when the
/// `Bytes` is the only handle on its whole buffer, as a decoded value is).
fn stored_value(value: Option<Bytes>) -> Option<Box<[u8]>> {
    value.map(|v| Vec::from(v).into_boxed_slice())
}

/// `slots` as records, their values copied into one buffer they share: one
/// allocation, not one per record, as records are sent and dropped soon.
fn records(slots: &[&Slot]) -> Vec<Record> {
    let values = slots.iter().filter_map(|s| s.value());
    let mut buffer = Vec::with_capacity(values.clone().map(<[u8]>::len).sum());
    values.for_each(|v| buffer.extend_from_slice(v));
    let buffer = Bytes::from(buffer);
    let mut at = 0;
    let mut part = |len: usize| {
        at += len;
        buffer.slice(at - len..at)
    };
    (slots.iter())
        .map(|s| Record {
            key: s.key().to_owned(),
            entry: Entry {
                version: s.version,
                value: s.value().map(|v| part(v.len())),
            },
        })
        .collect()
}

/// The entries of one range at the summary tree's deepest level. The slots stay
/// where they were added; the order (by key hash, then key) is kept in two small
/// arrays beside them: the hashes, and which slot each one is. A new entry then
/// moves 12 bytes per later entry, not a 64-byte slot, and finding a key reads a
/// line or two of hashes (where the hash would be in a uniform spread), then one
/// slot.
#[derive(Debug, Default)]
struct Leaf {
    /// Key hashes, in order.
    hashes: Vec<u64>,
    /// `order[i]` is the index in `slots` of the entry of `hashes[i]`.
    order: Vec<u32>,
    slots: Vec<Slot>,
}

impl Leaf {
    fn with_capacity(n: usize) -> Leaf {
        Leaf {
            hashes: Vec::with_capacity(n),
            order: Vec::with_capacity(n),
            slots: Vec::with_capacity(n),
        }
    }

    fn len(&self) -> usize {
        self.hashes.len()
    }

    /// The `i`th entry in order.
    fn slot(&self, i: usize) -> &Slot {
        &self.slots[self.order[i] as usize]
    }

    fn slot_mut(&mut self, i: usize) -> &mut Slot {
        &mut self.slots[self.order[i] as usize]
    }

    /// Where in order the entry of `key` (of `hash`) is, or would go. `fixed_bits`:
    /// the top bits every hash in this leaf shares.
    fn find(&self, hash: u64, key: &[u8], fixed_bits: u32) -> Result<usize, usize> {
        let mut i = first_at_least(&self.hashes, hash, guess(hash, self.len(), fixed_bits));
        while self.hashes.get(i) == Some(&hash) {
            match self.slot(i).key.bytes().cmp(key) {
                Ordering::Less => i += 1,
                Ordering::Equal => return Ok(i),
                Ordering::Greater => break,
            }
        }
        Err(i)
    }

    /// Inserts `slot` of `hash` at `i` in order, growing a full leaf by half:
    /// leaves are many and small, and doubling left 41% more room than entries
    /// at 1,000,000 keys (this, 20%).
    fn insert(&mut self, i: usize, hash: u64, slot: Slot) {
        if self.slots.len() == self.slots.capacity() {
            let more = self.slots.len() / 2 + 1;
            self.slots.reserve_exact(more);
            self.hashes.reserve_exact(more);
            self.order.reserve_exact(more);
        }
        // A leaf cannot hold 2^32 entries: that is 256 GiB of slots.
        self.order.insert(i, self.slots.len() as u32);
        self.hashes.insert(i, hash);
        self.slots.push(slot);
    }

    /// Appends `slot` of `hash`, the last in order so far.
    fn push(&mut self, hash: u64, slot: Slot) {
        self.insert(self.len(), hash, slot);
    }

    /// Removes the `i`th entry in order; the last slot takes its place.
    fn remove(&mut self, i: usize) -> Slot {
        self.hashes.remove(i);
        let at = self.order.remove(i);
        let last = (self.slots.len() - 1) as u32;
        if let Some(o) = self.order.iter_mut().find(|o| **o == last) {
            *o = at;
        }
        self.slots.swap_remove(at as usize)
    }

    /// The positions in order of the entries whose key hash lies in `first..=last`.
    fn run(&self, first: u64, last: u64) -> std::ops::Range<usize> {
        let start = self.hashes.partition_point(|&h| h < first);
        let end = self.hashes.partition_point(|&h| h <= last);
        start..end
    }

    /// The entries at `positions` in order, with their key hashes.
    fn entries(&self, positions: std::ops::Range<usize>) -> impl Iterator<Item = (u64, &Slot)> {
        positions.map(|i| (self.hashes[i], self.slot(i)))
    }

    /// Takes every entry out, in order, with its key hash.
    fn into_entries(self) -> impl Iterator<Item = (u64, Slot)> {
        let mut slots: Vec<Option<Slot>> = self.slots.into_iter().map(Some).collect();
        (self.hashes.into_iter().zip(self.order))
            .filter_map(move |(hash, at)| Some((hash, slots[at as usize].take()?)))
    }
}

/// Where `hash` would sit among `n` hashes of a leaf whose hashes share their top
/// `fixed_bits`: key hashes are uniform within a leaf's range, so at the share of
/// the range below it.
fn guess(hash: u64, n: usize, fixed_bits: u32) -> usize {
    let below = u128::from(hash.wrapping_shl(fixed_bits));
    ((below * n as u128) >> 64) as usize
}

/// The first position in sorted `hashes` holding `hash` or more, searched outward
/// from `near` in a window that doubles: a line or two when the guess is good, and
/// O(log n) steps however the hashes cluster (keys can be chosen to share a range).
fn first_at_least(hashes: &[u64], hash: u64, near: usize) -> usize {
    let n = hashes.len();
    let mut width = 4;
    loop {
        let (lo, hi) = (
            near.saturating_sub(width).min(n),
            near.saturating_add(width).min(n),
        );
        let from_lo = lo == 0 || hashes[lo - 1] < hash;
        let to_hi = hi == n || hashes[hi] >= hash;
        if from_lo && to_hi {
            return lo + hashes[lo..hi].partition_point(|&h| h < hash);
        }
        width *= 2;
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

/// Where a winning entry goes: its key hash, leaf, index there (`Ok` if the key is
/// held) and digest.
struct Place {
    hash: u64,
    leaf: usize,
    at: Result<usize, usize>,
    digest: u64,
}

/// Every entry a node holds, in key-hash order, with range summaries and an index of
/// tombstones by age.
#[derive(Debug)]
pub(crate) struct Store {
    /// One leaf per range at the tree's deepest level, in hash order; each holds the
    /// entries of its range sorted by key hash, then key.
    leaves: Vec<Leaf>,
    len: usize,
    live: usize,
    tree: Tree,
    tombstones: BTreeSet<(Timestamp, u64)>,
}

impl Store {
    pub(crate) fn new() -> Store {
        Store {
            leaves: vec![Leaf::default()],
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

    /// The entry held for `key`.
    pub(crate) fn get(&self, key: &str) -> Option<&Slot> {
        let hash = key_hash(key);
        let leaf = &self.leaves[self.leaf_of(hash)];
        let found = leaf.find(hash, key.as_bytes(), self.fixed_bits());
        found.ok().map(|i| leaf.slot(i))
    }

    fn leaf_of(&self, hash: u64) -> usize {
        index(hash, self.tree.depth())
    }

    /// The top bits the key hashes in one leaf share.
    fn fixed_bits(&self) -> u32 {
        4 * self.tree.depth() as u32
    }

    /// Reads, for each of `hashes`, the lines a merge of its key touches first (its
    /// leaf's header, the hashes and order indices near where it would sit, the
    /// leaf's last slot, next to where a new one goes, and its deepest summary),
    /// all in one go: their cache misses overlap, and the merges that follow find
    /// those lines in cache. Returns a value only so that the reads are kept.
    pub(crate) fn warm(&self, hashes: &[u64]) -> u64 {
        let fixed = self.fixed_bits();
        let deepest = self.tree.levels.last();
        hashes.iter().fold(0, |acc, &hash| {
            let at = self.leaf_of(hash);
            let leaf = &self.leaves[at];
            let i = guess(hash, leaf.len(), fixed);
            let near = leaf.hashes.get(i).copied().unwrap_or(0);
            let order = leaf.order.get(i).map_or(0, |&o| u64::from(o));
            let last = leaf.slots.last().map_or(0, |s| s.digest);
            let summary = deepest.and_then(|level| level.get(at));
            acc ^ near ^ order ^ last ^ summary.map_or(0, |s| s.count)
        })
    }

    /// Every entry, in key-hash order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Slot> + '_ {
        (self.leaves.iter()).flat_map(|leaf| leaf.entries(0..leaf.len()).map(|(_, s)| s))
    }

    /// Keeps a copy of `entry` for `key` if it wins the merge; returns whether it
    /// did.
    pub(crate) fn merge(&mut self, key: &str, entry: &Entry) -> bool {
        let Some(place) = self.place(key, entry) else {
            return false;
        };
        let value = entry.value.as_deref().map(Box::from);
        self.put(place, || StoredKey::copied(key), entry.version, value);
        true
    }

    /// Keeps `record` itself if it wins the merge: its value's buffer (and a long
    /// key's) becomes the store's, with no copy when nothing else shares it, as
    /// when it was just decoded. Returns whether it won.
    pub(crate) fn adopt(&mut self, record: Record) -> bool {
        let Some(place) = self.place(&record.key, &record.entry) else {
            return false;
        };
        let Record { key, entry } = record;
        let value = stored_value(entry.value);
        self.put(place, || StoredKey::adopted(key), entry.version, value);
        true
    }

    /// Where `entry` for `key` goes if it wins the merge; `None` if it loses.
    fn place(&self, key: &str, entry: &Entry) -> Option<Place> {
        let hash = key_hash(key);
        let leaf = self.leaf_of(hash);
        let at = self.leaves[leaf].find(hash, key.as_bytes(), self.fixed_bits());
        if let Ok(i) = at {
            let held = self.leaves[leaf].slot(i);
            let new = (entry.version, entry.value.as_deref());
            if merge_order(new, (held.version, held.value())) != Ordering::Greater {
                return None;
            }
        }
        let digest = entry.digest(hash);
        Some(Place {
            hash,
            leaf,
            at,
            digest,
        })
    }

    /// Stores a winning entry where [`place`](Self::place) found it goes; `key` is
    /// called only for a key not held yet.
    fn put(
        &mut self,
        place: Place,
        key: impl FnOnce() -> StoredKey,
        version: Version,
        value: Option<Box<[u8]>>,
    ) {
        let Place {
            hash,
            leaf,
            at,
            digest,
        } = place;
        let tombstone = value.is_none();
        let leaf = &mut self.leaves[leaf];
        match at {
            Ok(i) => {
                let slot = leaf.slot_mut(i);
                let old = (slot.digest, slot.version.ts, slot.is_tombstone());
                (slot.digest, slot.version, slot.value) = (digest, version, value);
                self.unindex(hash, old.0, old.1, old.2);
            }
            Err(i) => {
                let slot = Slot {
                    digest,
                    version,
                    value,
                    key: key(),
                };
                leaf.insert(i, hash, slot);
            }
        }
        self.index(hash, digest, version.ts, tombstone);
        self.grow();
    }

    fn index(&mut self, hash: u64, digest: u64, ts: Timestamp, tombstone: bool) {
        self.tree.add(hash, digest);
        self.len += 1;
        match tombstone {
            false => self.live += 1,
            true => {
                self.tombstones.insert((ts, hash));
            }
        }
    }

    fn unindex(&mut self, hash: u64, digest: u64, ts: Timestamp, tombstone: bool) {
        self.tree.remove(hash, digest);
        self.len -= 1;
        match tombstone {
            false => self.live -= 1,
            true => {
                self.tombstones.remove(&(ts, hash));
            }
        }
    }

    /// Deepens the summary tree and splits the leaves when the store outgrew them
    /// (O(n), amortised over the 16-fold growth between two deepenings).
    fn grow(&mut self) {
        let depth = Tree::wanted_depth(self.len);
        if depth <= self.tree.depth() {
            return;
        }
        self.tree.levels = (0..=depth)
            .map(|l| vec![Summary::default(); 1 << (4 * l)])
            .collect();
        let mut sizes = vec![0; 1 << (4 * depth)];
        for leaf in &self.leaves {
            leaf.hashes
                .iter()
                .for_each(|&h| sizes[index(h, depth)] += 1);
        }
        let mut leaves: Vec<Leaf> = sizes.into_iter().map(Leaf::with_capacity).collect();
        // In order, so every new leaf is too.
        for old in std::mem::take(&mut self.leaves) {
            for (hash, slot) in old.into_entries() {
                self.tree.add(hash, slot.digest);
                leaves[index(hash, depth)].push(hash, slot);
            }
        }
        self.leaves = leaves;
    }

    /// Removes every tombstone whose version is older than `cutoff`; returns the
    /// keys removed.
    pub(crate) fn collect_tombstones(&mut self, cutoff: Timestamp) -> Vec<String> {
        let mut removed = Vec::new();
        while let Some(&(ts, hash)) = self.tombstones.first() {
            if ts >= cutoff {
                break;
            }
            // The index entry goes even if (a bug) no slot matched, so this ends.
            self.tombstones.remove(&(ts, hash));
            let l = self.leaf_of(hash);
            let leaf = &mut self.leaves[l];
            let mut i = leaf.hashes.partition_point(|&h| h < hash);
            let mut gone = Vec::new();
            while leaf.hashes.get(i) == Some(&hash) {
                if leaf.slot(i).is_tombstone() && leaf.slot(i).version.ts == ts {
                    gone.push(leaf.remove(i));
                } else {
                    i += 1;
                }
            }
            for slot in gone {
                self.unindex(hash, slot.digest, ts, true);
                removed.push(slot.key().to_owned());
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
        for (_, slot) in self.slots_in(range.first(), range.last()) {
            s.fingerprint = s.fingerprint.wrapping_add(slot.digest);
            s.count += 1;
        }
        s
    }

    /// Every entry in `range`, as items, in hash order.
    pub(crate) fn items(&self, range: Range) -> Vec<Item> {
        self.slots_in(range.first(), range.last())
            .map(|(hash, s)| Item {
                key_hash: hash,
                version: s.version,
                digest: s.digest,
            })
            .collect()
    }

    /// Every entry in `range` as records.
    pub(crate) fn records_in(&self, range: Range) -> Vec<Record> {
        self.records_between(range.first(), range.last())
    }

    /// The entries whose key hash lies in `first..=last` as records.
    fn records_between(&self, first: u64, last: u64) -> Vec<Record> {
        let slots: Vec<&Slot> = self.slots_in(first, last).map(|(_, s)| s).collect();
        records(&slots)
    }

    /// The entries whose key hash lies in `first..=last` (`first <= last`), with
    /// their key hashes, in order.
    fn slots_in(&self, first: u64, last: u64) -> impl Iterator<Item = (u64, &Slot)> + '_ {
        self.leaves[self.leaf_of(first)..=self.leaf_of(last)]
            .iter()
            .flat_map(move |leaf| leaf.entries(leaf.run(first, last)))
    }

    /// The entries whose key hash is `hash`.
    pub(crate) fn records_at(&self, hash: u64) -> Vec<Record> {
        self.records_between(hash, hash)
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
        if start > range.last() {
            return (Vec::new(), None);
        }
        let mut page: Vec<&Slot> = Vec::new();
        let mut bytes = 0;
        let mut last = None;
        let mut entries = self.slots_in(start, range.last()).peekable();
        // A key hash's entries are adjacent: each hash's group goes whole.
        while let Some((hash, first)) = entries.next() {
            let group = page.len();
            page.push(first);
            while let Some((_, s)) = entries.next_if(|(h, _)| *h == hash) {
                page.push(s);
            }
            let size: usize = (page[group..].iter())
                .map(|s| s.key.bytes().len() + s.value().map_or(0, <[u8]>::len))
                .sum();
            if last.is_some() && bytes + size > max_bytes {
                page.truncate(group);
                return (records(&page), last);
            }
            bytes += size;
            last = Some(hash);
        }
        (records(&page), None)
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
    fn the_search_from_a_guess_finds_the_first_hash_at_least_wherever_it_starts() {
        // Clustered hashes (a bad guess) and runs of equal hashes.
        let hashes: Vec<u64> = (0..300u64).map(|i| 1_000 + i / 3).collect();
        for hash in [0, 999, 1_000, 1_001, 1_050, 1_099, 1_100, u64::MAX] {
            let want = hashes.partition_point(|&h| h < hash);
            for near in [0, 1, 7, 150, 299, 300, 10_000] {
                assert_eq!(first_at_least(&hashes, hash, near), want, "{hash} {near}");
            }
        }
        assert_eq!(first_at_least(&[], 5, 0), 0);
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
            for (hash, slot) in s.slots_in(range.first(), range.last()) {
                assert!(range.contains(hash));
                want.fingerprint = want.fingerprint.wrapping_add(slot.digest);
                want.count += 1;
            }
            assert_eq!(s.summary(range), want, "{range:?}");
        }
        assert_eq!(s.summary(Range::ROOT).count, 5_000);
        let hashes: Vec<u64> = s.leaves.iter().flat_map(|l| l.hashes.clone()).collect();
        assert!(
            hashes.is_sorted() && hashes.len() == 5_000,
            "key-hash order"
        );
        assert!((0..5_000u64).all(|i| s.get(&format!("key-{i}")).is_some()));
    }

    #[test]
    fn a_stored_value_is_its_own_copy_and_replaced_whatever_its_length() {
        let frame = Bytes::from(vec![7u8; 1 << 20]);
        let mut e = entry(1, None);
        e.value = Some(frame.slice(10..110));
        let mut s = Store::new();
        assert!(s.merge("k", &e));
        drop(e);
        assert!(
            frame.is_unique(),
            "the store keeps no part of the frame alive"
        );
        assert_eq!(s.get("k").unwrap().value(), Some(&[7u8; 100][..]));
        for (ts, value) in [
            (2, Some("same length")),
            (3, Some("longer value")),
            (4, None),
        ] {
            assert!(s.merge("k", &entry(ts, value)));
            assert_eq!(s.get("k").unwrap().entry(), entry(ts, value));
            assert_eq!(s.get("k").unwrap().key(), "k");
        }
        assert!(s.merge("k", &entry(5, Some(""))));
        assert_eq!(
            s.get("k").unwrap().value(),
            Some(&b""[..]),
            "empty, not deleted"
        );
        assert_eq!((s.live_len(), s.tombstones()), (1, 0));
    }

    #[test]
    fn an_adopted_record_keeps_its_value_buffer_and_a_shared_one_is_copied() {
        let mut s = Store::new();
        let value = Bytes::from(vec![3u8; 100]);
        let at = value.as_ptr();
        let mut e = entry(1, None);
        e.value = Some(value);
        let key = "k".to_string();
        assert!(s.adopt(Record { key, entry: e }));
        assert_eq!(s.get("k").unwrap().value().unwrap().as_ptr(), at, "no copy");
        let shared = Bytes::from(vec![4u8; 100]);
        let mut e = entry(2, None);
        e.value = Some(shared.clone());
        assert!(s.adopt(Record {
            key: "k".into(),
            entry: e
        }));
        let held = s.get("k").unwrap().value().unwrap();
        assert_ne!(held.as_ptr(), shared.as_ptr(), "its own copy");
        assert_eq!(held, &shared[..]);
        assert!(!s.adopt(Record {
            key: "k".into(),
            entry: entry(1, Some("older"))
        }));
    }

    #[test]
    fn keys_of_every_length_are_kept_inline_or_boxed() {
        let mut s = Store::new();
        let keys: Vec<String> = (0..=INLINE_KEY + 2).map(|n| "k".repeat(n)).collect();
        for (i, key) in keys.iter().enumerate() {
            assert!(s.adopt(Record {
                key: key.clone(),
                entry: entry(1, Some("v"))
            }));
            assert!(s.merge(&format!("{key}!"), &entry(i as u64, None)));
        }
        for key in &keys {
            let slot = s.get(key).unwrap();
            assert_eq!(slot.key(), key);
            assert!(matches!(slot.key, StoredKey::Inline(..)) == (key.len() <= INLINE_KEY));
            assert_eq!(s.get(&format!("{key}!")).unwrap().key(), format!("{key}!"));
        }
        assert_eq!((s.live_len(), s.tombstones()), (keys.len(), keys.len()));
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
    fn collecting_tombstones_keeps_every_other_entry_in_order_and_findable() {
        let mut s = Store::new();
        for i in 0..2_000u64 {
            let value = (i % 3 != 0).then_some("v");
            let ts = if value.is_some() { 50 } else { 5 };
            s.merge(&format!("k{i}"), &entry(ts, value));
        }
        assert_eq!(s.collect_tombstones(Timestamp::from_millis(10)).len(), 667);
        for i in 0..2_000u64 {
            assert_eq!(s.get(&format!("k{i}")).is_some(), i % 3 != 0, "k{i}");
        }
        let held: Vec<(u64, &Slot)> = s.slots_in(0, u64::MAX).collect();
        assert!(held.iter().all(|(h, slot)| key_hash(slot.key()) == *h));
        assert!(held.is_sorted_by_key(|(h, slot)| (*h, slot.key())));
        assert_eq!((held.len(), s.summary(Range::ROOT).count), (1_333, 1_333));
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
