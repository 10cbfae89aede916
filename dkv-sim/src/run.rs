//! Randomised runs: one `u64` seed decides the node count, every fault parameter and
//! the workload; a run has a fault phase, then heals the network and checks liveness
//! against deadlines.
//!
//! Timeline of a run of `duration` virtual seconds (`F = duration - 30 s`):
//! - `0..3 s`: nodes start, staggered, some with fast or slow monotonic clocks and
//!   wall clocks off by up to ±200 ms; in some seeds one node's wall clock is off
//!   by up to ±3 s (beyond the 500 ms maximum offset), and in some one node is a
//!   prototype. In half the seeds every dkv node is durable (its disk survives
//!   crashes and it restarts from it), in a quarter some are.
//! - `1 s..F`: in some seeds a hostile host on its own host sends forged,
//!   replayed, corrupted, oversized and flooding traffic and spoofed beacons (see
//!   [`Attack`]); it goes quiet at `F`, and the liveness phase checks the honest
//!   nodes recover.
//! - `0..F`: sets, deletes and gets at random nodes on a small key pool (so both
//!   sides of partitions write the same keys), while partitions, link flaps,
//!   address changes, crashes, graceful stops, stalled subscribers (a node that
//!   stops reading while its timers and beacons go on) and (in some seeds)
//!   crashes of the whole cluster at once come and go.
//! - `F`: every fault ends: partitions heal, links come up, stopped nodes restart,
//!   stalled ones read again, beacon loss stops and the high-water mark is ZeroMQ's default. The workload
//!   stops. From here the run also records when all dkv nodes first hold identical
//!   stores.
//! - `F + 10 s`: every node must see exactly every other live node as a peer and be
//!   connected to exactly those. Then fresh single-writer keys are set (by nodes
//!   whose clock is within the maximum offset), and a new node joins.
//! - `F + 16 s`: every node, the prototype included, must hold every fresh key.
//! - `F + 24 s`: every live dkv node must hold identical entries (values, versions,
//!   tombstones), each the highest version it ever applied for its key, and none may
//!   have lost a write a durable node acknowledged; the joiner's bootstrap must be
//!   done.
//! - `F + 26 s`: peers are checked again.
//! - `duration`: every get must have completed; every node stops gracefully and
//!   must disconnect everything it connected.

use crate::hostile::Attack;
use crate::net::{NetConfig, NetCounters, Shape};
use crate::node::Clock;
use crate::rng::Rng;
use crate::sim::{HostileVerdicts, Sim};
use bytes::Bytes;
use dkv_proto::seal::{Cluster, Key, Keyring};
use dkv_proto::{Limits, Stats, Timings};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

/// The length of the liveness phase at the end of every run.
pub const LIVENESS: Duration = Duration::from_secs(30);
/// When, after the faults end, every dkv node must hold identical stores.
pub const CONVERGENCE_BOUND: Duration = Duration::from_secs(24);

/// Every parameter of a randomised run, all decided by the seed (node count and
/// duration may be overridden).
#[derive(Clone, Debug, PartialEq)]
pub struct Params {
    /// The seed everything comes from.
    pub seed: u64,
    /// Nodes at start.
    pub nodes: usize,
    /// Hosts they run on (several nodes may share a host and its address).
    pub hosts: usize,
    /// Total virtual time.
    pub duration: Duration,
    /// When the faults and the workload end.
    pub fault_end: Duration,
    /// The network during the fault phase.
    pub net: NetConfig,
    /// Share of nodes with skewed clocks (monotonic rate and wall offset).
    pub skewed_share: f64,
    /// Largest monotonic clock rate error, in parts per million.
    pub max_ppm: i64,
    /// Largest wall-clock offset of a skewed node, in milliseconds (within the
    /// maximum clock offset the nodes tolerate).
    pub max_offset_ms: i64,
    /// One node's wall clock off by this much (beyond the maximum offset), if any.
    pub bad_clock_ms: Option<i64>,
    /// Whether one of the nodes is a prototype node.
    pub prototype: bool,
    /// Share of dkv nodes that keep their data on disk and restart from it.
    pub durable_share: f64,
    /// Crashes of every node at once per virtual second (a power cut).
    pub cluster_crash_rate: f64,
    /// Partitions per virtual second.
    pub partition_rate: f64,
    /// Share of partitions that are one-way.
    pub one_way_share: f64,
    /// Longest partition.
    pub partition_max: Duration,
    /// Link-down events per virtual second.
    pub flap_rate: f64,
    /// Longest link-down.
    pub down_max: Duration,
    /// Address changes per virtual second.
    pub ip_change_rate: f64,
    /// Crashes or stops per virtual second.
    pub crash_rate: f64,
    /// Share of those that are graceful stops.
    pub stop_share: f64,
    /// Longest time before a crashed node restarts.
    pub restart_max: Duration,
    /// Stalls per virtual second: a dkv node stops reading its SUB socket.
    pub stall_rate: f64,
    /// Longest stall.
    pub stall_max: Duration,
    /// Sets per virtual second, cluster-wide.
    pub set_rate: f64,
    /// Deletes per virtual second, cluster-wide.
    pub delete_rate: f64,
    /// Gets per virtual second, cluster-wide.
    pub get_rate: f64,
    /// Distinct keys the workload uses.
    pub keys: usize,
    /// The limits every dkv node runs with ([`limits_for`] the node count).
    pub limits: Limits,
    /// The attacks of a hostile host on the LAN during the fault phase (none: no
    /// hostile host). It goes quiet when the faults end.
    pub hostile: Vec<Attack>,
    /// Whether the dkv nodes form a keyed cluster (one keyring, from the seed; no
    /// prototype then). The hostile host, if any, has no key.
    pub keyed: bool,
    /// Whether the dkv nodes form a named cluster without a key (not keyed; no
    /// prototype then).
    pub named: bool,
}

