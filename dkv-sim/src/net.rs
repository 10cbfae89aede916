//! The simulated network: hosts with links and addresses, UDP broadcast of beacons,
//! and ZeroMQ PUB/SUB connections over TCP, under partitions and link faults. It
//! knows nodes only as stations (a host, a PUB port, SUB subscriptions); the world
//! (`sim.rs`) hands what it delivers to the nodes.
//!
//! What is modelled, and how faithfully:
//! - **Beacons (UDP broadcast).** Sent from the host's current address to every host
//!   the path reaches, with their own latency and jitter; each copy may be lost or
//!   duplicated (a duplicate arrives later, so beacons may also be reordered). Nodes
//!   hear their own beacons, as on Linux. A beacon sent while the link is down or
//!   after the address changed fails.
//! - **PUB/SUB over TCP.** A connect needs a round trip and a half (SYN, SYN-ACK,
//!   ACK plus subscriptions) before the publisher sends it anything: what is
//!   published before that is lost to this subscriber (the slow joiner). Unreachable
//!   hosts are retried every `syn_retry`, refused ports every `reconnect_interval`.
//!   Each connection is a FIFO pipe: never reordered or duplicated. The publisher
//!   filters by the subscriber's prefix subscriptions and drops a message for a
//!   subscriber whose pipe already holds `hwm` messages. A connection whose path is
//!   cut stalls and resumes in order when the path heals; one whose endpoint
//!   vanishes (crash, address change) breaks, loses what it held and reconnects.
//!   There is no bandwidth limit.
//! - **Held messages.** As dkv-mio does, a node's message for a dkv peer whose
//!   directed topic (`dkv2.to <id>`) no subscriber has yet is held, not lost, and
//!   published when that subscription comes up, in order. A message held longer
//!   than the hold limit (a peer timeout) or past the byte cap is dropped, and so is
//!   what a stopping node still holds. Broadcast topics are never held: a slow
//!   joiner misses those. [`NetConfig::hold`] off models a transport that does not
//!   hold.
//! - **A stalled subscriber** (a frozen process, or a peer that stops reading on
//!   purpose) keeps its connections up but takes nothing: each of its pipes fills to
//!   the high-water mark and then drops, for that subscriber only, as a ZeroMQ PUB
//!   socket without `XPUB_NODROP` does; when it reads again the pipes deliver what
//!   they held, in order. [`NetConfig::nodrop`] models `XPUB_NODROP` instead.
//! - **Faults.** Partitions of any shape, symmetric or one-way; links down and up;
//!   address changes.

use crate::queue::{Queue, SimTime};
use crate::rng::Rng;
use crate::trace::TraceHash;
use bytes::Bytes;
use dkv_proto::wire::v2::TOPIC_TO;
use dkv_proto::{Message, NodeId};
use std::collections::{BTreeMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::rc::Rc;
use std::time::Duration;

const MS: u64 = 1_000_000;

pub(crate) fn ns(d: Duration) -> u64 {
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
    /// ZeroMQ's `XPUB_NODROP`: a publisher with any matching pipe full refuses the
    /// whole message, so one stalled subscriber stops replication to every other.
    /// dkv does not set it; a scenario does, to show the stall checks can fail.
    pub nodrop: bool,
    /// dkv-mio's hold: a message for a dkv peer not subscribed yet waits for its
    /// subscription. dkv sets it; a scenario clears it to show what it is for.
    pub hold: bool,
    /// The most bytes of messages a node holds (dkv-mio's `held_bytes`): past it
    /// the oldest are dropped.
    pub held_bytes: usize,
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
            nodrop: false,
            hold: true,
            held_bytes: 32 << 20,
        }
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
    /// Messages a publisher refused to every subscriber because one pipe was full
    /// (only with [`NetConfig::nodrop`]).
    pub blocked_nodrop: u64,
    /// Messages held for a dkv peer not subscribed yet.
    pub held: u64,
    /// Held messages dropped: too old, past the byte cap, or their node stopped.
    pub held_dropped: u64,
    /// Connection attempts.
    pub connect_attempts: u64,
    /// Connections established.
    pub connects_established: u64,
}

impl NetCounters {
    /// Every message or beacon copy that did not arrive.
    pub fn dropped(&self) -> u64 {
        self.beacons_lost
            + self.beacons_blocked
            + self.dropped_hwm
            + self.dropped_pipe
            + self.blocked_nodrop
            + self.held_dropped
    }
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
    /// The stations on this host, in slot order.
    stations: Vec<usize>,
}

