//! Random input never panics a node, and its invariants hold whatever it is fed:
//! gets complete exactly once, the clock never runs backward, `Applied` reports
//! every change to the store, connects and disconnects pair up, no timer is left
//! due; and no configured timing, however large, makes it panic.

mod support;

use bytes::Bytes;
use dkv_proto::wire::v2::{Body, Envelope, Item, Range, Step, Summary};
use dkv_proto::{Entry, GetId, Message, Node, Output, Stats, Timestamp, Timings, Version};
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use support::*;

const PORT: u16 = 1;

#[derive(Clone, Debug)]
enum Input {
    Wait(u16),
    WallClock(i32),
    NetUp(u8),
    NetDown,
    Datagram(u8, Vec<u8>),
    Frames(Vec<Vec<u8>>),
    Wire(Message),
    /// Answers the node's latest `sync` as its peer would, with these steps.
    ReplyToSync(bool, Vec<Step>),
    /// A dkv peer's write as a put with echo, then its prototype copy.
    Echo(String, Entry),
    Set(String, Vec<u8>),
    Delete(String),
    Get(String, Option<u64>),
    Shutdown,
}

fn key() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["a", "b", "c", "é"]).prop_map(String::from)
}

fn entry_s() -> impl Strategy<Value = Entry> {
    let version = prop_oneof![
        Just(Version::UNVERSIONED),
        (-20_000i64..20_000, 2u8..4).prop_map(|(ms, n)| version(ms, n)),
        (any::<u64>(), 2u8..4).prop_map(|(t, n)| Version {
            ts: Timestamp(t),
            node: id(n)
        }),
    ];
    let value = prop::option::of(prop::collection::vec(any::<u8>(), 0..3).prop_map(Bytes::from));
    (version, value).prop_map(|(version, value)| Entry { version, value })
}

fn records() -> impl Strategy<Value = Vec<dkv_proto::wire::v2::Record>> {
    prop::collection::vec((key(), entry_s()).prop_map(|(k, e)| record(&k, e)), 0..4)
}

fn range_s() -> impl Strategy<Value = Range> {
    prop_oneof![
        Just(Range::ROOT),
        (0u64..16).prop_map(|p| Range::new(1, p).unwrap()),
        any::<u64>().prop_map(|p| Range::new(16, p).unwrap()),
    ]
}

fn step_s() -> impl Strategy<Value = Step> {
    let item = (any::<u64>(), entry_s(), any::<u64>()).prop_map(|(key_hash, e, digest)| Item {
        key_hash,
        version: e.version,
        digest,
    });
    prop_oneof![
        (range_s(), any::<u64>(), 0u64..100).prop_map(|(range, fingerprint, count)| {
            Step::Fingerprint {
                range,
                summary: Summary { fingerprint, count },
            }
        }),
        (range_s(), prop::collection::vec(item, 0..3))
            .prop_map(|(range, items)| Step::Items { range, items }),
    ]
}

fn body_s() -> impl Strategy<Value = Body> {
    prop_oneof![
        (any::<bool>(), records()).prop_map(|(echo, records)| Body::Put { echo, records }),
        key().prop_map(|key| Body::Ask { key }),
        (
            0u64..3,
            any::<bool>(),
            any::<bool>(),
            prop::collection::vec(step_s(), 0..3)
        )
            .prop_map(|(session, initiator, last, steps)| Body::Sync {
                session,
                initiator,
                last,
                steps
            }),
        (0u64..4, range_s(), any::<Option<u64>>()).prop_map(|(request, range, after)| {
            Body::Pull {
                request,
                range,
                after,
            }
        }),
        (0u64..4, prop::collection::vec(any::<u64>(), 0..3)).prop_map(|(request, key_hashes)| {
            Body::Fetch {
                request,
                key_hashes,
            }
        }),
        (0u64..4, records(), any::<Option<u64>>()).prop_map(|(request, records, more)| {
            Body::Push {
                request,
                records,
                more,
            }
        }),
    ]
}

