//! The node: one sans-IO state machine that owns discovery, the store and its
//! versions, gets, bootstrap and reconciliation, driven by timestamped inputs.

use crate::beacon::{
    encode_beacon, encode_hello, encode_plain_hello, hello_sender, hello_v2_sealed, is_hello_v2,
    parse_datagram, parse_plain_hello, Datagram,
};
use crate::bootstrap::{Bootstrap, BootstrapPhase, BootstrapProgress};
use crate::clock::{Hlc, Timestamp, Version, WallClock};
use crate::config::{later, Config};
use crate::gets::{GetId, PendingGets};
use crate::keep_min;
use crate::limits::{NewKeys, PeerBudgets, RateTable, TokenBucket, WriteError};
use crate::peers::Peers;
use crate::range::{key_hash, Range, Summary};
use crate::reconcile::{Reconciler, PAGE_BYTES};
use crate::seal::{
    parse_frame, parse_hello, Class, Cluster, HelloAddr, KeyId, ReplayGuard, Sealer, FRAME_MARKER,
};
use crate::stats::Stats;
use crate::store::{Entry, Record, Slot, Store};
use crate::wire::v2::{self, record_len, Body, Envelope};
use crate::wire::{subscriptions, DecodeLimits, Message, NodeId};
use bytes::Bytes;
use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// Records of a peer's batch whose store lines are read together ahead of their
/// merges ([`Store::warm`]): enough misses to overlap, few enough to stay cached.
const WARM_AHEAD: usize = 8;

/// The completion of a get.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GetDone {
    /// The id [`Node::get`] returned.
    pub id: GetId,
    /// The key asked for.
    pub key: String,
    /// The value held locally when the get completed; `None` if none is, or the key
    /// is deleted.
    pub value: Option<Bytes>,
    /// The version of the entry held then (a delete's too), if any.
    pub version: Option<Version>,
}

/// An entry this node stored: its own write, or one that won the merge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Applied {
    /// The key.
    pub key: String,
    /// The entry now held (a tombstone for a delete).
    pub entry: Entry,
    /// Whether it is this node's own write.
    pub local: bool,
}

/// A dkv/2 message sealed by a keyed node, ready to publish.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sealed {
    /// The frames to publish, in order: the topic (`dkv2.all` or `dkv2.to <id>`,
    /// unchanged, so subscriptions work as for plain messages) and the sealed body.
    /// A receiver passes them to [`Node::handle_message`].
    pub frames: [Bytes; 2],
    /// The message sealed, for observers (a simulator's checks, logs). Never send
    /// it: it is the plaintext.
    pub msg: Message,
}

/// Something the transport must do, drained with [`Node::poll_output`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Publish this message on the PUB socket ([`Message::encode`] gives the frames).
    /// Only an unkeyed node outputs it.
    Publish(Message),
    /// Publish these sealed frames on the PUB socket. Only a keyed node outputs it,
    /// in place of every [`Output::Publish`]; each is sealed when it is polled, so
    /// nonce counters follow the order of sending.
    PublishSealed(Sealed),
    /// Broadcast this datagram (a beacon or a hello) on the UDP beacon port.
    Beacon(Bytes),
    /// A peer came up: connect the SUB socket to `tcp://<addr>`.
    Connect(SocketAddr),
    /// A peer went down: disconnect the SUB socket from `tcp://<addr>`.
    Disconnect(SocketAddr),
    /// A get completed.
    GetDone(GetDone),
    /// The store changed, in the order changes were applied. For transports that
    /// persist or watch; others may ignore it, or turn it off
    /// ([`Node::report_applied`]).
    Applied(Applied),
    /// The tombstone of this key was forgotten after the tombstone horizon.
    Collected(String),
}

/// Where an entry being applied comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Origin {
    /// This node's own write.
    Local,
    /// A prototype's write, versioned by this node's clock.
    Stamped,
    /// Another node's entry, with that node's version.
    Remote,
}

/// Prototype `set` copies of dkv/2 writes that are expected to arrive: a dkv node
/// publishes them after the `put` with the same records, on the same socket, so a
/// receiver learns of them from the `put` first. Bounded: the oldest are forgotten.
/// Every operation is logarithmic.
#[derive(Debug, Default)]
struct Echoes {
    /// Expectations by (key, value hash): their sequence numbers, oldest first.
    expected: BTreeMap<(String, u64), VecDeque<u64>>,
    /// Every expectation still remembered, oldest first (consumed ones are skipped
    /// when they reach the front).
    order: VecDeque<(u64, (String, u64))>,
    next: u64,
}

impl Echoes {
    const CAP: usize = 65_536;

    fn hash(value: &[u8]) -> u64 {
        xxhash_rust::xxh3::xxh3_64(value)
    }

    /// What [`Self::expect`] takes for the prototype copy of `r`.
    fn expectation(r: &Record) -> (String, u64) {
        let value = r.entry.value.as_deref().unwrap_or_default();
        (r.key.clone(), Self::hash(value))
    }

    /// Expects the copy of `key` with a value of hash `value_hash` ([`Self::hash`]).
    fn expect(&mut self, key: String, value_hash: u64) {
        let k = (key, value_hash);
        let seq = self.next;
        self.next += 1;
        self.expected.entry(k.clone()).or_default().push_back(seq);
        self.order.push_back((seq, k));
        while self.order.len() > Self::CAP {
            if let Some((seq, k)) = self.order.pop_front() {
                self.drop_if_first(&k, seq);
            }
        }
    }

    /// Whether `key = value` was expected; if so it no longer is.
    fn consume(&mut self, key: &str, value: &[u8]) -> bool {
        if self.expected.is_empty() {
            return false;
        }
        let k = (key.to_owned(), Self::hash(value));
        let Some(seqs) = self.expected.get_mut(&k) else {
            return false;
        };
        seqs.pop_front();
        if seqs.is_empty() {
            self.expected.remove(&k);
        }
        true
    }

    /// Forgets the expectation `seq` of `k` if it is still the oldest one of `k`.
    fn drop_if_first(&mut self, k: &(String, u64), seq: u64) {
        if let Some(seqs) = self.expected.get_mut(k) {
            if seqs.front() == Some(&seq) {
                seqs.pop_front();
            }
            if seqs.is_empty() {
                self.expected.remove(k);
            }
        }
    }
}

/// Tracks bootstrap as a whole: the prototype part ([`Bootstrap`]) and catching up
/// with the dkv peers found during the delay.
#[derive(Debug, Default)]
struct CatchUp {
    /// The dkv peers live when the delay ended, less those found reconciled with
    /// or gone; `None` before.
    peers: Option<BTreeSet<NodeId>>,
    done: bool,
}

