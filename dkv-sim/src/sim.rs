//! The simulated world: hosts, their links and addresses, the dkv nodes on them, the
//! UDP beacon broadcast and the ZeroMQ PUB/SUB connections between nodes, all under
//! one virtual clock driven by an ordered event queue. It also runs the safety
//! checks on every node output as it happens.
//!
//! What is modelled, and how faithfully:
//! - **Time.** Virtual nanoseconds since a fixed epoch `Instant`. The queue is ordered
//!   by `(time, sequence)`, so same-time events always run in the order they were
//!   scheduled. Each node sees its own clock, which may run fast or slow (a constant
//!   rate error in parts per million); it is monotonic.
//! - **Beacons (UDP broadcast).** Sent from the host's current address to every host
//!   the path reaches, with their own latency and jitter; each copy may be lost or
//!   duplicated (a duplicate arrives later, so beacons may also be reordered). Nodes
//!   hear their own beacons, as on Linux. A beacon sent while the link is down or
//!   after the address changed fails, and the node is told `handle_net_down`; the
//!   transport then looks for an address once per `detect_interval` and reports
//!   `handle_net_up` when it finds one, as `dkv-mio` does.
//! - **PUB/SUB over TCP.** A `Connect` output starts a connection that needs a
//!   round trip and a half (SYN, SYN-ACK, ACK plus subscriptions) before the
//!   publisher sends it anything: what is published before that is lost to this
//!   subscriber (the slow joiner). Unreachable hosts are retried every
//!   `syn_retry`, refused ports every `reconnect_interval` (ZeroMQ's default 100 ms).
//!   Each connection is a FIFO pipe: messages are never reordered or duplicated.
//!   The publisher filters by the subscriber's prefix subscriptions and drops a
//!   message for a subscriber whose pipe already holds `hwm` messages (ZeroMQ PUB's
//!   send high-water mark). A connection whose path is cut (partition in either
//!   direction, or a link down) stalls and resumes in order when the path heals;
//!   one whose endpoint vanishes (crash, address change) breaks, loses what it held
//!   and reconnects. `Disconnect` drops the pipe. There is no bandwidth limit.
//! - **Faults.** Partitions of any shape, symmetric or one-way; links down and up;
//!   address changes; crashes and restarts with an empty store, a new id and a new
//!   port; graceful stops.

use crate::rng::Rng;
use crate::trace::TraceHash;
use bytes::Bytes;
use dkv_proto::{Config, GetId, Message, Node, NodeId, Output, Stats, Timings};
use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Virtual time: nanoseconds since the simulation's epoch.
pub type SimTime = u64;

const MS: u64 = 1_000_000;

fn ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// The network's behaviour. Every probability is per copy, in `[0, 1]`.
#[derive(Clone, Debug, PartialEq)]
pub struct NetConfig {
    /// Smallest one-way TCP latency.
    pub latency: Duration,
    /// Extra one-way TCP latency, uniform in `0..=jitter` per message (FIFO is kept).
    pub jitter: Duration,
    /// Smallest beacon latency.
    pub beacon_latency: Duration,
    /// Extra beacon latency, uniform in `0..=beacon_jitter` per copy.
    pub beacon_jitter: Duration,
    /// Probability a beacon copy to another host is lost.
    pub beacon_loss: f64,
    /// Probability a beacon copy is delivered twice (the second one later).
    pub beacon_dup: f64,
    /// Messages a PUB pipe holds for one subscriber before it drops new ones.
    pub hwm: usize,
    /// Wait before retrying a refused or broken connection (ZeroMQ `reconnect_ivl`).
    pub reconnect_interval: Duration,
    /// Wait before retrying a connect to an unreachable host (a SYN timeout).
    pub syn_retry: Duration,
    /// How often a transport without an address looks for one.
    pub detect_interval: Duration,
    /// Off by default: SUB sockets subscribe `list` like the prototype's, instead
    /// of the `list ` that `Node::subscriptions` gives, so every node also receives
    /// the `list_answer`s meant for others (the prototype's crossfire).
    pub prototype_list_subscription: bool,
}

impl Default for NetConfig {
    /// A clean LAN: sub-millisecond latency, no loss, ZeroMQ's defaults.
    fn default() -> Self {
        NetConfig {
            latency: Duration::from_micros(200),
            jitter: Duration::from_micros(300),
            beacon_latency: Duration::from_micros(200),
            beacon_jitter: Duration::from_micros(300),
            beacon_loss: 0.0,
            beacon_dup: 0.0,
            hwm: 1000,
            reconnect_interval: Duration::from_millis(100),
            syn_retry: Duration::from_secs(1),
            detect_interval: Duration::from_secs(1),
            prototype_list_subscription: false,
        }
    }
}

/// A clock that runs at `1 + ppm / 1_000_000` times the true rate. Monotonic.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Clock {
    /// Rate error in parts per million, clamped to `±500_000`.
    pub ppm: i64,
}

impl Clock {
    fn rate(&self) -> i128 {
        1_000_000 + i128::from(self.ppm.clamp(-500_000, 500_000))
    }

    /// The node-local reading at true time `t`.
    pub fn local(&self, t: SimTime) -> u64 {
        (i128::from(t) * self.rate() / 1_000_000) as u64
    }

    /// The earliest true time at which the local reading reaches `local`.
    pub fn sim(&self, local: u64) -> SimTime {
        let rate = self.rate();
        let mut t = ((i128::from(local) * 1_000_000 + rate - 1) / rate) as u64;
        while self.local(t) < local {
            t += 1;
        }
        while t > 0 && self.local(t - 1) >= local {
            t -= 1;
        }
        t
    }
}

/// Counters of what the simulated network did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NetCounters {
    /// Events processed.
    pub events: u64,
    /// Beacons broadcast.
    pub beacons_sent: u64,
    /// Beacon copies delivered to a node (own beacons included).
    pub beacons_delivered: u64,
    /// Beacon copies lost to random loss.
    pub beacons_lost: u64,
    /// Beacon copies that a partition or a down link stopped.
    pub beacons_blocked: u64,
    /// Extra beacon copies (duplicates) scheduled.
    pub beacons_duplicated: u64,
    /// Beacon sends that failed (link down or address gone).
    pub beacon_send_failures: u64,
    /// Messages published by nodes.
    pub published: u64,
    /// Message copies delivered to a subscriber.
    pub delivered: u64,
    /// Message copies dropped at a full pipe (high-water mark).
    pub dropped_hwm: u64,
    /// Message copies lost when their pipe broke or was disconnected.
    pub dropped_pipe: u64,
    /// Connection attempts.
    pub connect_attempts: u64,
    /// Connections established.
    pub connects_established: u64,
}

impl NetCounters {
    /// Every message or beacon copy that did not arrive.
    pub fn dropped(&self) -> u64 {
        self.beacons_lost + self.beacons_blocked + self.dropped_hwm + self.dropped_pipe
    }
}