/// The network side of one node slot: its host, PUB port, SUB subscriptions and
/// connections.
#[derive(Debug)]
struct Station {
    host: usize,
    /// Bumped whenever the node stops, so stale handshakes are recognised.
    inc: u32,
    up: bool,
    port: u16,
    subs: Rc<[Bytes]>,
    /// The address the node's transport believes it has.
    transport_ip: Option<IpAddr>,
    /// The node stopped reading its SUB socket: its pipes fill up to the
    /// publishers' high-water mark and deliver nothing until it resumes.
    stalled: bool,
    /// SUB side: the endpoints the node asked to connect to, and their connections.
    conns: BTreeMap<SocketAddr, u32>,
    /// PUB side: established connections, in the order they came up. Entries are
    /// `(connection, generation)`; one whose connection moved on to another
    /// generation is stale and skipped (removal is lazy, so a disconnect is O(1)
    /// even with a thousand subscribers).
    subscribers: Vec<(u32, u32)>,
    /// Stale entries in `subscribers` (and in each `by_prefix` list).
    stale: usize,
    /// PUB side: the same connections by subscription prefix. Only looked up,
    /// never iterated, so its hash order cannot leak into the run.
    by_prefix: rustc_hash::FxHashMap<Bytes, Vec<(u32, u32)>>,
    /// The distinct lengths of the prefixes in `by_prefix`, ascending.
    prefix_lens: Vec<usize>,
    /// PUB side: messages held for dkv peers not subscribed yet, oldest first.
    held: VecDeque<Held>,
    /// Their bytes.
    held_bytes: usize,
}

/// A message held for a dkv peer not subscribed yet: its directed topic, when it
/// was published, and its size.
#[derive(Debug)]
struct Held {
    topic: Bytes,
    at: SimTime,
    msg: Payload,
    bytes: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Connecting,
    Handshake { slot: usize, inc: u32 },
    Up { slot: usize },
}

/// What a pipe carries: a message an honest node published (decoded, so that
/// nodes skip the decode, which the oracle checks separately), or the raw frames a
/// hostile host sent, which the receiver decodes under its limits.
#[derive(Clone, Debug)]
pub(crate) enum Payload {
    /// An honest message, decoded (the open cluster).
    Msg(Rc<Message>),
    /// Frames decoded by the receiver: an honest keyed node's sealed frames, or
    /// the hostile host's outside a keyed cluster.
    Raw(Rc<[Bytes]>),
    /// The hostile host's frames in a keyed cluster, with who made them (for the
    /// keyed checks).
    Hostile(Rc<[Bytes]>, Origin),
}

#[derive(Debug)]
struct Conn {
    alive: bool,
    gen: u32,
    sub: usize,
    endpoint: SocketAddr,
    state: State,
    queue: VecDeque<(SimTime, Payload)>,
    armed: bool,
    subs: Rc<[Bytes]>,
    /// The last publish that matched this connection (to match it once only).
    mark: u64,
}

/// A beacon datagram in flight.
#[derive(Debug)]
pub(crate) struct Datagram {
    host: u32,
    pub(crate) src: IpAddr,
    pub(crate) payload: Bytes,
    /// Who made it, for the keyed checks.
    pub(crate) origin: Origin,
}

/// Who made a datagram or frames: an honest node, or the hostile host (a
/// byte-for-byte replay of an honest one, or its own making).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Origin {
    /// An honest node sent it.
    Honest,
    /// The hostile host made or altered it.
    Invented,
    /// The hostile host replays an honest node's bytes unchanged.
    Replay,
}

/// A network event.
#[derive(Debug)]
pub(crate) enum NetEv {
    /// Beacon copies arriving: to one slot, to every other host ([`ALL`]) or to the
    /// sender's own host over loopback ([`LOOPBACK`]).
    Beacon {
        dgram: Rc<Datagram>,
        to: u32,
    },
    /// The later-arriving copies of one broadcast, to these slots.
    Wave {
        dgram: Rc<Datagram>,
        to: Vec<u32>,
    },
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

/// What the network hands the world after an event.
#[derive(Debug)]
pub(crate) enum Arrival {
    /// Beacon copies for these slots.
    Datagrams(Rc<Datagram>, Vec<usize>),
    /// A message for a subscriber slot.
    Message(usize, Payload),
    /// Nothing for any node.
    None,
}

/// Hosts, links, partitions, stations and connections.
#[derive(Debug)]
pub(crate) struct Net {
    pub(crate) config: NetConfig,
    rng: Rng,
    hosts: Vec<Host>,
    ip_host: BTreeMap<IpAddr, usize>,
    stations: Vec<Station>,
    listeners: BTreeMap<SocketAddr, usize>,
    conns: Vec<Conn>,
    free_conns: Vec<u32>,
    cuts: BTreeMap<u64, Cut>,
    next_cut: u64,
    next_ip: u32,
    next_port: u32,
    pub(crate) counters: NetCounters,
    pub(crate) trace: TraceHash,
    publishes: u64,
    scratch: Vec<(u32, u32)>,
    /// How long a message may be held (dkv-mio: the nodes' peer timeout).
    hold_limit: u64,
    /// Directed subscriptions that came up (true) or went (false) since the world
    /// last took them: the publisher's slot and incarnation, the subscriber's id.
    /// As an XPUB socket reports them: the first subscriber of a topic, the last.
    subscription_changes: Vec<(usize, u32, NodeId, bool)>,
}

impl Net {
    pub(crate) fn new(config: NetConfig, rng: Rng, hold_limit: Duration) -> Net {
        Net {
            config,
            rng,
            hosts: Vec::new(),
            ip_host: BTreeMap::new(),
            stations: Vec::new(),
            listeners: BTreeMap::new(),
            conns: Vec::new(),
            free_conns: Vec::new(),
            cuts: BTreeMap::new(),
            next_cut: 0,
            next_ip: 0,
            next_port: 0,
            counters: NetCounters::default(),
            trace: TraceHash::default(),
            publishes: 0,
            scratch: Vec::new(),
            hold_limit: ns(hold_limit),
            subscription_changes: Vec::new(),
        }
    }

