//! Anti-entropy: range-based reconciliation of two stores, and the transfers it
//! starts.
//!
//! A session compares fingerprints of key-hash ranges, top down: equal ranges are
//! done, differing ones are split into their 16 sub-ranges, small ones are listed
//! item by item. Whoever lacks a whole range pulls it a page at a time; single
//! entries are pushed or fetched. The responder keeps no state: every step carries
//! the range it is about. Cost grows with the number of differences, not the size of
//! the stores: two equal stores agree after one round trip of one fingerprint.
//!
//! A node reconciles with a peer when the peer comes up, when it is heard again after
//! a gap, and every sync interval with one peer chosen at random. A session waits
//! until the peer has subscribed to this node (the transport reports it), or a peer
//! timeout if the transport reports nothing: a node hears a new peer up to a beacon
//! interval before that peer hears it, and an opening sent before the peer
//! subscribes is lost, or held and answered after its session gave up. Of a pair
//! that meets, the node with the higher id waits a first reply wait longer, and an
//! opening from the other that finds the stores equal settles the pair: one session
//! where both would run one. It runs at most
//! [`MAX_SESSIONS`] sessions at once; the other peers wait their turn, those whose
//! last session got no reply after the rest, so a node that hears a thousand peers
//! at once (a start, a healed partition) does not send a thousand requests, most of
//! them lost, and a peer it cannot reach (a one-way partition) costs one slot, not
//! one request per peer each second. It pulls from one peer at a time; a peer whose
//! session found more to pull meanwhile is reconciled again once that pull ends, so
//! a joiner fetches everything once, not once per peer. A pull that brings no page
//! for a sync timeout ends: a stalled peer, or a forged opening from an invented
//! id, holds the one pull for a timeout, while a slow link's pages keep theirs.

use crate::clock::{Hlc, Timestamp};
use crate::config::{later, Timings};
use crate::keep_min;
use crate::node_id::NodeId;
use crate::peers::Peers;
use crate::range::{Item, Range, Summary};
use crate::store::{Record, Store};
use crate::timed::Timed;
use crate::wire::v2::{Body, Envelope, Step};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

/// A range where both sides hold at most this many entries is listed item by item.
pub const LEAF: u64 = 32;
/// A pulled range holding more than this is split into sub-ranges pulled in parallel,
/// at most two levels down (256 parts).
const PULL_SPLIT: u64 = 4096;
/// Ranges queued or in flight in one pull at most; what does not fit is found by the
/// next session.
const PULL_RANGES: usize = 4096;
/// Pull requests in flight at once.
const PULL_WINDOW: usize = 8;
/// The most bytes of records one push carries (a larger single record goes alone).
pub const PAGE_BYTES: usize = 256 * 1024;
/// The most bytes of steps one sync message carries.
const SYNC_BYTES: usize = 32 * 1024;
/// Sessions a node runs at once. A session that completes frees its slot at once,
/// one that gets no reply at its deadline (at most the sync timeout).
pub const MAX_SESSIONS: usize = 16;

/// Counters of the reconciliation machinery.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct SyncCounters {
    pub(crate) sessions_started: u64,
    pub(crate) sessions_completed: u64,
    pub(crate) sessions_timed_out: u64,
    pub(crate) steps_compared: u64,
    pub(crate) ranges_pulled: u64,
    pub(crate) pull_pages: u64,
    pub(crate) pulls_timed_out: u64,
    pub(crate) fetches: u64,
    pub(crate) fetches_timed_out: u64,
    pub(crate) pushes_unsolicited: u64,
    pub(crate) stale_replies: u64,
    pub(crate) subscriptions_forgotten: u64,
    pub(crate) sessions_settled: u64,
}

/// A peer waiting in `due`.
#[derive(Clone, Copy, Debug)]
struct Due {
    /// How long after the peer's subscription the session is due (see
    /// [`Reconciler::yield_to`]).
    wait: Duration,
    /// This node's fingerprint of its whole store that an opening from the peer,
    /// sent before it subscribed, found equal.
    equal: Option<Summary>,
}

/// A session this node started; its deadline is kept beside it in `sessions`.
#[derive(Debug)]
struct Session {
    id: u64,
    /// Messages sent whose replies have not ended yet.
    outstanding: u32,
}

