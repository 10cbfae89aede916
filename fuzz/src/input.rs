//! The byte format every target reads its structure from: single bytes,
//! little-endian `u16`s and `u64`s, and length-prefixed byte strings, read leniently so that
//! any input at all is a valid (possibly short) program, and written by
//! [`Writer`] so that seeds can be built from typed values.

/// Reads structure out of arbitrary fuzzer bytes. Every read is total: it returns
/// `None` only when the input is exhausted, never panics, and a byte string whose
/// length prefix overshoots the input is cut short rather than rejected.
#[derive(Clone, Debug)]
pub struct Reader<'a> {
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader over `data`, starting at its first byte.
    pub fn new(data: &'a [u8]) -> Reader<'a> {
        Reader { data }
    }

    /// Whether every byte has been consumed.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The next byte, or `None` at the end.
    pub fn u8(&mut self) -> Option<u8> {
        let (&first, rest) = self.data.split_first()?;
        self.data = rest;
        Some(first)
    }

    /// The next two bytes as a little-endian `u16`; a lone last byte is the low byte.
    pub fn u16(&mut self) -> Option<u16> {
        let low = self.u8()?;
        let high = self.u8().unwrap_or(0);
        Some(u16::from_le_bytes([low, high]))
    }

    /// The next eight bytes as a little-endian `u64`; missing high bytes are zero.
    pub fn u64(&mut self) -> Option<u64> {
        let low = self.u8()?;
        let mut bytes = [low, 0, 0, 0, 0, 0, 0, 0];
        for b in &mut bytes[1..] {
            *b = self.u8().unwrap_or(0);
        }
        Some(u64::from_le_bytes(bytes))
    }

    /// A length-prefixed byte string: a length byte below `0xff`, or `0xff` and a
    /// little-endian `u16` length. Returns what is left if the input is shorter.
    pub fn bytes(&mut self) -> Option<&'a [u8]> {
        let len = match self.u8()? {
            0xff => usize::from(self.u16().unwrap_or(0)),
            len => usize::from(len),
        };
        let (taken, rest) = self.data.split_at(len.min(self.data.len()));
        self.data = rest;
        Some(taken)
    }
}

/// Builds inputs in the format [`Reader`] reads: what a `Writer` writes, a `Reader`
/// reads back value for value (byte strings longer than `u16::MAX` are truncated).
#[derive(Clone, Debug, Default)]
pub struct Writer {
    data: Vec<u8>,
}

impl Writer {
    /// An empty input.
    pub fn new() -> Writer {
        Writer::default()
    }

    /// Appends one byte.
    pub fn u8(mut self, value: u8) -> Writer {
        self.data.push(value);
        self
    }

    /// Appends a little-endian `u16`.
    pub fn u16(mut self, value: u16) -> Writer {
        self.data.extend_from_slice(&value.to_le_bytes());
        self
    }

    /// Appends a little-endian `u64`.
    pub fn u64(mut self, value: u64) -> Writer {
        self.data.extend_from_slice(&value.to_le_bytes());
        self
    }

    /// Appends a length-prefixed byte string.
    pub fn bytes(mut self, value: &[u8]) -> Writer {
        let value = &value[..value.len().min(usize::from(u16::MAX))];
        match u8::try_from(value.len()) {
            Ok(len) if len < 0xff => self.data.push(len),
            _ => {
                self.data.push(0xff);
                // Fits: truncated to u16::MAX above.
                let len = u16::try_from(value.len()).expect("truncated to u16");
                self.data.extend_from_slice(&len.to_le_bytes());
            }
        }
        self.data.extend_from_slice(value);
        self
    }

    /// The input built so far.
    pub fn finish(self) -> Vec<u8> {
        self.data
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writer_output_reads_back_value_for_value() {
        let long = vec![7u8; 300];
        let data = Writer::new()
            .u8(9)
            .u16(0xbeef)
            .u64(0x0123_4567_89ab_cdef)
            .bytes(b"abc")
            .bytes(&long)
            .bytes(&[0xff; 254])
            .finish();
        let mut r = Reader::new(&data);
        assert_eq!(r.u8(), Some(9));
        assert_eq!(r.u16(), Some(0xbeef));
        assert_eq!(r.u64(), Some(0x0123_4567_89ab_cdef));
        assert_eq!(r.bytes(), Some(&b"abc"[..]));
        assert_eq!(r.bytes(), Some(&long[..]));
        assert_eq!(r.bytes(), Some(&[0xff; 254][..]));
        assert!(r.is_empty());
        assert_eq!(r.u8(), None);
    }

    #[test]
    fn a_short_u64_takes_what_is_left_as_its_low_bytes() {
        let mut r = Reader::new(&[1, 2]);
        assert_eq!(r.u64(), Some(0x0201));
        assert_eq!(r.u64(), None);
    }

    #[test]
    fn overlong_length_prefix_yields_the_rest() {
        let mut r = Reader::new(&[10, 1, 2]);
        assert_eq!(r.bytes(), Some(&[1, 2][..]));
        assert_eq!(r.bytes(), None);
    }
}
