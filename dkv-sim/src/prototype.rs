//! The Python prototype's behaviour as a small state machine, so mixed clusters can
//! be simulated: beacons, peers, an unversioned store, `set`/`question`/`answer`/
//! `list`/`list_answer`, and its bootstrap at its own pace (one question per 100 ms
//! poll). Its documented bug is kept: its worker dies on a `list_answer` addressed to
//! another node (and on any message it cannot parse), and then processes no message
//! again.

use bytes::Bytes;
use dkv_proto::{parse_beacon, GetDone, GetId, Message, NodeId, Output, Timings};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// The prototype's poll period: its bootstrap asks one key per poll.
const POLL: Duration = Duration::from_millis(100);

#[derive(Debug)]
enum Phase {
    Idle,
    Delay(Instant),
    Fetching(Instant),
    Settle(Instant),
    Done,
}

/// One prototype node.
#[derive(Debug)]
pub struct Prototype {
    id: NodeId,
    port: u16,
    timings: Timings,
    local_ip: Option<IpAddr>,
    next_beacon: Option<Instant>,
    peers: BTreeMap<SocketAddr, Instant>,
    store: BTreeMap<String, Bytes>,
    gets: BTreeMap<GetId, (String, Instant)>,
    next_get: u64,
    phase: Phase,
    to_fetch: VecDeque<String>,
    requested: BTreeSet<String>,
    dead: Option<String>,
    out: VecDeque<Output>,
}

impl Prototype {
    /// A prototype node with id `id` whose PUB socket is on `port`.
    pub fn new(id: NodeId, port: u16, timings: Timings) -> Prototype {
        Prototype {
            id,
            port,
            timings,
            local_ip: None,
            next_beacon: None,
            peers: BTreeMap::new(),
            store: BTreeMap::new(),
            gets: BTreeMap::new(),
            next_get: 0,
            phase: Phase::Idle,
            to_fetch: VecDeque::new(),
            requested: BTreeSet::new(),
            dead: None,
            out: VecDeque::new(),
        }
    }

    /// The node's id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// Why the worker died, if it did.
    pub fn dead(&self) -> Option<&str> {
        self.dead.as_deref()
    }

    /// The prototype's SUB subscriptions.
    pub fn subscriptions(&self) -> Vec<Bytes> {
        let with_id = |name: &[u8]| {
            let mut t = name.to_vec();
            t.push(b' ');
            t.extend_from_slice(&self.id.0);
            Bytes::from(t)
        };
        vec![
            Bytes::from_static(b"set"),
            Bytes::from_static(b"question"),
            Bytes::from_static(b"list"),
            with_id(b"answer"),
            with_id(b"list_answer"),
        ]
    }

    /// The local address while the net is up.
    pub fn local_ip(&self) -> Option<IpAddr> {
        self.local_ip
    }