/// A safety violation: what went wrong, where and when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// Virtual time.
    pub at: Duration,
    /// The node slot.
    pub slot: usize,
    /// What was wrong.
    pub what: String,
}

/// How a partition cuts the network.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Shape {
    /// Hosts in different groups cannot reach each other in either direction. Hosts
    /// not listed form one more group.
    Groups(Vec<Vec<usize>>),
    /// Nothing from a host in `from` reaches a host in `to`; the other way works.
    OneWay {
        /// Senders that are cut off.
        from: Vec<usize>,
        /// Receivers they cannot reach.
        to: Vec<usize>,
    },
}

#[derive(Debug)]
enum Cut {
    Groups(Vec<u16>),
    OneWay(Vec<bool>, Vec<bool>),
}

impl Cut {
    fn blocks(&self, a: usize, b: usize) -> bool {
        match self {
            Cut::Groups(label) => {
                label.get(a).copied().unwrap_or(0) != label.get(b).copied().unwrap_or(0)
            }
            Cut::OneWay(from, to) => {
                from.get(a).copied().unwrap_or(false) && to.get(b).copied().unwrap_or(false)
            }
        }
    }
}

/// Where a node's SUB connection to one endpoint stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnStatus {
    /// Trying to reach the endpoint.
    Connecting,
    /// Handshake under way; not yet receiving.
    Handshake,
    /// Established: the publisher sends it matching messages.
    Up,
}

#[derive(Debug)]
struct Host {
    ip: IpAddr,
    link_up: bool,
}

#[derive(Debug)]
struct PendingGet {
    /// Kept for debugging a violation.
    #[allow(dead_code)]
    key: String,
}

#[derive(Debug)]
struct Slot {
    host: usize,
    inc: u32,
    node: Option<Node>,
    clock: Clock,
    port: u16,
    subs: Rc<[Bytes]>,
    wake: Option<SimTime>,
    transport_ip: Option<IpAddr>,
    /// SUB side: the endpoints the node asked to connect to, and their connections.
    conns: BTreeMap<SocketAddr, u32>,
    /// PUB side: established connections, in the order they came up.
    /// Entries are `(connection, generation)`; an entry whose connection has moved
    /// on to another generation is stale and skipped (removal is lazy, so that a
    /// disconnect costs O(1) even with a thousand subscribers).
    subscribers: Vec<(u32, u32)>,
    /// Stale entries in `subscribers` (and in each `by_prefix` list).
    stale: usize,
    /// PUB side: the same connections by subscription prefix. Only looked up,
    /// never iterated, so its hash order cannot leak into the run.
    by_prefix: HashMap<Bytes, Vec<(u32, u32)>>,
    /// The distinct lengths of the prefixes in `by_prefix`, ascending.
    prefix_lens: Vec<usize>,
    gets: BTreeMap<GetId, PendingGet>,
    done: BTreeMap<GetId, Option<Bytes>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Connecting,
    Handshake { slot: usize, inc: u32 },
    Up { slot: usize },
}

#[derive(Debug)]
struct Conn {
    alive: bool,
    gen: u32,
    sub: usize,
    endpoint: SocketAddr,
    state: State,
    queue: VecDeque<(SimTime, Rc<Message>)>,
    armed: bool,
    subs: Rc<[Bytes]>,
    /// The last publish that matched this connection (to match it once only).
    mark: u64,
}

#[derive(Debug)]
enum Ev {
    Wake {
        slot: u32,
        inc: u32,
    },
    Detect {
        slot: u32,
        inc: u32,
    },
    /// A beacon copy arriving: to one slot, to every other host ([`ALL`]) or to the
    /// sender's own host over loopback ([`LOOPBACK`]).
    Beacon {
        dgram: Rc<Datagram>,
        to: u32,
    },
    /// The later-arriving copies of one broadcast, to these slots.
    Wave(Box<Wave>),
    Attempt {
        conn: u32,
        gen: u32,
    },
    Handshake {
        conn: u32,
        gen: u32,
    },
    Deliver {
        conn: u32,
        gen: u32,
    },
}

const ALL: u32 = u32::MAX - 1;
const LOOPBACK: u32 = u32::MAX;

/// A beacon datagram in flight.
#[derive(Debug)]
struct Datagram {
    host: u32,
    src: IpAddr,
    payload: Bytes,
}

/// Broadcast copies that arrive together, later than the first ones.
#[derive(Debug)]
struct Wave {
    dgram: Rc<Datagram>,
    to: Vec<u32>,
}

#[derive(Debug)]
struct Entry {
    at: SimTime,
    seq: u64,
    ev: Ev,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

/// A whole simulated cluster: hosts, nodes and network, under virtual time.
///
/// Drive it with the `run_*` methods and act on it between runs (sets, gets,
/// faults). Everything is decided by the seed given to [`Sim::new`] and the calls
/// made on it, so the same calls give the same [`trace_hash`](Self::trace_hash).
#[derive(Debug)]
pub struct Sim {
    now: SimTime,
    seq: u64,
    queue: BinaryHeap<Reverse<Entry>>,
    rng: Rng,
    ids: Rng,
    /// The network's behaviour; may be changed between runs.
    pub net: NetConfig,
    timings: Timings,
    epoch: Instant,
    hosts: Vec<Host>,
    ip_host: BTreeMap<IpAddr, usize>,
    slots: Vec<Slot>,
    listeners: BTreeMap<SocketAddr, usize>,
    conns: Vec<Conn>,
    free_conns: Vec<u32>,
    cuts: BTreeMap<u64, Cut>,
    next_cut: u64,
    next_ip: u32,
    next_port: u32,
    ever_set: BTreeMap<String, BTreeSet<Bytes>>,
    violations: Vec<Violation>,
    checks: u64,
    counters: NetCounters,
    retired_stats: Stats,
    trace: TraceHash,
    publishes: u64,
    scratch: Vec<(u32, u32)>,
}

impl Sim {
    /// An empty world whose randomness (latencies, losses, ids, ports) comes from
    /// `seed`. Nodes get `timings`.
    pub fn new(net: NetConfig, timings: Timings, seed: u64) -> Sim {
        let mut root = Rng::new(seed);
        Sim {
            now: 0,
            seq: 0,
            queue: BinaryHeap::new(),
            rng: root.fork(),
            ids: root.fork(),
            net,
            timings,
            epoch: Instant::now(),
            hosts: Vec::new(),
            ip_host: BTreeMap::new(),
            slots: Vec::new(),
            listeners: BTreeMap::new(),
            conns: Vec::new(),
            free_conns: Vec::new(),
            cuts: BTreeMap::new(),
            next_cut: 0,
            next_ip: 0,
            next_port: 0,
            ever_set: BTreeMap::new(),
            violations: Vec::new(),
            checks: 0,
            counters: NetCounters::default(),
            retired_stats: Stats::default(),
            trace: TraceHash::default(),
            publishes: 0,
            scratch: Vec::new(),
        }
    }