#[derive(Debug)]
struct Pulling {
    peer: NodeId,
    queue: VecDeque<(Range, Option<u64>)>,
    in_flight: BTreeMap<u64, Range>,
    /// When the pull started or its last page came: with requests in flight, the
    /// pull ends a sync timeout after this.
    progress: Instant,
    /// Every range queued or in flight, to skip ranges already covered.
    ranges: BTreeSet<Range>,
}

impl Pulling {
    fn covers(&self, r: Range) -> bool {
        (0..=r.level()).any(|l| self.ranges.contains(&r.ancestor(l)))
    }
}

/// Reconciliation state: sessions this node started, the pull under way, fetches in
/// flight, and which peers to reconcile with when.
#[derive(Debug)]
pub(crate) struct Reconciler {
    own: NodeId,
    timings: Timings,
    rng: u64,
    /// Sessions by peer, due to time out at their deadline.
    sessions: Timed<NodeId, Session>,
    pulling: Option<Pulling>,
    /// Fetches in flight by request, with the peer asked and the key hashes.
    fetches: Timed<u64, (NodeId, Vec<u64>)>,
    /// The key hashes of every fetch in flight: sessions with several peers at
    /// once (after a heal) find the same differences, fetched once.
    fetching: BTreeSet<u64>,
    next_request: u64,
    /// Peers with a session completed, or settled, since they came up.
    synced: BTreeSet<NodeId>,
    /// Peers to reconcile with once the current pull ends.
    after_pull: BTreeSet<NodeId>,
    /// Peers to reconcile with at or after a time, in that order as slots free.
    due: Timed<NodeId, Due>,
    /// Peers whose last session got no reply, to try again once no `due` peer
    /// waits for a slot.
    retry: Timed<NodeId, ()>,
    /// Peers holding an entry this node refused as too far ahead of its clock, with
    /// when the earliest becomes acceptable: reconciled with then.
    rechecks: Timed<NodeId, ()>,
    /// Sessions in a row that timed out, by peer.
    failed: BTreeMap<NodeId, u32>,
    /// Nodes the transport reports subscribed to this node, at most
    /// `listening_cap`. A reset keeps them: they are the transport's state.
    listening: BTreeSet<NodeId>,
    listening_cap: usize,
    next_periodic: Option<Instant>,
    /// [`next_deadline`](Self::next_deadline), kept after every change: the node
    /// reads it after every input it takes (a beacon from each peer, twice a
    /// second), far more often than anything here changes.
    deadline: Option<Instant>,
    pub(crate) counters: SyncCounters,
}

/// What a received `sync` asks of the node.
#[derive(Debug, Default)]
pub(crate) struct Reaction {
    /// Messages to publish.
    pub(crate) send: Vec<Envelope>,
    /// The earliest version among the peer's items left unfetched as too far
    /// ahead of this node's clock.
    pub(crate) ahead: Option<Timestamp>,
}

impl Reconciler {
    /// A reconciler that remembers at most `listening_cap` subscriptions.
    pub(crate) fn new(
        own: NodeId,
        timings: &Timings,
        seed: u64,
        listening_cap: usize,
    ) -> Reconciler {
        Reconciler {
            own,
            timings: timings.clone(),
            rng: seed ^ 0x9E37_79B9_7F4A_7C15,
            sessions: Timed::default(),
            pulling: None,
            fetches: Timed::default(),
            fetching: BTreeSet::new(),
            next_request: 1,
            synced: BTreeSet::new(),
            after_pull: BTreeSet::new(),
            due: Timed::default(),
            retry: Timed::default(),
            rechecks: Timed::default(),
            failed: BTreeMap::new(),
            listening: BTreeSet::new(),
            listening_cap,
            next_periodic: None,
            deadline: None,
            counters: SyncCounters::default(),
        }
    }

