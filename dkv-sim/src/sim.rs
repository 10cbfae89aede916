//! The simulated world: nodes (dkv cores or the prototype model) on the hosts of the
//! network model, under one virtual clock driven by the event queue. Every node
//! output goes through the oracle, then is carried out by the network.
//!
//! Each node sees its own clocks ([`Clock`]): a monotonic clock that may run fast or
//! slow, and a wall clock with an offset, read into the core at every timer.
//! Transports look for an address once per `detect_interval` while they have none
//! and report net up when they find one, as `dkv-mio` does; a beacon that cannot be
//! sent is net down.
//!
//! In a keyed world ([`Sim::set_keyed`]) every frame or datagram of the hostile
//! host (which has no key) that reaches a keyed node is checked to be refused: no
//! output and exactly one drop counter, unless it is a byte-for-byte replay of an
//! honest item that node never received (a late delivery of genuine data, allowed
//! and counted); a replay of one it did receive must be refused.

use crate::hostile::{Act, Attack, Hostile};
use crate::net::{
    ns, Arrival, ConnStatus, Net, NetConfig, NetCounters, NetEv, Origin, Payload, Shape,
};
use crate::node::{Clock, Core, SIM_UNIX_MS};
use crate::oracle::{Map, NodeView, Oracle, Violation, Whereabouts};
use crate::prototype::Prototype;
use crate::queue::{Queue, SimTime};
use crate::rng::Rng;
use crate::trace::TraceHash;
use bytes::Bytes;
use dkv_proto::seal::{Cluster, Keyring};
use dkv_proto::{
    Config, Entry, GetId, Limits, Message, Node, NodeId, Output, Stats, Timings, WallClock,
};
use std::collections::{BTreeMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Something that happens at a virtual time.
#[derive(Debug)]
enum Ev {
    /// A node's timer: call `handle_timeout` if it is still the armed one.
    Wake { slot: u32, inc: u32 },
    /// A node's transport looks for a local address.
    Detect { slot: u32, inc: u32 },
    /// The hostile host's next burst.
    Attack { slot: u32 },
    /// Something in the network.
    Net(NetEv),
}

impl From<NetEv> for Ev {
    fn from(ev: NetEv) -> Ev {
        Ev::Net(ev)
    }
}

#[derive(Debug)]
struct Slot {
    core: Option<Core>,
    prototype: bool,
    /// A durable node's disk: every change it applied, as a transport that
    /// acknowledges a write only once it is committed keeps it (hashed: written on
    /// every change, read back in key order only at a restart). `None`: in memory.
    disk: Option<Map<String, Entry>>,
    clock: Clock,
    inc: u32,
    wake: Option<SimTime>,
    done: BTreeMap<GetId, Option<Bytes>>,
    /// A dead prototype worker is reported once.
    reported_dead: bool,
    /// The slot is the hostile host's: never a node, never restarted.
    hostile: bool,
}

/// A whole simulated cluster: hosts, nodes and network, under virtual time.
///
/// Drive it with the `run_*` methods and act on it between runs (writes, gets,
/// faults). Everything is decided by the seed given to [`Sim::new`] and the calls
/// made on it, so the same calls give the same [`trace_hash`](Self::trace_hash).
#[derive(Debug)]
pub struct Sim {
    q: Queue<Ev>,
    net: Net,
    ids: Rng,
    timings: Timings,
    epoch: Instant,
    slots: Vec<Slot>,
    oracle: Oracle,
    trace: TraceHash,
    retired_stats: Stats,
    /// The limits the operator configured: dkv nodes run with them and the oracle
    /// checks their bounds.
    limits: Limits,
    /// The hostile host, if there is one, and its slot.
    hostile: Option<(usize, Hostile)>,
    /// Limits nodes run with instead, while the oracle still checks `limits`: only
    /// to show that a bound check can fail.
    node_limits: Option<Limits>,
    /// The keyed cluster every dkv node joins, if the run is keyed.
    keyed: Option<(Cluster, Keyring)>,
    /// The named (unkeyed) cluster every dkv node joins, if the run is named.
    named: Option<Cluster>,
    /// Slots whose nodes run without the keyed cluster's keys (misconfigured).
    keyless: Vec<usize>,
    /// In a keyed world with a hostile host: per slot, fingerprints of the honest
    /// sealed frames and hellos its current node received (a replay of one of
    /// these must be refused). Only looked up, never iterated.
    seen: Vec<HashSet<u64>>,
    /// What keyed nodes did with the hostile host's input.
    verdicts: HostileVerdicts,
    /// Node outputs drained so far.
    outputs: u64,
}

/// What keyed nodes did with the hostile host's frames and datagrams.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HostileVerdicts {
    /// Items a keyed node refused: no output, exactly one drop counter (or
    /// `beacons_own` for a replay of its own hello).
    pub refused: u64,
    /// Byte-for-byte replays of honest items the node had not received (its
    /// original was lost, or is still on its way), which it took as the genuine
    /// items they are.
    pub late_replays: u64,
}

impl Sim {
    /// Openings a keyed world's keyrings share: more than its items in flight.
    const SHARED_OPENINGS: usize = 4096;

    /// An empty world whose randomness (latencies, losses, ids, ports) comes from
    /// `seed`. dkv nodes get `timings`.
    pub fn new(net: NetConfig, timings: Timings, seed: u64) -> Sim {
        let mut root = Rng::new(seed);
        let net_rng = root.fork();
        Sim {
            q: Queue::default(),
            net: Net::new(net, net_rng, timings.peer_timeout),
            ids: root.fork(),
            timings,
            epoch: Instant::now(),
            slots: Vec::new(),
            oracle: Oracle::default(),
            trace: TraceHash::default(),
            retired_stats: Stats::default(),
            limits: Limits::default(),
            hostile: None,
            node_limits: None,
            keyed: None,
            keyless: Vec::new(),
            named: None,
            seen: Vec::new(),
            verdicts: HostileVerdicts::default(),
            outputs: 0,
        }
    }

    /// Hands the hostile host `keys` for `cluster` (say, a key file of another
    /// cluster, or an old one): its dkv/2 forgeries are sealed with them.
    pub fn give_hostile_keys_of(&mut self, cluster: Cluster, keys: Keyring) {
        if let Some((_, h)) = &mut self.hostile {
            self.trace.word(0x1EA4);
            h.steal_key(cluster, keys);
        }
    }

