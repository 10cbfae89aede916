//! The trace hash: a 64-bit digest of every event the simulator processes, used to
//! prove that one seed gives a bit-identical run.

/// A running 64-bit hash (FNV-1a over bytes, a multiply-xorshift step over words).
/// Equal input sequences give equal hashes; it is not cryptographic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceHash(u64);

impl Default for TraceHash {
    fn default() -> Self {
        TraceHash(0xcbf2_9ce4_8422_2325)
    }
}

impl TraceHash {
    /// Folds one word into the hash.
    pub fn word(&mut self, w: u64) {
        let mut h = (self.0 ^ w).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        h ^= h >> 29;
        self.0 = h;
    }

    /// Folds bytes into the hash (FNV-1a), then their length.
    pub fn bytes(&mut self, b: &[u8]) {
        let mut h = self.0;
        for &x in b {
            h = (h ^ u64::from(x)).wrapping_mul(0x0000_0100_0000_01b3);
        }
        self.0 = h;
        self.word(b.len() as u64);
    }

    /// The digest so far.
    pub fn value(&self) -> u64 {
        self.0
    }
}
