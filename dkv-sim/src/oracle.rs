//! The oracle: every safety and liveness check of the simulation, in one place.
//!
//! Safety is checked on every node output as it happens:
//! - every publish re-encodes and decodes to itself;
//! - every entry anywhere (published, applied, returned by a get) is one some node
//!   wrote: a dkv node's own write with that version and value, a prototype's value
//!   that a dkv node stamped with its own version, or an unversioned value some node
//!   set; a prototype's `set` or `answer` carries a value some node set;
//! - a node's own writes have strictly increasing versions (its clock never runs
//!   backward);
//! - per node and key, every applied entry is above the one held before under the
//!   merge order: the highest version wins and a deleted key never comes back (only
//!   tombstone collection, reported, lets an older write in again);
//! - gets complete exactly once; no node connects to itself or twice to one
//!   endpoint; every disconnect matches a connect; a stopped node left nothing
//!   connected and no get pending; a prototype worker never dies;
//! - after `handle_timeout`, no deadline is still due (a transport would spin);
//! - a dkv node's bounds under its configured [`Limits`]: never connected to more
//!   than `max_peers` endpoints, nor `max_peers_per_ip` at one address; no more
//!   prototype answers or list answers published since it started than the
//!   global rate allows (burst plus one per interval).
//!
//! A hostile host's entries and values (whatever decodes from what it sent) are
//! known as forged: the open cluster accepts them by design, so they pass the
//! "some node wrote it" checks, and every other check applies to them as to any
//! entry. In a keyed cluster there is no such allowance: the hostile host has no
//! key, so a node that applies any entry it originated is a violation.
//!
//! Liveness is checked after the faults end, by the run driver, through the
//! `Sim::check_*` methods that call into this module; so is the store bound (no
//! more than `max_store_keys` keys beyond a node's own).

use crate::node::Core;
use bytes::Bytes;
use dkv_proto::wire::{Body, Envelope};
use dkv_proto::{BootstrapPhase, Entry, GetId, Limits, Message, Node, NodeId, Output, Version};
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// The oracle's maps looked up on every node output, by key: hashed (a lookup in a
/// `String`-keyed B-tree was a string comparison per level), with a fixed hash
/// (FxHash), so that iterating one is the same in every run of a seed.
pub type Map<K, V> = HashMap<K, V, rustc_hash::FxBuildHasher>;

/// A violation: what went wrong, where and when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// Virtual time.
    pub at: Duration,
    /// The node slot.
    pub slot: usize,
    /// What was wrong.
    pub what: String,
}

/// What the oracle follows of one slot's current node.
#[derive(Debug, Default)]
struct Watch {
    id: Option<NodeId>,
    dkv: bool,
    /// The highest version restored from disk at start: every local write is above.
    floor: Option<Version>,
    last_local: Option<Version>,
    held: Map<String, Entry>,
    conns: BTreeSet<SocketAddr>,
    gets: BTreeSet<GetId>,
    /// `(max_peers, max_peers_per_ip)` of a dkv node's configured limits: it may
    /// be connected to no more endpoints, in all and per address.
    peer_bounds: Option<(usize, usize)>,
    /// Connected endpoints per address.
    per_ip: BTreeMap<IpAddr, usize>,
    /// A dkv node's work bounds: when it started, its configured limits, and the
    /// prototype answers and list answers it published since.
    work: Option<(Duration, Box<Limits>)>,
    answers: u64,
    list_answers: u64,
    /// Keys it wrote itself or restored from disk (the store cap does not apply).
    own_keys: BTreeSet<String>,
}

/// Where a node is, for the connection checks.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Whereabouts {
    /// The node's PUB endpoint on its host.
    pub(crate) endpoint: SocketAddr,
    /// The address the node believes it has.
    pub(crate) local_ip: Option<IpAddr>,
}

/// Every write ever made, every node's view, and the violations found.
#[derive(Debug, Default)]
pub struct Oracle {
    /// Every write by key, then version (looked up on every apply anywhere, so
    /// without building a key).
    writes: Map<String, Map<Version, Option<Bytes>>>,
    /// Entries the hostile host sent (whatever decodes from its frames): in the
    /// open cluster nodes accept them, so they count as written, apart from the
    /// honest writes' own checks. A corrupted replay may give one version several
    /// values.
    forged: BTreeMap<(String, Version), Vec<Option<Bytes>>>,
    /// A keyed cluster: the hostile host's entries go to `refused`, not `forged`.
    keyed: bool,
    /// In a keyed cluster, the entries the hostile host sent: none may be applied.
    refused: BTreeSet<(String, Version)>,
    /// The newest local write of each key by a durable node, and whether it was a
    /// delete: acknowledged once applied, never to be lost.
    acknowledged: BTreeMap<String, (Version, bool)>,
    durable: BTreeSet<usize>,
    values: Map<String, BTreeSet<Bytes>>,
    prototype_values: BTreeMap<String, BTreeSet<Bytes>>,
    watches: Vec<Watch>,
    violations: Vec<Violation>,
    checks: u64,
    now: Duration,
}

