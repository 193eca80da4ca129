//! Transaction messages between an LP, its manager and the managers that
//! own the sub-functions a transaction touches: [`TxnRequest`] and
//! [`TxnReply`], one encoder and one decoder each. The bytes come from
//! other processes: the decoders return errors, never panic.
//!
//! All integers little-endian; `bytes` = `u32` length + bytes, a set as in
//! [`super::set`]. Byte 0 is the tag (never renumber), then the fields:
//!
//! ```text
//! TxnRequest                            TxnReply
//!  1 Get          u32 subfn | bytes key  1 Value      u8 present | [bytes value]
//!  2 Scan         u32 subfn | bytes prefix            | u64 version
//!                 | u32 limit            2 Entries    u32 n, n x (bytes key
//!  3 Commit       TxnSet                              | bytes value | u64 version)
//!  4 CommitLocal  u64 txid | TxnSet      3 Committed  u64 version
//!                                                     | u8 writes_carry_version
//!  5 Prepare      u64 txid | TxnSet      4 Conflict   bytes text (UTF-8)
//!  6 Decide       u64 txid | u8 commit   5 Failed     bytes text (UTF-8)
//!                 | u64 finished_below   6 Vote       u64 txid | u8 yes
//!  7 Outcome      u64 txid               7 Decided    u64 txid
//!  8 Probe        u64 txid               8 Outcome    u64 txid | u8 outcome
//!  9 (retired: Forget with a list)                    (0 unknown, 1 commit, 2 abort)
//! 10 Forget       u64 below              9 Probed     u64 txid | u8 prepared
//! ```
//!
//! `finished_below` and `below` are a leader's low watermark for the
//! receiving participant (`manager/txn_forget.rs`).
//!
//! Keys and prefixes are at most 64 KiB, values 1 MiB, texts 64 KiB. An
//! `Entries` reply is bounded by the frame that carries it: the server
//! should cut a scan to what fits.

use super::codec::{DecodeError, Reader, Writer};
use super::set::{Entry, TxnSet, Version};

/// A transaction request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxnRequest {
    /// Read one key.
    Get {
        /// Its sub-function.
        subfn: u32,
        /// The key.
        key: Vec<u8>,
    },
    /// Read the first `limit` keys under a prefix.
    Scan {
        /// The sub-function.
        subfn: u32,
        /// The prefix.
        prefix: Vec<u8>,
        /// At most this many entries.
        limit: u32,
    },
    /// LP -> its own manager: commit this set (the manager coordinates:
    /// one owner -> local commit at that owner; several -> two-phase
    /// commit).
    Commit {
        /// The transaction's set.
        set: TxnSet,
    },
    /// Coordinator -> an owner: commit a set that is all yours.
    CommitLocal {
        /// The transaction.
        txid: u64,
        /// Its set.
        set: TxnSet,
    },
    /// Coordinator -> a participant: validate, lock, log, vote.
    Prepare {
        /// The transaction.
        txid: u64,
        /// Its set (the participant keeps its hosted part).
        set: TxnSet,
    },
    /// Coordinator -> a participant: the outcome.
    Decide {
        /// The transaction.
        txid: u64,
        /// Commit (true) or abort.
        commit: bool,
        /// The leader will never again probe this participant about, nor
        /// send it a Prepare of, one of its transactions below this id: the
        /// participant may forget them (`manager/txn_forget.rs`).
        finished_below: u64,
    },
    /// A participant recovering an in-doubt txid asks its coordinator.
    Outcome {
        /// The transaction.
        txid: u64,
    },
    /// A leader resolving a transaction it staged asks a participant
    /// whether its Prepare is durable; a participant that has none refuses
    /// the transaction for ever (a late Prepare then votes no).
    Probe {
        /// The transaction.
        txid: u64,
    },
    /// A leader's low watermark sent on its own (when no Decide carried
    /// the latest): as `Decide::finished_below`.
    Forget {
        /// Every transaction of the leader below this id is finished.
        below: u64,
    },
}