/// A hostile host's pace in randomised runs: a burst every this often ...
pub const HOSTILE_EVERY: Duration = Duration::from_millis(500);
/// ... with floods of up to this many messages or datagrams.
pub const HOSTILE_FLOOD: u64 = 40;

/// Largest cluster that runs with the default [`Limits`]. A node sees up to one
/// peer per other node, plus the old endpoints of restarted nodes until they time
/// out, and must see all of them 10 s after a restart; the default 256 peers and
/// 20 new peers/s after a burst of 64 allow that up to here.
pub const DEFAULT_LIMITS_UP_TO: usize = 128;

/// The limits a cluster of `nodes` is run with, as an operator following README
/// would configure them: the defaults up to [`DEFAULT_LIMITS_UP_TO`] nodes; above,
/// `max_peers` of twice the cluster (restarted nodes' old endpoints linger until
/// the peer timeout), a new-peer burst of the whole cluster, so that a node that
/// restarts sees every peer at once, and a new-peer rate that grows with the
/// cluster as the burst does: a bucket drained by partitions (every peer lost
/// behind one comes back as new when it heals) refills for the whole cluster in
/// the time the defaults give [`DEFAULT_LIMITS_UP_TO`] nodes.
pub fn limits_for(nodes: usize) -> Limits {
    let mut l = Limits::default();
    if nodes > DEFAULT_LIMITS_UP_TO {
        let cluster = nodes as u64 + 1;
        l.max_peers = l.max_peers.max(2 * cluster as usize);
        let default_rate = Duration::from_secs(1).as_nanos() as u64 / ns(l.new_peers.every);
        let rate = (cluster * default_rate).div_ceil(DEFAULT_LIMITS_UP_TO as u64);
        let rate = u32::try_from(rate.max(default_rate)).unwrap_or(u32::MAX);
        let burst = l.new_peers.burst.max(cluster as u32);
        l.new_peers = dkv_proto::Rate::per_second(rate, burst);
    }
    l
}

/// The cluster name and keyring of a keyed run of `seed`: one key, its 32 bytes from
/// the simulator's generator seeded by `seed`.
pub fn keyring_for(seed: u64) -> (Cluster, Keyring) {
    let mut r = Rng::new(seed ^ 0x006b_6579_7269_6e67);
    let mut bytes = [0u8; 32];
    for chunk in bytes.chunks_mut(8) {
        chunk.copy_from_slice(&r.next_u64().to_le_bytes());
    }
    let cluster = Cluster::new("sim").expect("a short cluster name");
    let keys = Keyring::new(vec![Key::from_bytes(bytes)]).expect("one key");
    (cluster, keys)
}

fn secs(x: f64) -> Duration {
    Duration::from_secs_f64(x.max(0.0))
}

