//! Live peers: who beaconed from which PUB endpoint and when, which of them are dkv
//! nodes (they say hello, with their id), and which ids belong to dkv nodes at all.

use crate::config::later;
use crate::node_id::NodeId;
use crate::{keep_min, FixedMap};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// One live peer: 64 bytes with its endpoint, a cache line's worth in the table.
#[derive(Debug)]
pub(crate) struct Peer {
    /// When any datagram from it last came; for a dkv peer, also when its id was
    /// last heard, folded into `dkv_ids` when the id leaves the peer, so that a
    /// repeated hello costs no lookup there.
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
    /// The peer has said hello (it is a dkv node, with a known id).
    pub(crate) named: bool,
    /// The first peer may fall silent earlier than thought (a clock read out of
    /// order): the node's timeout moved.
    pub(crate) earlier_expiry: bool,
}

impl Heard {
    /// A live peer heard again as it was, after no gap: nothing changed but when it
    /// was last heard, which moves no deadline (see [`Peers::seen_floor`]).
    pub(crate) fn keeps_alive(&self) -> bool {
        !(self.new || self.identified || self.after_gap || self.earlier_expiry)
    }
}

/// Live peers by endpoint (with when each was last heard) and by id, and
/// recently heard dkv ids.
#[derive(Debug, Default)]
pub(crate) struct Peers {
    /// Looked up on every datagram, so hashed (one probe where an ordered map
    /// walks several nodes); never iterated where order could matter.
    by_addr: FixedMap<SocketAddr, Peer>,
    /// The same endpoints in order, changed only when a peer comes or goes.
    addrs: BTreeSet<SocketAddr>,
    /// No live peer outside `suspects` was last heard before this. Hearing a peer
    /// leaves it as it is (a beacon writes only the peer's own time: no ordered
    /// structure to keep, two cache misses fewer per beacon in a table of a
    /// thousand); [`Peers::expire`] walks the table when it comes due.
    floor: Option<Instant>,
    /// The peers that were close to falling silent at the last walk, with when they
    /// were last heard then, oldest first (ties by endpoint): each is looked up
    /// when its time comes, so peers going silent one after another behind a
    /// partition cost a lookup each, not a walk each. Entries of peers heard again
    /// or gone since stay until then.
    suspects: VecDeque<(Instant, SocketAddr)>,
    by_id: BTreeMap<NodeId, SocketAddr>,
    /// Every dkv id heard from (hello or dkv/2 message), with when; pruned by age.
    /// A live dkv peer's latest hearings are in its `last_seen` until its id leaves.
    dkv_ids: BTreeMap<NodeId, Instant>,
    /// No id that is not a live peer's was heard from before this: pruning before
    /// it plus the memory forgets nothing. `None`: every remembered id is live.
    gone_since: Option<Instant>,
}

impl Peers {
    /// Ids not heard from for this long are forgotten as dkv ids.
    const DKV_ID_MEMORY: u32 = 16;

    /// Records a beacon (`id: None`) or hello (`id: Some`) from the live peer at
    /// `addr`; `None` (and nothing changes) if `addr` is not a live peer.
    pub(crate) fn heard(
        &mut self,
        now: Instant,
        addr: SocketAddr,
        id: Option<NodeId>,
        gap: Duration,
    ) -> Option<Heard> {
        let peer = self.by_addr.get_mut(&addr)?;
        let mut heard = Heard {
            after_gap: now.saturating_duration_since(peer.last_seen) > gap,
            // A hello names it (`identify` below, if the id is new).
            named: id.is_some() || peer.id.is_some(),
            ..Heard::default()
        };
        peer.last_seen = now;
        let known = peer.id;
        // The floor is at most the last walk, which was at most now, unless no peer
        // was left above it (all suspects) or the clock was read out of order.
        if self.floor.is_none_or(|f| now < f) {
            heard.earlier_expiry = self.seen_floor().is_none_or(|f| now < f);
            self.floor = Some(now);
        }
        match id {
            Some(id) if known != Some(id) => Some(self.identify(now, addr, id, heard)),
            _ => Some(heard),
        }
    }

    /// Records the first beacon (`id: None`) or hello (`id: Some`) from `addr`, not
    /// a live peer until now.
    pub(crate) fn add(&mut self, now: Instant, addr: SocketAddr, id: Option<NodeId>) -> Heard {
        let peer = Peer {
            last_seen: now,
            id: None,
        };
        self.by_addr.insert(addr, peer);
        self.addrs.insert(addr);
        keep_min(&mut self.floor, now);
        let heard = Heard {
            new: true,
            ..Heard::default()
        };
        match id {
            None => heard,
            Some(id) => self.identify(now, addr, id, heard),
        }
    }