fn wire() -> impl Strategy<Value = Message> {
    let asker = prop_oneof![Just(id(1)), Just(id(2)), Just(id(7))];
    let value = prop::collection::vec(any::<u8>(), 0..3).prop_map(Bytes::from);
    prop_oneof![
        (key(), value.clone()).prop_map(|(key, value)| Message::Set { key, value }),
        (asker.clone(), key()).prop_map(|(asker, key)| Message::Question { asker, key }),
        (asker.clone(), key(), value).prop_map(|(asker, key, value)| Message::Answer {
            asker,
            key,
            value
        }),
        asker.clone().prop_map(|asker| Message::List { asker }),
        (asker, prop::collection::vec(key(), 0..4))
            .prop_map(|(asker, keys)| Message::ListAnswer { asker, keys }),
        (
            prop_oneof![Just(None), Just(Some(id(1))), Just(Some(id(3)))],
            prop_oneof![Just(id(2)), Just(id(3)), Just(id(1))],
            body_s()
        )
            .prop_map(|(to, from, body)| Message::Dkv(Envelope { to, from, body })),
    ]
}

fn input() -> impl Strategy<Value = Input> {
    let datagram = prop_oneof![
        (1u16..4).prop_map(|p| format!("beacon {p}").into_bytes()),
        (1u16..4, 1u8..4).prop_map(|(p, n)| hello(n, p)),
        prop::collection::vec(any::<u8>(), 0..17),
    ];
    prop_oneof![
        4 => (0u16..3_000).prop_map(Input::Wait),
        1 => (-120_000i32..120_000).prop_map(Input::WallClock),
        1 => (1u8..3).prop_map(Input::NetUp),
        1 => Just(Input::NetDown),
        4 => (1u8..4, datagram).prop_map(|(ip, d)| Input::Datagram(ip, d)),
        1 => prop::collection::vec(prop::collection::vec(any::<u8>(), 0..12), 0..4)
            .prop_map(Input::Frames),
        4 => wire().prop_map(Input::Wire),
        2 => (any::<bool>(), prop::collection::vec(step_s(), 0..3))
            .prop_map(|(last, steps)| Input::ReplyToSync(last, steps)),
        1 => (key(), entry_s()).prop_map(|(k, e)| Input::Echo(k, e)),
        2 => (key(), prop::collection::vec(any::<u8>(), 0..3)).prop_map(|(k, v)| Input::Set(k, v)),
        2 => key().prop_map(Input::Delete),
        2 => (key(), prop::option::of(prop_oneof![0u64..500, Just(u64::MAX)]))
            .prop_map(|(k, t)| Input::Get(k, t)),
        1 => Just(Input::Shutdown),
    ]
}

/// What the outputs so far say, checked against the node after every input.
#[derive(Default)]
struct Model {
    started: BTreeSet<GetId>,
    completed: BTreeSet<GetId>,
    connected: BTreeSet<SocketAddr>,
    /// The last `Applied` entry of each key.
    applied: BTreeMap<String, Entry>,
    /// The latest `sync` the node started, to reply to: (peer, session).
    last_sync: Option<(dkv_proto::NodeId, u64)>,
}

fn node_under_test() -> Node {
    let mut c = config(1, PORT);
    c.timings.tombstone_horizon = Duration::from_secs(5);
    Node::new(c)
}

/// Feeds `input` to `n` at `*now`, as a transport would.
fn feed(
    n: &mut Node,
    now: &mut Instant,
    wall_ms: &mut u64,
    model: &Model,
    input: Input,
) -> Option<GetId> {
    match input {
        Input::Wait(ms) => {
            *now += Duration::from_millis(ms.into());
            *wall_ms += u64::from(ms);
            n.handle_timeout(*now);
        }
        Input::WallClock(step) => {
            *wall_ms = wall_ms.saturating_add_signed(step.into());
            n.handle_wall_clock(*now, *wall_ms);
        }
        Input::NetUp(last) => n.handle_net_up(*now, ip(last)),
        Input::NetDown => n.handle_net_down(*now),
        Input::Datagram(last, d) => n.handle_beacon(*now, ip(last), &d),
        Input::Frames(frames) => n.handle_message(*now, &frames),
        Input::Wire(msg) => n.handle_message(*now, &msg.encode()),
        Input::ReplyToSync(last, steps) => {
            if let Some((peer, session)) = model.last_sync {
                let body = Body::Sync {
                    session,
                    initiator: false,
                    last,
                    steps,
                };
                let msg = Message::Dkv(Envelope {
                    to: Some(id(1)),
                    from: peer,
                    body,
                });
                n.handle_message(*now, &msg.encode());
            }
        }
        Input::Echo(key, entry) => {
            let value = entry.value.clone().unwrap_or_default();
            let records = vec![record(&key, entry)];
            let put = to_all(
                3,
                Body::Put {
                    echo: true,
                    records,
                },
            );
            n.handle_message(*now, &put.encode());
            n.handle_message(*now, &Message::Set { key, value }.encode());
        }
        Input::Set(k, v) => n.set(*now, k, Bytes::from(v)),
        Input::Delete(k) => n.delete(*now, k),
        Input::Get(k, t) => return Some(n.get(*now, k, t.map(Duration::from_millis))),
        Input::Shutdown => n.shutdown(*now),
    }
    None
}

