//! Watching changes: [`Watch`], the handle [`Dkv::watch`](crate::Dkv::watch)
//! returns, and the bounded queue between the node's thread and the watcher.
//!
//! # Policy for a slow consumer
//! The node never waits for a watcher. Each watch has a queue of at most
//! `capacity` items. When it is full, further changes are not queued but counted;
//! once the consumer makes room, one [`WatchEvent::Lost`] with that count is
//! queued where they were lost, then events resume. Memory per watch is thus
//! bounded by `capacity` events, and a consumer always learns that it missed
//! something (and can re-read with [`Dkv::scan`](crate::Dkv::scan)).

use crate::error::Error;
use crate::event_loop::Command;
use crate::event_loop::Wakeup;
use bytes::Bytes;
use dkv_proto::{Applied, Version};
use std::collections::VecDeque;
use std::sync::{mpsc, Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The queue capacity [`Dkv::watch`](crate::Dkv::watch) gives a watch.
pub const WATCH_CAPACITY: usize = 65_536;

/// One change to a watched key, or a note that changes were lost.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WatchEvent {
    /// `key` now holds `value`.
    Set {
        /// The key.
        key: String,
        /// Its new value.
        value: Bytes,
        /// The version of the write ([`Version::UNVERSIONED`] for a value learned
        /// from a prototype's answer).
        version: Version,
        /// True for this node's own write, false for one learned from a peer.
        local: bool,
    },
    /// `key` was deleted.
    Delete {
        /// The key.
        key: String,
        /// The version of the delete.
        version: Version,
        /// True for this node's own delete, false for one learned from a peer.
        local: bool,
    },
    /// `count` changes were not queued here because the queue was full.
    Lost {
        /// How many.
        count: u64,
    },
}

impl WatchEvent {
    /// The event for a change the core applied.
    pub(crate) fn from_applied(applied: &Applied) -> WatchEvent {
        let (key, version, local) = (applied.key.clone(), applied.entry.version, applied.local);
        match &applied.entry.value {
            Some(value) => WatchEvent::Set {
                key,
                value: value.clone(),
                version,
                local,
            },
            None => WatchEvent::Delete {
                key,
                version,
                local,
            },
        }
    }
}

struct State {
    queue: VecDeque<WatchEvent>,
    /// Changes dropped since the last `Lost` was queued.
    lost: u64,
    /// The node stopped or the handle is gone: nothing more will be queued.
    closed: bool,
}

/// What the node's thread and a [`Watch`] share.
pub(crate) struct Shared {
    prefix: String,
    capacity: usize,
    state: Mutex<State>,
    ready: Condvar,
}

impl Shared {
    pub(crate) fn new(prefix: String, capacity: usize) -> Arc<Shared> {
        Arc::new(Shared {
            prefix,
            capacity,
            state: Mutex::new(State {
                queue: VecDeque::new(),
                lost: 0,
                closed: false,
            }),
            ready: Condvar::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether changes to `key` are watched here.
    pub(crate) fn matches(&self, key: &str) -> bool {
        key.starts_with(&self.prefix)
    }

    /// Queues `event` (never blocks); false if it was lost to a full queue.
    pub(crate) fn push(&self, event: WatchEvent) -> bool {
        let mut state = self.lock();
        if state.closed {
            return true;
        }
        let room = self.capacity - state.queue.len().min(self.capacity);
        let kept = match (room, state.lost) {
            (0, _) => false,
            (_, 0) => true,
            // Room for the report of the loss and this event.
            (2.., _) => {
                let count = std::mem::take(&mut state.lost);
                state.queue.push_back(WatchEvent::Lost { count });
                true
            }
            // Room for one: the report, counting this event too.
            (1, _) => {
                let count = std::mem::take(&mut state.lost) + 1;
                state.queue.push_back(WatchEvent::Lost { count });
                drop(state);
                self.ready.notify_all();
                return false;
            }
        };
        if kept {
            state.queue.push_back(event);
        } else {
            state.lost += 1;
        }
        drop(state);
        self.ready.notify_all();
        kept
    }

    /// Nothing more will be queued; a blocked receiver wakes.
    pub(crate) fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_all();
    }

    /// The next item, once one is there or the watch is closed, waiting until
    /// `deadline` at most (`None`: forever). `Ok(None)`: the deadline passed.
    fn next(&self, deadline: Option<Instant>) -> Result<Option<WatchEvent>, Error> {
        let mut state = self.lock();
        loop {
            if let Some(event) = state.queue.pop_front() {
                return Ok(Some(event));
            }
            if state.lost > 0 {
                let count = std::mem::take(&mut state.lost);
                return Ok(Some(WatchEvent::Lost { count }));
            }
            if state.closed {
                return Err(Error::Stopped);
            }
            state = match deadline {
                None => self.ready.wait(state).unwrap_or_else(|p| p.into_inner()),
                Some(at) => {
                    let left = at.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Ok(None);
                    }
                    self.ready
                        .wait_timeout(state, left)
                        .unwrap_or_else(|p| p.into_inner())
                        .0
                }
            };
        }
    }
}

/// A subscription to changes of the keys under one prefix, from
/// [`Dkv::watch`](crate::Dkv::watch).
///
/// Every change the node applies to a matching key after `watch` returned, local
/// or learned from a peer, set or delete, is one [`WatchEvent`], in the order the
/// node applied them, unless the queue was full (see the module's policy: then a
/// [`WatchEvent::Lost`] says how many are missing there). A tombstone forgotten
/// after the tombstone horizon is no change and gives no event. Iterating blocks
/// until the next event and ends when the node stops. Dropping the handle
/// unsubscribes.
pub struct Watch {
    shared: Arc<Shared>,
    id: u64,
    commands: mpsc::Sender<Command>,
    waker: Arc<Wakeup>,
}

impl std::fmt::Debug for Watch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watch")
            .field("prefix", &self.shared.prefix)
            .field("capacity", &self.shared.capacity)
            .finish()
    }
}

