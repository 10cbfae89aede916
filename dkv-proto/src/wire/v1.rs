//! The prototype's topics: `<name>` or `<name> <8 raw id bytes>`, then a fixed
//! number of frames per kind. Decoded strictly, encoded byte for byte as the
//! prototype sends them.

use super::{DecodeError, DecodeLimits, Kind, Message, NodeId};
use bytes::Bytes;

fn kind_from_name(name: &[u8]) -> Option<Kind> {
    [
        Kind::Set,
        Kind::Question,
        Kind::Answer,
        Kind::List,
        Kind::ListAnswer,
    ]
    .into_iter()
    .find(|k| k.name().as_bytes() == name)
}

/// Decodes a prototype message from its topic and the frames after it, refusing a
/// key or value over `limits` before copying it.
pub(super) fn decode<F: AsRef<[u8]>>(
    topic: &[u8],
    rest: &[F],
    limits: DecodeLimits,
) -> Result<Message, DecodeError> {
    let (name, id) = match topic.iter().position(|&b| b == b' ') {
        Some(i) => (&topic[..i], Some(&topic[i + 1..])),
        None => (topic, None),
    };
    let kind = kind_from_name(name).ok_or(DecodeError::UnknownTopic)?;
    let asker = match (kind != Kind::Set, id) {
        (false, None) => NodeId::default(),
        (false, Some(_)) => return Err(DecodeError::UnknownTopic),
        (true, Some(id)) => NodeId(id.try_into().map_err(|_| DecodeError::BadId)?),
        (true, None) => return Err(DecodeError::BadId),
    };
    let key = |i: usize| -> Result<String, DecodeError> {
        if rest[i].as_ref().len() > limits.max_key_bytes {
            return Err(DecodeError::KeyTooLong);
        }
        std::str::from_utf8(rest[i].as_ref())
            .map(str::to_owned)
            .map_err(|_| DecodeError::KeyNotUtf8)
    };
    let value = |i: usize| -> Result<Bytes, DecodeError> {
        if rest[i].as_ref().len() > limits.max_value_bytes {
            return Err(DecodeError::ValueTooLarge);
        }
        Ok(Bytes::copy_from_slice(rest[i].as_ref()))
    };
    let want = match kind {
        Kind::Set | Kind::Answer => 2,
        Kind::Question => 1,
        Kind::List => 0,
        _ => rest.len(),
    };
    if rest.len() != want {
        return Err(DecodeError::FrameCount);
    }
    Ok(match kind {
        Kind::Set => Message::Set {
            key: key(0)?,
            value: value(1)?,
        },
        Kind::Question => Message::Question {
            asker,
            key: key(0)?,
        },
        Kind::Answer => Message::Answer {
            asker,
            key: key(0)?,
            value: value(1)?,
        },
        Kind::List => Message::List { asker },
        _ => Message::ListAnswer {
            asker,
            keys: (0..rest.len()).map(key).collect::<Result<_, _>>()?,
        },
    })
}

/// The topic frame of a prototype message: `<name>` or `<name> <8 raw id bytes>`.
pub(super) fn topic(msg: &Message) -> Bytes {
    let mut topic = msg.kind().name().as_bytes().to_vec();
    if let Some(asker) = msg.asker() {
        topic.push(b' ');
        topic.extend_from_slice(&asker.0);
    }
    Bytes::from(topic)
}

/// The prototype's multipart frames for `msg`, topic first.
pub(super) fn encode(msg: &Message) -> Vec<Bytes> {
    let mut frames = vec![topic(msg)];
    let key = |k: &String| Bytes::copy_from_slice(k.as_bytes());
    match msg {
        Message::Set { key: k, value } | Message::Answer { key: k, value, .. } => {
            frames.push(key(k));
            frames.push(value.clone());
        }
        Message::Question { key: k, .. } => frames.push(key(k)),
        Message::List { .. } | Message::Dkv(_) => {}
        Message::ListAnswer { keys, .. } => frames.extend(keys.iter().map(key)),
    }
    frames
}