/// Drains `n`, checking every output against the model and the node.
fn check_outputs(n: &mut Node, model: &mut Model) -> Result<(), TestCaseError> {
    while let Some(output) = n.poll_output() {
        match output {
            Output::Publish(msg) => {
                prop_assert_eq!(Message::decode(&msg.encode()), Ok(msg.clone()));
                if let Message::Dkv(e) = &msg {
                    prop_assert_eq!(e.from, id(1));
                    if let Body::Put { records, .. } = &e.body {
                        prop_assert!(records.iter().all(|r| r.entry.version.node == id(1)));
                    }
                    if let (
                        Some(to),
                        Body::Sync {
                            session,
                            initiator: true,
                            ..
                        },
                    ) = (e.to, &e.body)
                    {
                        model.last_sync = Some((to, *session));
                    }
                }
            }
            Output::PublishSealed(_) => prop_assert!(false, "an unkeyed node sealed"),
            Output::Beacon(d) => {
                prop_assert!(
                    d[..] == hello(1, PORT)[..] || &d[..] == b"beacon 1",
                    "{:?}",
                    d
                );
            }
            Output::Connect(addr) => {
                let own = n.local_ip().map(|ip| SocketAddr::new(ip, PORT));
                prop_assert_ne!(Some(addr), own, "never connects to itself");
                prop_assert!(model.connected.insert(addr), "connects once");
            }
            Output::Disconnect(addr) => {
                prop_assert!(
                    model.connected.remove(&addr),
                    "disconnects what it connected"
                );
            }
            Output::GetDone(done) => {
                prop_assert!(model.started.contains(&done.id));
                prop_assert!(model.completed.insert(done.id), "a get completes once");
            }
            Output::Applied(a) => {
                model.applied.insert(a.key, a.entry);
            }
            Output::Collected(key) => {
                let was = model.applied.remove(&key);
                prop_assert!(
                    was.is_some_and(|e| e.is_tombstone()),
                    "only tombstones are collected"
                );
            }
        }
    }
    Ok(())
}

