//! Target `seal`: the sealed formats and a keyed node. The first byte picks a mode:
//! - 0: the rest, as text, through [`Keyring::parse`];
//! - 1: `topic: bytes`, `frame: bytes` through [`Keyring::open_frame`];
//! - 2: the rest through [`Keyring::open_hello`];
//! - 3: `frames: u8` (mod 4) then that many `frame: bytes`, to a keyed node's
//!   `handle_message`, twice;
//! - 4: the rest to a keyed node's `handle_beacon` from `10.0.0.2`, twice.
//!
//! Checks: nothing panics; a key file that parses holds 1..=16 keys with distinct
//! ids; a keyring sharing openings (warm with every genuine item) opens each input
//! exactly as decrypting does, under the item's cluster and another; only genuine
//! items (sealed here by [`genuine_frames`]/[`genuine_hellos`], forging is
//! infeasible) open, and what opens matches its header; a keyed node
//! moves exactly one verdict counter per input, takes every genuine item exactly
//! once (the second delivery is a replay), and changes its store, outputs or peers
//! for nothing else.

use super::{assert_stats_monotonic, moved, stats_delta, Counter};
use crate::input::Reader;
use bytes::Bytes;
use dkv_proto::seal::{parse_frame, parse_hello, Cluster, HelloAddr, Keyring, Sealer};
use dkv_proto::wire::{Body, Envelope, Record};
use dkv_proto::{Config, Entry, Message, Node, NodeId, Output, Timestamp, Version, WallClock};
use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The fuzzed node's key file (one key).
pub const SEAL_KEY_FILE: &str =
    "# fuzz\n000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n";
/// The fuzzed node's cluster.
pub const SEAL_CLUSTER: &str = "fuzz";
/// The keyed node's id.
pub const SEAL_NODE_ID: NodeId = NodeId(*b"keyed!!!");
/// The sender of the genuine items.
pub const SEAL_SENDER: NodeId = NodeId(*b"sender!!");
/// The wall clock (ms) of the node at its start, and the genuine items' stamp.
pub const SEAL_WALL_MS: u64 = 1_700_000_000_000;
/// The genuine sender's address.
pub const SEAL_SENDER_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

fn keys() -> &'static Keyring {
    static KEYS: OnceLock<Keyring> = OnceLock::new();
    KEYS.get_or_init(|| Keyring::parse(SEAL_KEY_FILE).expect("the fuzz key file parses"))
}

fn cluster() -> Cluster {
    Cluster::new(SEAL_CLUSTER).expect("short name")
}

/// A clone of [`keys`] sharing openings with another clone that has opened every
/// genuine item (under [`cluster`]), so that each of those is a hit for it.
fn warm_sharing_keys() -> &'static Keyring {
    static SHARING: OnceLock<Keyring> = OnceLock::new();
    SHARING.get_or_init(|| {
        let warm = keys().clone().sharing_openings(64);
        for (topic, frame) in genuine_frames() {
            warm.open_frame(&cluster(), topic, frame).expect("genuine");
        }
        for hello in genuine_hellos() {
            warm.open_hello(&cluster(), hello).expect("genuine");
        }
        warm.clone()
    })
}

/// What `open` gives with [`keys`] under the item's cluster, once a warm sharing
/// clone ([`warm_sharing_keys`]) has been seen to open it the same way as decrypting
/// does, under that cluster and another.
fn open_checked<T: PartialEq + std::fmt::Debug>(open: impl Fn(&Keyring, &Cluster) -> T) -> T {
    let other = Cluster::new("other").expect("short name");
    let [own, _] = [cluster(), other].map(|c| {
        let decrypted = open(keys(), &c);
        assert_eq!(
            open(warm_sharing_keys(), &c),
            decrypted,
            "a shared opening differs from decrypting"
        );
        decrypted
    });
    own
}

/// Genuine sealed frames (topic, frame): a put, an ask, and a push to the node.
pub fn genuine_frames() -> &'static [(Bytes, Bytes)] {
    static FRAMES: OnceLock<Vec<(Bytes, Bytes)>> = OnceLock::new();
    FRAMES.get_or_init(|| {
        let mut sealer = Sealer::new(SEAL_SENDER, 1);
        let record = Record {
            key: "k".into(),
            entry: Entry {
                version: Version {
                    ts: Timestamp::from_millis(SEAL_WALL_MS),
                    node: SEAL_SENDER,
                },
                value: Some(Bytes::from_static(b"v")),
            },
        };
        let bodies = [
            (
                None,
                Body::Put {
                    echo: false,
                    records: vec![record.clone()],
                },
            ),
            (None, Body::Ask { key: "k".into() }),
            (
                Some(SEAL_NODE_ID),
                Body::Push {
                    request: 0,
                    records: vec![record],
                    more: None,
                },
            ),
        ];
        bodies
            .into_iter()
            .map(|(to, body)| {
                let msg = Message::Dkv(Envelope {
                    to,
                    from: SEAL_SENDER,
                    body,
                });
                let [topic, body] = <[Bytes; 2]>::try_from(msg.encode()).expect("2 frames");
                let frame = sealer
                    .seal_frame(keys(), &cluster(), &topic, &body, SEAL_WALL_MS)
                    .expect("seals");
                (topic, Bytes::from(frame))
            })
            .collect()
    })
}

