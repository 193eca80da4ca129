//! A manager's transactional state: one ordered keyspace (bytes -> bytes)
//! per hosted sub-function, each key with the [`Version`] of the commit
//! that last wrote it (0 = absent).
//!
//! Isolation is serializable by optimistic concurrency. A transaction
//! reads through [`Store::get`] and [`Store::scan`] without locking, and
//! commits a [`TxnSet`]: what it read (with versions), what it scanned
//! (with the keys and versions seen) and what it writes. [`Store::prepare`]
//! validates the reads and scans against the current state (a scan by
//! re-scanning and comparing, so an insert under the prefix is a phantom)
//! and locks the keys (see [`super::locks`]); [`Store::decide`] applies the
//! writes under the version the caller chose and releases the locks. A
//! transaction local to this store is prepare + decide back to back;
//! across managers it is two-phase commit, with the store holding the
//! locks of in-doubt transactions until the decision arrives.
//!
//! The store never invents versions: the manager's commit counter gives
//! them, and must stay above [`Store::max_version`] (which accounts for
//! sub-functions loaded from elsewhere, whose versions a reader may have
//! seen before the move).

use std::collections::BTreeMap;

use super::locks::Locks;
pub use super::set::{Entry, ReadItem, ScanItem, TxnSet, Version, WriteItem};

/// One sub-function's keyspace: key -> (value, version).
pub(super) type Keyspace = BTreeMap<Vec<u8>, (Vec<u8>, Version)>;

/// Why a read or a commit was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Conflict {
    /// A key read has another version now.
    #[error("key {} of sub-function {subfn} changed", show(.key))]
    Changed {
        /// Its sub-function.
        subfn: u32,
        /// The key.
        key: Vec<u8>,
    },
    /// A key is held by another prepared transaction.
    #[error("key {} of sub-function {subfn} is locked by a prepared transaction", show(.key))]
    Locked {
        /// Its sub-function.
        subfn: u32,
        /// The key.
        key: Vec<u8>,
    },
    /// A scan returns other keys or versions now.
    #[error("scan of prefix {} in sub-function {subfn} changed", show(.prefix))]
    Phantom {
        /// Its sub-function.
        subfn: u32,
        /// The prefix.
        prefix: Vec<u8>,
    },
    /// This store does not serve the sub-function.
    #[error("sub-function {subfn} is not hosted here")]
    NotHosted {
        /// The sub-function.
        subfn: u32,
    },
    /// `txid` is prepared here already, with another set.
    #[error("transaction {txid} is already prepared with another set")]
    AlreadyPrepared {
        /// The transaction.
        txid: u64,
    },
}

/// Why a sub-function could not be handed away ([`Store::unhost`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UnhostError {
    /// This store does not serve the sub-function.
    #[error("sub-function {subfn} is not hosted here")]
    NotHosted {
        /// The sub-function.
        subfn: u32,
    },
    /// A prepared (in-doubt) transaction holds keys of it.
    #[error("sub-function {subfn} has prepared transaction {txid}")]
    Prepared {
        /// The sub-function.
        subfn: u32,
        /// The transaction that must be decided first.
        txid: u64,
    },
}

/// A key or prefix for messages: printable ASCII as is, other bytes as
/// `\xNN`, cut after 64 bytes.
fn show(b: &[u8]) -> String {
    let mut s: String = b
        .iter()
        .take(64)
        .flat_map(|c| c.escape_ascii())
        .map(char::from)
        .collect();
    if b.len() > 64 {
        s.push_str("...");
    }
    format!("\"{s}\"")
}

/// The keyspaces this manager hosts and its prepared transactions.
#[derive(Debug, Default, Clone)]
pub struct Store {
    /// Hosted sub-function -> its keyspace.
    pub(super) spaces: BTreeMap<u32, Keyspace>,
    /// Prepared transactions and their locks.
    pub(super) locks: Locks,
    /// The highest version applied or loaded.
    pub(super) max_version: Version,
}

impl Store {
    /// An empty store hosting nothing.
    pub fn new() -> Store {
        Store::default()
    }

    /// Serves `subfn` from now on (an empty keyspace if it is new here).
    pub fn host(&mut self, subfn: u32) {
        self.spaces.entry(subfn).or_default();
    }

    /// Whether this store serves `subfn`.
    pub fn hosts(&self, subfn: u32) -> bool {
        self.spaces.contains_key(&subfn)
    }

    /// Stops serving `subfn` and drops its keyspace (after
    /// [`Store::snapshot_of`] handed it elsewhere). Refused while a
    /// prepared transaction holds keys of it.
    pub fn unhost(&mut self, subfn: u32) -> Result<(), UnhostError> {
        if !self.hosts(subfn) {
            return Err(UnhostError::NotHosted { subfn });
        }
        if let Some(txid) = self.locks.holder_in(subfn) {
            return Err(UnhostError::Prepared { subfn, txid });
        }
        self.spaces.remove(&subfn);
        Ok(())
    }

    fn space(&self, subfn: u32) -> Result<&Keyspace, Conflict> {
        self.spaces.get(&subfn).ok_or(Conflict::NotHosted { subfn })
    }

