//! Pre-shared keys: [`Key`], its public [`KeyId`], and the [`Keyring`] parsed from a
//! key file (the first key seals, every key opens).

use super::frame::{nonce, Salt, KEY_ID_CLASS};
use super::memo::Memo;
use crate::wire::NodeId;
use chacha20poly1305::{AeadInOut, KeyInit, XChaCha20Poly1305, XNonce};
use std::fmt;
use zeroize::Zeroize;

/// The most keys a [`Keyring`] holds (a rotation needs two).
pub const MAX_KEYS: usize = 16;

/// A 32-byte pre-shared key. Zeroed on drop; its `Debug` shows only its [`KeyId`].
#[derive(Clone)]
pub struct Key([u8; 32]);

impl Key {
    /// The key with these bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Key {
        Key(bytes)
    }

    /// Parses exactly 64 hex digits (either case, nothing else). The error never
    /// contains the text.
    pub fn from_hex(text: &str) -> Result<Key, KeyError> {
        let digits = text.as_bytes();
        if digits.len() != 64 {
            return Err(KeyError::Length(digits.len()));
        }
        let mut bytes = [0u8; 32];
        for (i, pair) in digits.chunks_exact(2).enumerate() {
            let (Some(hi), Some(lo)) = (hex_digit(pair[0]), hex_digit(pair[1])) else {
                let at = if hex_digit(pair[0]).is_none() {
                    2 * i
                } else {
                    2 * i + 1
                };
                bytes.zeroize();
                return Err(KeyError::NotHex(at + 1));
            };
            bytes[i] = hi << 4 | lo;
        }
        Ok(Key(bytes))
    }

    /// The key's public id: the first 4 bytes the AEAD produces when it seals 4 zero
    /// bytes under the reserved nonce (class byte 0xFF, which no frame uses). Equal
    /// keys have equal ids; the id reveals nothing usable about the key.
    pub fn id(&self) -> KeyId {
        key_id(&XChaCha20Poly1305::new(&self.0.into()))
    }
}

impl Drop for Key {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key(id {})", self.id())
    }
}

fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

fn key_id(cipher: &XChaCha20Poly1305) -> KeyId {
    let reserved: XNonce = nonce(NodeId([0; 8]), Salt([0; 7]), KEY_ID_CLASS, 0).into();
    let mut buf = [0u8; 4];
    // Sealing 4 bytes cannot fail (the length limit is 2^38 bytes).
    let _tag = cipher
        .encrypt_inout_detached(&reserved, b"dkv key id", buf.as_mut_slice().into())
        .expect("4 bytes are within the AEAD's limits");
    KeyId(buf)
}

/// A key's public 4-byte id, sent in every sealed header so the receiver knows which
/// key opens it. Shown as 8 hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(pub [u8; 4]);

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

/// Why a key's text was refused. Never contains key material.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Not 64 characters long (the length found).
    #[error("expected 64 hex digits, found {0} characters")]
    Length(usize),
    /// The character at this 1-based column is not a hex digit.
    #[error("character {0} is not a hex digit")]
    NotHex(usize),
}

/// Why a key file or key list was refused: `line` is the 1-based line (or position
/// in a list) at fault, 0 when the whole input is.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}{why}", if *line == 0 { String::new() } else { format!("line {line}: ") })]
pub struct KeyFileError {
    /// The 1-based line at fault; 0 for the input as a whole.
    pub line: usize,
    /// What is wrong there.
    pub why: KeyFileWhy,
}

/// What is wrong in a key file.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeyFileWhy {
    /// The line is not a key.
    #[error("{0}")]
    BadKey(KeyError),
    /// No key at all.
    #[error("no key (want one line of 64 hex digits)")]
    NoKey,
    /// More than [`MAX_KEYS`] keys.
    #[error("more than {MAX_KEYS} keys")]
    TooManyKeys,
    /// This key's id equals an earlier key's (the same key twice, or a 2^-32 clash:
    /// make a new key).
    #[error("key id {id} repeats line {first}'s")]
    DuplicateId {
        /// The repeated id.
        id: KeyId,
        /// The line of the earlier key.
        first: usize,
    },
}

