//! Target `decode`: arbitrary multipart frames through the strict decoder, the
//! encoder, and a node's drop counters.

use super::{assert_stats_monotonic, stats_delta};
use crate::input::Reader;
use dkv_proto::{Config, DecodeError, Kind, Message, Node, NodeId};
use std::time::Instant;

/// The id of the node the `decode` target feeds; it contains a space on purpose.
pub const DECODE_NODE_ID: NodeId = NodeId(*b"me \x00\xffid!");

/// Splits fuzzer bytes into frames: consecutive [`Reader::bytes`] strings until the
/// input ends. No bytes give no frames.
pub fn split_frames(data: &[u8]) -> Vec<&[u8]> {
    let mut reader = Reader::new(data);
    std::iter::from_fn(|| reader.bytes()).collect()
}

/// Checks, for the frames in `data` (see [`split_frames`]):
/// - [`Message::decode`] returns without panicking;
/// - a message that decodes re-encodes to exactly the same frames (the decoder is
///   strict, so the encoding is canonical), and those decode to the same message;
/// - an error names a real defect: `Empty` only for no frames, `UnknownTopic` only
///   for a topic that is no kind's name, `KeyNotUtf8` only if some frame is not UTF-8;
/// - a node fed the frames moves exactly one counter by exactly one: `in_<kind>`
///   for an accepted message, or the drop counter of its reason.
pub fn decode(data: &[u8]) {
    let frames = split_frames(data);
    let decoded = Message::decode(&frames);
    match &decoded {
        Ok(msg) => {
            let encoded = msg.encode();
            let encoded_refs: Vec<&[u8]> = encoded.iter().map(|f| &f[..]).collect();
            assert_eq!(
                encoded_refs, frames,
                "re-encoding changed the frames of {msg:?}"
            );
            assert_eq!(Message::decode(&encoded).as_ref(), Ok(msg), "round trip");
            assert_eq!(msg.topic(), encoded[0], "topic() is the first frame");
        }
        Err(DecodeError::Empty) => assert!(frames.is_empty(), "Empty with frames"),
        Err(DecodeError::UnknownTopic) => {
            let topic = frames[0];
            let name = topic.split(|&b| b == b' ').next().unwrap_or(topic);
            let named = Kind::ALL.iter().any(|k| k.name().as_bytes() == name);
            // `set` with a suffix is the one named topic that is still unknown.
            assert!(!named || name == b"set", "UnknownTopic for a known name");
        }
        Err(DecodeError::KeyNotUtf8) => assert!(
            frames.iter().any(|f| std::str::from_utf8(f).is_err()),
            "KeyNotUtf8 with all frames UTF-8"
        ),
        Err(DecodeError::BadId | DecodeError::FrameCount) => assert!(!frames.is_empty()),
    }

    let mut node = Node::new(Config::new(DECODE_NODE_ID, 41017));
    let now = Instant::now();
    let before = node.stats().clone();
    node.handle_message(now, &frames);
    let after = node.stats().clone();
    assert_stats_monotonic(&before, &after);
    let expected = match &decoded {
        Ok(Message::Answer { asker, .. }) if *asker != DECODE_NODE_ID => "drop_answer_not_ours",
        Ok(Message::ListAnswer { asker, .. }) if *asker != DECODE_NODE_ID => {
            "drop_list_answer_not_ours"
        }
        Ok(msg) => match msg.kind() {
            Kind::Set => "in_set",
            Kind::Question => "in_question",
            Kind::Answer => "in_answer",
            Kind::List => "in_list",
            Kind::ListAnswer => "in_list_answer",
        },
        Err(DecodeError::Empty) => "drop_empty",
        Err(DecodeError::UnknownTopic) => "drop_unknown_topic",
        Err(DecodeError::BadId) => "drop_bad_id",
        Err(DecodeError::FrameCount) => "drop_frame_count",
        Err(DecodeError::KeyNotUtf8) => "drop_key_not_utf8",
    };
    let moved: Vec<_> = stats_delta(&before, &after)
        .into_iter()
        .filter(|(name, _)| name.starts_with("in_") || name.starts_with("drop_"))
        .collect();
    assert_eq!(moved, vec![(expected, 1)], "counters for {decoded:?}");
    // Whatever came in, anything the node publishes in reply is well-formed.
    while let Some(output) = node.poll_output() {
        if let dkv_proto::Output::Publish(reply) = output {
            assert_eq!(Message::decode(&reply.encode()), Ok(reply));
        }
    }
}
