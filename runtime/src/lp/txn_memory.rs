//! What an LP remembers of its own committed writes, so that a transaction
//! reading a key this LP wrote last does not ask the key's host again: a
//! read-modify-write loop on the LP's own keys (a counter, a cursor, a
//! balance) is then one round trip per transaction (the commit) instead of
//! two (the `get`, then the commit).
//!
//! The rules, all of which keep transactions serializable:
//!
//! * An entry is filled only from a commit answer that says every write of
//!   the transaction now carries the answer's version
//!   (`TxnReply::Committed { writes_carry_version: true, .. }`: a commit at
//!   one host), with the value that commit wrote (`None` for a delete).
//!   Never from a write that is not yet acknowledged: the writes of a
//!   commit in flight wait in `pending` until its answer. Only writes of
//!   keys the transaction read (a read-modify-write, which the LP is likely
//!   to do again) or that the memory holds are followed: a stream of blind
//!   writes (`commit_8lp_pipelined`) pays nothing for the memory.
//! * A read served from memory records the remembered version in the
//!   transaction's read set, which the host validates at commit like any
//!   read (a read-only transaction is sent for validation too: only an
//!   empty one is not). If another LP wrote the key since, the commit is
//!   refused with a conflict and [`crate::Lp::transaction`] runs the closure
//!   again, which then reads from the host.
//! * A read consumes its entry: it leaves the memory with the transaction
//!   and comes back only if that transaction commits (validated: still
//!   current at the commit). So a transaction that is dropped (an abort, a
//!   conflict, a failure, a timeout) leaves no entry behind that it read,
//!   and a loop that polls a key with transactions it aborts sees the host's
//!   value from its second round on.
//! * A commit whose outcome is unknown (timeout, bad answer, a broken link)
//!   or whose writes carry other versions (two-phase commit) forgets the
//!   keys it wrote.
//! * Bounded: at most [`MEMORY_ENTRIES`] entries and [`MEMORY_BYTES`] bytes
//!   of keys and values (past that, entries go in no particular order:
//!   the memory is a hint, and an evicted key is read from its host);
//!   values over
//!   [`MAX_REMEMBERED_VALUE`] bytes are not remembered; at most
//!   [`MAX_PENDING`] commits in flight are followed (the writes of one past
//!   that are forgotten at once).

use crate::txn::store::{ReadItem, Version, WriteItem};
use rustc_hash::FxHashMap;
use std::collections::VecDeque;

/// At most this many keys are remembered.
pub const MEMORY_ENTRIES: usize = 4096;
/// At most this many bytes of keys and values are remembered.
pub const MEMORY_BYTES: usize = 4 << 20;
/// Values larger than this are not remembered.
pub const MAX_REMEMBERED_VALUE: usize = 64 << 10;
/// At most this many commits in flight are followed for their writes.
pub const MAX_PENDING: usize = 4096;

/// A key of a sub-function.
type Key = (u32, Vec<u8>);

/// What the memory did, for tests and tuning ([`crate::Lp::txn_memory_stats`]).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct TxnMemoryStats {
    /// Reads served from memory (no round trip to the host).
    pub recalled: u64,
    /// Commits that read something from memory and were refused with a
    /// conflict (an entry was stale: another LP wrote the key since).
    pub stale: u64,
    /// Entries filled from acknowledged commits.
    pub filled: u64,
    /// Entries in memory now.
    pub entries: u64,
}

/// A remembered value (`None`: the key is absent) and its version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Recalled {
    pub key: Key,
    pub value: Option<Vec<u8>>,
    pub version: Version,
}

#[derive(Debug)]
struct Entry {
    value: Option<Vec<u8>>,
    version: Version,
}

/// What a commit in flight wrote and read from memory.
#[derive(Debug)]
struct Pending {
    writes: Vec<WriteItem>,
    recalled: Vec<Recalled>,
}

/// How a commit ended, as far as the memory cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Settled {
    /// Committed; every write carries this version.
    Applied(Version),
    /// Committed; the writes carry versions we do not know (two-phase
    /// commit), or there were none.
    Committed,
    /// Refused by validation: nothing applied.
    Conflict,
    /// Failed (nothing applied) or unknown (maybe applied).
    Other,
}

/// The memory of one LP.
#[derive(Debug, Default)]
pub(super) struct TxnMemory {
    /// FxHash: the keys are the LP's own (no hostile input), and a map
    /// operation is on every commit's path.
    entries: FxHashMap<Key, Entry>,
    /// Bytes of the keys and values in `entries`.
    bytes: usize,
    /// In the order sent: answers come mostly in that order.
    pending: VecDeque<(u32, Pending)>,
    stats: TxnMemoryStats,
}