    // ---- world building ----

    pub(crate) fn add_host(&mut self) -> usize {
        let ip = self.fresh_ip();
        self.hosts.push(Host {
            ip,
            link_up: true,
            stations: Vec::new(),
        });
        let h = self.hosts.len() - 1;
        self.ip_host.insert(ip, h);
        h
    }

    pub(crate) fn add_station(&mut self, host: usize) -> usize {
        self.stations.push(Station {
            host,
            inc: 0,
            up: false,
            port: 0,
            subs: Rc::from(Vec::new()),
            transport_ip: None,
            stalled: false,
            conns: BTreeMap::new(),
            subscribers: Vec::new(),
            stale: 0,
            by_prefix: Default::default(),
            prefix_lens: Vec::new(),
            held: VecDeque::new(),
            held_bytes: 0,
        });
        let slot = self.stations.len() - 1;
        self.hosts[host].stations.push(slot);
        slot
    }

    fn fresh_ip(&mut self) -> IpAddr {
        self.next_ip += 1;
        let n = self.next_ip;
        IpAddr::V4(Ipv4Addr::new(10, (n >> 16) as u8, (n >> 8) as u8, n as u8))
    }

    /// A PUB port no running station uses.
    pub(crate) fn fresh_port(&mut self) -> u16 {
        loop {
            let port = 20_000 + (self.next_port % 45_000) as u16;
            self.next_port += 1;
            if !self.stations.iter().any(|s| s.up && s.port == port) {
                return port;
            }
        }
    }

    /// The station starts listening on `port` with SUB subscriptions `subs`.
    pub(crate) fn boot(&mut self, slot: usize, port: u16, subs: Vec<Bytes>) {
        let s = &mut self.stations[slot];
        s.up = true;
        s.port = port;
        s.subs = Rc::from(subs);
        s.transport_ip = None;
        let ip = self.hosts[s.host].ip;
        self.listeners.insert(SocketAddr::new(ip, port), slot);
    }

    /// The station's node stopped: its endpoint vanishes, its SUB connections go
    /// and the connections of its subscribers break.
    pub(crate) fn retire<E: From<NetEv>>(&mut self, slot: usize, q: &mut Queue<E>) {
        let ip = self.hosts[self.stations[slot].host].ip;
        let port = self.stations[slot].port;
        if self.listeners.get(&SocketAddr::new(ip, port)) == Some(&slot) {
            self.listeners.remove(&SocketAddr::new(ip, port));
        }
        let s = &mut self.stations[slot];
        s.up = false;
        s.inc += 1;
        s.transport_ip = None;
        s.stalled = false;
        let own: Vec<u32> = std::mem::take(&mut s.conns).into_values().collect();
        let subs = std::mem::take(&mut s.subscribers);
        for c in own {
            self.destroy_conn(c);
        }
        for (c, gen) in subs {
            if self.subscribed(c, gen, slot) {
                self.break_conn(c, q);
            }
        }
        let s = &mut self.stations[slot];
        s.by_prefix.clear();
        s.stale = 0;
        self.counters.held_dropped += s.held.len() as u64;
        s.held.clear();
        s.held_bytes = 0;
    }

    // ---- getters ----

    pub(crate) fn hosts(&self) -> usize {
        self.hosts.len()
    }

    pub(crate) fn host_of(&self, slot: usize) -> usize {
        self.stations[slot].host
    }

    pub(crate) fn host_ip(&self, host: usize) -> IpAddr {
        self.hosts[host].ip
    }

    pub(crate) fn link_is_up(&self, host: usize) -> bool {
        self.hosts[host].link_up
    }

    pub(crate) fn endpoint(&self, slot: usize) -> SocketAddr {
        let s = &self.stations[slot];
        SocketAddr::new(self.hosts[s.host].ip, s.port)
    }

