//! Recovery's scan of the log: read records from the header on, keep those
//! that are valid and in LSN order, stop at the first that is not, and
//! measure what lies after it.
//!
//! A record is valid when its header is complete, its `len` is in range, the
//! whole record lies inside the file, its CRC32C matches, its padding is
//! zeros and its LSN is the one expected (the header's `base_lsn` plus its index). The first record
//! that is not valid ends the log: everything from its offset on is the cut.
//! A zero `len` is the normal end (preallocated zeros); bytes that are not
//! zero after the end (a torn or corrupt record, or sectors of an unsynced
//! write that reached the disk out of order) are the `cut_bytes`, and the
//! caller zeroes them durably before appending, so that no stale record can
//! ever line up behind a new one.

use super::format::{record_len, RecordHead, LOG_HEADER_LEN, RECORD_HEADER_LEN};
use crate::txn::storage::LogFile;
use std::io;

/// Why the scan stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Stop {
    /// A zero length or the end of the file: a clean end.
    End,
    /// The record runs past the end of the file (a torn append).
    Torn,
    /// A length out of range.
    BadLen,
    /// The checksum does not match.
    BadCrc,
    /// The padding after the payload is not zeros.
    BadPadding,
    /// A valid record with an LSN other than the one expected.
    WrongLsn,
}

/// The result of a scan.
#[derive(Debug)]
pub(super) struct Scan {
    /// `(lsn, payload)` of the valid records with `lsn >= keep_from`.
    pub records: Vec<(u64, Vec<u8>)>,
    /// Offset just after the last valid record: where appends continue.
    pub end: u64,
    /// LSN the next record would carry.
    pub next_lsn: u64,
    /// Why the scan stopped at `end`.
    pub stop: Stop,
    /// Offset just after the last byte that is not zero at or after `end`
    /// (`end` itself if there is none).
    pub dirty_end: u64,
}

/// Bytes read at a time.
const WINDOW: usize = 1 << 20;

/// A read-ahead window over a [`LogFile`].
struct Reader<'a, F> {
    file: &'a F,
    start: u64,
    buf: Vec<u8>,
}

impl<F: LogFile> Reader<'_, F> {
    /// Up to `len` bytes at `off` (fewer at the end of the file).
    fn get(&mut self, off: u64, len: usize) -> io::Result<&[u8]> {
        let inside = off >= self.start && off + len as u64 <= self.start + self.buf.len() as u64;
        if !inside {
            self.buf.resize(len.max(WINDOW), 0);
            let n = self.file.read_at(off, &mut self.buf)?;
            self.buf.truncate(n);
            self.start = off;
        }
        let from = (off - self.start) as usize;
        let to = (from + len).min(self.buf.len());
        Ok(&self.buf[from.min(to)..to])
    }
}

/// Scan the records of `file` (whose header says `base_lsn`), keeping those
/// with `lsn >= keep_from`.
pub(super) fn scan<F: LogFile>(file: &F, base_lsn: u64, keep_from: u64) -> io::Result<Scan> {
    let file_len = file.len()?;
    let mut rd = Reader {
        file,
        start: 0,
        buf: Vec::new(),
    };
    let mut off = LOG_HEADER_LEN as u64;
    let mut next_lsn = base_lsn;
    let mut records = Vec::new();
    let stop = loop {
        let head = rd.get(off, RECORD_HEADER_LEN)?;
        let Ok(head) = <&[u8; RECORD_HEADER_LEN]>::try_from(head) else {
            // A short header at the end of the file: zeros end the log,
            // anything else is the start of a torn record.
            break if head.iter().all(|&b| b == 0) {
                Stop::End
            } else {
                Stop::Torn
            };
        };
        let head = RecordHead::decode(head);
        let (payload_len, lsn) = match head {
            RecordHead::End => break Stop::End,
            RecordHead::BadLen(_) => break Stop::BadLen,
            RecordHead::Record {
                payload_len, lsn, ..
            } => (payload_len, lsn),
        };
        let total = record_len(payload_len) as u64;
        if off + total > file_len {
            break Stop::Torn;
        }
        let body = rd.get(
            off + RECORD_HEADER_LEN as u64,
            total as usize - RECORD_HEADER_LEN,
        )?;
        let (payload, pad) = body.split_at(payload_len.min(body.len()));
        if !head.check(payload) {
            break Stop::BadCrc;
        }
        if pad.iter().any(|&b| b != 0) {
            break Stop::BadPadding;
        }
        let (true, Some(after)) = (lsn == next_lsn, next_lsn.checked_add(1)) else {
            break Stop::WrongLsn;
        };
        if lsn >= keep_from {
            records.push((lsn, payload.to_vec()));
        }
        next_lsn = after;
        off += total;
    };
    let dirty_end = last_nonzero_end(&mut rd, off, file_len)?;
    Ok(Scan {
        records,
        end: off,
        next_lsn,
        stop,
        dirty_end,
    })
}

/// Offset just after the last non-zero byte in `from..to`, or `from`.
fn last_nonzero_end<F: LogFile>(rd: &mut Reader<'_, F>, from: u64, to: u64) -> io::Result<u64> {
    let mut dirty = from;
    let mut off = from;
    while off < to {
        let len = WINDOW.min((to - off) as usize);
        let chunk = rd.get(off, len)?;
        if chunk.is_empty() {
            break;
        }
        if let Some(i) = chunk.iter().rposition(|&b| b != 0) {
            dirty = off + i as u64 + 1;
        }
        off += chunk.len() as u64;
    }
    Ok(dirty)
}
