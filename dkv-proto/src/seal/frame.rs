//! Sealed formats: the [`Sealer`] that seals dkv/2 body frames and hellos with fresh
//! nonces, and [`Keyring::open_frame`]/[`Keyring::open_hello`] that check and open
//! them. Parsing reads fixed offsets only; nothing is allocated before the tag is
//! checked except the one buffer of the ciphertext's size.

use super::keys::{KeyId, Keyring};
use super::memo::Remembered;
use crate::wire::v2::{TOPIC_ALL, TOPIC_TO};
use crate::wire::NodeId;
use chacha20poly1305::{AeadInOut, Tag, XNonce};
use std::fmt;
use std::net::Ipv4Addr;
use xxhash_rust::xxh3::Xxh3;

/// The first byte of a sealed body frame (a plain v2 body starts with its version, 1).
pub const FRAME_MARKER: u8 = 0xD2;
/// A sealed frame's header length: marker, key id, cluster tag, sender, salt,
/// counter, stamp.
pub const FRAME_HEADER_LEN: usize = 1 + 4 + 4 + 8 + 7 + 8 + 8;
/// The AEAD tag's length, after the ciphertext.
pub const TAG_LEN: usize = 16;
/// A sealed hello's header length: `dkv2\0`, version, flags, cluster tag, sender,
/// key id, salt, counter, stamp.
pub const HELLO_HEADER_LEN: usize = 5 + 1 + 1 + 4 + 8 + 4 + 7 + 8 + 8;
/// A sealed hello's exact length: header, 6 bytes of sealed port and IP, tag.
pub const SEALED_HELLO_LEN: usize = HELLO_HEADER_LEN + 6 + TAG_LEN;
/// The hello version that carries a cluster tag.
pub const HELLO_VERSION: u8 = 2;
/// The hello flag bit saying the rest is sealed.
pub const HELLO_FLAG_SEALED: u8 = 1;
/// The longest cluster name, in bytes.
pub const MAX_CLUSTER_BYTES: usize = 64;
/// The label that starts every sealed item's associated data.
pub const AD_LABEL: &[u8] = b"dkv seal v1\0";
pub(super) const KEY_ID_CLASS: u8 = 0xFF;
const HELLO_PREFIX: &[u8] = b"dkv2\0";
const MAX_AD: usize = 12 + 1 + MAX_CLUSTER_BYTES + 16 + HELLO_HEADER_LEN;

/// What a sealed item is, the nonce's class byte: each class has its own counter
/// and replay window. A frame's class follows from its topic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Class {
    /// A hello datagram (0).
    Hello = 0,
    /// A body frame on `dkv2.all` (1).
    All = 1,
    /// A body frame on `dkv2.to <id>` (2).
    To = 2,
}

impl Class {
    /// The three classes, by byte.
    pub const ALL: [Class; 3] = [Class::Hello, Class::All, Class::To];

    /// The class of a frame on this topic: `dkv2.all` or `dkv2.to ` and 8 bytes.
    pub fn of_topic(topic: &[u8]) -> Option<Class> {
        if topic == TOPIC_ALL {
            Some(Class::All)
        } else if topic.len() == TOPIC_TO.len() + 8 && topic.starts_with(TOPIC_TO) {
            Some(Class::To)
        } else {
            None
        }
    }

    /// The nonce's class byte (0, 1 or 2).
    pub fn byte(self) -> u8 {
        self as u8
    }
}

/// A sender's per-run random salt (7 bytes, public): with the sender id it makes a
/// run's nonces unlike any other run's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Salt(pub [u8; 7]);

impl Salt {
    /// The salt drawn from a run's seed (`Config::seed`): 7 bytes of a splitmix64 step.
    pub fn from_seed(seed: u64) -> Salt {
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        let mut salt = [0; 7];
        salt.copy_from_slice(&z.to_be_bytes()[..7]);
        Salt(salt)
    }
}

/// The 4-byte cluster tag in sealed headers and v2 hellos: the low 32 bits (big-endian)
/// of `xxh3_64("dkv cluster\0" ‖ name)`. A quick filter, not security.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ClusterTag(pub [u8; 4]);

/// A cluster name (at most [`MAX_CLUSTER_BYTES`] bytes of UTF-8) with its tag; it
/// goes into every sealed item's associated data, so clusters never open each other's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cluster {
    name: String,
    tag: ClusterTag,
}