    // ---- world building ----

    /// Adds a host with a fresh address and its link up; returns its index.
    pub fn add_host(&mut self) -> usize {
        let ip = self.fresh_ip();
        self.hosts.push(Host { ip, link_up: true });
        let h = self.hosts.len() - 1;
        self.ip_host.insert(ip, h);
        h
    }

    /// Starts a new node on `host` with a clock running at `1 + ppm/10^6`; returns
    /// its slot. The node gets a fresh id and port and finds its address at once.
    pub fn add_node(&mut self, host: usize, ppm: i64) -> usize {
        self.slots.push(Slot {
            host,
            inc: 0,
            node: None,
            clock: Clock { ppm },
            port: 0,
            subs: Rc::from(Vec::new()),
            wake: None,
            transport_ip: None,
            conns: BTreeMap::new(),
            subscribers: Vec::new(),
            stale: 0,
            by_prefix: HashMap::new(),
            prefix_lens: Vec::new(),
            gets: BTreeMap::new(),
            done: BTreeMap::new(),
        });
        let slot = self.slots.len() - 1;
        self.boot(slot);
        slot
    }

    fn fresh_ip(&mut self) -> IpAddr {
        self.next_ip += 1;
        let n = self.next_ip;
        IpAddr::V4(Ipv4Addr::new(10, (n >> 16) as u8, (n >> 8) as u8, n as u8))
    }

    fn fresh_port(&mut self) -> u16 {
        loop {
            let port = 20_000 + (self.next_port % 45_000) as u16;
            self.next_port += 1;
            let taken = self
                .slots
                .iter()
                .any(|s| s.node.is_some() && s.port == port);
            if !taken {
                return port;
            }
        }
    }

    fn boot(&mut self, slot: usize) {
        let mut id = [0u8; 8];
        id.copy_from_slice(&self.ids.next_u64().to_le_bytes());
        let port = self.fresh_port();
        let config = Config {
            id: NodeId(id),
            pub_port: port,
            timings: self.timings.clone(),
        };
        let node = Node::new(config);
        let mut subs = node.subscriptions();
        if self.net.prototype_list_subscription {
            for p in &mut subs {
                if &p[..] == b"list " {
                    *p = Bytes::from_static(b"list");
                }
            }
        }
        let s = &mut self.slots[slot];
        s.subs = Rc::from(subs);
        s.node = Some(node);
        s.port = port;
        s.wake = None;
        s.transport_ip = None;
        let ip = self.hosts[s.host].ip;
        self.listeners.insert(SocketAddr::new(ip, port), slot);
        self.trace
            .word(0xB007 ^ ((slot as u64) << 16) ^ u64::from(port));
        let inc = self.slots[slot].inc;
        self.schedule(
            self.now,
            Ev::Detect {
                slot: slot as u32,
                inc,
            },
        );
    }

    // ---- getters ----

    /// Virtual time since the epoch.
    pub fn now(&self) -> Duration {
        Duration::from_nanos(self.now)
    }

    /// The node in `slot`, unless it is crashed or stopped.
    pub fn node(&self, slot: usize) -> Option<&Node> {
        self.slots.get(slot).and_then(|s| s.node.as_ref())
    }

    /// Number of slots ever created (crashed ones included).
    pub fn slots(&self) -> usize {
        self.slots.len()
    }

    /// Number of hosts.
    pub fn hosts(&self) -> usize {
        self.hosts.len()
    }

    /// Slots whose node is running, in slot order.
    pub fn live(&self) -> Vec<usize> {
        (0..self.slots.len())
            .filter(|&i| self.slots[i].node.is_some())
            .collect()
    }

    /// The host a slot's node runs on.
    pub fn host_of(&self, slot: usize) -> usize {
        self.slots[slot].host
    }

    /// A host's current address.
    pub fn host_ip(&self, host: usize) -> IpAddr {
        self.hosts[host].ip
    }

    /// Whether a host's link is up.
    pub fn link_is_up(&self, host: usize) -> bool {
        self.hosts[host].link_up
    }

    /// The PUB endpoint a running node is reachable at: its host's address and port.
    pub fn endpoint(&self, slot: usize) -> Option<SocketAddr> {
        let s = self.slots.get(slot)?;
        s.node.as_ref()?;
        Some(SocketAddr::new(self.hosts[s.host].ip, s.port))
    }

    /// The endpoints a node's SUB socket is connected (or connecting) to, as its
    /// `Connect` and `Disconnect` outputs left them.
    pub fn connected(&self, slot: usize) -> Vec<SocketAddr> {
        self.slots[slot].conns.keys().copied().collect()
    }

    /// The state of `slot`'s SUB connection to `endpoint`, if it asked for one.
    pub fn conn_status(&self, slot: usize, endpoint: SocketAddr) -> Option<ConnStatus> {
        let &c = self.slots.get(slot)?.conns.get(&endpoint)?;
        Some(match self.conns[c as usize].state {
            State::Connecting => ConnStatus::Connecting,
            State::Handshake { .. } => ConnStatus::Handshake,
            State::Up { .. } => ConnStatus::Up,
        })
    }

    /// The result of a finished get: `Some(value held)`; `None` while pending or
    /// unknown.
    pub fn get_result(&self, slot: usize, id: GetId) -> Option<&Option<Bytes>> {
        self.slots.get(slot)?.done.get(&id)
    }

    /// Gets still pending on a running node.
    pub fn pending_gets(&self, slot: usize) -> usize {
        self.slots[slot].gets.len()
    }

    /// Every value ever set for `key`, by any node.
    pub fn values_set(&self, key: &str) -> Option<&BTreeSet<Bytes>> {
        self.ever_set.get(key)
    }

    /// Safety violations seen so far, in order.
    pub fn violations(&self) -> &[Violation] {
        &self.violations
    }

    /// Safety checks performed so far.
    pub fn checks(&self) -> u64 {
        self.checks
    }

    /// What the network did so far.
    pub fn counters(&self) -> &NetCounters {
        &self.counters
    }

    /// The sum of every node's counters, crashed nodes included.
    pub fn node_stats(&self) -> Stats {
        let mut total = self.retired_stats.clone();
        for s in &self.slots {
            if let Some(n) = &s.node {
                add_stats(&mut total, n.stats());
            }
        }
        total
    }

    /// The hash of every event so far.
    pub fn trace_hash(&self) -> u64 {
        self.trace.value()
    }

    /// Folds every running node's store into the trace, so that two runs whose
    /// stores differ hash differently.
    pub fn hash_stores(&mut self) {
        for s in &self.slots {
            if let Some(n) = &s.node {
                for (k, v) in n.entries() {
                    self.trace.bytes(k.as_bytes());
                    self.trace.bytes(v);
                }
            }
        }
    }