    /// Makes the world a named cluster without a key: every dkv node started from
    /// now on (call it before adding any) joins `cluster`: dkv-only, plain hellos,
    /// unauthenticated. The hostile host beacons a plain hello of it, so nodes
    /// subscribe to it and take its forgeries (allowed: nothing authenticates).
    pub fn set_named(&mut self, cluster: Cluster) {
        self.trace.bytes(cluster.name().as_bytes());
        self.named = Some(cluster);
    }

    /// What keyed nodes did with the hostile host's input so far.
    pub fn hostile_verdicts(&self) -> HostileVerdicts {
        self.verdicts
    }

    /// Starts a dkv node in the keyed world's cluster but without its keys (a
    /// node whose key file is missing): it takes unsealed input. Only to show that
    /// the keyed checks fail when a node in a keyed cluster is not keyed. It
    /// restarts keyless too.
    pub fn add_keyless_node(&mut self, host: usize, clock: Clock) -> usize {
        let slot = self.slots.len();
        self.keyless.push(slot);
        let added = self.add_node(host, clock);
        debug_assert_eq!(added, slot);
        added
    }

    /// Makes the world a keyed cluster: every dkv node started from now on (call it
    /// before adding any) joins `cluster` with `keys`, seals what it sends and
    /// refuses what is not sealed with one of them; the net carries sealed frames.
    /// The hostile host has no key (see [`give_hostile_key`](Self::give_hostile_key)),
    /// so the oracle then takes any entry it sent being applied as a violation.
    /// The nodes' keyrings share their openings (each broadcast is decrypted by
    /// its first receiver only; the rest compare bytes), which changes no run.
    pub fn set_keyed(&mut self, cluster: Cluster, keys: Keyring) {
        self.trace.word(0x5EA1);
        self.oracle.set_keyed();
        self.keyed = Some((cluster, keys.sharing_openings(Self::SHARED_OPENINGS)));
    }

    /// Whether dkv nodes run in a keyed cluster.
    pub fn is_keyed(&self) -> bool {
        self.keyed.is_some()
    }

    /// Hands the keyed cluster's key to the hostile host: its dkv/2 forgeries are
    /// sealed and accepted. Only to show that the keyed check fails then.
    pub fn give_hostile_key(&mut self) {
        if let (Some((cluster, keys)), Some((_, h))) = (&self.keyed, &mut self.hostile) {
            h.steal_key(cluster.clone(), keys.clone());
        }
    }

    /// The limits every dkv node started (or restarted) from now on runs with, and
    /// whose bounds the oracle checks: [`Limits::default`] unless changed here.
    pub fn limits_mut(&mut self) -> &mut Limits {
        &mut self.limits
    }

    /// The limits dkv nodes are configured with.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Makes dkv nodes started from now on run with `limits` while the oracle keeps
    /// checking the bounds of [`limits`](Self::limits): a node that ignores its
    /// configuration, to show that a bound check can fail. Not for real scenarios.
    pub fn run_nodes_with_limits(&mut self, limits: Limits) {
        self.node_limits = Some(limits);
    }

    // ---- world building ----

    /// Adds a host with a fresh address and its link up; returns its index.
    pub fn add_host(&mut self) -> usize {
        self.net.add_host()
    }

    /// Starts a dkv node on `host` with `clock`, keeping its data in memory only;
    /// returns its slot. The node gets a fresh id and port and finds its address at
    /// once.
    pub fn add_node(&mut self, host: usize, clock: Clock) -> usize {
        self.add_slot(host, clock, false, false)
    }

    /// Starts a durable dkv node: every change it applies is on its disk at once,
    /// and after a crash or a stop it restarts from it (with a new id and port).
    pub fn add_durable_node(&mut self, host: usize, clock: Clock) -> usize {
        self.add_slot(host, clock, false, true)
    }

    /// Starts a prototype node on `host`; returns its slot.
    pub fn add_prototype(&mut self, host: usize) -> usize {
        self.add_slot(host, Clock::default(), true, false)
    }

    fn add_slot(&mut self, host: usize, clock: Clock, prototype: bool, durable: bool) -> usize {
        let slot = self.net.add_station(host);
        self.slots.push(Slot {
            core: None,
            prototype,
            disk: durable.then(Map::default),
            clock,
            inc: 0,
            wake: None,
            done: BTreeMap::new(),
            reported_dead: false,
            hostile: false,
        });
        self.boot(slot);
        slot
    }

    /// Puts a hostile host on `host` that sends the `attacks` (see [`Attack`]),
    /// one burst every 250 ms (floods of up to 60; see
    /// [`hostile_pace`](Self::hostile_pace)), until [`calm_hostile`](Self::calm_hostile). It also
    /// beacons its own PUB endpoint, so honest nodes connect to it and hear it, and
    /// overhears honest messages to replay. Its writes are known to the oracle as
    /// forged: in the open cluster they are accepted by design, and every other
    /// check still holds. In a keyed cluster ([`set_keyed`](Self::set_keyed)) it has
    /// no key, nodes never subscribe to it, and it injects into honest publishers'
    /// streams; none of its entries may be applied. Returns its slot (which never
    /// runs a node). One at most.
    pub fn add_hostile(&mut self, host: usize, attacks: &[Attack]) -> usize {
        assert!(self.hostile.is_none(), "one hostile host per world");
        let slot = self.net.add_station(host);
        self.slots.push(Slot {
            core: None,
            prototype: false,
            disk: None,
            clock: Clock::default(),
            inc: 0,
            wake: None,
            done: BTreeMap::new(),
            reported_dead: false,
            hostile: true,
        });
        let id = NodeId(self.ids.next_u64().to_le_bytes());
        let port = self.net.fresh_port();
        let rng = self.ids.fork();
        self.net.boot(slot, port, Vec::new());
        let ip = self.net.host_ip(host);
        self.net.set_transport_ip(slot, Some(ip));
        self.trace
            .word(0xE71 ^ ((slot as u64) << 16) ^ u64::from(port));
        self.hostile = Some((slot, Hostile::new(rng, id, port, attacks.to_vec())));
        self.q
            .schedule(self.q.now, Ev::Attack { slot: slot as u32 });
        slot
    }

