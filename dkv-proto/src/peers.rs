//! Live peers: who beaconed from which PUB endpoint and when, which of them are dkv
//! nodes (they say hello, with their id), and which ids belong to dkv nodes at all.

use crate::node_id::NodeId;
use std::cmp::Reverse;
use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BinaryHeap};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// One live peer.
#[derive(Debug)]
pub(crate) struct Peer {
    pub(crate) last_seen: Instant,
    /// The id from its hello: a dkv node. `None` so far: a prototype node (or a dkv
    /// node whose hello has not arrived yet).
    pub(crate) id: Option<NodeId>,
}

/// What a beacon or hello changed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Heard {
    /// The endpoint was not a live peer.
    pub(crate) new: bool,
    /// The peer's id became known (or changed) with this hello.
    pub(crate) identified: bool,
    /// The id the endpoint had before this hello, if it changed: that node is gone.
    pub(crate) replaced: Option<NodeId>,
    /// The peer had been silent for more than two of its intervals: messages to or
    /// from it may have been lost meanwhile.
    pub(crate) after_gap: bool,
}

/// Live peers by endpoint, by age and by id, and recently heard dkv ids.
#[derive(Debug, Default)]
pub(crate) struct Peers {
    by_addr: BTreeMap<SocketAddr, Peer>,
    /// `(last seen, endpoint)`, oldest on top. Hearing a peer pushes a new entry
    /// and leaves its old one stale (its time is no longer the peer's `last_seen`):
    /// a push is cheaper than the removal from an ordered set it replaces, and a
    /// peer is heard about twice per beacon interval from every other. Stale
    /// entries are dropped when they reach the top, which is always current, and
    /// all at once when they outnumber the live ones.
    by_age: BinaryHeap<Reverse<(Instant, SocketAddr)>>,
    by_id: BTreeMap<NodeId, SocketAddr>,
    /// Every dkv id heard from (hello or dkv/2 message), with when; pruned by age.
    dkv_ids: BTreeMap<NodeId, Instant>,
}

impl Peers {
    /// Ids not heard from for this long are forgotten as dkv ids.
    const DKV_ID_MEMORY: u32 = 16;

    /// Records a beacon (`id: None`) or hello (`id: Some`) from `addr`.
    pub(crate) fn heard(
        &mut self,
        now: Instant,
        addr: SocketAddr,
        id: Option<NodeId>,
        gap: Duration,
    ) -> Heard {
        let mut heard = Heard::default();
        let mut was = None;
        let peer = match self.by_addr.entry(addr) {
            Entry::Occupied(o) => {
                let peer = o.into_mut();
                heard.after_gap = now.saturating_duration_since(peer.last_seen) > gap;
                was = Some(peer.last_seen);
                peer
            }
            Entry::Vacant(v) => {
                heard.new = true;
                v.insert(Peer {
                    last_seen: now,
                    id: None,
                })
            }
        };
        if heard.new || peer.last_seen != now {
            peer.last_seen = now;
            self.by_age.push(Reverse((now, addr)));
        }
        let peer_id = peer.id;
        if let Some(was) = was.filter(|&t| t != now) {
            self.tidy_ages((was, addr));
        }
        if let Some(id) = id {
            self.dkv_ids.insert(id, now);
            if peer_id != Some(id) {
                if let Some(old) = self.by_addr.get_mut(&addr).and_then(|p| p.id.replace(id)) {
                    self.by_id.remove(&old);
                    heard.replaced = Some(old);
                }
                if let Some(other) = self.by_id.insert(id, addr) {
                    // The id moved endpoints (a new address): the old one is stale.
                    if other != addr {
                        if let Some(p) = self.by_addr.get_mut(&other) {
                            p.id = None;
                        }
                    }
                }
                heard.identified = true;
            }
        }
        heard
    }

    /// Notes that `id` spoke dkv/2.
    pub(crate) fn note_dkv(&mut self, id: NodeId, now: Instant) {
        self.dkv_ids.insert(id, now);
    }

    /// Whether `id` is known to be a dkv node.
    pub(crate) fn is_dkv(&self, id: NodeId) -> bool {
        self.dkv_ids.contains_key(&id)
    }

    /// Forgets dkv ids silent for `DKV_ID_MEMORY` peer timeouts.
    pub(crate) fn prune_ids(&mut self, now: Instant, peer_timeout: Duration) {
        let memory = peer_timeout.saturating_mul(Self::DKV_ID_MEMORY);
        let by_id = &self.by_id;
        self.dkv_ids.retain(|id, seen| {
            by_id.contains_key(id) || now.saturating_duration_since(*seen) <= memory
        });
    }

    pub(crate) fn get(&self, addr: &SocketAddr) -> Option<&Peer> {
        self.by_addr.get(addr)
    }