impl Cluster {
    /// The cluster with this name; refuses a name over [`MAX_CLUSTER_BYTES`].
    pub fn new(name: &str) -> Result<Cluster, SealError> {
        if name.len() > MAX_CLUSTER_BYTES {
            return Err(SealError::ClusterName(name.len()));
        }
        let mut hasher = Xxh3::new();
        hasher.update(b"dkv cluster\0");
        hasher.update(name.as_bytes());
        let low = hasher.digest() as u32;
        Ok(Cluster {
            name: name.to_owned(),
            tag: ClusterTag(low.to_be_bytes()),
        })
    }

    /// The prototype's open cluster: the name "". A node in it speaks the
    /// prototype's wire and dkv/2 unsealed, exactly as before clusters existed.
    pub fn open() -> Cluster {
        Cluster::new("").expect("the empty name is within the limit")
    }

    /// Whether this is the open cluster (the name "").
    pub fn is_open(&self) -> bool {
        self.name.is_empty()
    }

    /// The name ("" is allowed).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The tag.
    pub fn tag(&self) -> ClusterTag {
        self.tag
    }
}

impl Default for Cluster {
    /// The open cluster, [`Cluster::open`].
    fn default() -> Cluster {
        Cluster::open()
    }
}

/// Why sealing failed. Sealing never reuses a nonce: it fails instead.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// A cluster name longer than [`MAX_CLUSTER_BYTES`] (its length).
    #[error("cluster name of {0} bytes, the limit is {MAX_CLUSTER_BYTES}")]
    ClusterName(usize),
    /// The topic is neither `dkv2.all` nor `dkv2.to <id>`.
    #[error("not a dkv/2 topic")]
    Topic,
    /// This class's counter reached `u64::MAX` (a new run brings a new salt).
    #[error("nonce counter for {0:?} exhausted")]
    Exhausted(Class),
    /// The AEAD refused (a body over its 256 GiB limit).
    #[error("body too long to seal")]
    TooLong,
}

/// Why a sealed item was refused, in the order the checks run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum OpenError {
    /// Not a sealed item: a frame not starting with 0xD2, or a datagram that is not
    /// a sealed version-2 hello.
    #[error("not sealed")]
    NotSealed,
    /// Shorter than a header and a tag (or a hello not exactly 68 bytes).
    #[error("truncated")]
    Truncated,
    /// The topic is neither `dkv2.all` nor `dkv2.to <id>`.
    #[error("not a dkv/2 topic")]
    Topic,
    /// The cluster tag is not ours.
    #[error("another cluster's tag")]
    ForeignCluster,
    /// No key of ours has the header's key id.
    #[error("unknown key id")]
    UnknownKey,
    /// The tag does not verify: forged, corrupted, moved to another topic or
    /// cluster, or sealed with another key.
    #[error("does not authenticate")]
    Forged,
}

/// A sealed item's public header, readable before opening (to route, filter and check
/// replays cheaply); trustworthy only once the item opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SealHeader {
    /// The class (from the topic, or `Hello`).
    pub class: Class,
    /// The id of the key that sealed it.
    pub key_id: KeyId,
    /// The sender's cluster tag.
    pub cluster_tag: ClusterTag,
    /// The sender's node id.
    pub sender: NodeId,
    /// The sender's run salt.
    pub salt: Salt,
    /// The sender's counter for this class.
    pub counter: u64,
    /// The sender's wall-clock ms when sealing.
    pub stamp_ms: u64,
}

/// The nonce of one sealed item: sender[8] ‖ salt[7] ‖ class ‖ counter:u64 BE.
pub(super) fn nonce(sender: NodeId, salt: Salt, class: u8, counter: u64) -> [u8; 24] {
    let mut n = [0u8; 24];
    n[..8].copy_from_slice(&sender.0);
    n[8..15].copy_from_slice(&salt.0);
    n[15] = class;
    n[16..].copy_from_slice(&counter.to_be_bytes());
    n
}

impl SealHeader {
    /// This item's nonce (24 bytes).
    pub fn nonce(&self) -> [u8; 24] {
        nonce(self.sender, self.salt, self.class.byte(), self.counter)
    }

    fn write_frame(&self, out: &mut [u8; FRAME_HEADER_LEN]) {
        out[0] = FRAME_MARKER;
        out[1..5].copy_from_slice(&self.key_id.0);
        out[5..9].copy_from_slice(&self.cluster_tag.0);
        out[9..17].copy_from_slice(&self.sender.0);
        out[17..24].copy_from_slice(&self.salt.0);
        out[24..32].copy_from_slice(&self.counter.to_be_bytes());
        out[32..40].copy_from_slice(&self.stamp_ms.to_be_bytes());
    }

