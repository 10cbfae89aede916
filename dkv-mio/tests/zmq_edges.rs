//! The ZeroMQ side under stress, against a raw peer the test controls: bursts must
//! be drained although ZMQ_FD only signals edges, malformed messages are dropped
//! and counted, a subscriber's full queue is counted and holds nothing back, and a
//! message for a dkv peer waits for that peer's subscription (for at most a peer
//! timeout). Stalled subscribers and their cut-off: `isolation.rs`.

mod support;

use dkv_mio::{Config, Dkv, Timings};
use dkv_proto::wire::v2::TOPIC_TO;
use dkv_proto::wire::{Body, Envelope};
use dkv_proto::{Message, NodeId};
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::Duration;
use support::{wait_until, RawPeer};

/// Timings under which the node has no reason to wake for a minute: any progress
/// it makes must come from its descriptors being handled right.
fn sleepy_config() -> Config {
    Config {
        timings: Timings {
            beacon_interval: Duration::from_secs(60),
            peer_timeout: Duration::from_secs(600),
            bootstrap_delay: Duration::from_secs(600),
            ..Timings::default()
        },
        address_check_interval: Some(Duration::from_secs(600)),
        ..support::config()
    }
}

/// Test-only steps of the shared [`RawPeer`].
trait Connect {
    fn connect_to(&self, node: &Dkv);
}

impl Connect for RawPeer {
    /// Announces itself, waits until the node connected, and until its sets reach
    /// the node (so the subscription has arrived).
    fn connect_to(&self, node: &Dkv) {
        wait_until("the node to connect to the raw peer", || {
            self.announce(node.beacon_port());
            std::thread::sleep(Duration::from_millis(20));
            node.peers().unwrap().contains(&self.endpoint())
        });
        wait_until("the raw peer's sets to reach the node", || {
            self.send(&[b"set", b"probe", b"1"]);
            std::thread::sleep(Duration::from_millis(20));
            node.get_local("probe").unwrap().is_some()
        });
    }
}

#[test]
fn a_burst_is_fully_drained_although_zmq_fd_only_signals_edges() {
    const BURST: usize = 5000;
    let node = Arc::new(Dkv::start(sleepy_config()).unwrap());
    let peer = RawPeer::new();
    peer.connect_to(&node);

    // One blocking get for the burst's last key is the only request in flight: no
    // timer and no further request wakes the node. If it slept while ZeroMQ still
    // held messages (reading one per wake-up, or trusting ZMQ_FD as level
    // triggered) the last key would never arrive and this get would time out.
    let asker = Arc::clone(&node);
    let last = format!("burst/{:05}", BURST - 1);
    let waiting = std::thread::spawn(move || asker.get(last, Some(Duration::from_secs(20))));
    wait_until("the get to be pending", || {
        node.stats().unwrap().proto.out_question == 1
    });
    for i in 0..BURST {
        let key = format!("burst/{i:05}");
        peer.send(&[b"set", key.as_bytes(), b"v"]);
    }
    let value = waiting.join().unwrap().unwrap();
    assert_eq!(
        value.as_deref(),
        Some(&b"v"[..]),
        "the burst was not drained"
    );
    assert_eq!(node.keys().unwrap().len(), BURST + 1);
    assert!(node.stats().unwrap().transport.zmq_in as usize > BURST);
}

#[test]
fn malformed_messages_are_dropped_and_counted_and_the_node_carries_on() {
    let node = Dkv::start(support::config()).unwrap();
    let peer = RawPeer::new();
    peer.connect_to(&node);
    let other_id: &[u8] = b"list_answer 12345678";
    peer.send(&[b"set", b"only-key"]); // frame count
    peer.send(&[b"set", &[0xff, 0xfe], b"v"]); // key not UTF-8
    peer.send(&[b"set", b"k", b"v", b"extra"]); // frame count
                                                // Filtered out by the publisher: dkv subscribes `list `, not `list`.
    peer.send(&[other_id, b"k1", b"k2"]); // list_answer for another node
    peer.send(&[b"answer 1234", b"k", b"v"]); // bad id, matches no subscription
    peer.send(&[b"set", b"good", b"after"]);
    wait_until("the good set after the bad ones", || {
        node.get_local("good").unwrap().is_some()
    });
    let stats = node.stats().unwrap().proto;
    assert_eq!(stats.drop_frame_count, 2);
    assert_eq!(stats.drop_key_not_utf8, 1);
    assert_eq!(stats.drop_list_answer_not_ours + stats.in_list_answer, 0);
    assert!(node.keys().unwrap().iter().all(|k| k != "k"));
}