    fn random(&mut self) -> u64 {
        // xorshift64*: only the node's own choices depend on it.
        let mut x = self.rng.max(1);
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn request_id(&mut self) -> u64 {
        let id = self.next_request;
        self.next_request += 1;
        id
    }

    fn to(&self, peer: NodeId, body: Body) -> Envelope {
        Envelope {
            to: Some(peer),
            from: self.own,
            body,
        }
    }

    // ---- what the node tells it ----

    /// A dkv peer came up (or was identified): reconcile with it once it has
    /// subscribed to this node. The reply comes back over this node's connection to
    /// the peer, asked for just now: a transport holds it until that subscription
    /// is up (dkv-mio does; one that does not loses it, and the session is retried
    /// one first-reply wait later).
    pub(crate) fn peer_up(&mut self, now: Instant, peer: NodeId) {
        self.synced.remove(&peer);
        self.make_due_after(now, peer, self.yield_to(peer));
        self.next_periodic
            .get_or_insert(later(now, self.timings.sync_interval));
        self.refresh_deadline();
    }

    /// A dkv peer was heard again after a gap: reconcile with it now.
    pub(crate) fn peer_back(&mut self, now: Instant, peer: NodeId) {
        self.make_due_after(now, peer, self.yield_to(peer));
        self.refresh_deadline();
    }

    /// `peer` is to be reconciled with from `now` once it has subscribed (a peer
    /// timeout from now at the latest), after those already waiting, unless it
    /// already waits (a peer waiting to retry waits with them now).
    fn make_due(&mut self, now: Instant, peer: NodeId) {
        self.make_due_after(now, peer, Duration::ZERO);
    }

    /// [`make_due`](Self::make_due), `wait` after the peer has subscribed.
    fn make_due_after(&mut self, now: Instant, peer: NodeId, wait: Duration) {
        self.retry.remove(&peer);
        if !self.due.contains_key(&peer) {
            let at = if self.listening.contains(&peer) {
                later(now, wait)
            } else {
                later(now, self.timings.peer_timeout)
            };
            self.due.insert(peer, Due { wait, equal: None }, at);
        }
    }

    /// A peer that comes up or back starts a session with this node just as this
    /// node does with it, and one session reconciles both. The node with the
    /// higher id waits a sixteenth of the sync timeout longer (a session's first
    /// reply wait), for the other's opening to settle the pair (see
    /// [`on_sync`](Self::on_sync)); if none does, it runs its own. Both sides wait
    /// for the other's subscription, so they are due at about the same time; a
    /// longer wait measured worse, as a session put off runs into more faults.
    fn yield_to(&self, peer: NodeId) -> Duration {
        if self.own > peer {
            self.timings.sync_timeout / 16
        } else {
            Duration::ZERO
        }
    }

    /// An opening from `peer` found both stores equal at `ours`: a session this
    /// node has waiting with it is dropped, and the pair counts as reconciled.
    /// Only once the peer listens: synced promises that this node's next put
    /// reaches the peer, which the opening alone does not show. Until then the
    /// waiting session keeps `ours`, and the subscription settles it if this
    /// store is still the same. Only live peers wait, so an opening under an
    /// invented id settles nothing.
    fn settle(&mut self, peer: NodeId, ours: Summary) {
        if self.listening.contains(&peer) {
            self.settled(peer);
        } else if let Some(due) = self.due.value_mut(&peer) {
            due.equal = Some(ours);
        }
    }

    fn settled(&mut self, peer: NodeId) {
        if self.due.remove(&peer).is_some() | self.retry.remove(&peer).is_some() {
            self.counters.sessions_settled += 1;
            self.synced.insert(peer);
        }
    }

    /// The transport reports `peer` subscribed to this node: a session waiting
    /// for that is due now, or settled if an opening from the peer found the
    /// stores equal and this one (`ours`) has not changed since. At the cap one
    /// id is forgotten (and counted) to make room, one that `is_peer` says is no
    /// live peer if any: anybody can subscribe to any id, and the live peers'
    /// ones must stay.
    pub(crate) fn subscribed(
        &mut self,
        now: Instant,
        peer: NodeId,
        is_peer: impl Fn(NodeId) -> bool,
        ours: Summary,
    ) {
        if self.listening.len() >= self.listening_cap && !self.listening.contains(&peer) {
            let forget = self.listening.iter().copied().find(|&id| !is_peer(id));
            if let Some(id) = forget.or_else(|| self.listening.first().copied()) {
                self.listening.remove(&id);
                self.counters.subscriptions_forgotten += 1;
            }
        }
        self.listening.insert(peer);
        if let Some(&(due, at)) = self.due.get(&peer) {
            let now_due = later(now, due.wait);
            if due.equal == Some(ours) {
                self.settled(peer);
            } else if at > now_due {
                self.due.set_deadline(&peer, now_due);
            }
            self.refresh_deadline();
        }
    }

    /// The transport reports `peer`'s subscription gone: a session due or to be
    /// retried with it waits for it again, a peer timeout at most.
    pub(crate) fn unsubscribed(&mut self, now: Instant, peer: NodeId) {
        self.listening.remove(&peer);
        let waiting = match self.due.remove(&peer) {
            Some((due, _)) => Some(due.wait),
            None => self.retry.remove(&peer).map(|_| Duration::ZERO),
        };
        if let Some(wait) = waiting {
            self.make_due_after(now, peer, wait);
            self.refresh_deadline();
        }
    }

    /// A dkv peer went down: its session and transfers end.
    pub(crate) fn peer_down(&mut self, now: Instant, peer: NodeId) {
        self.synced.remove(&peer);
        self.due.remove(&peer);
        self.retry.remove(&peer);
        self.rechecks.remove(&peer);
        self.failed.remove(&peer);
        self.after_pull.remove(&peer);
        self.sessions.remove(&peer);
        let gone: Vec<u64> = self
            .fetches
            .iter()
            .filter(|(_, (p, _))| *p == peer)
            .map(|(request, _)| *request)
            .collect();
        for request in gone {
            self.end_fetch(request);
        }
        if self.pulling.as_ref().is_some_and(|p| p.peer == peer) {
            self.end_pull(now);
        }
        self.refresh_deadline();
    }

    /// Forgets everything but the subscriptions (shutdown).
    pub(crate) fn reset(&mut self) {
        let counters = std::mem::take(&mut self.counters);
        let listening = std::mem::take(&mut self.listening);
        let rng = self.rng;
        *self = Reconciler::new(self.own, &self.timings, 0, self.listening_cap);
        self.rng = rng;
        self.counters = counters;
        self.listening = listening;
    }

    /// Whether `peer` completed a session, or settled one, since it came up.
    pub(crate) fn is_synced(&self, peer: NodeId) -> bool {
        self.synced.contains(&peer)
    }

    /// Whether no pull or fetch is under way.
    pub(crate) fn transfers_idle(&self) -> bool {
        self.pulling.is_none() && self.fetches.is_empty()
    }

    /// When [`on_timeout`](Self::on_timeout) must next run; O(1), kept by every
    /// change.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        debug_assert_eq!(self.deadline, self.compute_deadline(), "a stale deadline");
        self.deadline
    }

