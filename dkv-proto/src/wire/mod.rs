//! The data-plane wire formats: every message a node publishes or receives, as
//! typed ZeroMQ multipart frames with a strict decoder and a canonical encoder.
//!
//! Two formats share the PUB/SUB sockets:
//! - [`v1`]: the Python prototype's five topics (`set`, `question`, `answer`,
//!   `list`, `list_answer`), byte for byte.
//! - [`v2`]: dkv/2's versioned replication and anti-entropy, under the topics
//!   `dkv2.all` (every dkv node) and `dkv2.to <id>` (one dkv node). Neither begins
//!   with a prototype subscription, so a prototype node never receives one.

pub mod v1;
pub mod v2;

pub use v2::{Body, Envelope, Item, Range, Record, Step, Summary};

pub use crate::node_id::NodeId;
use bytes::Bytes;

/// Every message kind: the prototype's five topics, then dkv/2's bodies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// `set`: replicate a local write (prototype).
    Set,
    /// `question <asker>`: who holds this key? (prototype)
    Question,
    /// `answer <asker>`: a reply to a question (prototype).
    Answer,
    /// `list <asker>`: which keys do you hold? (prototype)
    List,
    /// `list_answer <asker>`: a reply to a list (prototype).
    ListAnswer,
    /// dkv/2 `put`: versioned writes, to every dkv node.
    Put,
    /// dkv/2 `ask`: a get that missed locally, to every dkv node.
    Ask,
    /// dkv/2 `sync`: one step of reconciling two stores.
    Sync,
    /// dkv/2 `pull`: a request for every entry in a range, a page at a time.
    Pull,
    /// dkv/2 `fetch`: a request for the entries of some keys.
    Fetch,
    /// dkv/2 `push`: entries sent to one node.
    Push,
}

impl Kind {
    /// Every kind, prototype topics first.
    pub const ALL: [Kind; 11] = [
        Kind::Set,
        Kind::Question,
        Kind::Answer,
        Kind::List,
        Kind::ListAnswer,
        Kind::Put,
        Kind::Ask,
        Kind::Sync,
        Kind::Pull,
        Kind::Fetch,
        Kind::Push,
    ];

    /// The kind's name: the topic's first word for the prototype's kinds.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Set => "set",
            Kind::Question => "question",
            Kind::Answer => "answer",
            Kind::List => "list",
            Kind::ListAnswer => "list_answer",
            Kind::Put => "put",
            Kind::Ask => "ask",
            Kind::Sync => "sync",
            Kind::Pull => "pull",
            Kind::Fetch => "fetch",
            Kind::Push => "push",
        }
    }
}

/// One decoded message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// Prototype `set`: store `key = value` (overwrite).
    Set {
        /// The key, UTF-8 on the wire.
        key: String,
        /// The value, arbitrary bytes.
        value: Bytes,
    },
    /// Prototype `question`: `asker` wants the value of `key`.
    Question {
        /// Who asks; answers go to this id.
        asker: NodeId,
        /// The key asked for.
        key: String,
    },
    /// Prototype `answer`: a reply to `asker`'s question.
    Answer {
        /// Whose question this answers.
        asker: NodeId,
        /// The key.
        key: String,
        /// Its value, never empty when sent by a well-behaved node.
        value: Bytes,
    },
    /// Prototype `list`: `asker` wants the list of keys every peer holds.
    List {
        /// Who asks.
        asker: NodeId,
    },
    /// Prototype `list_answer`: a reply to `asker`'s list, every key the sender holds.
    ListAnswer {
        /// Whose list this answers.
        asker: NodeId,
        /// The keys, possibly none.
        keys: Vec<String>,
    },
    /// A dkv/2 message.
    Dkv(Envelope),
}

/// Why a multipart message was rejected. Decoding never panics; a rejected message
/// changes nothing but the node's drop counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum DecodeError {
    /// There were no frames at all.
    #[error("message has no frames")]
    Empty,
    /// The topic is none of the known ones (or `set` carries a suffix).
    #[error("unknown topic")]
    UnknownTopic,
    /// The topic lacks the space and 8-byte id its kind requires.
    #[error("topic id is missing or not 8 bytes")]
    BadId,
    /// The frame count after the topic is wrong for the kind.
    #[error("wrong number of frames for the topic")]
    FrameCount,
    /// A key is not valid UTF-8.
    #[error("key is not valid UTF-8")]
    KeyNotUtf8,
    /// A dkv/2 body from a wire version this node does not speak.
    #[error("unknown dkv/2 wire version")]
    UnknownVersion,
    /// A dkv/2 body that is truncated, has trailing bytes, or holds a field out of
    /// range.
    #[error("malformed dkv/2 body")]
    BadBody,
    /// The frames sum to more than the receive limit (checked before decoding).
    #[error("message over the size limit")]
    Oversized,
    /// A key is longer than the key limit.
    #[error("key over the size limit")]
    KeyTooLong,
    /// A value is larger than the value limit.
    #[error("value over the size limit")]
    ValueTooLarge,
}

