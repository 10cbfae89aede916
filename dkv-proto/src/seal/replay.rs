//! The [`ReplayGuard`]: refuses sealed items that are stale, from the future, from
//! before this run, or already accepted, with bounded memory and counted outcomes.
//!
//! A stream is one sender run, (sender id, salt). It keeps its largest accepted
//! stamp and, per class, the top counter with a 128-counter window below it (RFC 6479
//! style): above the top slides the window, inside it is accepted once, below it is
//! refused. A stream is forgotten once its largest stamp is older than the freshness
//! window, since everything it could refuse is stale by then.

use super::frame::{Class, Salt, SealHeader};
use crate::wire::NodeId;
use crate::FixedMap;
use std::collections::hash_map::Entry;

/// How much the guard remembers and accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplayConfig {
    /// W: an item's stamp must be within W of the receiver's wall clock (30 s).
    pub window_ms: u64,
    /// The most streams remembered at once (1,024); a new stream is refused beyond.
    pub max_streams: usize,
}

impl Default for ReplayConfig {
    fn default() -> ReplayConfig {
        ReplayConfig {
            window_ms: 30_000,
            max_streams: 1024,
        }
    }
}

/// Why an item was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum Refusal {
    /// Stamped more than W before the receiver's wall clock.
    #[error("stale stamp")]
    Stale,
    /// Stamped more than W after the receiver's wall clock.
    #[error("stamp in the future")]
    Future,
    /// Stamped before this receiver's run started (less the clock offset allowed).
    #[error("sealed before this run started")]
    BeforeStart,
    /// Already accepted.
    #[error("replay")]
    Replay,
    /// Its counter is 128 or more below the stream's top for its class.
    #[error("below the replay window")]
    BelowWindow,
    /// A new stream while [`ReplayConfig::max_streams`] live streams are remembered.
    #[error("too many streams")]
    StreamsFull,
}

/// The guard's counters, one per outcome.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReplayStats {
    /// Items committed.
    pub accepted: u64,
    /// [`Refusal::Stale`].
    pub stale: u64,
    /// [`Refusal::Future`].
    pub future: u64,
    /// [`Refusal::BeforeStart`].
    pub before_start: u64,
    /// [`Refusal::Replay`].
    pub replay: u64,
    /// [`Refusal::BelowWindow`].
    pub below_window: u64,
    /// [`Refusal::StreamsFull`].
    pub streams_full: u64,
    /// Streams forgotten because they went quiet for W.
    pub expired: u64,
}

#[derive(Clone, Copy, Debug, Default)]
struct Window {
    used: bool,
    top: u64,
    /// Bit d set: counter `top - d` was accepted.
    seen: u128,
}

impl Window {
    fn verdict(&self, counter: u64) -> Result<(), Refusal> {
        if !self.used || counter > self.top {
            return Ok(());
        }
        let below = self.top - counter;
        if below >= 128 {
            Err(Refusal::BelowWindow)
        } else if self.seen >> below & 1 == 1 {
            Err(Refusal::Replay)
        } else {
            Ok(())
        }
    }

    fn record(&mut self, counter: u64) {
        if !self.used {
            *self = Window {
                used: true,
                top: counter,
                seen: 1,
            };
        } else if counter > self.top {
            let shift = counter - self.top;
            self.seen = if shift >= 128 { 0 } else { self.seen << shift };
            self.seen |= 1;
            self.top = counter;
        } else {
            self.seen |= 1 << (self.top - counter);
        }
    }
}

#[derive(Clone, Debug)]
struct Stream {
    max_stamp: u64,
    windows: [Window; 3],
}

/// Remembers what one node run accepted. Promises: an item is committed at most once
/// per run; nothing stamped more than W before the wall clock, more than W after it,
/// or before `floor_ms` is accepted; at most `max_streams` streams are remembered.
/// Reads no clock: the caller passes its wall time.
#[derive(Clone, Debug)]
pub struct ReplayGuard {
    config: ReplayConfig,
    floor_ms: u64,
    /// By [`stream_key`], looked up twice per item: hashed (a tree lookup was a
    /// cache miss per level), with fixed keys, as no global randomness is read
    /// here; only authenticated items insert, so chosen keys cannot crowd it.
    streams: FixedMap<u128, Stream>,
    /// No stream expires at or before this wall time (a lower bound), so a full table
    /// is swept at most once per expiry rather than once per refused item.
    quiet_until: u64,
    stats: ReplayStats,
}

