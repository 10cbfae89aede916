//! Sealing for keyed clusters: pre-shared keys ([`Key`], [`Keyring`]), the sealed
//! formats of dkv/2 body frames and hellos ([`Sealer`], [`Keyring::open_frame`],
//! [`Keyring::open_hello`]) and replay refusal ([`ReplayGuard`]). Pure computation:
//! randomness and time come in as arguments. A keyed [`Node`](crate::Node) uses it.
//!
//! The AEAD is XChaCha20-Poly1305 from RustCrypto's `chacha20poly1305`, composed and
//! never reimplemented. It is pure Rust, constant-time and fast without AES hardware,
//! and its 192-bit nonce holds a sender id, a per-run salt and a counter, so no two
//! nodes or runs sharing a key can repeat a nonce and no global RNG is needed.
//!
//! ```text
//! sealed body frame (topic unchanged: dkv2.all | dkv2.to <id>)
//!   0xD2 | key_id[4] | cluster_tag[4] | sender[8] | salt[7] | counter:u64 | stamp_ms:u64
//!        | ciphertext(plain v2 body) | tag[16]                      (40 B header + 16)
//! sealed hello datagram
//!   "dkv2\0" | 2 | flags=1 | cluster_tag[4] | sender[8] | key_id[4] | salt[7]
//!        | counter:u64 | stamp_ms:u64 | ciphertext(port:u16 ip:[4]) | tag[16]   (68 B)
//! nonce (24) = sender[8] | salt[7] | class:u8 (0 hello, 1 dkv2.all, 2 dkv2.to) | counter:u64
//! AD = "dkv seal v1\0" | len:u8 | cluster name | topic (empty for a hello) | header
//! key id = first 4 bytes of sealing 4 zero bytes under nonce 0[15] | 0xFF | 0[8]
//! ```
//!
//! Integers are big-endian. Receiving, in order: [`parse_frame`] or [`parse_hello`]
//! (fixed offsets, no allocation), the caller's own checks on the header (sender not
//! itself), [`ReplayGuard::check`], `open_*` (cluster tag, key id, then the tag; the
//! one allocation is the frame body's), [`ReplayGuard::commit`].
//!
//! ```
//! use dkv_proto::seal::{parse_frame, Cluster, Keyring, ReplayConfig, ReplayGuard, Sealer};
//! use dkv_proto::NodeId;
//!
//! let keys = Keyring::parse("# team key\n000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n")?;
//! let cluster = Cluster::new("team-a")?;
//! let wall_ms = 1_700_000_000_000;
//! let mut sealer = Sealer::new(NodeId(*b"sender-1"), 0x5eed);
//! let frame = sealer.seal_frame(&keys, &cluster, b"dkv2.all", b"v2 body", wall_ms)?;
//!
//! let mut guard = ReplayGuard::new(ReplayConfig::default(), wall_ms - 60_000);
//! let header = parse_frame(b"dkv2.all", &frame)?;
//! guard.check(&header, wall_ms)?;
//! let opened = keys.open_frame(&cluster, b"dkv2.all", &frame)?;
//! guard.commit(&header, wall_ms)?;
//! assert_eq!(opened.body, b"v2 body");
//! assert!(guard.check(&header, wall_ms).is_err()); // a replay
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod frame;
mod keys;
mod memo;
mod replay;

pub use frame::{
    parse_frame, parse_hello, Class, Cluster, ClusterTag, HelloAddr, OpenError, Opened,
    OpenedHello, Salt, SealError, SealHeader, Sealer, AD_LABEL, FRAME_HEADER_LEN, FRAME_MARKER,
    HELLO_FLAG_SEALED, HELLO_HEADER_LEN, HELLO_VERSION, MAX_CLUSTER_BYTES, SEALED_HELLO_LEN,
    TAG_LEN,
};
pub use keys::{Key, KeyError, KeyFileError, KeyFileWhy, KeyId, Keyring, MAX_KEYS};
pub use replay::{Refusal, ReplayConfig, ReplayGuard, ReplayStats};
