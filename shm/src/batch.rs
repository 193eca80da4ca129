//! Batches: several messages in the payload of one frame, so that one
//! AEAD tag (and one sequence number) covers them all.
//!
//! DESIGN.md allows "a tag per batch of frames where it keeps the same
//! guarantees": the batch travels as one frame of kind
//! [`kind::BATCH`], sealed, sequence-checked and
//! rejected as a whole, so a forged, altered, replayed or reordered batch
//! delivers none of its messages, exactly as for a single frame.
//!
//! Payload layout: a sequence of entries, each a 20-byte little-endian
//! sub-header followed by its bytes:
//!
//! ```text
//! offset size field
//!      0    1 kind   (a frame kind other than BATCH)
//!      1    1 reserved (0)
//!      2    2 flags
//!      4    4 len    bytes that follow
//!      8    4 src
//!     12    4 dst
//!     16    4 aux
//!     20  len payload
//! ```
//!
//! The bytes come from the other side of a link and are untrusted even when
//! the tag is right (an LP may seal garbage): [`BatchIter`] bounds every
//! length and yields an error, never a panic.

use crate::frame::kind;

/// Length of an entry's sub-header.
pub const ENTRY_HEADER_LEN: usize = 20;

/// One message of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Entry {
    /// Frame kind of the message.
    pub kind: u8,
    /// Flags, as in a frame header.
    pub flags: u16,
    /// Source (stamped again by the receiving manager).
    pub src: u32,
    /// Destination.
    pub dst: u32,
    /// Correlation id / epoch.
    pub aux: u32,
}

/// Why a batch payload could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BatchError {
    /// An entry's header or bytes run past the end of the payload.
    #[error("batch entry truncated at offset {0}")]
    Truncated(usize),
    /// An entry claims to be a batch itself.
    #[error("nested batch at offset {0}")]
    Nested(usize),
}

/// Bytes an entry of `len` payload bytes takes in a batch.
pub const fn entry_len(len: usize) -> usize {
    ENTRY_HEADER_LEN + len
}

/// Append one entry to `out`.
pub fn push(out: &mut Vec<u8>, e: &Entry, payload: &[u8]) {
    let mut h = [0u8; ENTRY_HEADER_LEN];
    encode_entry(&mut h, e, payload.len());
    out.extend_from_slice(&h);
    out.extend_from_slice(payload);
}

/// Write one entry at the start of `out` (which must hold
/// `entry_len(payload.len())` bytes); returns the bytes written.
pub fn write(out: &mut [u8], e: &Entry, payload: &[u8]) -> usize {
    encode_entry(&mut out[..ENTRY_HEADER_LEN], e, payload.len());
    out[ENTRY_HEADER_LEN..ENTRY_HEADER_LEN + payload.len()].copy_from_slice(payload);
    entry_len(payload.len())
}

fn encode_entry(h: &mut [u8], e: &Entry, len: usize) {
    h[0] = e.kind;
    h[1] = 0;
    h[2..4].copy_from_slice(&e.flags.to_le_bytes());
    h[4..8].copy_from_slice(&(len as u32).to_le_bytes());
    h[8..12].copy_from_slice(&e.src.to_le_bytes());
    h[12..16].copy_from_slice(&e.dst.to_le_bytes());
    h[16..20].copy_from_slice(&e.aux.to_le_bytes());
}

/// Iterator over the entries of a batch payload.
pub struct BatchIter<'a> {
    buf: &'a [u8],
    off: usize,
    failed: bool,
}

/// Read the entries of `payload`.
pub fn entries(payload: &[u8]) -> BatchIter<'_> {
    BatchIter {
        buf: payload,
        off: 0,
        failed: false,
    }
}

impl<'a> Iterator for BatchIter<'a> {
    type Item = Result<(Entry, &'a [u8]), BatchError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.off >= self.buf.len() {
            return None;
        }
        let at = self.off;
        let rest = &self.buf[at..];
        if rest.len() < ENTRY_HEADER_LEN {
            self.failed = true;
            return Some(Err(BatchError::Truncated(at)));
        }
        let u32_at =
            |i: usize| u32::from_le_bytes([rest[i], rest[i + 1], rest[i + 2], rest[i + 3]]);
        let len = u32_at(4) as usize;
        let e = Entry {
            kind: rest[0],
            flags: u16::from_le_bytes([rest[2], rest[3]]),
            src: u32_at(8),
            dst: u32_at(12),
            aux: u32_at(16),
        };
        if e.kind == kind::BATCH {
            self.failed = true;
            return Some(Err(BatchError::Nested(at)));
        }
        if len > rest.len() - ENTRY_HEADER_LEN {
            self.failed = true;
            return Some(Err(BatchError::Truncated(at)));
        }
        self.off = at + ENTRY_HEADER_LEN + len;
        Some(Ok((e, &rest[ENTRY_HEADER_LEN..ENTRY_HEADER_LEN + len])))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip() {
        let mut b = Vec::new();
        let e1 = Entry {
            kind: kind::DATA,
            flags: 1,
            src: 2,
            dst: 3,
            aux: 4,
        };
        push(&mut b, &e1, b"hello");
        push(
            &mut b,
            &Entry {
                kind: kind::REPLY,
                ..e1
            },
            b"",
        );
        let v: Vec<_> = entries(&b).map(|r| r.unwrap()).collect();
        assert_eq!(v.len(), 2);
        assert_eq!(v[0], (e1, &b"hello"[..]));
        assert_eq!(v[1].0.kind, kind::REPLY);
        assert_eq!(v[1].1, b"");
    }

    #[test]
    fn garbage_is_an_error() {
        let mut b = Vec::new();
        push(
            &mut b,
            &Entry {
                kind: kind::DATA,
                ..Default::default()
            },
            b"abc",
        );
        for cut in 0..b.len() {
            let r: Vec<_> = entries(&b[..cut]).collect();
            assert!(cut == 0 || r.last().unwrap().is_err(), "cut {cut}");
        }
        let mut nested = Vec::new();
        push(
            &mut nested,
            &Entry {
                kind: kind::BATCH,
                ..Default::default()
            },
            b"",
        );
        assert_eq!(entries(&nested).next(), Some(Err(BatchError::Nested(0))));
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut x = 0x1234_5678u64;
        for n in 0..2000 {
            let v: Vec<u8> = (0..n % 97)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            for r in entries(&v) {
                let _ = r;
            }
        }
    }
}