impl Oracle {
    /// Violations found so far, in order.
    pub fn violations(&self) -> &[Violation] {
        &self.violations
    }

    /// Safety checks performed so far.
    pub fn checks(&self) -> u64 {
        self.checks
    }

    /// Records a violation.
    pub fn violate(&mut self, slot: usize, what: String) {
        self.violations.push(Violation {
            at: self.now,
            slot,
            what,
        });
    }

    pub(crate) fn set_time(&mut self, now: Duration) {
        self.now = now;
    }

    fn watch(&mut self, slot: usize) -> &mut Watch {
        if self.watches.len() <= slot {
            self.watches.resize_with(slot + 1, Watch::default);
        }
        &mut self.watches[slot]
    }

    /// A node started in `slot` (fresh state).
    pub(crate) fn boot(&mut self, slot: usize, id: NodeId, dkv: bool) {
        *self.watch(slot) = Watch {
            id: Some(id),
            dkv,
            ..Watch::default()
        };
    }

    /// The cluster is keyed: from now on nothing the hostile host sends counts as
    /// written, and applying any entry it sent is a violation.
    pub(crate) fn set_keyed(&mut self) {
        self.keyed = true;
    }

    /// The dkv node in `slot` runs under `limits`: check its connections against
    /// their peer bounds.
    pub(crate) fn bound_peers(&mut self, slot: usize, limits: &Limits) {
        let now = self.now;
        let w = self.watch(slot);
        w.peer_bounds = Some((limits.max_peers, limits.max_peers_per_ip));
        w.work = Some((now, Box::new(limits.clone())));
    }

    /// The hostile host sent `frames`: whatever they decode to (ignoring limits)
    /// may be applied by honest nodes, so its entries and values become known.
    pub(crate) fn hostile_sent(&mut self, frames: &[Bytes]) {
        let Ok(msg) = Message::decode(frames) else {
            return;
        };
        if self.keyed {
            if let Message::Dkv(Envelope {
                body: Body::Put { records, .. } | Body::Push { records, .. },
                ..
            }) = msg
            {
                for r in records {
                    self.refused.insert((r.key, r.entry.version));
                }
            }
            return;
        }
        match msg {
            Message::Set { key, value } | Message::Answer { key, value, .. } => {
                self.values
                    .entry(key.clone())
                    .or_default()
                    .insert(value.clone());
                self.prototype_values.entry(key).or_default().insert(value);
            }
            Message::Dkv(Envelope {
                body: Body::Put { records, .. } | Body::Push { records, .. },
                ..
            }) => {
                for r in records {
                    // Honest nodes pass forged values on to prototypes too.
                    if let Some(v) = &r.entry.value {
                        self.values
                            .entry(r.key.clone())
                            .or_default()
                            .insert(v.clone());
                        let p = self.prototype_values.entry(r.key.clone()).or_default();
                        p.insert(v.clone());
                    }
                    let values = self.forged.entry((r.key, r.entry.version)).or_default();
                    if !values.contains(&r.entry.value) {
                        values.push(r.entry.value);
                    }
                }
            }
            _ => {}
        }
    }

    fn is_forged(&self, key: &str, entry: &Entry) -> bool {
        // No allocation while there is no hostile host.
        !self.forged.is_empty()
            && self
                .forged
                .get(&(key.to_owned(), entry.version))
                .is_some_and(|v| v.contains(&entry.value))
    }

    /// The node in `slot` started from its disk, holding `entries`: a durable node.
    pub(crate) fn restored(&mut self, slot: usize, entries: &Map<String, Entry>) {
        self.durable.insert(slot);
        let w = self.watch(slot);
        w.own_keys.extend(entries.keys().cloned());
        w.floor = entries.values().map(|e| e.version).max();
        w.held = entries
            .iter()
            .map(|(k, e)| (k.clone(), e.clone()))
            .collect();
    }

    /// The node in `slot` stopped gracefully: it must have undone every connect and
    /// completed every get.
    pub(crate) fn stopped(&mut self, slot: usize) {
        let w = self.watch(slot);
        let (conns, gets) = (w.conns.len(), w.gets.len());
        if conns > 0 {
            self.violate(
                slot,
                format!("after shutdown {conns} connect(s) were never disconnected"),
            );
        }
        if gets > 0 {
            self.violate(
                slot,
                format!("after shutdown {gets} get(s) never completed"),
            );
        }
        self.crashed(slot);
    }

