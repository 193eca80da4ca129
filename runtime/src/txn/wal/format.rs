//! Byte layouts of the log file and the snapshot file, and their one
//! decoder each. All integers are little-endian; every decoder takes
//! untrusted bytes (a file from disk) and returns an error, never panics.
//!
//! Log file (`wal.log`): a 32-byte header, then records at 8-aligned offsets,
//! then zeros (space preallocated ahead of use).
//!
//! ```text
//!  log header (offset 0)
//!  offset  size  field
//!       0     8  magic       b"shmcWAL\0"
//!       8     4  version     u32, LOG_VERSION (1)
//!      12     4  header_len  u32, 32: the first record starts here
//!      16     8  base_lsn    u64, LSN of the first record in this file (>= 1)
//!      24     4  reserved    u32, 0
//!      28     4  crc         u32, CRC32C over bytes 0..28
//!
//!  record (at an 8-aligned offset >= 32)
//!  offset  size  field
//!       0     4  len         u32, 16 + payload length (0 here = end of log)
//!       4     4  crc         u32, CRC32C over len (4 bytes), lsn (8), payload
//!       8     8  lsn         u64, the header's base_lsn + the record's index
//!      16     n  payload     n = len - 16 <= MAX_PAYLOAD (16 MiB)
//!    16+n     p  padding     zeros up to the next multiple of 8
//!
//!  0               4               8                              16
//!  +---------------+---------------+-------------------------------+
//!  |      len      |      crc      |              lsn              |
//!  +---------------+---------------+-------------------------------+
//!  |                payload (len - 16) ...             | pad to 8  |
//!  +---------------------------------------------------+-----------+
//! ```
//!
//! Snapshot file (`snapshot`): the state as of every record below `next_lsn`.
//!
//! ```text
//!  offset  size  field
//!       0     8  magic       b"shmcSNP\0"
//!       8     4  version     u32, SNAPSHOT_VERSION (1)
//!      12     4  reserved    u32, 0
//!      16     8  next_lsn    u64, the LSN of the first record not in it (>= 1)
//!      24     8  len         u64, payload length; the file is 40 + len bytes
//!      32     4  crc         u32, CRC32C over bytes 0..32, then the payload
//!      36     4  reserved    u32, 0
//!      40   len  payload     opaque (the transaction server's state)
//! ```

/// Magic at offset 0 of the log file.
pub const LOG_MAGIC: [u8; 8] = *b"shmcWAL\0";
/// Magic at offset 0 of the snapshot file.
pub const SNAPSHOT_MAGIC: [u8; 8] = *b"shmcSNP\0";
/// The only log layout version this code reads and writes.
pub const LOG_VERSION: u32 = 1;
/// The only snapshot layout version this code reads and writes.
pub const SNAPSHOT_VERSION: u32 = 1;
/// Length of the log header; the first record starts here.
pub const LOG_HEADER_LEN: usize = 32;
/// Length of a record header (len, crc, lsn).
pub const RECORD_HEADER_LEN: usize = 16;
/// Length of the snapshot header.
pub const SNAPSHOT_HEADER_LEN: usize = 40;
/// LSNs (in headers and snapshots) stay below this, far from overflow.
pub const MAX_LSN: u64 = 1 << 62;
/// Largest record payload (16 MiB).
pub const MAX_PAYLOAD: usize = 16 << 20;

/// Why a header or a snapshot could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FormatError {
    /// Fewer bytes than the layout needs.
    #[error("truncated: {need} bytes needed, {have} present")]
    Truncated {
        /// Bytes the layout needs.
        need: u64,
        /// Bytes present.
        have: u64,
    },
    /// The magic is not ours.
    #[error("bad magic")]
    BadMagic,
    /// A layout version this code does not read.
    #[error("unsupported layout version {0}")]
    BadVersion(u32),
    /// A field out of its range.
    #[error("invalid field {0}")]
    BadField(&'static str),
    /// The checksum does not match.
    #[error("checksum mismatch")]
    BadCrc,
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[off..off + 4]);
    u32::from_le_bytes(a)
}

fn u64_at(b: &[u8], off: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[off..off + 8]);
    u64::from_le_bytes(a)
}

fn need(bytes: &[u8], len: usize) -> Result<(), FormatError> {
    if bytes.len() < len {
        return Err(FormatError::Truncated {
            need: len as u64,
            have: bytes.len() as u64,
        });
    }
    Ok(())
}