/// A reply to a [`TxnRequest`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxnReply {
    /// A key's value (`None`: absent) and version.
    Value {
        /// The value.
        value: Option<Vec<u8>>,
        /// Its version (0: absent).
        version: Version,
    },
    /// A scan's entries: key, value, version, in key order.
    Entries(Vec<Entry>),
    /// Committed (durably) under this version.
    Committed {
        /// The commit's version.
        version: Version,
        /// Every key the transaction wrote now carries `version` (a commit
        /// at one host, which applied all of it under that version): what
        /// the LP may remember of its own writes (`lp/txn_memory.rs`).
        /// False for a two-phase commit (each host applied its part under
        /// a version of its own; `version` is then the transaction's id)
        /// and for a commit with no writes.
        writes_carry_version: bool,
    },
    /// Refused by validation or a lock: retry.
    Conflict(String),
    /// I/O error, full disk, not hosted, bad request...
    Failed(String),
    /// A participant's vote.
    Vote {
        /// The transaction.
        txid: u64,
        /// Yes: prepared and logged.
        yes: bool,
    },
    /// A participant applied the decision.
    Decided {
        /// The transaction.
        txid: u64,
    },
    /// The coordinator's answer to an outcome query.
    Outcome {
        /// The transaction.
        txid: u64,
        /// `Some(commit)` once decided, `None`: unknown yet.
        commit: Option<bool>,
    },
    /// A participant's answer to a probe: `prepared` (its Prepare is
    /// durable, or it applied the commit) or refused for ever.
    Probed {
        /// The transaction.
        txid: u64,
        /// Durably prepared (or committed) here.
        prepared: bool,
    },
}

mod tag {
    pub const GET: u8 = 1;
    pub const SCAN: u8 = 2;
    pub const COMMIT: u8 = 3;
    pub const COMMIT_LOCAL: u8 = 4;
    pub const PREPARE: u8 = 5;
    pub const DECIDE: u8 = 6;
    pub const OUTCOME: u8 = 7;
    pub const PROBE: u8 = 8;
    // 9: retired (Forget with a list of ids): never reuse.
    pub const FORGET: u8 = 10;

    pub const VALUE: u8 = 1;
    pub const ENTRIES: u8 = 2;
    pub const COMMITTED: u8 = 3;
    pub const CONFLICT: u8 = 4;
    pub const FAILED: u8 = 5;
    pub const VOTE: u8 = 6;
    pub const DECIDED: u8 = 7;
    pub const OUTCOME_REPLY: u8 = 8;
    pub const PROBED: u8 = 9;
}

const MIN_ENTRY: usize = 4 + 4 + 8;

impl TxnRequest {
    /// The request's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        match self {
            TxnRequest::Get { subfn, key } => {
                w.u8(tag::GET);
                w.u32(*subfn);
                w.bytes(key);
            }
            TxnRequest::Scan {
                subfn,
                prefix,
                limit,
            } => {
                w.u8(tag::SCAN);
                w.u32(*subfn);
                w.bytes(prefix);
                w.u32(*limit);
            }
            TxnRequest::Commit { set } => return TxnRequest::encode_commit(set),
            TxnRequest::CommitLocal { txid, set } | TxnRequest::Prepare { txid, set } => {
                let local = matches!(self, TxnRequest::CommitLocal { .. });
                w.u8(if local {
                    tag::COMMIT_LOCAL
                } else {
                    tag::PREPARE
                });
                w.u64(*txid);
                set.encode_into(&mut w);
            }
            TxnRequest::Decide {
                txid,
                commit,
                finished_below,
            } => {
                w.u8(tag::DECIDE);
                w.u64(*txid);
                w.bool(*commit);
                w.u64(*finished_below);
            }
            TxnRequest::Outcome { txid } => {
                w.u8(tag::OUTCOME);
                w.u64(*txid);
            }
            TxnRequest::Probe { txid } => {
                w.u8(tag::PROBE);
                w.u64(*txid);
            }
            TxnRequest::Forget { below } => {
                w.u8(tag::FORGET);
                w.u64(*below);
            }
        }
        w.finish()
    }

    /// The bytes of `TxnRequest::Commit { set }`, without owning `set`.
    pub fn encode_commit(set: &TxnSet) -> Vec<u8> {
        let mut w = Writer::new();
        w.u8(tag::COMMIT);
        set.encode_into(&mut w);
        w.finish()
    }

    /// Reads a request (untrusted bytes).
    pub fn decode(b: &[u8]) -> Result<TxnRequest, DecodeError> {
        let mut r = Reader::new(b);
        let req = match r.u8("request tag")? {
            tag::GET => TxnRequest::Get {
                subfn: r.u32("subfn")?,
                key: r.key("key")?,
            },
            tag::SCAN => TxnRequest::Scan {
                subfn: r.u32("subfn")?,
                prefix: r.key("prefix")?,
                limit: r.u32("limit")?,
            },
            tag::COMMIT => TxnRequest::Commit {
                set: TxnSet::decode_from(&mut r)?,
            },
            tag::COMMIT_LOCAL => TxnRequest::CommitLocal {
                txid: r.u64("txid")?,
                set: TxnSet::decode_from(&mut r)?,
            },
            tag::PREPARE => TxnRequest::Prepare {
                txid: r.u64("txid")?,
                set: TxnSet::decode_from(&mut r)?,
            },
            tag::DECIDE => TxnRequest::Decide {
                txid: r.u64("txid")?,
                commit: r.bool("commit")?,
                finished_below: r.u64("finished_below")?,
            },
            tag::OUTCOME => TxnRequest::Outcome {
                txid: r.u64("txid")?,
            },
            tag::PROBE => TxnRequest::Probe {
                txid: r.u64("txid")?,
            },
            tag::FORGET => TxnRequest::Forget {
                below: r.u64("below")?,
            },
            tag => {
                return Err(DecodeError::BadTag {
                    what: "request",
                    tag,
                })
            }
        };
        r.end()?;
        Ok(req)
    }
}

