//! dkv/2's messages: a topic (`dkv2.all` for every dkv node, `dkv2.to <id>` for one)
//! and one binary body frame. Integers are big-endian; byte strings carry a `u32`
//! length. A body starts with the wire version, the kind and the sender's id:
//!
//! ```text
//! body    = version:u8 kind:u8 from:[8] fields
//! record  = key:str ts:u64 node:[8] (0:u8 | 1:u8 value:bytes)      0 = tombstone
//! range   = level:u8 prefix:u64          key hashes whose top 4*level bits are prefix
//! step    = 0:u8 range fingerprint:u64 count:u64
//!         | 1:u8 range n:u32 (key_hash:u64 ts:u64 node:[8] digest:u64)*n
//! put     = flags:u8(bit 0: echo) n:u32 record*n
//! ask     = key:str
//! sync    = session:u64 flags:u8(bit 0: initiator, bit 1: last) n:u32 step*n
//! pull    = request:u64 range (0:u8 | 1:u8 after:u64)
//! fetch   = request:u64 n:u32 key_hash:u64*n
//! push    = request:u64 n:u32 record*n (0:u8 | 1:u8 more_after:u64)
//! ```
//!
//! The decoder is strict (no trailing bytes, no unknown flag bits, ranges in bounds),
//! so every accepted body re-encodes to the same bytes.

use super::{DecodeError, DecodeLimits, Kind, NodeId};
use crate::clock::{Timestamp, Version};
pub use crate::range::{Item, Range, Summary};
use crate::store::Entry;
pub use crate::store::Record;
use bytes::Bytes;

/// The topic of messages for every dkv node.
pub const TOPIC_ALL: &[u8] = b"dkv2.all";
/// The topic prefix of messages for one dkv node; its 8-byte id follows.
pub const TOPIC_TO: &[u8] = b"dkv2.to ";
/// The body format this node speaks.
pub const WIRE_VERSION: u8 = 1;

/// A dkv/2 message: who sent it, to whom, and what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope {
    /// The addressee (`dkv2.to <id>`), or `None` for every dkv node (`dkv2.all`).
    pub to: Option<NodeId>,
    /// The sender's id.
    pub from: NodeId,
    /// The content.
    pub body: Body,
}

/// One range in a reconciliation step, described by summary or item by item.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// The sender's summary of the range.
    Fingerprint {
        /// The range.
        range: Range,
        /// The sender's fingerprint and count there.
        summary: Summary,
    },
    /// Every entry the sender holds in the range.
    Items {
        /// The range.
        range: Range,
        /// The sender's entries there, in hash order.
        items: Vec<Item>,
    },
}

impl Step {
    /// The range the step is about.
    pub fn range(&self) -> Range {
        match self {
            Step::Fingerprint { range, .. } | Step::Items { range, .. } => *range,
        }
    }
}

/// The content of a dkv/2 message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Body {
    /// Local writes, to every dkv node. With `echo`, the sender also publishes each
    /// record as a prototype `set` right after, on the same socket (a tombstone as
    /// an empty value), for prototype nodes; a dkv node ignores those copies.
    Put {
        /// Whether prototype `set` copies follow.
        echo: bool,
        /// The writes, in the order they were made.
        records: Vec<Record>,
    },
    /// A get that missed locally: whoever holds an entry for `key` pushes it.
    Ask {
        /// The key.
        key: String,
    },
    /// One step of a reconciliation session between two nodes.
    Sync {
        /// The session, chosen by its initiator.
        session: u64,
        /// Sent by the session's initiator (else by its responder).
        initiator: bool,
        /// The responder's last message in reply to one initiator message.
        last: bool,
        /// The ranges to compare.
        steps: Vec<Step>,
    },
    /// A request for every entry in `range` whose key hash is above `after`, one
    /// page at a time.
    Pull {
        /// Echoed in the reply.
        request: u64,
        /// The range.
        range: Range,
        /// Where the previous page ended.
        after: Option<u64>,
    },
    /// A request for the entries of these key hashes.
    Fetch {
        /// Echoed in the reply.
        request: u64,
        /// The key hashes.
        key_hashes: Vec<u64>,
    },
    /// Entries for one node: a page of a pull, a fetch's reply, the answer to an
    /// ask (request 0), or entries a reconciliation found the receiver lacks.
    Push {
        /// The request this answers; 0 if none.
        request: u64,
        /// The entries.
        records: Vec<Record>,
        /// For a pull page: the range holds more entries after this key hash.
        more: Option<u64>,
    },
}

impl Body {
    /// The message kind.
    pub fn kind(&self) -> Kind {
        match self {
            Body::Put { .. } => Kind::Put,
            Body::Ask { .. } => Kind::Ask,
            Body::Sync { .. } => Kind::Sync,
            Body::Pull { .. } => Kind::Pull,
            Body::Fetch { .. } => Kind::Fetch,
            Body::Push { .. } => Kind::Push,
        }
    }

