//! What goes into the write-ahead log: the payload of one log record (the
//! log frames it with its sequence number and CRC32C).
//!
//! All integers little-endian; a set and a list of writes are laid out as
//! in [`super::set`].
//!
//! ```text
//!  off  size  field
//!    0     1  tag: 1 Commit, 2 Prepare, 3 Decision, 4 Staging,
//!             5 Forget, 6 Finished (never renumber)
//!
//!  Commit     1  8  txid u64
//!             9  8  version u64
//!            17  -  u32 nwrites, nwrites x WriteItem
//!  Prepare    1  8  txid u64
//!             9  4  coordinator u32 (manager slot)
//!            13  -  TxnSet
//!  Decision   1  8  txid u64
//!             9  1  commit u8 (0 abort, 1 commit)
//!            10  8  version u64 (meaningful when commit = 1)
//!  Staging    1  8  txid u64
//!             9  8  version u64 (of the leader's own writes)
//!            17  4  n u32: participants
//!            21 4n  participant manager slots, u32 each
//!         21+4n  -  TxnSet (the leader's own hosted part; may be empty)
//!  Forget     1  4  leader u32 (manager slot)
//!             5  8  below u64
//!  Finished   1  8  txid u64
//! ```
//!
//! Forget and Finished bound what the two-phase commit remembers (see
//! `manager/txn_forget.rs`): a participant forgets its answers about the
//! leader's transactions below `below`; a leader, its decision of `txid`
//! (every participant acknowledged it).
//!
//! A Decision with version 0 carries no writes here: it is a leader's
//! decision (or, with commit = 0, a participant's refusal of a transaction
//! it never prepared: see `manager/txn_2pc.rs`).
//!
//! A record is exactly its bytes: trailing bytes are an error.

use super::codec::{DecodeError, Reader, Writer};
use super::set::{decode_writes, encode_writes, TxnSet, Version, WriteItem};

const COMMIT: u8 = 1;
const PREPARE: u8 = 2;
const DECISION: u8 = 3;
const STAGING: u8 = 4;
const FORGET: u8 = 5;
const FINISHED: u8 = 6;

/// One write-ahead log record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// A transaction that committed here alone.
    Commit {
        /// The transaction.
        txid: u64,
        /// The version its writes carry.
        version: Version,
        /// Its writes (the part hosted here).
        writes: Vec<WriteItem>,
    },
    /// This manager voted yes in a two-phase commit led by manager slot
    /// `coordinator`.
    Prepare {
        /// The transaction.
        txid: u64,
        /// The coordinating manager's slot.
        coordinator: u32,
        /// The hosted part of its set (its locks, its writes).
        set: TxnSet,
    },
    /// The outcome of a two-phase commit (at the coordinator: the commit
    /// point; at a participant: applied).
    Decision {
        /// The transaction.
        txid: u64,
        /// Commit (true) or abort.
        commit: bool,
        /// The version its writes carry (when committed).
        version: Version,
    },
    /// A two-phase commit this manager leads (a parallel commit): its own
    /// part, locked, and the participants whose durable Prepare records,
    /// with this record durable, make the transaction committed.
    Staging {
        /// The transaction.
        txid: u64,
        /// The version the leader's own writes carry.
        version: Version,
        /// The participants' manager slots (the leader not among them).
        participants: Vec<u32>,
        /// The leader's own hosted part of the set (its locks, its writes).
        set: TxnSet,
    },
    /// A participant: its leader `leader` will never again ask about one
    /// of its transactions below `below`; what was remembered of them is
    /// forgotten.
    Forget {
        /// The leader's manager slot.
        leader: u32,
        /// Its low watermark.
        below: u64,
    },
    /// A leader: every participant acknowledged its decision of `txid`:
    /// it is forgotten.
    Finished {
        /// The transaction.
        txid: u64,
    },
}

impl Record {
    /// The record's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        match self {
            Record::Commit {
                txid,
                version,
                writes,
            } => {
                w.u8(COMMIT);
                w.u64(*txid);
                w.u64(*version);
                encode_writes(writes, &mut w);
            }
            Record::Prepare {
                txid,
                coordinator,
                set,
            } => {
                w.u8(PREPARE);
                w.u64(*txid);
                w.u32(*coordinator);
                set.encode_into(&mut w);
            }
            Record::Decision {
                txid,
                commit,
                version,
            } => {
                w.u8(DECISION);
                w.u64(*txid);
                w.bool(*commit);
                w.u64(*version);
            }
            Record::Staging {
                txid,
                version,
                participants,
                set,
            } => {
                w.u8(STAGING);
                w.u64(*txid);
                w.u64(*version);
                w.count(participants.len());
                for &p in participants {
                    w.u32(p);
                }
                set.encode_into(&mut w);
            }
            Record::Forget { leader, below } => {
                w.u8(FORGET);
                w.u32(*leader);
                w.u64(*below);
            }
            Record::Finished { txid } => {
                w.u8(FINISHED);
                w.u64(*txid);
            }
        }
        w.finish()
    }

    /// Reads a record (untrusted bytes: a log file).
    pub fn decode(b: &[u8]) -> Result<Record, DecodeError> {
        let mut r = Reader::new(b);
        let rec = match r.u8("record tag")? {
            COMMIT => Record::Commit {
                txid: r.u64("txid")?,
                version: r.u64("version")?,
                writes: decode_writes(&mut r)?,
            },
            PREPARE => Record::Prepare {
                txid: r.u64("txid")?,
                coordinator: r.u32("coordinator")?,
                set: TxnSet::decode_from(&mut r)?,
            },
            DECISION => Record::Decision {
                txid: r.u64("txid")?,
                commit: r.bool("commit")?,
                version: r.u64("version")?,
            },
            STAGING => {
                let txid = r.u64("txid")?;
                let version = r.u64("version")?;
                // Bounded by the bytes left (4 each).
                let n = r.count(4, "participants")?;
                let participants = (0..n)
                    .map(|_| r.u32("participant"))
                    .collect::<Result<_, _>>()?;
                Record::Staging {
                    txid,
                    version,
                    participants,
                    set: TxnSet::decode_from(&mut r)?,
                }
            }
            FORGET => Record::Forget {
                leader: r.u32("leader")?,
                below: r.u64("below")?,
            },
            FINISHED => Record::Finished {
                txid: r.u64("txid")?,
            },
            tag => {
                return Err(DecodeError::BadTag {
                    what: "record",
                    tag,
                })
            }
        };
        r.end()?;
        Ok(rec)
    }
}