    /// The committed value of `key` and its version (`(None, 0)` if
    /// absent). Prepared writes are not visible.
    pub fn get(&self, subfn: u32, key: &[u8]) -> Result<(Option<Vec<u8>>, Version), Conflict> {
        Ok(match self.space(subfn)?.get(key) {
            Some((v, ver)) => (Some(v.clone()), *ver),
            None => (None, 0),
        })
    }

    /// The first `limit` committed entries whose key starts with `prefix`,
    /// in key order (`limit` 0 returns nothing).
    pub fn scan(&self, subfn: u32, prefix: &[u8], limit: u32) -> Result<Vec<Entry>, Conflict> {
        Ok(prefix_range(self.space(subfn)?, prefix)
            .take(limit as usize)
            .map(|(k, (v, ver))| (k.clone(), v.clone(), *ver))
            .collect())
    }

    /// Validates `set` (only its items of sub-functions hosted here; items
    /// of other sub-functions are ignored) and locks its keys for `txid`:
    /// reads and scans must be unchanged, and no key may be locked by
    /// another txid in a clashing mode. Returns the part of `set` hosted
    /// here (an empty part takes no lock and is not recorded). Preparing a
    /// txid again with the same set returns it again (a resent prepare).
    pub fn prepare(&mut self, txid: u64, set: &TxnSet) -> Result<TxnSet, Conflict> {
        let hosted = set.filter(|subfn| self.hosts(subfn));
        if let Some(held) = self.locks.get(txid) {
            return if *held == hosted {
                Ok(hosted)
            } else {
                Err(Conflict::AlreadyPrepared { txid })
            };
        }
        if hosted.is_empty() {
            return Ok(hosted);
        }
        self.validate(&hosted)?;
        self.locks.check(txid, &hosted)?;
        self.locks.insert(txid, hosted.clone());
        Ok(hosted)
    }

    /// Whether the reads and scans of `set` (all hosted) still hold.
    fn validate(&self, set: &TxnSet) -> Result<(), Conflict> {
        for r in &set.reads {
            let now = self.space(r.subfn)?.get(&r.key).map_or(0, |(_, v)| *v);
            if now != r.version {
                return Err(Conflict::Changed {
                    subfn: r.subfn,
                    key: r.key.clone(),
                });
            }
        }
        for s in &set.scans {
            let now = prefix_range(self.space(s.subfn)?, &s.prefix)
                .take(s.limit as usize)
                .map(|(k, (_, ver))| (k, *ver));
            if !now.eq(s.seen.iter().map(|(k, v)| (k, *v))) {
                return Err(Conflict::Phantom {
                    subfn: s.subfn,
                    prefix: s.prefix.clone(),
                });
            }
        }
        Ok(())
    }

    /// Locks `set` for `txid` without validating it: recovery replaying a
    /// prepare record (validated when it was logged; the commits logged
    /// after it could not touch its keys). Replaces a set already there.
    pub fn restore_prepared(&mut self, txid: u64, set: TxnSet) {
        self.locks.insert(txid, set);
    }

    /// Ends `txid`: if `commit`, applies its writes (its hosted part) with
    /// `version`; releases its locks. Deciding a txid not prepared here is
    /// a no-op (a repeated decision, or one with nothing hosted here).
    pub fn decide(&mut self, txid: u64, commit: bool, version: Version) {
        if let Some(set) = self.locks.remove(txid) {
            if commit {
                self.apply(&set.writes, version);
            }
        }
    }

    /// Applies writes directly with `version` (recovery replay of a commit
    /// record). Writes to sub-functions not hosted here are skipped: host
    /// every sub-function of this manager before replaying.
    pub fn apply(&mut self, writes: &[WriteItem], version: Version) {
        for w in writes {
            let Some(space) = self.spaces.get_mut(&w.subfn) else {
                continue;
            };
            match &w.value {
                Some(v) => {
                    space.insert(w.key.clone(), (v.clone(), version));
                }
                None => {
                    space.remove(&w.key);
                }
            }
        }
        self.max_version = self.max_version.max(version);
    }

    /// Whether `txid` is prepared here (its keys locked).
    pub fn is_prepared(&self, txid: u64) -> bool {
        self.locks.get(txid).is_some()
    }

    /// The transactions still locked (in doubt after recovery), by txid,
    /// each with its hosted set.
    pub fn prepared(&self) -> Vec<(u64, TxnSet)> {
        self.locks.iter().map(|(t, s)| (*t, s.clone())).collect()
    }

    /// The highest version applied here or loaded with a snapshot.
    pub fn max_version(&self) -> Version {
        self.max_version
    }

    /// How many keys `subfn` holds (0 if not hosted).
    pub fn keys(&self, subfn: u32) -> usize {
        self.spaces.get(&subfn).map_or(0, BTreeMap::len)
    }

    /// The hosted sub-functions, in order.
    pub fn subfns(&self) -> Vec<u32> {
        self.spaces.keys().copied().collect()
    }
}

/// The entries of `space` whose key starts with `prefix`, in key order.
fn prefix_range<'a>(
    space: &'a Keyspace,
    prefix: &'a [u8],
) -> impl Iterator<Item = (&'a Vec<u8>, &'a (Vec<u8>, Version))> + 'a {
    space
        .range::<[u8], _>((
            std::ops::Bound::Included(prefix),
            std::ops::Bound::Unbounded,
        ))
        .take_while(move |(k, _)| k.starts_with(prefix))
}
