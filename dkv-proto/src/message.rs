//! The data-plane messages: typed ZeroMQ multipart frames, a strict decoder and an
//! encoder that produces exactly the prototype's frames.

use bytes::Bytes;
use std::fmt;

/// A node's identity on the wire: 8 raw bytes, any values, fresh at each start.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct NodeId(pub [u8; 8]);

impl NodeId {
    /// The id as lowercase hex, for logs and humans.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeId({})", self.to_hex())
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// The five message kinds of the protocol, named as their topic's first word.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// `set`: replicate a local write.
    Set,
    /// `question <asker>`: who holds this key?
    Question,
    /// `answer <asker>`: a reply to a question.
    Answer,
    /// `list <asker>`: which keys do you hold?
    List,
    /// `list_answer <asker>`: a reply to a list.
    ListAnswer,
}

impl Kind {
    /// Every kind, in wire-table order.
    pub const ALL: [Kind; 5] = [
        Kind::Set,
        Kind::Question,
        Kind::Answer,
        Kind::List,
        Kind::ListAnswer,
    ];

    /// The topic's name part, as sent on the wire.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Set => "set",
            Kind::Question => "question",
            Kind::Answer => "answer",
            Kind::List => "list",
            Kind::ListAnswer => "list_answer",
        }
    }

    fn from_name(name: &[u8]) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name().as_bytes() == name)
    }

    /// Whether the topic carries an asker id after a space.
    fn has_id(self) -> bool {
        self != Kind::Set
    }
}

/// One decoded protocol message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// Store `key = value` (overwrite).
    Set {
        /// The key, UTF-8 on the wire.
        key: String,
        /// The value, arbitrary bytes.
        value: Bytes,
    },
    /// `asker` wants the value of `key`.
    Question {
        /// Who asks; answers go to this id.
        asker: NodeId,
        /// The key asked for.
        key: String,
    },
    /// A reply to `asker`'s question.
    Answer {
        /// Whose question this answers.
        asker: NodeId,
        /// The key.
        key: String,
        /// Its value, never empty when sent by a well-behaved node.
        value: Bytes,
    },
    /// `asker` wants the list of keys every peer holds.
    List {
        /// Who asks.
        asker: NodeId,
    },
    /// A reply to `asker`'s list: every key the sender holds.
    ListAnswer {
        /// Whose list this answers.
        asker: NodeId,
        /// The keys, possibly none.
        keys: Vec<String>,
    },
}

/// Why a multipart message was rejected. Decoding never panics; a rejected message
/// changes nothing but the node's drop counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum DecodeError {
    /// There were no frames at all.
    #[error("message has no frames")]
    Empty,
    /// The topic's name is not one of the five kinds (or `set` carries a suffix).
    #[error("unknown topic")]
    UnknownTopic,
    /// The topic lacks the space and 8-byte asker id its kind requires.
    #[error("topic id is missing or not 8 bytes")]
    BadId,
    /// The frame count after the topic is wrong for the kind.
    #[error("wrong number of frames for the topic")]
    FrameCount,
    /// A key frame is not valid UTF-8.
    #[error("key is not valid UTF-8")]
    KeyNotUtf8,
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
        }
    }

    /// The asker id in the topic, if the kind has one.
    pub fn asker(&self) -> Option<NodeId> {
        match self {
            Message::Set { .. } => None,
            Message::Question { asker, .. }
            | Message::Answer { asker, .. }
            | Message::List { asker }
            | Message::ListAnswer { asker, .. } => Some(*asker),
        }
    }

    /// Decodes one multipart message strictly: the exact topic shape and frame count
    /// of its kind, and UTF-8 keys. Never panics, whatever the input.
    pub fn decode<F: AsRef<[u8]>>(frames: &[F]) -> Result<Message, DecodeError> {
        let (topic, rest) = frames.split_first().ok_or(DecodeError::Empty)?;
        let topic = topic.as_ref();
        let (name, id) = match topic.iter().position(|&b| b == b' ') {
            Some(i) => (&topic[..i], Some(&topic[i + 1..])),
            None => (topic, None),
        };
        let kind = Kind::from_name(name).ok_or(DecodeError::UnknownTopic)?;
        let asker = match (kind.has_id(), id) {
            (false, None) => NodeId::default(),
            (false, Some(_)) => return Err(DecodeError::UnknownTopic),
            (true, Some(id)) => NodeId(id.try_into().map_err(|_| DecodeError::BadId)?),
            (true, None) => return Err(DecodeError::BadId),
        };
        let key = |i: usize| -> Result<String, DecodeError> {
            std::str::from_utf8(rest[i].as_ref())
                .map(str::to_owned)
                .map_err(|_| DecodeError::KeyNotUtf8)
        };
        let value = |i: usize| Bytes::copy_from_slice(rest[i].as_ref());
        let want = match kind {
            Kind::Set | Kind::Answer => 2,
            Kind::Question => 1,
            Kind::List => 0,
            Kind::ListAnswer => rest.len(),
        };
        if rest.len() != want {
            return Err(DecodeError::FrameCount);
        }
        Ok(match kind {
            Kind::Set => Message::Set {
                key: key(0)?,
                value: value(1),
            },
            Kind::Question => Message::Question {
                asker,
                key: key(0)?,
            },
            Kind::Answer => Message::Answer {
                asker,
                key: key(0)?,
                value: value(1),
            },
            Kind::List => Message::List { asker },
            Kind::ListAnswer => Message::ListAnswer {
                asker,
                keys: (0..rest.len()).map(key).collect::<Result<_, _>>()?,
            },
        })
    }

    /// The topic frame: `<name>` or `<name> <8 raw id bytes>`.
    pub fn topic(&self) -> Bytes {
        let kind = self.kind();
        let mut topic = kind.name().as_bytes().to_vec();
        if let Some(asker) = self.asker() {
            topic.push(b' ');
            topic.extend_from_slice(&asker.0);
        }
        Bytes::from(topic)
    }

    /// Encodes to the prototype's multipart frames, topic first.
    pub fn encode(&self) -> Vec<Bytes> {
        let mut frames = vec![self.topic()];
        let key = |k: &String| Bytes::copy_from_slice(k.as_bytes());
        match self {
            Message::Set { key: k, value } | Message::Answer { key: k, value, .. } => {
                frames.push(key(k));
                frames.push(value.clone());
            }
            Message::Question { key: k, .. } => frames.push(key(k)),
            Message::List { .. } => {}
            Message::ListAnswer { keys, .. } => frames.extend(keys.iter().map(key)),
        }
        frames
    }
}

/// The SUB socket's prefix subscriptions for a node with id `own`: `set`,
/// `question`, `list ` (with the space), `answer <own>`, `list_answer <own>`.
///
/// The prototype subscribes `list`, which also matches every other node's
/// `list_answer`: each bootstrap then sends every list answer to every node. A
/// subscription is only the filter the publisher applies for this subscriber, so
/// `list ` stays wire-compatible and receives exactly the `list <asker>` messages.
pub fn subscriptions(own: NodeId) -> Vec<Bytes> {
    let with_id = |kind: Kind| {
        let mut t = kind.name().as_bytes().to_vec();
        t.push(b' ');
        t.extend_from_slice(&own.0);
        Bytes::from(t)
    };
    vec![
        Bytes::from_static(b"set"),
        Bytes::from_static(b"question"),
        Bytes::from_static(b"list "),
        with_id(Kind::Answer),
        with_id(Kind::ListAnswer),
    ]
}