impl TxnReply {
    /// The reply's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        match self {
            TxnReply::Value { value, version } => {
                w.u8(tag::VALUE);
                w.bool(value.is_some());
                if let Some(v) = value {
                    w.bytes(v);
                }
                w.u64(*version);
            }
            TxnReply::Entries(entries) => {
                w.u8(tag::ENTRIES);
                w.count(entries.len());
                for (k, v, ver) in entries {
                    w.bytes(k);
                    w.bytes(v);
                    w.u64(*ver);
                }
            }
            TxnReply::Committed {
                version,
                writes_carry_version,
            } => {
                w.u8(tag::COMMITTED);
                w.u64(*version);
                w.bool(*writes_carry_version);
            }
            TxnReply::Conflict(text) | TxnReply::Failed(text) => {
                let conflict = matches!(self, TxnReply::Conflict(_));
                w.u8(if conflict { tag::CONFLICT } else { tag::FAILED });
                w.bytes(text.as_bytes());
            }
            TxnReply::Vote { txid, yes } => {
                w.u8(tag::VOTE);
                w.u64(*txid);
                w.bool(*yes);
            }
            TxnReply::Decided { txid } => {
                w.u8(tag::DECIDED);
                w.u64(*txid);
            }
            TxnReply::Outcome { txid, commit } => {
                w.u8(tag::OUTCOME_REPLY);
                w.u64(*txid);
                w.u8(match commit {
                    None => 0,
                    Some(true) => 1,
                    Some(false) => 2,
                });
            }
            TxnReply::Probed { txid, prepared } => {
                w.u8(tag::PROBED);
                w.u64(*txid);
                w.bool(*prepared);
            }
        }
        w.finish()
    }

    /// Reads a reply (untrusted bytes).
    pub fn decode(b: &[u8]) -> Result<TxnReply, DecodeError> {
        let mut r = Reader::new(b);
        let reply = match r.u8("reply tag")? {
            tag::VALUE => {
                let present = r.bool("value present")?;
                let value = if present {
                    Some(r.value("value")?)
                } else {
                    None
                };
                TxnReply::Value {
                    value,
                    version: r.u64("version")?,
                }
            }
            tag::ENTRIES => TxnReply::Entries(decode_entries(&mut r)?),
            tag::COMMITTED => TxnReply::Committed {
                version: r.u64("version")?,
                writes_carry_version: r.bool("writes carry version")?,
            },
            tag::CONFLICT => TxnReply::Conflict(r.text("conflict")?),
            tag::FAILED => TxnReply::Failed(r.text("failure")?),
            tag::VOTE => TxnReply::Vote {
                txid: r.u64("txid")?,
                yes: r.bool("vote")?,
            },
            tag::DECIDED => TxnReply::Decided {
                txid: r.u64("txid")?,
            },
            tag::OUTCOME_REPLY => TxnReply::Outcome {
                txid: r.u64("txid")?,
                commit: decode_outcome(&mut r)?,
            },
            tag::PROBED => TxnReply::Probed {
                txid: r.u64("txid")?,
                prepared: r.bool("prepared")?,
            },
            tag => return Err(DecodeError::BadTag { what: "reply", tag }),
        };
        r.end()?;
        Ok(reply)
    }
}

fn decode_entries(r: &mut Reader<'_>) -> Result<Vec<Entry>, DecodeError> {
    let n = r.count(MIN_ENTRY, "entries")?;
    let mut entries = Vec::with_capacity(n);
    for _ in 0..n {
        entries.push((r.key("key")?, r.value("value")?, r.u64("version")?));
    }
    Ok(entries)
}

fn decode_outcome(r: &mut Reader<'_>) -> Result<Option<bool>, DecodeError> {
    match r.u8("outcome")? {
        0 => Ok(None),
        1 => Ok(Some(true)),
        2 => Ok(Some(false)),
        tag => Err(DecodeError::BadTag {
            what: "outcome",
            tag,
        }),
    }
}