    /// Recomputes the deadline: every method that changes what it depends on ends
    /// with this.
    fn refresh_deadline(&mut self) {
        self.deadline = self.compute_deadline();
    }

    /// When [`on_timeout`](Self::on_timeout) must next run. It costs no more with
    /// a thousand peers than with one (pulls in flight are at most `PULL_WINDOW`).
    /// Waiting peers count only while a session slot is free: a session that ends
    /// frees one, and the node runs `on_timeout` after every `sync` it takes.
    fn compute_deadline(&self) -> Option<Instant> {
        let pulls = self.pulling.as_ref().and_then(|p| self.stalled_at(p));
        let waiting = (self.sessions.len() < MAX_SESSIONS)
            .then(|| self.due.first().into_iter().chain(self.retry.first()))
            .into_iter()
            .flatten();
        [
            self.sessions.first(),
            self.fetches.first(),
            self.rechecks.first(),
        ]
        .into_iter()
        .flatten()
        .chain(waiting)
        .chain(pulls)
        .chain(self.next_periodic)
        .min()
    }

    /// Expires what timed out, picks the periodic peer among the live dkv `peers`,
    /// and starts due sessions with live ones.
    pub(crate) fn on_timeout(
        &mut self,
        now: Instant,
        peers: &Peers,
        store: &Store,
    ) -> Vec<Envelope> {
        let send = self.expire_and_start(now, peers, store);
        self.refresh_deadline();
        send
    }