    pub(crate) fn transport_ip(&self, slot: usize) -> Option<IpAddr> {
        self.stations[slot].transport_ip
    }

    pub(crate) fn set_transport_ip(&mut self, slot: usize, ip: Option<IpAddr>) {
        self.stations[slot].transport_ip = ip;
    }

    pub(crate) fn connected(&self, slot: usize) -> Vec<SocketAddr> {
        self.stations[slot].conns.keys().copied().collect()
    }

    pub(crate) fn conn_status(&self, slot: usize, endpoint: SocketAddr) -> Option<ConnStatus> {
        let &c = self.stations.get(slot)?.conns.get(&endpoint)?;
        Some(match self.conns[c as usize].state {
            State::Connecting => ConnStatus::Connecting,
            State::Handshake { .. } => ConnStatus::Handshake,
            State::Up { .. } => ConnStatus::Up,
        })
    }

    pub(crate) fn partitions(&self) -> usize {
        self.cuts.len()
    }

    /// How many times the station's node stopped: a report made before then is
    /// stale.
    pub(crate) fn incarnation(&self, slot: usize) -> u32 {
        self.stations[slot].inc
    }

    pub(crate) fn is_stalled(&self, slot: usize) -> bool {
        self.stations[slot].stalled
    }

    // ---- faults ----

    /// `slot`'s node stops reading its SUB socket (a frozen process, or a peer that
    /// stops on purpose): its pipes keep what they hold and drop at the high-water
    /// mark, for it alone.
    pub(crate) fn stall(&mut self, slot: usize) {
        self.trace.word(0x57A1 ^ ((slot as u64) << 16));
        self.stations[slot].stalled = true;
    }

    /// `slot`'s node reads again: its pipes deliver what they held, in order.
    pub(crate) fn resume<E: From<NetEv>>(&mut self, slot: usize, q: &mut Queue<E>) {
        self.trace.word(0x4E5A ^ ((slot as u64) << 16));
        if std::mem::take(&mut self.stations[slot].stalled) {
            self.resume_pipes(q);
        }
    }

