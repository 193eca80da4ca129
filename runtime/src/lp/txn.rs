//! Transactions, the LP's side: a [`Txn`] buffers its writes, asks the
//! hosting managers for what it reads (and remembers the versions it saw),
//! and at commit hands the whole set to its own manager, which commits it
//! at the host (one manager) or by two-phase commit (several) and answers
//! once the commit is durable. Isolation is serializable: the reads and
//! scans are validated at commit; a transaction that saw something that
//! changed since fails with [`TxnError::Conflict`], and
//! [`Lp::transaction`] runs it again.
//!
//! A read of a key whose last committed write was this LP's own is served
//! from the LP's memory, without a round trip to the host: an increment of
//! an LP's own counter is one round trip (the commit) instead of two. The
//! memory is filled only from acknowledged commits at one host (whose
//! answer says every write carries its version), with the keys they read
//! and wrote (a blind write of another key is not followed), each read from it goes
//! into the read set with the remembered version and is validated by the
//! host at commit like any read (read-only transactions included), a stale
//! one is refused as a conflict and the retry reads from the host; a read
//! takes its entry out of memory until its transaction commits, so an
//! aborted or failed transaction leaves none of what it read. Bounded:
//! [`super::MEMORY_ENTRIES`] keys, [`super::MEMORY_BYTES`] bytes. The rules:
//! `txn_memory.rs`. The cost: a key that other LPs write as well costs one
//! refused commit each time the memory of it is stale.
//!
//! ```no_run
//! # let mut lp = shmcollab_runtime::Lp::connect()?;
//! lp.transaction(|t| {
//!     let a = t.get("account/0", b"balance")?.map_or(0, |v| u64::from_le_bytes(v.try_into().unwrap()));
//!     t.put("account/0", b"balance", &(a + 1).to_le_bytes())?;
//!     Ok(())
//! })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use super::txn_memory::{Recalled, Settled, TxnMemoryStats};
use super::{Lp, LpError};
use crate::link::Wait;
use crate::txn::msg::{TxnReply, TxnRequest};
use crate::txn::store::{ReadItem, ScanItem, TxnSet, Version, WriteItem};
use crate::wire::FLAG_MANAGER;
use shmcollab_shm::frame::{kind, FrameHeader};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// A key and its value.
pub type KeyValue = (Vec<u8>, Vec<u8>);

/// How often [`Lp::transaction`] runs a closure that keeps conflicting.
pub const MAX_ATTEMPTS: u32 = 32;

/// How long a transaction step waits for its manager by default.
const STEP_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a transaction did not commit.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TxnError {
    /// Something it read changed before it committed (run it again).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The commit failed and nothing of it was applied (full disk, I/O
    /// error, a sub-function nobody hosts, ...).
    #[error("commit failed: {0}")]
    Failed(String),
    /// No answer in time: the outcome is unknown (a manager may have died;
    /// a commit that was not acknowledged may or may not be there).
    #[error("no answer from the transaction server in time")]
    Timeout,
    /// No sub-function of that name.
    #[error("no sub-function named {0:?}")]
    UnknownSubfn(String),
    /// The answer did not decode.
    #[error("bad answer from the transaction server: {0}")]
    BadReply(String),
    /// Talking to the manager failed.
    #[error(transparent)]
    Lp(#[from] LpError),
}

/// A commit on its way: ask [`Lp::poll_commit`] or [`Lp::wait_commit`]
/// whether it is durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "a commit's outcome is only known through its handle"]
pub struct CommitHandle {
    corr: u32,
}

/// A transaction in progress. Writes stay here until commit; reads see
/// them (read your own writes).
pub struct Txn<'a> {
    lp: &'a mut Lp,
    state: OwnedTxn,
}

/// A transaction that does not borrow its [`Lp`]: what [`Txn`] holds, with
/// the `Lp` handed to each call instead. For bindings that keep the LP and
/// its open transactions side by side (the C ABI); Rust code uses [`Txn`].
///
/// Use it with the `Lp` it was begun for: it names sub-functions by that
/// LP's plan. Dropping it is an abort.
#[derive(Debug, Default)]
pub struct OwnedTxn {
    set: TxnSet,
    writes: BTreeMap<(u32, Vec<u8>), Option<Vec<u8>>>,
    /// Reads served from the LP's memory (`txn_memory.rs`): back into it
    /// if this transaction commits.
    recalled: Vec<Recalled>,
}