    fn expire_and_start(&mut self, now: Instant, peers: &Peers, store: &Store) -> Vec<Envelope> {
        for peer in self.sessions.due(now) {
            self.sessions.remove(&peer);
            self.counters.sessions_timed_out += 1;
            self.unanswered(now, peer);
        }
        for request in self.fetches.due(now) {
            self.end_fetch(request);
            self.counters.fetches_timed_out += 1;
        }
        // A pull that brought no page for a sync timeout ends: the peer is gone,
        // stalled or was never there (a forged id), and what it holds is found
        // again by a later session rather than asked for range by range into the
        // void. Pages that keep coming, however slowly, keep it going.
        if let Some(p) = &self.pulling {
            if self.stalled_at(p).is_some_and(|at| at <= now) {
                let peer = p.peer;
                self.counters.pulls_timed_out += p.in_flight.len() as u64;
                self.synced.remove(&peer);
                // Retried as a failed session is; an id no live peer holds (a
                // forged opening) is remembered nowhere.
                if peers.addr_of(peer).is_some() {
                    self.unanswered(now, peer);
                }
                self.end_pull(now);
            }
        }
        while let Some(peer) = self.rechecks.pop_due(now) {
            self.make_due(now, peer);
        }
        let mut send = Vec::new();
        if self.next_periodic.is_some_and(|at| at <= now) {
            self.next_periodic = Some(later(now, self.timings.sync_interval));
            let live = peers.dkv_count();
            if live > 0 {
                let n = (self.random() % live as u64) as usize;
                if let Some(pick) = peers.dkv_peers().nth(n) {
                    self.make_due(now, pick);
                }
            }
        }
        while self.sessions.len() < MAX_SESSIONS {
            let Some(peer) = self.due.pop_due(now).or_else(|| self.retry.pop_due(now)) else {
                break;
            };
            // One session per peer: a running one compares the stores as they are
            // when each step arrives, so it serves this turn too.
            if peers.addr_of(peer).is_some() && !self.sessions.contains_key(&peer) {
                send.push(self.start(now, peer, store));
            }
        }
        send
    }

    /// When `pull` ends unless a page comes first: a sync timeout after its last
    /// progress, while it waits for any.
    fn stalled_at(&self, pull: &Pulling) -> Option<Instant> {
        (!pull.in_flight.is_empty()).then(|| later(pull.progress, self.timings.sync_timeout))
    }

    /// `peer` holds an entry this node refused as too far ahead of its clock, which
    /// becomes acceptable `at`: reconcile with it then (the earliest such time kept).
    pub(crate) fn recheck_at(&mut self, peer: NodeId, at: Instant) {
        if self.rechecks.get(&peer).is_none_or(|(_, t)| *t > at) {
            self.rechecks.insert(peer, (), at);
            self.refresh_deadline();
        }
    }

    /// `peer` let a session or a pull time out: it is tried again once no
    /// peer waits in `due`, after a longer first-reply wait; or, if it no longer
    /// listens, once it subscribes again (a peer timeout at most).
    fn unanswered(&mut self, now: Instant, peer: NodeId) {
        *self.failed.entry(peer).or_default() += 1;
        if self.listening.contains(&peer) {
            if !self.due.contains_key(&peer) {
                self.retry.insert(peer, (), now);
            }
        } else {
            self.make_due(now, peer);
        }
    }

    /// How long a new session waits for its first reply: a sixteenth of the sync
    /// timeout, doubling with each session in a row that got none, up to the
    /// timeout. A request lost on the way is retried soon.
    fn first_reply_wait(&self, peer: NodeId) -> Duration {
        let failed = self.failed.get(&peer).copied().unwrap_or(0).min(4);
        let wait = (self.timings.sync_timeout / 16) * (1 << failed);
        wait.clamp(Timings::MIN_BEACON_INTERVAL, self.timings.sync_timeout)
    }

    fn start(&mut self, now: Instant, peer: NodeId, store: &Store) -> Envelope {
        let id = self.random();
        self.counters.sessions_started += 1;
        let deadline = later(now, self.first_reply_wait(peer));
        self.sessions
            .insert(peer, Session { id, outstanding: 1 }, deadline);
        let steps = vec![Step::Fingerprint {
            range: Range::ROOT,
            summary: store.summary(Range::ROOT),
        }];
        self.to(
            peer,
            Body::Sync {
                session: id,
                initiator: true,
                last: false,
                steps,
            },
        )
    }

    // ---- what peers send ----

