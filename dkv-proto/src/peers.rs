//! Live peers: who beaconed from which PUB endpoint and when, which of them are dkv
//! nodes (they say hello, with their id), and which ids belong to dkv nodes at all.

use crate::node_id::NodeId;
use std::collections::{BTreeMap, BTreeSet};
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
    by_age: BTreeSet<(Instant, SocketAddr)>,
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
        match self.by_addr.get_mut(&addr) {
            Some(peer) => {
                self.by_age.remove(&(peer.last_seen, addr));
                heard.after_gap = now.saturating_duration_since(peer.last_seen) > gap;
                peer.last_seen = now;
            }
            None => {
                heard.new = true;
                self.by_addr.insert(
                    addr,
                    Peer {
                        last_seen: now,
                        id: None,
                    },
                );
            }
        }
        self.by_age.insert((now, addr));
        if let (Some(id), Some(peer)) = (id, self.by_addr.get_mut(&addr)) {
            self.dkv_ids.insert(id, now);
            if peer.id != Some(id) {
                if let Some(old) = peer.id.replace(id) {
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
        self.by_age.first().copied()
    }

    /// Removes a peer; returns its id if it was a dkv node.
    pub(crate) fn remove(&mut self, addr: SocketAddr) -> Option<NodeId> {
        let peer = self.by_addr.remove(&addr)?;
        self.by_age.remove(&(peer.last_seen, addr));
        let id = peer.id?;
        self.by_id.remove(&id);
        Some(id)
    }
}