impl Params {
    /// The parameters `seed` decides; `nodes` and `duration` override the seed's
    /// choice. The duration is at least 35 s (the liveness phase needs 30).
    pub fn from_seed(seed: u64, nodes: Option<usize>, duration: Option<Duration>) -> Params {
        let mut r = Rng::new(seed ^ 0x5eed_0fd4);
        // Drawn even when given, so a given count changes no other parameter: a
        // seed's reproduce line (which names its count) gives the seed's own run.
        let drawn = match r.below(10) {
            0..=4 => r.range(3, 8) as usize,
            5..=8 => r.range(9, 24) as usize,
            _ => r.range(25, 48) as usize,
        };
        let nodes = nodes.unwrap_or(drawn).max(1);
        let hosts = if r.chance(0.25) {
            (nodes * 2 / 3).max(1)
        } else {
            nodes
        };
        let duration = duration.unwrap_or(Duration::from_secs(60));
        let duration = duration.max(Duration::from_secs(35));
        let pick_ms =
            |r: &mut Rng, lo: u64, hi: u64| Duration::from_micros(r.range(lo * 1000, hi * 1000));
        let net = NetConfig {
            latency: pick_ms(&mut r, 0, 5),
            jitter: if r.chance(0.7) {
                pick_ms(&mut r, 0, 30)
            } else {
                Duration::ZERO
            },
            beacon_latency: pick_ms(&mut r, 0, 5),
            beacon_jitter: if r.chance(0.6) {
                pick_ms(&mut r, 0, 200)
            } else {
                Duration::ZERO
            },
            beacon_loss: if r.chance(0.7) { r.unit() * 0.35 } else { 0.0 },
            beacon_dup: if r.chance(0.5) { r.unit() * 0.1 } else { 0.0 },
            hwm: if r.chance(0.7) {
                1000
            } else {
                r.range(4, 300) as usize
            },
            ..NetConfig::default()
        };
        let rate = |r: &mut Rng, p: f64, max: f64| if r.chance(p) { r.unit() * max } else { 0.0 };
        let partition_rate = rate(&mut r, 0.7, 0.3);
        let one_way_share = r.unit();
        let partition_max = secs(r.range(500, 12_000) as f64 / 1000.0);
        let flap_rate = rate(&mut r, 0.6, 0.3);
        let down_max = secs(r.range(100, 9_000) as f64 / 1000.0);
        let ip_change_rate = rate(&mut r, 0.5, 0.08);
        let crash_rate = rate(&mut r, 0.6, 0.1);
        let stop_share = r.unit();
        let restart_max = secs(r.range(100, 10_000) as f64 / 1000.0);
        let skewed_share = if r.chance(0.6) { r.unit() } else { 0.0 };
        let max_ppm = r.range(0, 50_000) as i64;
        let max_offset_ms = r.range(0, 200) as i64;
        let bad_clock_ms = r
            .chance(0.15)
            .then(|| r.range(600, 3_000) as i64 * if r.chance(0.5) { 1 } else { -1 });
        let prototype = r.chance(0.2);
        let durable_share = match r.below(4) {
            0 | 1 => 1.0,
            2 => r.unit(),
            _ => 0.0,
        };
        let cluster_crash_rate = if r.chance(0.3) { r.unit() * 0.03 } else { 0.0 };
        let set_rate = 0.5 + r.unit() * 80.0;
        let delete_rate = rate(&mut r, 0.8, 20.0);
        let get_rate = 0.5 + r.unit() * 80.0;
        let keys = r.range(1, 400) as usize;
        // Drawn last, so that adding them left every earlier parameter of a seed as
        // it was.
        let stall_rate = rate(&mut r, 0.4, 0.05);
        let stall_max = secs(r.range(500, 20_000) as f64 / 1000.0);
        let mut hostile = Vec::new();
        if r.chance(0.1) {
            for a in Attack::ALL {
                // A list answer to anyone but itself kills a prototype's worker.
                let fits = !(prototype && a == Attack::ListFlood);
                if r.chance(0.5) && fits {
                    hostile.push(a);
                }
            }
            if hostile.is_empty() {
                hostile.push(Attack::Forge);
            }
        }
        // Drawn after everything else, for the same reason. A keyed cluster has no
        // prototype (it could not talk to one).
        let keyed = r.chance(0.2);
        let prototype = prototype && !keyed;
        // Keyed seeds get a hostile host in 40% (10% otherwise): the point of a key.
        if keyed && hostile.is_empty() && r.chance(1.0 / 3.0) {
            for a in Attack::ALL {
                if r.chance(0.5) {
                    hostile.push(a);
                }
            }
            if hostile.is_empty() {
                hostile.push(Attack::Replay);
            }
        }
        let named = !keyed && r.chance(0.1);
        let prototype = prototype && !named;
        Params {
            seed,
            nodes,
            hosts,
            duration,
            fault_end: duration - LIVENESS,
            net,
            skewed_share,
            max_ppm,
            max_offset_ms,
            bad_clock_ms,
            prototype,
            durable_share,
            cluster_crash_rate,
            partition_rate,
            one_way_share,
            partition_max,
            flap_rate,
            down_max,
            ip_change_rate,
            crash_rate,
            stop_share,
            restart_max,
            stall_rate,
            stall_max,
            set_rate,
            delete_rate,
            get_rate,
            keys,
            limits: limits_for(nodes),
            hostile,
            keyed,
            named,
        }
    }

