//! The locks of prepared transactions: a transaction that voted yes (or
//! committed alone, between its validation and its decision) holds its
//! keys until it is decided, and another one touching them conflicts at
//! once instead of waiting (waiting across managers could deadlock; the
//! LP's closure retries instead).
//!
//! Lock modes, from the hosted part of each prepared set:
//! * a write holds its key exclusively: no other prepared transaction may
//!   read, write or scan over it;
//! * a read holds its key shared: others may read it too, not write it;
//! * a scan holds the range it observed shared: the whole prefix when it
//!   returned fewer entries than its limit, else the prefix up to its last
//!   key (keys past it were never seen, so writing them is harmless).
//!
//! Together with validation at prepare time this is two-phase locking at
//! the commit point, which makes the committed transactions serializable
//! in the order of their decisions.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;

use super::set::{ScanItem, TxnSet};
use super::store::Conflict;

/// (sub-function, key, txid): one lock.
type LockKey = (u32, Vec<u8>, u64);

/// The prepared transactions and their locks.
#[derive(Debug, Default, Clone)]
pub(super) struct Locks {
    /// Prepared transaction -> the hosted part of its set.
    txns: BTreeMap<u64, TxnSet>,
    /// Shared locks of reads.
    reads: BTreeSet<LockKey>,
    /// Exclusive locks of writes.
    writes: BTreeSet<LockKey>,
}

/// Whether `key` lies in the range a scan observed (and so locks).
pub(super) fn scan_covers(s: &ScanItem, key: &[u8]) -> bool {
    if !key.starts_with(&s.prefix) {
        return false;
    }
    if s.seen.len() < s.limit as usize {
        return true;
    }
    s.seen
        .last()
        .is_some_and(|(last, _)| key <= last.as_slice())
}

/// The locks on (`subfn`, `key`) held by a transaction other than `txid`.
fn other_holder(set: &BTreeSet<LockKey>, subfn: u32, key: &[u8], txid: u64) -> bool {
    let lo = (subfn, key.to_vec(), 0);
    let hi = (subfn, key.to_vec(), u64::MAX);
    set.range(lo..=hi).any(|(_, _, t)| *t != txid)
}

impl Locks {
    /// The hosted set of a prepared transaction.
    pub(super) fn get(&self, txid: u64) -> Option<&TxnSet> {
        self.txns.get(&txid)
    }

    /// Every prepared transaction, by txid.
    pub(super) fn iter(&self) -> impl Iterator<Item = (&u64, &TxnSet)> {
        self.txns.iter()
    }

    /// Whether `set` may take its locks for `txid`: no other prepared
    /// transaction holds a key it touches in a clashing mode.
    pub(super) fn check(&self, txid: u64, set: &TxnSet) -> Result<(), Conflict> {
        let locked = |subfn: u32, key: &[u8]| Conflict::Locked {
            subfn,
            key: key.to_vec(),
        };
        for w in &set.writes {
            if other_holder(&self.writes, w.subfn, &w.key, txid)
                || other_holder(&self.reads, w.subfn, &w.key, txid)
                || self.scanned_by_other(w.subfn, &w.key, txid)
            {
                return Err(locked(w.subfn, &w.key));
            }
        }
        for r in &set.reads {
            if other_holder(&self.writes, r.subfn, &r.key, txid) {
                return Err(locked(r.subfn, &r.key));
            }
        }
        for s in &set.scans {
            if let Some(key) = self.written_in_scan(s, txid) {
                return Err(locked(s.subfn, &key));
            }
        }
        Ok(())
    }

    fn scanned_by_other(&self, subfn: u32, key: &[u8], txid: u64) -> bool {
        self.txns
            .iter()
            .filter(|(t, _)| **t != txid)
            .flat_map(|(_, set)| set.scans.iter())
            .any(|s| s.subfn == subfn && scan_covers(s, key))
    }

    /// A key in the range of scan `s` that another transaction write-locks.
    fn written_in_scan(&self, s: &ScanItem, txid: u64) -> Option<Vec<u8>> {
        let lo = Bound::Included((s.subfn, s.prefix.clone(), 0));
        self.writes
            .range((lo, Bound::Unbounded))
            .take_while(|(f, k, _)| *f == s.subfn && k.starts_with(&s.prefix))
            .find(|(_, k, t)| *t != txid && scan_covers(s, k))
            .map(|(_, k, _)| k.clone())
    }

    /// Records `set`'s locks for `txid` (after [`Locks::check`]; a
    /// transaction already here is replaced).
    pub(super) fn insert(&mut self, txid: u64, set: TxnSet) {
        self.remove(txid);
        for r in &set.reads {
            self.reads.insert((r.subfn, r.key.clone(), txid));
        }
        for w in &set.writes {
            self.writes.insert((w.subfn, w.key.clone(), txid));
        }
        self.txns.insert(txid, set);
    }

    /// Releases `txid`'s locks; returns its set if it was prepared.
    pub(super) fn remove(&mut self, txid: u64) -> Option<TxnSet> {
        let set = self.txns.remove(&txid)?;
        for r in &set.reads {
            self.reads.remove(&(r.subfn, r.key.clone(), txid));
        }
        for w in &set.writes {
            self.writes.remove(&(w.subfn, w.key.clone(), txid));
        }
        Some(set)
    }

    /// A prepared transaction touching `subfn` (its txid), if any.
    pub(super) fn holder_in(&self, subfn: u32) -> Option<u64> {
        self.txns
            .iter()
            .find(|(_, set)| set.subfns().contains(&subfn))
            .map(|(t, _)| *t)
    }
}
