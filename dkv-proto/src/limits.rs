//! Resource limits: what a node accepts from the network and from its own API, and
//! how often it does work for others. Owns [`Limits`], [`Rate`], [`WriteError`] and
//! the pure token buckets that enforce rates on the caller's `now`.

use crate::node_id::NodeId;
use crate::FixedMap;
use std::time::{Duration, Instant};

/// A rate: one token every `every`, at most `burst` saved up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    /// One unit of work is allowed per this much time, on average.
    pub every: Duration,
    /// Units allowed at once after a quiet period (at least 1 is used).
    pub burst: u32,
}

impl Rate {
    /// `n` per second, with a burst of `burst`.
    pub const fn per_second(n: u32, burst: u32) -> Rate {
        let n = if n == 0 { 1 } else { n };
        Rate {
            every: Duration::from_nanos(1_000_000_000 / n as u64),
            burst,
        }
    }
}

/// Every limit a node enforces. Each hit is counted in [`Stats`](crate::Stats) under
/// the name given with the field. [`Limits::default`] lets normal LAN traffic through
/// (values up to 1 MiB, a dozen nodes on one host) and bounds what one host can make
/// a node hold or do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest key, in bytes, received or written locally. Default 1 KiB.
    /// Counted: `drop_key_too_long` (received), `writes_refused` (local).
    pub max_key_bytes: usize,
    /// Largest value, in bytes, received or written locally. Default 1 MiB.
    /// Counted: `drop_value_too_large` (received), `writes_refused` (local).
    pub max_value_bytes: usize,
    /// Largest received message, all frames summed, checked before decoding. A
    /// prototype `list_answer` is exempt (it has one frame per key and is bounded by
    /// [`bootstrap_max_keys`](Self::bootstrap_max_keys) instead). Default 1 MiB +
    /// 64 KiB. Counted: `drop_oversized`.
    pub max_message_bytes: usize,
    /// Keys (tombstones included) the store takes from others: a received entry
    /// for a new key beyond this is refused; updates, deletes of held keys and
    /// local writes pass. Default 10,000,000. Counted: `drop_store_full`.
    pub max_store_keys: usize,
    /// Live peers at once; beacons from further endpoints are ignored. Default 256.
    /// Counted: `drop_peer_limit`.
    pub max_peers: usize,
    /// Live peers at once from one IP address. Default 16 (`dkv demo` runs 12 nodes
    /// on loopback). Counted: `drop_peer_ip_limit`.
    pub max_peers_per_ip: usize,
    /// How fast new peers are admitted. Default 20/s, burst 64.
    /// Counted: `drop_peer_rate`.
    pub new_peers: Rate,
    /// Prototype `answer`s sent to one asker id. Default 256/s, burst 256.
    /// Counted: `drop_answer_rate`.
    pub answers_per_asker: Rate,
    /// Prototype `answer`s sent in all. Default 2,048/s, burst 2,048.
    /// Counted: `drop_answer_rate`.
    pub answers_total: Rate,
    /// Prototype `list_answer`s sent to one asker id. Default one per 10 s with a
    /// burst of 3, so a prototype that re-bootstraps soon after a net flap (same id)
    /// is still answered. Counted: `drop_list_rate`.
    pub list_answers_per_asker: Rate,
    /// Prototype `list_answer`s sent in all. Default 1/s, burst 2.
    /// Counted: `drop_list_rate`.
    pub list_answers_total: Rate,
    /// dkv/2 requests served for one asker id: `ask`s (get misses), `sync`s,
    /// `pull`s and `fetch`es, each of which makes this node send data. Default
    /// 1,024/s, burst 1,024. Counted: `drop_request_rate`.
    pub requests_per_asker: Rate,
    /// dkv/2 requests served in all. Default 4,096/s, burst 4,096.
    /// Counted: `drop_request_rate`.
    pub requests_total: Rate,
    /// Asker ids whose rates are remembered at once; the least recently used is
    /// forgotten past this (the global rates still bound the work). Default 1,024.
    pub max_askers: usize,
    /// Keys a prototype bootstrap accepts from list answers, over the whole
    /// bootstrap; further keys are not fetched. Default 1,000,000.
    /// Counted: `bootstrap_keys_over_limit`.
    pub bootstrap_max_keys: usize,
    /// Questions of a prototype bootstrap unanswered in a row after which it gives
    /// up the keys still to fetch (later writes and gets still bring them).
    /// Default 4,096. Counted: `bootstrap_abandoned`.
    pub bootstrap_max_unanswered: usize,
    /// New keys (not held before) accepted from one dkv peer id in its `put`s and
    /// `push`es (reconciliation). Default 100,000/s, burst 4,000,000.
    /// Counted: `sync_peer_over_budget`.
    pub peer_new_keys: Rate,
    /// KiB of keys and values of new keys accepted from one dkv peer id, each
    /// record rounded up to a whole KiB. Default 256 MiB/s, burst 4 GiB.
    /// Counted: `sync_peer_over_budget`.
    pub peer_new_kib: Rate,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_key_bytes: 1024,
            max_value_bytes: 1 << 20,
            max_message_bytes: (1 << 20) + (64 << 10),
            max_store_keys: 10_000_000,
            max_peers: 256,
            max_peers_per_ip: 16,
            new_peers: Rate::per_second(20, 64),
            answers_per_asker: Rate::per_second(256, 256),
            answers_total: Rate::per_second(2048, 2048),
            list_answers_per_asker: Rate {
                every: Duration::from_secs(10),
                burst: 3,
            },
            list_answers_total: Rate::per_second(1, 2),
            requests_per_asker: Rate::per_second(1024, 1024),
            requests_total: Rate::per_second(4096, 4096),
            max_askers: 1024,
            bootstrap_max_keys: 1_000_000,
            bootstrap_max_unanswered: 4096,
            peer_new_keys: Rate::per_second(100_000, 4_000_000),
            peer_new_kib: Rate::per_second(256 << 10, 4 << 20),
        }
    }
}