    /// Every parameter, one `name = value` per line.
    pub fn describe(&self) -> String {
        let n = &self.net;
        let mut s = String::new();
        let _ = writeln!(s, "seed            = {}", self.seed);
        let proto = if self.prototype {
            ", one of them a prototype"
        } else {
            ""
        };
        let _ = writeln!(
            s,
            "nodes           = {} on {} hosts{proto}",
            self.nodes, self.hosts
        );
        let _ = writeln!(
            s,
            "duration        = {:?} (faults and workload until {:?}, then liveness)",
            self.duration, self.fault_end
        );
        let _ = writeln!(
            s,
            "tcp latency     = {:?} + jitter 0..={:?}",
            n.latency, n.jitter
        );
        let _ = writeln!(
            s,
            "beacon latency  = {:?} + jitter 0..={:?}, loss {:.3}, dup {:.3}",
            n.beacon_latency, n.beacon_jitter, n.beacon_loss, n.beacon_dup
        );
        let _ = writeln!(s, "send hwm        = {}", n.hwm);
        let _ = writeln!(
            s,
            "clock skew      = {:.2} of nodes, rate up to ±{} ppm, wall up to ±{} ms{}",
            self.skewed_share,
            self.max_ppm,
            self.max_offset_ms,
            match self.bad_clock_ms {
                Some(ms) => format!("; one node's wall clock off by {ms} ms"),
                None => String::new(),
            }
        );
        let _ = writeln!(
            s,
            "partitions      = {:.3}/s, {:.2} one-way, up to {:?}",
            self.partition_rate, self.one_way_share, self.partition_max
        );
        let _ = writeln!(
            s,
            "link flaps      = {:.3}/s, down up to {:?}",
            self.flap_rate, self.down_max
        );
        let _ = writeln!(s, "ip changes      = {:.3}/s", self.ip_change_rate);
        let _ = writeln!(
            s,
            "crashes         = {:.3}/s, {:.2} graceful, restart within {:?}; whole cluster {:.3}/s",
            self.crash_rate, self.stop_share, self.restart_max, self.cluster_crash_rate
        );
        let _ = writeln!(
            s,
            "stalls          = {:.3}/s, up to {:?}",
            self.stall_rate, self.stall_max
        );
        if !self.hostile.is_empty() {
            let _ = writeln!(
                s,
                "hostile host    = {:?}, until the faults end",
                self.hostile
            );
        }
        if self.keyed {
            let _ = writeln!(s, "cluster         = keyed (one key, from the seed)");
        }
        if self.named {
            let _ = writeln!(s, "cluster         = named \"sim\", no key");
        }
        let _ = writeln!(s, "durable nodes   = {:.2} of them", self.durable_share);
        let l = &self.limits;
        let _ = writeln!(
            s,
            "limits          = {}",
            if *l == Limits::default() {
                "default".to_string()
            } else {
                format!(
                    "default but max_peers {}, new peers burst {}",
                    l.max_peers, l.new_peers.burst
                )
            }
        );
        let _ = write!(
            s,
            "workload        = {:.1} sets/s, {:.1} deletes/s, {:.1} gets/s over {} keys",
            self.set_rate, self.delete_rate, self.get_rate, self.keys
        );
        s
    }

    /// The command line that reruns exactly this run.
    pub fn reproduce(&self) -> String {
        format!(
            "cargo run -p dkv-sim --release -- --seed {} --nodes {} --duration {}",
            self.seed,
            self.nodes,
            self.duration.as_secs_f64()
        )
    }
}

/// What a run did and found.
#[derive(Clone, Debug)]
pub struct RunReport {
    /// The parameters.
    pub params: Params,
    /// The hash of the whole event trace and the final stores.
    pub trace_hash: u64,
    /// Safety and liveness violations; empty if the run passed.
    pub failures: Vec<String>,
    /// Safety checks performed (one per node output, at least).
    pub safety_checks: u64,
    /// Liveness checks that passed.
    pub liveness_passed: u64,
    /// How long after the faults ended every dkv node first held identical stores
    /// (`None` if they never did before the convergence check).
    pub converged_after: Option<Duration>,
    /// What the network did.
    pub net: NetCounters,
    /// Messages and datagrams the hostile host sent (0 without one).
    pub hostile_sent: u64,
    /// What keyed nodes did with the hostile host's input (zero unless keyed).
    pub hostile_verdicts: HostileVerdicts,
    /// Every dkv node's counters, summed.
    pub stats: Stats,
    /// Virtual time simulated.
    pub simulated: Duration,
    /// Wall time taken.
    pub wall: Duration,
}

