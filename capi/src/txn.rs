//! Transactions: begin, get, put, delete, scan, commit (waiting, or
//! pipelined: commit_async, then poll or wait), abort.
//!
//! A transaction and a pending commit are ids (`shmc_txn`, `shmc_commit`,
//! never 0, never reused) that belong to the LP handle: an id that is not
//! open on the handle (never issued, already committed or aborted, an
//! outcome already taken) is `SHMC_ERR_NO_SUCH_ID`, never undefined
//! behaviour. Closing the handle aborts its open transactions.
//!
//! Isolation is serializable (see the README): `SHMC_ERR_CONFLICT` at
//! commit means nothing was applied and the transaction should be run
//! again from `shmc_txn_begin`.
//!
//! Thread-safety: as every function with an LP handle, only on the thread
//! that connected it (`SHMC_ERR_WRONG_THREAD` otherwise).

use crate::args::{bytes_arg, free_bytes, give_bytes, out_arg, str_arg};
use crate::handle::{with_lp, Open, ShmcLp};
use crate::status::{guard, Error, ShmcStatus};
use shmcollab_runtime::{OwnedTxn, TxnError};
use std::ffi::c_char;
use std::time::Duration;

/// An open transaction of an LP handle (0 is never one).
pub type ShmcTxn = u64;
/// A commit on its way (`shmc_txn_commit_async`; 0 is never one).
pub type ShmcCommit = u64;

/// Bytes the library owns until `shmc_bytes_free` (`shmc_bytes` in C).
/// The struct is the caller's; zero it before first use.
#[repr(C)]
#[derive(Debug)]
pub struct ShmcBytes {
    /// The bytes (null when `len` is 0).
    pub data: *mut u8,
    /// How many.
    pub len: usize,
}

/// A key and its value, both owned by the `shmc_entries` they are in.
#[repr(C)]
#[derive(Debug)]
pub struct ShmcEntry {
    /// The key.
    pub key: ShmcBytes,
    /// Its value.
    pub value: ShmcBytes,
}

/// What a scan found (`shmc_entries` in C): `count` entries in key order,
/// owned by the library until `shmc_entries_free`. The struct is the
/// caller's; zero it before first use.
#[repr(C)]
#[derive(Debug)]
pub struct ShmcEntries {
    /// The entries (null when `count` is 0).
    pub items: *mut ShmcEntry,
    /// How many.
    pub count: usize,
}

fn no_such(what: &str, id: u64) -> Error {
    Error::new(
        ShmcStatus::SHMC_ERR_NO_SUCH_ID,
        format!("no {what} {id} is open on this LP handle"),
    )
}

/// The handle of the open commit `commit` of `o`.
fn commit_handle(o: &Open, commit: u64) -> Result<shmcollab_runtime::CommitHandle, Error> {
    o.commits
        .get(&commit)
        .copied()
        .ok_or_else(|| no_such("commit", commit))
}

/// The outcome of commit `commit` is known: forget its id and hand the
/// version to `version` (if not null).
///
/// # Safety
/// `version` null or writable.
unsafe fn settle(
    o: &mut Open,
    commit: u64,
    r: Result<u64, TxnError>,
    version: *mut u64,
) -> Result<(), Error> {
    o.commits.remove(&commit);
    let v = r?;
    // SAFETY: per the contract.
    if let Some(out) = unsafe { version.as_mut() } {
        *out = v;
    }
    Ok(())
}

/// The open transaction `id` of `o`, taken out while `f` runs (so that `f`
/// may use the LP), and put back afterwards, whatever `f` returned.
fn with_txn<T>(
    o: &mut Open,
    id: ShmcTxn,
    f: impl FnOnce(&mut OwnedTxn, &mut Open) -> Result<T, TxnError>,
) -> Result<T, Error> {
    let mut t = o
        .txns
        .remove(&id)
        .ok_or_else(|| no_such("transaction", id))?;
    let r = f(&mut t, o);
    o.txns.insert(id, t);
    r.map_err(Error::from)
}

