//! The event queue: events ordered by `(time, sequence)`, so same-time events run in
//! the order they were scheduled, and every run of one seed is the same.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Virtual time: nanoseconds since the simulation's epoch.
pub type SimTime = u64;

/// Pending events of type `E` and the current virtual time.
///
/// The heap holds only `(time, sequence, slot)`, 24 bytes, and the events wait in
/// a slab: a pop moves small entries down a heap of thousands (most of a pop is
/// cache misses in its lower levels), not whole events.
#[derive(Debug)]
pub(crate) struct Queue<E> {
    heap: BinaryHeap<Reverse<(SimTime, u64, u32)>>,
    events: Vec<Option<E>>,
    free: Vec<u32>,
    seq: u64,
    /// The current virtual time.
    pub(crate) now: SimTime,
}

impl<E> Default for Queue<E> {
    fn default() -> Self {
        Queue {
            heap: BinaryHeap::new(),
            events: Vec::new(),
            free: Vec::new(),
            seq: 0,
            now: 0,
        }
    }
}

impl<E> Queue<E> {
    pub(crate) fn schedule(&mut self, at: SimTime, ev: impl Into<E>) {
        let ev = Some(ev.into());
        self.seq += 1;
        let slot = match self.free.pop() {
            Some(slot) => {
                self.events[slot as usize] = ev;
                slot
            }
            None => {
                self.events.push(ev);
                u32::try_from(self.events.len() - 1).expect("fewer than 2^32 pending events")
            }
        };
        self.heap.push(Reverse((at, self.seq, slot)));
    }

    /// The next event due at or before `until`, with the clock moved to it.
    pub(crate) fn pop_until(&mut self, until: SimTime) -> Option<(SimTime, E)> {
        if self
            .heap
            .peek()
            .is_none_or(|Reverse((at, _, _))| *at > until)
        {
            return None;
        }
        let Reverse((at, _, slot)) = self.heap.pop()?;
        let ev = self.events[slot as usize].take()?;
        self.free.push(slot);
        self.now = at;
        Some((at, ev))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_come_out_by_time_then_in_the_order_scheduled() {
        let mut q: Queue<&str> = Queue::default();
        q.schedule(20, "b1");
        q.schedule(10, "a");
        q.schedule(20, "b2");
        assert_eq!(q.pop_until(15), Some((10, "a")));
        assert_eq!(q.now, 10);
        assert_eq!(q.pop_until(15), None, "nothing else is due by 15");
        q.schedule(20, "b3");
        q.schedule(5, "late");
        let rest: Vec<_> = std::iter::from_fn(|| q.pop_until(100)).collect();
        assert_eq!(rest, [(5, "late"), (20, "b1"), (20, "b2"), (20, "b3")]);
        assert_eq!(q.events.len(), 4, "a freed slot is reused");
    }
}