impl RunReport {
    /// Whether every check passed.
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }

    /// A human summary: hash, checks, traffic and speed.
    pub fn summary(&self) -> String {
        let wall = self.wall.as_secs_f64().max(1e-9);
        let n = &self.net;
        let mut s = String::new();
        let _ = writeln!(s, "trace hash      = {:016x}", self.trace_hash);
        let _ = writeln!(
            s,
            "checks          = {} safety checks, {} liveness checks passed, {} failures",
            self.safety_checks,
            self.liveness_passed,
            self.failures.len()
        );
        let _ = writeln!(
            s,
            "convergence     = {}",
            match self.converged_after {
                Some(d) => format!(
                    "every dkv node identical {:.1} s after the faults ended",
                    d.as_secs_f64()
                ),
                None => "not reached".into(),
            }
        );
        let _ = writeln!(
            s,
            "messages        = {} published, {} delivered, {} dropped at hwm, {} lost with their pipe, {} held for a subscription ({} dropped)",
            n.published, n.delivered, n.dropped_hwm, n.dropped_pipe, n.held, n.held_dropped
        );
        let _ = writeln!(
            s,
            "beacons         = {} sent, {} delivered, {} lost, {} blocked, {} duplicated, {} send failures",
            n.beacons_sent, n.beacons_delivered, n.beacons_lost, n.beacons_blocked, n.beacons_duplicated, n.beacon_send_failures
        );
        if self.hostile_sent > 0 {
            let _ = writeln!(
                s,
                "hostile         = {} messages and datagrams sent",
                self.hostile_sent
            );
        }
        if self.params.keyed {
            let st = &self.stats;
            let _ = writeln!(
                s,
                "keyed refusals  = {} unauthenticated (replay {}, stale {}, forged {}, hello stale {}, hello replay {}, hello spoofed {}); hostile items: {} refused, {} late replays taken",
                st.refused_unauthenticated(),
                st.drop_replay,
                st.drop_stale,
                st.drop_forged,
                st.drop_hello_stale,
                st.drop_hello_replay,
                st.drop_hello_spoofed,
                self.hostile_verdicts.refused,
                self.hostile_verdicts.late_replays
            );
        }
        let st = &self.stats;
        let _ = writeln!(
            s,
            "writes          = {} sets, {} deletes; {} entries applied remotely, {} stale, {} refused (clock ahead), {} echoes ignored",
            st.sets, st.deletes, st.entries_applied, st.entries_stale, st.drop_clock_ahead, st.echoes_ignored
        );
        let _ = writeln!(
            s,
            "anti-entropy    = {} sessions started, {} completed, {} timed out; {} ranges pulled in {} pages; {} fetches; {} pushes",
            st.sync_sessions_started, st.sync_sessions_completed, st.sync_sessions_timed_out,
            st.sync_ranges_pulled, st.sync_pull_pages, st.sync_fetches, st.sync_pushes
        );
        let _ = writeln!(
            s,
            "nodes           = peers up/down {}/{}, net up/down {}/{}, bootstraps {}/{} done, gets hit/answered/timed out {}/{}/{}",
            st.peers_up, st.peers_down, st.net_up, st.net_down, st.bootstraps_done, st.bootstraps_started,
            st.gets_hit, st.gets_answered, st.gets_timed_out
        );
        let _ = writeln!(
            s,
            "limits hit      = peers {}/{}/{} (total/per ip/rate), answers {}, lists {}, asks {}, oversized {}, store full {}, peer budget {}",
            st.drop_peer_limit, st.drop_peer_ip_limit, st.drop_peer_rate, st.drop_answer_rate,
            st.drop_list_rate, st.drop_request_rate, st.drop_oversized, st.drop_store_full,
            st.sync_peer_over_budget
        );
        let _ = write!(
            s,
            "speed           = {:.1} simulated s in {:.3} wall s: {:.1} simulated s per wall s, {:.0} events per wall s ({} events)",
            self.simulated.as_secs_f64(),
            wall,
            self.simulated.as_secs_f64() / wall,
            n.events as f64 / wall,
            n.events
        );
        s
    }
}

#[derive(Debug, Clone)]
enum Action {
    AddNode {
        host: usize,
        clock: Clock,
        durable: bool,
    },
    AddPrototype {
        host: usize,
    },
    AddHostile,
    Set,
    Delete,
    Get,
    Fault,
    Heal(u64),
    LinkUp(usize),
    Restart(usize),
    Resume(usize),
    Stable,
    Probe,
    CheckPeers,
    StableSets,
    Join,
    CheckSets,
    CheckConverged,
    End,
}

