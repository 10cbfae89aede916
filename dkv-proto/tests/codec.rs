//! The wire codec: exact prototype frames for every row of the message table, a
//! strict decoder with a typed error, and round trips.

use bytes::Bytes;
use dkv_proto::{subscriptions, DecodeError, Kind, Message, NodeId};
use proptest::prelude::*;

const ASKER: NodeId = NodeId([0, b' ', 0xff, b'a', 7, 8, b' ', 0x80]);

fn frames(msg: &Message) -> Vec<Vec<u8>> {
    msg.encode().iter().map(|f| f.to_vec()).collect()
}

fn topic(name: &str) -> Vec<u8> {
    let mut t = name.as_bytes().to_vec();
    t.push(b' ');
    t.extend_from_slice(&ASKER.0);
    t
}

#[test]
fn set_is_topic_key_value() {
    let msg = Message::Set {
        key: "k".into(),
        value: Bytes::from_static(b"\x00v"),
    };
    assert_eq!(
        frames(&msg),
        vec![b"set".to_vec(), b"k".to_vec(), b"\x00v".to_vec()]
    );
}

#[test]
fn question_is_topic_with_raw_asker_id_then_key() {
    let msg = Message::Question {
        asker: ASKER,
        key: "clé".into(),
    };
    assert_eq!(
        frames(&msg),
        vec![topic("question"), "clé".as_bytes().to_vec()]
    );
}

#[test]
fn answer_is_topic_with_asker_then_key_and_value() {
    let msg = Message::Answer {
        asker: ASKER,
        key: "k".into(),
        value: Bytes::from_static(b"v"),
    };
    assert_eq!(
        frames(&msg),
        vec![topic("answer"), b"k".to_vec(), b"v".to_vec()]
    );
}

#[test]
fn list_is_a_lone_topic_frame() {
    assert_eq!(frames(&Message::List { asker: ASKER }), vec![topic("list")]);
}

#[test]
fn list_answer_carries_one_frame_per_key_possibly_none() {
    let empty = Message::ListAnswer {
        asker: ASKER,
        keys: vec![],
    };
    assert_eq!(frames(&empty), vec![topic("list_answer")]);
    let two = Message::ListAnswer {
        asker: ASKER,
        keys: vec!["a".into(), "b".into()],
    };
    assert_eq!(
        frames(&two),
        vec![topic("list_answer"), b"a".to_vec(), b"b".to_vec()]
    );
}

#[test]
fn asker_id_with_spaces_splits_at_the_first_space_only() {
    let msg = Message::Question {
        asker: ASKER,
        key: "k".into(),
    };
    assert_eq!(Message::decode(&frames(&msg)), Ok(msg));
}

#[test]
fn subscriptions_are_the_prototypes_with_list_narrowed_to_its_own_topic() {
    let subs: Vec<Vec<u8>> = subscriptions(ASKER).iter().map(|s| s.to_vec()).collect();
    assert_eq!(
        subs,
        vec![
            b"set".to_vec(),
            b"question".to_vec(),
            b"list ".to_vec(),
            topic("answer"),
            topic("list_answer"),
        ]
    );
    let matches = |topic: &[u8]| subs.iter().any(|s| topic.starts_with(s));
    assert!(matches(&topic("list")), "every node's list is received");
    assert!(
        matches(&topic("list_answer")),
        "our own list answers are received"
    );
    let mut others = b"list_answer ".to_vec();
    others.extend_from_slice(b"someone");
    others.push(b'!');
    assert!(!matches(&others), "other nodes' list answers are not");
}

#[test]
fn kinds_name_their_topics() {
    let names: Vec<&str> = Kind::ALL.iter().map(|k| k.name()).collect();
    assert_eq!(names, ["set", "question", "answer", "list", "list_answer"]);
}

fn decode(frames: &[&[u8]]) -> Result<Message, DecodeError> {
    Message::decode(frames)
}

#[test]
fn no_frames_is_empty() {
    assert_eq!(decode(&[]), Err(DecodeError::Empty));
}

#[test]
fn unknown_topics_are_rejected() {
    assert_eq!(
        decode(&[b"put", b"k", b"v"]),
        Err(DecodeError::UnknownTopic)
    );
    assert_eq!(
        decode(&[b"settle", b"k", b"v"]),
        Err(DecodeError::UnknownTopic)
    );
    assert_eq!(decode(&[b"", b"k"]), Err(DecodeError::UnknownTopic));
    assert_eq!(
        decode(&[b"set 12345678", b"k", b"v"]),
        Err(DecodeError::UnknownTopic)
    );
}