    /// Sets the hostile host's pace: one burst every `every`, floods of up to
    /// `flood` messages or datagrams.
    pub fn hostile_pace(&mut self, every: Duration, flood: u64) {
        if let Some((_, h)) = &mut self.hostile {
            self.trace.word(0xFACE ^ flood);
            h.every = every.max(Duration::from_micros(1));
            h.flood = flood.max(1);
        }
    }

    /// The hostile host stops sending (it stays on the LAN, silent).
    pub fn calm_hostile(&mut self) {
        if let Some((_, h)) = &mut self.hostile {
            self.trace.word(0xCA1);
            h.active = false;
        }
    }

    /// Messages and datagrams the hostile host sent so far.
    pub fn hostile_sent(&self) -> u64 {
        self.hostile.as_ref().map_or(0, |(_, h)| h.sent())
    }

    /// The hostile host's slot, if there is one.
    pub fn hostile_slot(&self) -> Option<usize> {
        self.hostile.as_ref().map(|(s, _)| *s)
    }

    fn attack(&mut self, slot: usize) {
        self.trace.word(0xA77 ^ ((slot as u64) << 8));
        let Some((_, h)) = self.hostile.as_mut() else {
            return;
        };
        if !h.active {
            return;
        }
        let wall = SIM_UNIX_MS + self.q.now / 1_000_000;
        let mut acts = h.tick(wall, self.limits.max_value_bytes);
        // Its own endpoint, once a second, so that honest nodes subscribe to it.
        if self.q.now % 1_000_000_000 < ns(h.every) {
            let ip = self.net.host_ip(self.net.host_of(slot));
            let payload = match (&self.named, ip) {
                (Some(cluster), std::net::IpAddr::V4(v4)) => {
                    dkv_proto::encode_plain_hello(cluster, h.id, h.port, v4)
                }
                _ => dkv_proto::encode_hello(h.port, h.id),
            };
            acts.push(Act::Beacon {
                src: ip,
                payload: Bytes::from(payload),
                replay: false,
            });
        }
        let next = self.q.now + ns(h.every);
        let own = self.net.host_ip(self.net.host_of(slot));
        // Keyed nodes never connect to it (its hello is not sealed), so in a keyed
        // cluster it injects into honest publishers' streams instead: an attacker
        // on the path, the strongest one the key must stop.
        let honest = if self.keyed.is_some() {
            self.live_dkv()
        } else {
            Vec::new()
        };
        for act in acts {
            match act {
                Act::Publish { frames, replay } => {
                    self.oracle.hostile_sent(&frames);
                    let topic = frames.first().cloned().unwrap_or_default();
                    self.trace.bytes(&topic);
                    let Some((_, h)) = self.hostile.as_mut() else {
                        break;
                    };
                    let frames = h.seal(frames, wall);
                    let from = if honest.is_empty() {
                        slot
                    } else {
                        honest[h.pick(honest.len())]
                    };
                    let payload = if honest.is_empty() {
                        Payload::Raw(frames)
                    } else {
                        Payload::Hostile(frames, origin(replay))
                    };
                    self.net.publish(from, payload, &topic, &mut self.q);
                }
                Act::Beacon {
                    src,
                    payload,
                    replay,
                } => {
                    let src = if src.is_unspecified() { own } else { src };
                    self.trace.bytes(&payload);
                    self.net
                        .broadcast_from(slot, src, payload, origin(replay), &mut self.q);
                }
            }
        }
        self.q.schedule(next, Ev::Attack { slot: slot as u32 });
    }

    /// Feeds the hostile host's `input` to the dkv node in `slot`. A keyed node
    /// must refuse it (no output, exactly one drop counter, or `beacons_own` for
    /// its own hello) unless it is a replay of an honest item the node never
    /// received; anything else is a violation.
    fn hostile_input(&mut self, slot: usize, origin: Origin, fp: u64, input: HostileInput) {
        let local = self.local_now(slot);
        let Some(Core::Dkv(n)) = self.slots[slot].core.as_mut() else {
            return;
        };
        let before = n.keyed().then(|| refusals(n));
        match input {
            HostileInput::Frames(frames) => n.handle_message(local, frames),
            HostileInput::Datagram(src, payload) => n.handle_beacon(local, src, payload),
        }
        let moved = before.map(|b| refusals(n) - b);
        let outputs = self.outputs;
        self.drain(slot);
        let Some(moved) = moved else { return };
        let outputs = self.outputs - outputs;
        let had = self.seen.get(slot).is_some_and(|s| s.contains(&fp));
        if moved == 1 && outputs == 0 {
            self.verdicts.refused += 1;
        } else if origin == Origin::Replay && !had {
            self.verdicts.late_replays += 1;
            self.saw(slot, fp);
        } else {
            let what = if origin == Origin::Replay {
                "a replay of an item it had already received"
            } else {
                "an item the hostile host made"
            };
            self.oracle.set_time(self.now());
            self.oracle.violate(
                slot,
                format!(
                    "keyed node took {what} from the hostile host ({moved} drop counters moved, {outputs} outputs)"
                ),
            );
        }
    }

    /// Whether the keyed checks follow honest items (a keyed world with a hostile
    /// host).
    fn tracking(&self) -> bool {
        self.keyed.is_some() && self.hostile.is_some()
    }

    /// The node in `slot` received the honest item `fp`.
    fn saw(&mut self, slot: usize, fp: u64) {
        if self.seen.len() <= slot {
            self.seen.resize_with(slot + 1, HashSet::new);
        }
        self.seen[slot].insert(fp);
    }