fn cost(key: &Key, value: &Option<Vec<u8>>) -> usize {
    key.1.len() + value.as_ref().map_or(0, Vec::len)
}

impl TxnMemory {
    /// Take the remembered value of `key` for a transaction (it leaves the
    /// memory until that transaction commits).
    pub fn recall(&mut self, subfn: u32, key: &[u8]) -> Option<Recalled> {
        let key = (subfn, key.to_vec());
        let e = self.remove(&key)?;
        self.stats.recalled += 1;
        Some(Recalled {
            key,
            value: e.value,
            version: e.version,
        })
    }

    /// A commit went out under `corr` with these writes, reads (`reads`,
    /// from memory: `recalled`): follow it until [`TxnMemory::settle`].
    /// Only the writes of keys it read (a read-modify-write) or that the
    /// memory holds are followed: a stream of blind writes costs nothing.
    pub fn sent(
        &mut self,
        corr: u32,
        mut writes: Vec<WriteItem>,
        reads: &[ReadItem],
        recalled: Vec<Recalled>,
    ) {
        if self.entries.is_empty() && reads.is_empty() {
            writes.clear();
        } else {
            writes.retain(|w| {
                reads.iter().any(|r| r.subfn == w.subfn && r.key == w.key)
                    || self.entries.contains_key(&(w.subfn, w.key.clone()))
            });
        }
        if writes.is_empty() && recalled.is_empty() {
            return;
        }
        if self.pending.len() >= MAX_PENDING {
            // Not followed: its answer will not tell us its version, so
            // what we remember of the keys it writes may turn stale.
            for w in &writes {
                self.remove(&(w.subfn, w.key.clone()));
            }
            return;
        }
        self.pending.push_back((corr, Pending { writes, recalled }));
    }

    /// A commit could not be sent: forget what it wrote.
    pub fn unsent(&mut self, writes: &[WriteItem]) {
        for w in writes {
            self.remove(&(w.subfn, w.key.clone()));
        }
    }

    /// The commit `corr` ended so.
    pub fn settle(&mut self, corr: u32, how: Settled) {
        let Some(at) = self.pending.iter().position(|(c, _)| *c == corr) else {
            return;
        };
        let Some((_, p)) = self.pending.remove(at) else {
            return;
        };
        match how {
            Settled::Applied(version) => {
                // Validated: what it read is current as of its commit.
                for r in p.recalled {
                    self.fill(r.key, r.value, r.version);
                }
                for w in p.writes {
                    self.fill((w.subfn, w.key), w.value, version);
                }
            }
            Settled::Committed => {
                for r in p.recalled {
                    self.fill(r.key, r.value, r.version);
                }
                for w in &p.writes {
                    self.remove(&(w.subfn, w.key.clone()));
                }
            }
            Settled::Conflict => {
                // Nothing applied: the entries of its writes still hold;
                // what it recalled is dropped (one of them was stale).
                if !p.recalled.is_empty() {
                    self.stats.stale += 1;
                }
            }
            Settled::Other => {
                for w in &p.writes {
                    self.remove(&(w.subfn, w.key.clone()));
                }
            }
        }
    }

    /// What the memory did so far.
    pub fn stats(&self) -> TxnMemoryStats {
        TxnMemoryStats {
            entries: self.entries.len() as u64,
            ..self.stats
        }
    }

    /// Remember `key` = `value` at `version` (a later version than one
    /// remembered; a value too large is not kept, and drops the old one).
    fn fill(&mut self, key: Key, value: Option<Vec<u8>>, version: Version) {
        let too_large = value
            .as_ref()
            .is_some_and(|v| v.len() > MAX_REMEMBERED_VALUE);
        if let Some(old) = self.entries.get_mut(&key) {
            if old.version > version {
                return;
            }
            if !too_large {
                // The common case (a key written again): in place.
                self.bytes -= cost(&key, &old.value);
                self.bytes += cost(&key, &value);
                *old = Entry { value, version };
                self.stats.filled += 1;
                self.evict();
                return;
            }
        }
        if too_large {
            self.remove(&key);
            return;
        }
        self.bytes += cost(&key, &value);
        self.entries.insert(key, Entry { value, version });
        self.stats.filled += 1;
        self.evict();
    }

    /// Drop entries until the bounds hold.
    fn evict(&mut self) {
        while self.entries.len() > MEMORY_ENTRIES || self.bytes > MEMORY_BYTES {
            let Some(victim) = self.entries.keys().next().cloned() else {
                break;
            };
            self.remove(&victim);
        }
    }

    fn remove(&mut self, key: &Key) -> Option<Entry> {
        let e = self.entries.remove(key)?;
        self.bytes -= cost(key, &e.value);
        Some(e)
    }
}

#[cfg(test)]
#[path = "txn_memory_tests.rs"]
mod tests;
