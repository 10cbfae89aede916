//! Target `decode`: arbitrary multipart frames through the strict decoder, the
//! encoder, and a fresh node's counters, outputs and store.

use super::model::{summary, Model, Wall};
use super::{
    assert_publish_well_formed, assert_stats_monotonic, moved, moved_by, stats_delta, Counter,
};
use crate::input::Reader;
use dkv_proto::wire::v2::{TOPIC_ALL, TOPIC_TO, WIRE_VERSION};
use dkv_proto::wire::Range;
use dkv_proto::{Config, DecodeError, Entry, Message, Node, NodeId, Output, WallClock};
use std::collections::BTreeMap;
use std::time::Instant;

/// The id of the node the `decode` target feeds; it contains a space on purpose.
pub const DECODE_NODE_ID: NodeId = NodeId(*b"me \x00\xffid!");
/// The node's wall time when fed, in ms since the Unix epoch: versions up to
/// `max_clock_offset` (500 ms) past it are accepted.
pub const DECODE_WALL_MS: u64 = 1_700_000_000_000;
/// The prototype's topic names.
const PROTOTYPE_NAMES: [&[u8]; 5] = [b"set", b"question", b"answer", b"list", b"list_answer"];

/// Splits fuzzer bytes into frames: consecutive [`Reader::bytes`] strings until the
/// input ends. No bytes give no frames.
pub fn split_frames(data: &[u8]) -> Vec<&[u8]> {
    let mut reader = Reader::new(data);
    std::iter::from_fn(|| reader.bytes()).collect()
}

/// Whether `topic` is a dkv/2 topic (`dkv2.all`, or `dkv2.to ` and anything).
fn is_v2_topic(topic: &[u8]) -> bool {
    topic == TOPIC_ALL || topic.starts_with(TOPIC_TO)
}

/// Checks that a decode result is consistent with the frames: a message re-encodes
/// to exactly them, and an error names a defect they really have.
fn check_decoded(frames: &[&[u8]], decoded: &Result<Message, DecodeError>) {
    let err = match decoded {
        Ok(msg) => {
            let encoded = msg.encode();
            let encoded_refs: Vec<&[u8]> = encoded.iter().map(|f| &f[..]).collect();
            assert_eq!(
                encoded_refs, frames,
                "re-encoding changed the frames of {msg:?}"
            );
            assert_eq!(Message::decode(&encoded).as_ref(), Ok(msg), "round trip");
            assert_eq!(msg.topic(), encoded[0], "topic() is the first frame");
            assert_eq!(
                matches!(msg, Message::Dkv(_)),
                is_v2_topic(frames[0]),
                "a dkv/2 message exactly for a dkv/2 topic"
            );
            return;
        }
        Err(err) => *err,
    };
    if err == DecodeError::Empty {
        assert!(frames.is_empty(), "Empty with frames");
        return;
    }
    let topic = frames[0];
    if is_v2_topic(topic) {
        let body = frames.get(1).copied().unwrap_or_default();
        match err {
            DecodeError::BadId => assert!(
                topic.starts_with(TOPIC_TO) && topic.len() != TOPIC_TO.len() + 8,
                "BadId for a well-formed id"
            ),
            DecodeError::FrameCount => assert_ne!(frames.len(), 2, "FrameCount"),
            DecodeError::UnknownVersion => {
                assert!(frames.len() == 2 && body.first().is_some_and(|&v| v != WIRE_VERSION))
            }
            DecodeError::BadBody => {
                assert!(frames.len() == 2 && body.first().is_none_or(|&v| v == WIRE_VERSION))
            }
            // Only put (1), ask (2) and push (6) carry keys.
            DecodeError::KeyNotUtf8 => assert!(
                frames.len() == 2 && body.len() > 10 && [1, 2, 6].contains(&body[1]),
                "KeyNotUtf8 for a body without keys"
            ),
            // `Message::decode` applies no size limits.
            DecodeError::Empty
            | DecodeError::UnknownTopic
            | DecodeError::Oversized
            | DecodeError::KeyTooLong
            | DecodeError::ValueTooLarge => {
                panic!("{err:?} for dkv/2 topic {topic:?}")
            }
        }
        return;
    }
    let (name, has_id) = match topic.iter().position(|&b| b == b' ') {
        Some(i) => (&topic[..i], true),
        None => (topic, false),
    };
    let named = PROTOTYPE_NAMES.contains(&name);
    match err {
        // `set` with a suffix is the one prototype name that is still unknown.
        DecodeError::UnknownTopic => assert!(!named || (name == b"set" && has_id), "UnknownTopic"),
        DecodeError::BadId => assert!(
            named && name != b"set" && topic.len() != name.len() + 9,
            "BadId for a well-formed id"
        ),
        DecodeError::FrameCount => assert!(named, "FrameCount for an unknown topic"),
        DecodeError::KeyNotUtf8 => assert!(
            frames[1..].iter().any(|f| std::str::from_utf8(f).is_err()),
            "KeyNotUtf8 with all frames UTF-8"
        ),
        DecodeError::Empty
        | DecodeError::UnknownVersion
        | DecodeError::BadBody
        | DecodeError::Oversized
        | DecodeError::KeyTooLong
        | DecodeError::ValueTooLarge => {
            panic!("{err:?} for prototype topic {topic:?}")
        }
    }
}