/// Starts a transaction; its id goes to `*out`.
///
/// Thread-safety: only on the thread that connected `lp`
/// (`SHMC_ERR_WRONG_THREAD` elsewhere).
///
/// # Safety
/// `lp` null or from `shmc_connect`; `out` null or writable.
#[no_mangle]
pub unsafe extern "C" fn shmc_txn_begin(lp: *mut ShmcLp, out: *mut ShmcTxn) -> ShmcStatus {
    // SAFETY: forwarded contract.
    unsafe {
        with_lp(lp, |o| {
            let out = out_arg(out, "out")?;
            let id = o.next_id();
            o.txns.insert(id, OwnedTxn::new());
            *out = id;
            Ok(())
        })
    }
}

/// Reads `key` of sub-function `subfn` in transaction `txn`: `*found` is
/// 1 and `*value` the value if the key exists, else `*found` is 0 and
/// `*value` empty. Free `*value` with `shmc_bytes_free` (it is overwritten
/// here). The transaction stays open whatever the outcome.
///
/// Thread-safety: only on the thread that connected `lp`
/// (`SHMC_ERR_WRONG_THREAD` elsewhere).
///
/// # Safety
/// `lp` null or from `shmc_connect`; `subfn` null or NUL-terminated; `key`
/// null or readable for `key_len` bytes; `value` and `found` null or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn shmc_txn_get(
    lp: *mut ShmcLp,
    txn: ShmcTxn,
    subfn: *const c_char,
    key: *const u8,
    key_len: usize,
    value: *mut ShmcBytes,
    found: *mut i32,
) -> ShmcStatus {
    // SAFETY: forwarded contract.
    unsafe {
        with_lp(lp, |o| {
            let value = out_arg(value, "value")?;
            let found = out_arg(found, "found")?;
            *value = ShmcBytes::empty();
            *found = 0;
            let subfn = str_arg(subfn, "subfn")?;
            let key = bytes_arg(key, key_len, "key")?;
            if let Some(v) = with_txn(o, txn, |t, o| t.get(&mut o.lp, subfn, key))? {
                *value = ShmcBytes::give(v);
                *found = 1;
            }
            Ok(())
        })
    }
}

/// Sets `key` of `subfn` to the `value_len` bytes at `value`, at commit.
///
/// Thread-safety: only on the thread that connected `lp`
/// (`SHMC_ERR_WRONG_THREAD` elsewhere).
///
/// # Safety
/// `lp` null or from `shmc_connect`; `subfn` null or NUL-terminated; `key`
/// and `value` null or readable for their lengths.
#[no_mangle]
pub unsafe extern "C" fn shmc_txn_put(
    lp: *mut ShmcLp,
    txn: ShmcTxn,
    subfn: *const c_char,
    key: *const u8,
    key_len: usize,
    value: *const u8,
    value_len: usize,
) -> ShmcStatus {
    // SAFETY: forwarded contract.
    unsafe {
        with_lp(lp, |o| {
            let subfn = str_arg(subfn, "subfn")?;
            let key = bytes_arg(key, key_len, "key")?;
            let value = bytes_arg(value, value_len, "value")?;
            with_txn(o, txn, |t, o| t.put(&o.lp, subfn, key, value))
        })
    }
}

/// Removes `key` from `subfn`, at commit.
///
/// Thread-safety: only on the thread that connected `lp`
/// (`SHMC_ERR_WRONG_THREAD` elsewhere).
///
/// # Safety
/// `lp` null or from `shmc_connect`; `subfn` null or NUL-terminated; `key`
/// null or readable for `key_len` bytes.
#[no_mangle]
pub unsafe extern "C" fn shmc_txn_delete(
    lp: *mut ShmcLp,
    txn: ShmcTxn,
    subfn: *const c_char,
    key: *const u8,
    key_len: usize,
) -> ShmcStatus {
    // SAFETY: forwarded contract.
    unsafe {
        with_lp(lp, |o| {
            let subfn = str_arg(subfn, "subfn")?;
            let key = bytes_arg(key, key_len, "key")?;
            with_txn(o, txn, |t, o| t.delete(&o.lp, subfn, key))
        })
    }
}

