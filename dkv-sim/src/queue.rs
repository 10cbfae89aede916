//! The event queue: events ordered by `(time, sequence)`, so same-time events run in
//! the order they were scheduled, and every run of one seed is the same.

use crate::net::NetEv;
use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

/// Virtual time: nanoseconds since the simulation's epoch.
pub type SimTime = u64;

/// Something that happens at a virtual time.
#[derive(Debug)]
pub(crate) enum Ev {
    /// A node's timer: call `handle_timeout` if it is still the armed one.
    Wake { slot: u32, inc: u32 },
    /// A node's transport looks for a local address.
    Detect { slot: u32, inc: u32 },
    /// Something in the network.
    Net(NetEv),
}

#[derive(Debug)]
struct Entry {
    at: SimTime,
    seq: u64,
    ev: Ev,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

/// Pending events and the current virtual time.
#[derive(Debug, Default)]
pub(crate) struct Queue {
    heap: BinaryHeap<Reverse<Entry>>,
    seq: u64,
    /// The current virtual time.
    pub(crate) now: SimTime,
}

impl Queue {
    pub(crate) fn schedule(&mut self, at: SimTime, ev: Ev) {
        self.seq += 1;
        self.heap.push(Reverse(Entry {
            at,
            seq: self.seq,
            ev,
        }));
    }

    pub(crate) fn net(&mut self, at: SimTime, ev: NetEv) {
        self.schedule(at, Ev::Net(ev));
    }

    /// The next event due at or before `until`, with the clock moved to it.
    pub(crate) fn pop_until(&mut self, until: SimTime) -> Option<(SimTime, Ev)> {
        if self.heap.peek().is_none_or(|Reverse(e)| e.at > until) {
            return None;
        }
        let Reverse(e) = self.heap.pop()?;
        self.now = e.at;
        Some((e.at, e.ev))
    }
}