/// Checks the node's state against the model and its own accounting.
fn check_state(n: &Node, model: &Model, before: &Stats) -> Result<(), TestCaseError> {
    prop_assert_eq!(
        model.connected.iter().copied().collect::<Vec<_>>(),
        n.peers().collect::<Vec<_>>()
    );
    for (key, e) in n.entries() {
        prop_assert_eq!(
            model.applied.get(key),
            Some(&e),
            "{} changed unreported",
            key
        );
    }
    for (key, e) in &model.applied {
        if n.entry(key).is_none() {
            prop_assert!(
                e.is_tombstone(),
                "only collected tombstones vanish: {}",
                key
            );
        }
    }
    let entries = n.entries().count();
    prop_assert_eq!(n.summary().count, entries as u64);
    prop_assert_eq!(n.len() + n.tombstones(), entries);
    prop_assert_eq!(n.keys().count(), n.len());
    let after = n.stats();
    for ((name, a), (_, b)) in before.iter().zip(after.iter()) {
        prop_assert!(b >= a, "counter {} went down", name);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_input_sequence_keeps_the_invariants(inputs in prop::collection::vec(input(), 0..60)) {
        let mut n = node_under_test();
        let mut now = at(0);
        let mut wall_ms = WALL_MS;
        let mut model = Model::default();
        for input in inputs {
            let clock = n.clock();
            let stats = n.stats();
            if let Some(get) = feed(&mut n, &mut now, &mut wall_ms, &model, input) {
                prop_assert!(model.started.insert(get), "get ids are unique");
            }
            check_outputs(&mut n, &mut model)?;
            check_state(&n, &model, &stats)?;
            prop_assert!(n.clock() >= clock, "the clock went back");
        }
        // Gets with finite timeouts complete by then; the rest complete at shutdown.
        now += Duration::from_secs(60);
        n.handle_timeout(now);
        n.shutdown(now);
        check_outputs(&mut n, &mut model)?;
        prop_assert_eq!(&model.started, &model.completed, "every get completes");
        prop_assert_eq!(n.pending_gets(), 0);
    }

    #[test]
    fn any_input_sequence_leaves_no_deadline_due(inputs in prop::collection::vec(input(), 0..60)) {
        let mut n = node_under_test();
        let mut now = at(0);
        let mut wall_ms = WALL_MS;
        let mut model = Model::default();
        for input in inputs {
            if let Some(get) = feed(&mut n, &mut now, &mut wall_ms, &model, input) {
                model.started.insert(get);
            }
            if n.poll_timeout().is_some_and(|t| t <= now) {
                n.handle_timeout(now);
            }
            if let Some(due) = n.poll_timeout() {
                prop_assert!(due > now, "a deadline {:?} in the past after handle_timeout", now - due);
            }
            check_outputs(&mut n, &mut model)?;
        }
    }
}

// ---- timings ----

/// Drives a node through beacons, hellos, a get, a delete and timers with `timings`.
fn exercise(timings: Timings, wall_ms: u64) {
    let mut c = config(1, PORT);
    c.timings = timings;
    let mut n = Node::new(c);
    n.handle_net_up(at(0), ip(1));
    n.handle_wall_clock(at(0), wall_ms);
    n.handle_beacon(at(0), ip(2), b"beacon 9");
    n.handle_beacon(at(0), ip(3), &hello(3, 9));
    n.get(at(0), "k".into(), None);
    n.delete(at(0), "d".into());
    n.handle_timeout(at(10_000));
    n.handle_beacon(at(10_000), ip(3), &hello(3, 9));
    n.handle_timeout(at(20_000));
    while n.poll_output().is_some() {}
    assert!(n.poll_timeout().is_some_and(|t| t > at(20_000)));
}

fn huge(f: impl FnOnce(&mut Timings)) -> Timings {
    let mut t = Timings::default();
    f(&mut t);
    t
}

#[test]
fn huge_timers_never_panic() {
    exercise(
        huge(|t| {
            t.get_timeout = Duration::MAX;
            t.bootstrap_delay = Duration::MAX;
            t.bootstrap_settle = Duration::MAX;
            t.bootstrap_question_timeout = Duration::MAX;
            t.sync_interval = Duration::MAX;
            t.sync_timeout = Duration::MAX;
            t.max_clock_offset = Duration::MAX;
            t.tombstone_horizon = Duration::MAX;
        }),
        WALL_MS,
    );
}

#[test]
fn a_huge_beacon_interval_never_panics() {
    // Node::new accepts any timing; node.rs multiplies beacon_interval by 5.
    exercise(huge(|t| t.beacon_interval = Duration::MAX), WALL_MS);
}

#[test]
fn a_huge_peer_timeout_never_panics() {
    // Node::new accepts any timing; peers.rs multiplies peer_timeout by 16.
    exercise(huge(|t| t.peer_timeout = Duration::MAX), WALL_MS);
}

#[test]
fn a_huge_tombstone_horizon_with_the_wall_clock_at_the_epoch_never_panics() {
    // node.rs schedule_gc: `expires.saturating_sub(wall) + 1` with expires = u64::MAX.
    exercise(huge(|t| t.tombstone_horizon = Duration::MAX), 0);
}

#[test]
fn a_tombstone_horizon_beyond_u64_milliseconds_never_collects_early() {
    // 18,446,744,073,709,552 s is 2^64 ms + 384 ms; `as u64` would make it 384 ms.
    let mut c = config(1, PORT);
    c.timings.tombstone_horizon = Duration::from_secs(18_446_744_073_709_552);
    let mut n = up(Node::new(c), 1, at(0));
    n.delete(at(0), "k".into());
    n.handle_timeout(at(1_000));
    assert_eq!(
        n.tombstones(),
        1,
        "collected after 1 s with a horizon of ~585 My"
    );
}
