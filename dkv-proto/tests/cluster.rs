//! Named and keyed clusters on an in-memory LAN: clusters never peer, keyed nodes
//! converge through sealed frames, and a keyed node refuses (and counts) every kind
//! of unauthenticated, forged, replayed, stale or misdirected input with no output
//! and no state change.

mod support;

use bytes::Bytes;
use dkv_proto::seal::{Cluster, HelloAddr, Keyring, Sealer};
use dkv_proto::{encode_beacon, Config, Message, Node, Output, Stats};
use proptest::prelude::*;
use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use support::*;

const OLD: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
const NEW: &str = "f0e1d2c3b4a5968778695a4b3c2d1e0f00112233445566778899aabbccddeeff";
const OTHER: &str = "5555555555555555555555555555555555555555555555555555555555555555";

fn ring(keys: &[&str]) -> Keyring {
    Keyring::parse(&keys.join("\n")).unwrap()
}

fn named(n: u8, cluster: &str) -> Config {
    let mut c = config(n, 7000 + u16::from(n));
    c.cluster = Cluster::new(cluster).unwrap();
    c
}

fn keyed(n: u8, cluster: &str, keys: &[&str]) -> Config {
    let mut c = named(n, cluster);
    c.keys = Some(ring(keys));
    c
}

fn v4(n: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 0, 0, n)
}

/// One node on the LAN: its address and the PUB endpoints its SUB is connected to.
struct Member {
    node: Node,
    n: u8,
    subs: BTreeSet<SocketAddr>,
}

/// Nodes on one broadcast domain: datagrams reach every other node, published
/// frames reach every node connected to the publisher whose subscriptions match.
/// Every frame sent is kept, to replay.
struct Lan {
    members: Vec<Member>,
    now: u64,
    sent: Vec<(u8, Vec<Bytes>)>,
    plain: usize,
}

impl Lan {
    fn new(configs: Vec<Config>) -> Lan {
        let members = configs
            .into_iter()
            .map(|c| {
                let n = c.id.0[0];
                let mut node = Node::new(c);
                node.handle_net_up(at(0), ip(n));
                Member {
                    node,
                    n,
                    subs: BTreeSet::new(),
                }
            })
            .collect();
        Lan {
            members,
            now: 0,
            sent: Vec::new(),
            plain: 0,
        }
    }

    fn node(&mut self, n: u8) -> &mut Node {
        &mut self.members.iter_mut().find(|m| m.n == n).unwrap().node
    }

    /// Carries out outputs until none is left (bounded).
    fn settle(&mut self) {
        let now = at(self.now);
        for _ in 0..10_000 {
            let mut work = Vec::new();
            for (i, m) in self.members.iter_mut().enumerate() {
                while let Some(o) = m.node.poll_output() {
                    work.push((i, o));
                }
            }
            if work.is_empty() {
                return;
            }
            for (i, o) in work {
                let (n, port) = (self.members[i].n, self.members[i].node.config().pub_port);
                match o {
                    Output::Beacon(d) => {
                        for m in self.members.iter_mut().filter(|m| m.n != n) {
                            m.node.handle_beacon(now, ip(n), &d);
                        }
                    }
                    Output::Connect(a) => {
                        self.members[i].subs.insert(a);
                    }
                    Output::Disconnect(a) => {
                        self.members[i].subs.remove(&a);
                    }
                    Output::Publish(msg) => {
                        self.plain += 1;
                        self.publish(n, port, msg.encode());
                    }
                    Output::PublishSealed(s) => self.publish(n, port, s.frames.to_vec()),
                    _ => {}
                }
            }
        }
        panic!("the LAN never went quiet");
    }

    fn publish(&mut self, n: u8, port: u16, frames: Vec<Bytes>) {
        let from = SocketAddr::new(ip(n), port);
        let now = at(self.now);
        for m in self.members.iter_mut() {
            let subscribed = m
                .node
                .subscriptions()
                .iter()
                .any(|p| frames[0].starts_with(p));
            if m.subs.contains(&from) && subscribed {
                m.node.handle_message(now, &frames);
            }
        }
        self.sent.push((n, frames));
    }