impl Lp {
    /// Start a transaction.
    pub fn begin(&mut self) -> Txn<'_> {
        Txn {
            lp: self,
            state: OwnedTxn::default(),
        }
    }

    /// Run `f` in a transaction and commit it; on a conflict run it again,
    /// up to [`MAX_ATTEMPTS`] times. Returns what `f` returned once the
    /// commit is durable.
    pub fn transaction<T>(
        &mut self,
        mut f: impl FnMut(&mut Txn<'_>) -> Result<T, TxnError>,
    ) -> Result<T, TxnError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let stale = self.txn_memory.stats().stale;
            let mut t = self.begin();
            let out = f(&mut t).and_then(|v| t.commit().map(|_| v));
            match out {
                Err(TxnError::Conflict(_)) if attempt < MAX_ATTEMPTS => {
                    // A stale memory (another LP wrote a key since this
                    // one did) is not contention: the retry reads from the
                    // host at once. Else let the other side finish: a
                    // short, growing pause.
                    if self.txn_memory.stats().stale == stale {
                        std::thread::sleep(Duration::from_micros(20 << attempt.min(8)));
                    }
                }
                other => return other,
            }
        }
    }

    /// The outcome of a commit, if it is known: `Some(Ok(version))` once it
    /// is durable.
    pub fn poll_commit(&mut self, h: &CommitHandle) -> Option<Result<Version, TxnError>> {
        if !self.txn_replies.contains_key(&h.corr) {
            // Read what arrived, without waiting.
            let _ = self.fill_inbox(Some(Instant::now()));
        }
        let reply = self.txn_replies.remove(&h.corr)?;
        Some(self.commit_outcome(h.corr, TxnReply::decode(&reply)))
    }

    /// Wait up to `timeout` for the outcome of a commit.
    pub fn wait_commit(&mut self, h: CommitHandle, timeout: Duration) -> Result<Version, TxnError> {
        match self.txn_wait(h.corr, timeout) {
            Ok(reply) => self.commit_outcome(h.corr, TxnReply::decode(&reply)),
            Err(e) => {
                // The outcome is unknown: what it wrote may be there.
                self.txn_memory.settle(h.corr, Settled::Other);
                Err(e)
            }
        }
    }

    /// What this LP's memory of its own committed writes did so far (reads
    /// it served without a round trip, stale entries met).
    pub fn txn_memory_stats(&self) -> TxnMemoryStats {
        self.txn_memory.stats()
    }

    /// Send a transaction request; returns its correlation id.
    fn txn_send(&mut self, dst: u32, to_manager: bool, req: &TxnRequest) -> Result<u32, TxnError> {
        self.txn_send_bytes(dst, to_manager, &req.encode())
    }

    /// Send an encoded transaction request; returns its correlation id.
    fn txn_send_bytes(&mut self, dst: u32, to_manager: bool, req: &[u8]) -> Result<u32, TxnError> {
        let corr = self.next_corr;
        self.next_corr = self.next_corr.wrapping_add(1).max(1);
        let h = FrameHeader {
            kind: kind::TXN,
            dst,
            aux: corr,
            flags: if to_manager { FLAG_MANAGER } else { 0 },
            ..Default::default()
        };
        self.emit(h, req, Wait::Forever)?;
        Ok(corr)
    }

    /// Wait for the reply with correlation id `corr`.
    fn txn_wait(&mut self, corr: u32, timeout: Duration) -> Result<Vec<u8>, TxnError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(r) = self.txn_replies.remove(&corr) {
                return Ok(r);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(TxnError::Timeout);
            }
            self.fill_inbox(Some(deadline))?;
        }
    }

    /// Hand `set` to our manager for commit (`recalled`: what it read
    /// from memory).
    fn commit_set(
        &mut self,
        mut set: TxnSet,
        recalled: Vec<Recalled>,
    ) -> Result<CommitHandle, TxnError> {
        if set.writes.is_empty() && set.reads.is_empty() && set.scans.is_empty() {
            // Nothing to do: trivially committed, at no version.
            let corr = self.next_corr;
            self.next_corr = self.next_corr.wrapping_add(1).max(1);
            let done = TxnReply::Committed {
                version: 0,
                writes_carry_version: false,
            }
            .encode();
            self.txn_replies.insert(corr, done);
            return Ok(CommitHandle { corr });
        }
        let corr = match self.txn_send_bytes(0, true, &TxnRequest::encode_commit(&set)) {
            Ok(c) => c,
            Err(e) => {
                self.txn_memory.unsent(&set.writes);
                return Err(e);
            }
        };
        self.txn_memory
            .sent(corr, std::mem::take(&mut set.writes), &set.reads, recalled);
        Ok(CommitHandle { corr })
    }

    /// A commit's answer as its outcome; the memory learns it.
    fn commit_outcome(
        &mut self,
        corr: u32,
        reply: Result<TxnReply, crate::txn::codec::DecodeError>,
    ) -> Result<Version, TxnError> {
        let (how, out) = match reply {
            Ok(TxnReply::Committed {
                version,
                writes_carry_version,
            }) => {
                let how = if writes_carry_version {
                    Settled::Applied(version)
                } else {
                    Settled::Committed
                };
                (how, Ok(version))
            }
            Ok(TxnReply::Conflict(why)) => (Settled::Conflict, Err(TxnError::Conflict(why))),
            Ok(TxnReply::Failed(why)) => (Settled::Other, Err(TxnError::Failed(why))),
            Ok(other) => (
                Settled::Other,
                Err(TxnError::BadReply(format!("{other:?}"))),
            ),
            Err(e) => (Settled::Other, Err(TxnError::BadReply(e.to_string()))),
        };
        self.txn_memory.settle(corr, how);
        out
    }

    fn txn_call(&mut self, dst: u32, req: &TxnRequest) -> Result<TxnReply, TxnError> {
        let corr = self.txn_send(dst, false, req)?;
        let bytes = self.txn_wait(corr, STEP_TIMEOUT)?;
        TxnReply::decode(&bytes).map_err(|e| TxnError::BadReply(e.to_string()))
    }
}