/// The keys of a keyed cluster: 1 to [`MAX_KEYS`] keys with distinct ids. The first
/// seals everything this node sends; every key opens what it receives, so a key can
/// be rotated into a running cluster. Holds ready ciphers (zeroed on drop).
#[derive(Clone)]
pub struct Keyring {
    keys: Vec<(KeyId, XChaCha20Poly1305)>,
    /// Openings shared with its clones, when asked for.
    pub(super) memo: Option<Memo>,
}

impl Keyring {
    /// Parses a key file: one key per line as 64 hex digits, surrounding whitespace
    /// ignored, blank lines and lines starting with `#` skipped. Refuses a bad line,
    /// no key, more than [`MAX_KEYS`] keys and a repeated key id, naming the line.
    /// Stops reading at the first error. The caller owns (and should zero) `text`.
    pub fn parse(text: &str) -> Result<Keyring, KeyFileError> {
        let mut keys = Vec::new();
        let mut lines = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let number = i + 1;
            let key = Key::from_hex(line).map_err(|e| KeyFileError {
                line: number,
                why: KeyFileWhy::BadKey(e),
            })?;
            if keys.len() == MAX_KEYS {
                return Err(KeyFileError {
                    line: number,
                    why: KeyFileWhy::TooManyKeys,
                });
            }
            keys.push(key);
            lines.push(number);
        }
        Keyring::build(keys, &lines)
    }

    /// The keyring of these keys, in order (the first seals). Errors name the
    /// 1-based position in the list as `line`.
    pub fn new(keys: Vec<Key>) -> Result<Keyring, KeyFileError> {
        let lines: Vec<usize> = (1..=keys.len()).collect();
        if keys.len() > MAX_KEYS {
            return Err(KeyFileError {
                line: MAX_KEYS + 1,
                why: KeyFileWhy::TooManyKeys,
            });
        }
        Keyring::build(keys, &lines)
    }

    fn build(keys: Vec<Key>, lines: &[usize]) -> Result<Keyring, KeyFileError> {
        if keys.is_empty() {
            return Err(KeyFileError {
                line: 0,
                why: KeyFileWhy::NoKey,
            });
        }
        let mut ring: Vec<(KeyId, XChaCha20Poly1305)> = Vec::with_capacity(keys.len());
        for (key, &line) in keys.iter().zip(lines) {
            let cipher = XChaCha20Poly1305::new(&key.0.into());
            let id = key_id(&cipher);
            if let Some(first) = ring.iter().position(|(other, _)| *other == id) {
                return Err(KeyFileError {
                    line,
                    why: KeyFileWhy::DuplicateId {
                        id,
                        first: lines[first],
                    },
                });
            }
            ring.push((id, cipher));
        }
        Ok(Keyring {
            keys: ring,
            memo: None,
        })
    }

    /// This keyring, its clones sharing their last `capacity` successful openings
    /// (frames and hellos): an item one clone opened, another takes by comparing
    /// its bytes instead of decrypting it again, with the same result. For the
    /// cores of one process that receive the same broadcasts, such as the
    /// simulator's; a lone node gains nothing from it. Forgeries are decrypted,
    /// and refused, every time.
    pub fn sharing_openings(mut self, capacity: usize) -> Keyring {
        self.memo = Some(Memo::new(capacity));
        self
    }

    /// The id of the key that seals.
    pub fn send_id(&self) -> KeyId {
        self.keys[0].0
    }

    /// Every key's id, the sending key first.
    pub fn ids(&self) -> impl Iterator<Item = KeyId> + '_ {
        self.keys.iter().map(|(id, _)| *id)
    }

    /// Whether a key with this id opens frames.
    pub fn knows(&self, id: KeyId) -> bool {
        self.cipher(id).is_some()
    }

    /// The number of keys (1 to [`MAX_KEYS`]).
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Always false: a keyring holds at least one key.
    pub fn is_empty(&self) -> bool {
        false
    }

    pub(super) fn sender(&self) -> (KeyId, &XChaCha20Poly1305) {
        (self.keys[0].0, &self.keys[0].1)
    }

    pub(super) fn cipher(&self, id: KeyId) -> Option<&XChaCha20Poly1305> {
        self.keys.iter().find(|(k, _)| *k == id).map(|(_, c)| c)
    }
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("ids", &self.ids().collect::<Vec<_>>())
            .finish()
    }
}