    fn code(&self) -> u8 {
        match self {
            Body::Put { .. } => 1,
            Body::Ask { .. } => 2,
            Body::Sync { .. } => 3,
            Body::Pull { .. } => 4,
            Body::Fetch { .. } => 5,
            Body::Push { .. } => 6,
        }
    }
}

/// The topic frame for a message to `to`, or to every dkv node.
pub fn topic(to: Option<NodeId>) -> Bytes {
    match to {
        None => Bytes::from_static(TOPIC_ALL),
        Some(id) => {
            let mut t = TOPIC_TO.to_vec();
            t.extend_from_slice(&id.0);
            Bytes::from(t)
        }
    }
}

/// `None` if `topic` is not a dkv/2 topic; else whom it addresses, or why its id
/// is bad.
pub(crate) fn topic_target(topic: &[u8]) -> Option<Result<Option<NodeId>, DecodeError>> {
    if topic == TOPIC_ALL {
        return Some(Ok(None));
    }
    let id = topic.strip_prefix(TOPIC_TO)?;
    Some(
        id.try_into()
            .map(|id| Some(NodeId(id)))
            .map_err(|_| DecodeError::BadId),
    )
}

/// Bytes a record takes on the wire.
pub fn record_len(key: &str, entry: &Entry) -> usize {
    4 + key.len() + 8 + 8 + 1 + entry.value.as_ref().map_or(0, |v| 4 + v.len())
}

impl Envelope {
    /// The encoded body frame.
    pub fn body_bytes(&self) -> Bytes {
        // One allocation: a put or push (a batch of writes, up to a page) is
        // sized up front, the rest fit in 64 bytes or grow.
        let records = match &self.body {
            Body::Put { records, .. } | Body::Push { records, .. } => records.as_slice(),
            _ => &[],
        };
        let size: usize = records.iter().map(|r| record_len(&r.key, &r.entry)).sum();
        let mut w = Writer(Vec::with_capacity(64 + size));
        w.u8(WIRE_VERSION);
        w.u8(self.body.code());
        w.raw(&self.from.0);
        match &self.body {
            Body::Put { echo, records } => {
                w.u8(u8::from(*echo));
                w.records(records);
            }
            Body::Ask { key } => w.bytes(key.as_bytes()),
            Body::Sync {
                session,
                initiator,
                last,
                steps,
            } => {
                w.u64(*session);
                w.u8(u8::from(*initiator) | (u8::from(*last) << 1));
                w.len(steps.len());
                for step in steps {
                    match step {
                        Step::Fingerprint { range, summary } => {
                            w.u8(0);
                            w.range(*range);
                            w.u64(summary.fingerprint);
                            w.u64(summary.count);
                        }
                        Step::Items { range, items } => {
                            w.u8(1);
                            w.range(*range);
                            w.len(items.len());
                            for item in items {
                                w.u64(item.key_hash);
                                w.version(item.version);
                                w.u64(item.digest);
                            }
                        }
                    }
                }
            }
            Body::Pull {
                request,
                range,
                after,
            } => {
                w.u64(*request);
                w.range(*range);
                w.option(*after);
            }
            Body::Fetch {
                request,
                key_hashes,
            } => {
                w.u64(*request);
                w.len(key_hashes.len());
                key_hashes.iter().for_each(|h| w.u64(*h));
            }
            Body::Push {
                request,
                records,
                more,
            } => {
                w.u64(*request);
                w.records(records);
                w.option(*more);
            }
        }
        Bytes::from(w.0)
    }
}

/// Decodes the frames after a dkv/2 topic addressed to `to`: exactly one body.
pub(crate) fn decode<F: AsRef<[u8]>>(
    to: Option<NodeId>,
    rest: &[F],
    limits: DecodeLimits,
) -> Result<Envelope, DecodeError> {
    let [body] = rest else {
        return Err(DecodeError::FrameCount);
    };
    let mut r = Reader(body.as_ref(), limits);
    if r.u8()? != WIRE_VERSION {
        return Err(DecodeError::UnknownVersion);
    }
    let code = r.u8()?;
    let from = NodeId(r.array()?);
    let body = match code {
        1 => Body::Put {
            echo: r.flag()?,
            records: r.records()?,
        },
        2 => Body::Ask { key: r.key()? },
        3 => {
            let session = r.u64()?;
            let flags = r.u8()?;
            if flags > 3 {
                return Err(DecodeError::BadBody);
            }
            let n = r.count(1 + 9 + 4)?;
            let mut steps = Vec::with_capacity(n);
            for _ in 0..n {
                let tag = r.u8()?;
                let range = r.range()?;
                steps.push(match tag {
                    0 => Step::Fingerprint {
                        range,
                        summary: Summary {
                            fingerprint: r.u64()?,
                            count: r.u64()?,
                        },
                    },
                    1 => {
                        let n = r.count(32)?;
                        let mut items = Vec::with_capacity(n);
                        for _ in 0..n {
                            items.push(Item {
                                key_hash: r.u64()?,
                                version: r.version()?,
                                digest: r.u64()?,
                            });
                        }
                        Step::Items { range, items }
                    }
                    _ => return Err(DecodeError::BadBody),
                });
            }
            Body::Sync {
                session,
                initiator: flags & 1 != 0,
                last: flags & 2 != 0,
                steps,
            }
        }
        4 => Body::Pull {
            request: r.u64()?,
            range: r.range()?,
            after: r.option()?,
        },
        5 => {
            let request = r.u64()?;
            let n = r.count(8)?;
            let mut key_hashes = Vec::with_capacity(n);
            for _ in 0..n {
                key_hashes.push(r.u64()?);
            }
            Body::Fetch {
                request,
                key_hashes,
            }
        }
        6 => Body::Push {
            request: r.u64()?,
            records: r.records()?,
            more: r.option()?,
        },
        _ => return Err(DecodeError::BadBody),
    };
    if !r.0.is_empty() {
        return Err(DecodeError::BadBody);
    }
    Ok(Envelope { to, from, body })
}