    /// Runs for `ms` milliseconds of virtual time in 10 ms steps.
    fn run(&mut self, ms: u64) {
        let end = self.now + ms;
        while self.now < end {
            self.now += 10;
            let now = at(self.now);
            for m in &mut self.members {
                if m.node.poll_timeout().is_some_and(|t| t <= now) {
                    m.node.handle_timeout(now);
                }
            }
            self.settle();
        }
    }

    fn set(&mut self, n: u8, key: String, value: Bytes) {
        let now = at(self.now);
        self.node(n).set(now, key, value);
    }

    fn delete(&mut self, n: u8, key: String) {
        let now = at(self.now);
        self.node(n).delete(now, key);
    }

    fn peers_of(&mut self, n: u8) -> BTreeSet<u8> {
        let node = self.node(n);
        node.peers()
            .map(|a| match a.ip() {
                IpAddr::V4(v) => v.octets()[3],
                IpAddr::V6(_) => 0,
            })
            .collect()
    }
}

#[test]
fn an_open_unkeyed_node_sends_exactly_what_it_sent_before_clusters() {
    let mut n = Node::new(config(1, 7001));
    assert!(!n.isolated() && !n.keyed() && n.cluster().is_open());
    assert_eq!(n.subscriptions().len(), 7);
    n.handle_net_up(at(0), ip(1));
    n.handle_beacon(at(0), ip(2), b"beacon 7002");
    let d = datagrams(&drain(&mut n));
    assert_eq!(d, vec![hello(1, 7001), encode_beacon(7001)]);
    assert!(n.is_own_datagram(&d[0]) && n.is_own_datagram(&d[1]));
    assert!(!n.is_own_datagram(&hello(2, 7001)));
}

#[test]
fn two_named_clusters_and_the_open_one_on_one_lan_never_peer() {
    let mut lan = Lan::new(vec![
        named(1, "a"),
        named(2, "a"),
        named(3, "b"),
        named(4, "b"),
        config(5, 7005),
        config(6, 7006),
    ]);
    lan.run(3_000);
    assert_eq!(lan.peers_of(1), [2].into());
    assert_eq!(lan.peers_of(3), [4].into());
    assert_eq!(lan.peers_of(5), [6].into());
    lan.set(1, "k".into(), "from a".into());
    lan.set(3, "k".into(), "from b".into());
    lan.set(5, "k".into(), "open".into());
    lan.run(3_000);
    let v = |lan: &mut Lan, n| lan.node(n).value("k").map(<[u8]>::to_vec);
    assert_eq!(v(&mut lan, 2), Some("from a".into()));
    assert_eq!(v(&mut lan, 4), Some("from b".into()));
    assert_eq!(v(&mut lan, 6), Some("open".into()));
    for n in 1..=4 {
        let node = lan.node(n);
        assert_eq!(
            node.subscriptions().len(),
            2,
            "a named node subscribes dkv2 only"
        );
        assert!(node.stats().drop_hello_foreign_cluster > 0);
        assert_eq!(
            node.stats().beacons_out,
            0,
            "a named node sent a prototype beacon"
        );
    }
    // Open nodes count named hellos as another cluster's too.
    assert!(lan.node(5).stats().drop_hello_foreign_cluster > 0);
}

#[test]
fn a_named_node_ignores_prototype_messages_and_sends_none() {
    let mut n = Node::new(named(1, "a"));
    n.handle_net_up(at(0), ip(1));
    drain(&mut n);
    n.handle_message(
        at(1),
        &Message::Set {
            key: "k".into(),
            value: "v".into(),
        }
        .encode(),
    );
    n.handle_message(at(1), &Message::List { asker: id(9) }.encode());
    assert_eq!(n.stats().drop_foreign_cluster, 2);
    assert_eq!(n.value("k"), None);
    n.get(at(2), "missing".into(), None);
    n.set(at(2), "x".into(), "y".into());
    let out = drain(&mut n);
    assert!(
        legacy(&out).is_empty(),
        "prototype messages from a named node"
    );
    n.handle_beacon(at(3), ip(2), &encode_beacon(7002));
    n.handle_beacon(at(3), ip(2), &hello(2, 7002));
    assert_eq!(n.stats().drop_hello_foreign_cluster, 2);
    assert_eq!(n.peers().count(), 0);
}

