//! Single-node test helpers: a fixed epoch and wall clock, ids and addresses, nodes
//! built with that wall clock, output draining and filtering, and entry builders.
//! Multi-node LAN tests run on the simulator (`dkv-sim`), not here.
#![allow(dead_code)]

use bytes::Bytes;
use dkv_proto::wire::v2::{Body, Envelope, Record};
use dkv_proto::{
    encode_hello, Applied, Config, Entry, GetDone, Message, Node, NodeId, Output, Timestamp,
    Version, WallClock,
};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Unix milliseconds the wall clock reads at [`t0`].
pub const WALL_MS: u64 = 1_700_000_000_000;

/// A fixed epoch so every test speaks in offsets.
pub fn t0() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// `ms` milliseconds after [`t0`].
pub fn at(ms: u64) -> Instant {
    t0() + Duration::from_millis(ms)
}

/// The wall clock every test node starts with: [`WALL_MS`] at [`t0`].
pub fn wall() -> WallClock {
    WallClock {
        at: t0(),
        unix_ms: WALL_MS,
    }
}

/// A timestamp `ms` milliseconds after [`WALL_MS`] (negative: before).
pub fn ts(ms: i64) -> Timestamp {
    Timestamp::from_millis(WALL_MS.checked_add_signed(ms).unwrap())
}

/// The version node `n` gives a write `ms` after [`WALL_MS`].
pub fn version(ms: i64, n: u8) -> Version {
    Version {
        ts: ts(ms),
        node: id(n),
    }
}

/// An entry of node `n`'s write `ms` after [`WALL_MS`]; `None` is a delete.
pub fn entry(ms: i64, n: u8, value: Option<&str>) -> Entry {
    Entry {
        version: version(ms, n),
        value: value.map(|v| Bytes::copy_from_slice(v.as_bytes())),
    }
}

pub fn record(key: &str, entry: Entry) -> Record {
    Record {
        key: key.into(),
        entry,
    }
}

pub fn ip(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 0, 0, last))
}

pub fn addr(last: u8, port: u16) -> SocketAddr {
    SocketAddr::new(ip(last), port)
}

pub fn id(n: u8) -> NodeId {
    NodeId([n; 8])
}

/// Node `n`'s config: PUB port `port`, the fixed [`wall`] clock, seed `n`.
pub fn config(n: u8, port: u16) -> Config {
    let mut c = Config::new(id(n), port, wall());
    c.seed = u64::from(n);
    c
}

pub fn node(n: u8, port: u16) -> Node {
    Node::new(config(n, port))
}

/// Node `n` with its net up at `ip(n)` at `now`, first outputs drained.
pub fn up_node(n: u8, port: u16, now: Instant) -> Node {
    up(Node::new(config(n, port)), n, now)
}

/// `node` with its net up at `ip(n)` at `now`, first outputs drained.
pub fn up(mut node: Node, n: u8, now: Instant) -> Node {
    node.handle_net_up(now, ip(n));
    drain(&mut node);
    node
}

/// The hello of node `n` with its PUB socket on `port`.
pub fn hello(n: u8, port: u16) -> Vec<u8> {
    encode_hello(port, id(n))
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

/// The published prototype messages.
pub fn legacy(outputs: &[Output]) -> Vec<Message> {
    published(outputs)
        .into_iter()
        .filter(|m| !matches!(m, Message::Dkv(_)))
        .collect()
}

/// The published dkv/2 messages.
pub fn dkv(outputs: &[Output]) -> Vec<Envelope> {
    published(outputs)
        .into_iter()
        .filter_map(|m| match m {
            Message::Dkv(e) => Some(e),
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

pub fn applied(outputs: &[Output]) -> Vec<Applied> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Applied(a) => Some(a.clone()),
            _ => None,
        })
        .collect()
}

pub fn datagrams(outputs: &[Output]) -> Vec<Vec<u8>> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Beacon(p) => Some(p.to_vec()),
            _ => None,
        })
        .collect()
}

/// A dkv/2 message from node `from` to every dkv node.
pub fn to_all(from: u8, body: Body) -> Message {
    Message::Dkv(Envelope {
        to: None,
        from: id(from),
        body,
    })
}

/// A dkv/2 message from node `from` to node `to`.
pub fn to_one(from: u8, to: u8, body: Body) -> Message {
    Message::Dkv(Envelope {
        to: Some(id(to)),
        from: id(from),
        body,
    })
}

/// A `put` of `records` from node `from`, without prototype copies.
pub fn put(from: u8, records: Vec<Record>) -> Message {
    to_all(
        from,
        Body::Put {
            echo: false,
            records,
        },
    )
}

/// Delivers `msg` to `node` through the codec, as the SUB socket would.
pub fn deliver(node: &mut Node, now: Instant, msg: &Message) {
    node.handle_message(now, &msg.encode());
}

pub fn bytes(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

pub fn value<'a>(node: &'a Node, key: &str) -> Option<&'a [u8]> {
    node.value(key)
}