    /// The peer at `addr` said hello as `id`, which it was not known as.
    fn identify(&mut self, now: Instant, addr: SocketAddr, id: NodeId, mut heard: Heard) -> Heard {
        self.dkv_ids.insert(id, now);
        let Some(peer) = self.by_addr.get_mut(&addr) else {
            return heard;
        };
        if let Some(old) = peer.id.replace(id) {
            self.by_id.remove(&old);
            // Its endpoint was last heard from it now, under its successor's id.
            self.forget_id(old, now);
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
        heard.named = true;
        heard
    }

    /// Folds when `id`, which has just left its peer, was last heard into `dkv_ids`.
    fn forget_id(&mut self, id: NodeId, heard_at: Instant) {
        let seen = self.dkv_ids.entry(id).or_insert(heard_at);
        *seen = (*seen).max(heard_at);
        let seen = *seen;
        self.note_gone(seen);
    }

    /// An id that is not (or may not be) a live peer's was last heard at `seen`.
    fn note_gone(&mut self, seen: Instant) {
        keep_min(&mut self.gone_since, seen);
    }

    /// Notes that `id` spoke dkv/2.
    pub(crate) fn note_dkv(&mut self, id: NodeId, now: Instant) {
        self.dkv_ids.insert(id, now);
        // Whether `id` is live is not looked up (this runs for every dkv/2 message);
        // `now` is never earlier than the bound already kept, unless there is none.
        self.note_gone(now);
    }

    /// Whether `id` is known to be a dkv node.
    pub(crate) fn is_dkv(&self, id: NodeId) -> bool {
        self.dkv_ids.contains_key(&id)
    }

    /// Forgets dkv ids silent for `DKV_ID_MEMORY` peer timeouts. Runs every beacon
    /// interval, but walks the ids only once one that is not live may have been
    /// silent that long (see `gone_since`), and then walks both id maps side by
    /// side (both are in id order), with no lookup per id.
    pub(crate) fn prune_ids(&mut self, now: Instant, peer_timeout: Duration) {
        let memory = peer_timeout.saturating_mul(Self::DKV_ID_MEMORY);
        let due = self
            .gone_since
            .is_some_and(|t| now.saturating_duration_since(t) > memory);
        if !due {
            return;
        }
        let mut live = self.by_id.keys().peekable();
        let mut gone_since: Option<Instant> = None;
        self.dkv_ids.retain(|id, seen| {
            while live.next_if(|l| *l < id).is_some() {}
            if live.peek() == Some(&id) {
                return true;
            }
            let keep = now.saturating_duration_since(*seen) <= memory;
            if keep {
                keep_min(&mut gone_since, *seen);
            }
            keep
        });
        self.gone_since = gone_since;
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
        self.addrs.iter().copied()
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
        self.addrs.range(lo..=hi).count()
    }

    pub(crate) fn len(&self) -> usize {
        self.by_addr.len()
    }

    /// No live peer was last heard before this (`None`: no live peer). A peer
    /// falls silent a peer timeout after it was last heard, so not before this plus
    /// the timeout.
    pub(crate) fn seen_floor(&self) -> Option<Instant> {
        let suspect = self.suspects.front().map(|(seen, _)| *seen);
        self.floor.into_iter().chain(suspect).min()
    }

    /// The live peers last heard a `timeout` or longer before `now`, oldest first
    /// (of equals, the lowest endpoint), for the caller to remove. Walks every peer
    /// only once the floor is due, and then sets aside as suspects those that fall
    /// silent within half a timeout unless heard: the floor over the others is then
    /// at least half a timeout ahead, so a node walks its table at most about once
    /// per half timeout, and looks up each suspect when its time comes. With
    /// nothing due it costs two comparisons, so it runs on every timeout.
    pub(crate) fn expire(&mut self, now: Instant, timeout: Duration) -> Vec<SocketAddr> {
        let mut silent = Vec::new();
        if self.floor.is_some_and(|f| later(f, timeout) <= now) {
            let soon = later(now, timeout / 2);
            let mut floor = None;
            let mut suspects = Vec::new();
            for (addr, p) in &self.by_addr {
                let at = later(p.last_seen, timeout);
                if at <= now {
                    silent.push((p.last_seen, *addr));
                } else if at <= soon {
                    suspects.push((p.last_seen, *addr));
                } else {
                    keep_min(&mut floor, p.last_seen);
                }
            }
            suspects.sort_unstable();
            self.suspects = suspects.into();
            self.floor = floor;
        } else {
            while let Some(&(seen, addr)) = self.suspects.front() {
                if later(seen, timeout) > now {
                    break;
                }
                self.suspects.pop_front();
                // Heard again since (or gone, or another peer at that endpoint): it
                // is under the floor's watch now.
                if let Some(p) = self.by_addr.get(&addr) {
                    if later(p.last_seen, timeout) <= now {
                        silent.push((p.last_seen, addr));
                    }
                }
            }
        }
        silent.sort_unstable();
        silent.into_iter().map(|(_, addr)| addr).collect()
    }

    /// Removes a peer; returns its id if it was a dkv node.
    pub(crate) fn remove(&mut self, addr: SocketAddr) -> Option<NodeId> {
        let peer = self.by_addr.remove(&addr)?;
        self.addrs.remove(&addr);
        if self.by_addr.is_empty() {
            self.floor = None;
            self.suspects.clear();
        }
        let id = peer.id?;
        self.by_id.remove(&id);
        self.forget_id(id, peer.last_seen);
        Some(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn heard(p: &mut Peers, now: Instant, addr: SocketAddr, id: Option<NodeId>) -> Heard {
        match p.heard(now, addr, id, Duration::from_secs(3)) {
            Some(h) => h,
            None => p.add(now, addr, id),
        }
    }

    #[test]
    fn peers_expire_a_timeout_after_they_were_last_heard_and_the_floor_follows() {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let timeout = Duration::from_millis(100);
        let addr = |port| SocketAddr::from(([10, 0, 0, 1], port));
        let mut p = Peers::default();
        assert_eq!(p.seen_floor(), None);
        for (i, port) in [1, 2, 3].into_iter().enumerate() {
            assert!(heard(&mut p, at(i as u64), addr(port), None).new);
        }
        assert_eq!(p.seen_floor(), Some(at(0)));
        // Hearing the oldest again leaves the floor low until a walk.
        assert!(heard(&mut p, at(50), addr(1), None).keeps_alive());
        assert_eq!(p.seen_floor(), Some(at(0)));
        assert!(p.expire(at(100), timeout).is_empty());
        assert_eq!(p.seen_floor(), Some(at(1)), "exact after a walk");
        assert_eq!(p.expire(at(101), timeout), [addr(2)]);
        assert_eq!(p.seen_floor(), Some(at(2)));
        p.remove(addr(2));
        for ms in 100..1_000 {
            heard(&mut p, at(ms), addr(1), None);
        }
        assert_eq!(p.expire(at(999), timeout), [addr(3)]);
        p.remove(addr(3));
        assert_eq!(p.seen_floor(), Some(at(999)));
        p.remove(addr(1));
        assert_eq!((p.seen_floor(), p.len()), (None, 0));
    }

    #[test]
    fn expiry_is_never_late_and_finds_what_a_walk_of_every_peer_finds() {
        let timeout = Duration::from_millis(100);
        let mut now = Instant::now();
        let mut p = Peers::default();
        let mut model: BTreeMap<SocketAddr, Instant> = BTreeMap::new();
        let mut x = 0x2545_F491_4F6C_DD1D_u64;
        let (mut walks, mut expired) = (0, 0);
        for _ in 0..50_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            now += Duration::from_millis(x % 9);
            let addr = SocketAddr::from(([10, 0, 0, 1], (x >> 8) as u16 % 32));
            // Mostly hearings; some peers fall silent for a while, some leave.
            match (x >> 40) % 16 {
                0..=9 if (x >> 20) % 32 > u64::from(addr.port()) => {
                    heard(&mut p, now, addr, None);
                    model.insert(addr, now);
                }
                10 => {
                    p.remove(addr);
                    model.remove(&addr);
                }
                _ => {}
            }
            let first_due = model.values().min().map(|s| *s + timeout);
            let floor_due = p.seen_floor().map(|f| f + timeout);
            assert!(
                first_due.is_none_or(|d| floor_due.is_some_and(|f| f <= d)),
                "late: a peer falls silent at {first_due:?}, the node wakes at {floor_due:?}"
            );
            if floor_due.is_some_and(|f| f <= now) {
                walks += 1;
                let got = p.expire(now, timeout);
                let mut want: Vec<(Instant, SocketAddr)> = model
                    .iter()
                    .filter(|(_, seen)| **seen + timeout <= now)
                    .map(|(a, seen)| (*seen, *a))
                    .collect();
                want.sort();
                let want: Vec<SocketAddr> = want.into_iter().map(|(_, a)| a).collect();
                assert_eq!(got, want, "oldest first, ties by endpoint");
                for a in got {
                    p.remove(a);
                    model.remove(&a);
                    expired += 1;
                }
            }
        }
        assert!(
            expired > 1_000 && walks > 1_000,
            "{expired} expired in {walks} calls"
        );
    }

    #[test]
    fn a_peer_and_its_endpoint_fill_one_cache_line() {
        assert!(std::mem::size_of::<(SocketAddr, Peer)>() <= 64);
    }

    #[test]
    fn peers_heard_at_one_instant_or_out_of_order_expire_by_time_then_endpoint() {
        let t0 = Instant::now() + Duration::from_secs(1);
        let at = |ms| t0 + Duration::from_millis(ms);
        let addr = |port| SocketAddr::from(([10, 0, 0, 1], port));
        let mut p = Peers::default();
        for port in [5, 3, 4] {
            heard(&mut p, at(7), addr(port), None);
        }
        // A reading older than the others lowers the floor and goes first.
        heard(&mut p, at(6), addr(9), None);
        assert!(heard(&mut p, at(8), addr(3), None).keeps_alive());
        let back = heard(&mut p, at(5), addr(4), None);
        assert!(
            back.earlier_expiry && !back.keeps_alive(),
            "the timeout moved"
        );
        assert_eq!(p.seen_floor(), Some(at(5)));
        let silent = p.expire(at(10), Duration::from_millis(3));
        assert_eq!(silent, [addr(4), addr(9), addr(5)]);
        assert_eq!(p.seen_floor(), Some(at(8)));
    }

    #[test]
    fn pruning_keeps_every_live_id_and_forgets_only_silent_gone_ones() {
        let t0 = Instant::now();
        let at = |s| t0 + Duration::from_secs(s);
        let timeout = Duration::from_secs(4);
        let memory = 4 * u64::from(Peers::DKV_ID_MEMORY);
        let addr = |port| SocketAddr::from(([10, 0, 0, 1], port));
        let id = |b: u8| NodeId([b; 8]);
        let mut p = Peers::default();
        // Ids 1, 3 and 5 stay live (one hello, long ago); 2 and 4 leave at once.
        for b in 1..=5 {
            heard(&mut p, at(0), addr(u16::from(b)), Some(id(b)));
        }
        p.remove(addr(2));
        p.remove(addr(4));
        p.note_dkv(id(4), at(memory));
        let known = |p: &Peers| -> Vec<u8> { (1..=5).filter(|b| p.is_dkv(id(*b))).collect() };
        p.prune_ids(at(memory + 1), timeout);
        assert_eq!(known(&p), [1, 3, 4, 5], "2 was silent past the memory");
        p.prune_ids(at(2 * memory + 1), timeout);
        assert_eq!(
            known(&p),
            [1, 3, 5],
            "live ids stay however old their hello"
        );
        // An id only ever heard in dkv/2 messages, never a peer's, is forgotten too.
        p.note_dkv(id(9), at(3 * memory));
        p.prune_ids(at(4 * memory), timeout);
        assert!(p.is_dkv(id(9)));
        p.prune_ids(at(4 * memory + 1), timeout);
        assert!(!p.is_dkv(id(9)));
    }

    #[test]
    fn an_id_stays_known_for_its_memory_after_its_peer_was_last_heard() {
        let t0 = Instant::now();
        let at = |s| t0 + Duration::from_secs(s);
        let timeout = Duration::from_secs(4);
        let memory = 4 * u64::from(Peers::DKV_ID_MEMORY);
        let (a, b) = (SocketAddr::from(([10, 0, 0, 1], 1)), NodeId(*b"node one"));
        let mut p = Peers::default();
        for s in 0..=10 {
            heard(&mut p, at(s), a, Some(b));
        }
        heard(&mut p, at(11), a, None);
        p.remove(a);
        p.prune_ids(at(11 + memory), timeout);
        assert!(p.is_dkv(b), "known for the memory after the beacon at 11 s");
        p.prune_ids(at(12 + memory), timeout);
        assert!(!p.is_dkv(b), "forgotten after it");
    }
}