    /// The node in `slot` is gone (its state with it).
    pub(crate) fn crashed(&mut self, slot: usize) {
        *self.watch(slot) = Watch::default();
    }

    /// The workload made `slot` write `key` (`None`: delete). Prototype copies of
    /// writes carry the value, or an empty one for a delete.
    pub(crate) fn wrote(&mut self, slot: usize, key: &str, value: Option<&Bytes>) {
        let v = value.cloned().unwrap_or_default();
        match self.values.get_mut(key) {
            Some(set) => set.insert(v.clone()),
            None => self
                .values
                .entry(key.to_owned())
                .or_default()
                .insert(v.clone()),
        };
        if !self.watch(slot).dkv {
            self.prototype_values
                .entry(key.to_owned())
                .or_default()
                .insert(v);
        }
    }

    /// A get started on `slot`.
    pub(crate) fn get_started(&mut self, slot: usize, id: GetId) {
        self.watch(slot).gets.insert(id);
    }

    /// The node in `slot` handled its timer at `now` and next wants `next`: a
    /// deadline still due would make a real transport spin.
    pub(crate) fn timer_fired(&mut self, slot: usize, now: Instant, next: Option<Instant>) {
        self.checks += 1;
        if next.is_some_and(|at| at <= now) {
            self.violate(slot, "left a deadline due after handle_timeout".into());
        }
    }

    /// The prototype in `slot` reports its worker dead for `why`.
    pub(crate) fn prototype_died(&mut self, slot: usize, why: &str) {
        self.violate(slot, format!("the prototype's worker died: {why}"));
    }

    /// Checks one output of the node in `slot`.
    pub(crate) fn output(&mut self, slot: usize, at: Whereabouts, out: &Output) {
        self.checks += 1;
        match out {
            Output::Publish(msg) => self.published(slot, msg),
            Output::PublishSealed(sealed) => self.published(slot, &sealed.msg),
            Output::Applied(a) => self.applied(slot, &a.key, &a.entry, a.local),
            Output::Collected(key) => {
                let was = self.watch(slot).held.remove(key);
                if !was.as_ref().is_some_and(Entry::is_tombstone) {
                    self.violate(
                        slot,
                        format!("collected {key:?}, which held {was:?}, not a tombstone"),
                    );
                }
            }
            Output::GetDone(done) => {
                if !self.watch(slot).gets.remove(&done.id) {
                    self.violate(
                        slot,
                        format!("get {:?} completed twice or never started", done.id),
                    );
                }
                match (done.version, &done.value) {
                    (Some(version), value) => {
                        let entry = Entry {
                            version,
                            value: value.clone(),
                        };
                        self.entry_known(slot, &done.key, &entry, "a get returned");
                    }
                    (None, Some(v)) if !self.watch(slot).dkv => {
                        self.value_known(slot, &done.key, v, "a get returned")
                    }
                    (None, Some(v)) => self.violate(
                        slot,
                        format!("get of {:?} returned {v:?} without a version", done.key),
                    ),
                    (None, None) => {}
                }
            }
            Output::Connect(addr) => {
                if *addr == at.endpoint
                    || at
                        .local_ip
                        .is_some_and(|ip| *addr == SocketAddr::new(ip, at.endpoint.port()))
                {
                    self.violate(slot, format!("connects to itself at {addr}"));
                }
                if self.watch(slot).conns.insert(*addr) {
                    *self.watch(slot).per_ip.entry(addr.ip()).or_default() += 1;
                } else {
                    self.violate(
                        slot,
                        format!("connects to {addr} twice without a disconnect"),
                    );
                }
                self.within_peer_bounds(slot, addr.ip());
            }
            Output::Disconnect(addr) => {
                let w = self.watch(slot);
                if w.conns.remove(addr) {
                    if let Some(n) = w.per_ip.get_mut(&addr.ip()) {
                        *n -= 1;
                        if *n == 0 {
                            w.per_ip.remove(&addr.ip());
                        }
                    }
                } else {
                    self.violate(slot, format!("disconnects from {addr}, never connected"));
                }
            }
            Output::Beacon(_) => {}
        }
    }

    /// A dkv node's connections stay within its `max_peers` and, for one address,
    /// `max_peers_per_ip`: no flood of beacons makes it hold more.
    fn within_peer_bounds(&mut self, slot: usize, ip: IpAddr) {
        let w = self.watch(slot);
        let Some((max, per_ip)) = w.peer_bounds else {
            return;
        };
        let total = w.conns.len();
        let here = w.per_ip.get(&ip).copied().unwrap_or(0);
        if total > max {
            self.violate(
                slot,
                format!("connected to {total} endpoints, over max_peers {max}"),
            );
        }
        if here > per_ip {
            self.violate(
                slot,
                format!("connected to {here} endpoints at {ip}, over max_peers_per_ip {per_ip}"),
            );
        }
    }