/// The log header: the LSN of the first record in the file.
pub fn encode_log_header(base_lsn: u64) -> [u8; LOG_HEADER_LEN] {
    let mut h = [0u8; LOG_HEADER_LEN];
    h[0..8].copy_from_slice(&LOG_MAGIC);
    h[8..12].copy_from_slice(&LOG_VERSION.to_le_bytes());
    h[12..16].copy_from_slice(&(LOG_HEADER_LEN as u32).to_le_bytes());
    h[16..24].copy_from_slice(&base_lsn.to_le_bytes());
    let crc = crc32c::crc32c(&h[..28]);
    h[28..32].copy_from_slice(&crc.to_le_bytes());
    h
}

/// Decode the log header from the file's first bytes; returns `base_lsn`.
pub fn decode_log_header(bytes: &[u8]) -> Result<u64, FormatError> {
    need(bytes, LOG_HEADER_LEN)?;
    let h = &bytes[..LOG_HEADER_LEN];
    if h[0..8] != LOG_MAGIC {
        return Err(FormatError::BadMagic);
    }
    if crc32c::crc32c(&h[..28]) != u32_at(h, 28) {
        return Err(FormatError::BadCrc);
    }
    let version = u32_at(h, 8);
    if version != LOG_VERSION {
        return Err(FormatError::BadVersion(version));
    }
    if u32_at(h, 12) as usize != LOG_HEADER_LEN {
        return Err(FormatError::BadField("header_len"));
    }
    if u32_at(h, 24) != 0 {
        return Err(FormatError::BadField("reserved"));
    }
    let base = u64_at(h, 16);
    if base == 0 || base >= MAX_LSN {
        return Err(FormatError::BadField("base_lsn"));
    }
    Ok(base)
}

/// Bytes a record with a payload of `payload_len` takes, padding included.
pub fn record_len(payload_len: usize) -> usize {
    (RECORD_HEADER_LEN + payload_len).div_ceil(8) * 8
}

fn record_crc(len: u32, lsn: u64, payload: &[u8]) -> u32 {
    let c = crc32c::crc32c(&len.to_le_bytes());
    let c = crc32c::crc32c_append(c, &lsn.to_le_bytes());
    crc32c::crc32c_append(c, payload)
}

/// Append the record (header, payload, padding) to `out`. The caller
/// bounds `payload` by [`MAX_PAYLOAD`].
pub fn encode_record(lsn: u64, payload: &[u8], out: &mut Vec<u8>) {
    debug_assert!(payload.len() <= MAX_PAYLOAD);
    let len = (RECORD_HEADER_LEN + payload.len()) as u32;
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&record_crc(len, lsn, payload).to_le_bytes());
    out.extend_from_slice(&lsn.to_le_bytes());
    out.extend_from_slice(payload);
    let pad = record_len(payload.len()) - RECORD_HEADER_LEN - payload.len();
    out.extend_from_slice(&[0u8; 8][..pad]);
}

/// What a record header says, before its payload is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordHead {
    /// `len` is zero: the end of the log (preallocated zeros).
    End,
    /// A record of `payload_len` bytes claiming `lsn`; check the payload
    /// with [`RecordHead::check`].
    Record {
        /// Payload length (at most [`MAX_PAYLOAD`]).
        payload_len: usize,
        /// Stored checksum.
        crc: u32,
        /// Stored LSN.
        lsn: u64,
    },
    /// `len` is out of range: corrupt.
    BadLen(u32),
}

impl RecordHead {
    /// Decode the 16 bytes of a record header.
    pub fn decode(h: &[u8; RECORD_HEADER_LEN]) -> RecordHead {
        let len = u32_at(h, 0);
        if len == 0 {
            return RecordHead::End;
        }
        let Some(payload_len) = (len as usize).checked_sub(RECORD_HEADER_LEN) else {
            return RecordHead::BadLen(len);
        };
        if payload_len > MAX_PAYLOAD {
            return RecordHead::BadLen(len);
        }
        RecordHead::Record {
            payload_len,
            crc: u32_at(h, 4),
            lsn: u64_at(h, 8),
        }
    }

    /// Whether `payload` is the one this header's checksum covers.
    pub fn check(&self, payload: &[u8]) -> bool {
        match *self {
            RecordHead::Record {
                payload_len,
                crc,
                lsn,
            } => {
                payload.len() == payload_len
                    && record_crc((RECORD_HEADER_LEN + payload_len) as u32, lsn, payload) == crc
            }
            _ => false,
        }
    }
}