    /// A `sync` from `from`. An opening whose fingerprint of the whole store
    /// equals this node's settles the pair.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn on_sync(
        &mut self,
        now: Instant,
        from: NodeId,
        session: u64,
        initiator: bool,
        last: bool,
        steps: &[Step],
        store: &Store,
        hlc: &Hlc,
        wall_ms: u64,
    ) -> Reaction {
        let mut reaction = Reaction::default();
        if !initiator {
            // A reply in a session of ours. (The two early returns change nothing
            // the deadline depends on.)
            let Some(s) = self.sessions.value_mut(&from).filter(|s| s.id == session) else {
                self.counters.stale_replies += 1;
                return reaction;
            };
            if last {
                s.outstanding = s.outstanding.saturating_sub(1);
            }
            self.sessions
                .set_deadline(&from, later(now, self.timings.sync_timeout));
        } else if steps.is_empty() {
            return reaction;
        } else {
            let ours = store.summary(Range::ROOT);
            if steps.iter().any(|s| is_root_at(s, ours)) {
                self.settle(from, ours);
            }
        }
        let mut replies = Vec::new();
        let mut fetch = Vec::new();
        for step in steps {
            self.counters.steps_compared += 1;
            self.compare(
                now,
                from,
                step,
                store,
                hlc,
                wall_ms,
                &mut replies,
                &mut fetch,
                &mut reaction,
            );
        }
        fetch.retain(|h| !self.fetching.contains(h));
        if !fetch.is_empty() {
            let request = self.request_id();
            self.counters.fetches += 1;
            self.fetching.extend(&fetch);
            let asked = (from, fetch.clone());
            self.fetches
                .insert(request, asked, later(now, self.timings.sync_timeout));
            reaction.send.push(self.to(
                from,
                Body::Fetch {
                    request,
                    key_hashes: fetch,
                },
            ));
        }
        let chunks = chunk_steps(replies);
        if initiator {
            // As responder: always reply, the last message marked, even if empty.
            let n = chunks.len().max(1);
            let mut chunks = chunks.into_iter();
            for i in 0..n {
                let steps = chunks.next().unwrap_or_default();
                reaction.send.push(self.to(
                    from,
                    Body::Sync {
                        session,
                        initiator: false,
                        last: i + 1 == n,
                        steps,
                    },
                ));
            }
        } else {
            for steps in chunks {
                if let Some(s) = self.sessions.value_mut(&from) {
                    s.outstanding += 1;
                }
                reaction.send.push(self.to(
                    from,
                    Body::Sync {
                        session,
                        initiator: true,
                        last: false,
                        steps,
                    },
                ));
            }
            if self
                .sessions
                .get(&from)
                .is_some_and(|(s, _)| s.outstanding == 0)
            {
                self.sessions.remove(&from);
                self.failed.remove(&from);
                self.synced.insert(from);
                self.counters.sessions_completed += 1;
            }
        }
        self.refresh_deadline();
        reaction
    }

    /// Compares one step with the local store.
    #[allow(clippy::too_many_arguments)]
    fn compare(
        &mut self,
        now: Instant,
        from: NodeId,
        step: &Step,
        store: &Store,
        hlc: &Hlc,
        wall_ms: u64,
        replies: &mut Vec<Step>,
        fetch: &mut Vec<u64>,
        reaction: &mut Reaction,
    ) {
        let range = step.range();
        let ours = store.summary(range);
        match step {
            Step::Fingerprint { summary, .. } => {
                let theirs = *summary;
                if ours == theirs {
                    return;
                }
                let unsplit = Step::Fingerprint {
                    range,
                    summary: ours,
                };
                if ours.count == 0 {
                    reaction
                        .send
                        .extend(self.want_pull(now, from, range, theirs));
                } else if theirs.count == 0 {
                    replies.push(unsplit);
                } else if ours.count <= LEAF && theirs.count <= LEAF {
                    replies.push(Step::Items {
                        range,
                        items: store.items(range),
                    });
                } else if ours.count <= LEAF {
                    reaction
                        .send
                        .extend(self.want_pull(now, from, range, theirs));
                    self.push(from, store.records_in(range), reaction);
                } else if theirs.count <= LEAF {
                    replies.push(unsplit);
                } else {
                    match range.children() {
                        Some(children) => replies.extend(children.map(|child| Step::Fingerprint {
                            range: child,
                            summary: store.summary(child),
                        })),
                        None => replies.push(Step::Items {
                            range,
                            items: store.items(range),
                        }),
                    }
                }
            }
            Step::Items { items, .. } => {
                let ours = store.items(range);
                let (push_hashes, fetch_hashes, ahead) =
                    diff_items(&ours, items, |ts| hlc.too_far_ahead(ts, wall_ms));
                if let Some(ts) = ahead {
                    keep_min(&mut reaction.ahead, ts);
                }
                fetch.extend(fetch_hashes);
                let records = push_hashes
                    .into_iter()
                    .flat_map(|h| store.records_at(h))
                    .collect();
                self.push(from, records, reaction);
            }
        }
    }

    fn push(&mut self, to: NodeId, records: Vec<Record>, reaction: &mut Reaction) {
        if records.is_empty() {
            return;
        }
        self.counters.pushes_unsolicited += 1;
        for records in chunk_records(records) {
            reaction.send.push(self.to(
                to,
                Body::Push {
                    request: 0,
                    records,
                    more: None,
                },
            ));
        }
    }

    /// This node lacks `range`, which `from` holds (`theirs`): pull it, unless a
    /// pull from another peer is under way (then reconcile with `from` after it).
    fn want_pull(
        &mut self,
        now: Instant,
        from: NodeId,
        range: Range,
        theirs: Summary,
    ) -> Vec<Envelope> {
        match &self.pulling {
            Some(p) if p.peer != from => {
                self.after_pull.insert(from);
                return Vec::new();
            }
            Some(_) => {}
            None => {
                self.pulling = Some(Pulling {
                    peer: from,
                    queue: VecDeque::new(),
                    in_flight: BTreeMap::new(),
                    progress: now,
                    ranges: BTreeSet::new(),
                });
            }
        }
        self.counters.ranges_pulled += 1;
        // Split big ranges so pages of several sub-ranges flow at once. The count is
        // the peer's claim: the split is bounded whatever it says.
        let deepest = range.level().saturating_add(2).min(Range::MAX_LEVEL);
        let mut level = range.level();
        let mut expected = theirs.count;
        while expected > PULL_SPLIT && level < deepest {
            level += 1;
            expected /= 16;
        }
        let mut parts = vec![range];
        while parts.first().is_some_and(|r| r.level() < level) {
            parts = parts
                .into_iter()
                .flat_map(|r| r.children().into_iter().flatten())
                .collect();
        }
        let mut full = false;
        if let Some(p) = &mut self.pulling {
            for part in parts {
                if p.covers(part) {
                    continue;
                }
                if p.ranges.len() >= PULL_RANGES {
                    full = true;
                    break;
                }
                p.ranges.insert(part);
                p.queue.push_back((part, None));
            }
        }
        if full {
            self.after_pull.insert(from);
        }
        self.fill_window(now)
    }

    /// Sends queued pull requests while the window has room; ends a finished pull.
    fn fill_window(&mut self, now: Instant) -> Vec<Envelope> {
        let mut send = Vec::new();
        loop {
            let Some(p) = &mut self.pulling else {
                return send;
            };
            if p.in_flight.len() >= PULL_WINDOW {
                return send;
            }
            let Some((range, after)) = p.queue.pop_front() else {
                break;
            };
            let peer = p.peer;
            let request = self.next_request;
            self.next_request += 1;
            if let Some(p) = &mut self.pulling {
                p.in_flight.insert(request, range);
            }
            send.push(self.to(
                peer,
                Body::Pull {
                    request,
                    range,
                    after,
                },
            ));
        }
        if self
            .pulling
            .as_ref()
            .is_some_and(|p| p.in_flight.is_empty() && p.queue.is_empty())
        {
            self.end_pull(now);
        }
        send
    }

    /// The pull ended (finished, stalled, or its peer went down): peers that found
    /// more to pull meanwhile are reconciled with next.
    fn end_pull(&mut self, now: Instant) {
        self.pulling = None;
        for peer in std::mem::take(&mut self.after_pull) {
            self.make_due(now, peer);
        }
    }

    /// A `pull` from `from`: reply with one page.
    pub(crate) fn on_pull(
        &self,
        from: NodeId,
        request: u64,
        range: Range,
        after: Option<u64>,
        store: &Store,
    ) -> Envelope {
        let (records, more) = store.page(range, after, PAGE_BYTES);
        self.to(
            from,
            Body::Push {
                request,
                records,
                more,
            },
        )
    }

    /// A `fetch` from `from`: reply with the entries of the hashes asked for.
    pub(crate) fn on_fetch(
        &self,
        from: NodeId,
        request: u64,
        hashes: &[u64],
        store: &Store,
    ) -> Vec<Envelope> {
        let records: Vec<Record> = hashes.iter().flat_map(|h| store.records_at(*h)).collect();
        chunk_records(records)
            .into_iter()
            .map(|records| {
                self.to(
                    from,
                    Body::Push {
                        request,
                        records,
                        more: None,
                    },
                )
            })
            .collect()
    }

    /// A `push` from `from` answering `request`: continues a paged pull.
    pub(crate) fn on_push(
        &mut self,
        now: Instant,
        from: NodeId,
        request: u64,
        more: Option<u64>,
    ) -> Vec<Envelope> {
        let send = self.continue_pull(now, from, request, more);
        self.refresh_deadline();
        send
    }

    /// The fetch `request` was answered, timed out or its peer went.
    fn end_fetch(&mut self, request: u64) {
        if let Some(((_, hashes), _)) = self.fetches.remove(&request) {
            for h in hashes {
                self.fetching.remove(&h);
            }
        }
    }

    fn continue_pull(
        &mut self,
        now: Instant,
        from: NodeId,
        request: u64,
        more: Option<u64>,
    ) -> Vec<Envelope> {
        if request == 0 {
            return Vec::new();
        }
        if self
            .fetches
            .get(&request)
            .is_some_and(|((p, _), _)| *p == from)
        {
            self.end_fetch(request);
            return Vec::new();
        }
        let Some(p) = self.pulling.as_mut().filter(|p| p.peer == from) else {
            return Vec::new();
        };
        let Some(range) = p.in_flight.remove(&request) else {
            return Vec::new();
        };
        p.progress = now;
        self.counters.pull_pages += 1;
        match more {
            Some(after) => p.queue.push_front((range, Some(after))),
            None => {
                p.ranges.remove(&range);
            }
        }
        self.fill_window(now)
    }
}