/// The keys of `subfn` that start with the `prefix_len` bytes at `prefix`
/// (at most `limit` from the host), with their values, in key order, this
/// transaction's own writes included; into `*out` (overwritten; free it
/// with `shmc_entries_free`).
///
/// Thread-safety: only on the thread that connected `lp`
/// (`SHMC_ERR_WRONG_THREAD` elsewhere).
///
/// # Safety
/// `lp` null or from `shmc_connect`; `subfn` null or NUL-terminated;
/// `prefix` null or readable for `prefix_len` bytes; `out` null or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn shmc_txn_scan(
    lp: *mut ShmcLp,
    txn: ShmcTxn,
    subfn: *const c_char,
    prefix: *const u8,
    prefix_len: usize,
    limit: u32,
    out: *mut ShmcEntries,
) -> ShmcStatus {
    // SAFETY: forwarded contract.
    unsafe {
        with_lp(lp, |o| {
            let out = out_arg(out, "out")?;
            *out = ShmcEntries {
                items: std::ptr::null_mut(),
                count: 0,
            };
            let subfn = str_arg(subfn, "subfn")?;
            let prefix = bytes_arg(prefix, prefix_len, "prefix")?;
            let kvs = with_txn(o, txn, |t, o| {
                t.scan_prefix(&mut o.lp, subfn, prefix, limit)
            })?;
            let items: Box<[ShmcEntry]> = kvs
                .into_iter()
                .map(|(k, v)| ShmcEntry {
                    key: ShmcBytes::give(k),
                    value: ShmcBytes::give(v),
                })
                .collect();
            out.count = items.len();
            if !items.is_empty() {
                out.items = Box::into_raw(items).cast::<ShmcEntry>();
            }
            Ok(())
        })
    }
}

/// Commits transaction `txn` and waits until it is durable; its version
/// goes to `*version` (may be null). The id is gone afterwards, whatever
/// the outcome: on `SHMC_ERR_CONFLICT` begin again.
///
/// Thread-safety: only on the thread that connected `lp`
/// (`SHMC_ERR_WRONG_THREAD` elsewhere).
///
/// # Safety
/// `lp` null or from `shmc_connect`; `version` null or writable.
#[no_mangle]
pub unsafe extern "C" fn shmc_txn_commit(
    lp: *mut ShmcLp,
    txn: ShmcTxn,
    version: *mut u64,
) -> ShmcStatus {
    // SAFETY: forwarded contract.
    unsafe {
        with_lp(lp, |o| {
            let t = o
                .txns
                .remove(&txn)
                .ok_or_else(|| no_such("transaction", txn))?;
            let v = t.commit(&mut o.lp)?;
            if let Some(out) = version.as_mut() {
                *out = v;
            }
            Ok(())
        })
    }
}

/// Hands transaction `txn` to the manager and returns at once (pipelined
/// commits: many may be in flight); `*out` gets the commit's id for
/// `shmc_commit_poll` / `shmc_commit_wait`. The transaction id is gone
/// afterwards.
///
/// Thread-safety: only on the thread that connected `lp`
/// (`SHMC_ERR_WRONG_THREAD` elsewhere).
///
/// # Safety
/// `lp` null or from `shmc_connect`; `out` null or writable.
#[no_mangle]
pub unsafe extern "C" fn shmc_txn_commit_async(
    lp: *mut ShmcLp,
    txn: ShmcTxn,
    out: *mut ShmcCommit,
) -> ShmcStatus {
    // SAFETY: forwarded contract.
    unsafe {
        with_lp(lp, |o| {
            let out = out_arg(out, "out")?;
            *out = 0;
            let t = o
                .txns
                .remove(&txn)
                .ok_or_else(|| no_such("transaction", txn))?;
            let h = t.commit_async(&mut o.lp)?;
            let id = o.next_id();
            o.commits.insert(id, h);
            *out = id;
            Ok(())
        })
    }
}

/// Aborts transaction `txn`: nothing of it is applied; the id is gone.
///
/// Thread-safety: only on the thread that connected `lp`
/// (`SHMC_ERR_WRONG_THREAD` elsewhere).
///
/// # Safety
/// `lp` null or from `shmc_connect`.
#[no_mangle]
pub unsafe extern "C" fn shmc_txn_abort(lp: *mut ShmcLp, txn: ShmcTxn) -> ShmcStatus {
    // SAFETY: forwarded contract.
    unsafe {
        with_lp(lp, |o| {
            let t = o
                .txns
                .remove(&txn)
                .ok_or_else(|| no_such("transaction", txn))?;
            t.abort();
            Ok(())
        })
    }
}