    fn write_hello(&self, out: &mut [u8; HELLO_HEADER_LEN]) {
        out[..5].copy_from_slice(HELLO_PREFIX);
        out[5] = HELLO_VERSION;
        out[6] = HELLO_FLAG_SEALED;
        out[7..11].copy_from_slice(&self.cluster_tag.0);
        out[11..19].copy_from_slice(&self.sender.0);
        out[19..23].copy_from_slice(&self.key_id.0);
        out[23..30].copy_from_slice(&self.salt.0);
        out[30..38].copy_from_slice(&self.counter.to_be_bytes());
        out[38..46].copy_from_slice(&self.stamp_ms.to_be_bytes());
    }
}

fn array<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(bytes);
    out
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    u64::from_be_bytes(array(&bytes[at..at + 8]))
}

/// Reads a sealed body frame's header. Checks only the topic, the marker and the
/// length (header and tag at least); reads fixed offsets and allocates nothing.
pub fn parse_frame(topic: &[u8], frame: &[u8]) -> Result<SealHeader, OpenError> {
    if frame.first() != Some(&FRAME_MARKER) {
        return Err(OpenError::NotSealed);
    }
    if frame.len() < FRAME_HEADER_LEN + TAG_LEN {
        return Err(OpenError::Truncated);
    }
    let class = Class::of_topic(topic).ok_or(OpenError::Topic)?;
    Ok(SealHeader {
        class,
        key_id: KeyId(array(&frame[1..5])),
        cluster_tag: ClusterTag(array(&frame[5..9])),
        sender: NodeId(array(&frame[9..17])),
        salt: Salt(array(&frame[17..24])),
        counter: u64_at(frame, 24),
        stamp_ms: u64_at(frame, 32),
    })
}

/// Reads a sealed hello's header: `dkv2\0`, version 2, flags exactly 1 (sealed), and
/// exactly [`SEALED_HELLO_LEN`] bytes. Allocates nothing.
pub fn parse_hello(datagram: &[u8]) -> Result<SealHeader, OpenError> {
    if datagram.len() < 7
        || !datagram.starts_with(HELLO_PREFIX)
        || datagram[5] != HELLO_VERSION
        || datagram[6] != HELLO_FLAG_SEALED
    {
        return Err(OpenError::NotSealed);
    }
    if datagram.len() != SEALED_HELLO_LEN {
        return Err(OpenError::Truncated);
    }
    Ok(SealHeader {
        class: Class::Hello,
        cluster_tag: ClusterTag(array(&datagram[7..11])),
        sender: NodeId(array(&datagram[11..19])),
        key_id: KeyId(array(&datagram[19..23])),
        salt: Salt(array(&datagram[23..30])),
        counter: u64_at(datagram, 30),
        stamp_ms: u64_at(datagram, 38),
    })
}

/// The associated data: label ‖ len:u8 ‖ cluster name ‖ topic ‖ header, on the stack.
struct Ad {
    buf: [u8; MAX_AD],
    len: usize,
}

impl Ad {
    fn new(cluster: &Cluster, topic: &[u8], header: &[u8]) -> Ad {
        let mut ad = Ad {
            buf: [0; MAX_AD],
            len: 0,
        };
        ad.push(AD_LABEL);
        // Cluster names are at most 64 bytes and topics at most 16 (checked by callers).
        ad.push(&[cluster.name.len() as u8]);
        ad.push(cluster.name.as_bytes());
        ad.push(topic);
        ad.push(header);
        ad
    }

    fn push(&mut self, bytes: &[u8]) {
        self.buf[self.len..self.len + bytes.len()].copy_from_slice(bytes);
        self.len += bytes.len();
    }

    fn bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// A hello's sealed content: where the sender's PUB socket listens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HelloAddr {
    /// The PUB port.
    pub port: u16,
    /// The sender's IPv4 address (a receiver compares it with the datagram's source).
    pub ip: Ipv4Addr,
}

/// An opened body frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Opened {
    /// The authenticated header.
    pub header: SealHeader,
    /// The plain v2 body, as sealed.
    pub body: Vec<u8>,
}

/// An opened hello.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpenedHello {
    /// The authenticated header.
    pub header: SealHeader,
    /// The sealed port and IP.
    pub addr: HelloAddr,
}

/// Seals one node run's frames and hellos. Its nonces never repeat: each class has a
/// counter that only grows and stops (with [`SealError::Exhausted`]) before wrapping,
/// and the (sender, salt) pair differs between runs. Make one per run, from the run's
/// id and seed, and never two with the same pair.
#[derive(Debug)]
pub struct Sealer {
    sender: NodeId,
    salt: Salt,
    counters: [u64; 3],
}