/// One dkv node: the whole protocol as a pure state machine.
///
/// The node does no I/O, reads no clock and draws no randomness: its id, wall clock
/// and seed come in the [`Config`], and every input carries `now`, which must never
/// go backwards.
///
/// # Contract
/// 1. Feed inputs: [`handle_beacon`](Self::handle_beacon),
///    [`handle_message`](Self::handle_message), [`handle_net_up`](Self::handle_net_up),
///    [`handle_net_down`](Self::handle_net_down),
///    [`handle_wall_clock`](Self::handle_wall_clock), [`set`](Self::set),
///    [`delete`](Self::delete), [`get`](Self::get), [`shutdown`](Self::shutdown), or
///    [`handle_timeout`](Self::handle_timeout) once the deadline is reached.
/// 2. Drain [`poll_output`](Self::poll_output) until it returns `None`, carrying out
///    each output in order. Several inputs may be fed before draining: outputs
///    queue up in order, and writes made back to back travel in one `put`.
/// 3. Ask [`poll_timeout`](Self::poll_timeout) for the next deadline and call
///    `handle_timeout` when it passes. Any input may move the deadline, so ask again
///    after every input.
///
/// The SUB socket must carry the prefixes [`subscriptions`](Self::subscriptions) lists,
/// in that order. Malformed input is dropped and counted in [`stats`](Self::stats); it
/// never panics and leaves the rest of the state untouched.
#[derive(Debug)]
pub struct Node {
    config: Config,
    beacon: Bytes,
    hello: Bytes,
    local_ip: Option<IpAddr>,
    /// The last address the node had, kept across net down.
    last_ip: Option<IpAddr>,
    next_beacon: Option<Instant>,
    /// When a peer that never said hello (a prototype) last beaconed: an open node
    /// sends the prototype's beacon only for a peer timeout after that.
    prototype_heard: Option<Instant>,
    peers: Peers,
    store: Store,
    hlc: Hlc,
    wall: WallClock,
    gets: PendingGets,
    next_get: u64,
    bootstrap: Bootstrap,
    catch_up: CatchUp,
    sync: Reconciler,
    echoes: Echoes,
    next_gc: Option<Instant>,
    out: VecDeque<Output>,
    /// Outputs drained so far: the outbox's position in the sequence of all outputs.
    popped: u64,
    /// The `put` of local writes still in the outbox, to append the next write to.
    open_put: Option<OpenPut>,
    /// Admits new peers at `Limits::new_peers`.
    new_peers: TokenBucket,
    /// Prototype answers sent, per asker and in all.
    answer_rates: RateTable,
    /// Prototype list answers sent, per asker and in all.
    list_rates: RateTable,
    /// dkv/2 `ask`s answered, per asker and in all.
    request_rates: RateTable,
    /// New keys and bytes each dkv peer may still bring.
    budgets: PeerBudgets,
    /// Seals what a keyed node sends (nonces from `Config::id` and `Config::seed`).
    sealer: Sealer,
    /// Refuses sealed input that is stale, from before this run, or replayed.
    guard: ReplayGuard,
    /// The latest `now` any input carried: sealing, which happens in
    /// `poll_output`, stamps with the wall clock at this instant.
    last_now: Option<Instant>,
    /// What [`poll_timeout`](Self::poll_timeout) returns, once known: every input
    /// forgets it; a beacon that only keeps a peer alive keeps it (the transport
    /// asks after every input, and most inputs are such beacons).
    timeout: Option<Option<Instant>>,
    /// Whether changes are reported as [`Output::Applied`].
    report_applied: bool,
    /// The earliest version refused as too far ahead in the peer batch being
    /// applied (taken when the batch ends).
    refused_ahead: Option<Timestamp>,
    stats: Stats,
}

/// Where the `put` that collects local writes sits in the outbox.
#[derive(Clone, Copy, Debug)]
struct OpenPut {
    /// Its position in the sequence of all outputs.
    at: u64,
    echo: bool,
    /// Bytes of records it holds.
    bytes: usize,
}

impl Node {
    /// A node with no address yet: it beacons and bootstraps after
    /// [`handle_net_up`](Self::handle_net_up).
    pub fn new(mut config: Config) -> Node {
        config.timings = config.timings.floored();
        let t = &config.timings;
        let offset_ms = u64::try_from(t.max_clock_offset.as_millis()).unwrap_or(u64::MAX);
        let floor_ms = config.wall.unix_ms.saturating_sub(offset_ms);
        Node {
            sealer: Sealer::new(config.id, config.seed),
            guard: ReplayGuard::new(config.replay, floor_ms),
            last_now: None,
            timeout: None,
            report_applied: true,
            refused_ahead: None,
            beacon: Bytes::from(encode_beacon(config.pub_port)),
            hello: Bytes::from(encode_hello(config.pub_port, config.id)),
            local_ip: None,
            last_ip: None,
            next_beacon: None,
            prototype_heard: None,
            peers: Peers::default(),
            store: Store::new(),
            hlc: Hlc::new(t.max_clock_offset),
            wall: config.wall,
            gets: PendingGets::default(),
            next_get: 0,
            bootstrap: Bootstrap::new(config.id, t, &config.limits),
            catch_up: CatchUp::default(),
            sync: Reconciler::new(config.id, t, config.seed, config.limits.max_peers * 2),
            echoes: Echoes::default(),
            next_gc: None,
            out: VecDeque::new(),
            popped: 0,
            open_put: None,
            new_peers: TokenBucket::default(),
            answer_rates: RateTable::default(),
            list_rates: RateTable::default(),
            request_rates: RateTable::default(),
            budgets: PeerBudgets::default(),
            stats: Stats::default(),
            config,
        }
    }

    /// Whether store changes are reported as [`Output::Applied`] from now on (on
    /// at creation). A transport that neither persists nor watches turns them
    /// off, which saves a copy of every key and value written or received.
    pub fn report_applied(&mut self, on: bool) {
        self.report_applied = on;
    }

