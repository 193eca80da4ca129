//! A manager's checkpoint: its store and the two-phase-commit outcomes it
//! must still be able to tell (`txn_forget.rs`): a participant's answers
//! and its leaders' watermarks, a leader's decisions not acknowledged by
//! every participant (with those participants).

use super::txn_2pc::{Closing, TwoPhase};
use crate::txn::codec::{Reader, Writer};
use crate::txn::store::Store;
use std::collections::{BTreeMap, HashMap};

/// Magic of a checkpoint of the first layout: the answers only (a leader's
/// decisions among them, without their participants).
const CHECKPOINT_MAGIC_1: &[u8; 8] = b"SHMCCKP1";

/// Magic of a checkpoint (layout version 2).
const CHECKPOINT_MAGIC: &[u8; 8] = b"SHMCCKP2";

/// The outcomes a checkpoint keeps.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Kept {
    /// A participant's answers (`TwoPhase::decided`).
    pub decided: BTreeMap<u64, bool>,
    /// A leader's decisions not acknowledged: txid, the hosts that did not.
    pub closing: Vec<(u64, Vec<u32>)>,
    /// A participant's watermark of each leader.
    pub finished: HashMap<u32, u64>,
}

/// A checkpoint: the store and the outcomes kept.
///
/// ```text
/// 0   8  magic "SHMCCKP2" ("SHMCCKP1": the answers only, then the store)
/// 8   4  n: answers, u32 LE; 9n (txid u64 LE, commit u8) each
/// ..  4  m: decisions; each txid u64, k u32, k hosts u32
/// ..  4  w: watermarks; 12w (leader u32, below u64) each
/// ..     the store's snapshot (`Store::encode_snapshot`)
/// ```
pub(super) fn encode_checkpoint(store: &Store, tp: &TwoPhase) -> Vec<u8> {
    let mut w = Writer::new();
    w.raw(CHECKPOINT_MAGIC);
    w.count(tp.decided.len());
    for (&t, &c) in &tp.decided {
        w.u64(t);
        w.bool(c);
    }
    w.count(tp.closing.len());
    for (&t, c) in &tp.closing {
        w.u64(t);
        w.count(c.unacked.len());
        for &h in &c.unacked {
            w.u32(h);
        }
    }
    w.count(tp.finished.len());
    for (&l, &below) in &tp.finished {
        w.u32(l);
        w.u64(below);
    }
    let mut b = w.finish();
    b.extend_from_slice(&store.encode_snapshot());
    b
}

/// Reads a checkpoint (a file: untrusted).
pub(super) fn decode_checkpoint(b: &[u8]) -> Result<(Store, Kept), String> {
    let bad = |e: crate::txn::codec::DecodeError| format!("checkpoint: {e}");
    let (v2, rest) = match (
        b.strip_prefix(CHECKPOINT_MAGIC),
        b.strip_prefix(CHECKPOINT_MAGIC_1),
    ) {
        (Some(r), _) => (true, r),
        (None, Some(r)) => (false, r),
        _ => return Err("checkpoint: bad header".into()),
    };
    let mut r = Reader::new(rest);
    let mut kept = Kept::default();
    // Each count is bounded by the bytes left (`Reader::count`).
    for _ in 0..r.count(9, "answers").map_err(bad)? {
        let t = r.u64("txid").map_err(bad)?;
        kept.decided.insert(t, r.bool("commit").map_err(bad)?);
    }
    if v2 {
        for _ in 0..r.count(12, "decisions").map_err(bad)? {
            let t = r.u64("txid").map_err(bad)?;
            let k = r.count(4, "hosts").map_err(bad)?;
            let hosts = (0..k).map(|_| r.u32("host")).collect::<Result<_, _>>();
            kept.closing.push((t, hosts.map_err(bad)?));
        }
        for _ in 0..r.count(12, "watermarks").map_err(bad)? {
            let l = r.u32("leader").map_err(bad)?;
            kept.finished.insert(l, r.u64("below").map_err(bad)?);
        }
    }
    let rest = r.take(r.remaining(), "snapshot").map_err(bad)?;
    let store = Store::decode_snapshot(rest).map_err(|e| format!("checkpoint: {e}"))?;
    Ok((store, kept))
}

impl TwoPhase {
    /// Recovery: the outcomes a checkpoint kept.
    pub(super) fn restore(&mut self, kept: Kept) {
        self.decided = kept.decided;
        self.finished = kept.finished;
        for (t, hosts) in kept.closing {
            for &h in &hosts {
                self.told.entry(h).or_insert(0);
            }
            self.closing.insert(t, Closing::recovered(hosts));
        }
    }
}