impl Sealer {
    /// The sealer of a run with this id and seed (`Config::id`, `Config::seed`);
    /// every counter starts at 0.
    pub fn new(sender: NodeId, seed: u64) -> Sealer {
        Sealer {
            sender,
            salt: Salt::from_seed(seed),
            counters: [0; 3],
        }
    }

    /// The sender id in every header.
    pub fn sender(&self) -> NodeId {
        self.sender
    }

    /// The run's salt.
    pub fn salt(&self) -> Salt {
        self.salt
    }

    /// The counter the next item of this class will carry.
    pub fn next_counter(&self, class: Class) -> u64 {
        self.counters[class as usize]
    }

    fn header(
        &mut self,
        keys: &Keyring,
        cluster: &Cluster,
        class: Class,
        stamp_ms: u64,
    ) -> Result<SealHeader, SealError> {
        let counter = &mut self.counters[class as usize];
        if *counter == u64::MAX {
            return Err(SealError::Exhausted(class));
        }
        let header = SealHeader {
            class,
            key_id: keys.send_id(),
            cluster_tag: cluster.tag,
            sender: self.sender,
            salt: self.salt,
            counter: *counter,
            stamp_ms,
        };
        *counter += 1;
        Ok(header)
    }

    /// Seals a plain v2 body for `topic` with the keyring's first key:
    /// header ‖ ciphertext ‖ tag, [`FRAME_HEADER_LEN`] + `body.len()` + [`TAG_LEN`]
    /// bytes. `stamp_ms` is the sender's wall clock in ms.
    pub fn seal_frame(
        &mut self,
        keys: &Keyring,
        cluster: &Cluster,
        topic: &[u8],
        body: &[u8],
        stamp_ms: u64,
    ) -> Result<Vec<u8>, SealError> {
        let class = Class::of_topic(topic).ok_or(SealError::Topic)?;
        let header = self.header(keys, cluster, class, stamp_ms)?;
        let mut head = [0u8; FRAME_HEADER_LEN];
        header.write_frame(&mut head);
        let mut out = Vec::with_capacity(FRAME_HEADER_LEN + body.len() + TAG_LEN);
        out.extend_from_slice(&head);
        out.extend_from_slice(body);
        let ad = Ad::new(cluster, topic, &head);
        let (_, cipher) = keys.sender();
        let tag = cipher
            .encrypt_inout_detached(
                &XNonce::from(header.nonce()),
                ad.bytes(),
                (&mut out[FRAME_HEADER_LEN..]).into(),
            )
            .map_err(|_| SealError::TooLong)?;
        out.extend_from_slice(&tag);
        Ok(out)
    }

    /// Seals a hello announcing `addr`: [`SEALED_HELLO_LEN`] bytes, with an empty
    /// topic in the associated data.
    pub fn seal_hello(
        &mut self,
        keys: &Keyring,
        cluster: &Cluster,
        addr: HelloAddr,
        stamp_ms: u64,
    ) -> Result<[u8; SEALED_HELLO_LEN], SealError> {
        let header = self.header(keys, cluster, Class::Hello, stamp_ms)?;
        let mut out = [0u8; SEALED_HELLO_LEN];
        let mut head = [0u8; HELLO_HEADER_LEN];
        header.write_hello(&mut head);
        out[..HELLO_HEADER_LEN].copy_from_slice(&head);
        out[HELLO_HEADER_LEN..HELLO_HEADER_LEN + 2].copy_from_slice(&addr.port.to_be_bytes());
        out[HELLO_HEADER_LEN + 2..HELLO_HEADER_LEN + 6].copy_from_slice(&addr.ip.octets());
        let ad = Ad::new(cluster, b"", &head);
        let (_, cipher) = keys.sender();
        let tag = cipher
            .encrypt_inout_detached(
                &XNonce::from(header.nonce()),
                ad.bytes(),
                out[HELLO_HEADER_LEN..HELLO_HEADER_LEN + 6].as_mut().into(),
            )
            .map_err(|_| SealError::TooLong)?;
        out[HELLO_HEADER_LEN + 6..].copy_from_slice(&tag);
        Ok(out)
    }
}