    fn boot(&mut self, slot: usize) {
        if let Some(seen) = self.seen.get_mut(slot) {
            seen.clear();
        }
        let id = NodeId(self.ids.next_u64().to_le_bytes());
        let port = self.net.fresh_port();
        let local = self.local_now(slot);
        let s = &self.slots[slot];
        let core = if s.prototype {
            Core::Prototype(Box::new(Prototype::new(id, port, self.timings.clone())))
        } else {
            let wall = WallClock {
                at: local,
                unix_ms: s.clock.wall_ms(self.q.now),
            };
            let mut config = Config::new(id, port, wall);
            config.seed = self.ids.next_u64();
            config.timings = self.timings.clone();
            config.limits = self.node_limits.as_ref().unwrap_or(&self.limits).clone();
            if let Some(cluster) = &self.named {
                config.cluster = cluster.clone();
            }
            if let Some((cluster, keys)) = &self.keyed {
                config.cluster = cluster.clone();
                config.keys = (!self.keyless.contains(&slot)).then(|| keys.clone());
            }
            let mut node = Node::new(config);
            let mut restored: Vec<_> = s.disk.iter().flatten().collect();
            restored.sort_unstable_by(|a, b| a.0.cmp(b.0));
            for (key, entry) in restored {
                node.restore(local, key, entry.clone());
            }
            Core::Dkv(Box::new(node))
        };
        self.net.boot(slot, port, core.subscriptions());
        self.oracle.set_time(self.now());
        self.oracle.boot(slot, id, !s.prototype);
        if !s.prototype {
            self.oracle.bound_peers(slot, &self.limits);
        }
        if let Some(disk) = &s.disk {
            self.trace.word(0xD15C ^ disk.len() as u64);
            self.oracle.restored(slot, disk);
        }
        let s = &mut self.slots[slot];
        s.core = Some(core);
        s.wake = None;
        s.reported_dead = false;
        self.trace
            .word(0xB007 ^ ((slot as u64) << 16) ^ u64::from(port));
        let inc = s.inc;
        self.q.schedule(
            self.q.now,
            Ev::Detect {
                slot: slot as u32,
                inc,
            },
        );
    }

    // ---- getters ----

    /// Virtual time since the epoch.
    pub fn now(&self) -> Duration {
        Duration::from_nanos(self.q.now)
    }

    /// The network's behaviour, which may be changed between runs.
    pub fn net_config(&mut self) -> &mut NetConfig {
        &mut self.net.config
    }

    /// The timings dkv nodes get.
    pub fn timings(&self) -> &Timings {
        &self.timings
    }

    /// The dkv node in `slot`, unless it is crashed, stopped or a prototype.
    pub fn node(&self, slot: usize) -> Option<&Node> {
        self.core(slot)?.dkv()
    }

    /// Whatever runs in `slot`, unless it is crashed or stopped.
    pub fn core(&self, slot: usize) -> Option<&Core> {
        self.slots.get(slot)?.core.as_ref()
    }

    /// The prototype in `slot`, if one runs there.
    pub fn prototype(&self, slot: usize) -> Option<&Prototype> {
        self.core(slot)?.prototype()
    }

    /// Number of slots ever created (crashed ones included).
    pub fn slots(&self) -> usize {
        self.slots.len()
    }

    /// Number of hosts.
    pub fn hosts(&self) -> usize {
        self.net.hosts()
    }

    /// Slots whose node is running, in slot order.
    pub fn live(&self) -> Vec<usize> {
        (0..self.slots.len())
            .filter(|&i| self.slots[i].core.is_some())
            .collect()
    }

    /// Slots whose dkv node is running, in slot order.
    pub fn live_dkv(&self) -> Vec<usize> {
        (0..self.slots.len())
            .filter(|&i| self.node(i).is_some())
            .collect()
    }

    /// Whether `slot`'s node keeps its data on a disk that survives it.
    pub fn is_durable(&self, slot: usize) -> bool {
        self.slots[slot].disk.is_some()
    }

    /// Whether `slot` runs (or ran) the prototype model.
    pub fn is_prototype(&self, slot: usize) -> bool {
        self.slots[slot].prototype
    }

    /// The host a slot's node runs on.
    pub fn host_of(&self, slot: usize) -> usize {
        self.net.host_of(slot)
    }

    /// A host's current address.
    pub fn host_ip(&self, host: usize) -> IpAddr {
        self.net.host_ip(host)
    }

    /// Whether a host's link is up.
    pub fn link_is_up(&self, host: usize) -> bool {
        self.net.link_is_up(host)
    }

    /// A slot's clocks.
    pub fn clock(&self, slot: usize) -> Clock {
        self.slots[slot].clock
    }

    /// The PUB endpoint a running node is reachable at: its host's address and port.
    pub fn endpoint(&self, slot: usize) -> Option<SocketAddr> {
        self.core(slot)?;
        Some(self.net.endpoint(slot))
    }

    /// The endpoints a node's SUB socket is connected (or connecting) to, as its
    /// `Connect` and `Disconnect` outputs left them.
    pub fn connected(&self, slot: usize) -> Vec<SocketAddr> {
        self.net.connected(slot)
    }

    /// The state of `slot`'s SUB connection to `endpoint`, if it asked for one.
    pub fn conn_status(&self, slot: usize, endpoint: SocketAddr) -> Option<ConnStatus> {
        self.net.conn_status(slot, endpoint)
    }

    /// The result of a finished get: `Some(value held)`; `None` while pending or
    /// unknown.
    pub fn get_result(&self, slot: usize, id: GetId) -> Option<&Option<Bytes>> {
        self.slots.get(slot)?.done.get(&id)
    }

    /// Violations found so far, in order.
    pub fn violations(&self) -> &[Violation] {
        self.oracle.violations()
    }

    /// Safety checks performed so far.
    pub fn checks(&self) -> u64 {
        self.oracle.checks()
    }

    /// The oracle's record of the entries `slot`'s node applied and still holds.
    pub fn held(&self, slot: usize) -> Option<&crate::oracle::Map<String, dkv_proto::Entry>> {
        self.oracle.held(slot)
    }

    /// What the network did so far.
    pub fn counters(&self) -> &NetCounters {
        &self.net.counters
    }

    /// Partitions in force.
    pub fn partitions(&self) -> usize {
        self.net.partitions()
    }

    /// The sum of every dkv node's counters, stopped nodes included.
    pub fn node_stats(&self) -> Stats {
        let mut total = self.retired_stats.clone();
        for s in &self.slots {
            if let Some(n) = s.core.as_ref().and_then(Core::dkv) {
                total.add(&n.stats());
            }
        }
        total
    }