    /// Live peers' endpoints.
    pub fn peers(&self) -> impl Iterator<Item = SocketAddr> + '_ {
        self.peers.keys().copied()
    }

    /// The value held for `key`.
    pub fn value(&self, key: &str) -> Option<&Bytes> {
        self.store.get(key)
    }

    /// Whether the bootstrap is done.
    pub fn bootstrapped(&self) -> bool {
        matches!(self.phase, Phase::Done)
    }

    /// The net came up.
    pub fn handle_net_up(&mut self, now: Instant, ip: IpAddr) {
        if self.local_ip == Some(ip) {
            return;
        }
        self.local_ip = Some(ip);
        self.next_beacon = Some(now);
        self.phase = Phase::Delay(now + self.timings.beacon_interval * 2);
        self.to_fetch.clear();
        self.requested.clear();
        self.handle_timeout(now);
    }

    /// The net went down.
    pub fn handle_net_down(&mut self, _now: Instant) {
        self.local_ip = None;
        self.next_beacon = None;
    }

    /// A datagram on the beacon port.
    pub fn handle_beacon(&mut self, now: Instant, src: IpAddr, datagram: &[u8]) {
        let Ok(port) = parse_beacon(datagram) else {
            return;
        };
        if self.local_ip == Some(src) && port == self.port {
            return;
        }
        let addr = SocketAddr::new(src, port);
        if self.peers.insert(addr, now).is_none() {
            self.out.push_back(Output::Connect(addr));
        }
    }

    /// A message its SUB socket received.
    pub fn handle_decoded(&mut self, now: Instant, msg: Message) {
        if self.dead.is_some() {
            return;
        }
        match msg {
            Message::Set { key, value } | Message::Answer { key, value, .. } => {
                for (id, _) in self.take_gets(&key) {
                    self.done(id, key.clone(), Some(value.clone()));
                }
                self.store.insert(key, value);
            }
            Message::Question { asker, key } => {
                if let Some(value) = self.store.get(&key).filter(|v| !v.is_empty()) {
                    let value = value.clone();
                    self.publish(Message::Answer { asker, key, value });
                }
            }
            Message::List { asker } => {
                let keys = self.store.keys().cloned().collect();
                self.publish(Message::ListAnswer { asker, keys });
            }
            Message::ListAnswer { asker, keys } => {
                if asker != self.id {
                    self.dead = Some(format!("list_answer for {asker} (the prototype's bug)"));
                    return;
                }
                if matches!(self.phase, Phase::Fetching(_) | Phase::Settle(_)) {
                    for k in keys {
                        if self.requested.insert(k.clone()) {
                            self.to_fetch.push_back(k);
                        }
                    }
                    if matches!(self.phase, Phase::Settle(_)) && !self.to_fetch.is_empty() {
                        self.phase = Phase::Fetching(now);
                    }
                }
            }
            Message::Dkv(_) => self.dead = Some("a dkv/2 message reached it".into()),
        }
    }

    /// `set(key, value)`.
    pub fn set(&mut self, _now: Instant, key: String, value: Bytes) {
        self.store.insert(key.clone(), value.clone());
        self.publish(Message::Set { key, value });
    }

    /// `get(key)` with the default timeout.
    pub fn get(&mut self, now: Instant, key: String) -> GetId {
        let id = GetId(self.next_get);
        self.next_get += 1;
        if let Some(v) = self.store.get(&key) {
            let v = v.clone();
            self.done(id, key, Some(v));
            return id;
        }
        self.publish(Message::Question {
            asker: self.id,
            key: key.clone(),
        });
        self.gets.insert(id, (key, now + self.timings.get_timeout));
        id
    }

    /// Timers: beacons and peer timeouts, gets, bootstrap steps.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Some(at) = self.next_beacon.filter(|&at| at <= now) {
            self.out
                .push_back(Output::Beacon(Bytes::from(dkv_proto::encode_beacon(
                    self.port,
                ))));
            self.next_beacon = Some((at + self.timings.beacon_interval).max(now));
            let timeout = self.timings.peer_timeout;
            let dead: Vec<SocketAddr> = self
                .peers
                .iter()
                .filter(|(_, seen)| now.saturating_duration_since(**seen) > timeout)
                .map(|(a, _)| *a)
                .collect();
            for a in dead {
                self.peers.remove(&a);
                self.out.push_back(Output::Disconnect(a));
            }
        }
        let due: Vec<GetId> = self
            .gets
            .iter()
            .filter(|(_, (_, at))| *at <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            if let Some((key, _)) = self.gets.remove(&id) {
                let v = self.store.get(&key).cloned();
                self.done(id, key, v);
            }
        }
        match self.phase {
            Phase::Delay(at) if at <= now => {
                self.publish(Message::List { asker: self.id });
                self.phase = Phase::Fetching(now + POLL);
            }
            Phase::Fetching(at) if at <= now => match self.to_fetch.pop_front() {
                Some(key) => {
                    self.publish(Message::Question {
                        asker: self.id,
                        key,
                    });
                    self.phase = Phase::Fetching(now + POLL);
                }
                None => self.phase = Phase::Settle(now + self.timings.beacon_interval * 2),
            },
            Phase::Settle(at) if at <= now => self.phase = Phase::Done,
            _ => {}
        }
    }

    /// Every peer goes down, gets complete, the net goes down.
    pub fn shutdown(&mut self, now: Instant) {
        for a in std::mem::take(&mut self.peers).into_keys() {
            self.out.push_back(Output::Disconnect(a));
        }
        for (id, (key, _)) in std::mem::take(&mut self.gets) {
            let v = self.store.get(&key).cloned();
            self.done(id, key, v);
        }
        self.handle_net_down(now);
    }

    /// The next output.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// The next deadline.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let phase = match self.phase {
            Phase::Delay(at) | Phase::Fetching(at) | Phase::Settle(at) => Some(at),
            Phase::Idle | Phase::Done => None,
        };
        let gets = self.gets.values().map(|(_, at)| *at).min();
        [self.next_beacon, phase, gets].into_iter().flatten().min()
    }

    fn publish(&mut self, msg: Message) {
        self.out.push_back(Output::Publish(msg));
    }

    fn take_gets(&mut self, key: &str) -> Vec<(GetId, String)> {
        let ids: Vec<GetId> = self
            .gets
            .iter()
            .filter(|(_, (k, _))| k == key)
            .map(|(id, _)| *id)
            .collect();
        ids.into_iter()
            .filter_map(|id| self.gets.remove(&id).map(|(k, _)| (id, k)))
            .collect()
    }

    fn done(&mut self, id: GetId, key: String, value: Option<Bytes>) {
        self.out.push_back(Output::GetDone(GetDone {
            id,
            key,
            value,
            version: None,
        }));
    }
}