    /// Records a violation found outside the simulator (e.g. a liveness check).
    pub fn report(&mut self, slot: usize, what: String) {
        self.violations.push(Violation {
            at: self.now(),
            slot,
            what,
        });
    }

    // ---- workload ----

    /// `slot` sets `key = value`. Ignored if the node is not running.
    pub fn set(&mut self, slot: usize, key: &str, value: Bytes) {
        if self.slots[slot].node.is_none() {
            return;
        }
        self.trace.word(0x5E7 ^ (slot as u64));
        self.trace.bytes(key.as_bytes());
        self.trace.bytes(&value);
        self.ever_set
            .entry(key.to_owned())
            .or_default()
            .insert(value.clone());
        let local = self.local_now(slot);
        if let Some(n) = self.slots[slot].node.as_mut() {
            n.set(local, key.to_owned(), value);
        }
        self.drain(slot);
    }

    /// `slot` starts a get of `key` with the default timeout; `None` if the node is
    /// not running. The result appears in [`get_result`](Self::get_result).
    pub fn get(&mut self, slot: usize, key: &str) -> Option<GetId> {
        self.slots[slot].node.as_ref()?;
        self.trace.word(0x6E7 ^ (slot as u64));
        self.trace.bytes(key.as_bytes());
        let local = self.local_now(slot);
        let s = &mut self.slots[slot];
        let id = s.node.as_mut()?.get(local, key.to_owned(), None);
        s.gets.insert(
            id,
            PendingGet {
                key: key.to_owned(),
            },
        );
        self.drain(slot);
        Some(id)
    }

    /// Forgets finished gets' results (to bound memory in long runs).
    pub fn forget_get_results(&mut self) {
        for s in &mut self.slots {
            s.done.clear();
        }
    }

    // ---- faults ----

    /// Cuts the network; returns an id for [`heal`](Self::heal).
    pub fn partition(&mut self, shape: &Shape) -> u64 {
        let n = self.hosts.len();
        let cut = match shape {
            Shape::Groups(groups) => {
                let mut label = vec![0u16; n];
                for (i, g) in groups.iter().enumerate() {
                    for &h in g {
                        if h < n {
                            label[h] = i as u16 + 1;
                        }
                    }
                }
                Cut::Groups(label)
            }
            Shape::OneWay { from, to } => {
                let mut f = vec![false; n];
                let mut t = vec![false; n];
                from.iter().filter(|&&h| h < n).for_each(|&h| f[h] = true);
                to.iter().filter(|&&h| h < n).for_each(|&h| t[h] = true);
                Cut::OneWay(f, t)
            }
        };
        let id = self.next_cut;
        self.next_cut += 1;
        self.cuts.insert(id, cut);
        self.trace.word(0xC07 ^ id);
        id
    }

    /// Removes one partition.
    pub fn heal(&mut self, id: u64) {
        if self.cuts.remove(&id).is_some() {
            self.trace.word(0x4EA1 ^ id);
            self.resume_pipes();
        }
    }

    /// Removes every partition.
    pub fn heal_all(&mut self) {
        let ids: Vec<u64> = self.cuts.keys().copied().collect();
        for id in ids {
            self.heal(id);
        }
    }

    /// Number of partitions in force.
    pub fn partitions(&self) -> usize {
        self.cuts.len()
    }

    /// Takes a host's link down: nothing gets in or out; TCP pipes stall.
    pub fn link_down(&mut self, host: usize) {
        self.trace.word(0x11D0 ^ host as u64);
        self.hosts[host].link_up = false;
    }

    /// Brings a host's link back with the same address.
    pub fn link_up(&mut self, host: usize) {
        self.trace.word(0x11A0 ^ host as u64);
        if !self.hosts[host].link_up {
            self.hosts[host].link_up = true;
            self.resume_pipes();
        }
    }

    /// Gives a host a new address: every connection from or to it breaks, and its
    /// nodes notice when their next beacon fails.
    pub fn change_ip(&mut self, host: usize) {
        let old = self.hosts[host].ip;
        let new = self.fresh_ip();
        self.trace.word(0x1BC ^ host as u64);
        self.hosts[host].ip = new;
        self.ip_host.remove(&old);
        self.ip_host.insert(new, host);
        for slot in 0..self.slots.len() {
            let s = &self.slots[slot];
            if s.host == host && s.node.is_some() {
                self.listeners.remove(&SocketAddr::new(old, s.port));
                self.listeners.insert(SocketAddr::new(new, s.port), slot);
            }
        }
        for c in 0..self.conns.len() {
            let conn = &self.conns[c];
            if !conn.alive {
                continue;
            }
            let pub_here = match conn.state {
                State::Up { slot } | State::Handshake { slot, .. } => self.slots[slot].host == host,
                State::Connecting => false,
            };
            if pub_here || self.slots[conn.sub].host == host {
                self.break_conn(c as u32);
            }
        }
    }

    /// Kills a node without a goodbye: its connections die and its store is lost.
    pub fn crash(&mut self, slot: usize) {
        if self.slots[slot].node.is_none() {
            return;
        }
        self.trace.word(0xC4A5 ^ slot as u64);
        self.retire(slot);
    }

    /// Stops a node gracefully (`Node::shutdown`), checking that it disconnects
    /// from every endpoint it connected to, then removes it.
    pub fn stop(&mut self, slot: usize) {
        if self.slots[slot].node.is_none() {
            return;
        }
        self.trace.word(0x5709 ^ slot as u64);
        let local = self.local_now(slot);
        if let Some(n) = self.slots[slot].node.as_mut() {
            n.shutdown(local);
        }
        self.drain(slot);
        if !self.slots[slot].conns.is_empty() {
            let left = self.slots[slot].conns.len();
            self.violate(
                slot,
                format!("after shutdown {left} connect(s) were never disconnected"),
            );
        }
        if !self.slots[slot].gets.is_empty() {
            let left = self.slots[slot].gets.len();
            self.violate(
                slot,
                format!("after shutdown {left} get(s) never completed"),
            );
        }
        self.retire(slot);
    }

    /// Starts a crashed or stopped node again: empty store, new id, new port.
    pub fn restart(&mut self, slot: usize) {
        if self.slots[slot].node.is_some() {
            return;
        }
        self.trace.word(0x4E57 ^ slot as u64);
        self.boot(slot);
    }