/// Publishes an `ask` for `key` from dkv id `from` through the raw peer.
fn ask(peer: &RawPeer, from: [u8; 8], key: &str) {
    let frames = Message::Dkv(Envelope {
        to: None,
        from: NodeId(from),
        body: Body::Ask { key: key.into() },
    })
    .encode();
    let frames: Vec<&[u8]> = frames.iter().map(|f| &f[..]).collect();
    peer.send(&frames);
}

/// A SUB socket on the node's PUB socket, subscribed to messages for `id` only.
fn directed_reader(context: &zmq::Context, node: &Dkv, id: [u8; 8]) -> zmq::Socket {
    let reader = context.socket(zmq::SUB).unwrap();
    reader.set_linger(0).unwrap();
    reader.set_rcvtimeo(5000).unwrap();
    let mut topic = TOPIC_TO.to_vec();
    topic.extend_from_slice(&id);
    reader.set_subscribe(&topic).unwrap();
    reader
        .connect(&format!("tcp://127.0.0.1:{}", node.pub_port()))
        .unwrap();
    reader
}

#[test]
fn a_reply_to_a_dkv_peer_not_subscribed_yet_waits_for_its_subscription() {
    // A dkv node's SUB socket subscribes only once it has heard this node's beacon:
    // a reply published before then would be lost and cost a session timeout.
    let node = Dkv::start(sleepy_config()).unwrap();
    node.set("k", "held for a while").unwrap();
    let peer = RawPeer::new();
    peer.connect_to(&node);
    let asker = *b"asker-01";
    ask(&peer, asker, "k");
    wait_until("the reply to be held", || {
        node.stats().unwrap().transport.pub_holding == 1
    });
    let context = zmq::Context::new();
    let reader = directed_reader(&context, &node, asker);
    let frames = reader
        .recv_multipart(0)
        .expect("the held reply, once subscribed");
    match Message::decode(&frames).unwrap() {
        Message::Dkv(Envelope {
            to,
            body: Body::Push { records, .. },
            ..
        }) => {
            assert_eq!(to, Some(NodeId(asker)));
            assert_eq!(records.len(), 1);
            assert_eq!(records[0].key, "k");
            assert_eq!(
                records[0].entry.value.as_deref(),
                Some(&b"held for a while"[..])
            );
        }
        other => panic!("not a push: {other:?}"),
    }
    let t = node.stats().unwrap().transport;
    assert_eq!(
        (t.pub_held, t.pub_holding, t.subscribes),
        (1, 0, 1),
        "{t:?}"
    );
    // Subscribed now: the next reply goes out at once.
    ask(&peer, asker, "k");
    reader.recv_multipart(0).expect("a second reply");
    assert_eq!(node.stats().unwrap().transport.pub_held, 1);
    drop(reader);
    wait_until("the reader's subscription to be withdrawn", || {
        node.stats().unwrap().transport.unsubscribes == 1
    });
}

#[test]
fn a_session_with_a_new_dkv_peer_opens_once_the_peer_subscribes() {
    // The node hears a hello before the peer has heard the node. Its session waits
    // in the core for the subscription the XPUB socket reports (without the report,
    // a peer timeout: ten minutes here), then leaves at once instead of being held.
    let node = Dkv::start(sleepy_config()).unwrap();
    wait_until("the node to be up", || node.local_ip().unwrap().is_some());
    let peer = RawPeer::new();
    let id = *b"joiner01";
    let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    socket.set_broadcast(true).unwrap();
    socket
        .send_to(
            &dkv_proto::encode_hello(peer.endpoint().port(), NodeId(id)),
            (dkv_mio::LOOPBACK_BROADCAST, node.beacon_port()),
        )
        .unwrap();
    wait_until("the peer to be up", || {
        node.peers().unwrap().contains(&peer.endpoint())
    });
    let context = zmq::Context::new();
    let reader = directed_reader(&context, &node, id);
    let frames = reader.recv_multipart(0).expect("the session's opening");
    match Message::decode(&frames).unwrap() {
        Message::Dkv(Envelope {
            to,
            body: Body::Sync {
                initiator: true, ..
            },
            ..
        }) => assert_eq!(to, Some(NodeId(id))),
        other => panic!("not an opening: {other:?}"),
    }
    let t = node.stats().unwrap().transport;
    assert_eq!((t.pub_held, t.subscribes), (0, 1), "{t:?}");
}

