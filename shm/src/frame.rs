//! Frame header codec.
//!
//! Every message that crosses a ring is one frame: a fixed 32-byte header, the
//! payload, and, on a secure link, a 16-byte AEGIS-128L tag (see
//! [`crate::auth`] for sealing and opening).
//!
//! All integers are little-endian. Byte layout of the header:
//!
//! ```text
//!  offset  size  field
//!  ------  ----  -----------------------------------------------------------
//!       0     1  version      FRAME_VERSION (1)
//!       1     1  kind         see [`kind`]; the codec accepts any value
//!       2     2  flags        u16, meaning defined by the kind
//!       4     4  payload_len  u32, at most MAX_PAYLOAD
//!       8     8  seq          u64, per-link sequence number, starts at 0
//!      16     4  src          u32, sending LP/manager id, stamped by the manager
//!      20     4  dst          u32, destination (sub-function index or LP id)
//!      24     4  aux          u32, request/reply correlation id, coordinator epoch, ...
//!      28     4  crc          u32, CRC32C over bytes 0..28, then the payload as
//!                             sent (ciphertext when secure), then the tag
//!  ------  ----  -----------------------------------------------------------
//!      32     n  payload      payload_len bytes (ciphertext when secure)
//!    32+n    16  tag          secure links only
//! ```
//!
//! ```text
//!  0       1       2               4                               8
//!  +-------+-------+---------------+-------------------------------+
//!  |version| kind  |     flags     |          payload_len          |
//!  +-------+-------+---------------+-------------------------------+
//!  |                              seq                              |
//!  +-------------------------------+-------------------------------+
//!  |              src              |              dst              |
//!  +-------------------------------+-------------------------------+
//!  |              aux              |              crc              |
//!  +-------------------------------+-------------------------------+
//!  |                 payload ...               |  tag (16, secure) |
//!  +-------------------------------------------+-------------------+
//! ```
//!
//! The header bytes are untrusted: [`FrameHeader::decode`] copies them out of
//! the input first, then validates the copy, and never panics.

/// The only header version this code reads and writes.
pub const FRAME_VERSION: u8 = 1;
/// Length of the encoded frame header in bytes.
pub const FRAME_HEADER_LEN: usize = 32;
/// Length of the AEGIS-128L authentication tag that ends a secure frame.
pub const TAG_LEN: usize = 16;
/// Largest payload a frame may carry (1 MiB).
pub const MAX_PAYLOAD: usize = 1 << 20;

/// Offset of the CRC field; the CRC and the AEAD associated data cover the
/// header bytes before it.
pub(crate) const CRC_OFFSET: usize = 28;

/// Frame kinds. Plain `u8` constants: the codec accepts any kind, the router
/// decides what to do with it.
pub mod kind {
    /// Application data addressed to a sub-function.
    pub const DATA: u8 = 1;
    /// A request; `aux` carries the correlation id.
    pub const REQUEST: u8 = 2;
    /// A reply; `aux` carries the correlation id of the request.
    pub const REPLY: u8 = 3;
    /// A message for every subscriber.
    pub const BROADCAST: u8 = 4;
    /// Runtime control (ready, stop, assignment changes, ...).
    pub const CONTROL: u8 = 5;
    /// A manager's state report to the coordinator; `aux` carries the epoch.
    pub const REPORT: u8 = 6;
    /// Several messages under one tag: the payload is a batch
    /// ([`crate::batch`]). The frame's sequence number covers the batch.
    pub const BATCH: u8 = 7;
    /// A transaction request (get, scan, commit, two-phase commit steps);
    /// `aux` carries the correlation id.
    pub const TXN: u8 = 8;
    /// The reply to a [`TXN`]; `aux` carries the correlation id.
    pub const TXN_REPLY: u8 = 9;
}

/// Why a frame header could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// Fewer than [`FRAME_HEADER_LEN`] bytes were given.
    #[error("frame header truncated: {len} bytes, need {FRAME_HEADER_LEN}")]
    Truncated {
        /// Number of bytes available.
        len: usize,
    },
    /// The version byte is not [`FRAME_VERSION`].
    #[error("unsupported frame version {0} (expected {FRAME_VERSION})")]
    Version(u8),
    /// `payload_len` exceeds [`MAX_PAYLOAD`].
    #[error("frame payload length {0} exceeds the maximum of {MAX_PAYLOAD}")]
    TooLong(u32),
}

/// A decoded frame header. See the module documentation for the layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FrameHeader {
    /// Header version, [`FRAME_VERSION`].
    pub version: u8,
    /// Frame kind, usually one of [`kind`].
    pub kind: u8,
    /// Kind-specific flags.
    pub flags: u16,
    /// Length of the payload in bytes (without the tag).
    pub payload_len: u32,
    /// Per-link sequence number, starting at 0.
    pub seq: u64,
    /// Sending LP or manager id, stamped by the manager.
    pub src: u32,
    /// Destination: sub-function index or LP id, depending on kind and flags.
    pub dst: u32,
    /// Correlation id for request/reply, epoch for coordinator frames, etc.
    pub aux: u32,
    /// CRC32C over header bytes 0..28, the payload as sent and the tag.
    pub crc: u32,
}