impl Keyring {
    /// Opens a sealed body frame received on `topic`. Checks, in order: header
    /// ([`parse_frame`]), cluster tag, key id; then allocates one buffer of the
    /// ciphertext's size and verifies the tag. Replays are not checked here (see
    /// [`ReplayGuard`](super::ReplayGuard)).
    pub fn open_frame(
        &self,
        cluster: &Cluster,
        topic: &[u8],
        frame: &[u8],
    ) -> Result<Opened, OpenError> {
        let header = parse_frame(topic, frame)?;
        let cipher = self.precheck(cluster, &header)?;
        if let Some(Remembered::Frame(opened)) = self.recall(cluster, topic, frame) {
            return Ok(opened);
        }
        let head = &frame[..FRAME_HEADER_LEN];
        let (sealed, tag) =
            frame[FRAME_HEADER_LEN..].split_at(frame.len() - FRAME_HEADER_LEN - TAG_LEN);
        let ad = Ad::new(cluster, topic, head);
        let mut body = sealed.to_vec();
        cipher
            .decrypt_inout_detached(
                &XNonce::from(header.nonce()),
                ad.bytes(),
                body.as_mut_slice().into(),
                &Tag::from(array::<TAG_LEN>(tag)),
            )
            .map_err(|_| OpenError::Forged)?;
        let opened = Opened { header, body };
        self.keep(cluster, topic, frame, || Remembered::Frame(opened.clone()));
        Ok(opened)
    }

    /// Opens a sealed hello: [`parse_hello`], cluster tag, key id, then the tag, all
    /// on the stack. The caller should still check the IP against the datagram's
    /// source and the header against its [`ReplayGuard`](super::ReplayGuard).
    pub fn open_hello(&self, cluster: &Cluster, datagram: &[u8]) -> Result<OpenedHello, OpenError> {
        let header = parse_hello(datagram)?;
        let cipher = self.precheck(cluster, &header)?;
        if let Some(Remembered::Hello(opened)) = self.recall(cluster, b"", datagram) {
            return Ok(opened);
        }
        let mut plain = array::<6>(&datagram[HELLO_HEADER_LEN..HELLO_HEADER_LEN + 6]);
        let ad = Ad::new(cluster, b"", &datagram[..HELLO_HEADER_LEN]);
        cipher
            .decrypt_inout_detached(
                &XNonce::from(header.nonce()),
                ad.bytes(),
                plain.as_mut_slice().into(),
                &Tag::from(array::<TAG_LEN>(&datagram[HELLO_HEADER_LEN + 6..])),
            )
            .map_err(|_| OpenError::Forged)?;
        let port = u16::from_be_bytes([plain[0], plain[1]]);
        let ip = Ipv4Addr::new(plain[2], plain[3], plain[4], plain[5]);
        let opened = OpenedHello {
            header,
            addr: HelloAddr { port, ip },
        };
        self.keep(cluster, b"", datagram, || Remembered::Hello(opened));
        Ok(opened)
    }

    /// What a clone sharing openings opened these exact bytes to.
    fn recall(&self, cluster: &Cluster, topic: &[u8], item: &[u8]) -> Option<Remembered> {
        self.memo.as_ref()?.recall(cluster.name(), topic, item)
    }

    /// Shares a successful opening with the clones, if they share openings.
    fn keep(
        &self,
        cluster: &Cluster,
        topic: &[u8],
        item: &[u8],
        opened: impl FnOnce() -> Remembered,
    ) {
        if let Some(memo) = &self.memo {
            memo.keep(cluster.name(), topic, item, opened());
        }
    }

    fn precheck(
        &self,
        cluster: &Cluster,
        header: &SealHeader,
    ) -> Result<&chacha20poly1305::XChaCha20Poly1305, OpenError> {
        if header.cluster_tag != cluster.tag {
            return Err(OpenError::ForeignCluster);
        }
        self.cipher(header.key_id).ok_or(OpenError::UnknownKey)
    }
}

impl fmt::Display for ClusterTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seal::Key;

    #[test]
    fn a_counter_at_its_last_value_stops_sealing_instead_of_wrapping() {
        let keys = Keyring::new(vec![Key::from_bytes([1; 32])]).unwrap();
        let cluster = Cluster::new("x").unwrap();
        let mut sealer = Sealer::new(NodeId(*b"sender-1"), 1);
        sealer.counters[Class::All as usize] = u64::MAX - 1;
        let frame = sealer
            .seal_frame(&keys, &cluster, TOPIC_ALL, b"b", 0)
            .unwrap();
        assert_eq!(
            parse_frame(TOPIC_ALL, &frame).unwrap().counter,
            u64::MAX - 1
        );
        for _ in 0..2 {
            let refused = sealer.seal_frame(&keys, &cluster, TOPIC_ALL, b"b", 0);
            assert_eq!(refused, Err(SealError::Exhausted(Class::All)));
        }
        // The other classes go on.
        assert!(sealer
            .seal_hello(
                &keys,
                &cluster,
                HelloAddr {
                    port: 1,
                    ip: Ipv4Addr::LOCALHOST
                },
                0
            )
            .is_ok());
    }
}