/// A [`Limits`] value that would make a node refuse normal traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LimitsError {
    /// A limit of zero would refuse everything of its kind.
    #[error("{0} must be at least 1")]
    Zero(&'static str),
    /// A message must fit the largest key and value with room for its framing.
    #[error("max_message_bytes must exceed max_key_bytes + max_value_bytes")]
    MessageBelowRecord,
}

/// Why a local write was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WriteError {
    /// The key is longer than [`Limits::max_key_bytes`].
    #[error("key of {len} bytes is over the limit of {max}")]
    KeyTooLong {
        /// The key's length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The value is larger than [`Limits::max_value_bytes`].
    #[error("value of {len} bytes is over the limit of {max}")]
    ValueTooLarge {
        /// The value's length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
}

impl Limits {
    /// Checks the limits make sense: no zero limit, and a message fits the largest
    /// record. A transport should refuse what this rejects; a node takes any value.
    pub fn validate(&self) -> Result<(), LimitsError> {
        for (name, v) in [
            ("max_key_bytes", self.max_key_bytes),
            ("max_value_bytes", self.max_value_bytes),
            ("max_store_keys", self.max_store_keys),
            ("max_peers", self.max_peers),
            ("max_peers_per_ip", self.max_peers_per_ip),
            ("max_askers", self.max_askers),
            ("bootstrap_max_keys", self.bootstrap_max_keys),
            ("bootstrap_max_unanswered", self.bootstrap_max_unanswered),
        ] {
            if v == 0 {
                return Err(LimitsError::Zero(name));
            }
        }
        if self.max_message_bytes <= self.max_key_bytes.saturating_add(self.max_value_bytes) {
            return Err(LimitsError::MessageBelowRecord);
        }
        Ok(())
    }

    /// Whether a local write of `key` (and `value`, `None` for a delete) is within
    /// the key and value limits. [`Node::try_set`](crate::Node::try_set) and
    /// [`Node::try_delete`](crate::Node::try_delete) refuse exactly what this does.
    pub fn check_write(&self, key: &str, value: Option<&[u8]>) -> Result<(), WriteError> {
        if key.len() > self.max_key_bytes {
            return Err(WriteError::KeyTooLong {
                len: key.len(),
                max: self.max_key_bytes,
            });
        }
        match value {
            Some(v) if v.len() > self.max_value_bytes => Err(WriteError::ValueTooLarge {
                len: v.len(),
                max: self.max_value_bytes,
            }),
            _ => Ok(()),
        }
    }
}

/// A token bucket kept as the time it would be full again (GCRA), so it needs no
/// timer: each [`take`](Self::take) compares against the caller's `now`.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct TokenBucket {
    /// When the bucket is full again; `None`: full.
    full_at: Option<Instant>,
}

impl TokenBucket {
    /// Takes one token at `now` if the rate allows it.
    pub(crate) fn take(&mut self, now: Instant, rate: Rate) -> bool {
        self.take_n(now, rate, 1)
    }

    /// Takes `n` tokens at `now` if the rate allows them all (none otherwise).
    pub(crate) fn take_n(&mut self, now: Instant, rate: Rate, n: u32) -> bool {
        let window = rate.every.saturating_mul(rate.burst.max(1));
        let start = self.full_at.filter(|t| *t > now).unwrap_or(now);
        let next = crate::config::later(start, rate.every.saturating_mul(n));
        if next.saturating_duration_since(now) > window {
            return false;
        }
        self.full_at = Some(next);
        true
    }

