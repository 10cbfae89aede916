//! Random input never panics a node, and its invariants hold whatever it is fed.

mod support;

use bytes::Bytes;
use dkv_proto::{GetId, Message, Output};
use proptest::prelude::*;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;
use support::*;

#[derive(Clone, Debug)]
enum Step {
    Wait(u16),
    NetUp(u8),
    NetDown,
    Beacon(u8, Vec<u8>),
    Frames(Vec<Vec<u8>>),
    Wire(Message),
    Set(String, Vec<u8>),
    Get(String, Option<u64>),
    Shutdown,
}

fn step() -> impl Strategy<Value = Step> {
    let key = prop::sample::select(vec!["a", "b", "c", "é"]).prop_map(String::from);
    let frames = prop::collection::vec(prop::collection::vec(any::<u8>(), 0..12), 0..5);
    let beacon = prop_oneof![
        (1u16..6).prop_map(|p| format!("beacon {p}").into_bytes()),
        prop::collection::vec(any::<u8>(), 0..16),
    ];
    let asker = prop_oneof![Just(id(1)), Just(id(2))];
    let wire = prop_oneof![
        (key.clone(), any::<Vec<u8>>()).prop_map(|(key, v)| Message::Set {
            key,
            value: v.into()
        }),
        (asker.clone(), key.clone()).prop_map(|(asker, key)| Message::Question { asker, key }),
        (asker.clone(), key.clone(), any::<Vec<u8>>()).prop_map(|(asker, key, v)| {
            Message::Answer {
                asker,
                key,
                value: v.into(),
            }
        }),
        asker.clone().prop_map(|asker| Message::List { asker }),
        (asker, prop::collection::vec(key.clone(), 0..4))
            .prop_map(|(asker, keys)| Message::ListAnswer { asker, keys }),
    ];
    prop_oneof![
        (0u16..3_000).prop_map(Step::Wait),
        (1u8..3).prop_map(Step::NetUp),
        Just(Step::NetDown),
        (1u8..4, beacon).prop_map(|(ip, b)| Step::Beacon(ip, b)),
        frames.prop_map(Step::Frames),
        wire.prop_map(Step::Wire),
        (key.clone(), prop::collection::vec(any::<u8>(), 0..3)).prop_map(|(k, v)| Step::Set(k, v)),
        (
            key,
            prop::option::of(prop_oneof![0u64..500, Just(u64::MAX)])
        )
            .prop_map(|(k, t)| Step::Get(k, t)),
        Just(Step::Shutdown),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_input_sequence_keeps_the_invariants(steps in prop::collection::vec(step(), 0..60)) {
        let mut n = node(1, 1);
        let mut now = at(0);
        let mut started: BTreeSet<GetId> = BTreeSet::new();
        let mut completed: BTreeSet<GetId> = BTreeSet::new();
        let mut connected: BTreeSet<SocketAddr> = BTreeSet::new();
        for step in steps {
            match step {
                Step::Wait(ms) => {
                    now += Duration::from_millis(ms.into());
                    n.handle_timeout(now);
                }
                Step::NetUp(last) => n.handle_net_up(now, ip(last)),
                Step::NetDown => n.handle_net_down(now),
                Step::Beacon(last, payload) => n.handle_beacon(now, ip(last), &payload),
                Step::Frames(frames) => n.handle_message(now, &frames),
                Step::Wire(msg) => n.handle_message(now, &msg.encode()),
                Step::Set(k, v) => n.set(now, k, Bytes::from(v)),
                Step::Get(k, t) => {
                    let timeout = t.map(Duration::from_millis);
                    prop_assert!(started.insert(n.get(now, k, timeout)), "get ids are unique");
                }
                Step::Shutdown => n.shutdown(now),
            }
            if let Some(deadline) = n.poll_timeout() {
                prop_assert!(deadline >= at(0));
            }
            while let Some(output) = n.poll_output() {
                match output {
                    Output::Publish(msg) => {
                        prop_assert_eq!(Message::decode(&msg.encode()), Ok(msg));
                    }
                    Output::Beacon(payload) => prop_assert_eq!(&payload[..], b"beacon 1"),
                    Output::Connect(addr) => {
                        let own = n.local_ip().map(|ip| SocketAddr::new(ip, 1));
                        prop_assert_ne!(Some(addr), own, "never connects to itself");
                        prop_assert!(connected.insert(addr), "connects once");
                    }
                    Output::Disconnect(addr) => {
                        prop_assert!(connected.remove(&addr), "disconnects what it connected");
                    }
                    Output::GetDone(done) => {
                        prop_assert!(started.contains(&done.id));
                        prop_assert!(completed.insert(done.id), "a get completes once");
                    }
                }
            }
            prop_assert_eq!(connected.iter().copied().collect::<Vec<_>>(), n.peers().collect::<Vec<_>>());
        }
        // Gets with finite timeouts complete by then; the rest complete at shutdown.
        now += Duration::from_secs(60);
        n.handle_timeout(now);
        n.shutdown(now);
        while let Some(output) = n.poll_output() {
            if let Output::GetDone(done) = output {
                prop_assert!(completed.insert(done.id));
            }
        }
        prop_assert_eq!(started, completed, "every get completes");
        prop_assert_eq!(n.pending_gets(), 0);
    }
}
