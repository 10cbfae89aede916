//! The node: discovery, peers, the store, gets and bootstrap, as one sans-IO state
//! machine driven by timestamped inputs.

use crate::beacon::{encode_beacon, parse_beacon};
use crate::bootstrap::{Bootstrap, BootstrapProgress};
use crate::config::{later, Config};
use crate::message::{subscriptions, Message, NodeId};
use crate::stats::Stats;
use bytes::Bytes;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// Identifies one [`Node::get`] call; its [`GetDone`] carries the same id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GetId(pub u64);

/// The completion of a get.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GetDone {
    /// The id [`Node::get`] returned.
    pub id: GetId,
    /// The key asked for.
    pub key: String,
    /// The value held locally when the get completed, if any.
    pub value: Option<Bytes>,
}

/// Something the transport must do, drained with [`Node::poll_output`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Publish this message on the PUB socket ([`Message::encode`] gives the frames).
    Publish(Message),
    /// Broadcast this beacon payload on the UDP beacon port.
    Beacon(Bytes),
    /// A peer came up: connect the SUB socket to `tcp://<addr>`.
    Connect(SocketAddr),
    /// A peer went down: disconnect the SUB socket from `tcp://<addr>`.
    Disconnect(SocketAddr),
    /// A get completed.
    GetDone(GetDone),
}

/// Outputs waiting to be drained, and the counters that describe them.
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    queue: VecDeque<Output>,
    pub(crate) stats: Stats,
}

impl Outbox {
    pub(crate) fn publish(&mut self, msg: Message) {
        self.stats.count_out(msg.kind());
        self.queue.push_back(Output::Publish(msg));
    }

    fn push(&mut self, output: Output) {
        self.queue.push_back(output);
    }
}

/// Live peers and when each was last heard.
#[derive(Debug, Default)]
struct Peers {
    last_seen: BTreeMap<SocketAddr, Instant>,
    by_age: BTreeSet<(Instant, SocketAddr)>,
}

impl Peers {
    /// Records a beacon; true if the peer is new.
    fn heard(&mut self, now: Instant, addr: SocketAddr) -> bool {
        let previous = self.last_seen.insert(addr, now);
        if let Some(seen) = previous {
            self.by_age.remove(&(seen, addr));
        }
        self.by_age.insert((now, addr));
        previous.is_none()
    }

    fn oldest(&self) -> Option<(Instant, SocketAddr)> {
        self.by_age.first().copied()
    }

    fn remove(&mut self, addr: SocketAddr) {
        if let Some(seen) = self.last_seen.remove(&addr) {
            self.by_age.remove(&(seen, addr));
        }
    }
}

/// Gets that missed locally, indexed by deadline and by key.
#[derive(Debug, Default)]
struct PendingGets {
    deadline: BTreeMap<GetId, Instant>,
    by_deadline: BTreeMap<(Instant, GetId), String>,
    by_key: BTreeMap<String, Vec<GetId>>,
}

impl PendingGets {
    fn insert(&mut self, id: GetId, key: String, deadline: Instant) {
        self.deadline.insert(id, deadline);
        self.by_key.entry(key.clone()).or_default().push(id);
        self.by_deadline.insert((deadline, id), key);
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.by_deadline.first_key_value().map(|((at, _), _)| *at)
    }

    /// Removes and returns every get waiting on `key`.
    fn take_key(&mut self, key: &str) -> Vec<GetId> {
        let ids = self.by_key.remove(key).unwrap_or_default();
        for id in &ids {
            if let Some(at) = self.deadline.remove(id) {
                self.by_deadline.remove(&(at, *id));
            }
        }
        ids
    }

    /// Removes and returns the earliest get due at or before `now`.
    fn pop_due(&mut self, now: Instant) -> Option<(GetId, String)> {
        let (&(at, id), _) = self.by_deadline.first_key_value()?;
        if at > now {
            return None;
        }
        let key = self.by_deadline.remove(&(at, id))?;
        self.deadline.remove(&id);
        if let Some(ids) = self.by_key.get_mut(&key) {
            ids.retain(|&other| other != id);
            if ids.is_empty() {
                self.by_key.remove(&key);
            }
        }
        Some((id, key))
    }

