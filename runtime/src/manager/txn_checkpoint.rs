//! A manager's checkpoint: its store and the two-phase-commit outcomes it
//! must still be able to tell (`TwoPhase::decided`: a leader's decisions
//! not yet acknowledged, a participant's applied commits and refusals).

use crate::txn::store::Store;
use std::collections::HashMap;

/// Magic of a checkpoint (layout version 1).
const CHECKPOINT_MAGIC: &[u8; 8] = b"SHMCCKP1";

/// A checkpoint: the store and the outcomes kept.
///
/// ```text
/// 0   8  magic "SHMCCKP1"
/// 8   4  n: decisions, u32 LE
/// 12  9n (txid u64 LE, commit u8) each
/// ..     the store's snapshot (`Store::encode_snapshot`)
/// ```
pub(super) fn encode_checkpoint(store: &Store, decided: &HashMap<u64, bool>) -> Vec<u8> {
    let mut b = CHECKPOINT_MAGIC.to_vec();
    b.extend_from_slice(&(decided.len() as u32).to_le_bytes());
    for (&t, &c) in decided {
        b.extend_from_slice(&t.to_le_bytes());
        b.push(u8::from(c));
    }
    b.extend_from_slice(&store.encode_snapshot());
    b
}

/// Reads a checkpoint (a file: untrusted).
pub(super) fn decode_checkpoint(b: &[u8]) -> Result<(Store, HashMap<u64, bool>), String> {
    let bad = || "checkpoint: bad header".to_string();
    let rest = b.strip_prefix(CHECKPOINT_MAGIC).ok_or_else(bad)?;
    let (n, mut rest) = rest.split_first_chunk::<4>().ok_or_else(bad)?;
    let n = u32::from_le_bytes(*n) as usize;
    if n > rest.len() / 9 {
        return Err(bad());
    }
    let mut decided = HashMap::with_capacity(n);
    for _ in 0..n {
        let (t, r) = rest.split_first_chunk::<8>().ok_or_else(bad)?;
        let (&c, r) = r.split_first().ok_or_else(bad)?;
        decided.insert(u64::from_le_bytes(*t), c != 0);
        rest = r;
    }
    let store = Store::decode_snapshot(rest).map_err(|e| format!("checkpoint: {e}"))?;
    Ok((store, decided))
}