struct Driver {
    p: Params,
    sim: Sim,
    rng: Rng,
    actions: BTreeMap<(u64, u64), Action>,
    seq: u64,
    set_seq: u64,
    liveness_passed: u64,
    joiner: Option<usize>,
    stable_keys: Vec<(String, Bytes)>,
    stable: bool,
    converged_after: Option<Duration>,
}

fn ns(d: Duration) -> u64 {
    d.as_nanos() as u64
}

impl Driver {
    fn at(&mut self, when: Duration, a: Action) {
        self.seq += 1;
        self.actions.insert((ns(when), self.seq), a);
    }

    fn after_rate(&mut self, rate: f64) -> Option<Duration> {
        if rate <= 0.0 {
            return None;
        }
        Some(self.sim.now() + secs(self.rng.unit() * 2.0 / rate))
    }

    fn random_of(&mut self, slots: Vec<usize>) -> Option<usize> {
        let slots: Vec<usize> = slots
            .into_iter()
            .filter(|&s| Some(s) != self.joiner)
            .collect();
        if slots.is_empty() {
            return None;
        }
        Some(slots[self.rng.below(slots.len() as u64) as usize])
    }

    fn schedule_recurring(&mut self, a: Action) {
        let rate = match a {
            Action::Set => self.p.set_rate,
            Action::Delete => self.p.delete_rate,
            Action::Get => self.p.get_rate,
            _ => {
                self.p.partition_rate
                    + self.p.flap_rate
                    + self.p.ip_change_rate
                    + self.p.crash_rate
                    + self.p.cluster_crash_rate
                    + self.p.stall_rate
            }
        };
        if let Some(t) = self.after_rate(rate) {
            if t < self.p.fault_end {
                self.at(t, a);
            }
        }
    }

    fn key(&mut self) -> String {
        format!("k{}", self.rng.below(self.p.keys as u64))
    }

    fn perform(&mut self, a: Action) {
        match a {
            Action::AddNode {
                host,
                clock,
                durable,
            } => {
                if durable {
                    self.sim.add_durable_node(host, clock);
                } else {
                    self.sim.add_node(host, clock);
                }
            }
            Action::AddPrototype { host } => {
                self.sim.add_prototype(host);
            }
            Action::AddHostile => {
                let h = self.sim.add_host();
                let attacks = self.p.hostile.clone();
                self.sim.add_hostile(h, &attacks);
                // Half the default pace: enough to reach every limit's counter in
                // a run, cheap enough to keep CI's seeds per second.
                self.sim.hostile_pace(HOSTILE_EVERY, HOSTILE_FLOOD);
            }
            Action::Set => {
                let live = self.sim.live();
                if let Some(slot) = self.random_of(live) {
                    let key = self.key();
                    self.set_seq += 1;
                    let value = Bytes::from(format!("v{}-n{}", self.set_seq, slot));
                    self.sim.set(slot, &key, value);
                }
                self.schedule_recurring(Action::Set);
            }
            Action::Delete => {
                let live = self.sim.live_dkv();
                if let Some(slot) = self.random_of(live) {
                    let key = self.key();
                    self.sim.delete(slot, &key);
                }
                self.schedule_recurring(Action::Delete);
            }
            Action::Get => {
                let live = self.sim.live();
                if let Some(slot) = self.random_of(live) {
                    let key = self.key();
                    self.sim.get(slot, &key);
                }
                self.schedule_recurring(Action::Get);
            }
            Action::Fault => {
                self.fault();
                self.schedule_recurring(Action::Fault);
            }
            Action::Heal(id) => self.sim.heal(id),
            Action::LinkUp(h) => self.sim.link_up(h),
            Action::Restart(s) => {
                if !self.stable {
                    self.sim.restart(s)
                }
            }
            Action::Resume(s) => self.sim.resume(s),
            Action::Stable => self.enter_stable(),
            Action::Probe => {
                if self.sim.identical_dkv_stores() {
                    self.converged_after = Some(self.sim.now() - self.p.fault_end);
                } else if self.sim.now() < self.p.fault_end + CONVERGENCE_BOUND {
                    self.at(self.sim.now() + Duration::from_millis(100), Action::Probe);
                }
            }
            Action::CheckPeers => self.liveness_passed += self.sim.check_peers(),
            Action::StableSets => self.stable_sets(),
            Action::Join => {
                let h = self.sim.add_host();
                self.joiner = Some(self.sim.add_node(h, Clock::default()));
            }
            Action::CheckSets => {
                let keys = self.stable_keys.clone();
                self.liveness_passed += self.sim.check_holds(&keys);
            }
            Action::CheckConverged => {
                self.liveness_passed += self.sim.check_converged();
                self.liveness_passed += self.sim.check_store_bounds();
                if let Some(j) = self.joiner {
                    self.liveness_passed += self.sim.check_caught_up(j);
                }
            }
            Action::End => self.end(),
        }
    }