    /// Removes and returns every pending get.
    fn drain(&mut self) -> Vec<(GetId, String)> {
        self.deadline.clear();
        self.by_key.clear();
        std::mem::take(&mut self.by_deadline)
            .into_iter()
            .map(|((_, id), key)| (id, key))
            .collect()
    }

    fn len(&self) -> usize {
        self.deadline.len()
    }
}

/// One dkv node: the whole prototype protocol as a pure state machine.
///
/// The node does no I/O, reads no clock and draws no randomness: its id comes in the
/// [`Config`], and every input carries `now`, which must never go backwards.
///
/// # Contract
/// 1. Feed one input: [`handle_beacon`](Self::handle_beacon),
///    [`handle_message`](Self::handle_message), [`handle_net_up`](Self::handle_net_up),
///    [`handle_net_down`](Self::handle_net_down), [`set`](Self::set),
///    [`get`](Self::get), [`shutdown`](Self::shutdown), or
///    [`handle_timeout`](Self::handle_timeout) once the deadline is reached.
/// 2. Drain [`poll_output`](Self::poll_output) until it returns `None`, carrying out
///    each output in order.
/// 3. Ask [`poll_timeout`](Self::poll_timeout) for the next deadline and call
///    `handle_timeout` when it passes. Any input may move the deadline, so ask again
///    after every input.
///
/// The SUB socket must carry the prefixes [`subscriptions`](Self::subscriptions) lists.
/// Malformed input is dropped and counted in [`stats`](Self::stats); it never panics
/// and leaves the rest of the state untouched.
#[derive(Debug)]
pub struct Node {
    config: Config,
    beacon: Bytes,
    local_ip: Option<IpAddr>,
    /// The last address the node had, kept across net down.
    last_ip: Option<IpAddr>,
    next_beacon: Option<Instant>,
    peers: Peers,
    store: BTreeMap<String, Bytes>,
    gets: PendingGets,
    next_get: u64,
    bootstrap: Bootstrap,
    out: Outbox,
}

impl Node {
    /// A node with no address yet: it beacons and bootstraps after
    /// [`handle_net_up`](Self::handle_net_up).
    pub fn new(mut config: Config) -> Node {
        let interval = &mut config.timings.beacon_interval;
        *interval = (*interval).max(crate::Timings::MIN_BEACON_INTERVAL);
        Node {
            beacon: Bytes::from(encode_beacon(config.pub_port)),
            config,
            local_ip: None,
            last_ip: None,
            next_beacon: None,
            peers: Peers::default(),
            store: BTreeMap::new(),
            gets: PendingGets::default(),
            next_get: 0,
            bootstrap: Bootstrap::new(),
            out: Outbox::default(),
        }
    }

