//! Test support: a clock, output draining, and a tiny in-memory LAN wiring cores
//! together (broadcast beacons, PUB/SUB with prefix subscriptions, FIFO delivery).
#![allow(dead_code)]

use dkv_proto::{Config, GetDone, GetId, Message, Node, NodeId, Output, Timings};
use std::collections::{BTreeSet, VecDeque};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// A fixed epoch so every test speaks in offsets.
pub fn t0() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

pub fn at(ms: u64) -> Instant {
    t0() + Duration::from_millis(ms)
}

pub fn ip(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 0, 0, last))
}

pub fn id(n: u8) -> NodeId {
    NodeId([n; 8])
}

pub fn node(n: u8, port: u16) -> Node {
    Node::new(Config::new(id(n), port))
}

pub fn drain(node: &mut Node) -> Vec<Output> {
    std::iter::from_fn(|| node.poll_output()).collect()
}

pub fn published(outputs: &[Output]) -> Vec<Message> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Publish(m) => Some(m.clone()),
            _ => None,
        })
        .collect()
}

pub fn completions(outputs: &[Output]) -> Vec<GetDone> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::GetDone(d) => Some(d.clone()),
            _ => None,
        })
        .collect()
}

/// A node that is up at `ip(n)` with its first outputs drained.
pub fn up_node(n: u8, port: u16, now: Instant) -> Node {
    let mut node = node(n, port);
    node.handle_net_up(now, ip(n));
    drain(&mut node);
    node
}

/// One host of the [`Lan`]: a core plus what its SUB socket is connected to.
pub struct Host {
    pub node: Node,
    pub ip: IpAddr,
    pub link_up: bool,
    pub connected: BTreeSet<SocketAddr>,
    pub done: Vec<GetDone>,
}

impl Host {
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::new(self.ip, self.node.config().pub_port)
    }
}

enum Delivery {
    Beacon {
        to: usize,
        src: IpAddr,
        payload: Vec<u8>,
    },
    Message {
        to: usize,
        frames: Vec<bytes::Bytes>,
    },
}

/// An in-memory LAN with zero latency: every output is carried out in FIFO order
/// and time jumps to the earliest deadline.
pub struct Lan {
    pub hosts: Vec<Host>,
    pub now: Instant,
    queue: VecDeque<Delivery>,
    pub timings: Timings,
    /// Subscribe `list` like the prototype instead of dkv's `list `.
    pub prototype_subscriptions: bool,
}

impl Lan {
    pub fn new(timings: Timings) -> Lan {
        Lan {
            hosts: Vec::new(),
            now: t0(),
            queue: VecDeque::new(),
            timings,
            prototype_subscriptions: false,
        }
    }

    /// Adds a host with its link up and the net up at the current time.
    pub fn add(&mut self) -> usize {
        let n = self.hosts.len();
        let mut config = Config::new(id(n as u8 + 1), 7000 + n as u16);
        config.timings = self.timings.clone();
        let mut node = Node::new(config);
        node.handle_net_up(self.now, ip(n as u8 + 1));
        self.hosts.push(Host {
            node,
            ip: ip(n as u8 + 1),
            link_up: true,
            connected: BTreeSet::new(),
            done: Vec::new(),
        });
        self.flush();
        n
    }

    pub fn set(&mut self, h: usize, key: &str, value: &str) {
        let now = self.now;
        self.hosts[h].node.set(
            now,
            key.into(),
            bytes::Bytes::copy_from_slice(value.as_bytes()),
        );
        self.flush();
    }

    pub fn get(&mut self, h: usize, key: &str) -> GetId {
        let now = self.now;
        let id = self.hosts[h].node.get(now, key.into(), None);
        self.flush();
        id
    }

    /// The completion of get `id` on host `h`, once it happened.
    pub fn completion(&self, h: usize, id: GetId) -> Option<&GetDone> {
        self.hosts[h].done.iter().find(|d| d.id == id)
    }

    pub fn value(&self, h: usize, key: &str) -> Option<&[u8]> {
        self.hosts[h].node.value(key).map(|v| &v[..])
    }

    /// Carries out every pending output and delivery, at the current time.
    pub fn flush(&mut self) {
        for _ in 0..10_000_000 {
            let mut progressed = false;
            for h in 0..self.hosts.len() {
                while let Some(output) = self.hosts[h].node.poll_output() {
                    progressed = true;
                    self.carry_out(h, output);
                }
            }
            if let Some(delivery) = self.queue.pop_front() {
                progressed = true;
                let now = self.now;
                match delivery {
                    Delivery::Beacon { to, src, payload } => {
                        self.hosts[to].node.handle_beacon(now, src, &payload)
                    }
                    Delivery::Message { to, frames } => {
                        self.hosts[to].node.handle_message(now, &frames)
                    }
                }
            }
            if !progressed {
                return;
            }
        }
        panic!("the LAN never went quiet");
    }

    fn carry_out(&mut self, h: usize, output: Output) {
        match output {
            Output::Beacon(payload) => {
                if !self.hosts[h].link_up {
                    return;
                }
                let src = self.hosts[h].ip;
                for to in 0..self.hosts.len() {
                    if self.hosts[to].link_up {
                        let payload = payload.to_vec();
                        self.queue.push_back(Delivery::Beacon { to, src, payload });
                    }
                }
            }
            Output::Publish(msg) => {
                let from = self.hosts[h].addr();
                let frames = msg.encode();
                for to in 0..self.hosts.len() {
                    let host = &self.hosts[to];
                    let reachable = host.link_up && self.hosts[h].link_up;
                    let subscribed = host.node.subscriptions().iter().any(|p| {
                        let p = match &p[..] {
                            b"list " if self.prototype_subscriptions => &b"list"[..],
                            p => p,
                        };
                        frames[0].starts_with(p)
                    });
                    if reachable && subscribed && host.connected.contains(&from) {
                        let frames = frames.clone();
                        self.queue.push_back(Delivery::Message { to, frames });
                    }
                }
            }
            Output::Connect(addr) => {
                assert!(self.hosts[h].connected.insert(addr), "double connect");
            }
            Output::Disconnect(addr) => {
                assert!(self.hosts[h].connected.remove(&addr), "stray disconnect");
            }
            Output::GetDone(done) => self.hosts[h].done.push(done),
        }
    }

    /// Advances time deadline by deadline up to `until`, carrying everything out.
    pub fn run_until(&mut self, until: Instant) {
        self.flush();
        for _ in 0..10_000_000 {
            let next = self
                .hosts
                .iter()
                .filter_map(|h| h.node.poll_timeout())
                .min()
                .filter(|&t| t <= until);
            let Some(next) = next else { break };
            self.now = self.now.max(next);
            let now = self.now;
            for host in &mut self.hosts {
                if host.node.poll_timeout().is_some_and(|t| t <= now) {
                    host.node.handle_timeout(now);
                }
            }
            self.flush();
        }
        self.now = self.now.max(until);
    }

    pub fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        self.run_until(until);
    }

    pub fn peers(&self, h: usize) -> Vec<SocketAddr> {
        self.hosts[h].node.peers().collect()
    }
}