#[test]
fn topics_needing_an_id_reject_a_missing_or_misshapen_one() {
    assert_eq!(decode(&[b"question", b"k"]), Err(DecodeError::BadId));
    assert_eq!(
        decode(&[b"question 1234567", b"k"]),
        Err(DecodeError::BadId)
    );
    assert_eq!(decode(&[b"list 123456789"]), Err(DecodeError::BadId));
    assert_eq!(decode(&[b"answer ", b"k", b"v"]), Err(DecodeError::BadId));
}

#[test]
fn missing_or_extra_frames_are_rejected() {
    let q = topic("question");
    let a = topic("answer");
    let l = topic("list");
    assert_eq!(decode(&[b"set", b"k"]), Err(DecodeError::FrameCount));
    assert_eq!(
        decode(&[b"set", b"k", b"v", b"x"]),
        Err(DecodeError::FrameCount)
    );
    assert_eq!(decode(&[&q]), Err(DecodeError::FrameCount));
    assert_eq!(decode(&[&q, b"k", b"x"]), Err(DecodeError::FrameCount));
    assert_eq!(decode(&[&a, b"k"]), Err(DecodeError::FrameCount));
    assert_eq!(decode(&[&l, b"k"]), Err(DecodeError::FrameCount));
}

#[test]
fn non_utf8_keys_are_rejected_in_every_kind() {
    let bad: &[u8] = b"\xff\xfe";
    let q = topic("question");
    let a = topic("answer");
    let la = topic("list_answer");
    assert_eq!(decode(&[b"set", bad, b"v"]), Err(DecodeError::KeyNotUtf8));
    assert_eq!(decode(&[&q, bad]), Err(DecodeError::KeyNotUtf8));
    assert_eq!(decode(&[&a, bad, b"v"]), Err(DecodeError::KeyNotUtf8));
    assert_eq!(decode(&[&la, b"ok", bad]), Err(DecodeError::KeyNotUtf8));
}

#[test]
fn values_may_be_any_bytes_including_empty() {
    let msg = decode(&[b"set", b"k", b""]).unwrap();
    assert_eq!(
        msg,
        Message::Set {
            key: "k".into(),
            value: Bytes::new()
        }
    );
    let msg = decode(&[b"set", b"k", b"\xff\x00"]).unwrap();
    assert_eq!(msg.encode()[2], Bytes::from_static(b"\xff\x00"));
}

fn node_id() -> impl Strategy<Value = NodeId> {
    any::<[u8; 8]>().prop_map(NodeId)
}

fn key() -> impl Strategy<Value = String> {
    any::<String>()
}

fn message() -> impl Strategy<Value = Message> {
    let value = proptest::collection::vec(any::<u8>(), 0..64).prop_map(Bytes::from);
    prop_oneof![
        (key(), value.clone()).prop_map(|(key, value)| Message::Set { key, value }),
        (node_id(), key()).prop_map(|(asker, key)| Message::Question { asker, key }),
        (node_id(), key(), value).prop_map(|(asker, key, value)| Message::Answer {
            asker,
            key,
            value
        }),
        node_id().prop_map(|asker| Message::List { asker }),
        (node_id(), proptest::collection::vec(key(), 0..8))
            .prop_map(|(asker, keys)| Message::ListAnswer { asker, keys }),
    ]
}

proptest! {
    #[test]
    fn every_message_round_trips(msg in message()) {
        prop_assert_eq!(Message::decode(&msg.encode()), Ok(msg));
    }

    #[test]
    fn garbage_frames_never_panic_and_what_decodes_re_encodes_identically(
        frames in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..24), 0..6)
    ) {
        if let Ok(msg) = Message::decode(&frames) {
            let again: Vec<Vec<u8>> = msg.encode().iter().map(|f| f.to_vec()).collect();
            prop_assert_eq!(again, frames);
        }
    }

    #[test]
    fn plausible_topics_with_garbage_never_panic(
        name in prop::sample::select(vec!["set", "question", "answer", "list", "list_answer"]),
        id in proptest::collection::vec(any::<u8>(), 0..10),
        rest in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..8), 0..4),
        space in any::<bool>(),
    ) {
        let mut topic = name.as_bytes().to_vec();
        if space { topic.push(b' '); topic.extend_from_slice(&id); }
        let mut frames = vec![topic];
        frames.extend(rest);
        let _ = Message::decode(&frames);
    }
}