    /// A dkv node answered a prototype `question` (or `list`): in all, no more
    /// than its configured rate allows since it started (burst plus one per
    /// interval), however many asked.
    fn worked(&mut self, slot: usize, list: bool) {
        let now = self.now;
        let w = self.watch(slot);
        let Some((since, limits)) = &w.work else {
            return;
        };
        let since = *since;
        let (rate, done, what) = if list {
            let rate = limits.list_answers_total;
            w.list_answers += 1;
            (rate, w.list_answers, "list answers")
        } else {
            let rate = limits.answers_total;
            w.answers += 1;
            (rate, w.answers, "answers")
        };
        let every = rate.every.as_nanos().max(1);
        let allowed = u64::from(rate.burst.max(1)) + ((now - since).as_nanos() / every) as u64;
        if done > allowed {
            self.violate(
                slot,
                format!(
                    "published {done} {what} in {:?}, over its rate ({allowed})",
                    now - since
                ),
            );
        }
    }

    /// Every dkv node holds at most `max_store_keys` keys beyond those it wrote or
    /// restored itself, however many a hostile host invents. Returns the checks
    /// that passed.
    pub(crate) fn check_store_bounds(&mut self, nodes: &[NodeView]) -> u64 {
        let mut passed = 0;
        for n in nodes {
            let Some(node) = n.core.dkv() else { continue };
            let Some(w) = self.watches.get(n.slot) else {
                continue;
            };
            let Some((_, limits)) = &w.work else { continue };
            let bound = limits.max_store_keys + w.own_keys.len();
            if node.len() > bound {
                let what = format!(
                    "holds {} keys, over max_store_keys {} plus its own {}",
                    node.len(),
                    limits.max_store_keys,
                    w.own_keys.len()
                );
                self.violate(n.slot, what);
            } else {
                passed += 1;
            }
        }
        passed
    }

    fn published(&mut self, slot: usize, msg: &Message) {
        match Message::decode(&msg.encode()) {
            Ok(back) if back == *msg => {}
            other => self.violate(
                slot,
                format!("published {msg:?}, which re-decodes as {other:?}"),
            ),
        }
        match msg {
            Message::Answer { .. } => self.worked(slot, false),
            Message::ListAnswer { .. } => self.worked(slot, true),
            _ => {}
        }
        match msg {
            Message::Set { key, value } | Message::Answer { key, value, .. } => {
                self.value_known(slot, key, value, "published")
            }
            Message::Dkv(Envelope {
                body: Body::Put { records, .. } | Body::Push { records, .. },
                ..
            }) => {
                for r in records {
                    self.entry_known(slot, &r.key, &r.entry, "published");
                }
            }
            _ => {}
        }
    }

    fn applied(&mut self, slot: usize, key: &str, entry: &Entry, local: bool) {
        let own = self.watch(slot).id;
        if !local
            && !self.refused.is_empty()
            && self.refused.contains(&(key.to_owned(), entry.version))
        {
            self.violate(
                slot,
                format!(
                    "applied {key:?} = {:?} at {}, which the hostile host forged in a keyed cluster",
                    entry.value, entry.version
                ),
            );
        }
        if local {
            let w = self.watch(slot);
            if w.work.is_some() && !w.own_keys.contains(key) {
                w.own_keys.insert(key.to_owned());
            }
            let last = w.last_local.replace(entry.version);
            if Some(entry.version.node) != own {
                self.violate(slot, format!("wrote {key:?} as {}", entry.version.node));
            }
            let floor = self.watch(slot).floor;
            if floor.is_some_and(|f| entry.version.ts <= f.ts) {
                self.violate(
                    slot,
                    format!(
                        "clock restarted below its disk: wrote {key:?} at {} after restoring {}",
                        entry.version,
                        floor.unwrap_or_default()
                    ),
                );
            }
            if self.durable.contains(&slot) {
                let newest = self
                    .acknowledged
                    .entry(key.to_owned())
                    .or_insert((entry.version, entry.is_tombstone()));
                if entry.version >= newest.0 {
                    *newest = (entry.version, entry.is_tombstone());
                }
            }
            if last.is_some_and(|l| entry.version <= l) {
                self.violate(
                    slot,
                    format!(
                        "clock ran backward: wrote {key:?} at {} after {}",
                        entry.version,
                        last.unwrap_or_default()
                    ),
                );
            }
            if self.wrote_at(key, entry.version, entry.value.clone()) {
                self.violate(slot, format!("two writes of {key:?} at {}", entry.version));
            }
        } else if self.is_forged(key, entry) {
            // The hostile host's entry (possibly in this node's name).
        } else if Some(entry.version.node) == own {
            // A prototype's write, stamped with this node's version.
            match &entry.value {
                Some(v)
                    if self
                        .prototype_values
                        .get(key)
                        .is_some_and(|s| s.contains(v)) =>
                {
                    self.wrote_at(key, entry.version, entry.value.clone());
                }
                _ => self.violate(
                    slot,
                    format!(
                        "stamped {key:?} = {:?}, which no prototype set",
                        entry.value
                    ),
                ),
            }
        } else {
            self.entry_known(slot, key, entry, "applied");
        }
        let held = &mut self.watch(slot).held;
        let previous = match held.get_mut(key) {
            Some(e) => Some(std::mem::replace(e, entry.clone())),
            None => held.insert(key.to_owned(), entry.clone()),
        };
        if let Some(prev) = previous {
            if entry.merge_order(&prev) != Ordering::Greater {
                let what = if prev.is_tombstone() {
                    "a deleted key came back"
                } else {
                    "a lower version replaced a higher one"
                };
                self.violate(
                    slot,
                    format!(
                        "{what}: {key:?} {} ({:?}) after {} ({:?})",
                        entry.version, entry.value, prev.version, prev.value
                    ),
                );
            }
        }
    }