#[test]
fn keyed_nodes_converge_sealing_everything() {
    let mut lan = Lan::new(vec![
        keyed(1, "team", &[OLD]),
        keyed(2, "team", &[OLD]),
        keyed(3, "team", &[OLD]),
        // Same name, no key; and an open node: neither peers with the keyed ones.
        named(4, "team"),
        config(5, 7005),
    ]);
    lan.run(3_000);
    for (n, k) in [(1, "a"), (2, "b"), (3, "c")] {
        lan.set(n, k.into(), n.to_string().into());
    }
    lan.delete(2, "a".into());
    lan.run(3_000);
    assert_eq!(lan.peers_of(1), [2, 3].into());
    let s1 = lan.node(1).summary();
    assert_eq!(lan.node(2).summary(), s1);
    assert_eq!(lan.node(3).summary(), s1);
    assert_eq!(lan.node(3).value("b"), Some(&b"2"[..]));
    assert_eq!(lan.node(3).value("a"), None);
    assert!(lan.peers_of(4).is_empty() && lan.peers_of(5).is_empty());
    assert_eq!(lan.node(4).value("b"), None);
    for n in 1..=3 {
        let s = lan.node(n).stats();
        assert!(
            s.drop_hello_unauthenticated > 0,
            "node {n} heard the open node"
        );
        assert_eq!(s.beacons_out, 0);
        assert_eq!(s.drop_forged + s.drop_replay + s.drop_stale, 0, "{s:?}");
    }
    // Every frame a keyed node sent is sealed.
    let sealed = lan.sent.iter().filter(|(n, _)| *n <= 3).count();
    assert!(sealed > 0);
    for (n, frames) in lan.sent.iter().filter(|(n, _)| *n <= 3) {
        assert_eq!(frames[1][0], 0xD2, "node {n} sent a plain frame");
    }
}

/// A keyed node 1 (cluster "team", key OLD) up at ip(1), with node 2 a peer.
fn keyed_pair() -> (Node, Node) {
    let mut a = Node::new(keyed(1, "team", &[OLD]));
    let mut b = Node::new(keyed(2, "team", &[OLD]));
    a.handle_net_up(at(0), ip(1));
    b.handle_net_up(at(0), ip(2));
    let ha = datagrams(&drain(&mut a));
    let hb = datagrams(&drain(&mut b));
    a.handle_beacon(at(1), ip(2), &hb[0]);
    b.handle_beacon(at(1), ip(1), &ha[0]);
    drain(&mut a);
    drain(&mut b);
    (a, b)
}

/// A sealed `put` of `k = v` from node 2, as node 2's Sealer would make it.
fn sealed_put(
    sealer: &mut Sealer,
    keys: &Keyring,
    cluster: &str,
    topic: &[u8],
    stamp: u64,
) -> Vec<Bytes> {
    let body = match put(2, vec![record("k", entry(0, 2, Some("v")))]) {
        Message::Dkv(e) => e.body_bytes(),
        _ => unreachable!(),
    };
    let c = Cluster::new(cluster).unwrap();
    let frame = sealer.seal_frame(keys, &c, topic, &body, stamp).unwrap();
    vec![Bytes::copy_from_slice(topic), Bytes::from(frame)]
}

/// Feeds `frames` to `node` and asserts it changed nothing but counter `name` (+1).
fn refused(node: &mut Node, frames: &[Bytes], name: &str) {
    let (before, summary) = (node.stats(), node.summary());
    node.handle_message(at(100), frames);
    assert_eq!(delta(&before, &node.stats()), vec![(name.to_string(), 1)]);
    assert_eq!(node.summary(), summary, "state changed");
    assert!(drain(node).is_empty(), "a refused frame caused output");
}

fn delta(before: &Stats, after: &Stats) -> Vec<(String, u64)> {
    before
        .iter()
        .zip(after.iter())
        .filter(|(a, b)| a.1 != b.1)
        .map(|((n, a), (_, b))| (n.to_string(), b - a))
        .collect()
}

