//! What a transaction read, scanned and wants to write: the [`TxnSet`] a
//! commit carries, and its encoding (shared by log records, messages and
//! snapshots).
//!
//! Byte layout (all integers little-endian, `bytes` = `u32` length + bytes,
//! see [`super::codec`]):
//!
//! ```text
//! TxnSet     u32 nreads,  nreads  x ReadItem
//!            u32 nscans,  nscans  x ScanItem
//!            u32 nwrites, nwrites x WriteItem
//! ReadItem   u32 subfn | bytes key (<= 64 KiB) | u64 version
//! ScanItem   u32 subfn | bytes prefix (<= 64 KiB) | u32 limit
//!            | u32 nseen, nseen x (bytes key | u64 version)
//! WriteItem  u32 subfn | bytes key (<= 64 KiB) | u8 present (0 delete, 1 put)
//!            | bytes value (<= 1 MiB), only when present = 1
//! ```

use super::codec::{DecodeError, Reader, Writer, MAX_KEY, MAX_VALUE};

/// The version of a key: the commit that last wrote it; 0 = absent.
pub type Version = u64;

/// One entry of a scan: key, value, version.
pub type Entry = (Vec<u8>, Vec<u8>, Version);

/// A key a transaction read, with the version it saw (0: absent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadItem {
    /// The sub-function whose keyspace holds the key.
    pub subfn: u32,
    /// The key.
    pub key: Vec<u8>,
    /// The version seen.
    pub version: Version,
}

/// A prefix scan a transaction made and what it saw, in key order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanItem {
    /// The sub-function scanned.
    pub subfn: u32,
    /// The prefix.
    pub prefix: Vec<u8>,
    /// At most this many entries were asked for.
    pub limit: u32,
    /// The keys returned, with their versions, in key order.
    pub seen: Vec<(Vec<u8>, Version)>,
}

/// A key a transaction writes: `Some` puts the value, `None` deletes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteItem {
    /// The sub-function whose keyspace holds the key.
    pub subfn: u32,
    /// The key.
    pub key: Vec<u8>,
    /// The new value, or `None` to delete.
    pub value: Option<Vec<u8>>,
}

/// Everything a transaction commits: its reads and scans (validated) and
/// its writes (applied).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TxnSet {
    /// Keys read.
    pub reads: Vec<ReadItem>,
    /// Prefixes scanned.
    pub scans: Vec<ScanItem>,
    /// Keys written.
    pub writes: Vec<WriteItem>,
}

const MIN_READ: usize = 4 + 4 + 8;
const MIN_SCAN: usize = 4 + 4 + 4 + 4;
const MIN_SEEN: usize = 4 + 8;
const MIN_WRITE: usize = 4 + 4 + 1;
/// Fewest bytes an encoded [`TxnSet`] takes (three zero counts).
pub const MIN_SET: usize = 12;

impl TxnSet {
    /// Whether the set holds no item at all.
    pub fn is_empty(&self) -> bool {
        self.reads.is_empty() && self.scans.is_empty() && self.writes.is_empty()
    }