    /// Records a write of `key` at `version`; whether one was recorded there already.
    fn wrote_at(&mut self, key: &str, version: Version, value: Option<Bytes>) -> bool {
        let versions = match self.writes.get_mut(key) {
            Some(v) => v,
            None => self.writes.entry(key.to_owned()).or_default(),
        };
        versions.insert(version, value).is_some()
    }

    /// Whether `entry` is one some node wrote, reporting it if not.
    fn entry_known(&mut self, slot: usize, key: &str, entry: &Entry, doing: &str) {
        if entry.version == Version::UNVERSIONED {
            match &entry.value {
                Some(v) => self.value_known(slot, key, v, doing),
                None => self.violate(slot, format!("{doing} an unversioned delete of {key:?}")),
            }
            return;
        }
        match self.writes.get(key).and_then(|w| w.get(&entry.version)) {
            Some(v) if *v == entry.value => {}
            _ if self.is_forged(key, entry) => {}
            other => self.violate(
                slot,
                format!(
                    "{doing} {key:?} = {:?} at {}, which nobody wrote (wrote: {other:?})",
                    entry.value, entry.version
                ),
            ),
        }
    }

    fn value_known(&mut self, slot: usize, key: &str, value: &Bytes, doing: &str) {
        if !self.values.get(key).is_some_and(|s| s.contains(value)) {
            self.violate(
                slot,
                format!("{doing} {key:?} = {value:?}, which no node set"),
            );
        }
    }

    /// The entries the oracle saw the node in `slot` apply, still held.
    pub(crate) fn held(&self, slot: usize) -> Option<&Map<String, Entry>> {
        self.watches.get(slot).map(|w| &w.held)
    }

    /// Gets started on `slot`'s node and not completed.
    pub(crate) fn pending_gets(&self, slot: usize) -> usize {
        self.watches.get(slot).map_or(0, |w| w.gets.len())
    }
}

/// What a liveness check sees of one running node.
pub(crate) struct NodeView<'a> {
    pub(crate) slot: usize,
    pub(crate) core: &'a Core,
    pub(crate) endpoint: SocketAddr,
    pub(crate) host_ip: IpAddr,
    pub(crate) connected: Vec<SocketAddr>,
}

/// Liveness checks, run by the driver once the faults have ended. Each returns how
/// many checks passed and records a `liveness:` violation for each that failed.
impl Oracle {
    fn fail(&mut self, slot: usize, what: String) {
        self.violate(slot, format!("liveness: {what}"));
    }

    /// Every node has its host's address, sees exactly every other live node as a
    /// peer, and is connected to exactly those.
    pub(crate) fn check_peers(&mut self, nodes: &[NodeView]) -> u64 {
        let mut passed = 0;
        for n in nodes {
            if n.core.local_ip() != Some(n.host_ip) {
                let got = n.core.local_ip();
                self.fail(
                    n.slot,
                    format!("node has address {got:?}, host has {}", n.host_ip),
                );
                continue;
            }
            let want: BTreeSet<SocketAddr> = nodes
                .iter()
                .filter(|o| o.slot != n.slot)
                .map(|o| o.endpoint)
                .collect();
            let have: BTreeSet<SocketAddr> = n.core.peers().into_iter().collect();
            let connected: BTreeSet<SocketAddr> = n.connected.iter().copied().collect();
            if have != want {
                let missing: Vec<_> = want.difference(&have).take(3).collect();
                let extra: Vec<_> = have.difference(&want).take(3).collect();
                self.fail(
                    n.slot,
                    format!(
                        "sees {} peers, want {} live ones; missing e.g. {missing:?}, extra e.g. {extra:?}",
                        have.len(),
                        want.len()
                    ),
                );
            } else if connected != have {
                self.fail(n.slot, "connected endpoints differ from its peers".into());
            } else {
                passed += 1;
            }
        }
        passed
    }

