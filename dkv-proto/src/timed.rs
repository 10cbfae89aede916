//! A map whose entries each carry a deadline, with the deadlines kept in order, so
//! that the earliest one and the entries due are found without a scan.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

/// Values by key, each with a deadline. The earliest deadline costs O(1) and the
/// entries due at a time O(due + log n), whatever the number of entries.
#[derive(Debug)]
pub(crate) struct Timed<K, V> {
    map: BTreeMap<K, (V, Instant)>,
    order: BTreeSet<(Instant, K)>,
    /// The first deadline in `order`, kept on every change: it is read after every
    /// input a node takes (a beacon from each peer, twice a second), far more often
    /// than entries change.
    first: Option<Instant>,
}

impl<K, V> Default for Timed<K, V> {
    fn default() -> Self {
        Timed {
            map: BTreeMap::new(),
            order: BTreeSet::new(),
            first: None,
        }
    }
}

impl<K: Ord + Copy, V> Timed<K, V> {
    /// Sets `key` to `value` due at `at`; returns what it replaced.
    pub(crate) fn insert(&mut self, key: K, value: V, at: Instant) -> Option<(V, Instant)> {
        let old = self.map.insert(key, (value, at));
        if let Some((_, was)) = &old {
            self.order.remove(&(*was, key));
        }
        self.order.insert((at, key));
        self.refresh();
        old
    }

    /// Removes `key`; returns its value and deadline.
    pub(crate) fn remove(&mut self, key: &K) -> Option<(V, Instant)> {
        let old = self.map.remove(key)?;
        self.order.remove(&(old.1, *key));
        self.refresh();
        Some(old)
    }

    pub(crate) fn get(&self, key: &K) -> Option<&(V, Instant)> {
        self.map.get(key)
    }

    /// The value of `key`, to change (its deadline stays).
    pub(crate) fn value_mut(&mut self, key: &K) -> Option<&mut V> {
        self.map.get_mut(key).map(|(v, _)| v)
    }

    /// Moves the deadline of `key`, if present.
    pub(crate) fn set_deadline(&mut self, key: &K, at: Instant) {
        if let Some((_, was)) = self.map.get_mut(key) {
            self.order.remove(&(*was, *key));
            *was = at;
            self.order.insert((at, *key));
            self.refresh();
        }
    }

    pub(crate) fn contains_key(&self, key: &K) -> bool {
        self.map.contains_key(key)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The earliest deadline.
    pub(crate) fn first(&self) -> Option<Instant> {
        self.first
    }

    fn refresh(&mut self) {
        self.first = self.order.first().map(|(at, _)| *at);
    }

    /// The keys due at `now` (deadline at or before it), in key order.
    pub(crate) fn due(&self, now: Instant) -> Vec<K> {
        let mut due: Vec<K> = self
            .order
            .iter()
            .take_while(|(at, _)| *at <= now)
            .map(|(_, k)| *k)
            .collect();
        due.sort_unstable();
        due
    }

    /// Removes and returns the entry with the earliest deadline (the lowest key
    /// among equal ones) if it is due at `now`.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<K> {
        let &(at, key) = self.order.first().filter(|(at, _)| *at <= now)?;
        self.order.remove(&(at, key));
        self.map.remove(&key);
        self.refresh();
        Some(key)
    }

    /// Entries held.
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    /// The entries, in key order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.map.iter().map(|(k, (v, _))| (k, v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_first_deadline_and_the_due_keys_follow_every_change() {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let mut m: Timed<u32, &str> = Timed::default();
        assert_eq!(m.first(), None);
        m.insert(3, "c", at(30));
        m.insert(1, "a", at(10));
        m.insert(2, "b", at(20));
        assert_eq!(m.first(), Some(at(10)));
        assert_eq!(m.due(at(20)), vec![1, 2]);
        m.set_deadline(&1, at(40));
        assert_eq!(m.first(), Some(at(20)));
        assert_eq!(m.insert(2, "B", at(50)), Some(("b", at(20))));
        assert_eq!(m.due(at(45)), vec![1, 3]);
        assert_eq!(m.remove(&3), Some(("c", at(30))));
        *m.value_mut(&1).unwrap() = "A";
        assert_eq!(m.iter().collect::<Vec<_>>(), vec![(&1, &"A"), (&2, &"B")]);
        m.remove(&2);
        assert_eq!(m.first(), Some(at(40)));
        assert_eq!(m.get(&1), Some(&("A", at(40))));
        m.remove(&1);
        assert!(m.is_empty() && m.first().is_none() && m.due(at(99)).is_empty());
    }
}