    fn retire(&mut self, slot: usize) {
        let Some(node) = self.slots[slot].node.take() else {
            return;
        };
        add_stats(&mut self.retired_stats, node.stats());
        let ip = self.hosts[self.slots[slot].host].ip;
        let port = self.slots[slot].port;
        if self.listeners.get(&SocketAddr::new(ip, port)) == Some(&slot) {
            self.listeners.remove(&SocketAddr::new(ip, port));
        }
        let s = &mut self.slots[slot];
        s.inc += 1;
        s.wake = None;
        s.transport_ip = None;
        s.gets.clear();
        let own: Vec<u32> = std::mem::take(&mut s.conns).into_values().collect();
        let subs = std::mem::take(&mut s.subscribers);
        for c in own {
            self.destroy_conn(c);
        }
        for (c, gen) in subs {
            if self.subscribed(c, gen, slot) {
                self.break_conn(c);
            }
        }
        let s = &mut self.slots[slot];
        s.by_prefix.clear();
        s.stale = 0;
    }

    // ---- running ----

    /// Processes every event due up to `until` (virtual time since the epoch), then
    /// sets the clock to `until`.
    pub fn run_until(&mut self, until: Duration) {
        let until = ns(until);
        while let Some(Reverse(e)) = self.queue.peek() {
            if e.at > until {
                break;
            }
            let Some(Reverse(e)) = self.queue.pop() else {
                break;
            };
            self.now = e.at;
            self.process(e);
        }
        self.now = self.now.max(until);
    }

    /// Runs for `d` of virtual time.
    pub fn run_for(&mut self, d: Duration) {
        self.run_until(self.now() + d);
    }

    /// Runs until `done` holds (checked after every event) or `limit` of virtual
    /// time passes; returns whether `done` held.
    pub fn run_until_true(&mut self, limit: Duration, mut done: impl FnMut(&Sim) -> bool) -> bool {
        let until = self.now + ns(limit);
        loop {
            if done(self) {
                return true;
            }
            let next = match self.queue.peek() {
                Some(Reverse(e)) if e.at <= until => e.at,
                _ => break,
            };
            let Some(Reverse(e)) = self.queue.pop() else {
                break;
            };
            self.now = next;
            self.process(e);
        }
        self.now = self.now.max(until);
        done(self)
    }

    fn schedule(&mut self, at: SimTime, ev: Ev) {
        self.seq += 1;
        self.queue.push(Reverse(Entry {
            at,
            seq: self.seq,
            ev,
        }));
    }

    fn local_now(&self, slot: usize) -> Instant {
        self.epoch + Duration::from_nanos(self.slots[slot].clock.local(self.now))
    }

    fn process(&mut self, e: Entry) {
        self.counters.events += 1;
        self.trace.word(e.at);
        match e.ev {
            Ev::Wake { slot, inc } => {
                let slot = slot as usize;
                self.trace.word(1 ^ ((slot as u64) << 8));
                let s = &mut self.slots[slot];
                if s.inc != inc || s.wake != Some(e.at) {
                    return;
                }
                s.wake = None;
                let local = self.local_now(slot);
                if let Some(n) = self.slots[slot].node.as_mut() {
                    n.handle_timeout(local);
                }
                self.drain(slot);
            }
            Ev::Detect { slot, inc } => {
                let slot = slot as usize;
                self.trace.word(2 ^ ((slot as u64) << 8));
                let s = &self.slots[slot];
                if s.inc != inc || s.node.is_none() {
                    return;
                }
                let host = &self.hosts[s.host];
                if !host.link_up {
                    let at = self.now + ns(self.net.detect_interval);
                    self.schedule(
                        at,
                        Ev::Detect {
                            slot: slot as u32,
                            inc,
                        },
                    );
                    return;
                }
                let ip = host.ip;
                if s.transport_ip != Some(ip) {
                    self.slots[slot].transport_ip = Some(ip);
                    let local = self.local_now(slot);
                    if let Some(n) = self.slots[slot].node.as_mut() {
                        n.handle_net_up(local, ip);
                    }
                    self.drain(slot);
                }
            }
            Ev::Beacon { dgram, to } => self.deliver_beacon(&dgram, to),
            Ev::Wave(wave) => {
                self.trace.word(10 ^ (u64::from(wave.dgram.host) << 8));
                for &slot in &wave.to {
                    self.deliver_beacon(&wave.dgram, slot);
                }
            }
            Ev::Attempt { conn, gen } => self.attempt(conn, gen),
            Ev::Handshake { conn, gen } => self.handshake(conn, gen),
            Ev::Deliver { conn, gen } => self.deliver(conn, gen),
        }
    }

    fn violate(&mut self, slot: usize, what: String) {
        self.violations.push(Violation {
            at: self.now(),
            slot,
            what,
        });
    }

    /// Carries out every output the node in `slot` has queued, checking each, then
    /// re-arms its timer.
    fn drain(&mut self, slot: usize) {
        loop {
            let Some(out) = self.slots[slot].node.as_mut().and_then(Node::poll_output) else {
                break;
            };
            self.checks += 1;
            match out {
                Output::Beacon(payload) => self.send_beacon(slot, payload),
                Output::Publish(msg) => self.publish(slot, msg),
                Output::Connect(addr) => self.on_connect(slot, addr),
                Output::Disconnect(addr) => self.on_disconnect(slot, addr),
                Output::GetDone(done) => {
                    self.trace.word(0x6D ^ (done.id.0 << 8));
                    match &done.value {
                        Some(v) => self.trace.bytes(v),
                        None => self.trace.word(0x404),
                    }
                    if self.slots[slot].gets.remove(&done.id).is_none() {
                        self.violate(
                            slot,
                            format!("get {:?} completed twice or never started", done.id),
                        );
                    }
                    if let Some(v) = &done.value {
                        let known = self.ever_set.get(&done.key).is_some_and(|s| s.contains(v));
                        if !known {
                            self.violate(
                                slot,
                                format!(
                                    "get of {:?} returned {:?}, which no node set",
                                    done.key, v
                                ),
                            );
                        }
                    }
                    self.slots[slot].done.insert(done.id, done.value);
                }
            }
        }
        self.rearm(slot);
    }

    fn rearm(&mut self, slot: usize) {
        let s = &self.slots[slot];
        let Some(deadline) = s.node.as_ref().and_then(Node::poll_timeout) else {
            return;
        };
        let local = u64::try_from(deadline.saturating_duration_since(self.epoch).as_nanos())
            .unwrap_or(u64::MAX);
        let at = s.clock.sim(local).max(self.now);
        if s.wake.map_or(true, |w| at < w) {
            let inc = s.inc;
            self.slots[slot].wake = Some(at);
            self.schedule(
                at,
                Ev::Wake {
                    slot: slot as u32,
                    inc,
                },
            );
        }
    }

