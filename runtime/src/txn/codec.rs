//! The reader and writer shared by every transaction codec (log records in
//! [`super::record`], messages in [`super::msg`], snapshots in
//! [`super::snapshot`]) and the one error they return.
//!
//! All integers are fixed-width little-endian. A byte string is a `u32`
//! length followed by the bytes:
//!
//! ```text
//!  offset  size  field
//!  ------  ----  ------------------------------------------------------
//!       0     4  len    u32 LE, at most the bound of what it holds:
//!                       a key or a prefix  MAX_KEY   (64 KiB)
//!                       a value            MAX_VALUE (1 MiB)
//!                       a text             MAX_TEXT  (64 KiB, UTF-8)
//!       4   len  bytes
//! ```
//!
//! A count (of items, entries, sections) is a `u32` (`u64` for the keys of
//! one keyspace) followed by that many items; the reader refuses a count
//! whose items could not fit in the bytes left (`count * min_item_len >
//! remaining`), so that no decoder allocates for bytes it was never given.
//! A boolean is one byte, 0 or 1; anything else is an error.
//!
//! Decoders read untrusted bytes (files on disk, frames from other
//! processes): they return a [`DecodeError`] and never panic.

/// Longest key (and scan prefix) the codecs accept: 64 KiB.
pub const MAX_KEY: usize = 64 << 10;
/// Longest value the codecs accept: 1 MiB.
pub const MAX_VALUE: usize = 1 << 20;
/// Longest text (a conflict or failure reason) the codecs accept: 64 KiB.
pub const MAX_TEXT: usize = 64 << 10;

/// Why bytes could not be decoded as a record, a message or a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The bytes ended inside a field.
    #[error("truncated: the bytes end inside {what}")]
    Truncated {
        /// The field being read.
        what: &'static str,
    },
    /// A length above the bound of what it holds.
    #[error("{what} of {len} bytes is longer than the limit of {max}")]
    TooLong {
        /// What the length is of.
        what: &'static str,
        /// The length found (or encoded).
        len: u64,
        /// The bound.
        max: u64,
    },
    /// A count of items that cannot fit in the bytes left.
    #[error("{count} {what} cannot fit in the {remaining} bytes left")]
    Count {
        /// What is counted.
        what: &'static str,
        /// The count found.
        count: u64,
        /// Bytes left after the count.
        remaining: usize,
    },
    /// An unknown tag (record or message kind, option or boolean byte).
    #[error("unknown {what} tag {tag}")]
    BadTag {
        /// What the tag selects.
        what: &'static str,
        /// The byte found.
        tag: u8,
    },
    /// Bytes after the end of a complete item.
    #[error("{extra} bytes after the end")]
    Trailing {
        /// How many.
        extra: usize,
    },
    /// A snapshot that does not start with the expected magic.
    #[error("not a {what} (bad magic)")]
    BadMagic {
        /// What was expected.
        what: &'static str,
    },
    /// A snapshot format this code does not read.
    #[error("unsupported {what} format version {version}")]
    BadVersion {
        /// What the version is of.
        what: &'static str,
        /// The version found.
        version: u32,
    },
    /// A snapshot whose CRC32C does not match its bytes.
    #[error("checksum mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    Checksum {
        /// The CRC stored in the bytes.
        stored: u32,
        /// The CRC of the bytes.
        computed: u32,
    },
    /// Well-formed bytes that break a rule of what they describe (keys out
    /// of order, a zero version, two prepared transactions locking one key).
    #[error("invalid: {0}")]
    Invalid(&'static str),
}