#[test]
fn a_held_message_whose_peer_never_subscribes_is_dropped_after_a_peer_timeout() {
    let config = Config {
        timings: Timings {
            peer_timeout: Duration::from_millis(300),
            beacon_interval: Duration::from_millis(50),
            ..sleepy_config().timings
        },
        ..sleepy_config()
    };
    let node = Dkv::start(config).unwrap();
    node.set("k", "v").unwrap();
    let peer = RawPeer::new();
    peer.connect_to(&node);
    ask(&peer, *b"never-01", "k");
    wait_until("the held reply to be dropped", || {
        node.stats().unwrap().transport.pub_held_dropped == 1
    });
    let t = node.stats().unwrap().transport;
    assert_eq!((t.pub_held, t.pub_holding), (1, 0), "{t:?}");
}

#[test]
fn bad_beacons_are_dropped_and_counted() {
    let node = Dkv::start(support::config()).unwrap();
    let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    socket.set_broadcast(true).unwrap();
    let target = (dkv_mio::LOOPBACK_BROADCAST, node.beacon_port());
    socket.send_to(b"hello", target).unwrap();
    socket.send_to(b"beacon 0", target).unwrap();
    socket.send_to(b"beacon 99999", target).unwrap();
    socket.send_to(&[b'x'; 4000], target).unwrap(); // truncated to 1024, not a beacon
    wait_until("the bad beacons to be counted", || {
        let stats = node.stats().unwrap().proto;
        stats.drop_not_beacon == 2 && stats.drop_beacon_bad_port == 2
    });
    assert!(node.peers().unwrap().is_empty());
}

/// A sleepy node with small send queues, so a stalled reader fills them quickly.
fn small_queues_config() -> Config {
    Config {
        send_hwm: 4,
        ..sleepy_config()
    }
}

/// A subscriber on a node's PUB socket that reads until told to stop, with the
/// smallest queues so that, once it stops, the node's PUB socket fills quickly.
fn stalled_reader(context: &zmq::Context, node: &Dkv) -> zmq::Socket {
    let reader = context.socket(zmq::SUB).unwrap();
    reader.set_rcvhwm(1).unwrap();
    reader.set_rcvbuf(4096).unwrap();
    reader.set_linger(0).unwrap();
    // A dkv node with no prototype peer publishes its writes as dkv/2 `put`s only.
    reader.set_subscribe(b"dkv2.all").unwrap();
    reader.set_rcvtimeo(50).unwrap();
    reader
        .connect(&format!("tcp://127.0.0.1:{}", node.pub_port()))
        .unwrap();
    wait_until("the reader to receive a set", || {
        node.set("probe", "x").unwrap();
        reader.recv_multipart(0).is_ok()
    });
    // The reader now stops reading.
    reader
}

/// Sets large values (bounded) until the node's PUB socket found a subscriber's
/// queue full; returns how many were set.
fn fill_until_overflow(node: &Dkv) -> usize {
    let value = vec![7u8; 256 * 1024]; // large values fill the TCP buffers quickly
    let mut sent = 0;
    wait_until("a full subscriber queue to be counted", || {
        for _ in 0..8 {
            node.set(format!("big/{sent}"), value.clone()).unwrap();
            sent += 1;
        }
        node.stats().unwrap().transport.pub_overflows > 0 || sent > 2000
    });
    sent
}

#[test]
fn a_subscriber_that_stops_reading_is_counted_and_holds_nothing_back() {
    let node = Dkv::start(small_queues_config()).unwrap();
    let context = zmq::Context::new();
    let reader = stalled_reader(&context, &node);
    let sent = fill_until_overflow(&node);
    let stats = node.stats().unwrap();
    let t = &stats.transport;
    assert!(
        t.pub_overflows > 0,
        "no overflow after {sent} big sets: {t:?}"
    );
    // Every published message left at once (to whoever had room) or is accounted
    // for: nothing waits for the stalled reader.
    let published: u64 = stats
        .proto
        .iter()
        .filter(|(name, _)| name.starts_with("out_"))
        .map(|(_, n)| n)
        .sum();
    assert_eq!(
        published,
        t.zmq_out + t.pub_send_errors + t.pub_holding + t.pub_held_dropped,
        "{t:?}"
    );
    // More writes go out at once, without a new overflow per message.
    let before = node.stats().unwrap().transport;
    for i in 0..100 {
        node.set(format!("more/{i}"), "v").unwrap();
    }
    let after = node.stats().unwrap().transport;
    assert!(after.zmq_out > before.zmq_out, "{after:?}");
    assert!(
        after.pub_overflows <= before.pub_overflows + 1,
        "counted per message: {before:?} {after:?}"
    );
    drop(reader);
}