    fn send_beacon(&mut self, slot: usize, payload: Bytes) {
        let s = &self.slots[slot];
        let host = &self.hosts[s.host];
        let ok = host.link_up && s.transport_ip == Some(host.ip);
        if !ok {
            self.counters.beacon_send_failures += 1;
            self.trace.word(0xBEF ^ ((slot as u64) << 8));
            if self.slots[slot].transport_ip.take().is_some() {
                let local = self.local_now(slot);
                if let Some(n) = self.slots[slot].node.as_mut() {
                    n.handle_net_down(local);
                }
                let inc = self.slots[slot].inc;
                let at = self.now + self.rng.range(1, ns(self.net.detect_interval));
                self.schedule(
                    at,
                    Ev::Detect {
                        slot: slot as u32,
                        inc,
                    },
                );
            }
            return;
        }
        let dgram = Rc::new(Datagram {
            host: s.host as u32,
            src: host.ip,
            payload,
        });
        self.counters.beacons_sent += 1;
        // Own-host copies arrive over loopback at once; the rest after the LAN latency.
        let ev = Ev::Beacon {
            dgram: dgram.clone(),
            to: LOOPBACK,
        };
        self.schedule(self.now + 20_000, ev);
        let at = self.now + ns(self.net.beacon_latency);
        self.schedule(at, Ev::Beacon { dgram, to: ALL });
    }

    fn blocked(&self, a: usize, b: usize) -> bool {
        a != b && self.cuts.values().any(|c| c.blocks(a, b))
    }

    /// Whether a TCP connection between two hosts can make progress.
    fn tcp_ok(&self, a: usize, b: usize) -> bool {
        if a == b {
            return true;
        }
        self.hosts[a].link_up && self.hosts[b].link_up && !self.blocked(a, b) && !self.blocked(b, a)
    }

    fn deliver_beacon(&mut self, dgram: &Rc<Datagram>, to: u32) {
        let from = dgram.host as usize;
        self.trace.word(3 ^ ((from as u64) << 8));
        match to {
            LOOPBACK => {
                for slot in 0..self.slots.len() {
                    if self.slots[slot].host == from && self.slots[slot].node.is_some() {
                        self.beacon_to(slot, dgram);
                    }
                }
            }
            ALL => {
                let jitter = ns(self.net.beacon_jitter);
                let mut late = Vec::new();
                for slot in 0..self.slots.len() {
                    let h = self.slots[slot].host;
                    if h == from || self.slots[slot].node.is_none() {
                        continue;
                    }
                    if !self.hosts[from].link_up || !self.hosts[h].link_up || self.blocked(from, h)
                    {
                        self.counters.beacons_blocked += 1;
                        continue;
                    }
                    if self.rng.chance(self.net.beacon_loss) {
                        self.counters.beacons_lost += 1;
                        continue;
                    }
                    // Jitter: about half the copies arrive at the base latency, the rest
                    // in one later wave, so beacons may arrive reordered.
                    if jitter > 0 && self.rng.chance(0.5) {
                        late.push(slot as u32);
                        continue;
                    }
                    self.beacon_to(slot, dgram);
                    if self.rng.chance(self.net.beacon_dup) {
                        self.counters.beacons_duplicated += 1;
                        let extra =
                            ns(self.net.beacon_latency) + self.rng.below(jitter.max(MS) + 1);
                        let ev = Ev::Beacon {
                            dgram: dgram.clone(),
                            to: slot as u32,
                        };
                        self.schedule(self.now + extra, ev);
                    }
                }
                if !late.is_empty() {
                    let at = self.now + jitter / 2 + 1 + self.rng.below(jitter / 2 + 1);
                    let wave = Wave {
                        dgram: dgram.clone(),
                        to: late,
                    };
                    self.schedule(at, Ev::Wave(Box::new(wave)));
                }
            }
            // One delayed or duplicated copy.
            slot => {
                let slot = slot as usize;
                let h = self.slots[slot].host;
                if self.hosts[h].link_up && !self.blocked(from, h) {
                    self.beacon_to(slot, dgram);
                } else {
                    self.counters.beacons_blocked += 1;
                }
            }
        }
    }

    fn beacon_to(&mut self, slot: usize, dgram: &Datagram) {
        self.counters.beacons_delivered += 1;
        let local = self.local_now(slot);
        if let Some(n) = self.slots[slot].node.as_mut() {
            n.handle_beacon(local, dgram.src, &dgram.payload);
            self.drain(slot);
        }
    }

    fn publish(&mut self, slot: usize, msg: Message) {
        self.counters.published += 1;
        let frames = msg.encode();
        match Message::decode(&frames) {
            Ok(back) if back == msg => {}
            other => self.violate(
                slot,
                format!("published {msg:?}, which re-decodes as {other:?}"),
            ),
        }
        let topic = &frames[0];
        self.trace.word(4 ^ ((slot as u64) << 8));
        self.trace.bytes(topic);
        if let Message::Set { key, value } | Message::Answer { key, value, .. } = &msg {
            self.trace.bytes(key.as_bytes());
            self.trace.bytes(value);
            if !self.ever_set.get(key).is_some_and(|s| s.contains(value)) {
                self.violate(
                    slot,
                    format!("published {key:?} = {value:?}, which no node set"),
                );
            }
        }
        let msg = Rc::new(msg);
        let hwm = self.net.hwm;
        let my_host = self.slots[slot].host;
        // ZeroMQ prefix matching: the subscribers whose prefix is some head of the topic.
        self.publishes += 1;
        let mark = self.publishes;
        let p = &self.slots[slot];
        if p.stale > 16 && p.stale * 2 > p.subscribers.len() {
            self.compact(slot);
        }
        let mut matched = std::mem::take(&mut self.scratch);
        matched.clear();
        let p = &self.slots[slot];
        for &len in &p.prefix_lens {
            if len > topic.len() {
                break;
            }
            if let Some(list) = p.by_prefix.get(&topic[..len]) {
                matched.extend_from_slice(list);
            }
        }
        for &(c, gen) in &matched {
            if !self.subscribed(c, gen, slot) {
                continue;
            }
            let c = c as usize;
            if self.conns[c].mark == mark {
                continue;
            }
            self.conns[c].mark = mark;
            let sub = self.conns[c].sub;
            if self.conns[c].queue.len() >= hwm {
                self.counters.dropped_hwm += 1;
                continue;
            }
            let lat = self.latency();
            self.conns[c].queue.push_back((self.now + lat, msg.clone()));
            let sub_host = self.slots[sub].host;
            if !self.conns[c].armed && self.tcp_ok(my_host, sub_host) {
                self.arm(c as u32);
            }
        }
        self.scratch = matched;
    }

    fn latency(&mut self) -> u64 {
        ns(self.net.latency) + self.rng.below(ns(self.net.jitter) + 1)
    }

    fn arm(&mut self, c: u32) {
        let conn = &mut self.conns[c as usize];
        let Some(&(ready, _)) = conn.queue.front() else {
            return;
        };
        conn.armed = true;
        let gen = conn.gen;
        let at = ready.max(self.now);
        self.schedule(at, Ev::Deliver { conn: c, gen });
    }