    // ---- getters ----

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.config.id
    }

    /// The configuration the node was created with (intervals raised to their
    /// minimum).
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The SUB socket's prefix subscriptions, in the order to subscribe them: for a
    /// named or keyed cluster only `dkv2.all` and `dkv2.to <own id>`.
    pub fn subscriptions(&self) -> Vec<Bytes> {
        let mut subs = subscriptions(self.config.id);
        if self.config.isolated() {
            subs.truncate(2);
        }
        subs
    }

    /// The cluster the node belongs to ([`Config::cluster`]).
    pub fn cluster(&self) -> &Cluster {
        &self.config.cluster
    }

    /// Whether the node is keyed: it seals everything it sends and refuses every
    /// unauthenticated input (prototype and unkeyed nodes are ignored), counting it.
    pub fn keyed(&self) -> bool {
        self.config.keys.is_some()
    }

    /// Whether the node is dkv-only (a named cluster, or keyed): it neither peers
    /// with nor answers prototype nodes.
    pub fn isolated(&self) -> bool {
        self.config.isolated()
    }

    /// The id of the key a keyed node seals with; `None` when unkeyed.
    pub fn send_key(&self) -> Option<KeyId> {
        self.config.keys.as_ref().map(|k| k.send_id())
    }

    /// Whether `datagram` is one this node sends, heard back: its beacon or hello
    /// (open cluster, compared byte for byte), or a version-2 hello (plain or
    /// sealed) whose header names this node's id. Reads the header only: anyone can
    /// forge one, so a transport may use it as a hint (its address changed) but
    /// should rate-limit what it does on it.
    pub fn is_own_datagram(&self, datagram: &[u8]) -> bool {
        if !self.config.isolated() {
            return datagram == &self.beacon[..] || datagram == &self.hello[..];
        }
        is_hello_v2(datagram) && hello_sender(datagram) == Some(self.config.id)
    }

    /// The local address while the net is up.
    pub fn local_ip(&self) -> Option<IpAddr> {
        self.local_ip
    }

    /// Live peers' PUB endpoints, in address order.
    pub fn peers(&self) -> impl Iterator<Item = SocketAddr> + '_ {
        self.peers.addrs()
    }

    /// Live peers a write made now reaches: prototype peers, and dkv peers this node
    /// completed a reconciliation with since they came up (which proves their SUB
    /// socket receives this node's messages), or whose opening found the stores
    /// equal once the transport reported them subscribed. In address order.
    pub fn ready_peers(&self) -> impl Iterator<Item = SocketAddr> + '_ {
        self.peers.addrs().filter(|a| {
            self.peers
                .get(a)
                .is_some_and(|p| p.id.is_none_or(|id| self.sync.is_synced(id)))
        })
    }

    /// The id of the live dkv peer at `addr`; `None` for a prototype peer.
    pub fn peer_id(&self, addr: SocketAddr) -> Option<NodeId> {
        self.peers.get(&addr).and_then(|p| p.id)
    }

    /// The value held locally for `key`; `None` if none is or it is deleted.
    pub fn value(&self, key: &str) -> Option<&[u8]> {
        self.store.get(key).and_then(Slot::value)
    }

    /// The entry held for `key`, tombstones included, its value copied out.
    pub fn entry(&self, key: &str) -> Option<Entry> {
        self.store.get(key).map(Slot::entry)
    }

    /// Every entry held, tombstones included, in key-hash order (stable, not
    /// alphabetical), values copied out one by one.
    pub fn entries(&self) -> impl Iterator<Item = (&str, Entry)> + '_ {
        self.store.iter().map(|s| (s.key(), s.entry()))
    }

    /// Every key with a value, in key-hash order.
    pub fn keys(&self) -> impl Iterator<Item = &str> + '_ {
        self.store
            .iter()
            .filter(|s| !s.is_tombstone())
            .map(Slot::key)
    }

    /// Keys with a value.
    pub fn len(&self) -> usize {
        self.store.live_len()
    }

    /// Whether no key has a value.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The whole store's fingerprint and entry count (tombstones included): two
    /// nodes with equal summaries hold the same entries.
    pub fn summary(&self) -> Summary {
        self.store.summary(Range::ROOT)
    }

    /// Tombstones held (deletes not yet forgotten).
    pub fn tombstones(&self) -> usize {
        self.store.tombstones()
    }

    /// The clock's latest reading: every version this node issues is above it.
    pub fn clock(&self) -> Timestamp {
        self.hlc.last()
    }

    /// Gets still waiting for a value or their timeout.
    pub fn pending_gets(&self) -> usize {
        self.gets.len()
    }

    /// Whether the node wants prototype `list_answer`s now: from net up until the
    /// prototype part of its bootstrap ends. Outside that window every list answer
    /// is ignored anyway, so a transport may drop the `list_answer <own>`
    /// subscription (one per-frame-bounded message of millions of frames could
    /// otherwise be pushed at any time). Re-check after every drain.
    pub fn wants_list_answers(&self) -> bool {
        !self.config.isolated() && self.local_ip.is_some() && self.bootstrap.running()
    }

    /// Where the current bootstrap stands.
    pub fn bootstrap(&self) -> BootstrapProgress {
        let mut p = self.bootstrap.progress();
        p.phase = match (self.catch_up.done, p.phase) {
            (true, _) => BootstrapPhase::Done,
            (false, BootstrapPhase::Done) => BootstrapPhase::Fetching,
            (false, phase) => phase,
        };
        p
    }

    /// The node's counters.
    pub fn stats(&self) -> Stats {
        let mut s = self.stats.clone();
        let b = &self.bootstrap.counters;
        s.bootstrap_keys_listed = b.keys_listed;
        s.bootstrap_keys_requested = b.keys_requested;
        s.bootstrap_keys_received = b.keys_received;
        s.bootstrap_keys_unanswered = b.keys_unanswered;
        s.bootstrap_keys_over_limit = b.keys_over_limit;
        s.bootstrap_abandoned = b.abandoned;
        let c = &self.sync.counters;
        s.sync_sessions_started = c.sessions_started;
        s.sync_sessions_completed = c.sessions_completed;
        s.sync_sessions_timed_out = c.sessions_timed_out;
        s.sync_steps_compared = c.steps_compared;
        s.sync_ranges_pulled = c.ranges_pulled;
        s.sync_pull_pages = c.pull_pages;
        s.sync_pulls_timed_out = c.pulls_timed_out;
        s.sync_fetches = c.fetches;
        s.sync_fetches_timed_out = c.fetches_timed_out;
        s.sync_pushes = c.pushes_unsolicited;
        s.sync_stale_replies = c.stale_replies;
        s.sync_subscriptions_forgotten = c.subscriptions_forgotten;
        s.sync_sessions_settled = c.sessions_settled;
        s
    }

    // ---- inputs ----

    /// The transport found a local address: at start, after losing it, or a new one.
    /// The node starts beaconing at once and (re)starts bootstrap. Repeating the
    /// current address changes nothing. On an address other than the last one, every
    /// live peer is re-dialed (`Disconnect` then `Connect`): connections made from a
    /// vanished address are dead but may never report it. Every dkv peer is then
    /// reconciled with, since messages may have been lost meanwhile.
    pub fn handle_net_up(&mut self, now: Instant, local_ip: IpAddr) {
        self.touch(now);
        if self.local_ip == Some(local_ip) {
            return;
        }
        self.local_ip = Some(local_ip);
        let own = SocketAddr::new(local_ip, self.config.pub_port);
        if self.peers.contains(&own) {
            // That endpoint is ours now: whoever held it before is gone.
            self.peer_down(now, own);
        }
        if self
            .last_ip
            .replace(local_ip)
            .is_some_and(|last| last != local_ip)
        {
            let addrs: Vec<SocketAddr> = self.peers.addrs().collect();
            for addr in addrs {
                self.out.push_back(Output::Disconnect(addr));
                self.out.push_back(Output::Connect(addr));
            }
        }
        let dkv: Vec<NodeId> = self.peers.dkv_peers().collect();
        for id in dkv {
            self.sync.peer_back(now, id);
        }
        self.next_beacon = Some(now);
        self.stats.net_up += 1;
        self.stats.bootstraps_started += 1;
        self.bootstrap.start(now);
        self.catch_up = CatchUp::default();
        self.handle_timeout(now);
    }

    /// The transport lost the local address (sending a beacon failed). Beacons stop,
    /// an unfinished bootstrap is abandoned, and peers time out as they fall silent.
    pub fn handle_net_down(&mut self, _now: Instant) {
        self.touch(_now);
        if self.local_ip.take().is_none() {
            return;
        }
        self.next_beacon = None;
        self.stats.net_down += 1;
        self.bootstrap.abandon();
        self.catch_up = CatchUp::default();
    }

    /// The wall clock read `unix_ms` milliseconds since the Unix epoch at `now`.
    /// Versions are stamped with wall time from the latest such reading; the clock
    /// that stamps them never runs backward, whatever the readings do.
    pub fn handle_wall_clock(&mut self, now: Instant, unix_ms: u64) {
        self.touch(now);
        self.wall = WallClock { at: now, unix_ms };
    }

    /// The transport saw dkv node `id` subscribe to this node's directed topic
    /// (`dkv2.to <id>`): what this node publishes to it now reaches it. A session
    /// with a peer starts only once the peer has subscribed, or a peer timeout
    /// after it was due if the transport never says (module `reconcile`); one
    /// whose peer's opening found the stores equal is settled now, if this
    /// node's store has not changed since.
    /// Repeating it changes nothing. The node remembers at most twice
    /// [`Limits::max_peers`](crate::Limits::max_peers) subscriptions; past that it
    /// forgets one of an id no live peer has (counted in
    /// `sync_subscriptions_forgotten`), so ids a host subscribes to at random
    /// never crowd out the peers'.
    pub fn handle_subscribed(&mut self, now: Instant, id: NodeId) {
        self.touch(now);
        let peers = &self.peers;
        let ours = self.store.summary(Range::ROOT);
        self.sync
            .subscribed(now, id, |id| peers.addr_of(id).is_some(), ours);
        self.sync_step(now);
    }

    /// The transport saw `id`'s subscription to this node go (its last
    /// connection closed): a session due with it waits for it again.
    pub fn handle_unsubscribed(&mut self, now: Instant, id: NodeId) {
        self.touch(now);
        self.sync.unsubscribed(now, id);
    }

    /// A UDP datagram arrived on the beacon port from `src`. A beacon or hello from
    /// a new `(ip, port)` pair brings the peer up; later ones keep it alive; a hello
    /// marks the peer as a dkv node, to reconcile with. Own datagrams, those heard
    /// while the net is down, and malformed ones are counted and ignored.
    ///
    /// A named or keyed node takes only version-2 hellos of its own cluster (sealed
    /// with one of its keys, when keyed, fresh, never seen before, and announcing
    /// the datagram's source address) and counts every other datagram in one drop
    /// counter before any other work. An open node counts version-2 hellos as
    /// another cluster's.
    pub fn handle_beacon(&mut self, now: Instant, src: IpAddr, datagram: &[u8]) {
        let timeout = self.timeout;
        self.touch(now);
        let (port, id) = if is_hello_v2(datagram) {
            if !self.config.isolated() {
                self.stats.drop_hello_foreign_cluster += 1;
                return;
            }
            match self.hello_v2(now, src, datagram) {
                Some(heard) => heard,
                None => return,
            }
        } else {
            let parsed = match parse_datagram(datagram) {
                Ok(d) => d,
                Err(err) => return self.stats.count_beacon_error(err),
            };
            if self.config.isolated() {
                // A prototype beacon or a version-1 hello: the open cluster's.
                if self.keyed() {
                    self.stats.drop_hello_unauthenticated += 1;
                } else {
                    self.stats.drop_hello_foreign_cluster += 1;
                }
                return;
            }
            let Some(local_ip) = self.local_ip else {
                self.stats.drop_beacon_net_down += 1;
                return;
            };
            let port = parsed.port();
            let id = match parsed {
                Datagram::Beacon(_) => None,
                Datagram::Hello { id, .. } => Some(id),
            };
            if (src == local_ip && port == self.config.pub_port) || id == Some(self.config.id) {
                self.stats.beacons_own += 1;
                return;
            }
            (port, id)
        };
        match id {
            None => self.stats.beacons_in += 1,
            Some(_) => self.stats.hellos_in += 1,
        }
        let addr = SocketAddr::new(src, port);
        let gap = self.config.timings.beacon_interval.saturating_mul(5) / 2;
        let heard = match self.peers.heard(now, addr, id, gap) {
            Some(heard) => heard,
            None if self.admit_peer(now, src) => self.peers.add(now, addr, id),
            None => return,
        };
        if heard.new {
            self.stats.peers_up += 1;
            self.out.push_back(Output::Connect(addr));
        }
        if !heard.named {
            // A prototype learns of this node only from its beacon: send one now
            // if none went out for it yet, then every interval while it is heard.
            if !self.beaconing_for_prototypes(now) {
                self.send_beacon();
            }
            self.prototype_heard = Some(now);
        }
        if let Some(old) = heard.replaced {
            self.sync.peer_down(now, old);
        }
        if let Some(id) = id {
            if heard.identified {
                self.sync.peer_up(now, id);
            } else if heard.after_gap {
                self.sync.peer_back(now, id);
            }
        }
        let nothing_due = timeout.is_some_and(|t| t.is_none_or(|at| at > now));
        if heard.keeps_alive() && nothing_due {
            // No deadline moved and none has passed: the sync step has nothing to do.
            self.timeout = timeout;
            return;
        }
        self.sync_step(now);
        self.timeout = Some(self.next_timeout());
    }

    /// A multipart message arrived on the SUB socket. It is decoded strictly; a
    /// malformed one, one over the size limits of [`Config::limits`] (refused before
    /// anything is copied), or one addressed to another node, is counted and ignored.
    ///
    /// A keyed node takes only sealed dkv/2 frames, checked in this order, each
    /// refusal counted before any further work: topic (`dkv2.all` or `dkv2.to <own
    /// id>`), frame count and size, the seal marker (`drop_unauthenticated`),
    /// cluster tag, key id, sender not itself, freshness and replay (read-only),
    /// then the one allocation, opening the frame (`drop_forged`), then recording it
    /// as seen, decoding, and the body's sender equal to the sealed one
    /// (`drop_seal_mismatch`). A named node counts prototype messages in
    /// `drop_foreign_cluster`.
    pub fn handle_message<F: AsRef<[u8]>>(&mut self, now: Instant, frames: &[F]) {
        self.touch(now);
        if self.keyed() {
            return self.handle_sealed(now, frames);
        }
        match Message::decode_limited(frames, DecodeLimits::from(&self.config.limits)) {
            Ok(msg) => self.accept(now, msg),
            Err(err) => self.stats.count_decode_error(err),
        }
    }

    /// Like [`handle_message`](Self::handle_message), for a message already decoded.
    /// A keyed node refuses it (`drop_unauthenticated`): it takes only what opens
    /// under its keys, so a keyed node's input must come as frames through
    /// `handle_message`.
    pub fn handle_decoded(&mut self, now: Instant, msg: Message) {
        self.touch(now);
        if self.keyed() {
            self.stats.drop_unauthenticated += 1;
            return;
        }
        self.accept(now, msg);
    }

    /// Takes a decoded (and, when keyed, authenticated) message.
    fn accept(&mut self, now: Instant, msg: Message) {
        if self.config.isolated() && !matches!(msg, Message::Dkv(_)) {
            // The open cluster's (a keyed node never gets here with one).
            self.stats.drop_foreign_cluster += 1;
            return;
        }
        let own = self.config.id;
        match &msg {
            Message::Answer { asker, .. } if *asker != own => {
                self.stats.drop_answer_not_ours += 1;
                return;
            }
            Message::ListAnswer { asker, .. } if *asker != own => {
                self.stats.drop_list_answer_not_ours += 1;
                return;
            }
            Message::Dkv(e) if e.from == own || e.to.is_some_and(|to| to != own) => {
                self.stats.drop_not_ours += 1;
                return;
            }
            Message::Question { asker, .. } | Message::List { asker }
                if self.peers.is_dkv(*asker) =>
            {
                self.stats.drop_legacy_from_dkv += 1;
                return;
            }
            // Every prototype receives every list_answer (its `list` subscription)
            // and dies on one meant for another: with a second prototype beaconing,
            // that one answers instead. (One that just quit is still a peer until it
            // times out, but beacons no more, so it does not count.)
            Message::List { .. } if self.prototypes_beaconing(now) > 1 => {
                self.stats.drop_list_many_prototypes += 1;
                return;
            }
            _ => {}
        }
        self.stats.count_in(msg.kind());
        match msg {
            Message::Set { key, value } => {
                if self.echoes.consume(&key, &value) {
                    self.stats.echoes_ignored += 1;
                } else {
                    // A prototype's write: it gets a version here.
                    let ts = self.hlc.tick(self.wall_ms(now));
                    let entry = self.entry_at(ts, Some(value));
                    let record = Record { key, entry };
                    self.apply(now, Cow::Owned(record), Origin::Stamped);
                }
            }
            Message::Answer { key, value, .. } => {
                let entry = Entry {
                    version: Version::UNVERSIONED,
                    value: Some(value),
                };
                self.apply(now, Cow::Owned(Record { key, entry }), Origin::Remote);
            }
            Message::Question { asker, key } => {
                if let Some(value) = self.value(&key).filter(|v| !v.is_empty()) {
                    let value = Bytes::copy_from_slice(value);
                    let l = &self.config.limits;
                    let (per, all, max) = (l.answers_per_asker, l.answers_total, l.max_askers);
                    if self.answer_rates.take(now, asker, per, all, max) {
                        self.publish(Message::Answer { asker, key, value });
                    } else {
                        self.stats.drop_answer_rate += 1;
                    }
                }
            }
            Message::List { asker } => {
                let l = &self.config.limits;
                let (per, all) = (l.list_answers_per_asker, l.list_answers_total);
                if self.list_rates.take(now, asker, per, all, l.max_askers) {
                    let keys = self.keys().map(str::to_owned).collect();
                    self.publish(Message::ListAnswer { asker, keys });
                } else {
                    self.stats.drop_list_rate += 1;
                }
            }
            Message::ListAnswer { keys, .. } => {
                let store = &self.store;
                let send = self
                    .bootstrap
                    .on_list_answer(now, keys, |k| store.get(k).is_some());
                send.into_iter().for_each(|m| self.publish(m));
            }
            Message::Dkv(envelope) => self.handle_dkv(now, envelope),
        }
        self.check_caught_up();
    }

    /// A version-2 hello heard by a named or keyed node: the announced port and id,
    /// or `None` once the refusal is counted.
    fn hello_v2(
        &mut self,
        now: Instant,
        src: IpAddr,
        datagram: &[u8],
    ) -> Option<(u16, Option<NodeId>)> {
        let own = self.config.id;
        let sealed = hello_v2_sealed(datagram);
        let Some(keys) = &self.config.keys else {
            if sealed {
                // A keyed cluster's hello: not ours, whatever its name.
                self.stats.drop_hello_foreign_cluster += 1;
                return None;
            }
            let hello = match parse_plain_hello(datagram) {
                Ok(h) => h,
                Err(err) => {
                    self.stats.count_beacon_error(err);
                    return None;
                }
            };
            if hello.tag != self.config.cluster.tag() {
                self.stats.drop_hello_foreign_cluster += 1;
                return None;
            }
            if self.local_ip.is_none() {
                self.stats.drop_beacon_net_down += 1;
                return None;
            }
            if hello.id == own {
                self.stats.beacons_own += 1;
                return None;
            }
            if src != IpAddr::V4(hello.ip) {
                self.stats.drop_hello_spoofed += 1;
                return None;
            }
            return Some((hello.port, Some(hello.id)));
        };
        if !sealed {
            self.stats.drop_hello_unauthenticated += 1;
            return None;
        }
        let Ok(header) = parse_hello(datagram) else {
            self.stats.drop_bad_hello += 1;
            return None;
        };
        if header.cluster_tag != self.config.cluster.tag() {
            self.stats.drop_hello_foreign_cluster += 1;
            return None;
        }
        if self.local_ip.is_none() {
            self.stats.drop_beacon_net_down += 1;
            return None;
        }
        if header.sender == own {
            self.stats.beacons_own += 1;
            return None;
        }
        if !keys.knows(header.key_id) {
            self.stats.drop_hello_unknown_key += 1;
            return None;
        }
        let wall = self.wall_ms(now);
        if let Err(why) = self.guard.check(&header, wall) {
            self.stats.count_refusal(why, true);
            return None;
        }
        let Ok(opened) = keys.open_hello(&self.config.cluster, datagram) else {
            self.stats.drop_hello_forged += 1;
            return None;
        };
        // Genuine, but possibly replayed from elsewhere: it connects no one unless it
        // comes from the address it announces.
        if src != IpAddr::V4(opened.addr.ip) || opened.addr.port == 0 {
            self.stats.drop_hello_spoofed += 1;
            return None;
        }
        if let Err(why) = self.guard.commit(&header, wall) {
            self.stats.count_refusal(why, true);
            return None;
        }
        Some((opened.addr.port, Some(header.sender)))
    }

    /// A keyed node's `handle_message`: the receive order of the seal.
    fn handle_sealed<F: AsRef<[u8]>>(&mut self, now: Instant, frames: &[F]) {
        let own = self.config.id;
        let Some((topic, rest)) = frames.split_first() else {
            self.stats.drop_empty += 1;
            return;
        };
        let topic = topic.as_ref();
        let Some(class) = Class::of_topic(topic) else {
            match v2::topic_target(topic) {
                // `dkv2.to` with a bad id.
                Some(_) => self.stats.drop_bad_id += 1,
                // A prototype topic or garbage: nothing unsealed is taken.
                None => self.stats.drop_unauthenticated += 1,
            }
            return;
        };
        let to = match class {
            Class::To => {
                let id = NodeId(topic[v2::TOPIC_TO.len()..].try_into().unwrap_or_default());
                if id != own {
                    self.stats.drop_not_ours += 1;
                    return;
                }
                Some(id)
            }
            _ => None,
        };
        let [frame] = rest else {
            self.stats.drop_frame_count += 1;
            return;
        };
        let frame = frame.as_ref();
        if topic.len().saturating_add(frame.len()) > self.config.limits.max_message_bytes {
            self.stats.drop_oversized += 1;
            return;
        }
        if frame.first() != Some(&FRAME_MARKER) {
            self.stats.drop_unauthenticated += 1;
            return;
        }
        let Ok(header) = parse_frame(topic, frame) else {
            // Shorter than a header and a tag.
            self.stats.drop_forged += 1;
            return;
        };
        let Some(keys) = &self.config.keys else {
            return;
        };
        if header.cluster_tag != self.config.cluster.tag() {
            self.stats.drop_foreign_cluster += 1;
            return;
        }
        if !keys.knows(header.key_id) {
            self.stats.drop_unknown_key += 1;
            return;
        }
        if header.sender == own {
            self.stats.drop_not_ours += 1;
            return;
        }
        let wall = self.wall_ms(now);
        if let Err(why) = self.guard.check(&header, wall) {
            self.stats.count_refusal(why, false);
            return;
        }
        let Ok(opened) = keys.open_frame(&self.config.cluster, topic, frame) else {
            self.stats.drop_forged += 1;
            return;
        };
        if let Err(why) = self.guard.commit(&header, wall) {
            self.stats.count_refusal(why, false);
            return;
        }
        let limits = DecodeLimits::from(&self.config.limits);
        let envelope = match v2::decode(to, &[opened.body.as_slice()], limits) {
            Ok(e) => e,
            Err(err) => return self.stats.count_decode_error(err),
        };
        if envelope.from != header.sender {
            self.stats.drop_seal_mismatch += 1;
            return;
        }
        self.accept(now, Message::Dkv(envelope));
    }

    /// Whether `from` may have one more request served now (its own rate and the
    /// node's: `Limits::requests_per_asker` and `requests_total`).
    fn take_request(&mut self, now: Instant, from: NodeId) -> bool {
        let l = &self.config.limits;
        let (per, all, max) = (l.requests_per_asker, l.requests_total, l.max_askers);
        self.request_rates.take(now, from, per, all, max)
    }

    fn handle_dkv(&mut self, now: Instant, envelope: Envelope) {
        let from = envelope.from;
        self.peers.note_dkv(from, now);
        match envelope.body {
            Body::Put { echo, records } => self.apply_from_peer(now, from, records, echo),
            Body::Ask { .. } | Body::Sync { .. } | Body::Pull { .. } | Body::Fetch { .. }
                if !self.take_request(now, from) =>
            {
                self.stats.drop_request_rate += 1;
            }
            Body::Ask { key } => {
                if let Some(slot) = self.store.get(&key) {
                    let records = vec![Record {
                        key,
                        entry: slot.entry(),
                    }];
                    self.send_to(
                        from,
                        Body::Push {
                            request: 0,
                            records,
                            more: None,
                        },
                    );
                }
            }
            Body::Sync {
                session,
                initiator,
                last,
                steps,
            } => {
                let wall = self.wall_ms(now);
                let reaction = self.sync.on_sync(
                    now,
                    from,
                    session,
                    initiator,
                    last,
                    &steps,
                    &self.store,
                    &self.hlc,
                    wall,
                );
                for e in reaction.send {
                    self.publish(Message::Dkv(e));
                }
                if let Some(ts) = reaction.ahead {
                    self.recheck_ahead(now, from, ts);
                }
                // A session that ended freed a slot for a waiting peer.
                self.sync_step(now);
            }
            Body::Pull {
                request,
                range,
                after,
            } => {
                let e = self.sync.on_pull(from, request, range, after, &self.store);
                self.publish(Message::Dkv(e));
            }
            Body::Fetch {
                request,
                key_hashes,
            } => {
                for e in self.sync.on_fetch(from, request, &key_hashes, &self.store) {
                    self.publish(Message::Dkv(e));
                }
            }
            Body::Push {
                request,
                records,
                more,
            } => {
                self.apply_from_peer(now, from, records, false);
                for e in self.sync.on_push(now, from, request, more) {
                    self.publish(Message::Dkv(e));
                }
            }
        }
    }

    /// Puts back an entry this node held before it stopped (read from disk by a
    /// persisting transport), before its first net up. It is stored if it wins the
    /// merge, with no output (it is not a change), and the clock is raised to its
    /// version, so every version issued from now on is above every one restored.
    /// Restored tombstones are collected at the horizon like any other.
    pub fn restore(&mut self, now: Instant, key: &str, entry: Entry) {
        self.timeout = None;
        self.hlc.raise_to(entry.version.ts);
        if self.store.merge(key, &entry) && entry.is_tombstone() {
            self.schedule_gc(now, entry.version.ts);
        }
    }

    /// Stores `key = value` locally with a fresh version and publishes it. A key or
    /// value over [`Config::limits`] is refused, counted in `writes_refused`, and
    /// changes nothing; [`try_set`](Self::try_set) says why.
    pub fn set(&mut self, now: Instant, key: String, value: Bytes) {
        let _ = self.try_set(now, key, value);
    }

    /// Like [`set`](Self::set), returning the refusal of a key or value over the
    /// limits ([`Limits::check_write`](crate::Limits::check_write)).
    pub fn try_set(&mut self, now: Instant, key: String, value: Bytes) -> Result<(), WriteError> {
        self.touch(now);
        self.check_write(&key, Some(&value))?;
        self.stats.sets += 1;
        self.write(now, key, Some(value));
        Ok(())
    }

    /// Stores each of `writes` in order, exactly as [`set`](Self::set) would one by
    /// one (the same versions, outputs and refusals), with the store lines of the
    /// next [`WARM_AHEAD`] keys read while these are stored, so their cache misses
    /// overlap, as for a peer's batch. For a transport that has several sets queued.
    pub fn set_all(&mut self, now: Instant, writes: Vec<(String, Bytes)>) {
        let hashes: Vec<u64> = writes.iter().map(|(key, _)| key_hash(key)).collect();
        for (i, (key, value)) in writes.into_iter().enumerate() {
            self.warm_ahead(&hashes, i);
            self.set(now, key, value);
        }
    }

    /// Deletes `key`: a tombstone with a fresh version is stored and published. It
    /// replicates and wins like any write; prototype nodes receive it as a `set` of
    /// an empty value, the closest they have to a delete. A key over the limit is
    /// refused and counted in `writes_refused`; [`try_delete`](Self::try_delete) says
    /// why.
    pub fn delete(&mut self, now: Instant, key: String) {
        let _ = self.try_delete(now, key);
    }

    /// Like [`delete`](Self::delete), returning the refusal of a key over the limit.
    pub fn try_delete(&mut self, now: Instant, key: String) -> Result<(), WriteError> {
        self.touch(now);
        self.check_write(&key, None)?;
        self.stats.deletes += 1;
        self.write(now, key, None);
        Ok(())
    }

    fn check_write(&mut self, key: &str, value: Option<&[u8]>) -> Result<(), WriteError> {
        let checked = self.config.limits.check_write(key, value);
        if checked.is_err() {
            self.stats.writes_refused += 1;
        }
        checked
    }

    /// Applies `records` from dkv peer `from`, in order, the store's first lines for
    /// the next [`WARM_AHEAD`] read while these are merged, within that peer's transfer
    /// budget: an update of a key held costs nothing, a new key stored one key and
    /// its size; a record refused for the budget is counted. With `echo`, the
    /// prototype copy of each record let through is expected.
    ///
    /// When the budget has room for every record as a new key (the usual case), it
    /// is checked once and charged once, after, with what the store grew by: one
    /// budget lookup per batch, one store lookup per record. Only a peer short of
    /// budget has each record checked on its own, and its key looked up first to
    /// let updates through. Records are taken by value: the store adopts them.
    fn apply_from_peer(&mut self, now: Instant, from: NodeId, records: Vec<Record>, echo: bool) {
        let mut all_new = NewKeys::default();
        for r in &records {
            all_new += NewKeys::one(record_len(&r.key, &r.entry));
        }
        let batch_fits = self.budgets.allows(now, from, all_new, &self.config.limits);
        let mut new = NewKeys::default();
        let hashes: Vec<u64> = records.iter().map(|r| key_hash(&r.key)).collect();
        for (i, r) in records.into_iter().enumerate() {
            self.warm_ahead(&hashes, i);
            let expected = echo.then(|| Echoes::expectation(&r));
            let through = if batch_fits {
                new += self.apply_remote(now, r);
                true
            } else {
                self.apply_within_budget(now, from, r)
            };
            if let Some((key, value_hash)) = expected.filter(|_| through) {
                self.echoes.expect(key, value_hash);
            }
        }
        if !new.is_none() {
            // Within `all_new`, allowed at this same `now`: cannot be refused.
            self.budgets.take(now, from, new, &self.config.limits);
        }
        if let Some(ts) = self.refused_ahead.take() {
            self.recheck_ahead(now, from, ts);
        }
    }

    /// `from` sent or offered a version stamped `ts`, refused as too far ahead of
    /// this node's clock: reconcile with it once `ts` is acceptable, rather than
    /// wait for a periodic session to happen upon it. Only a live peer is
    /// remembered (ids are one per peer, so the memory is bounded), and not sooner
    /// than a sync timeout from now: a peer whose clock runs ahead and writes all
    /// the time costs one session a second, not one per write.
    fn recheck_ahead(&mut self, now: Instant, from: NodeId, ts: Timestamp) {
        if self.peers.addr_of(from).is_some() {
            let wait = self.hlc.acceptable_after(ts, self.wall_ms(now));
            let wait = wait.max(self.config.timings.sync_timeout);
            self.sync.recheck_at(from, later(now, wait));
        }
    }

    /// Before the `i`th of a run of keys whose hashes are `hashes`: at the start of
    /// each group of [`WARM_AHEAD`], reads the store lines of the next group (and,
    /// first, of this one), so their cache misses overlap ([`Store::warm`]).
    fn warm_ahead(&self, hashes: &[u64], i: usize) {
        if i % WARM_AHEAD == 0 {
            let start = if i == 0 { 0 } else { i + WARM_AHEAD };
            let group = hashes.get(start..(i + 2 * WARM_AHEAD).min(hashes.len()));
            std::hint::black_box(self.store.warm(group.unwrap_or_default()));
        }
    }

    /// Applies record `r` from dkv peer `from` if it fits that peer's transfer
    /// budget on its own; returns whether it was let through. A refusal is counted.
    fn apply_within_budget(&mut self, now: Instant, from: NodeId, r: Record) -> bool {
        let cost = NewKeys::one(record_len(&r.key, &r.entry));
        if self.budgets.allows(now, from, cost, &self.config.limits) {
            let new = self.apply_remote(now, r);
            if !new.is_none() {
                self.budgets.take(now, from, new, &self.config.limits);
            }
            return true;
        }
        if self.store.get(&r.key).is_some() {
            self.apply(now, Cow::Owned(r), Origin::Remote);
            return true;
        }
        self.stats.sync_peer_over_budget += 1;
        false
    }

    /// Applies record `r` from a dkv peer; returns what it cost the peer's budget:
    /// one new key of its size if the store grew, else nothing.
    fn apply_remote(&mut self, now: Instant, r: Record) -> NewKeys {
        let cost = NewKeys::one(record_len(&r.key, &r.entry));
        let held = |store: &Store| store.live_len() + store.tombstones();
        let before = held(&self.store);
        self.apply(now, Cow::Owned(r), Origin::Remote);
        if held(&self.store) > before {
            cost
        } else {
            NewKeys::default()
        }
    }

    /// Whether a beacon or hello from a new endpoint on `ip` may make it a peer: the
    /// peer caps and the new-peer rate allow it. A refusal is counted.
    fn admit_peer(&mut self, now: Instant, ip: IpAddr) -> bool {
        let l = &self.config.limits;
        if self.peers.len() >= l.max_peers {
            self.stats.drop_peer_limit += 1;
            return false;
        }
        if self.peers.count_ip(ip) >= l.max_peers_per_ip {
            self.stats.drop_peer_ip_limit += 1;
            return false;
        }
        if !self.new_peers.take(now, l.new_peers) {
            self.stats.drop_peer_rate += 1;
            return false;
        }
        true
    }

    fn write(&mut self, now: Instant, key: String, value: Option<Bytes>) {
        let ts = self.hlc.tick(self.wall_ms(now));
        let entry = self.entry_at(ts, value);
        // Stored (and reported) first, then published: a transport that persists
        // writes has one on disk before any peer can hold it.
        let record = Record { key, entry };
        self.apply(now, Cow::Borrowed(&record), Origin::Local);
        let echo = !self.config.isolated() && self.peers.any_prototype();
        self.queue_put(echo, record);
        self.sync_step(now);
    }

    fn entry_at(&self, ts: Timestamp, value: Option<Bytes>) -> Entry {
        Entry {
            version: Version {
                ts,
                node: self.config.id,
            },
            value,
        }
    }

    /// Publishes a write: appended to the `put` of writes still waiting in the
    /// outbox if there is one with room, else in a new one; with `echo`, followed by
    /// its prototype `set` copy (always after the `put` that holds it).
    fn queue_put(&mut self, echo: bool, record: Record) {
        let copy = echo.then(|| Message::Set {
            key: record.key.clone(),
            value: record.entry.value.clone().unwrap_or_default(),
        });
        let size = record_len(&record.key, &record.entry);
        let open = self
            .open_put
            .filter(|p| p.echo == echo && p.at >= self.popped && p.bytes + size <= PAGE_BYTES);
        let held = open.and_then(|p| self.out.get_mut(usize::try_from(p.at - self.popped).ok()?));
        match held {
            Some(Output::Publish(Message::Dkv(Envelope {
                body: Body::Put { records, .. },
                ..
            }))) => {
                records.push(record);
                if let Some(p) = &mut self.open_put {
                    p.bytes += size;
                }
            }
            _ => {
                self.publish(Message::Dkv(Envelope {
                    to: None,
                    from: self.config.id,
                    body: Body::Put {
                        echo,
                        records: vec![record],
                    },
                }));
                self.open_put = Some(OpenPut {
                    at: self.popped + self.out.len() as u64 - 1,
                    echo,
                    bytes: size,
                });
            }
        }
        if let Some(copy) = copy {
            self.publish(copy);
        }
    }

    /// Starts a get. A local entry completes it at once (with no value if it is a
    /// tombstone); otherwise dkv peers are asked (and prototype peers, if any) and
    /// the get completes when an entry for `key` arrives or `timeout` (default: the
    /// configured get timeout) passes, with whatever is then held. Either way exactly
    /// one [`Output::GetDone`] with the returned id follows.
    pub fn get(&mut self, now: Instant, key: String, timeout: Option<Duration>) -> GetId {
        self.touch(now);
        let id = GetId(self.next_get);
        self.next_get += 1;
        if self.store.get(&key).is_some() {
            self.stats.gets_hit += 1;
            self.complete_get(id, key);
            return id;
        }
        if !self.gets.waits_on(&key) {
            self.publish(Message::Dkv(Envelope {
                to: None,
                from: self.config.id,
                body: Body::Ask { key: key.clone() },
            }));
            let prototypes = self.peers.any_prototype() || self.peers.len() == 0;
            if prototypes && !self.config.isolated() {
                self.publish(Message::Question {
                    asker: self.config.id,
                    key: key.clone(),
                });
            }
        }
        let timeout = timeout.unwrap_or(self.config.timings.get_timeout);
        self.gets.insert(id, key, later(now, timeout));
        id
    }

    /// Fires every timer due at or before `now`: beacons, peer timeouts, get
    /// timeouts, bootstrap steps, reconciliation and tombstone collection. Calling it
    /// early is harmless.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.touch(now);
        if let Some(at) = self.next_beacon.filter(|&at| at <= now) {
            self.announce_presence(now);
            if self.keyed() {
                let wall = self.wall_ms(now);
                self.guard.expire(wall);
            }
            let interval = self.config.timings.beacon_interval;
            let next = later(at, interval);
            self.next_beacon = Some(if next > now {
                next
            } else {
                later(now, interval)
            });
            self.peers.prune_ids(now, self.config.timings.peer_timeout);
        }
        for addr in self.peers.expire(now, self.config.timings.peer_timeout) {
            self.peer_down(now, addr);
        }
        while let Some((id, key)) = self.gets.pop_due(now) {
            self.stats.gets_timed_out += 1;
            self.complete_get(id, key);
        }
        let waiting = self.bootstrap.progress().phase == BootstrapPhase::Waiting;
        for msg in self.bootstrap.on_timeout(now, self.peers.any_prototype()) {
            if let Message::List { .. } = msg {
                self.announce();
            }
            self.publish(msg);
        }
        if waiting && self.bootstrap.progress().phase != BootstrapPhase::Waiting {
            self.catch_up.peers = Some(self.peers.dkv_peers().collect());
        }
        if self.next_gc.is_some_and(|at| at <= now) {
            self.collect_tombstones(now);
        }
        self.sync_step(now);
        self.check_caught_up();
    }

    /// Stops the node: every peer goes down, the net goes down, and every pending get
    /// completes with what is held locally. A later net up starts it again.
    pub fn shutdown(&mut self, now: Instant) {
        let peers: Vec<SocketAddr> = self.peers().collect();
        for addr in peers {
            self.peer_down(now, addr);
        }
        self.sync.reset();
        for (id, key) in self.gets.drain() {
            self.complete_get(id, key);
        }
        self.handle_net_down(now);
    }

    // ---- outputs ----

    /// The next thing the transport must do, in order; `None` when drained. A keyed
    /// node seals each message here, as it is polled.
    #[must_use]
    pub fn poll_output(&mut self) -> Option<Output> {
        loop {
            let output = self.out.pop_front()?;
            self.popped += 1;
            match output {
                Output::Publish(msg) if self.keyed() => {
                    if let Some(sealed) = self.seal(msg) {
                        return Some(Output::PublishSealed(sealed));
                    }
                }
                output => return Some(output),
            }
        }
    }

    /// When [`handle_timeout`](Self::handle_timeout) must next be called; `None`
    /// while no timer is armed.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.timeout {
            Some(known) => {
                debug_assert_eq!(known, self.next_timeout(), "a stale timeout");
                known
            }
            None => self.next_timeout(),
        }
    }

    fn next_timeout(&self) -> Option<Instant> {
        [
            self.next_beacon,
            self.next_peer_expiry(),
            self.gets.next_deadline(),
            self.bootstrap.next_deadline(),
            self.local_ip.and(self.sync.next_deadline()),
            self.next_gc,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    // ---- internals ----

    /// Prototype peers heard within the last one and a half beacon intervals.
    fn prototypes_beaconing(&self, now: Instant) -> usize {
        let recent = self.config.timings.beacon_interval.saturating_mul(3) / 2;
        let since = now.checked_sub(recent).unwrap_or(now);
        self.peers.prototypes_heard_since(since)
    }

    fn wall_ms(&self, now: Instant) -> u64 {
        self.wall.millis_at(now)
    }

    /// Notes the latest `now` an input carried, and that the input may move the
    /// timeout (every input but `restore` starts here).
    fn touch(&mut self, now: Instant) {
        self.last_now = Some(self.last_now.map_or(now, |t| t.max(now)));
        self.timeout = None;
    }

    /// A seal's stamp: the wall clock at the latest input, or the clock's latest
    /// reading if that is ahead.
    fn stamp_ms(&self) -> u64 {
        let wall = self.wall_ms(self.last_now.unwrap_or(self.wall.at));
        wall.max(self.hlc.last().millis())
    }

    /// Whether a prototype was heard within the last peer timeout, so the open
    /// cluster's beacon goes out each interval.
    fn beaconing_for_prototypes(&self, now: Instant) -> bool {
        self.prototype_heard
            .is_some_and(|at| now.saturating_duration_since(at) <= self.config.timings.peer_timeout)
    }

    /// Queues the prototype's beacon.
    fn send_beacon(&mut self) {
        self.stats.beacons_out += 1;
        self.out.push_back(Output::Beacon(self.beacon.clone()));
    }

    /// Queues this beacon interval's discovery datagrams: the open cluster's hello,
    /// and its beacon while a prototype is heard (dkv nodes know each other by
    /// hello), or a named cluster's version-2 hello (sealed when keyed). A named
    /// node on an IPv6 address has nothing to announce (hellos carry IPv4).
    fn announce_presence(&mut self, now: Instant) {
        if !self.config.isolated() {
            self.stats.hellos_out += 1;
            self.out.push_back(Output::Beacon(self.hello.clone()));
            if self.beaconing_for_prototypes(now) {
                self.send_beacon();
            }
            return;
        }
        let Some(IpAddr::V4(ip)) = self.local_ip else {
            return;
        };
        let (id, port) = (self.config.id, self.config.pub_port);
        let stamp = self.stamp_ms();
        let hello = match &self.config.keys {
            None => Bytes::from(encode_plain_hello(&self.config.cluster, id, port, ip)),
            Some(keys) => {
                let addr = HelloAddr { port, ip };
                match self
                    .sealer
                    .seal_hello(keys, &self.config.cluster, addr, stamp)
                {
                    Ok(sealed) => Bytes::copy_from_slice(&sealed),
                    Err(_) => {
                        self.stats.seal_failures += 1;
                        return;
                    }
                }
            }
        };
        self.stats.hellos_out += 1;
        self.out.push_back(Output::Beacon(hello));
    }

    /// Seals a queued dkv/2 message; `None` (counted) if sealing failed.
    fn seal(&mut self, msg: Message) -> Option<Sealed> {
        let stamp = self.stamp_ms();
        let (Message::Dkv(envelope), Some(keys)) = (&msg, &self.config.keys) else {
            // Never queued by a keyed node (`publish` keeps prototype messages out).
            self.stats.seal_failures += 1;
            return None;
        };
        let topic = v2::topic(envelope.to);
        let body = envelope.body_bytes();
        match self
            .sealer
            .seal_frame(keys, &self.config.cluster, &topic, &body, stamp)
        {
            Ok(frame) => Some(Sealed {
                frames: [topic, Bytes::from(frame)],
                msg,
            }),
            Err(_) => {
                self.stats.seal_failures += 1;
                None
            }
        }
    }

    fn horizon_ms(&self) -> u64 {
        u64::try_from(self.config.timings.tombstone_horizon.as_millis()).unwrap_or(u64::MAX)
    }

    fn publish(&mut self, msg: Message) {
        if self.config.isolated() && !matches!(msg, Message::Dkv(_)) {
            // A dkv-only node never speaks the prototype's topics.
            return;
        }
        self.stats.count_out(msg.kind());
        self.out.push_back(Output::Publish(msg));
    }

    /// Tells every dkv subscriber this node's id on the data plane, with an empty
    /// `put`, before a prototype `list`. The `list` follows on the same pipe, so no
    /// dkv node can take this node for a prototype and answer it: its
    /// `list_answer` would reach every prototype (their `list` subscription) and
    /// kill their workers. (Hellos say the same, but travel by UDP and may be lost.)
    fn announce(&mut self) {
        self.publish(Message::Dkv(Envelope {
            to: None,
            from: self.config.id,
            body: Body::Put {
                echo: false,
                records: Vec::new(),
            },
        }));
    }

    fn send_to(&mut self, to: NodeId, body: Body) {
        self.publish(Message::Dkv(Envelope {
            to: Some(to),
            from: self.config.id,
            body,
        }));
    }

    /// Merges `record`: a remote version too far ahead is refused; a winner is
    /// stored (a borrowed one copied, an owned one adopted by the store: a
    /// decoded record's value buffer becomes the store's), completes gets on the
    /// key and is reported as [`Output::Applied`].
    fn apply(&mut self, now: Instant, record: Cow<'_, Record>, origin: Origin) {
        let local = origin == Origin::Local;
        let (key, entry) = (&record.key, &record.entry);
        if origin == Origin::Remote && entry.version != Version::UNVERSIONED {
            let wall = self.wall_ms(now);
            if self.hlc.observe(entry.version.ts, wall).is_err() {
                self.stats.drop_clock_ahead += 1;
                keep_min(&mut self.refused_ahead, entry.version.ts);
                return;
            }
        }
        if !local && self.store_full() && self.store.get(key).is_none() {
            self.stats.drop_store_full += 1;
            return;
        }
        let send = self.bootstrap.on_stored(now, key);
        send.into_iter().for_each(|m| self.publish(m));
        let (version, tombstone) = (entry.version, entry.is_tombstone());
        // The record, for the outputs after the merge, kept only if they are wanted:
        // then the store copies it (no entry copied twice); else the store adopts
        // an owned record.
        let wanted = self.report_applied || self.gets.waits_on(key);
        let (stored, follow_up) = match record {
            Cow::Borrowed(r) => (
                self.store.merge(&r.key, &r.entry),
                wanted.then(|| r.clone()),
            ),
            Cow::Owned(r) if wanted => (self.store.merge(&r.key, &r.entry), Some(r)),
            Cow::Owned(r) => (self.store.adopt(r), None),
        };
        if !stored {
            self.stats.entries_stale += 1;
            return;
        }
        if !local {
            self.stats.entries_applied += 1;
        }
        if tombstone {
            self.schedule_gc(now, version.ts);
        }
        let Some(Record { key, entry }) = follow_up else {
            return;
        };
        if self.report_applied {
            self.out.push_back(Output::Applied(Applied {
                key: key.clone(),
                entry: entry.clone(),
                local,
            }));
        }
        for id in self.gets.take_key(&key) {
            self.stats.gets_answered += 1;
            self.out.push_back(Output::GetDone(GetDone {
                id,
                key: key.clone(),
                value: entry.value.clone(),
                version: Some(entry.version),
            }));
        }
    }

    /// Whether the store holds `Limits::max_store_keys` keys (tombstones included).
    fn store_full(&self) -> bool {
        self.store.live_len() + self.store.tombstones() >= self.config.limits.max_store_keys
    }

    /// Arms tombstone collection for when a tombstone of `ts` expires.
    fn schedule_gc(&mut self, now: Instant, ts: Timestamp) {
        let expires = ts.millis().saturating_add(self.horizon_ms());
        let wait = expires.saturating_sub(self.wall_ms(now)).saturating_add(1);
        let wait = Duration::from_millis(wait);
        let at = later(now, wait);
        if self.next_gc.is_none_or(|t| at < t) {
            self.next_gc = Some(at);
        }
    }

    fn collect_tombstones(&mut self, now: Instant) {
        self.next_gc = None;
        let cutoff = Timestamp::from_millis(self.wall_ms(now).saturating_sub(self.horizon_ms()));
        let removed = self.store.collect_tombstones(cutoff);
        self.stats.tombstones_collected += removed.len() as u64;
        self.out.extend(removed.into_iter().map(Output::Collected));
        if let Some(ts) = self.store.oldest_tombstone() {
            self.schedule_gc(now, ts);
        }
    }

    /// Starts the reconciliation sessions that are due.
    fn sync_step(&mut self, now: Instant) {
        let due = self.sync.next_deadline().is_some_and(|at| at <= now);
        if self.local_ip.is_none() || !due {
            return;
        }
        for e in self.sync.on_timeout(now, &self.peers, &self.store) {
            self.publish(Message::Dkv(e));
        }
    }

    /// Marks bootstrap done once the prototype part is done and every dkv peer found
    /// during the delay (and still live) is reconciled with.
    fn check_caught_up(&mut self) {
        if self.catch_up.done || self.bootstrap.progress().phase != BootstrapPhase::Done {
            return;
        }
        let Some(waiting) = &mut self.catch_up.peers else {
            return;
        };
        // Checked after every input: each peer is walked past once, not every time.
        // A peer counts once reconciled with (a later flap does not undo it).
        while let Some(&first) = waiting.first() {
            if self.peers.addr_of(first).is_some() && !self.sync.is_synced(first) {
                break;
            }
            waiting.pop_first();
        }
        if waiting.is_empty() && self.sync.transfers_idle() {
            self.catch_up.done = true;
            self.stats.bootstraps_done += 1;
        }
    }

    /// No live peer falls silent before this (one may, then, or none).
    fn next_peer_expiry(&self) -> Option<Instant> {
        let seen = self.peers.seen_floor()?;
        Some(later(seen, self.config.timings.peer_timeout))
    }

    fn complete_get(&mut self, id: GetId, key: String) {
        let entry = self.store.get(&key).map(Slot::entry);
        let done = GetDone {
            id,
            version: entry.as_ref().map(|e| e.version),
            value: entry.and_then(|e| e.value),
            key,
        };
        self.out.push_back(Output::GetDone(done));
    }

    fn peer_down(&mut self, now: Instant, addr: SocketAddr) {
        if let Some(id) = self.peers.remove(addr) {
            self.sync.peer_down(now, id);
        }
        self.stats.peers_down += 1;
        self.out.push_back(Output::Disconnect(addr));
    }
}

#[cfg(test)]
mod tests {
    use super::Echoes;

    #[test]
    fn each_expected_echo_is_recognised_once() {
        let mut e = Echoes::default();
        e.expect("k".into(), Echoes::hash(b"v"));
        e.expect("k".into(), Echoes::hash(b"v"));
        assert!(!e.consume("k", b"other"));
        assert!(e.consume("k", b"v"));
        assert!(e.consume("k", b"v"));
        assert!(!e.consume("k", b"v"));
    }

    #[test]
    fn the_oldest_expectations_are_forgotten_beyond_the_cap() {
        let mut e = Echoes::default();
        e.expect("first".into(), Echoes::hash(b"v"));
        for i in 0..Echoes::CAP {
            e.expect(format!("k{i}"), Echoes::hash(b"v"));
        }
        assert!(
            !e.consume("first", b"v"),
            "the oldest was kept past the cap"
        );
        assert!(e.consume("k0", b"v"));
        assert!(e.consume(&format!("k{}", Echoes::CAP - 1), b"v"));
        // Forgetting the oldest expectation of a key keeps its newer one.
        e.expect("k1".into(), Echoes::hash(b"v"));
        for i in 0..Echoes::CAP - 1 {
            e.expect(format!("x{i}"), Echoes::hash(b"v"));
        }
        assert!(e.consume("k1", b"v"));
    }
}