/// The size caps a decoder applies, from [`Limits`](crate::Limits).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Largest key in bytes.
    pub max_key_bytes: usize,
    /// Largest value in bytes.
    pub max_value_bytes: usize,
    /// Largest sum of frame lengths, topic included, except for a prototype
    /// `list_answer` (one frame per key).
    pub max_message_bytes: usize,
}

impl DecodeLimits {
    /// No caps: [`Message::decode`] uses these.
    pub const NONE: DecodeLimits = DecodeLimits {
        max_key_bytes: usize::MAX,
        max_value_bytes: usize::MAX,
        max_message_bytes: usize::MAX,
    };
}

impl From<&crate::Limits> for DecodeLimits {
    fn from(l: &crate::Limits) -> Self {
        DecodeLimits {
            max_key_bytes: l.max_key_bytes,
            max_value_bytes: l.max_value_bytes,
            max_message_bytes: l.max_message_bytes,
        }
    }
}

impl Message {
    /// The message's kind.
    pub fn kind(&self) -> Kind {
        match self {
            Message::Set { .. } => Kind::Set,
            Message::Question { .. } => Kind::Question,
            Message::Answer { .. } => Kind::Answer,
            Message::List { .. } => Kind::List,
            Message::ListAnswer { .. } => Kind::ListAnswer,
            Message::Dkv(envelope) => envelope.body.kind(),
        }
    }

    /// The asker id in a prototype topic, if the kind has one.
    pub fn asker(&self) -> Option<NodeId> {
        match self {
            Message::Set { .. } | Message::Dkv(_) => None,
            Message::Question { asker, .. }
            | Message::Answer { asker, .. }
            | Message::List { asker }
            | Message::ListAnswer { asker, .. } => Some(*asker),
        }
    }

    /// Decodes one multipart message strictly: the exact topic shape and frame count
    /// of its kind, UTF-8 keys, and a canonical dkv/2 body. Never panics.
    pub fn decode<F: AsRef<[u8]>>(frames: &[F]) -> Result<Message, DecodeError> {
        Self::decode_limited(frames, DecodeLimits::NONE)
    }

    /// Like [`decode`](Self::decode), refusing oversized input before copying any of
    /// it: a message whose frames sum to more than `limits.max_message_bytes`
    /// ([`DecodeError::Oversized`]; a prototype `list_answer` is exempt), a key or
    /// value over its cap ([`DecodeError::KeyTooLong`],
    /// [`DecodeError::ValueTooLarge`]). Within the caps it decodes as `decode` does.
    pub fn decode_limited<F: AsRef<[u8]>>(
        frames: &[F],
        limits: DecodeLimits,
    ) -> Result<Message, DecodeError> {
        let (topic, rest) = frames.split_first().ok_or(DecodeError::Empty)?;
        let topic = topic.as_ref();
        let list_answer = topic.starts_with(b"list_answer ");
        if !list_answer {
            let mut total = 0usize;
            for f in frames {
                total = total.saturating_add(f.as_ref().len());
            }
            if total > limits.max_message_bytes {
                return Err(DecodeError::Oversized);
            }
        }
        match v2::topic_target(topic) {
            Some(to) => v2::decode(to?, rest, limits).map(Message::Dkv),
            None => v1::decode(topic, rest, limits),
        }
    }

    /// The topic frame.
    pub fn topic(&self) -> Bytes {
        match self {
            Message::Dkv(envelope) => v2::topic(envelope.to),
            _ => v1::topic(self),
        }
    }

    /// Encodes to multipart frames, topic first: the prototype's exact frames for its
    /// kinds, the topic and one body frame for dkv/2.
    pub fn encode(&self) -> Vec<Bytes> {
        match self {
            Message::Dkv(envelope) => vec![v2::topic(envelope.to), envelope.body_bytes()],
            _ => v1::encode(self),
        }
    }
}

/// The SUB socket's prefix subscriptions for a node with id `own`: dkv/2's
/// `dkv2.all` and `dkv2.to <own>`, then the prototype's `set`, `question`, `list `
/// (with the space), `answer <own>` and `list_answer <own>`.
///
/// The prototype subscribes `list`, which also matches every other node's
/// `list_answer`: each bootstrap then sends every list answer to every node. A
/// subscription is only the filter the publisher applies for this subscriber, so
/// `list ` stays wire-compatible and receives exactly the `list <asker>` messages.
///
/// ZeroMQ sends a new connection's subscriptions in byte order, so `dkv2.*` reaches
/// a publisher before `set`: no dkv node can receive the `set` copy of a dkv/2 write
/// without the `put` published before it (see [`Body::Put`]).
pub fn subscriptions(own: NodeId) -> Vec<Bytes> {
    let with_id = |name: &[u8]| {
        let mut t = name.to_vec();
        t.push(b' ');
        t.extend_from_slice(&own.0);
        Bytes::from(t)
    };
    vec![
        Bytes::from_static(v2::TOPIC_ALL),
        v2::topic(Some(own)),
        Bytes::from_static(b"set"),
        Bytes::from_static(b"question"),
        Bytes::from_static(b"list "),
        with_id(b"answer"),
        with_id(b"list_answer"),
    ]
}