    fn fault(&mut self) {
        let p = self.p.clone();
        let p = &p;
        let total = p.partition_rate
            + p.flap_rate
            + p.ip_change_rate
            + p.crash_rate
            + p.cluster_crash_rate
            + p.stall_rate;
        let mut x = self.rng.unit() * total;
        let hosts = self.sim.hosts();
        let now = self.sim.now();
        if x < p.partition_rate {
            let shape = if self.rng.chance(p.one_way_share) {
                let mut from = Vec::new();
                let mut to = Vec::new();
                for h in 0..hosts {
                    match self.rng.below(3) {
                        0 => from.push(h),
                        1 => to.push(h),
                        _ => {}
                    }
                }
                Shape::OneWay { from, to }
            } else if self.rng.chance(0.3) {
                Shape::Groups(vec![vec![self.rng.below(hosts as u64) as usize]])
            } else {
                let k = self.rng.range(1, 3) as usize;
                let mut groups = vec![Vec::new(); k];
                for h in 0..hosts {
                    let g = self.rng.below(k as u64 + 1) as usize;
                    if g < k {
                        groups[g].push(h);
                    }
                }
                Shape::Groups(groups)
            };
            let id = self.sim.partition(&shape);
            let len = secs(self.rng.unit() * p.partition_max.as_secs_f64());
            self.at(now + len, Action::Heal(id));
            return;
        }
        x -= p.partition_rate;
        if x < p.flap_rate {
            let h = self.rng.below(hosts as u64) as usize;
            if self.sim.link_is_up(h) {
                self.sim.link_down(h);
                let len = secs(0.05 + self.rng.unit() * p.down_max.as_secs_f64());
                self.at(now + len, Action::LinkUp(h));
            }
            return;
        }
        x -= p.flap_rate;
        if x < p.ip_change_rate {
            let h = self.rng.below(hosts as u64) as usize;
            self.sim.change_ip(h);
            return;
        }
        x -= p.ip_change_rate;
        if x < p.stall_rate {
            let live = self.sim.live_dkv();
            if let Some(slot) = self.random_of(live) {
                if !self.sim.is_stalled(slot) {
                    self.sim.stall(slot);
                    let len = secs(0.05 + self.rng.unit() * p.stall_max.as_secs_f64());
                    self.at(now + len, Action::Resume(slot));
                }
            }
            return;
        }
        x -= p.stall_rate;
        if x < p.cluster_crash_rate {
            // A power cut: every node at once; each restarts on its own later.
            for slot in self.sim.live() {
                if Some(slot) != self.joiner {
                    self.sim.crash(slot);
                    let len = secs(0.05 + self.rng.unit() * p.restart_max.as_secs_f64());
                    self.at(now + len, Action::Restart(slot));
                }
            }
            return;
        }
        let live = self.sim.live();
        if let Some(slot) = self.random_of(live) {
            if self.rng.chance(p.stop_share) {
                self.sim.stop(slot);
            } else {
                self.sim.crash(slot);
            }
            let len = secs(0.05 + self.rng.unit() * p.restart_max.as_secs_f64());
            self.at(now + len, Action::Restart(slot));
        }
    }

    fn enter_stable(&mut self) {
        self.stable = true;
        self.sim.calm_hostile();
        self.sim.heal_all();
        for h in 0..self.sim.hosts() {
            self.sim.link_up(h);
        }
        for s in 0..self.sim.slots() {
            self.sim.restart(s);
            if self.sim.is_stalled(s) {
                self.sim.resume(s);
            }
        }
        let net = self.sim.net_config();
        net.beacon_loss = 0.0;
        net.hwm = net.hwm.max(1000);
        self.at(self.sim.now(), Action::Probe);
    }

    /// Fresh keys, each set once, by nodes whose wall clock is within the offset the
    /// others accept (a node's writes beyond it are delayed by design).
    fn stable_sets(&mut self) {
        let max = self.sim.timings().max_clock_offset.as_millis() as i64;
        let writers: Vec<usize> = self
            .sim
            .live()
            .into_iter()
            .filter(|&s| self.sim.clock(s).offset_ms.abs() < max)
            .collect();
        let n = writers.len().clamp(1, 8);
        for i in 0..n {
            let Some(slot) = self.random_of(writers.clone()) else {
                return;
            };
            let key = format!("stable/{i}");
            let value = Bytes::from(format!("stable-{}-{i}", self.p.seed));
            self.sim.set(slot, &key, value.clone());
            self.stable_keys.push((key, value));
        }
    }