/// Genuine sealed hellos of [`SEAL_SENDER`] at [`SEAL_SENDER_IP`], port 7002.
pub fn genuine_hellos() -> &'static [Bytes] {
    static HELLOS: OnceLock<Vec<Bytes>> = OnceLock::new();
    HELLOS.get_or_init(|| {
        let mut sealer = Sealer::new(SEAL_SENDER, 1);
        let addr = HelloAddr {
            port: 7002,
            ip: SEAL_SENDER_IP,
        };
        (0..2)
            .map(|i| {
                let h = sealer
                    .seal_hello(keys(), &cluster(), addr, SEAL_WALL_MS + i)
                    .expect("seals");
                Bytes::copy_from_slice(&h)
            })
            .collect()
    })
}

/// Checks one input (see the module documentation).
pub fn seal(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 5 {
        0 => parse_keys(rest),
        1 => {
            let mut r = Reader::new(rest);
            let (Some(topic), Some(frame)) = (r.bytes(), r.bytes()) else {
                return;
            };
            if let Ok(opened) = open_checked(|k, c| k.open_frame(c, topic, frame)) {
                let genuine = genuine_frames()
                    .iter()
                    .any(|(t, f)| t == topic && f == frame);
                assert!(genuine, "a frame not sealed here opened");
                assert_eq!(Ok(opened.header), parse_frame(topic, frame));
                assert_eq!(opened.body.len() + 56, frame.len());
            }
        }
        2 => {
            if let Ok(opened) = open_checked(|k, c| k.open_hello(c, rest)) {
                assert!(
                    genuine_hellos().iter().any(|h| h == rest),
                    "a hello not sealed here opened"
                );
                assert_eq!(Ok(opened.header), parse_hello(rest));
            }
        }
        3 => {
            let mut r = Reader::new(rest);
            let count = r.u8().unwrap_or(0) % 4;
            let frames: Vec<&[u8]> = (0..count).map_while(|_| r.bytes()).collect();
            let genuine = match frames.as_slice() {
                [t, f] => genuine_frames().iter().any(|(gt, gf)| gt == t && gf == f),
                _ => false,
            };
            keyed_node_takes(genuine, Counter::MessageVerdict, |n, now| {
                n.handle_message(now, &frames)
            });
        }
        _ => {
            let genuine = genuine_hellos().iter().any(|h| h == rest);
            let src = IpAddr::V4(SEAL_SENDER_IP);
            keyed_node_takes(genuine, Counter::DatagramVerdict, |n, now| {
                n.handle_beacon(now, src, rest)
            });
        }
    }
}

fn parse_keys(rest: &[u8]) {
    let text = String::from_utf8_lossy(rest);
    if let Ok(ring) = Keyring::parse(&text) {
        let ids: Vec<_> = ring.ids().collect();
        assert!((1..=dkv_proto::seal::MAX_KEYS).contains(&ids.len()));
        assert_eq!(ids.iter().collect::<BTreeSet<_>>().len(), ids.len());
        assert_eq!(ids[0], ring.send_id());
        assert!(ids.iter().all(|id| ring.knows(*id)));
    }
}

/// A keyed node, net up at 10.0.0.1, fed `input` twice.
fn keyed_node_takes(genuine: bool, verdicts: Counter, input: impl Fn(&mut Node, Instant)) {
    let start = Instant::now();
    let wall = WallClock {
        at: start,
        unix_ms: SEAL_WALL_MS,
    };
    let mut config = Config::new(SEAL_NODE_ID, 7001, wall);
    config.cluster = cluster();
    config.keys = Some(keys().clone());
    let mut node = Node::new(config);
    node.handle_net_up(start, IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)));
    while node.poll_output().is_some() {}
    let now = start + Duration::from_millis(1);
    for round in 0..2 {
        let (before, summary) = (node.stats(), node.summary());
        let peers: Vec<_> = node.peers().collect();
        input(&mut node, now);
        let after = node.stats();
        assert_stats_monotonic(&before, &after);
        let delta = stats_delta(&before, &after);
        let verdict = moved(&delta, verdicts);
        assert_eq!(verdict.len(), 1, "one verdict: {delta:?}");
        assert_eq!(verdict[0].1, 1, "one verdict: {delta:?}");
        let outputs: Vec<Output> = std::iter::from_fn(|| node.poll_output()).collect();
        let taken = !verdict[0].0.starts_with("drop_") && verdict[0].0 != "beacons_own";
        assert_eq!(taken, genuine && round == 0, "{verdict:?} in round {round}");
        if taken {
        } else {
            assert!(outputs.is_empty(), "a refused input caused {outputs:?}");
            assert_eq!(node.summary(), summary, "a refused input changed the store");
            assert_eq!(node.peers().collect::<Vec<_>>(), peers);
        }
        for o in &outputs {
            assert!(!matches!(o, Output::Publish(_)), "a keyed node sent plain");
        }
    }
}