    /// Every node (prototypes included) holds each of `keys` with its value.
    pub(crate) fn check_holds(&mut self, nodes: &[NodeView], keys: &[(String, Bytes)]) -> u64 {
        let mut passed = 0;
        for n in nodes {
            for (key, value) in keys {
                let got = n.core.value(key);
                if got == Some(&value[..]) {
                    passed += 1;
                } else {
                    self.fail(
                        n.slot,
                        format!("fresh key {key:?} = {value:?} arrived as {got:?}"),
                    );
                }
            }
        }
        passed
    }

    /// Every dkv node holds identical entries, tombstones included; each node's store
    /// is what its applied changes left: for every key the highest version it ever
    /// applied (so the winner of concurrent writes is the highest version, and no
    /// deleted key came back); and no write a durable node acknowledged is lost.
    pub(crate) fn check_converged(&mut self, nodes: &[NodeView]) -> u64 {
        let dkv: Vec<(usize, &Node)> = nodes
            .iter()
            .filter_map(|n| Some((n.slot, n.core.dkv()?)))
            .collect();
        let mut failures = Vec::new();
        let none = Map::default();
        for &(s, node) in &dkv {
            let held = self.held(s).unwrap_or(&none);
            let same = entry_count(node) == held.len()
                && held.iter().all(|(k, e)| node.entry(k).as_ref() == Some(e));
            if !same {
                failures.push((
                    s,
                    format!(
                        "its store ({} entries) is not what its applied changes left ({} entries)",
                        entry_count(node),
                        held.len()
                    ),
                ));
            }
        }
        // No write a durable node acknowledged is lost: every node holds it or a
        // newer entry (a delete may since have been forgotten past its horizon).
        for &(s, node) in &dkv {
            let lost: Vec<String> = self
                .acknowledged
                .iter()
                .filter(|(key, &(version, deleted))| match node.entry(key) {
                    Some(e) => e.version < version,
                    None => !deleted,
                })
                .map(|(key, (version, _))| format!("{key:?} at {version}"))
                .take(3)
                .collect();
            if !lost.is_empty() {
                failures.push((
                    s,
                    format!("lost acknowledged writes, e.g. {}", lost.join(", ")),
                ));
            }
        }
        if let Some((&(first, reference), rest)) = dkv.split_first() {
            for &(s, node) in rest {
                let same = entry_count(node) == entry_count(reference)
                    && reference
                        .entries()
                        .all(|(k, e)| node.entry(k).as_ref() == Some(&e));
                if !same {
                    failures.push((s, store_difference(first, reference, node)));
                }
            }
        }
        let passed = u64::from(failures.is_empty());
        for (s, f) in failures {
            self.fail(s, f);
        }
        passed
    }

    /// The dkv node in `slot` finished its bootstrap.
    pub(crate) fn check_caught_up(&mut self, slot: usize, node: Option<&Node>) -> u64 {
        let phase = node.map(|n| n.bootstrap().phase);
        if phase == Some(BootstrapPhase::Done) {
            1
        } else {
            self.fail(slot, format!("bootstrap is {phase:?}, not Done"));
            0
        }
    }
}

/// Entries a dkv node holds, tombstones included.
fn entry_count(node: &Node) -> usize {
    node.len() + node.tombstones()
}