impl OwnedTxn {
    /// A transaction with nothing read or written yet.
    pub fn new() -> OwnedTxn {
        OwnedTxn::default()
    }

    /// The whole set (reads and scans seen, writes buffered) and what was
    /// read from memory.
    fn into_set(self) -> (TxnSet, Vec<Recalled>) {
        let mut set = self.set;
        set.writes = self
            .writes
            .into_iter()
            .map(|((subfn, key), value)| WriteItem { subfn, key, value })
            .collect();
        (set, self.recalled)
    }

    fn subfn(lp: &Lp, name: &str) -> Result<u32, TxnError> {
        lp.subfn_id(name)
            .map_err(|_| TxnError::UnknownSubfn(name.to_owned()))
    }

    /// The value of `key` in sub-function `subfn` ([`Txn::get`]).
    pub fn get(
        &mut self,
        lp: &mut Lp,
        subfn: &str,
        key: &[u8],
    ) -> Result<Option<Vec<u8>>, TxnError> {
        let s = Self::subfn(lp, subfn)?;
        if let Some(w) = self.writes.get(&(s, key.to_vec())) {
            return Ok(w.clone());
        }
        if let Some(r) = self
            .recalled
            .iter()
            .find(|r| r.key.0 == s && r.key.1 == key)
        {
            // Read from memory before: its version is in the read set.
            return Ok(r.value.clone());
        }
        if let Some(r) = lp.txn_memory.recall(s, key) {
            // This LP's own last committed write of the key: validated at
            // commit like a read from the host.
            self.set.reads.push(ReadItem {
                subfn: s,
                key: key.to_vec(),
                version: r.version,
            });
            let value = r.value.clone();
            self.recalled.push(r);
            return Ok(value);
        }
        let req = TxnRequest::Get {
            subfn: s,
            key: key.to_vec(),
        };
        match lp.txn_call(s, &req)? {
            TxnReply::Value { value, version } => {
                self.set.reads.push(ReadItem {
                    subfn: s,
                    key: key.to_vec(),
                    version,
                });
                Ok(value)
            }
            TxnReply::Failed(why) => Err(TxnError::Failed(why)),
            other => Err(TxnError::BadReply(format!("{other:?}"))),
        }
    }

    /// Set `key` in `subfn` to `value` at commit ([`Txn::put`]).
    pub fn put(&mut self, lp: &Lp, subfn: &str, key: &[u8], value: &[u8]) -> Result<(), TxnError> {
        let s = Self::subfn(lp, subfn)?;
        self.writes.insert((s, key.to_vec()), Some(value.to_vec()));
        Ok(())
    }

