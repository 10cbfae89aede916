//! Gets that missed locally and wait for an answer or their deadline.

use std::collections::BTreeMap;
use std::time::Instant;

/// Identifies one [`Node::get`](crate::Node::get) call; its
/// [`GetDone`](crate::GetDone) carries the same id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GetId(pub u64);

/// Pending gets, indexed by deadline and by key.
#[derive(Debug, Default)]
pub(crate) struct PendingGets {
    deadline: BTreeMap<GetId, Instant>,
    by_deadline: BTreeMap<(Instant, GetId), String>,
    by_key: BTreeMap<String, Vec<GetId>>,
}

impl PendingGets {
    pub(crate) fn insert(&mut self, id: GetId, key: String, deadline: Instant) {
        self.deadline.insert(id, deadline);
        self.by_key.entry(key.clone()).or_default().push(id);
        self.by_deadline.insert((deadline, id), key);
    }

    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.by_deadline.first_key_value().map(|((at, _), _)| *at)
    }

    /// Whether some get waits on `key`.
    pub(crate) fn waits_on(&self, key: &str) -> bool {
        self.by_key.contains_key(key)
    }

    /// Removes and returns every get waiting on `key`.
    pub(crate) fn take_key(&mut self, key: &str) -> Vec<GetId> {
        let ids = self.by_key.remove(key).unwrap_or_default();
        for id in &ids {
            if let Some(at) = self.deadline.remove(id) {
                self.by_deadline.remove(&(at, *id));
            }
        }
        ids
    }

    /// Removes and returns the earliest get due at or before `now`.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<(GetId, String)> {
        let (&(at, id), _) = self.by_deadline.first_key_value()?;
        if at > now {
            return None;
        }
        let key = self.by_deadline.remove(&(at, id))?;
        self.deadline.remove(&id);
        if let Some(ids) = self.by_key.get_mut(&key) {
            ids.retain(|&other| other != id);
            if ids.is_empty() {
                self.by_key.remove(&key);
            }
        }
        Some((id, key))
    }

    /// Removes and returns every pending get.
    pub(crate) fn drain(&mut self) -> Vec<(GetId, String)> {
        self.deadline.clear();
        self.by_key.clear();
        std::mem::take(&mut self.by_deadline)
            .into_iter()
            .map(|((_, id), key)| (id, key))
            .collect()
    }

    pub(crate) fn len(&self) -> usize {
        self.deadline.len()
    }
}
