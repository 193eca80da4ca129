//! Snapshots of a [`Store`]: the whole store (a checkpoint: every keyspace
//! and the prepared transactions), or one sub-function's keyspace (to move
//! it to another manager). Both are untrusted when read back (a file on
//! disk, bytes from another process): the decoders check the checksum,
//! every bound and every rule, and never panic.
//!
//! All integers little-endian; `bytes` = `u32` length + bytes (see
//! [`super::codec`]); a set is laid out as in [`super::set`].
//!
//! ```text
//! Store snapshot                    Sub-function snapshot
//!  off size                          off size
//!    0    8  magic "SHMCTXST"          0    8  magic "SHMCTXSF"
//!    8    4  format u32 = 1            8    4  format u32 = 1
//!   12    8  max_version u64          12    8  max_version u64 (the store's)
//!   20    4  nsections u32            20    -  one Section
//!   24    -  nsections x Section       -    4  crc32c of every byte before
//!    -    4  nprepared u32
//!    -    -  nprepared x (u64 txid | TxnSet)
//!    -    4  crc32c of every byte before
//!
//! Section (byte-identical in both, so one can be cut out of a checkpoint)
//!    0    4  subfn u32            (strictly increasing between sections)
//!    4    8  body_len u64         (bytes of the rest of the section)
//!   12    8  nkeys u64
//!   20    -  nkeys x (bytes key (<= 64 KiB) | bytes value (<= 1 MiB)
//!                     | u64 version (1..=max_version))
//!            keys strictly increasing
//! ```
//!
//! Prepared transactions are listed by strictly increasing txid, touch
//! only sub-functions of the snapshot, and must not clash with one
//! another's locks.

use super::codec::{DecodeError, Reader, Writer};
use super::set::{TxnSet, Version, MIN_SET};
use super::store::{Keyspace, Store};

const MAGIC_STORE: &[u8; 8] = b"SHMCTXST";
const MAGIC_SUBFN: &[u8; 8] = b"SHMCTXSF";
const FORMAT: u32 = 1;
const MIN_SECTION: usize = 4 + 8 + 8;
const MIN_ENTRY: usize = 4 + 4 + 8;

fn header(w: &mut Writer, magic: &[u8; 8], max_version: Version) {
    w.raw(magic);
    w.u32(FORMAT);
    w.u64(max_version);
}

fn seal(w: Writer) -> Vec<u8> {
    let mut b = w.finish();
    let crc = crc32c::crc32c(&b);
    b.extend_from_slice(&crc.to_le_bytes());
    b
}

fn encode_section(w: &mut Writer, subfn: u32, space: &Keyspace) {
    w.u32(subfn);
    let len_at = w.len();
    w.u64(0);
    let start = w.len();
    w.u64(space.len() as u64);
    for (k, (v, ver)) in space {
        w.bytes(k);
        w.bytes(v);
        w.u64(*ver);
    }
    let body_len = (w.len() - start) as u64;
    w.patch_u64(len_at, body_len);
}

/// Checks the CRC and the header; returns a reader over what follows the
/// header (without the CRC) and the max version.
fn open<'a>(
    bytes: &'a [u8],
    magic: &[u8; 8],
    what: &'static str,
) -> Result<(Reader<'a>, Version), DecodeError> {
    let split = bytes
        .len()
        .checked_sub(4)
        .ok_or(DecodeError::Truncated { what })?;
    let (body, crc) = bytes.split_at(split);
    let mut r = Reader::new(body);
    if r.take(8, what)? != magic {
        return Err(DecodeError::BadMagic { what });
    }
    let stored = u32::from_le_bytes(
        crc.try_into()
            .map_err(|_| DecodeError::Truncated { what })?,
    );
    let computed = crc32c::crc32c(body);
    if stored != computed {
        return Err(DecodeError::Checksum { stored, computed });
    }
    let version = r.u32("format version")?;
    if version != FORMAT {
        return Err(DecodeError::BadVersion { what, version });
    }
    let max_version = r.u64("max version")?;
    Ok((r, max_version))
}

