//! The key-hash range tree that reconciliation walks: where a key falls (its 64-bit
//! hash), ranges of the hash space with 16 sub-ranges each, and what one side holds
//! in a range (a summary, or item by item).

use crate::clock::Version;
use xxhash_rust::xxh3::xxh3_64_with_seed;

/// A fixed seed, so every node on every platform and version hashes alike.
const KEY_SEED: u64 = 0x646b_762f_6b65_7973; // "dkv/keys"

/// The hash that places `key` in the range tree. Stable across platforms and
/// versions (xxh3 with a fixed seed).
pub fn key_hash(key: &str) -> u64 {
    xxh3_64_with_seed(key.as_bytes(), KEY_SEED)
}

/// A range of the key-hash space: every key whose 64-bit hash has `prefix` as its
/// top `4 * level` bits. Level 0 is the whole space; each range has 16 children.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Range {
    level: u8,
    prefix: u64,
}

impl Range {
    /// The deepest level: a range of one hash value.
    pub const MAX_LEVEL: u8 = 16;
    /// The whole key-hash space.
    pub const ROOT: Range = Range {
        level: 0,
        prefix: 0,
    };

    /// The range at `level` with `prefix`, if `level <= 16` and `prefix` fits.
    pub fn new(level: u8, prefix: u64) -> Option<Range> {
        let fits = match level {
            0 => prefix == 0,
            Self::MAX_LEVEL => true,
            l if l < Self::MAX_LEVEL => prefix >> (4 * u32::from(l)) == 0,
            _ => false,
        };
        fits.then_some(Range { level, prefix })
    }

    /// The level (0 is the root).
    pub fn level(self) -> u8 {
        self.level
    }

    /// The hash prefix.
    pub fn prefix(self) -> u64 {
        self.prefix
    }

    fn shift(self) -> u32 {
        64 - 4 * u32::from(self.level)
    }

    /// The first hash in the range.
    pub fn first(self) -> u64 {
        match self.level {
            0 => 0,
            _ => self.prefix << self.shift(),
        }
    }

    /// The last hash in the range (inclusive).
    pub fn last(self) -> u64 {
        match self.level {
            0 => u64::MAX,
            Self::MAX_LEVEL => self.prefix,
            _ => self.first() | (u64::MAX >> (4 * u32::from(self.level))),
        }
    }

    /// Whether `hash` lies in the range.
    pub fn contains(self, hash: u64) -> bool {
        (self.first()..=self.last()).contains(&hash)
    }

    /// Whether `other` lies inside this range (or is it).
    pub fn covers(self, other: Range) -> bool {
        self.level <= other.level && self.contains(other.first())
    }

    /// The 16 sub-ranges, in hash order; `None` at the deepest level.
    pub fn children(self) -> Option<impl Iterator<Item = Range>> {
        (self.level < Self::MAX_LEVEL).then(|| {
            (0..16u64).map(move |i| Range {
                level: self.level + 1,
                prefix: (self.prefix << 4) | i,
            })
        })
    }

    /// The range at `level` (at most this one's) that holds this one.
    pub fn ancestor(self, level: u8) -> Range {
        let level = level.min(self.level);
        let prefix = match level {
            0 => 0,
            _ => self.prefix >> (4 * u32::from(self.level - level)),
        };
        Range { level, prefix }
    }
}

/// What one side holds in a range: the wrapping sum of its entries' digests and
/// how many entries there are.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// The wrapping sum of the entries' digests.
    pub fingerprint: u64,
    /// The number of entries (tombstones included).
    pub count: u64,
}

/// One entry, named by its key's hash, in a listing of a small range.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Item {
    /// The key's hash.
    pub key_hash: u64,
    /// The entry's version.
    pub version: Version,
    /// The entry's digest.
    pub digest: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_nest_and_cover_the_hash_space() {
        assert_eq!((Range::ROOT.first(), Range::ROOT.last()), (0, u64::MAX));
        let kids: Vec<Range> = Range::ROOT.children().unwrap().collect();
        assert_eq!(kids.len(), 16);
        assert_eq!(kids[0].first(), 0);
        assert_eq!(kids[15].last(), u64::MAX);
        for w in kids.windows(2) {
            assert_eq!(w[0].last() + 1, w[1].first());
        }
        let deep = Range::new(16, 0xdead_beef).unwrap();
        assert_eq!((deep.first(), deep.last()), (0xdead_beef, 0xdead_beef));
        assert!(deep.children().is_none());
        assert_eq!(deep.ancestor(1), Range::new(1, 0).unwrap());
        assert!(Range::ROOT.covers(deep) && !deep.covers(Range::ROOT));
        assert_eq!(Range::new(1, 16), None);
        assert_eq!(Range::new(17, 0), None);
    }
}