    /// Whether the bucket is full at `now` (forgetting it changes nothing).
    fn idle(&self, now: Instant) -> bool {
        self.full_at.is_none_or(|t| t <= now)
    }
}

/// One token bucket per asker id, at most `max` of them, plus one for all askers.
#[derive(Debug, Default)]
pub(crate) struct RateTable {
    askers: FixedMap<NodeId, (TokenBucket, u64)>,
    total: TokenBucket,
    /// Bumped on every use, to find the least recently used asker.
    tick: u64,
}

impl RateTable {
    /// Takes one token for `asker` and one from the global bucket at `now`; both
    /// must allow it.
    pub(crate) fn take(
        &mut self,
        now: Instant,
        asker: NodeId,
        per_asker: Rate,
        total: Rate,
        max: usize,
    ) -> bool {
        self.tick += 1;
        if !self.askers.contains_key(&asker) && self.askers.len() >= max.max(1) {
            self.askers.retain(|_, (b, _)| !b.idle(now));
            if self.askers.len() >= max.max(1) {
                let lru = self
                    .askers
                    .iter()
                    .min_by_key(|(_, (_, t))| *t)
                    .map(|(k, _)| *k);
                if let Some(lru) = lru {
                    self.askers.remove(&lru);
                }
            }
        }
        let tick = self.tick;
        let (bucket, used) = self.askers.entry(asker).or_default();
        *used = tick;
        // Per asker first: a flooding asker must not drain the global bucket.
        bucket.take(now, per_asker) && self.total.take(now, total)
    }
}

/// What new keys cost a peer's budgets: one token per key in the key bucket, and
/// each key's size in whole KiB (at least one) in the KiB bucket. Costs add up, so
/// a batch of records is checked and charged once.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct NewKeys {
    keys: u32,
    kib: u32,
}

impl NewKeys {
    /// The cost of one new key whose record takes `len` bytes.
    pub(crate) fn one(len: usize) -> NewKeys {
        NewKeys {
            keys: 1,
            kib: u32::try_from(len.div_ceil(1024).max(1)).unwrap_or(u32::MAX),
        }
    }

    /// Whether this costs nothing (no key).
    pub(crate) fn is_none(self) -> bool {
        self.keys == 0
    }
}

impl std::ops::AddAssign for NewKeys {
    fn add_assign(&mut self, other: NewKeys) {
        self.keys = self.keys.saturating_add(other.keys);
        self.kib = self.kib.saturating_add(other.kib);
    }
}

/// Per dkv peer id, the new keys and bytes it may still bring (two buckets each), for
/// at most `max` ids; the least recently used is forgotten past that.
#[derive(Debug, Default)]
pub(crate) struct PeerBudgets {
    peers: FixedMap<NodeId, (TokenBucket, TokenBucket, u64)>,
    tick: u64,
}

impl PeerBudgets {
    /// Takes `cost` from `peer`'s budgets at `now`, if both allow all of it (else
    /// takes nothing).
    pub(crate) fn take(&mut self, now: Instant, peer: NodeId, cost: NewKeys, l: &Limits) -> bool {
        self.tick += 1;
        let max = l.max_askers.max(1);
        if !self.peers.contains_key(&peer) && self.peers.len() >= max {
            let lru = self.peers.iter().min_by_key(|(_, p)| p.2).map(|(k, _)| *k);
            if let Some(lru) = lru {
                self.peers.remove(&lru);
            }
        }
        let tick = self.tick;
        let (keys, kib, used) = self.peers.entry(peer).or_default();
        *used = tick;
        match Self::after_taking(*keys, *kib, now, cost, l) {
            Some(taken) => {
                (*keys, *kib) = taken;
                true
            }
            None => false,
        }
    }

    /// The two buckets once `cost` is taken from both, if both allow all of it.
    /// Works on copies, so a refusal takes nothing from either.
    fn after_taking(
        mut keys: TokenBucket,
        mut kib: TokenBucket,
        now: Instant,
        cost: NewKeys,
        l: &Limits,
    ) -> Option<(TokenBucket, TokenBucket)> {
        let both = keys.take_n(now, l.peer_new_keys, cost.keys)
            && kib.take_n(now, l.peer_new_kib, cost.kib);
        both.then_some((keys, kib))
    }

    /// Whether [`take`](Self::take) would take `cost` from `peer` at `now`; takes
    /// nothing. Budgets only refill with time, so at the same `now` any smaller
    /// cost is allowed too.
    pub(crate) fn allows(&self, now: Instant, peer: NodeId, cost: NewKeys, l: &Limits) -> bool {
        let (keys, kib) = self
            .peers
            .get(&peer)
            .map_or_else(Default::default, |&(keys, kib, _)| (keys, kib));
        Self::after_taking(keys, kib, now, cost, l).is_some()
    }
}