    /// The hash of every event so far.
    pub fn trace_hash(&self) -> u64 {
        let mut t = self.trace;
        t.word(self.net.trace.value());
        t.value()
    }

    /// Folds every running dkv node's store into the trace, so that two runs whose
    /// stores differ hash differently.
    pub fn hash_stores(&mut self) {
        for s in &self.slots {
            if let Some(n) = s.core.as_ref().and_then(Core::dkv) {
                let mut entries: Vec<_> = n.entries().collect();
                entries.sort_by(|a, b| a.0.cmp(b.0));
                for (k, e) in entries {
                    self.trace.bytes(k.as_bytes());
                    self.trace.word(e.version.ts.0);
                    self.trace.bytes(e.value.as_deref().unwrap_or(b"\0deleted"));
                }
            }
        }
    }

    /// Records a violation found outside the simulator (e.g. a liveness check).
    pub fn report(&mut self, slot: usize, what: String) {
        self.oracle.set_time(self.now());
        self.oracle.violate(slot, what);
    }

    /// Gets started on `slot` and not completed.
    pub fn pending_gets(&self, slot: usize) -> usize {
        self.oracle.pending_gets(slot)
    }

    /// Whether every live dkv node holds the same entries (compared by summary).
    pub fn identical_dkv_stores(&self) -> bool {
        let mut summaries = self
            .live_dkv()
            .into_iter()
            .filter_map(|s| self.node(s).map(Node::summary));
        let Some(first) = summaries.next() else {
            return true;
        };
        summaries.all(|s| s == first)
    }

    // ---- liveness checks (the oracle's; each returns the checks that passed and
    // records a violation for each that failed) ----

    /// Every node has its host's address, sees exactly every other live node as a
    /// peer, and is connected to exactly those.
    pub fn check_peers(&mut self) -> u64 {
        self.oracle.set_time(self.now());
        self.oracle.check_peers(&views(&self.slots, &self.net))
    }

    /// Every live node (prototypes included) holds each of `keys` with its value.
    pub fn check_holds(&mut self, keys: &[(String, Bytes)]) -> u64 {
        self.oracle.set_time(self.now());
        self.oracle
            .check_holds(&views(&self.slots, &self.net), keys)
    }

    /// Every live dkv node holds identical entries, each the highest version it
    /// ever applied for its key.
    pub fn check_converged(&mut self) -> u64 {
        self.oracle.set_time(self.now());
        self.oracle.check_converged(&views(&self.slots, &self.net))
    }

    /// Every live dkv node holds at most its `max_store_keys` keys beyond those it
    /// wrote or restored itself.
    pub fn check_store_bounds(&mut self) -> u64 {
        self.oracle.set_time(self.now());
        self.oracle
            .check_store_bounds(&views(&self.slots, &self.net))
    }

    /// The dkv node in `slot` finished its bootstrap.
    pub fn check_caught_up(&mut self, slot: usize) -> u64 {
        self.oracle.set_time(self.now());
        let node = self.slots[slot].core.as_ref().and_then(Core::dkv);
        self.oracle.check_caught_up(slot, node)
    }

    // ---- workload ----

    /// `slot` sets `key = value`. Ignored if the node is not running.
    pub fn set(&mut self, slot: usize, key: &str, value: Bytes) {
        if self.slots[slot].core.is_none() {
            return;
        }
        self.trace.word(0x5E7 ^ (slot as u64));
        self.trace.bytes(key.as_bytes());
        self.trace.bytes(&value);
        self.oracle.wrote(slot, key, Some(&value));
        let local = self.local_now(slot);
        if let Some(core) = self.slots[slot].core.as_mut() {
            core.set(local, key.to_owned(), value);
        }
        self.drain(slot);
    }

    /// `slot` deletes `key`. Ignored unless a dkv node runs there.
    pub fn delete(&mut self, slot: usize, key: &str) {
        if self.node(slot).is_none() {
            return;
        }
        self.trace.word(0xDE1 ^ (slot as u64));
        self.trace.bytes(key.as_bytes());
        self.oracle.wrote(slot, key, None);
        let local = self.local_now(slot);
        if let Some(Core::Dkv(n)) = self.slots[slot].core.as_mut() {
            n.delete(local, key.to_owned());
        }
        self.drain(slot);
    }

    /// `slot` starts a get of `key` with the default timeout; `None` if the node is
    /// not running. The result appears in [`get_result`](Self::get_result).
    pub fn get(&mut self, slot: usize, key: &str) -> Option<GetId> {
        self.slots[slot].core.as_ref()?;
        self.trace.word(0x6E7 ^ (slot as u64));
        self.trace.bytes(key.as_bytes());
        let local = self.local_now(slot);
        let id = self.slots[slot]
            .core
            .as_mut()?
            .get(local, key.to_owned(), None);
        self.oracle.get_started(slot, id);
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
        self.net.partition(shape)
    }

    /// Removes one partition.
    pub fn heal(&mut self, id: u64) {
        self.net.heal(id, &mut self.q);
    }

    /// Removes every partition.
    pub fn heal_all(&mut self) {
        self.net.heal_all(&mut self.q);
    }

    /// Takes a host's link down: nothing gets in or out; TCP pipes stall.
    pub fn link_down(&mut self, host: usize) {
        self.net.link_down(host);
    }

    /// Brings a host's link back with the same address.
    pub fn link_up(&mut self, host: usize) {
        self.net.link_up(host, &mut self.q);
    }

    /// Gives a host a new address: every connection from or to it breaks, and its
    /// nodes notice when their next beacon fails.
    pub fn change_ip(&mut self, host: usize) {
        self.net.change_ip(host, &mut self.q);
    }

    /// `slot`'s node stops reading its SUB socket (a frozen process, or a peer that
    /// stops reading on purpose) while its timers and beacons go on: publishers
    /// keep up to their high-water mark for it and drop the rest, for it alone.
    pub fn stall(&mut self, slot: usize) {
        self.net.stall(slot);
    }

    /// `slot`'s node reads again: what its pipes held arrives, in order.
    pub fn resume(&mut self, slot: usize) {
        self.net.resume(slot, &mut self.q);
    }