    // ---- getters ----

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.config.id
    }

    /// The configuration the node was created with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The SUB socket's prefix subscriptions.
    pub fn subscriptions(&self) -> Vec<Bytes> {
        subscriptions(self.config.id)
    }

    /// The local address while the net is up.
    pub fn local_ip(&self) -> Option<IpAddr> {
        self.local_ip
    }

    /// Live peers' PUB endpoints, in address order.
    pub fn peers(&self) -> impl Iterator<Item = SocketAddr> + '_ {
        self.peers.last_seen.keys().copied()
    }

    /// The value held locally for `key`.
    pub fn value(&self, key: &str) -> Option<&Bytes> {
        self.store.get(key)
    }

    /// Every key and value held locally, in key order.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &Bytes)> + '_ {
        self.store.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Every key held locally, in key order.
    pub fn keys(&self) -> impl Iterator<Item = &str> + '_ {
        self.store.keys().map(String::as_str)
    }

    /// Gets still waiting for a value or their timeout.
    pub fn pending_gets(&self) -> usize {
        self.gets.len()
    }

    /// Where the current bootstrap stands.
    pub fn bootstrap(&self) -> BootstrapProgress {
        self.bootstrap.progress()
    }

    /// The node's counters.
    pub fn stats(&self) -> &Stats {
        &self.out.stats
    }

    // ---- inputs ----

    /// The transport found a local address: at start, after losing it, or a new one.
    /// The node starts beaconing at once and (re)starts bootstrap. Repeating the
    /// current address changes nothing. On an address other than the last one, every
    /// live peer is re-dialed (`Disconnect` then `Connect`): connections made from a
    /// vanished address are dead but may never report it.
    pub fn handle_net_up(&mut self, now: Instant, local_ip: IpAddr) {
        if self.local_ip == Some(local_ip) {
            return;
        }
        self.local_ip = Some(local_ip);
        let own = SocketAddr::new(local_ip, self.config.pub_port);
        if self.peers.last_seen.contains_key(&own) {
            // That endpoint is ours now: whoever held it before is gone.
            self.peer_down(own);
        }
        if self
            .last_ip
            .replace(local_ip)
            .is_some_and(|last| last != local_ip)
        {
            for addr in self.peers.last_seen.keys() {
                self.out.push(Output::Disconnect(*addr));
                self.out.push(Output::Connect(*addr));
            }
        }
        self.next_beacon = Some(now);
        self.out.stats.net_up += 1;
        self.bootstrap
            .start(now, &self.config.timings, &mut self.out);
        self.handle_timeout(now);
    }

    /// The transport lost the local address (sending a beacon failed). Beacons stop,
    /// an unfinished bootstrap is abandoned, and peers time out as they fall silent.
    pub fn handle_net_down(&mut self, _now: Instant) {
        if self.local_ip.take().is_none() {
            return;
        }
        self.next_beacon = None;
        self.out.stats.net_down += 1;
        self.bootstrap.abandon();
    }

    /// A UDP datagram arrived on the beacon port from `src`. The first beacon of an
    /// `(ip, port)` pair brings the peer up; later ones keep it alive. Own beacons,
    /// beacons heard while the net is down, and malformed ones are counted and ignored.
    pub fn handle_beacon(&mut self, now: Instant, src: IpAddr, datagram: &[u8]) {
        let port = match parse_beacon(datagram) {
            Ok(port) => port,
            Err(err) => return self.out.stats.count_beacon_error(err),
        };
        let Some(local_ip) = self.local_ip else {
            self.out.stats.drop_beacon_net_down += 1;
            return;
        };
        if src == local_ip && port == self.config.pub_port {
            self.out.stats.beacons_own += 1;
            return;
        }
        self.out.stats.beacons_in += 1;
        let addr = SocketAddr::new(src, port);
        if self.peers.heard(now, addr) {
            self.out.stats.peers_up += 1;
            self.out.push(Output::Connect(addr));
        }
    }

    /// A multipart message arrived on the SUB socket. It is decoded strictly; a
    /// malformed one, or one addressed to another node, is counted and ignored.
    pub fn handle_message<F: AsRef<[u8]>>(&mut self, now: Instant, frames: &[F]) {
        match Message::decode(frames) {
            Ok(msg) => self.handle_decoded(now, msg),
            Err(err) => self.out.stats.count_decode_error(err),
        }
    }

    /// Like [`handle_message`](Self::handle_message), for a message already decoded.
    pub fn handle_decoded(&mut self, now: Instant, msg: Message) {
        let own = self.config.id;
        match msg {
            Message::Answer { asker, .. } if asker != own => {
                self.out.stats.drop_answer_not_ours += 1;
                return;
            }
            Message::ListAnswer { asker, .. } if asker != own => {
                self.out.stats.drop_list_answer_not_ours += 1;
                return;
            }
            _ => {}
        }
        self.out.stats.count_in(msg.kind());
        match msg {
            Message::Set { key, value } | Message::Answer { key, value, .. } => {
                self.store(now, key, value)
            }
            Message::Question { asker, key } => match self.store.get(&key) {
                Some(value) if !value.is_empty() => {
                    let value = value.clone();
                    self.out.publish(Message::Answer { asker, key, value });
                }
                _ => {}
            },
            Message::List { asker } => {
                let keys = self.store.keys().cloned().collect();
                self.out.publish(Message::ListAnswer { asker, keys });
            }
            Message::ListAnswer { keys, .. } => {
                self.bootstrap
                    .on_list_answer(now, keys, own, &self.config.timings, &mut self.out)
            }
        }
    }

    /// Stores `key = value` locally and publishes it to every peer.
    pub fn set(&mut self, now: Instant, key: String, value: Bytes) {
        self.out.stats.sets += 1;
        self.out.publish(Message::Set {
            key: key.clone(),
            value: value.clone(),
        });
        self.store(now, key, value);
    }

    /// Starts a get. A local value completes it at once; otherwise a question is
    /// published and the get completes when a value for `key` arrives or `timeout`
    /// (default: the configured get timeout) passes, with whatever is then held.
    /// Either way exactly one [`Output::GetDone`] with the returned id follows.
    pub fn get(&mut self, now: Instant, key: String, timeout: Option<Duration>) -> GetId {
        let id = GetId(self.next_get);
        self.next_get += 1;
        if let Some(value) = self.store.get(&key) {
            self.out.stats.gets_hit += 1;
            let value = Some(value.clone());
            self.out.push(Output::GetDone(GetDone { id, key, value }));
            return id;
        }
        self.out.publish(Message::Question {
            asker: self.config.id,
            key: key.clone(),
        });
        let timeout = timeout.unwrap_or(self.config.timings.get_timeout);
        self.gets.insert(id, key, later(now, timeout));
        id
    }

    /// Fires every timer due at or before `now`: beacons, peer timeouts, get
    /// timeouts and bootstrap steps. Calling it early is harmless.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Some(at) = self.next_beacon.filter(|&at| at <= now) {
            self.out.stats.beacons_out += 1;
            self.out.push(Output::Beacon(self.beacon.clone()));
            let interval = self.config.timings.beacon_interval;
            let next = later(at, interval);
            self.next_beacon = Some(if next > now {
                next
            } else {
                later(now, interval)
            });
        }
        while let Some((addr, expiry)) = self.next_peer_expiry() {
            if expiry > now {
                break;
            }
            self.peer_down(addr);
        }
        while let Some((id, key)) = self.gets.pop_due(now) {
            self.out.stats.gets_timed_out += 1;
            self.complete_get(id, key);
        }
        self.bootstrap
            .on_timeout(now, self.config.id, &self.config.timings, &mut self.out);
    }

    /// Stops the node: every peer goes down, the net goes down, and every pending get
    /// completes with what is held locally. A later net up starts it again.
    pub fn shutdown(&mut self, now: Instant) {
        let peers: Vec<SocketAddr> = self.peers().collect();
        for addr in peers {
            self.peer_down(addr);
        }
        for (id, key) in self.gets.drain() {
            self.complete_get(id, key);
        }
        self.handle_net_down(now);
    }

    // ---- outputs ----

    /// The next thing the transport must do, in order; `None` when drained.
    #[must_use]
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.queue.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) must next be called; `None`
    /// while no timer is armed.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        [
            self.next_beacon,
            self.next_peer_expiry().map(|(_, at)| at),
            self.gets.next_deadline(),
            self.bootstrap.next_deadline(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    // ---- internals ----

    fn store(&mut self, now: Instant, key: String, value: Bytes) {
        for id in self.gets.take_key(&key) {
            self.out.stats.gets_answered += 1;
            self.out.push(Output::GetDone(GetDone {
                id,
                key: key.clone(),
                value: Some(value.clone()),
            }));
        }
        self.bootstrap.on_stored(
            now,
            &key,
            self.config.id,
            &self.config.timings,
            &mut self.out,
        );
        self.store.insert(key, value);
    }

    /// The peer that falls silent first, and when.
    fn next_peer_expiry(&self) -> Option<(SocketAddr, Instant)> {
        let (seen, addr) = self.peers.oldest()?;
        Some((addr, later(seen, self.config.timings.peer_timeout)))
    }

    fn complete_get(&mut self, id: GetId, key: String) {
        let value = self.store.get(&key).cloned();
        self.out.push(Output::GetDone(GetDone { id, key, value }));
    }

    fn peer_down(&mut self, addr: SocketAddr) {
        self.peers.remove(addr);
        self.out.stats.peers_down += 1;
        self.out.push(Output::Disconnect(addr));
    }
}