/// The outcome of commit `commit` without waiting: `SHMC_ERR_PENDING` if
/// not known yet (the id stays); else the outcome (`SHMC_OK` with the
/// version in `*version`, which may be null, or the commit's error) and
/// the id is gone.
///
/// Thread-safety: only on the thread that connected `lp`
/// (`SHMC_ERR_WRONG_THREAD` elsewhere).
///
/// # Safety
/// `lp` null or from `shmc_connect`; `version` null or writable.
#[no_mangle]
pub unsafe extern "C" fn shmc_commit_poll(
    lp: *mut ShmcLp,
    commit: ShmcCommit,
    version: *mut u64,
) -> ShmcStatus {
    // SAFETY: forwarded contract.
    unsafe {
        with_lp(lp, |o| {
            let h = commit_handle(o, commit)?;
            match o.lp.poll_commit(&h) {
                None => Err(Error::new(
                    ShmcStatus::SHMC_ERR_PENDING,
                    "the commit's outcome is not known yet",
                )),
                Some(r) => settle(o, commit, r, version),
            }
        })
    }
}

/// Waits up to `timeout_ms` for the outcome of commit `commit`: as
/// `shmc_commit_poll`, but `SHMC_ERR_TIMEOUT` (the id stays) when nothing
/// is known by then.
///
/// Thread-safety: only on the thread that connected `lp`
/// (`SHMC_ERR_WRONG_THREAD` elsewhere).
///
/// # Safety
/// `lp` null or from `shmc_connect`; `version` null or writable.
#[no_mangle]
pub unsafe extern "C" fn shmc_commit_wait(
    lp: *mut ShmcLp,
    commit: ShmcCommit,
    timeout_ms: u64,
    version: *mut u64,
) -> ShmcStatus {
    // SAFETY: forwarded contract.
    unsafe {
        with_lp(lp, |o| {
            let h = commit_handle(o, commit)?;
            match o.lp.wait_commit(h, Duration::from_millis(timeout_ms)) {
                Err(TxnError::Timeout) => Err(Error::from(TxnError::Timeout)),
                r => settle(o, commit, r, version),
            }
        })
    }
}

impl ShmcBytes {
    fn empty() -> ShmcBytes {
        ShmcBytes {
            data: std::ptr::null_mut(),
            len: 0,
        }
    }

    fn give(v: Vec<u8>) -> ShmcBytes {
        let (data, len) = give_bytes(v);
        ShmcBytes { data, len }
    }

    /// Frees the bytes and empties `self`.
    ///
    /// # Safety
    /// `self` was filled by the library (or is empty) and not changed
    /// since.
    unsafe fn free(&mut self) {
        let (p, len) = (self.data, self.len);
        *self = ShmcBytes::empty();
        // SAFETY: (p, len) came from `give_bytes` and was not freed: the
        // fields are reset on every free.
        unsafe { free_bytes(p, len) };
    }
}

/// Frees the bytes of `b` and empties it (a second free does nothing).
///
/// Thread-safety: any thread.
///
/// # Safety
/// `b` is null or filled by this library (or zeroed), not changed by the
/// caller since.
#[no_mangle]
pub unsafe extern "C" fn shmc_bytes_free(b: *mut ShmcBytes) -> ShmcStatus {
    guard(|| {
        // SAFETY: null or writable, by this function's contract.
        let b = unsafe { out_arg(b, "b") }?;
        // SAFETY: filled by the library or empty, by the contract.
        unsafe { b.free() };
        Ok(())
    })
}

/// Frees what a scan stored in `e` and empties it (a second free does
/// nothing).
///
/// Thread-safety: any thread.
///
/// # Safety
/// `e` is null or filled by `shmc_txn_scan` (or zeroed), not changed by the
/// caller since.
#[no_mangle]
pub unsafe extern "C" fn shmc_entries_free(e: *mut ShmcEntries) -> ShmcStatus {
    guard(|| {
        // SAFETY: null or writable, by this function's contract.
        let e = unsafe { out_arg(e, "e") }?;
        let (p, n) = (e.items, e.count);
        e.items = std::ptr::null_mut();
        e.count = 0;
        if p.is_null() {
            return Ok(());
        }
        // SAFETY: (p, n) is the boxed slice `shmc_txn_scan` leaked, freed
        // once (the fields were reset above).
        let mut items = unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(p, n)) };
        for it in items.iter_mut() {
            // SAFETY: each was filled by `ShmcBytes::give` in the scan.
            unsafe {
                it.key.free();
                it.value.free();
            }
        }
        Ok(())
    })
}