    fn end(&mut self) {
        for s in self.sim.live() {
            let pending = self.sim.pending_gets(s);
            if pending > 0 {
                self.sim
                    .report(s, format!("liveness: {pending} get(s) never completed"));
            }
        }
        self.sim.hash_stores();
        for s in self.sim.live() {
            self.sim.stop(s);
        }
    }
}

/// Runs the randomised scenario `params` describe, start to end, stopping at the
/// first safety violation.
pub fn run_seed(params: &Params) -> RunReport {
    let started = Instant::now();
    let mut rng = Rng::new(params.seed);
    let mut sim = Sim::new(params.net.clone(), Timings::default(), rng.next_u64());
    *sim.limits_mut() = params.limits.clone();
    if params.keyed {
        let (cluster, keys) = keyring_for(params.seed);
        sim.set_keyed(cluster, keys);
    }
    if params.named {
        let (cluster, _) = keyring_for(params.seed);
        sim.set_named(cluster);
    }
    let mut d = Driver {
        p: params.clone(),
        sim,
        rng: rng.fork(),
        actions: BTreeMap::new(),
        seq: 0,
        set_seq: 0,
        liveness_passed: 0,
        joiner: None,
        stable_keys: Vec::new(),
        stable: false,
        converged_after: None,
    };
    for _ in 0..params.hosts {
        d.sim.add_host();
    }
    let bad_clock = params
        .bad_clock_ms
        .map(|_| d.rng.below(params.nodes as u64) as usize);
    let prototype = params
        .prototype
        .then(|| d.rng.below(params.nodes as u64) as usize);
    for i in 0..params.nodes {
        let host = if i < params.hosts {
            i
        } else {
            d.rng.below(params.hosts as u64) as usize
        };
        let mut clock = Clock::default();
        if d.rng.chance(params.skewed_share) {
            let m = params.max_ppm as u64;
            clock.ppm = d.rng.range(0, 2 * m) as i64 - params.max_ppm;
            let o = params.max_offset_ms as u64;
            clock.offset_ms = d.rng.range(0, 2 * o) as i64 - params.max_offset_ms;
        }
        if bad_clock == Some(i) {
            clock.offset_ms = params.bad_clock_ms.unwrap_or(0);
        }
        let when = secs(d.rng.unit() * 3.0);
        let durable = d.rng.chance(params.durable_share);
        if prototype == Some(i) {
            d.at(when, Action::AddPrototype { host });
        } else {
            d.at(
                when,
                Action::AddNode {
                    host,
                    clock,
                    durable,
                },
            );
        }
    }
    let f = params.fault_end;
    let s = Duration::from_secs;
    if !params.hostile.is_empty() {
        d.at(s(1), Action::AddHostile);
    }
    d.at(s(3), Action::Set);
    d.at(s(3), Action::Delete);
    d.at(s(3), Action::Get);
    d.at(s(3), Action::Fault);
    d.at(f, Action::Stable);
    d.at(f + s(10), Action::CheckPeers);
    d.at(f + s(10), Action::StableSets);
    d.at(f + s(10), Action::Join);
    d.at(f + s(16), Action::CheckSets);
    d.at(f + CONVERGENCE_BOUND, Action::CheckConverged);
    d.at(f + s(26), Action::CheckPeers);
    d.at(params.duration, Action::End);
    while let Some((&(t, _), _)) = d.actions.first_key_value() {
        let t = Duration::from_nanos(t);
        d.sim.run_until(t);
        if !d.sim.violations().is_empty() {
            break;
        }
        let Some((_, a)) = d.actions.pop_first() else {
            break;
        };
        d.perform(a);
        if !d.sim.violations().is_empty() {
            break;
        }
        if d.sim.now().as_secs() % 10 == 0 {
            d.sim.forget_get_results();
        }
    }
    let failures = d
        .sim
        .violations()
        .iter()
        .map(|v| {
            let ep = d
                .sim
                .endpoint(v.slot)
                .map(|e| e.to_string())
                .unwrap_or_default();
            format!("at {:?}, node {} {}: {}", v.at, v.slot, ep, v.what)
        })
        .collect();
    RunReport {
        params: params.clone(),
        trace_hash: d.sim.trace_hash(),
        failures,
        safety_checks: d.sim.checks(),
        liveness_passed: d.liveness_passed,
        converged_after: d.converged_after,
        net: d.sim.counters().clone(),
        hostile_sent: d.sim.hostile_sent(),
        hostile_verdicts: d.sim.hostile_verdicts(),
        stats: d.sim.node_stats(),
        simulated: d.sim.now(),
        wall: started.elapsed(),
    }
}