impl ReplayGuard {
    /// A guard that remembers nothing and refuses items stamped before `floor_ms`:
    /// the receiver's run start wall time less the clock offset it tolerates.
    pub fn new(config: ReplayConfig, floor_ms: u64) -> ReplayGuard {
        ReplayGuard {
            config,
            floor_ms,
            streams: FixedMap::default(),
            quiet_until: u64::MAX,
            stats: ReplayStats::default(),
        }
    }

    /// Whether `header` would be accepted at wall time `wall_ms`, changing no window
    /// (run it before opening; a refusal is counted). May forget expired streams.
    pub fn check(&mut self, header: &SealHeader, wall_ms: u64) -> Result<(), Refusal> {
        let verdict = self.verdict(header, wall_ms);
        if let Err(why) = verdict {
            self.count(why);
        }
        verdict
    }

    /// Records `header` as accepted (run it once the item opened), after the same
    /// checks as [`check`](Self::check): an item commits at most once.
    pub fn commit(&mut self, header: &SealHeader, wall_ms: u64) -> Result<(), Refusal> {
        self.check(header, wall_ms)?;
        let stream = match self.streams.entry(stream_key(header.sender, header.salt)) {
            Entry::Occupied(stream) => stream.into_mut(),
            Entry::Vacant(place) => {
                let expires = header.stamp_ms.saturating_add(self.config.window_ms);
                self.quiet_until = self.quiet_until.min(expires);
                place.insert(Stream {
                    max_stamp: header.stamp_ms,
                    windows: [Window::default(); 3],
                })
            }
        };
        stream.max_stamp = stream.max_stamp.max(header.stamp_ms);
        stream.windows[header.class as usize].record(header.counter);
        self.stats.accepted += 1;
        Ok(())
    }

    /// Forgets every stream whose largest stamp is more than W before `wall_ms`.
    pub fn expire(&mut self, wall_ms: u64) {
        let window = self.config.window_ms;
        let before = self.streams.len();
        self.streams
            .retain(|_, s| s.max_stamp.saturating_add(window) >= wall_ms);
        self.stats.expired += (before - self.streams.len()) as u64;
        let ends = self
            .streams
            .values()
            .map(|s| s.max_stamp.saturating_add(window));
        self.quiet_until = ends.min().unwrap_or(u64::MAX);
    }

    /// The outcome counters so far.
    pub fn stats(&self) -> ReplayStats {
        self.stats
    }

    /// The number of streams remembered (at most `max_streams`).
    pub fn streams(&self) -> usize {
        self.streams.len()
    }

    /// The top counter accepted for this stream and class, if any.
    pub fn top(&self, sender: NodeId, salt: Salt, class: Class) -> Option<u64> {
        let window = self.streams.get(&stream_key(sender, salt))?.windows[class as usize];
        window.used.then_some(window.top)
    }

    fn verdict(&mut self, header: &SealHeader, wall_ms: u64) -> Result<(), Refusal> {
        let window = self.config.window_ms;
        if header.stamp_ms.saturating_add(window) < wall_ms {
            return Err(Refusal::Stale);
        }
        if header.stamp_ms > wall_ms.saturating_add(window) {
            return Err(Refusal::Future);
        }
        if header.stamp_ms < self.floor_ms {
            return Err(Refusal::BeforeStart);
        }
        match self.streams.get(&stream_key(header.sender, header.salt)) {
            Some(stream) => stream.windows[header.class as usize].verdict(header.counter),
            None if self.streams.len() < self.config.max_streams => Ok(()),
            None => {
                if wall_ms > self.quiet_until {
                    self.expire(wall_ms);
                }
                if self.streams.len() < self.config.max_streams {
                    Ok(())
                } else {
                    Err(Refusal::StreamsFull)
                }
            }
        }
    }

    fn count(&mut self, why: Refusal) {
        let s = &mut self.stats;
        *match why {
            Refusal::Stale => &mut s.stale,
            Refusal::Future => &mut s.future,
            Refusal::BeforeStart => &mut s.before_start,
            Refusal::Replay => &mut s.replay,
            Refusal::BelowWindow => &mut s.below_window,
            Refusal::StreamsFull => &mut s.streams_full,
        } += 1;
    }
}

/// A stream's key in the guard's table: sender then salt in one integer.
fn stream_key(sender: NodeId, salt: Salt) -> u128 {
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&sender.0);
    bytes[8..15].copy_from_slice(&salt.0);
    u128::from_be_bytes(bytes)
}