/// The snapshot file's bytes.
pub fn encode_snapshot(next_lsn: u64, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(SNAPSHOT_HEADER_LEN + payload.len());
    out.extend_from_slice(&SNAPSHOT_MAGIC);
    out.extend_from_slice(&SNAPSHOT_VERSION.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&next_lsn.to_le_bytes());
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    let crc = crc32c::crc32c_append(crc32c::crc32c(&out), payload);
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// Decode a snapshot file: `(next_lsn, payload)`.
pub fn decode_snapshot(bytes: &[u8]) -> Result<(u64, &[u8]), FormatError> {
    need(bytes, SNAPSHOT_HEADER_LEN)?;
    if bytes[0..8] != SNAPSHOT_MAGIC {
        return Err(FormatError::BadMagic);
    }
    let version = u32_at(bytes, 8);
    if version != SNAPSHOT_VERSION {
        return Err(FormatError::BadVersion(version));
    }
    let len = u64_at(bytes, 24);
    let have = (bytes.len() - SNAPSHOT_HEADER_LEN) as u64;
    if len != have {
        return Err(FormatError::Truncated {
            need: len.saturating_add(SNAPSHOT_HEADER_LEN as u64),
            have: bytes.len() as u64,
        });
    }
    let payload = &bytes[SNAPSHOT_HEADER_LEN..];
    if crc32c::crc32c_append(crc32c::crc32c(&bytes[..32]), payload) != u32_at(bytes, 32) {
        return Err(FormatError::BadCrc);
    }
    let next_lsn = u64_at(bytes, 16);
    if u32_at(bytes, 12) != 0 || u32_at(bytes, 36) != 0 {
        return Err(FormatError::BadField("reserved"));
    }
    if next_lsn == 0 || next_lsn >= MAX_LSN {
        return Err(FormatError::BadField("next_lsn"));
    }
    Ok((next_lsn, payload))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn log_header_round_trips(base in 1u64..MAX_LSN) {
            prop_assert_eq!(decode_log_header(&encode_log_header(base)), Ok(base));
        }

        #[test]
        fn log_header_garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode_log_header(&bytes);
        }

        #[test]
        fn log_header_flipped_byte_is_rejected(base in 1u64.., at in 0usize..32, bit in 0u8..8) {
            let mut h = encode_log_header(base);
            h[at] ^= 1 << bit;
            prop_assert!(decode_log_header(&h).is_err());
        }

        #[test]
        fn record_round_trips(lsn in 1u64.., payload in proptest::collection::vec(any::<u8>(), 0..300)) {
            let mut out = Vec::new();
            encode_record(lsn, &payload, &mut out);
            prop_assert_eq!(out.len(), record_len(payload.len()));
            prop_assert_eq!(out.len() % 8, 0);
            let head = RecordHead::decode(out[..16].try_into().unwrap());
            prop_assert_eq!(head, RecordHead::Record { payload_len: payload.len(),
                crc: u32_at(&out, 4), lsn });
            prop_assert!(head.check(&out[16..16 + payload.len()]));
        }

        #[test]
        fn record_flipped_bit_fails_its_check(lsn in 1u64.., payload in proptest::collection::vec(any::<u8>(), 0..64),
                                               at in any::<prop::sample::Index>(), bit in 0u8..8) {
            let mut out = Vec::new();
            encode_record(lsn, &payload, &mut out);
            let end = 16 + payload.len();
            out[at.index(end)] ^= 1 << bit;
            let head = RecordHead::decode(out[..16].try_into().unwrap());
            let ok = match head {
                RecordHead::Record { payload_len, lsn: l, .. } => l == lsn && out.len() >= 16 + payload_len
                    && head.check(&out[16..16 + payload_len]),
                _ => false,
            };
            prop_assert!(!ok);
        }

        #[test]
        fn record_head_garbage_never_panics(h in any::<[u8; 16]>(), payload in proptest::collection::vec(any::<u8>(), 0..64)) {
            let head = RecordHead::decode(&h);
            let _ = head.check(&payload);
        }

        #[test]
        fn snapshot_round_trips(next in 1u64..MAX_LSN, payload in proptest::collection::vec(any::<u8>(), 0..300)) {
            let bytes = encode_snapshot(next, &payload);
            prop_assert_eq!(decode_snapshot(&bytes), Ok((next, &payload[..])));
        }

        #[test]
        fn snapshot_damage_is_rejected(next in 1u64.., payload in proptest::collection::vec(any::<u8>(), 0..64),
                                       at in any::<prop::sample::Index>(), bit in 0u8..8, cut in any::<prop::sample::Index>()) {
            let bytes = encode_snapshot(next, &payload);
            let mut flipped = bytes.clone();
            flipped[at.index(bytes.len())] ^= 1 << bit;
            prop_assert!(decode_snapshot(&flipped).is_err());
            prop_assert!(decode_snapshot(&bytes[..cut.index(bytes.len())]).is_err());
        }

        #[test]
        fn snapshot_garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..128)) {
            let _ = decode_snapshot(&bytes);
        }
    }
}