    /// Remove `key` from `subfn` at commit ([`Txn::delete`]).
    pub fn delete(&mut self, lp: &Lp, subfn: &str, key: &[u8]) -> Result<(), TxnError> {
        let s = Self::subfn(lp, subfn)?;
        self.writes.insert((s, key.to_vec()), None);
        Ok(())
    }

    /// The keys of `subfn` that start with `prefix` ([`Txn::scan_prefix`]).
    pub fn scan_prefix(
        &mut self,
        lp: &mut Lp,
        subfn: &str,
        prefix: &[u8],
        limit: u32,
    ) -> Result<Vec<KeyValue>, TxnError> {
        let s = Self::subfn(lp, subfn)?;
        let req = TxnRequest::Scan {
            subfn: s,
            prefix: prefix.to_vec(),
            limit,
        };
        let entries = match lp.txn_call(s, &req)? {
            TxnReply::Entries(e) => e,
            TxnReply::Failed(why) => return Err(TxnError::Failed(why)),
            other => return Err(TxnError::BadReply(format!("{other:?}"))),
        };
        self.set.scans.push(ScanItem {
            subfn: s,
            prefix: prefix.to_vec(),
            limit,
            seen: entries.iter().map(|(k, _, v)| (k.clone(), *v)).collect(),
        });
        let mut merged: BTreeMap<Vec<u8>, Vec<u8>> =
            entries.into_iter().map(|(k, v, _)| (k, v)).collect();
        let mine = self.writes.range((s, prefix.to_vec())..);
        for ((_, k), v) in mine.take_while(|((ws, k), _)| *ws == s && k.starts_with(prefix)) {
            match v {
                Some(v) => merged.insert(k.clone(), v.clone()),
                None => merged.remove(k),
            };
        }
        Ok(merged.into_iter().collect())
    }

    /// Commit and wait until it is durable ([`Txn::commit`]).
    pub fn commit(self, lp: &mut Lp) -> Result<Version, TxnError> {
        let (set, recalled) = self.into_set();
        let h = lp.commit_set(set, recalled)?;
        lp.wait_commit(h, STEP_TIMEOUT)
    }

    /// Hand the transaction to the manager and return at once
    /// ([`Txn::commit_async`]).
    pub fn commit_async(self, lp: &mut Lp) -> Result<CommitHandle, TxnError> {
        let (set, recalled) = self.into_set();
        lp.commit_set(set, recalled)
    }

    /// Drop the transaction: nothing of it is applied.
    pub fn abort(self) {}
}

impl Txn<'_> {
    /// The value of `key` in sub-function `subfn`.
    pub fn get(&mut self, subfn: &str, key: &[u8]) -> Result<Option<Vec<u8>>, TxnError> {
        self.state.get(self.lp, subfn, key)
    }

    /// Set `key` in `subfn` to `value` (at commit).
    pub fn put(&mut self, subfn: &str, key: &[u8], value: &[u8]) -> Result<(), TxnError> {
        self.state.put(self.lp, subfn, key, value)
    }

    /// Remove `key` from `subfn` (at commit).
    pub fn delete(&mut self, subfn: &str, key: &[u8]) -> Result<(), TxnError> {
        self.state.delete(self.lp, subfn, key)
    }

    /// The keys of `subfn` that start with `prefix`, with their values, in
    /// key order (at most `limit` from the host), this transaction's own
    /// writes included.
    pub fn scan_prefix(
        &mut self,
        subfn: &str,
        prefix: &[u8],
        limit: u32,
    ) -> Result<Vec<KeyValue>, TxnError> {
        self.state.scan_prefix(self.lp, subfn, prefix, limit)
    }

    /// Commit and wait until it is durable; returns the commit's version.
    pub fn commit(self) -> Result<Version, TxnError> {
        self.state.commit(self.lp)
    }

    /// Hand the transaction to the manager and return at once; the handle
    /// tells when it is durable (pipelined commits: many may be in flight).
    pub fn commit_async(self) -> Result<CommitHandle, TxnError> {
        self.state.commit_async(self.lp)
    }

    /// Drop the transaction: nothing of it is applied.
    pub fn abort(self) {}
}