/// How `node`'s store differs from the store of `reference` (slot `first`): how
/// many keys, and the first few.
fn store_difference(first: usize, reference: &Node, node: &Node) -> String {
    let reference: BTreeMap<&str, Entry> = reference.entries().collect();
    let theirs: BTreeMap<&str, Entry> = node.entries().collect();
    let mut diffs: Vec<String> = reference
        .iter()
        .filter(|(k, e)| theirs.get(*k) != Some(e))
        .map(|(k, e)| format!("{k:?}: {:?} here, {e:?} there", theirs.get(k)))
        .collect();
    diffs.extend(
        theirs
            .keys()
            .filter(|k| !reference.contains_key(*k))
            .map(|k| format!("{k:?}: only here")),
    );
    let n = diffs.len();
    diffs.truncate(3);
    format!(
        "store differs from node {first}'s in {n} key(s), e.g. {}",
        diffs.join("; ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use dkv_proto::{Applied, GetDone, Timestamp};

    const SLOT: usize = 0;
    const ID: NodeId = NodeId(*b"node-one");

    fn here() -> Whereabouts {
        Whereabouts {
            endpoint: "10.0.0.1:7000".parse().unwrap(),
            local_ip: Some("10.0.0.1".parse().unwrap()),
        }
    }

    fn version(ms: u64) -> Version {
        Version {
            ts: Timestamp::from_millis(ms),
            node: ID,
        }
    }

    fn applied(o: &mut Oracle, key: &str, ms: u64, value: Option<&'static str>, local: bool) {
        let entry = Entry {
            version: version(ms),
            value: value.map(|v| Bytes::from_static(v.as_bytes())),
        };
        let out = Output::Applied(Applied {
            key: key.into(),
            entry,
            local,
        });
        o.output(SLOT, here(), &out);
    }

    fn oracle() -> Oracle {
        let mut o = Oracle::default();
        o.boot(SLOT, ID, true);
        o
    }

    #[test]
    fn a_clock_that_runs_backward_is_a_violation() {
        let mut o = oracle();
        applied(&mut o, "a", 10, Some("x"), true);
        applied(&mut o, "b", 9, Some("y"), true);
        assert!(o.violations()[0].what.contains("clock ran backward"));
    }

    /// Node 1 applies node 0's writes of `k` in the given order.
    fn applied_elsewhere(o: &mut Oracle, order: &[(u64, Option<&'static str>)]) {
        o.boot(1, NodeId(*b"node-two"), true);
        for &(ms, value) in order {
            let out = Output::Applied(Applied {
                key: "k".into(),
                entry: Entry {
                    version: version(ms),
                    value: value.map(|v| Bytes::from_static(v.as_bytes())),
                },
                local: false,
            });
            o.output(1, here(), &out);
        }
    }

    #[test]
    fn a_deleted_key_that_comes_back_is_a_violation() {
        let mut o = oracle();
        applied(&mut o, "k", 10, Some("old"), true);
        applied(&mut o, "k", 20, None, true);
        applied_elsewhere(&mut o, &[(20, None), (10, Some("old"))]);
        assert!(o.violations()[0].what.contains("a deleted key came back"));
    }

    #[test]
    fn a_lower_version_winning_is_a_violation() {
        let mut o = oracle();
        applied(&mut o, "k", 10, Some("a"), true);
        applied(&mut o, "k", 20, Some("b"), true);
        applied_elsewhere(&mut o, &[(20, Some("b")), (10, Some("a"))]);
        assert!(o.violations()[0].what.contains("lower version"));
    }

    #[test]
    fn an_entry_nobody_wrote_is_a_violation() {
        let mut o = oracle();
        applied(&mut o, "k", 10, Some("real"), true);
        let forged = Output::GetDone(GetDone {
            id: GetId(1),
            key: "k".into(),
            value: Some(Bytes::from_static(b"forged")),
            version: Some(version(10)),
        });
        o.get_started(SLOT, GetId(1));
        o.output(SLOT, here(), &forged);
        assert!(o.violations()[0].what.contains("nobody wrote"));
    }

    #[test]
    fn a_stamped_value_no_prototype_set_is_a_violation() {
        let mut o = oracle();
        o.wrote(SLOT, "k", Some(&Bytes::from_static(b"dkv value")));
        applied(&mut o, "k", 10, Some("dkv value"), false);
        assert!(o.violations()[0].what.contains("no prototype set"));
    }

    #[test]
    fn a_deadline_left_due_after_a_timer_is_a_violation() {
        let mut o = oracle();
        let now = Instant::now();
        o.timer_fired(SLOT, now, Some(now + Duration::from_millis(1)));
        assert!(o.violations().is_empty());
        o.timer_fired(SLOT, now, Some(now));
        assert!(o.violations()[0].what.contains("deadline due"));
    }

    #[test]
    fn a_lost_acknowledged_write_fails_the_convergence_check() {
        let mut o = oracle();
        o.restored(SLOT, &Map::default());
        applied(&mut o, "k", 10, Some("acknowledged"), true);
        // Another node that never got it (as if the writer's disk were lost).
        let wall = dkv_proto::WallClock {
            at: Instant::now(),
            unix_ms: 0,
        };
        let config = dkv_proto::Config::new(NodeId(*b"node-two"), 7001, wall);
        let core = Core::Dkv(Box::new(Node::new(config)));
        let view = NodeView {
            slot: 1,
            core: &core,
            endpoint: "10.0.0.2:7001".parse().unwrap(),
            host_ip: "10.0.0.2".parse().unwrap(),
            connected: Vec::new(),
        };
        o.boot(1, NodeId(*b"node-two"), true);
        assert_eq!(o.check_converged(&[view]), 0);
        assert!(o.violations()[0].what.contains("lost acknowledged writes"));
    }

    /// A dkv node in slot 1 holding `entries` (restored), as a liveness view.
    fn node_holding(entries: &[(&str, Entry)]) -> Core {
        let wall = dkv_proto::WallClock {
            at: Instant::now(),
            unix_ms: 0,
        };
        let config = dkv_proto::Config::new(NodeId(*b"node-two"), 7001, wall);
        let mut node = Node::new(config);
        for (key, entry) in entries {
            node.restore(wall.at, key, entry.clone());
        }
        Core::Dkv(Box::new(node))
    }

    fn view(core: &Core) -> NodeView<'_> {
        NodeView {
            slot: 1,
            core,
            endpoint: "10.0.0.2:7001".parse().unwrap(),
            host_ip: "10.0.0.2".parse().unwrap(),
            connected: Vec::new(),
        }
    }

    #[test]
    fn a_store_unlike_its_applied_changes_fails_the_convergence_check() {
        let at = |ms| Entry {
            version: version(ms),
            value: Some(Bytes::from_static(b"v")),
        };
        let mut o = Oracle::default();
        o.boot(1, NodeId(*b"node-two"), true);
        o.restored(1, &Map::from_iter([("k".to_string(), at(10))]));
        // As applied: passes.
        let same = node_holding(&[("k", at(10))]);
        assert_eq!(o.check_converged(&[view(&same)]), 1);
        // Another version of the key, or one entry more, fails.
        let newer = node_holding(&[("k", at(20))]);
        assert_eq!(o.check_converged(&[view(&newer)]), 0);
        let more = node_holding(&[("k", at(10)), ("j", at(10))]);
        assert_eq!(o.check_converged(&[view(&more)]), 0);
        let what: Vec<&str> = o.violations().iter().map(|v| v.what.as_str()).collect();
        assert_eq!(what.len(), 2, "{what:?}");
        assert!(what
            .iter()
            .all(|w| w.contains("not what its applied changes left")));
    }

    #[test]
    fn a_write_below_the_restored_disk_is_a_violation() {
        let mut o = oracle();
        let restored = Map::from_iter([(
            "k".to_string(),
            Entry {
                version: version(100),
                value: None,
            },
        )]);
        o.restored(SLOT, &restored);
        applied(&mut o, "j", 50, Some("x"), true);
        assert!(o.violations()[0]
            .what
            .contains("clock restarted below its disk"));
    }

    #[test]
    fn connections_past_the_peer_bounds_are_violations() {
        let mut o = oracle();
        let limits = Limits {
            max_peers: 3,
            max_peers_per_ip: 2,
            ..Limits::default()
        };
        o.bound_peers(SLOT, &limits);
        for addr in ["10.0.0.2:1", "10.0.0.2:2", "10.0.0.3:1"] {
            o.output(SLOT, here(), &Output::Connect(addr.parse().unwrap()));
        }
        assert!(o.violations().is_empty(), "{:?}", o.violations());
        o.output(
            SLOT,
            here(),
            &Output::Connect("10.0.0.2:3".parse().unwrap()),
        );
        let what: Vec<&str> = o.violations().iter().map(|v| v.what.as_str()).collect();
        assert!(what[0].contains("over max_peers 3"), "{what:?}");
        assert!(what[1].contains("over max_peers_per_ip 2"), "{what:?}");
        // A disconnect frees the address's place.
        o.output(
            SLOT,
            here(),
            &Output::Disconnect("10.0.0.2:3".parse().unwrap()),
        );
        o.output(
            SLOT,
            here(),
            &Output::Disconnect("10.0.0.2:2".parse().unwrap()),
        );
        o.output(
            SLOT,
            here(),
            &Output::Connect("10.0.0.2:4".parse().unwrap()),
        );
        assert_eq!(o.violations().len(), 2);
    }

    #[test]
    fn connect_rules_are_checked() {
        let mut o = oracle();
        let me = here().endpoint;
        let other: SocketAddr = "10.0.0.2:7000".parse().unwrap();
        o.output(SLOT, here(), &Output::Connect(me));
        o.output(SLOT, here(), &Output::Connect(other));
        o.output(SLOT, here(), &Output::Connect(other));
        o.output(
            SLOT,
            here(),
            &Output::Disconnect("10.0.0.3:1".parse().unwrap()),
        );
        let what: Vec<&str> = o.violations().iter().map(|v| v.what.as_str()).collect();
        assert!(what[0].contains("itself"), "{what:?}");
        assert!(what[1].contains("twice"), "{what:?}");
        assert!(what[2].contains("never connected"), "{what:?}");
        o.stopped(SLOT);
        assert!(o.violations()[3].what.contains("never disconnected"));
    }
}