struct Writer(Vec<u8>);

impl Writer {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn raw(&mut self, b: &[u8]) {
        self.0.extend_from_slice(b);
    }
    /// A length or count; callers never exceed `u32::MAX` (frames are far smaller).
    fn len(&mut self, n: usize) {
        let n = u32::try_from(n).unwrap_or(u32::MAX);
        self.0.extend_from_slice(&n.to_be_bytes());
    }
    fn bytes(&mut self, b: &[u8]) {
        self.len(b.len());
        self.raw(b);
    }
    fn version(&mut self, v: Version) {
        self.u64(v.ts.0);
        self.raw(&v.node.0);
    }
    fn range(&mut self, r: Range) {
        self.u8(r.level());
        self.u64(r.prefix());
    }
    fn option(&mut self, v: Option<u64>) {
        match v {
            None => self.u8(0),
            Some(v) => {
                self.u8(1);
                self.u64(v);
            }
        }
    }
    fn records(&mut self, records: &[Record]) {
        self.len(records.len());
        for r in records {
            self.bytes(r.key.as_bytes());
            self.version(r.entry.version);
            match &r.entry.value {
                None => self.u8(0),
                Some(v) => {
                    self.u8(1);
                    self.bytes(v);
                }
            }
        }
    }
}

struct Reader<'a>(&'a [u8], DecodeLimits);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.0.len() < n {
            return Err(DecodeError::BadBody);
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        // take(N) returned exactly N bytes.
        self.take(N)?.try_into().map_err(|_| DecodeError::BadBody)
    }
    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }
    fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array()?))
    }
    fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array()?))
    }
    fn flag(&mut self) -> Result<bool, DecodeError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(DecodeError::BadBody),
        }
    }
    /// A count of items at least `min` bytes each: refused when the rest of the
    /// body could not hold that many, so no count allocates beyond the frame.
    fn count(&mut self, min: usize) -> Result<usize, DecodeError> {
        let n = self.u32()? as usize;
        if n > self.0.len() / min {
            return Err(DecodeError::BadBody);
        }
        Ok(n)
    }
    fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let n = self.u32()? as usize;
        self.take(n)
    }
    fn key(&mut self) -> Result<String, DecodeError> {
        let b = self.bytes()?;
        if b.len() > self.1.max_key_bytes {
            return Err(DecodeError::KeyTooLong);
        }
        std::str::from_utf8(b)
            .map(str::to_owned)
            .map_err(|_| DecodeError::KeyNotUtf8)
    }
    fn version(&mut self) -> Result<Version, DecodeError> {
        Ok(Version {
            ts: Timestamp(self.u64()?),
            node: NodeId(self.array()?),
        })
    }
    fn range(&mut self) -> Result<Range, DecodeError> {
        let level = self.u8()?;
        let prefix = self.u64()?;
        Range::new(level, prefix).ok_or(DecodeError::BadBody)
    }
    fn option(&mut self) -> Result<Option<u64>, DecodeError> {
        Ok(match self.flag()? {
            false => None,
            true => Some(self.u64()?),
        })
    }
    fn records(&mut self) -> Result<Vec<Record>, DecodeError> {
        let n = self.count(4 + 8 + 8 + 1)?;
        let mut records = Vec::with_capacity(n);
        for _ in 0..n {
            let key = self.key()?;
            let version = self.version()?;
            let value = match self.flag()? {
                false => None,
                true => {
                    let v = self.bytes()?;
                    if v.len() > self.1.max_value_bytes {
                        return Err(DecodeError::ValueTooLarge);
                    }
                    Some(Bytes::copy_from_slice(v))
                }
            };
            records.push(Record {
                key,
                entry: Entry { version, value },
            });
        }
        Ok(records)
    }
}