#[test]
fn a_keyed_node_refuses_each_kind_of_bad_input_counting_it() {
    let (mut a, _) = keyed_pair();
    let keys = ring(&[OLD]);
    let mut sealer = Sealer::new(id(2), 77);
    let all = b"dkv2.all";
    let now = WALL_MS + 100;

    // Plain dkv/2, a prototype set, and a message handed over decoded.
    let plain = put(2, vec![record("k", entry(0, 2, Some("v")))]);
    refused(&mut a, &plain.encode(), "drop_unauthenticated");
    let set = Message::Set {
        key: "k".into(),
        value: "v".into(),
    };
    refused(&mut a, &set.encode(), "drop_unauthenticated");
    let before = a.stats();
    a.handle_decoded(at(100), plain.clone());
    assert_eq!(
        delta(&before, &a.stats()),
        vec![("drop_unauthenticated".into(), 1)]
    );

    // A bit flip anywhere in header, ciphertext or tag.
    let good = sealed_put(&mut sealer, &keys, "team", all, now);
    for bit in [8 * 20, 8 * 45, 8 * (good[1].len() - 1)] {
        let mut bad = good[1].to_vec();
        bad[bit / 8] ^= 1;
        refused(&mut a, &[good[0].clone(), Bytes::from(bad)], "drop_forged");
    }
    // Wrong key, wrong cluster, moved topic, truncated.
    refused(
        &mut a,
        &sealed_put(&mut sealer, &ring(&[OTHER]), "team", all, now),
        "drop_unknown_key",
    );
    refused(
        &mut a,
        &sealed_put(&mut sealer, &keys, "other", all, now),
        "drop_foreign_cluster",
    );
    let to_a = sealed_put(
        &mut sealer,
        &keys,
        "team",
        b"dkv2.to \x01\x01\x01\x01\x01\x01\x01\x01",
        now,
    );
    refused(
        &mut a,
        &[Bytes::from_static(all), to_a[1].clone()],
        "drop_forged",
    );
    refused(
        &mut a,
        &[good[0].clone(), good[1].slice(..50)],
        "drop_forged",
    );
    // Addressed to another node; claiming to be node 1 itself.
    let to_c = sealed_put(
        &mut sealer,
        &keys,
        "team",
        b"dkv2.to \x03\x03\x03\x03\x03\x03\x03\x03",
        now,
    );
    refused(&mut a, &to_c, "drop_not_ours");
    let mut me = Sealer::new(id(1), 5);
    refused(
        &mut a,
        &sealed_put(&mut me, &keys, "team", all, now),
        "drop_not_ours",
    );
    // Stale: stamped 31 s ago; and stamped before node 1 started.
    refused(
        &mut a,
        &sealed_put(&mut sealer, &keys, "team", all, now - 31_000),
        "drop_stale",
    );
    refused(
        &mut a,
        &sealed_put(&mut sealer, &keys, "team", all, WALL_MS - 1_000),
        "drop_stale",
    );
    // Sealed by node 3 with node 2's id in the body.
    let mut three = Sealer::new(id(3), 3);
    refused(
        &mut a,
        &sealed_put(&mut three, &keys, "team", all, now),
        "drop_seal_mismatch",
    );

    // The genuine frame is taken once; its replay is refused.
    a.handle_message(at(100), &good);
    assert_eq!(a.value("k"), Some(&b"v"[..]));
    drain(&mut a);
    refused(&mut a, &good, "drop_replay");
}