    /// Re-arms every stalled pipe whose path works again.
    fn resume_pipes(&mut self) {
        for c in 0..self.conns.len() {
            let conn = &self.conns[c];
            if !conn.alive || conn.armed || conn.queue.is_empty() {
                continue;
            }
            if let State::Up { slot } = conn.state {
                if self.tcp_ok(self.slots[slot].host, self.slots[conn.sub].host) {
                    self.arm(c as u32);
                }
            }
        }
    }

    fn on_connect(&mut self, slot: usize, addr: SocketAddr) {
        self.trace.word(5 ^ ((slot as u64) << 8));
        self.trace.word(hash_addr(addr));
        let s = &self.slots[slot];
        let me = SocketAddr::new(self.hosts[s.host].ip, s.port);
        let own_ip = s.node.as_ref().and_then(Node::local_ip);
        if addr == me || own_ip.is_some_and(|ip| addr == SocketAddr::new(ip, s.port)) {
            self.violate(slot, format!("connects to itself at {addr}"));
        }
        if self.slots[slot].conns.contains_key(&addr) {
            self.violate(
                slot,
                format!("connects to {addr} twice without a disconnect"),
            );
            return;
        }
        let c = match self.free_conns.pop() {
            Some(c) => c,
            None => {
                self.conns.push(Conn {
                    alive: false,
                    gen: 0,
                    sub: 0,
                    endpoint: addr,
                    state: State::Connecting,
                    queue: VecDeque::new(),
                    armed: false,
                    subs: Rc::from(Vec::new()),
                    mark: 0,
                });
                (self.conns.len() - 1) as u32
            }
        };
        let conn = &mut self.conns[c as usize];
        conn.alive = true;
        conn.gen += 1;
        conn.sub = slot;
        conn.endpoint = addr;
        conn.state = State::Connecting;
        conn.queue.clear();
        conn.armed = false;
        conn.subs = self.slots[slot].subs.clone();
        let gen = conn.gen;
        self.slots[slot].conns.insert(addr, c);
        self.schedule(self.now, Ev::Attempt { conn: c, gen });
    }

    fn on_disconnect(&mut self, slot: usize, addr: SocketAddr) {
        self.trace.word(6 ^ ((slot as u64) << 8));
        match self.slots[slot].conns.remove(&addr) {
            Some(c) => self.destroy_conn(c),
            None => self.violate(slot, format!("disconnects from {addr}, never connected")),
        }
    }

    /// Whether the entry `(c, gen)` in `publisher`'s lists is current.
    fn subscribed(&self, c: u32, gen: u32, publisher: usize) -> bool {
        let conn = &self.conns[c as usize];
        conn.alive && conn.gen == gen && conn.state == State::Up { slot: publisher }
    }

    /// Marks the connection's entries stale; the caller moves it to a new generation.
    fn unsubscribe(&mut self, c: u32) {
        if let State::Up { slot } = self.conns[c as usize].state {
            self.slots[slot].stale += 1;
        }
    }

    /// Drops the stale entries from a publisher's lists, keeping the order.
    fn compact(&mut self, slot: usize) {
        let mut p = std::mem::take(&mut self.slots[slot].subscribers);
        p.retain(|&(c, g)| self.subscribed(c, g, slot));
        self.slots[slot].subscribers = p;
        let mut map = std::mem::take(&mut self.slots[slot].by_prefix);
        map.retain(|_, list| {
            list.retain(|&(c, g)| self.subscribed(c, g, slot));
            !list.is_empty()
        });
        self.slots[slot].by_prefix = map;
        self.slots[slot].stale = 0;
    }

    fn destroy_conn(&mut self, c: u32) {
        self.unsubscribe(c);
        let conn = &mut self.conns[c as usize];
        self.counters.dropped_pipe += conn.queue.len() as u64;
        conn.queue.clear();
        conn.alive = false;
        conn.armed = false;
        conn.gen += 1;
        self.free_conns.push(c);
    }

    /// The TCP connection under a pipe died: what it held is lost and ZeroMQ
    /// reconnects after its reconnect interval.
    fn break_conn(&mut self, c: u32) {
        self.unsubscribe(c);
        let conn = &mut self.conns[c as usize];
        self.counters.dropped_pipe += conn.queue.len() as u64;
        conn.queue.clear();
        conn.armed = false;
        conn.gen += 1;
        conn.state = State::Connecting;
        let gen = conn.gen;
        let at = self.now + ns(self.net.reconnect_interval);
        self.schedule(at, Ev::Attempt { conn: c, gen });
    }

    fn attempt(&mut self, c: u32, gen: u32) {
        let conn = &self.conns[c as usize];
        if !conn.alive || conn.gen != gen {
            return;
        }
        self.trace.word(7 ^ (u64::from(c) << 8));
        self.counters.connect_attempts += 1;
        let sub_host = self.slots[conn.sub].host;
        let endpoint = conn.endpoint;
        let retry = match self.ip_host.get(&endpoint.ip()) {
            Some(&h) if self.tcp_ok(sub_host, h) => match self.listeners.get(&endpoint) {
                Some(&slot) => {
                    let inc = self.slots[slot].inc;
                    self.conns[c as usize].state = State::Handshake { slot, inc };
                    let at = self.now + self.latency() + self.latency() + self.latency();
                    self.schedule(at, Ev::Handshake { conn: c, gen });
                    return;
                }
                // Refused: a RST comes back after a round trip.
                None => ns(self.net.reconnect_interval) + 2 * ns(self.net.latency),
            },
            _ => ns(self.net.syn_retry),
        };
        self.schedule(self.now + retry, Ev::Attempt { conn: c, gen });
    }

    fn handshake(&mut self, c: u32, gen: u32) {
        let conn = &self.conns[c as usize];
        if !conn.alive || conn.gen != gen {
            return;
        }
        self.trace.word(8 ^ (u64::from(c) << 8));
        let State::Handshake { slot, inc } = conn.state else {
            return;
        };
        let sub_host = self.slots[conn.sub].host;
        let p = &self.slots[slot];
        let still = p.inc == inc
            && p.node.is_some()
            && self.listeners.get(&conn.endpoint) == Some(&slot)
            && self.tcp_ok(sub_host, p.host);
        if still {
            self.counters.connects_established += 1;
            self.conns[c as usize].state = State::Up { slot };
            let p = &mut self.slots[slot];
            p.subscribers.push((c, gen));
            for prefix in self.conns[c as usize].subs.iter() {
                p.by_prefix
                    .entry(prefix.clone())
                    .or_default()
                    .push((c, gen));
                if let Err(at) = p.prefix_lens.binary_search(&prefix.len()) {
                    p.prefix_lens.insert(at, prefix.len());
                }
            }
        } else {
            self.conns[c as usize].state = State::Connecting;
            let at = self.now + ns(self.net.reconnect_interval);
            self.schedule(at, Ev::Attempt { conn: c, gen });
        }
    }