#[test]
fn the_loop_sleeps_while_a_subscriber_is_stalled_and_the_reader_gets_new_messages_once_it_reads() {
    // ZMQ_EVENTS always reports POLLOUT on a PUB socket: trusting it, or retrying a
    // full subscriber, would spin the loop until the subscriber reads again.
    let node = Dkv::start(small_queues_config()).unwrap();
    let context = zmq::Context::new();
    let reader = stalled_reader(&context, &node);
    fill_until_overflow(&node);
    let before = node.stats().unwrap().transport;
    std::thread::sleep(Duration::from_millis(500));
    let after = node.stats().unwrap().transport;
    // Nothing is due for a minute: the two queries are the only work.
    let turns = after.loop_turns - before.loop_turns;
    assert!(turns < 50, "{turns} loop turns in 500 ms while stalled");

    // The reader reads its queue down; then a new write reaches it.
    reader.set_rcvtimeo(1000).unwrap();
    let mut received = 0;
    while reader.recv_multipart(0).is_ok() {
        received += 1;
        assert!(received < 10_000, "the reader never ran dry");
    }
    wait_until("a new write to reach the reader again", || {
        node.set("after", "v").unwrap();
        reader.set_rcvtimeo(50).unwrap();
        let mut got = false;
        while let Ok(frames) = reader.recv_multipart(0) {
            got |= frames.iter().any(|f| f.windows(5).any(|w| w == b"after"));
        }
        got
    });
}

#[test]
fn own_beacon_from_an_unknown_address_triggers_an_address_check_at_once() {
    let node = Dkv::start(sleepy_config()).unwrap();
    wait_until("the node to be up", || node.local_ip().unwrap().is_some());
    let checks = node.stats().unwrap().transport.address_checks;
    // Another local address (all of 127/8 is on lo) sends the node's own payload: to
    // the node this looks like its address changed. The address is re-checked at
    // once (not in 10 minutes), found unchanged, and the sender is a peer.
    let socket = UdpSocket::bind((Ipv4Addr::new(127, 0, 0, 2), 0)).unwrap();
    socket.set_broadcast(true).unwrap();
    socket
        .send_to(
            format!("beacon {}", node.pub_port()).as_bytes(),
            (dkv_mio::LOOPBACK_BROADCAST, node.beacon_port()),
        )
        .unwrap();
    let twin = SocketAddr::from(([127, 0, 0, 2], node.pub_port()));
    wait_until("the twin to be a peer", || {
        node.peers().unwrap().contains(&twin)
    });
    let stats = node.stats().unwrap().transport;
    assert_eq!(stats.address_checks, checks + 1);
    assert_eq!(stats.address_changes, 1, "the address did not change");
    assert_eq!(node.local_ip().unwrap(), Some(Ipv4Addr::LOCALHOST.into()));
}

#[test]
fn own_hello_from_an_unknown_address_triggers_an_address_check_at_once() {
    // dkv/2 nodes beacon twice per interval: the prototype beacon and a hello with
    // their id. Either one heard back from an address not ours means the address
    // may have changed.
    let node = Dkv::start(sleepy_config()).unwrap();
    wait_until("the node to be up", || node.local_ip().unwrap().is_some());
    let before = node.stats().unwrap();
    let socket = UdpSocket::bind((Ipv4Addr::new(127, 0, 0, 2), 0)).unwrap();
    socket.set_broadcast(true).unwrap();
    socket
        .send_to(
            &dkv_proto::encode_hello(node.pub_port(), node.id()),
            (dkv_mio::LOOPBACK_BROADCAST, node.beacon_port()),
        )
        .unwrap();
    wait_until("the address to be re-checked", || {
        node.stats().unwrap().transport.address_checks > before.transport.address_checks
    });
    let after = node.stats().unwrap();
    assert_eq!(
        after.transport.address_checks,
        before.transport.address_checks + 1
    );
    assert_eq!(
        after.transport.address_changes, 1,
        "the address did not change"
    );
    // The hello carries this node's id: the core knows it for its own, not a peer.
    // (The address change also re-beacons, and those come back as own too.)
    assert!(after.proto.beacons_own > before.proto.beacons_own);
    assert!(node.peers().unwrap().is_empty());
}