#[test]
fn a_keyed_node_refuses_prototype_beacons_plain_and_foreign_hellos() {
    let (mut a, mut b) = keyed_pair();
    let peers: Vec<_> = a.peers().collect();
    assert_eq!(peers, vec![addr(2, 7002)]);
    let beacon_refused = |a: &mut Node, src, d: &[u8], name: &str| {
        let before = a.stats();
        a.handle_beacon(at(200), src, d);
        assert_eq!(delta(&before, &a.stats()), vec![(name.to_string(), 1)]);
        let out = drain(a);
        assert!(out.is_empty(), "{name}: {out:?}");
    };
    beacon_refused(
        &mut a,
        ip(3),
        &encode_beacon(7003),
        "drop_hello_unauthenticated",
    );
    beacon_refused(&mut a, ip(3), &hello(3, 7003), "drop_hello_unauthenticated");
    let team = Cluster::new("team").unwrap();
    let plain = dkv_proto::encode_plain_hello(&team, id(3), 7003, v4(3));
    beacon_refused(&mut a, ip(3), &plain, "drop_hello_unauthenticated");
    let mut s3 = Sealer::new(id(3), 3);
    let addr3 = HelloAddr {
        port: 7003,
        ip: v4(3),
    };
    let other = Cluster::new("other").unwrap();
    let foreign = s3
        .seal_hello(&ring(&[OLD]), &other, addr3, WALL_MS)
        .unwrap();
    beacon_refused(&mut a, ip(3), &foreign, "drop_hello_foreign_cluster");
    let wrong_key = s3
        .seal_hello(&ring(&[OTHER]), &team, addr3, WALL_MS)
        .unwrap();
    beacon_refused(&mut a, ip(3), &wrong_key, "drop_hello_unknown_key");
    let mut forged = s3.seal_hello(&ring(&[OLD]), &team, addr3, WALL_MS).unwrap();
    forged[50] ^= 0x80;
    beacon_refused(&mut a, ip(3), &forged, "drop_hello_forged");

    // A genuine hello of node 2, heard from another source: no connect anywhere.
    b.handle_timeout(at(1_000));
    let h2 = datagrams(&drain(&mut b)).remove(0);
    assert!(b.is_own_datagram(&h2) && !a.is_own_datagram(&h2));
    beacon_refused(&mut a, ip(9), &h2, "drop_hello_spoofed");
    // From its own source it is taken once; heard again it is a replay.
    let before = a.stats();
    a.handle_beacon(at(1_001), ip(2), &h2);
    assert_eq!(a.stats().hellos_in, before.hellos_in + 1);
    drain(&mut a);
    beacon_refused(&mut a, ip(2), &h2, "drop_hello_replay");
    assert_eq!(a.peers().collect::<Vec<_>>(), peers);
}

#[test]
fn a_spoofed_sealed_hello_of_a_new_node_connects_no_one() {
    let mut a = Node::new(keyed(1, "team", &[OLD]));
    a.handle_net_up(at(0), ip(1));
    drain(&mut a);
    let mut s3 = Sealer::new(id(3), 3);
    let team = Cluster::new("team").unwrap();
    // Announces a victim's address, sent from the attacker's.
    let victim = HelloAddr {
        port: 80,
        ip: v4(200),
    };
    let h = s3
        .seal_hello(&ring(&[OLD]), &team, victim, WALL_MS)
        .unwrap();
    a.handle_beacon(at(10), ip(66), &h);
    let out = drain(&mut a);
    assert!(
        !out.iter().any(|o| matches!(o, Output::Connect(_))),
        "{out:?}"
    );
    assert_eq!(a.stats().drop_hello_spoofed, 1);
    assert_eq!(a.peers().count(), 0);
}

#[test]
fn a_key_rotates_across_a_running_cluster_step_by_step() {
    // Each step: every pair of keyrings live at once during that step's rollout
    // converges; a node with only the new key and one with only the old never peer.
    let steps: [(&[&str], &[&str]); 4] = [
        (&[OLD], &[OLD, NEW]),
        (&[OLD, NEW], &[NEW, OLD]),
        (&[NEW, OLD], &[NEW]),
        (&[NEW], &[NEW]),
    ];
    for (ka, kb) in steps {
        let mut lan = Lan::new(vec![keyed(1, "team", ka), keyed(2, "team", kb)]);
        lan.run(2_000);
        lan.set(1, "a".into(), "1".into());
        lan.set(2, "b".into(), "2".into());
        lan.run(3_000);
        assert_eq!(lan.node(1).value("b"), Some(&b"2"[..]), "{ka:?} {kb:?}");
        assert_eq!(lan.node(2).value("a"), Some(&b"1"[..]), "{ka:?} {kb:?}");
    }
    let mut lan = Lan::new(vec![keyed(1, "team", &[OLD]), keyed(2, "team", &[NEW])]);
    lan.run(3_000);
    assert!(lan.peers_of(1).is_empty() && lan.peers_of(2).is_empty());
    assert!(lan.node(1).stats().drop_hello_unknown_key > 0);
}