    /// Every sub-function the set touches, sorted, without duplicates.
    pub fn subfns(&self) -> Vec<u32> {
        let mut v: Vec<u32> = (self.reads.iter().map(|r| r.subfn))
            .chain(self.scans.iter().map(|s| s.subfn))
            .chain(self.writes.iter().map(|w| w.subfn))
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    /// The part of the set that touches sub-functions for which `keep`
    /// holds.
    pub fn filter(&self, mut keep: impl FnMut(u32) -> bool) -> TxnSet {
        TxnSet {
            reads: self
                .reads
                .iter()
                .filter(|r| keep(r.subfn))
                .cloned()
                .collect(),
            scans: self
                .scans
                .iter()
                .filter(|s| keep(s.subfn))
                .cloned()
                .collect(),
            writes: self
                .writes
                .iter()
                .filter(|w| keep(w.subfn))
                .cloned()
                .collect(),
        }
    }

    /// Checks the size bounds the decoders enforce (keys and prefixes <=
    /// 64 KiB, values <= 1 MiB), so that a set built from outside input is
    /// refused before it is logged or sent rather than after.
    pub fn check_limits(&self) -> Result<(), DecodeError> {
        let keys = (self.reads.iter().map(|r| &r.key))
            .chain(self.scans.iter().map(|s| &s.prefix))
            .chain(
                self.scans
                    .iter()
                    .flat_map(|s| s.seen.iter().map(|(k, _)| k)),
            )
            .chain(self.writes.iter().map(|w| &w.key));
        for k in keys {
            check_len(k.len(), MAX_KEY, "key")?;
        }
        for v in self.writes.iter().filter_map(|w| w.value.as_ref()) {
            check_len(v.len(), MAX_VALUE, "value")?;
        }
        Ok(())
    }

    /// Appends the set's encoding.
    pub fn encode_into(&self, w: &mut Writer) {
        w.count(self.reads.len());
        for r in &self.reads {
            w.u32(r.subfn);
            w.bytes(&r.key);
            w.u64(r.version);
        }
        w.count(self.scans.len());
        for s in &self.scans {
            w.u32(s.subfn);
            w.bytes(&s.prefix);
            w.u32(s.limit);
            w.count(s.seen.len());
            for (k, v) in &s.seen {
                w.bytes(k);
                w.u64(*v);
            }
        }
        encode_writes(&self.writes, w);
    }

    /// Reads a set (untrusted bytes).
    pub fn decode_from(r: &mut Reader<'_>) -> Result<TxnSet, DecodeError> {
        let n = r.count(MIN_READ, "reads")?;
        let mut reads = Vec::with_capacity(n);
        for _ in 0..n {
            reads.push(ReadItem {
                subfn: r.u32("read subfn")?,
                key: r.key("read key")?,
                version: r.u64("read version")?,
            });
        }
        let n = r.count(MIN_SCAN, "scans")?;
        let mut scans = Vec::with_capacity(n);
        for _ in 0..n {
            scans.push(decode_scan(r)?);
        }
        let writes = decode_writes(r)?;
        Ok(TxnSet {
            reads,
            scans,
            writes,
        })
    }
}

fn check_len(len: usize, max: usize, what: &'static str) -> Result<(), DecodeError> {
    if len > max {
        return Err(DecodeError::TooLong {
            what,
            len: len as u64,
            max: max as u64,
        });
    }
    Ok(())
}

fn decode_scan(r: &mut Reader<'_>) -> Result<ScanItem, DecodeError> {
    let subfn = r.u32("scan subfn")?;
    let prefix = r.key("scan prefix")?;
    let limit = r.u32("scan limit")?;
    let n = r.count(MIN_SEEN, "scanned keys")?;
    let mut seen = Vec::with_capacity(n);
    for _ in 0..n {
        seen.push((r.key("scanned key")?, r.u64("scanned version")?));
    }
    Ok(ScanItem {
        subfn,
        prefix,
        limit,
        seen,
    })
}

/// Appends a list of writes: `u32 n`, then n x WriteItem.
pub fn encode_writes(writes: &[WriteItem], w: &mut Writer) {
    w.count(writes.len());
    for x in writes {
        w.u32(x.subfn);
        w.bytes(&x.key);
        match &x.value {
            Some(v) => {
                w.u8(1);
                w.bytes(v);
            }
            None => w.u8(0),
        }
    }
}

/// Reads a list of writes (untrusted bytes).
pub fn decode_writes(r: &mut Reader<'_>) -> Result<Vec<WriteItem>, DecodeError> {
    let n = r.count(MIN_WRITE, "writes")?;
    let mut writes = Vec::with_capacity(n);
    for _ in 0..n {
        let subfn = r.u32("write subfn")?;
        let key = r.key("write key")?;
        let value = if r.bool("write present")? {
            Some(r.value("write value")?)
        } else {
            None
        };
        writes.push(WriteItem { subfn, key, value });
    }
    Ok(writes)
}