    pub(crate) fn partition(&mut self, shape: &Shape) -> u64 {
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

    pub(crate) fn heal<E: From<NetEv>>(&mut self, id: u64, q: &mut Queue<E>) {
        if self.cuts.remove(&id).is_some() {
            self.trace.word(0x4EA1 ^ id);
            self.resume_pipes(q);
        }
    }

    pub(crate) fn heal_all<E: From<NetEv>>(&mut self, q: &mut Queue<E>) {
        let ids: Vec<u64> = self.cuts.keys().copied().collect();
        for id in ids {
            self.heal(id, q);
        }
    }

    pub(crate) fn link_down(&mut self, host: usize) {
        self.trace.word(0x11D0 ^ host as u64);
        self.hosts[host].link_up = false;
    }

    pub(crate) fn link_up<E: From<NetEv>>(&mut self, host: usize, q: &mut Queue<E>) {
        self.trace.word(0x11A0 ^ host as u64);
        if !self.hosts[host].link_up {
            self.hosts[host].link_up = true;
            self.resume_pipes(q);
        }
    }

    /// Gives a host a new address: every connection from or to it breaks.
    pub(crate) fn change_ip<E: From<NetEv>>(&mut self, host: usize, q: &mut Queue<E>) {
        let old = self.hosts[host].ip;
        let new = self.fresh_ip();
        self.trace.word(0x1BC ^ host as u64);
        self.hosts[host].ip = new;
        self.ip_host.remove(&old);
        self.ip_host.insert(new, host);
        for slot in 0..self.stations.len() {
            let s = &self.stations[slot];
            if s.host == host && s.up {
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
                State::Up { slot } | State::Handshake { slot, .. } => {
                    self.stations[slot].host == host
                }
                State::Connecting => false,
            };
            if pub_here || self.stations[conn.sub].host == host {
                self.break_conn(c as u32, q);
            }
        }
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

    // ---- beacons ----

    /// Broadcasts `payload` from `slot`'s host. False if the send fails: the link is
    /// down or the transport's address is no longer the host's.
    pub(crate) fn broadcast<E: From<NetEv>>(
        &mut self,
        slot: usize,
        payload: Bytes,
        q: &mut Queue<E>,
    ) -> bool {
        let s = &self.stations[slot];
        let host = &self.hosts[s.host];
        if !host.link_up || s.transport_ip != Some(host.ip) {
            self.counters.beacon_send_failures += 1;
            self.trace.word(0xBEF ^ ((slot as u64) << 8));
            return false;
        }
        let src = host.ip;
        self.broadcast_from(slot, src, payload, Origin::Honest, q)
    }

    /// Broadcasts `payload` from `slot`'s host with any source address (a spoofer:
    /// UDP does not check it). False if the host's link is down.
    pub(crate) fn broadcast_from<E: From<NetEv>>(
        &mut self,
        slot: usize,
        src: IpAddr,
        payload: Bytes,
        origin: Origin,
        q: &mut Queue<E>,
    ) -> bool {
        let s = &self.stations[slot];
        if !self.hosts[s.host].link_up {
            self.counters.beacon_send_failures += 1;
            return false;
        }
        let dgram = Rc::new(Datagram {
            host: s.host as u32,
            src,
            payload,
            origin,
        });
        self.counters.beacons_sent += 1;
        // Own-host copies arrive over loopback at once; the rest after the LAN latency.
        let ev = NetEv::Beacon {
            dgram: dgram.clone(),
            to: LOOPBACK,
        };
        q.schedule(q.now + 20_000, ev);
        let at = q.now + ns(self.config.beacon_latency);
        q.schedule(at, NetEv::Beacon { dgram, to: ALL });
        true
    }

    /// Which slots a beacon event reaches (duplicates and late copies are scheduled).
    fn beacon_arrival<E: From<NetEv>>(
        &mut self,
        dgram: &Rc<Datagram>,
        to: u32,
        q: &mut Queue<E>,
    ) -> Vec<usize> {
        let from = dgram.host as usize;
        self.trace.word(3 ^ ((from as u64) << 8));
        let mut reached = Vec::new();
        match to {
            LOOPBACK => {
                let here = &self.hosts[from].stations;
                reached.extend(here.iter().filter(|&&slot| self.stations[slot].up));
            }
            ALL => {
                let jitter = ns(self.config.beacon_jitter);
                let mut late = Vec::new();
                for slot in 0..self.stations.len() {
                    let h = self.stations[slot].host;
                    if h == from || !self.stations[slot].up {
                        continue;
                    }
                    if !self.hosts[from].link_up || !self.hosts[h].link_up || self.blocked(from, h)
                    {
                        self.counters.beacons_blocked += 1;
                        continue;
                    }
                    if self.rng.chance(self.config.beacon_loss) {
                        self.counters.beacons_lost += 1;
                        continue;
                    }
                    // Jitter: about half the copies arrive at the base latency, the rest
                    // in one later wave, so beacons may arrive reordered.
                    if jitter > 0 && self.rng.chance(0.5) {
                        late.push(slot as u32);
                        continue;
                    }
                    reached.push(slot);
                    if self.rng.chance(self.config.beacon_dup) {
                        self.counters.beacons_duplicated += 1;
                        let extra =
                            ns(self.config.beacon_latency) + self.rng.below(jitter.max(MS) + 1);
                        let ev = NetEv::Beacon {
                            dgram: dgram.clone(),
                            to: slot as u32,
                        };
                        q.schedule(q.now + extra, ev);
                    }
                }
                if !late.is_empty() {
                    let at = q.now + jitter / 2 + 1 + self.rng.below(jitter / 2 + 1);
                    let wave = NetEv::Wave {
                        dgram: dgram.clone(),
                        to: late,
                    };
                    q.schedule(at, wave);
                }
            }
            // One delayed or duplicated copy.
            slot => {
                let slot = slot as usize;
                let h = self.stations[slot].host;
                if self.hosts[h].link_up && !self.blocked(from, h) {
                    reached.push(slot);
                } else {
                    self.counters.beacons_blocked += 1;
                }
            }
        }
        self.counters.beacons_delivered += reached.len() as u64;
        reached
    }

    // ---- PUB/SUB ----

    /// `msg` published by a dkv node's transport: held if it is for a dkv peer not
    /// subscribed yet (module docs), else as [`publish`](Self::publish).
    pub(crate) fn publish_dkv<E: From<NetEv>>(
        &mut self,
        slot: usize,
        msg: Payload,
        topic: &[u8],
        q: &mut Queue<E>,
    ) {
        if self.config.hold && directed_id(topic).is_some() && !self.has_subscriber(slot, topic) {
            self.counters.published += 1;
            self.hold(slot, msg, topic, q.now);
        } else {
            self.publish(slot, msg, topic, q);
        }
    }

    /// Whether a live connection to `slot` subscribed to exactly `topic`.
    fn has_subscriber(&self, slot: usize, topic: &[u8]) -> bool {
        self.stations[slot]
            .by_prefix
            .get(topic)
            .is_some_and(|list| list.iter().any(|&(c, gen)| self.subscribed(c, gen, slot)))
    }

    /// Holds `msg` for `topic`'s subscriber, dropping held messages past the hold
    /// limit or the byte cap, oldest first.
    fn hold(&mut self, slot: usize, msg: Payload, topic: &[u8], now: SimTime) {
        self.counters.held += 1;
        self.trace.word(0x401D ^ ((slot as u64) << 8));
        let bytes = match &msg {
            Payload::Msg(m) => m.encode().iter().map(Bytes::len).sum(),
            Payload::Raw(frames) | Payload::Hostile(frames, _) => {
                frames.iter().map(Bytes::len).sum()
            }
        };
        let (limit, cap) = (self.hold_limit, self.config.held_bytes);
        let s = &mut self.stations[slot];
        s.held_bytes += bytes;
        s.held.push_back(Held {
            topic: Bytes::copy_from_slice(topic),
            at: now,
            msg,
            bytes,
        });
        while s.held_bytes > cap || s.held.front().is_some_and(|h| now - h.at > limit) {
            let Some(old) = s.held.pop_front() else {
                break;
            };
            s.held_bytes -= old.bytes;
            self.counters.held_dropped += 1;
        }
    }

    /// `topic`'s subscriber came up at `slot`: what was held for it is published,
    /// in order; what waited longer than the hold limit is dropped.
    fn release<E: From<NetEv>>(&mut self, slot: usize, topic: &[u8], q: &mut Queue<E>) {
        let s = &mut self.stations[slot];
        if !s.held.iter().any(|h| h.topic == topic) {
            return;
        }
        let mut mine = Vec::new();
        for h in std::mem::take(&mut s.held) {
            if h.topic == topic {
                s.held_bytes -= h.bytes;
                mine.push(h);
            } else {
                s.held.push_back(h);
            }
        }
        for h in mine {
            if q.now - h.at > self.hold_limit {
                self.counters.held_dropped += 1;
            } else {
                self.trace.word(0x4E1E ^ ((slot as u64) << 8));
                self.enqueue(slot, h.msg, topic, q);
            }
        }
    }

    /// `msg` published by `slot`: queued on every matching subscriber's pipe.
    pub(crate) fn publish<E: From<NetEv>>(
        &mut self,
        slot: usize,
        msg: Payload,
        topic: &[u8],
        q: &mut Queue<E>,
    ) {
        self.counters.published += 1;
        self.enqueue(slot, msg, topic, q);
    }

    /// Queues `msg` on every pipe of `slot` whose subscription matches `topic`.
    fn enqueue<E: From<NetEv>>(
        &mut self,
        slot: usize,
        msg: Payload,
        topic: &[u8],
        q: &mut Queue<E>,
    ) {
        let hwm = self.config.hwm;
        let my_host = self.stations[slot].host;
        // ZeroMQ prefix matching: the subscribers whose prefix is some head of the topic.
        self.publishes += 1;
        let mark = self.publishes;
        let p = &self.stations[slot];
        if p.stale > 16 && p.stale * 2 > p.subscribers.len() {
            self.compact(slot);
        }
        let mut matched = std::mem::take(&mut self.scratch);
        matched.clear();
        let p = &self.stations[slot];
        for &len in &p.prefix_lens {
            if len > topic.len() {
                break;
            }
            if let Some(list) = p.by_prefix.get(&topic[..len]) {
                matched.extend_from_slice(list);
            }
        }
        if self.config.nodrop
            && matched.iter().any(|&(c, gen)| {
                self.subscribed(c, gen, slot) && self.conns[c as usize].queue.len() >= hwm
            })
        {
            self.counters.blocked_nodrop += 1;
            self.scratch = matched;
            return;
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
            self.conns[c].queue.push_back((q.now + lat, msg.clone()));
            let sub_host = self.stations[sub].host;
            let reading = !self.stations[sub].stalled;
            if !self.conns[c].armed && reading && self.tcp_ok(my_host, sub_host) {
                self.arm(c as u32, q);
            }
        }
        self.scratch = matched;
    }

    fn latency(&mut self) -> u64 {
        ns(self.config.latency) + self.rng.below(ns(self.config.jitter) + 1)
    }

    fn arm<E: From<NetEv>>(&mut self, c: u32, q: &mut Queue<E>) {
        let conn = &mut self.conns[c as usize];
        let Some(&(ready, _)) = conn.queue.front() else {
            return;
        };
        conn.armed = true;
        let gen = conn.gen;
        let at = ready.max(q.now);
        q.schedule(at, NetEv::Deliver { conn: c, gen });
    }

    /// Re-arms every stalled pipe whose path works again.
    fn resume_pipes<E: From<NetEv>>(&mut self, q: &mut Queue<E>) {
        for c in 0..self.conns.len() {
            let conn = &self.conns[c];
            if !conn.alive || conn.armed || conn.queue.is_empty() || self.stations[conn.sub].stalled
            {
                continue;
            }
            if let State::Up { slot } = conn.state {
                if self.tcp_ok(self.stations[slot].host, self.stations[conn.sub].host) {
                    self.arm(c as u32, q);
                }
            }
        }
    }

    /// `slot`'s SUB socket connects to `addr`. False if it already is (the caller's
    /// checker reports that); nothing changes then.
    pub(crate) fn connect<E: From<NetEv>>(
        &mut self,
        slot: usize,
        addr: SocketAddr,
        q: &mut Queue<E>,
    ) -> bool {
        self.trace.word(5 ^ ((slot as u64) << 8));
        self.trace.word(hash_addr(addr));
        if self.stations[slot].conns.contains_key(&addr) {
            return false;
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
        conn.subs = self.stations[slot].subs.clone();
        let gen = conn.gen;
        self.stations[slot].conns.insert(addr, c);
        q.schedule(q.now, NetEv::Attempt { conn: c, gen });
        true
    }

    /// `slot`'s SUB socket disconnects from `addr`. False if it was not connected.
    pub(crate) fn disconnect(&mut self, slot: usize, addr: SocketAddr) -> bool {
        self.trace.word(6 ^ ((slot as u64) << 8));
        match self.stations[slot].conns.remove(&addr) {
            Some(c) => {
                self.destroy_conn(c);
                true
            }
            None => false,
        }
    }

    /// Whether the entry `(c, gen)` in `publisher`'s lists is current.
    fn subscribed(&self, c: u32, gen: u32, publisher: usize) -> bool {
        let conn = &self.conns[c as usize];
        conn.alive && conn.gen == gen && conn.state == State::Up { slot: publisher }
    }

    /// Marks the connection's entries stale; the caller moves it to a new
    /// generation, then reports it with [`unsubscribed`](Self::unsubscribed).
    /// Returns the publisher it was subscribed to.
    fn unsubscribe(&mut self, c: u32) -> Option<usize> {
        let State::Up { slot } = self.conns[c as usize].state else {
            return None;
        };
        self.stations[slot].stale += 1;
        Some(slot)
    }

    /// Reports the directed topics of `c`, gone from a running `publisher`.
    fn unsubscribed(&mut self, c: u32, publisher: Option<usize>) {
        if let Some(slot) = publisher.filter(|&slot| self.stations[slot].up) {
            self.report_directed(slot, c, false);
        }
    }

    /// Reports each directed topic of `c` coming (`up`) to or going from `slot`
    /// that no other connection there subscribes to, as an XPUB socket does.
    fn report_directed(&mut self, slot: usize, c: u32, up: bool) {
        let subs = self.conns[c as usize].subs.clone();
        for topic in subs.iter() {
            if let Some(id) = directed_id(topic) {
                if !self.has_subscriber(slot, topic) {
                    let inc = self.stations[slot].inc;
                    self.subscription_changes.push((slot, inc, id, up));
                }
            }
        }
    }

    /// Takes the subscription changes since the last call, oldest first.
    pub(crate) fn take_subscription_changes(&mut self) -> Vec<(usize, u32, NodeId, bool)> {
        std::mem::take(&mut self.subscription_changes)
    }

    /// Drops the stale entries from a publisher's lists, keeping the order.
    fn compact(&mut self, slot: usize) {
        let mut p = std::mem::take(&mut self.stations[slot].subscribers);
        p.retain(|&(c, g)| self.subscribed(c, g, slot));
        self.stations[slot].subscribers = p;
        let mut map = std::mem::take(&mut self.stations[slot].by_prefix);
        map.retain(|_, list| {
            list.retain(|&(c, g)| self.subscribed(c, g, slot));
            !list.is_empty()
        });
        self.stations[slot].by_prefix = map;
        self.stations[slot].stale = 0;
    }

    fn destroy_conn(&mut self, c: u32) {
        let publisher = self.unsubscribe(c);
        let conn = &mut self.conns[c as usize];
        self.counters.dropped_pipe += conn.queue.len() as u64;
        conn.queue.clear();
        conn.alive = false;
        conn.armed = false;
        conn.gen += 1;
        self.unsubscribed(c, publisher);
        self.free_conns.push(c);
    }

    /// The TCP connection under a pipe died: what it held is lost and ZeroMQ
    /// reconnects after its reconnect interval.
    fn break_conn<E: From<NetEv>>(&mut self, c: u32, q: &mut Queue<E>) {
        let publisher = self.unsubscribe(c);
        let conn = &mut self.conns[c as usize];
        self.counters.dropped_pipe += conn.queue.len() as u64;
        conn.queue.clear();
        conn.armed = false;
        conn.gen += 1;
        conn.state = State::Connecting;
        let gen = conn.gen;
        self.unsubscribed(c, publisher);
        let at = q.now + ns(self.config.reconnect_interval);
        q.schedule(at, NetEv::Attempt { conn: c, gen });
    }

    fn attempt<E: From<NetEv>>(&mut self, c: u32, gen: u32, q: &mut Queue<E>) {
        let conn = &self.conns[c as usize];
        if !conn.alive || conn.gen != gen {
            return;
        }
        self.trace.word(7 ^ (u64::from(c) << 8));
        self.counters.connect_attempts += 1;
        let sub_host = self.stations[conn.sub].host;
        let endpoint = conn.endpoint;
        let retry = match self.ip_host.get(&endpoint.ip()) {
            Some(&h) if self.tcp_ok(sub_host, h) => match self.listeners.get(&endpoint) {
                Some(&slot) => {
                    let inc = self.stations[slot].inc;
                    self.conns[c as usize].state = State::Handshake { slot, inc };
                    let at = q.now + self.latency() + self.latency() + self.latency();
                    q.schedule(at, NetEv::Handshake { conn: c, gen });
                    return;
                }
                // Refused: a RST comes back after a round trip.
                None => ns(self.config.reconnect_interval) + 2 * ns(self.config.latency),
            },
            _ => ns(self.config.syn_retry),
        };
        q.schedule(q.now + retry, NetEv::Attempt { conn: c, gen });
    }

    fn handshake<E: From<NetEv>>(&mut self, c: u32, gen: u32, q: &mut Queue<E>) {
        let conn = &self.conns[c as usize];
        if !conn.alive || conn.gen != gen {
            return;
        }
        self.trace.word(8 ^ (u64::from(c) << 8));
        let State::Handshake { slot, inc } = conn.state else {
            return;
        };
        let sub_host = self.stations[conn.sub].host;
        let p = &self.stations[slot];
        let still = p.inc == inc
            && p.up
            && self.listeners.get(&conn.endpoint) == Some(&slot)
            && self.tcp_ok(sub_host, p.host);
        if still {
            self.counters.connects_established += 1;
            self.report_directed(slot, c, true);
            self.conns[c as usize].state = State::Up { slot };
            let p = &mut self.stations[slot];
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
            if !self.stations[slot].held.is_empty() {
                let subs = self.conns[c as usize].subs.clone();
                for topic in subs.iter().filter(|t| directed_id(t).is_some()) {
                    self.release(slot, topic, q);
                }
            }
        } else {
            self.conns[c as usize].state = State::Connecting;
            let at = q.now + ns(self.config.reconnect_interval);
            q.schedule(at, NetEv::Attempt { conn: c, gen });
        }
    }

    fn deliver<E: From<NetEv>>(
        &mut self,
        c: u32,
        gen: u32,
        q: &mut Queue<E>,
    ) -> Option<(usize, Payload)> {
        let conn = &mut self.conns[c as usize];
        if !conn.alive || conn.gen != gen {
            return None;
        }
        conn.armed = false;
        let State::Up { slot: publisher } = conn.state else {
            return None;
        };
        let sub = conn.sub;
        if !self.tcp_ok(self.stations[publisher].host, self.stations[sub].host)
            || self.stations[sub].stalled
        {
            return None; // stalled until the path heals or the subscriber reads
        }
        let conn = &mut self.conns[c as usize];
        let (_, msg) = conn.queue.pop_front()?;
        self.trace.word(9 ^ (u64::from(c) << 8));
        self.counters.delivered += 1;
        if !self.conns[c as usize].queue.is_empty() {
            self.arm(c, q);
        }
        Some((sub, msg))
    }

    /// Carries out a network event; returns what arrives at nodes.
    pub(crate) fn handle<E: From<NetEv>>(&mut self, ev: NetEv, q: &mut Queue<E>) -> Arrival {
        match ev {
            NetEv::Beacon { dgram, to } => {
                let slots = self.beacon_arrival(&dgram, to, q);
                Arrival::Datagrams(dgram, slots)
            }
            NetEv::Wave { dgram, to } => {
                self.trace.word(10 ^ (u64::from(dgram.host) << 8));
                let mut slots = Vec::new();
                for slot in to {
                    slots.extend(self.beacon_arrival(&dgram, slot, q));
                }
                Arrival::Datagrams(dgram, slots)
            }
            NetEv::Attempt { conn, gen } => {
                self.attempt(conn, gen, q);
                Arrival::None
            }
            NetEv::Handshake { conn, gen } => {
                self.handshake(conn, gen, q);
                Arrival::None
            }
            NetEv::Deliver { conn, gen } => match self.deliver(conn, gen, q) {
                Some((sub, msg)) => Arrival::Message(sub, msg),
                None => Arrival::None,
            },
        }
    }
}

/// The subscriber's id in a directed topic (`dkv2.to <id>`).
fn directed_id(topic: &[u8]) -> Option<NodeId> {
    let id = topic.strip_prefix(TOPIC_TO)?;
    Some(NodeId(id.try_into().ok()?))
}

pub(crate) fn hash_addr(addr: SocketAddr) -> u64 {
    let ip = match addr.ip() {
        IpAddr::V4(v4) => u64::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6) as u64,
    };
    (ip << 16) ^ u64::from(addr.port())
}