    pub(crate) fn contains(&self, addr: &SocketAddr) -> bool {
        self.by_addr.contains_key(addr)
    }

    /// The live endpoint of dkv node `id`.
    pub(crate) fn addr_of(&self, id: NodeId) -> Option<SocketAddr> {
        self.by_id.get(&id).copied()
    }

    /// Live peers' endpoints, in address order.
    pub(crate) fn addrs(&self) -> impl Iterator<Item = SocketAddr> + '_ {
        self.by_addr.keys().copied()
    }

    /// Live dkv peers' ids, in id order.
    pub(crate) fn dkv_peers(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.by_id.keys().copied()
    }

    /// Live dkv peers.
    pub(crate) fn dkv_count(&self) -> usize {
        self.by_id.len()
    }

    /// Whether some live peer has not said hello: a prototype node, so far as known.
    pub(crate) fn any_prototype(&self) -> bool {
        self.prototypes() > 0
    }

    /// Live peers that have not said hello: prototype nodes, so far as known.
    pub(crate) fn prototypes(&self) -> usize {
        self.by_addr.len() - self.by_id.len()
    }

    /// Prototype peers heard at or after `since`.
    pub(crate) fn prototypes_heard_since(&self, since: Instant) -> usize {
        self.by_addr
            .values()
            .filter(|p| p.id.is_none() && p.last_seen >= since)
            .count()
    }

    /// Live peers whose endpoint is on `ip`.
    pub(crate) fn count_ip(&self, ip: std::net::IpAddr) -> usize {
        let lo = SocketAddr::new(ip, 0);
        let hi = SocketAddr::new(ip, u16::MAX);
        self.by_addr.range(lo..=hi).count()
    }

    pub(crate) fn len(&self) -> usize {
        self.by_addr.len()
    }

    /// The peer that was heard from longest ago, and when.
    pub(crate) fn oldest(&self) -> Option<(Instant, SocketAddr)> {
        self.by_age.peek().map(|Reverse(top)| *top)
    }

    /// Whether a `by_age` entry is a live peer's current one.
    fn current(&self, (seen, addr): (Instant, SocketAddr)) -> bool {
        self.by_addr.get(&addr).is_some_and(|p| p.last_seen == seen)
    }

    /// Drops stale `by_age` entries, `old` having just gone stale: from the top
    /// (only `old` can have made it stale), so that it is current, and all of them
    /// once they outnumber the live peers (memory stays bounded by the peers,
    /// whatever the rate of beacons).
    fn tidy_ages(&mut self, old: (Instant, SocketAddr)) {
        if self.by_age.len() > 2 * self.by_addr.len() + 64 {
            let ages = std::mem::take(&mut self.by_age).into_vec();
            let mut ages: Vec<_> = ages
                .into_iter()
                .filter(|Reverse(e)| self.current(*e))
                .collect();
            ages.sort_unstable();
            ages.dedup();
            self.by_age = BinaryHeap::from(ages);
        }
        if self.by_age.peek() != Some(&Reverse(old)) {
            return;
        }
        while let Some(&Reverse(top)) = self.by_age.peek() {
            if self.current(top) {
                break;
            }
            self.by_age.pop();
        }
    }

    /// Removes a peer; returns its id if it was a dkv node.
    pub(crate) fn remove(&mut self, addr: SocketAddr) -> Option<NodeId> {
        let peer = self.by_addr.remove(&addr)?;
        self.tidy_ages((peer.last_seen, addr));
        let id = peer.id?;
        self.by_id.remove(&id);
        Some(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_peer_follows_hearings_and_removals_and_ages_stay_bounded() {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let addr = |port| SocketAddr::from(([10, 0, 0, 1], port));
        let gap = Duration::from_secs(3);
        let mut p = Peers::default();
        assert_eq!(p.oldest(), None);
        for (i, port) in [1, 2, 3].into_iter().enumerate() {
            assert!(p.heard(at(i as u64), addr(port), None, gap).new);
        }
        assert_eq!(p.oldest(), Some((at(0), addr(1))));
        p.heard(at(10), addr(1), None, gap);
        assert_eq!(p.oldest(), Some((at(1), addr(2))));
        p.remove(addr(2));
        assert_eq!(p.oldest(), Some((at(2), addr(3))));
        // A peer heard again and again: one live entry each, however many hearings.
        for ms in 100..10_000 {
            p.heard(at(ms), addr(1), None, gap);
        }
        assert_eq!(p.oldest(), Some((at(2), addr(3))));
        assert!(p.by_age.len() <= 2 * p.len() + 64 + 1);
        p.remove(addr(3));
        assert_eq!(p.oldest(), Some((at(9_999), addr(1))));
        p.remove(addr(1));
        assert_eq!((p.oldest(), p.len()), (None, 0));
    }
}