#[test]
fn a_keyed_node_never_outputs_a_plain_publish() {
    let (mut a, _) = keyed_pair();
    a.set(at(10), "k".into(), "v".into());
    a.get(at(10), "missing".into(), None);
    a.handle_timeout(at(5_000));
    let out = drain(&mut a);
    assert!(out.iter().any(|o| matches!(o, Output::PublishSealed(_))));
    assert!(!out.iter().any(|o| matches!(o, Output::Publish(_))));
    for o in &out {
        if let Output::PublishSealed(s) = o {
            assert_eq!(s.frames[0], s.msg.topic());
            assert!(matches!(s.msg, Message::Dkv(_)));
        }
    }
    assert_eq!(a.send_key(), Some(ring(&[OLD]).send_id()));
    assert_eq!(a.subscriptions().len(), 2);
    assert!(!a.wants_list_answers());
}

#[test]
fn sealed_frames_open_in_the_order_they_were_polled() {
    // Counters follow the send order, so a receiver's replay window never sees
    // a later frame before an earlier one from the same pipe.
    let (mut a, mut b) = keyed_pair();
    for i in 0..200 {
        a.set(at(10), format!("k{i}"), "v".into());
        // Reconciliation and asks interleave with puts.
        a.get(at(10), format!("missing{i}"), None);
    }
    let mut n = 0;
    for o in drain(&mut a) {
        if let Output::PublishSealed(s) = o {
            b.handle_message(at(11), &s.frames);
            n += 1;
        }
    }
    assert!(n > 0);
    let s = b.stats();
    assert_eq!(s.drop_replay + s.drop_forged + s.drop_stale, 0, "{s:?}");
    assert_eq!(b.value("k199"), Some(&b"v"[..]));
}

#[test]
fn config_validation_names_the_problem() {
    assert!(Cluster::new(&"x".repeat(65)).is_err());
    assert!(Cluster::new(&"x".repeat(64)).is_ok());
    let mut c = keyed(1, "team", &[OLD]);
    assert_eq!(c.validate(), Ok(()));
    c.replay.window_ms = 0;
    assert_eq!(c.validate(), Err(dkv_proto::ConfigError::Replay));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Arbitrary frames and datagrams never panic a keyed node, never change its
    /// store, never make it connect, and each moves exactly one counter.
    #[test]
    fn arbitrary_bytes_never_move_a_keyed_node(
        topic in prop_oneof![
            Just(b"dkv2.all".to_vec()),
            Just(b"dkv2.to \x01\x01\x01\x01\x01\x01\x01\x01".to_vec()),
            proptest::collection::vec(any::<u8>(), 0..20),
        ],
        body in proptest::collection::vec(any::<u8>(), 0..200),
        marker in any::<bool>(),
        extra in 0usize..3,
        datagram in proptest::collection::vec(any::<u8>(), 0..100),
    ) {
        let (mut a, _) = keyed_pair();
        let summary = a.summary();
        let mut body = body;
        if marker && !body.is_empty() {
            body[0] = 0xD2;
        }
        let mut frames = vec![Bytes::from(topic), Bytes::from(body)];
        frames.extend((0..extra).map(|_| Bytes::new()));
        let before = a.stats();
        a.handle_message(at(100), &frames);
        let moved: u64 = delta(&before, &a.stats()).iter().map(|(_, d)| d).sum();
        prop_assert_eq!(moved, 1);
        let before = a.stats();
        a.handle_beacon(at(100), ip(7), &datagram);
        let moved: u64 = delta(&before, &a.stats()).iter().map(|(_, d)| d).sum();
        prop_assert_eq!(moved, 1);
        prop_assert_eq!(a.summary(), summary);
        prop_assert!(drain(&mut a).is_empty());
    }
}