    /// Whether `slot`'s node is stalled (see [`stall`](Self::stall)).
    pub fn is_stalled(&self, slot: usize) -> bool {
        self.net.is_stalled(slot)
    }

    /// Sets a slot's clocks (a restarted or re-synchronised machine).
    pub fn set_clock(&mut self, slot: usize, clock: Clock) {
        self.trace
            .word(0xC10C ^ slot as u64 ^ clock.offset_ms as u64);
        self.slots[slot].clock = clock;
    }

    /// Kills a node without a goodbye: its connections die and its memory is lost
    /// (a durable node's disk is not).
    pub fn crash(&mut self, slot: usize) {
        if self.slots[slot].core.is_none() {
            return;
        }
        self.trace.word(0xC4A5 ^ slot as u64);
        self.oracle.crashed(slot);
        self.retire(slot);
    }

    /// Stops a node gracefully (`shutdown`), checking that it disconnects from
    /// every endpoint it connected to and completes every get, then removes it.
    pub fn stop(&mut self, slot: usize) {
        if self.slots[slot].core.is_none() {
            return;
        }
        self.trace.word(0x5709 ^ slot as u64);
        let local = self.local_now(slot);
        if let Some(core) = self.slots[slot].core.as_mut() {
            core.shutdown(local);
        }
        self.drain(slot);
        self.oracle.set_time(self.now());
        self.oracle.stopped(slot);
        self.retire(slot);
    }

    /// Starts a crashed or stopped node again with a new id and port: from its
    /// disk if it is durable, else empty.
    pub fn restart(&mut self, slot: usize) {
        if self.slots[slot].core.is_some() || self.slots[slot].hostile {
            return;
        }
        self.trace.word(0x4E57 ^ slot as u64);
        self.boot(slot);
    }

    fn retire(&mut self, slot: usize) {
        let Some(core) = self.slots[slot].core.take() else {
            return;
        };
        if let Some(n) = core.dkv() {
            self.retired_stats.add(&n.stats());
        }
        let s = &mut self.slots[slot];
        s.inc += 1;
        s.wake = None;
        self.net.retire(slot, &mut self.q);
    }

    // ---- running ----

    /// Processes every event due up to `until` (virtual time since the epoch), then
    /// sets the clock to `until`. Stops early at a new violation, so a core that
    /// would spin a transport cannot hang the simulation.
    pub fn run_until(&mut self, until: Duration) {
        let until = ns(until);
        let known = self.violations().len();
        while let Some((at, ev)) = self.q.pop_until(until) {
            self.process(at, ev);
            if self.violations().len() > known {
                return;
            }
        }
        self.q.now = self.q.now.max(until);
    }

    /// Runs for `d` of virtual time.
    pub fn run_for(&mut self, d: Duration) {
        self.run_until(self.now() + d);
    }

    /// Runs until `done` holds (checked after every event) or `limit` of virtual
    /// time passes; returns whether `done` held. Stops early at a new violation.
    pub fn run_until_true(&mut self, limit: Duration, mut done: impl FnMut(&Sim) -> bool) -> bool {
        let until = self.q.now + ns(limit);
        let known = self.violations().len();
        loop {
            if done(self) {
                return true;
            }
            let Some((at, ev)) = self.q.pop_until(until) else {
                break;
            };
            self.process(at, ev);
            if self.violations().len() > known {
                return done(self);
            }
        }
        self.q.now = self.q.now.max(until);
        done(self)
    }

    fn local_now(&self, slot: usize) -> Instant {
        self.epoch + Duration::from_nanos(self.slots[slot].clock.local(self.q.now))
    }

    fn process(&mut self, at: SimTime, ev: Ev) {
        self.net.counters.events += 1;
        self.trace.word(at);
        match ev {
            Ev::Wake { slot, inc } => {
                let slot = slot as usize;
                self.trace.word(1 ^ ((slot as u64) << 8));
                let s = &mut self.slots[slot];
                if s.inc != inc || s.wake != Some(at) {
                    return;
                }
                s.wake = None;
                let wall = s.clock.wall_ms(at);
                let local = self.local_now(slot);
                match self.slots[slot].core.as_mut() {
                    Some(Core::Dkv(n)) => {
                        n.handle_wall_clock(local, wall);
                        n.handle_timeout(local);
                    }
                    Some(core) => core.handle_timeout(local),
                    None => {}
                }
                let next = self.slots[slot].core.as_ref().and_then(Core::poll_timeout);
                self.oracle.set_time(self.now());
                self.oracle.timer_fired(slot, local, next);
                self.drain(slot);
            }
            Ev::Detect { slot, inc } => self.detect(slot as usize, inc),
            Ev::Attack { slot } => self.attack(slot as usize),
            Ev::Net(ev) => match self.net.handle(ev, &mut self.q) {
                Arrival::Datagrams(dgram, slots) => {
                    let fp = self
                        .tracking()
                        .then(|| fingerprint(std::slice::from_ref(&dgram.payload)));
                    for slot in slots {
                        let hostile = dgram.origin != Origin::Honest && self.node(slot).is_some();
                        if let (Some(fp), true) = (fp, hostile) {
                            let input = HostileInput::Datagram(dgram.src, &dgram.payload);
                            self.hostile_input(slot, dgram.origin, fp, input);
                            continue;
                        }
                        let local = self.local_now(slot);
                        if let Some(core) = self.slots[slot].core.as_mut() {
                            let before = fp.and_then(|_| core.dkv().map(refusals));
                            core.handle_beacon(local, dgram.src, &dgram.payload);
                            // Only what the node took: one it refused (net down,
                            // before its start) it may take later.
                            if let (Some(fp), Some(b)) = (fp, before) {
                                if core.dkv().map(refusals) == Some(b) {
                                    self.saw(slot, fp);
                                }
                            }
                            self.drain(slot);
                        }
                    }
                }
                Arrival::Message(sub, payload) => self.deliver(sub, payload),
                Arrival::None => {}
            },
        }
        self.report_subscriptions();
    }

