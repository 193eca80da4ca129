//! The sending end of a link: [`Sealer`] stamps the header, encrypts the
//! payload in place and appends tag and CRC (the format is in the parent
//! module's documentation and in [`crate::frame`]).
//!
//! Sealing writes into the caller's buffer (usually a ring slot reserved in
//! place), so a frame is never copied on the sending side.

use super::frame_crc;
use super::keys::LinkKey;
use crate::frame::{
    frame_len, FrameHeader, CRC_OFFSET, FRAME_HEADER_LEN, FRAME_VERSION, MAX_PAYLOAD,
};

/// Why a frame could not be sealed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SealError {
    /// The payload is longer than [`MAX_PAYLOAD`].
    #[error("payload of {len} bytes exceeds the maximum of {MAX_PAYLOAD}")]
    TooLong {
        /// Payload length asked for.
        len: usize,
    },
    /// The output buffer cannot hold the frame.
    #[error("buffer of {have} bytes is too small for a frame of {need} bytes")]
    BufferTooSmall {
        /// Bytes the frame needs.
        need: usize,
        /// Bytes the buffer has.
        have: usize,
    },
    /// The link has used up its sequence numbers (2^64 - 1 frames); it needs a
    /// new key.
    #[error("sequence numbers of this link are exhausted")]
    SeqExhausted,
}

/// The sending end of one link direction.
#[derive(Debug)]
pub struct Sealer {
    key: Option<LinkKey>,
    next_seq: u64,
}

impl Sealer {
    /// A sealer whose first frame gets sequence number 0. `None` is the
    /// insecure mode (no encryption, no tag, CRC field 0), for measurements.
    pub fn new(key: Option<LinkKey>) -> Sealer {
        Sealer { key, next_seq: 0 }
    }

    /// A sealer that goes on from `next_seq`: for a link whose sealer was
    /// dropped and is made again with the same key (its peer seemed to go
    /// away and came back as the same generation). Starting again at 0
    /// would reuse nonces under that key.
    pub fn resume(key: Option<LinkKey>, next_seq: u64) -> Sealer {
        Sealer { key, next_seq }
    }

    /// Whether frames are encrypted and authenticated.
    pub fn secure(&self) -> bool {
        self.key.is_some()
    }

    /// The sequence number the next sealed frame gets.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Length of a frame with `payload_len` payload bytes on this link.
    pub fn frame_len(&self, payload_len: usize) -> usize {
        frame_len(payload_len, self.secure())
    }

    /// Seals a frame whose plaintext payload already sits at
    /// `buf[32..32 + hdr.payload_len]`.
    ///
    /// Sets `version` and `seq` (this link's next sequence number, which is then
    /// incremented), writes the header, and on a secure link encrypts the
    /// payload in place, writes the tag after it and stores the CRC. The
    /// caller's `version`, `seq` and `crc` are ignored. Returns the frame length.
    /// On error nothing is consumed: the sequence number does not advance.
    pub fn seal_in_place(
        &mut self,
        mut hdr: FrameHeader,
        buf: &mut [u8],
    ) -> Result<usize, SealError> {
        let len = hdr.payload_len as usize;
        if len > MAX_PAYLOAD {
            return Err(SealError::TooLong { len });
        }
        let need = self.frame_len(len);
        if buf.len() < need {
            return Err(SealError::BufferTooSmall {
                need,
                have: buf.len(),
            });
        }
        if self.next_seq == u64::MAX {
            return Err(SealError::SeqExhausted);
        }
        hdr.version = FRAME_VERSION;
        hdr.seq = self.next_seq;
        hdr.crc = 0;
        let frame = &mut buf[..need];
        hdr.encode_into(frame);
        if let Some(key) = &self.key {
            let (head, body) = frame.split_at_mut(FRAME_HEADER_LEN);
            let (payload, tag_out) = body.split_at_mut(len);
            let tag = key.seal(hdr.seq, &head[..CRC_OFFSET], payload);
            tag_out.copy_from_slice(&tag);
            let crc = frame_crc(frame);
            frame[CRC_OFFSET..FRAME_HEADER_LEN].copy_from_slice(&crc.to_le_bytes());
        }
        self.next_seq += 1;
        Ok(need)
    }

    /// Copies `payload` to `out[32..]` and seals it with [`Self::seal_in_place`];
    /// `hdr.payload_len` is taken from `payload.len()`. Returns the frame length.
    pub fn seal(
        &mut self,
        mut hdr: FrameHeader,
        payload: &[u8],
        out: &mut [u8],
    ) -> Result<usize, SealError> {
        let len = payload.len();
        if len > MAX_PAYLOAD {
            return Err(SealError::TooLong { len });
        }
        let need = self.frame_len(len);
        if out.len() < need {
            return Err(SealError::BufferTooSmall {
                need,
                have: out.len(),
            });
        }
        out[FRAME_HEADER_LEN..FRAME_HEADER_LEN + len].copy_from_slice(payload);
        // Cannot truncate: len <= MAX_PAYLOAD < u32::MAX.
        hdr.payload_len = len as u32;
        self.seal_in_place(hdr, out)
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{hdr, pair};
    use super::*;

    #[test]
    fn seal_in_place_matches_seal() {
        let (mut s1, _) = pair(true);
        let (mut s2, _) = pair(true);
        let payload = b"hello, in place";
        let mut a = vec![0u8; 100];
        let mut b = vec![0u8; 100];
        let n1 = s1.seal(hdr(), payload, &mut a).unwrap();
        b[32..32 + payload.len()].copy_from_slice(payload);
        let h = FrameHeader {
            payload_len: payload.len() as u32,
            ..hdr()
        };
        let n2 = s2.seal_in_place(h, &mut b).unwrap();
        assert_eq!(a[..n1], b[..n2]);
    }

    #[test]
    fn ciphertext_differs() {
        let payload = [0x41u8; 64];
        let (mut s, _) = pair(true);
        let mut buf = vec![0u8; 200];
        let n = s.seal(hdr(), &payload, &mut buf).unwrap();
        assert_ne!(&buf[32..96], &payload[..]);
        assert_ne!(u32::from_le_bytes(buf[28..32].try_into().unwrap()), 0);
        assert_eq!(n, 32 + 64 + 16);
        let (mut s, _) = pair(false);
        let n = s.seal(hdr(), &payload, &mut buf).unwrap();
        assert_eq!(&buf[32..96], &payload[..]);
        assert_eq!(n, 96);
    }

    #[test]
    fn seal_errors() {
        let (mut s, _) = pair(true);
        let mut small = [0u8; 40];
        assert_eq!(
            s.seal(hdr(), &[0; 8], &mut small),
            Err(SealError::BufferTooSmall { need: 56, have: 40 })
        );
        let h = FrameHeader {
            payload_len: MAX_PAYLOAD as u32 + 1,
            ..hdr()
        };
        assert_eq!(
            s.seal_in_place(h, &mut small),
            Err(SealError::TooLong {
                len: MAX_PAYLOAD + 1
            })
        );
        assert_eq!(s.next_seq(), 0);
    }
}
