//! The event queue: events ordered by `(time, sequence)`, so same-time events run in
//! the order they were scheduled, and every run of one seed is the same.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

/// Virtual time: nanoseconds since the simulation's epoch.
pub type SimTime = u64;

#[derive(Debug)]
struct Entry<E> {
    at: SimTime,
    seq: u64,
    ev: E,
}

impl<E> PartialEq for Entry<E> {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl<E> Eq for Entry<E> {}
impl<E> PartialOrd for Entry<E> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<E> Ord for Entry<E> {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

/// Pending events of type `E` and the current virtual time.
#[derive(Debug)]
pub(crate) struct Queue<E> {
    heap: BinaryHeap<Reverse<Entry<E>>>,
    seq: u64,
    /// The current virtual time.
    pub(crate) now: SimTime,
}

impl<E> Default for Queue<E> {
    fn default() -> Self {
        Queue {
            heap: BinaryHeap::new(),
            seq: 0,
            now: 0,
        }
    }
}

impl<E> Queue<E> {
    pub(crate) fn schedule(&mut self, at: SimTime, ev: impl Into<E>) {
        let ev = ev.into();
        self.seq += 1;
        self.heap.push(Reverse(Entry {
            at,
            seq: self.seq,
            ev,
        }));
    }

    /// The next event due at or before `until`, with the clock moved to it.
    pub(crate) fn pop_until(&mut self, until: SimTime) -> Option<(SimTime, E)> {
        if self.heap.peek().is_none_or(|Reverse(e)| e.at > until) {
            return None;
        }
        let Reverse(e) = self.heap.pop()?;
        self.now = e.at;
        Some((e.at, e.ev))
    }
}