    /// Tells each dkv node the directed subscriptions to it that came or went, as
    /// dkv-mio's XPUB socket does (what the nodes do then may change more).
    fn report_subscriptions(&mut self) {
        loop {
            let changes = self.net.take_subscription_changes();
            if changes.is_empty() {
                return;
            }
            for (slot, inc, id, up) in changes {
                if self.net.incarnation(slot) != inc {
                    continue;
                }
                self.trace
                    .word(0x5AB ^ ((slot as u64) << 8) ^ (u64::from(up) << 7));
                self.trace.bytes(&id.0);
                let local = self.local_now(slot);
                let Some(Core::Dkv(n)) = self.slots[slot].core.as_mut() else {
                    continue;
                };
                if up {
                    n.handle_subscribed(local, id);
                } else {
                    n.handle_unsubscribed(local, id);
                }
                self.drain(slot);
            }
        }
    }

    /// The transport of `slot` looks for an address.
    fn detect(&mut self, slot: usize, inc: u32) {
        self.trace.word(2 ^ ((slot as u64) << 8));
        let s = &self.slots[slot];
        if s.inc != inc || s.core.is_none() {
            return;
        }
        let host = self.net.host_of(slot);
        if !self.net.link_is_up(host) {
            let at = self.q.now + ns(self.net.config.detect_interval);
            self.q.schedule(
                at,
                Ev::Detect {
                    slot: slot as u32,
                    inc,
                },
            );
            return;
        }
        let ip = self.net.host_ip(host);
        if self.net.transport_ip(slot) != Some(ip) {
            self.net.set_transport_ip(slot, Some(ip));
            let local = self.local_now(slot);
            if let Some(core) = self.slots[slot].core.as_mut() {
                core.handle_net_up(local, ip);
            }
            self.drain(slot);
        }
    }

    fn deliver(&mut self, sub: usize, payload: Payload) {
        let local = self.local_now(sub);
        let Some(core) = self.slots[sub].core.as_mut() else {
            return;
        };
        let msg = match payload {
            Payload::Msg(msg) => msg,
            Payload::Hostile(frames, origin) => {
                if core.dkv().is_some() {
                    let fp = fingerprint(&frames);
                    self.hostile_input(sub, origin, fp, HostileInput::Frames(&frames));
                }
                return;
            }
            Payload::Raw(frames) => {
                // Sealed frames, or hostile input: decoded by the receiver under its
                // own limits.
                match core {
                    Core::Dkv(n) => {
                        let before = self.keyed.is_some() && self.hostile.is_some();
                        let before = before.then(|| refusals(n));
                        n.handle_message(local, &frames);
                        // Only what the node took (see the datagrams).
                        if before.is_some_and(|b| refusals(n) == b) {
                            self.saw(sub, fingerprint(&frames));
                        }
                    }
                    Core::Prototype(p) => {
                        if let Ok(m) = Message::decode(&frames) {
                            p.handle_decoded(local, m);
                        }
                    }
                }
                self.after_delivery(sub);
                return;
            }
        };
        // A `list_answer` for another node is counted and ignored whatever its keys
        // (the contract), so it is delivered without them: copying thousands of keys
        // to every node is most of the cost of a bootstrap otherwise. The last copy
        // delivered (the only one of a message to one peer) is the message itself.
        let copy = match &*msg {
            Message::ListAnswer { asker, .. } if *asker != core.id() => Message::ListAnswer {
                asker: *asker,
                keys: Vec::new(),
            },
            _ => Rc::try_unwrap(msg).unwrap_or_else(|shared| (*shared).clone()),
        };
        core.handle_decoded(local, copy);
        self.after_delivery(sub);
    }

    fn after_delivery(&mut self, sub: usize) {
        self.drain(sub);
        let dead = self
            .prototype(sub)
            .and_then(Prototype::dead)
            .map(str::to_owned);
        if let Some(why) = dead {
            if !self.slots[sub].reported_dead {
                self.slots[sub].reported_dead = true;
                self.oracle.set_time(self.now());
                self.oracle.prototype_died(sub, &why);
            }
        }
    }

    /// Carries out every output the node in `slot` has queued, checking each, then
    /// re-arms its timer.
    fn drain(&mut self, slot: usize) {
        self.oracle.set_time(self.now());
        loop {
            let Some(out) = self.slots[slot].core.as_mut().and_then(Core::poll_output) else {
                break;
            };
            let at = Whereabouts {
                endpoint: self.net.endpoint(slot),
                local_ip: self.slots[slot].core.as_ref().and_then(Core::local_ip),
            };
            self.oracle.output(slot, at, &out);
            self.outputs += 1;
            match out {
                Output::Beacon(payload) => self.send_beacon(slot, payload),
                Output::Publish(msg) => {
                    let topic = msg.topic();
                    self.trace.word(4 ^ ((slot as u64) << 8));
                    self.trace.bytes(&topic);
                    if let Some((_, h)) = &mut self.hostile {
                        // It hears one message in eight (a sniffer that keeps up
                        // with part of the LAN); decoded and encoded are the same.
                        if h.active && self.q.now % 8 == slot as u64 % 8 {
                            h.overhear(msg.encode(), &msg, self.net.endpoint(slot).ip());
                        }
                    }
                    self.net
                        .publish_dkv(slot, Payload::Msg(Rc::new(msg)), &topic, &mut self.q);
                }
                // A keyed core refuses decoded input: the net carries the sealed
                // frames to `Node::handle_message`, as a socket would.
                Output::PublishSealed(dkv_proto::Sealed { frames, msg }) => {
                    let topic = frames[0].clone();
                    self.trace.word(4 ^ ((slot as u64) << 8));
                    self.trace.bytes(&topic);
                    let frames: Rc<[Bytes]> = Rc::from(frames.to_vec());
                    if let Some((_, h)) = &mut self.hostile {
                        // It keeps the sealed frames to replay or corrupt; the
                        // plaintext only tells it ids and key names, which it could
                        // guess (ids are in every header).
                        if h.active && self.q.now % 8 == slot as u64 % 8 {
                            h.overhear(frames.to_vec(), &msg, self.net.endpoint(slot).ip());
                        }
                    }
                    self.net
                        .publish_dkv(slot, Payload::Raw(frames), &topic, &mut self.q);
                }
                Output::Connect(addr) => {
                    self.net.connect(slot, addr, &mut self.q);
                }
                Output::Disconnect(addr) => {
                    self.net.disconnect(slot, addr);
                }
                Output::GetDone(done) => {
                    self.trace.word(0x6D ^ (done.id.0 << 8));
                    match &done.value {
                        Some(v) => self.trace.bytes(v),
                        None => self.trace.word(0x404),
                    }
                    self.slots[slot].done.insert(done.id, done.value);
                }
                Output::Applied(a) => {
                    self.trace.word(0xA9 ^ a.entry.version.ts.0);
                    self.trace.bytes(a.key.as_bytes());
                    if let Some(disk) = &mut self.slots[slot].disk {
                        disk.insert(a.key, a.entry);
                    }
                }
                Output::Collected(key) => {
                    self.trace.bytes(key.as_bytes());
                    if let Some(disk) = &mut self.slots[slot].disk {
                        disk.remove(&key);
                    }
                }
            }
        }
        self.rearm(slot);
    }