impl Watch {
    pub(crate) fn new(
        shared: Arc<Shared>,
        id: u64,
        commands: mpsc::Sender<Command>,
        waker: Arc<Wakeup>,
    ) -> Watch {
        Watch {
            shared,
            id,
            commands,
            waker,
        }
    }

    /// The watched prefix (`""`: every key).
    pub fn prefix(&self) -> &str {
        &self.shared.prefix
    }

    /// The next event, waiting for it. [`Error::Stopped`] once the node has
    /// stopped and every queued event was taken.
    pub fn recv(&self) -> Result<WatchEvent, Error> {
        self.shared
            .next(None)
            .map(|event| event.expect("no deadline"))
    }

    /// The next event if one comes within `timeout` (`Ok(None)` if not).
    /// [`Error::Stopped`] as for [`recv`](Self::recv).
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Option<WatchEvent>, Error> {
        // A timeout too long for the clock waits forever.
        match Instant::now().checked_add(timeout) {
            Some(deadline) => self.shared.next(Some(deadline)),
            None => self.shared.next(None),
        }
    }

    /// The next event if one is queued now.
    pub fn try_recv(&self) -> Result<Option<WatchEvent>, Error> {
        self.shared.next(Some(Instant::now()))
    }
}

impl Iterator for Watch {
    type Item = WatchEvent;

    /// Blocks for the next event; `None` once the node has stopped.
    fn next(&mut self) -> Option<WatchEvent> {
        self.recv().ok()
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.shared.close();
        // If the node is gone there is nothing to unsubscribe from.
        if self.commands.send(Command::Unwatch(self.id)).is_ok() {
            let _ = self.waker.wake();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dkv_proto::{NodeId, Timestamp};

    fn set(i: u64) -> WatchEvent {
        WatchEvent::Set {
            key: format!("k{i}"),
            value: Bytes::from(i.to_string()),
            version: Version {
                ts: Timestamp(i),
                node: NodeId([1; 8]),
            },
            local: true,
        }
    }

    #[test]
    fn a_full_queue_counts_what_it_drops_and_reports_it_in_place() {
        let shared = Shared::new(String::new(), 3);
        for i in 0..10 {
            assert_eq!(shared.push(set(i)), i < 3, "event {i}");
        }
        let now = Some(Instant::now());
        assert_eq!(shared.next(now).unwrap(), Some(set(0)));
        // Room for one: the report of the loss takes it, counting this change.
        assert!(!shared.push(set(10)));
        assert_eq!(shared.next(now).unwrap(), Some(set(1)));
        // Room for the report and the change: both are queued, in order.
        assert!(shared.push(set(11)));
        assert_eq!(shared.next(now).unwrap(), Some(set(2)));
        assert_eq!(
            shared.next(now).unwrap(),
            Some(WatchEvent::Lost { count: 8 })
        );
        assert_eq!(shared.next(now).unwrap(), Some(set(11)));
        assert_eq!(shared.next(now).unwrap(), None);
        // Lost, then room for two.
        for i in 20..25 {
            shared.push(set(i));
        }
        assert_eq!(shared.next(now).unwrap(), Some(set(20)));
        assert_eq!(shared.next(now).unwrap(), Some(set(21)));
        assert!(shared.push(set(25)));
        assert_eq!(shared.next(now).unwrap(), Some(set(22)));
        assert_eq!(
            shared.next(now).unwrap(),
            Some(WatchEvent::Lost { count: 2 })
        );
        assert_eq!(shared.next(now).unwrap(), Some(set(25)));
        // A loss with no room ever made is still reported once drained.
        for i in 11..15 {
            shared.push(set(i));
        }
        for i in 11..14 {
            assert_eq!(shared.next(now).unwrap(), Some(set(i)));
        }
        assert_eq!(
            shared.next(now).unwrap(),
            Some(WatchEvent::Lost { count: 1 })
        );
        shared.close();
        assert!(matches!(shared.next(None), Err(Error::Stopped)));
    }
}