/// Reads fields from untrusted bytes, front to back.
#[derive(Debug)]
pub struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader over `bytes`.
    pub fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader { rest: bytes }
    }

    /// Bytes not yet read.
    pub fn remaining(&self) -> usize {
        self.rest.len()
    }

    /// The next `n` bytes, raw.
    pub fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        if n > self.rest.len() {
            return Err(DecodeError::Truncated { what });
        }
        let (head, rest) = self.rest.split_at(n);
        self.rest = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], DecodeError> {
        let (head, rest) = self
            .rest
            .split_first_chunk::<N>()
            .ok_or(DecodeError::Truncated { what })?;
        self.rest = rest;
        Ok(*head)
    }

    /// One byte.
    pub fn u8(&mut self, what: &'static str) -> Result<u8, DecodeError> {
        Ok(self.array::<1>(what)?[0])
    }

    /// A `u32`, little-endian.
    pub fn u32(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    /// A `u64`, little-endian.
    pub fn u64(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    /// A boolean byte: 0 or 1.
    pub fn bool(&mut self, what: &'static str) -> Result<bool, DecodeError> {
        match self.u8(what)? {
            0 => Ok(false),
            1 => Ok(true),
            tag => Err(DecodeError::BadTag { what, tag }),
        }
    }

    /// A length-prefixed byte string of at most `max` bytes.
    pub fn bytes(&mut self, max: usize, what: &'static str) -> Result<Vec<u8>, DecodeError> {
        let len = self.u32(what)?;
        if len as usize > max {
            return Err(DecodeError::TooLong {
                what,
                len: u64::from(len),
                max: max as u64,
            });
        }
        Ok(self.take(len as usize, what)?.to_vec())
    }

    /// A key or a prefix (at most [`MAX_KEY`] bytes).
    pub fn key(&mut self, what: &'static str) -> Result<Vec<u8>, DecodeError> {
        self.bytes(MAX_KEY, what)
    }

    /// A value (at most [`MAX_VALUE`] bytes).
    pub fn value(&mut self, what: &'static str) -> Result<Vec<u8>, DecodeError> {
        self.bytes(MAX_VALUE, what)
    }

    /// A UTF-8 text (at most [`MAX_TEXT`] bytes).
    pub fn text(&mut self, what: &'static str) -> Result<String, DecodeError> {
        String::from_utf8(self.bytes(MAX_TEXT, what)?)
            .map_err(|_| DecodeError::Invalid("text is not UTF-8"))
    }

    /// A `u32` count of items that each take at least `min_item_len` bytes.
    pub fn count(&mut self, min_item_len: usize, what: &'static str) -> Result<usize, DecodeError> {
        let count = u64::from(self.u32(what)?);
        self.check_count(count, min_item_len, what)
    }

    /// A `u64` count of items that each take at least `min_item_len` bytes.
    pub fn count64(
        &mut self,
        min_item_len: usize,
        what: &'static str,
    ) -> Result<usize, DecodeError> {
        let count = self.u64(what)?;
        self.check_count(count, min_item_len, what)
    }

    fn check_count(
        &self,
        count: u64,
        min: usize,
        what: &'static str,
    ) -> Result<usize, DecodeError> {
        let need = u128::from(count) * min.max(1) as u128;
        if need > self.rest.len() as u128 {
            return Err(DecodeError::Count {
                what,
                count,
                remaining: self.rest.len(),
            });
        }
        // The count fits in the bytes left, so it fits in usize.
        usize::try_from(count).map_err(|_| DecodeError::Invalid("count overflows usize"))
    }

    /// Succeeds only when every byte was read.
    pub fn end(self) -> Result<(), DecodeError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::Trailing {
                extra: self.rest.len(),
            })
        }
    }
}

/// Appends fields to a byte vector. Encoders do not check the length
/// bounds: check what comes from outside at the edge
/// ([`super::store::TxnSet::check_limits`]), or the decoder will refuse it.
#[derive(Debug, Default)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    /// An empty writer.
    pub fn new() -> Writer {
        Writer::default()
    }

    /// The bytes written.
    pub fn finish(self) -> Vec<u8> {
        self.buf
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Whether nothing was written.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// The bytes written so far.
    pub fn as_slice(&self) -> &[u8] {
        &self.buf
    }

    /// Overwrites 8 bytes at `at` with `v` (a length patched in after the
    /// fact).
    pub fn patch_u64(&mut self, at: usize, v: u64) {
        self.buf[at..at + 8].copy_from_slice(&v.to_le_bytes());
    }

    /// Raw bytes, no length.
    pub fn raw(&mut self, b: &[u8]) {
        self.buf.extend_from_slice(b);
    }

    /// One byte.
    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }

    /// A `u32`, little-endian.
    pub fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    /// A `u64`, little-endian.
    pub fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    /// A boolean byte.
    pub fn bool(&mut self, v: bool) {
        self.u8(u8::from(v));
    }

    /// A length-prefixed byte string (the length saturates at `u32::MAX`,
    /// which no decoder accepts).
    pub fn bytes(&mut self, b: &[u8]) {
        self.u32(u32::try_from(b.len()).unwrap_or(u32::MAX));
        self.raw(b);
    }

    /// A `u32` count (saturating, like [`Writer::bytes`]).
    pub fn count(&mut self, n: usize) {
        self.u32(u32::try_from(n).unwrap_or(u32::MAX));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reader_refuses_short_long_and_trailing() {
        let mut w = Writer::new();
        w.u32(7);
        w.bytes(b"abc");
        w.bool(true);
        let b = w.finish();
        let mut r = Reader::new(&b);
        assert_eq!(r.u32("n"), Ok(7));
        assert_eq!(r.bytes(3, "s"), Ok(b"abc".to_vec()));
        assert_eq!(r.bool("b"), Ok(true));
        r.end().unwrap();

        let mut r = Reader::new(&b);
        r.u32("n").unwrap();
        assert!(matches!(
            r.bytes(2, "s"),
            Err(DecodeError::TooLong { len: 3, .. })
        ));
        let mut r = Reader::new(&b[..6]);
        r.u32("n").unwrap();
        assert!(matches!(
            r.bytes(9, "s"),
            Err(DecodeError::Truncated { .. })
        ));
        assert_eq!(
            Reader::new(&[2]).bool("b"),
            Err(DecodeError::BadTag { what: "b", tag: 2 })
        );
        assert_eq!(
            Reader::new(&[1]).end(),
            Err(DecodeError::Trailing { extra: 1 })
        );
    }

    #[test]
    fn counts_are_bounded_by_the_bytes_left() {
        let mut w = Writer::new();
        w.u32(3);
        w.raw(&[0; 11]);
        let b = w.finish();
        assert!(matches!(
            Reader::new(&b).count(4, "items"),
            Err(DecodeError::Count { count: 3, .. })
        ));
        assert_eq!(Reader::new(&b).count(3, "items"), Ok(3));
        let huge = u64::MAX.to_le_bytes();
        assert!(matches!(
            Reader::new(&huge).count64(1, "keys"),
            Err(DecodeError::Count { .. })
        ));
    }
}