/// Whether `step` is a fingerprint of the whole store equal to `ours`.
fn is_root_at(step: &Step, ours: Summary) -> bool {
    matches!(step, Step::Fingerprint { range, summary }
        if *range == Range::ROOT && *summary == ours)
}

/// Which of our key hashes to push and which of theirs to fetch, comparing two
/// listings of one range. Items whose version's timestamp `refuse`s are not
/// fetched; the earliest timestamp of those left unfetched so comes third.
fn diff_items(
    ours: &[Item],
    theirs: &[Item],
    refuse: impl Fn(Timestamp) -> bool,
) -> (Vec<u64>, Vec<u64>, Option<Timestamp>) {
    let by_hash = |items: &[Item]| {
        let mut map: BTreeMap<u64, Vec<(crate::clock::Version, u64)>> = BTreeMap::new();
        for i in items {
            map.entry(i.key_hash)
                .or_default()
                .push((i.version, i.digest));
        }
        map
    };
    let (ours, theirs) = (by_hash(ours), by_hash(theirs));
    let mut push = Vec::new();
    let mut fetch = Vec::new();
    let mut refused_earliest = None;
    let hashes: BTreeSet<u64> = ours.keys().chain(theirs.keys()).copied().collect();
    for h in hashes {
        let (a, b) = (ours.get(&h), theirs.get(&h));
        if a == b {
            continue;
        }
        let newest = |v: Option<&Vec<(crate::clock::Version, u64)>>| {
            v.and_then(|v| v.iter().map(|(ver, _)| *ver).max())
        };
        let (mine, yours) = (newest(a), newest(b));
        if mine >= yours {
            push.push(h);
        }
        if yours < mine {
            continue;
        }
        let wanted = || b.into_iter().flatten().map(|(v, _)| v.ts);
        if wanted().all(&refuse) {
            if let Some(ts) = wanted().min() {
                keep_min(&mut refused_earliest, ts);
            }
        } else {
            fetch.push(h);
        }
    }
    (push, fetch, refused_earliest)
}

/// Splits steps into messages of at most `SYNC_BYTES`.
fn chunk_steps(steps: Vec<Step>) -> Vec<Vec<Step>> {
    let size = |s: &Step| match s {
        Step::Fingerprint { .. } => 26,
        Step::Items { items, .. } => 14 + 32 * items.len(),
    };
    chunk(steps, SYNC_BYTES, size)
}

/// Splits records into pushes of at most `PAGE_BYTES`.
fn chunk_records(records: Vec<Record>) -> Vec<Vec<Record>> {
    chunk(records, PAGE_BYTES, |r| {
        crate::wire::v2::record_len(&r.key, &r.entry)
    })
}

fn chunk<T>(items: Vec<T>, max: usize, size: impl Fn(&T) -> usize) -> Vec<Vec<T>> {
    let mut out: Vec<Vec<T>> = Vec::new();
    let mut bytes = 0;
    for item in items {
        let n = size(&item);
        match out.last_mut() {
            Some(last) if bytes + n <= max => last.push(item),
            _ => {
                out.push(vec![item]);
                bytes = 0;
            }
        }
        bytes += n;
    }
    out
}