fn decode_section(
    r: &mut Reader<'_>,
    max_version: Version,
) -> Result<(u32, Keyspace), DecodeError> {
    let subfn = r.u32("section subfn")?;
    let len = r.u64("section length")?;
    let len = usize::try_from(len).map_err(|_| DecodeError::Truncated { what: "section" })?;
    let mut body = Reader::new(r.take(len, "section")?);
    let n = body.count64(MIN_ENTRY, "keys")?;
    let mut space = Keyspace::new();
    let mut last: Option<Vec<u8>> = None;
    for _ in 0..n {
        let key = body.key("key")?;
        let value = body.value("value")?;
        let version = body.u64("version")?;
        if version == 0 || version > max_version {
            return Err(DecodeError::Invalid("key version out of 1..=max_version"));
        }
        if last.as_ref().is_some_and(|l| *l >= key) {
            return Err(DecodeError::Invalid(
                "keys not in strictly increasing order",
            ));
        }
        last = Some(key.clone());
        space.insert(key, (value, version));
    }
    body.end()?;
    Ok((subfn, space))
}

fn decode_prepared(r: &mut Reader<'_>, store: &mut Store) -> Result<(), DecodeError> {
    let n = r.count(8 + MIN_SET, "prepared transactions")?;
    let mut last = None;
    for _ in 0..n {
        let txid = r.u64("txid")?;
        if last.is_some_and(|l| l >= txid) {
            return Err(DecodeError::Invalid(
                "prepared txids not strictly increasing",
            ));
        }
        last = Some(txid);
        let set = TxnSet::decode_from(r)?;
        if set.subfns().iter().any(|s| !store.hosts(*s)) {
            return Err(DecodeError::Invalid(
                "prepared set touches a sub-function not in the snapshot",
            ));
        }
        if store.locks.check(txid, &set).is_err() {
            return Err(DecodeError::Invalid("prepared transactions clash"));
        }
        store.restore_prepared(txid, set);
    }
    Ok(())
}

impl Store {
    /// Every keyspace, one section per sub-function (so that one can be cut
    /// out and moved), and the prepared transactions with their sets.
    pub fn encode_snapshot(&self) -> Vec<u8> {
        let mut w = Writer::new();
        header(&mut w, MAGIC_STORE, self.max_version);
        w.count(self.spaces.len());
        for (subfn, space) in &self.spaces {
            encode_section(&mut w, *subfn, space);
        }
        let prepared = self.prepared();
        w.count(prepared.len());
        for (txid, set) in &prepared {
            w.u64(*txid);
            set.encode_into(&mut w);
        }
        seal(w)
    }

    /// Reads a snapshot written by [`Store::encode_snapshot`] (untrusted
    /// bytes).
    pub fn decode_snapshot(bytes: &[u8]) -> Result<Store, DecodeError> {
        let (mut r, max_version) = open(bytes, MAGIC_STORE, "store snapshot")?;
        let mut store = Store {
            max_version,
            ..Store::default()
        };
        let n = r.count(MIN_SECTION, "sections")?;
        for _ in 0..n {
            let (subfn, space) = decode_section(&mut r, max_version)?;
            if store
                .spaces
                .last_key_value()
                .is_some_and(|(l, _)| *l >= subfn)
            {
                return Err(DecodeError::Invalid(
                    "sections not in strictly increasing order",
                ));
            }
            store.spaces.insert(subfn, space);
        }
        decode_prepared(&mut r, &mut store)?;
        r.end()?;
        Ok(store)
    }

    /// `subfn`'s keyspace alone (empty if not hosted), with this store's
    /// max version, to be loaded by another store with
    /// [`Store::load_subfn`]. Prepared transactions are not included:
    /// decide them first ([`Store::unhost`] refuses until then).
    pub fn snapshot_of(&self, subfn: u32) -> Vec<u8> {
        let mut w = Writer::new();
        header(&mut w, MAGIC_SUBFN, self.max_version);
        let empty = Keyspace::new();
        encode_section(&mut w, subfn, self.spaces.get(&subfn).unwrap_or(&empty));
        seal(w)
    }

    /// Hosts the sub-function in `bytes` (from [`Store::snapshot_of`];
    /// untrusted), replacing its keyspace if it was hosted already, and
    /// raises the max version to the source's (so the commit counter
    /// stays above every version a reader may have seen). Returns the
    /// sub-function. Nothing changes on error.
    pub fn load_subfn(&mut self, bytes: &[u8]) -> Result<u32, DecodeError> {
        let (mut r, max_version) = open(bytes, MAGIC_SUBFN, "sub-function snapshot")?;
        let (subfn, space) = decode_section(&mut r, max_version)?;
        r.end()?;
        if self.locks.holder_in(subfn).is_some() {
            return Err(DecodeError::Invalid(
                "a prepared transaction holds keys of the sub-function",
            ));
        }
        self.spaces.insert(subfn, space);
        self.max_version = self.max_version.max(max_version);
        Ok(subfn)
    }
}