/// Checks, for the frames in `data` (see [`split_frames`]):
/// - [`Message::decode`] returns without panicking;
/// - a message that decodes re-encodes to exactly the same frames (the decoder is
///   strict, so the encoding is canonical), and those decode to the same message;
///   it is a dkv/2 message exactly when the topic is `dkv2.all` or `dkv2.to …`;
/// - an error names a real defect of the frames (e.g. `UnknownVersion` only for a
///   dkv/2 body whose first byte is not the wire version, `KeyNotUtf8` only where a
///   key can be);
/// - a fresh node fed the frames moves exactly one message-verdict counter by one
///   (`in_<kind>`, or the drop counter of its reason: a bad frame, an `answer` or
///   `list_answer` for another node, a dkv/2 message to another node or claiming
///   the node's own id); its entry counters (`entries_applied`, `entries_stale`,
///   `drop_clock_ahead`, `echoes_ignored`), `Applied` outputs, store and clock are
///   exactly what the reference model predicts; otherwise only traffic counters move;
/// - whatever the node publishes in reply is well-formed and from its own id.
pub fn decode(data: &[u8]) {
    let frames = split_frames(data);
    let decoded = Message::decode(&frames);
    check_decoded(&frames, &decoded);

    let now = Instant::now();
    let wall = Wall {
        at: now,
        unix_ms: DECODE_WALL_MS,
    };
    let config = Config::new(
        DECODE_NODE_ID,
        41017,
        WallClock {
            at: now,
            unix_ms: DECODE_WALL_MS,
        },
    );
    let mut model = Model::new(DECODE_NODE_ID, config.timings.max_clock_offset);
    let mut node = Node::new(config);
    let predicted = model.receive(wall.ms(now), &decoded);
    let before = node.stats();
    node.handle_message(now, &frames);
    let after = node.stats();
    assert_stats_monotonic(&before, &after);
    let delta = stats_delta(&before, &after);
    assert_eq!(
        moved(&delta, Counter::MessageVerdict),
        vec![(predicted.verdict, 1)],
        "verdict for {decoded:?}"
    );
    for (name, want) in [
        ("entries_applied", predicted.entries_applied),
        ("entries_stale", predicted.entries_stale),
        ("drop_clock_ahead", predicted.clock_ahead),
        ("echoes_ignored", predicted.echoes_ignored),
    ] {
        assert_eq!(moved_by(&delta, name), want, "{name} for {decoded:?}");
    }
    for (name, _) in &delta {
        let c = super::counter(name);
        assert!(
            matches!(
                c,
                Counter::MessageVerdict | Counter::Entry | Counter::Traffic
            ),
            "{name} moved for a message"
        );
    }

    let mut applied = Vec::new();
    while let Some(output) = node.poll_output() {
        match output {
            Output::Publish(reply) => assert_publish_well_formed(DECODE_NODE_ID, &reply),
            Output::Applied(a) => applied.push(a),
            other => panic!("a message made a fresh node output {other:?}"),
        }
    }
    assert_eq!(
        applied, predicted.applied,
        "Applied outputs for {decoded:?}"
    );
    let held: BTreeMap<String, Entry> = node
        .entries()
        .map(|(k, e)| (k.to_owned(), e.clone()))
        .collect();
    assert_eq!(held, model.store, "store after {decoded:?}");
    assert_eq!(node.clock(), model.clock, "clock after {decoded:?}");
    assert_eq!(
        node.summary(),
        summary(&model.store, Range::ROOT),
        "summary"
    );
}