    fn deliver(&mut self, c: u32, gen: u32) {
        let conn = &mut self.conns[c as usize];
        if !conn.alive || conn.gen != gen {
            return;
        }
        conn.armed = false;
        let State::Up { slot: publisher } = conn.state else {
            return;
        };
        let sub = conn.sub;
        if !self.tcp_ok(self.slots[publisher].host, self.slots[sub].host) {
            return; // stalled until the path heals
        }
        let conn = &mut self.conns[c as usize];
        let Some((_, msg)) = conn.queue.pop_front() else {
            return;
        };
        self.trace.word(9 ^ (u64::from(c) << 8));
        self.counters.delivered += 1;
        if !self.conns[c as usize].queue.is_empty() {
            self.arm(c);
        }
        let local = self.local_now(sub);
        if let Some(n) = self.slots[sub].node.as_mut() {
            // Every node receives every `list_answer` through its `list` prefix. One
            // addressed to another node is counted and ignored whatever its keys (the
            // Node contract), so it is delivered without them: copying thousands of
            // keys to every node is most of the cost of a bootstrap otherwise.
            let copy = match &*msg {
                Message::ListAnswer { asker, .. } if *asker != n.id() => Message::ListAnswer {
                    asker: *asker,
                    keys: Vec::new(),
                },
                m => m.clone(),
            };
            n.handle_decoded(local, copy);
            self.drain(sub);
        }
    }
}

fn hash_addr(addr: SocketAddr) -> u64 {
    let ip = match addr.ip() {
        IpAddr::V4(v4) => u64::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6) as u64,
    };
    (ip << 16) ^ u64::from(addr.port())
}

/// Adds every counter of `s` to `total`. The pattern names every field with no
/// `..`, so a counter added to `Stats` fails to compile here instead of being
/// silently left out of the cluster totals.
fn add_stats(total: &mut Stats, s: &Stats) {
    macro_rules! add {
        ($($f:ident)*) => {{
            let Stats { $($f),* } = s;
            $( total.$f += *$f; )*
        }};
    }
    add!(in_set in_question in_answer in_list in_list_answer out_set out_question
        out_answer out_list out_list_answer beacons_out beacons_in beacons_own drop_empty
        drop_unknown_topic drop_bad_id drop_frame_count drop_key_not_utf8
        drop_answer_not_ours drop_list_answer_not_ours drop_not_beacon drop_beacon_bad_port
        drop_beacon_net_down peers_up peers_down net_up net_down gets_hit gets_answered
        gets_timed_out sets bootstraps_started bootstraps_done bootstrap_keys_listed
        bootstrap_keys_requested bootstrap_keys_received bootstrap_keys_unanswered);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> (Sim, usize, usize) {
        let mut sim = Sim::new(NetConfig::default(), Timings::default(), 1);
        let a = {
            let h = sim.add_host();
            sim.add_node(h, 0)
        };
        let b = {
            let h = sim.add_host();
            sim.add_node(h, 0)
        };
        sim.run_for(Duration::from_secs(5));
        (sim, a, b)
    }

    /// Feeds a node a message no transport delivered, as a buggy core might act.
    fn forge(sim: &mut Sim, slot: usize, msg: Message) {
        let local = sim.local_now(slot);
        sim.slots[slot]
            .node
            .as_mut()
            .unwrap()
            .handle_decoded(local, msg);
        sim.drain(slot);
    }

    /// Makes the node in `slot` store `k` = `forged`, a value no node ever set.
    fn forge_set(sim: &mut Sim, slot: usize) {
        let value = "forged".into();
        forge(
            sim,
            slot,
            Message::Set {
                key: "k".into(),
                value,
            },
        );
    }

    #[test]
    fn the_trace_hash_covers_the_values_not_only_the_keys() {
        // Two runs that differ only in an intermediate value, overwritten before the
        // end so that the final stores agree, are different runs.
        let run = |first: &'static str| {
            let (mut sim, a, b) = pair();
            sim.set(a, "k", first.into());
            sim.run_for(Duration::from_millis(50));
            sim.get(b, "k");
            sim.set(a, "k", "last".into());
            sim.run_for(Duration::from_millis(50));
            sim.hash_stores();
            assert!(sim.violations().is_empty(), "{:?}", sim.violations());
            sim.trace_hash()
        };
        assert_eq!(run("x"), run("x"));
        assert_ne!(run("x"), run("y"));
    }

    #[test]
    fn a_get_returning_a_value_nobody_set_is_a_violation() {
        let (mut sim, a, _) = pair();
        forge_set(&mut sim, a);
        assert!(sim.violations().is_empty());
        sim.get(a, "k");
        assert!(
            sim.violations()[0].what.contains("no node set"),
            "{:?}",
            sim.violations()
        );
    }

    #[test]
    fn publishing_a_value_nobody_set_is_a_violation() {
        let (mut sim, a, b) = pair();
        forge_set(&mut sim, a);
        sim.get(b, "k");
        sim.run_for(Duration::from_millis(50));
        assert!(sim
            .violations()
            .iter()
            .any(|v| v.slot == a && v.what.contains("published")));
    }

    #[test]
    fn a_stop_that_leaves_a_connect_undone_is_a_violation() {
        let (mut sim, a, _) = pair();
        // A connection the sim believes in but the core never asked for, so its
        // shutdown cannot undo it.
        let c = *sim.slots[a].conns.values().next().expect("a is connected");
        sim.slots[a].conns.insert("192.0.2.9:1".parse().unwrap(), c);
        sim.stop(a);
        assert!(sim
            .violations()
            .iter()
            .any(|v| v.slot == a && v.what.contains("never disconnected")));
    }

    #[test]
    fn connecting_to_its_own_endpoint_is_a_violation() {
        let (mut sim, a, _) = pair();
        let local = sim.local_now(a);
        let host_ip = sim.host_ip(sim.host_of(a));
        let port = sim.slots[a].port;
        let node = sim.slots[a].node.as_mut().unwrap();
        // A core that believed in the wrong local address would take its own beacon
        // for a peer's.
        node.handle_net_up(local, "192.0.2.1".parse().unwrap());
        node.handle_beacon(local, host_ip, format!("beacon {port}").as_bytes());
        sim.drain(a);
        assert!(sim.violations().iter().any(|v| v.what.contains("itself")));
    }

    #[test]
    fn skewed_clocks_are_monotonic_and_invert_exactly() {
        for ppm in [-50_000, -1, 0, 1, 999, 50_000] {
            let c = Clock { ppm };
            let mut last = 0;
            for t in (0..5_000_000_000u64).step_by(333_333_333) {
                let l = c.local(t);
                assert!(l >= last);
                last = l;
                let back = c.sim(l);
                assert!(c.local(back) >= l && back <= t);
            }
        }
    }
}