impl FrameHeader {
    /// Encodes the header into its 32-byte little-endian form. No field is
    /// validated: the bytes are exactly the fields.
    pub fn encode(&self) -> [u8; FRAME_HEADER_LEN] {
        let mut b = [0u8; FRAME_HEADER_LEN];
        b[0] = self.version;
        b[1] = self.kind;
        b[2..4].copy_from_slice(&self.flags.to_le_bytes());
        b[4..8].copy_from_slice(&self.payload_len.to_le_bytes());
        b[8..16].copy_from_slice(&self.seq.to_le_bytes());
        b[16..20].copy_from_slice(&self.src.to_le_bytes());
        b[20..24].copy_from_slice(&self.dst.to_le_bytes());
        b[24..28].copy_from_slice(&self.aux.to_le_bytes());
        b[28..32].copy_from_slice(&self.crc.to_le_bytes());
        b
    }

    /// Encodes the header into the first [`FRAME_HEADER_LEN`] bytes of `out`.
    ///
    /// # Panics
    ///
    /// Panics if `out.len() < FRAME_HEADER_LEN`. Callers size their buffers
    /// from [`frame_len`]; this is a programming error, not an input error.
    pub fn encode_into(&self, out: &mut [u8]) {
        out[..FRAME_HEADER_LEN].copy_from_slice(&self.encode());
    }

    /// Decodes a header from the start of `bytes` (extra bytes are ignored).
    ///
    /// The 32 header bytes are copied out first, so a concurrent writer of
    /// shared memory cannot change a field between its check and its use.
    /// Rejects short input, an unknown version and a payload length above
    /// [`MAX_PAYLOAD`]. Never panics.
    pub fn decode(bytes: &[u8]) -> Result<FrameHeader, FrameError> {
        let b: [u8; FRAME_HEADER_LEN] = match bytes.get(..FRAME_HEADER_LEN) {
            Some(s) => {
                let mut a = [0u8; FRAME_HEADER_LEN];
                a.copy_from_slice(s);
                a
            }
            None => return Err(FrameError::Truncated { len: bytes.len() }),
        };
        let u16_at = |i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
        let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let u64_at = |i: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&b[i..i + 8]);
            u64::from_le_bytes(a)
        };
        let hdr = FrameHeader {
            version: b[0],
            kind: b[1],
            flags: u16_at(2),
            payload_len: u32_at(4),
            seq: u64_at(8),
            src: u32_at(16),
            dst: u32_at(20),
            aux: u32_at(24),
            crc: u32_at(28),
        };
        if hdr.version != FRAME_VERSION {
            return Err(FrameError::Version(hdr.version));
        }
        if hdr.payload_len as usize > MAX_PAYLOAD {
            return Err(FrameError::TooLong(hdr.payload_len));
        }
        Ok(hdr)
    }
}

/// Total length of a frame with `payload_len` payload bytes: the header, the
/// payload and, if `secure`, the tag.
pub const fn frame_len(payload_len: usize, secure: bool) -> usize {
    FRAME_HEADER_LEN + payload_len + if secure { TAG_LEN } else { 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> FrameHeader {
        FrameHeader {
            version: FRAME_VERSION,
            kind: kind::REQUEST,
            flags: 0xBEEF,
            payload_len: 1234,
            seq: 0x0102_0304_0506_0708,
            src: 7,
            dst: 0xDEAD_BEEF,
            aux: 42,
            crc: 0xCAFE_BABE,
        }
    }

    #[test]
    fn roundtrip() {
        let h = sample();
        let b = h.encode();
        assert_eq!(FrameHeader::decode(&b), Ok(h));
        let mut buf = [0xAAu8; 40];
        h.encode_into(&mut buf);
        assert_eq!(&buf[..32], &b);
        assert_eq!(&buf[32..], &[0xAA; 8]);
        assert_eq!(FrameHeader::decode(&buf), Ok(h));
    }

    #[test]
    fn layout_is_little_endian() {
        let b = sample().encode();
        assert_eq!(b[0], 1);
        assert_eq!(b[1], kind::REQUEST);
        assert_eq!(&b[2..4], &[0xEF, 0xBE]);
        assert_eq!(&b[4..8], &1234u32.to_le_bytes());
        assert_eq!(&b[8..16], &[8, 7, 6, 5, 4, 3, 2, 1]);
        assert_eq!(&b[16..20], &7u32.to_le_bytes());
        assert_eq!(&b[20..24], &[0xEF, 0xBE, 0xAD, 0xDE]);
        assert_eq!(&b[24..28], &42u32.to_le_bytes());
        assert_eq!(&b[28..32], &[0xBE, 0xBA, 0xFE, 0xCA]);
    }

    #[test]
    fn rejects_bad_input() {
        let b = sample().encode();
        for n in [0, 1, 31] {
            assert_eq!(
                FrameHeader::decode(&b[..n]),
                Err(FrameError::Truncated { len: n })
            );
        }
        let mut v = b;
        v[0] = 2;
        assert_eq!(FrameHeader::decode(&v), Err(FrameError::Version(2)));
        let mut h = sample();
        h.payload_len = MAX_PAYLOAD as u32;
        assert_eq!(FrameHeader::decode(&h.encode()), Ok(h));
        h.payload_len = MAX_PAYLOAD as u32 + 1;
        assert_eq!(
            FrameHeader::decode(&h.encode()),
            Err(FrameError::TooLong(MAX_PAYLOAD as u32 + 1))
        );
    }

    #[test]
    fn lengths() {
        assert_eq!(frame_len(0, false), 32);
        assert_eq!(frame_len(64, false), 96);
        assert_eq!(frame_len(64, true), 112);
    }
}