    fn rearm(&mut self, slot: usize) {
        let s = &self.slots[slot];
        let Some(deadline) = s.core.as_ref().and_then(Core::poll_timeout) else {
            return;
        };
        let local = u64::try_from(deadline.saturating_duration_since(self.epoch).as_nanos())
            .unwrap_or(u64::MAX);
        let at = s.clock.sim(local).max(self.q.now);
        if s.wake.is_none_or(|w| at < w) {
            let inc = s.inc;
            self.slots[slot].wake = Some(at);
            self.q.schedule(
                at,
                Ev::Wake {
                    slot: slot as u32,
                    inc,
                },
            );
        }
    }

    fn send_beacon(&mut self, slot: usize, payload: Bytes) {
        if let (Some((_, h)), Some(_)) = (&mut self.hostile, &self.keyed) {
            // Sealed hellos are worth replaying (from the sender's address too).
            if h.active && self.net.link_is_up(self.net.host_of(slot)) {
                h.overhear_hello(self.net.host_ip(self.net.host_of(slot)), payload.clone());
            }
        }
        if self.net.broadcast(slot, payload, &mut self.q) {
            return;
        }
        if self.net.transport_ip(slot).is_none() {
            return;
        }
        self.net.set_transport_ip(slot, None);
        let local = self.local_now(slot);
        if let Some(core) = self.slots[slot].core.as_mut() {
            core.handle_net_down(local);
        }
        let inc = self.slots[slot].inc;
        let at = self.q.now + 1 + self.ids.below(ns(self.net.config.detect_interval));
        self.q.schedule(
            at,
            Ev::Detect {
                slot: slot as u32,
                inc,
            },
        );
    }
}

/// Inputs the node refused so far: every drop counter, and its own hellos heard.
fn refusals(n: &Node) -> u64 {
    let st = n.stats();
    st.dropped() + st.beacons_own
}

fn origin(replay: bool) -> Origin {
    if replay {
        Origin::Replay
    } else {
        Origin::Invented
    }
}

/// The hostile host's input to one node.
enum HostileInput<'a> {
    Frames(&'a [Bytes]),
    Datagram(std::net::IpAddr, &'a [u8]),
}

/// Identifies a sealed item (its topic and header, or a whole hello): sealed
/// items never repeat, so equal fingerprints are one item.
fn fingerprint(frames: &[Bytes]) -> u64 {
    let mut t = TraceHash::default();
    for f in frames {
        t.bytes(&f[..f.len().min(64)]);
    }
    t.value()
}

/// What the liveness checks see of every running node.
fn views<'a>(slots: &'a [Slot], net: &Net) -> Vec<NodeView<'a>> {
    slots
        .iter()
        .enumerate()
        .filter_map(|(slot, s)| {
            Some(NodeView {
                slot,
                core: s.core.as_ref()?,
                endpoint: net.endpoint(slot),
                host_ip: net.host_ip(net.host_of(slot)),
                connected: net.connected(slot),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> (Sim, usize, usize) {
        let mut sim = Sim::new(NetConfig::default(), Timings::default(), 1);
        let a = {
            let h = sim.add_host();
            sim.add_node(h, Clock::default())
        };
        let b = {
            let h = sim.add_host();
            sim.add_node(h, Clock::default())
        };
        sim.run_for(Duration::from_secs(5));
        (sim, a, b)
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
    fn a_forged_entry_fed_to_a_core_is_caught_when_it_is_applied() {
        let (mut sim, a, _) = pair();
        let local = sim.local_now(a);
        let forged = Message::Dkv(dkv_proto::wire::Envelope {
            to: None,
            from: NodeId(*b"stranger"),
            body: dkv_proto::wire::Body::Put {
                echo: false,
                records: vec![dkv_proto::wire::Record {
                    key: "k".into(),
                    entry: dkv_proto::Entry {
                        version: dkv_proto::Version {
                            ts: dkv_proto::Timestamp::from_millis(crate::node::SIM_UNIX_MS + 4_000),
                            node: NodeId(*b"stranger"),
                        },
                        value: Some("forged".into()),
                    },
                }],
            },
        });
        if let Some(Core::Dkv(n)) = sim.slots[a].core.as_mut() {
            n.handle_decoded(local, forged);
        }
        sim.drain(a);
        assert!(
            sim.violations()[0].what.contains("nobody wrote"),
            "{:?}",
            sim.violations()
        );
    }

    #[test]
    fn a_stop_that_leaves_a_connect_undone_is_a_violation() {
        let (mut sim, a, _) = pair();
        // A connect the core's shutdown knows nothing of, so it cannot undo it.
        sim.oracle.output(
            a,
            Whereabouts {
                endpoint: sim.net.endpoint(a),
                local_ip: None,
            },
            &Output::Connect("192.0.2.9:1".parse().unwrap()),
        );
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
        let port = sim.net.endpoint(a).port();
        if let Some(Core::Dkv(node)) = sim.slots[a].core.as_mut() {
            // A core that believed in the wrong local address would take its own
            // beacon for a peer's.
            node.handle_net_up(local, "192.0.2.1".parse().unwrap());
            node.handle_beacon(local, host_ip, format!("beacon {port}").as_bytes());
        }
        sim.drain(a);
        assert!(sim.violations().iter().any(|v| v.what.contains("itself")));
    }
}
