//! A manager's epoch: a number kept in its state directory (file `epoch`)
//! and bumped, durably, each time a manager opens that state. Transaction
//! ids carry it (`TxnServer::new_txid`: slot, epoch, a counter), which
//! makes them unique across restarts *and launches*.
//!
//! Why (issue 9): ids used to carry the registry generation of the slot in
//! its place. A generation is unique within a session only, and every
//! launch makes a new session whose slots start again at generation 1, so a
//! later launch on the same `state_dir` handed out the ids of the earlier
//! ones again. But two-phase-commit outcomes are keyed by id and outlive a
//! run: a participant remembers the commits it applied (replayed from its
//! Decision records) and its refusals; a leader remembers its decisions;
//! checkpoints keep them (then for ever; now until the leader's watermark
//! or every acknowledgement says nobody asks: `txn_forget.rs`). A new
//! transaction with an old id was then answered from the old one's outcome:
//! a participant restarted before its Prepare was durable answered the
//! leader's probe "prepared" (the old commit), so the leader committed its
//! own part alone; a participant in doubt asking the leader `Outcome` got
//! the old decision (say an abort, after a conflict) while the leader went
//! on to commit. Either way one side applied and the other did not
//! (`polyglot`: "counters ... the invariant does NOT hold", an LP's counter
//! ahead of the shared total; `tests/e2e_txn_relaunch.rs`).
//!
//! The rules:
//! * a manager with state (a log or a checkpoint) takes the last epoch + 1
//!   and makes it durable (write a new file, fsync, rename, fsync the
//!   directory) before it serves anything; if it cannot, its state is
//!   unavailable (an id that might repeat must never be handed out);
//! * a manager without state yet takes the last epoch + 1 (0 without a
//!   file) plus its registry generation, and makes it durable with its log,
//!   when it logs its first record. Before that no host can remember one of
//!   its ids durably (a two-phase commit's Staging record comes first), so
//!   a start that never logs needs no write of its own (a launch of many
//!   managers pays no fsync each); the generation keeps the ids of its
//!   restarts within a session apart, while a host may still hold one in
//!   memory (a forwarded commit waiting for its fdatasync);
//! * state from before this file existed (ids with a generation, 1 and up)
//!   starts at [`LEGACY_START`], above the generations a session hands out.
//!
//! 16 bits: an id repeats after 65,536 epochs of one state directory.
//!
//! Within a start the counter runs from 1 to `u32::MAX` ([`TxIds`]); when
//! it is spent (hours at a pipelined rate), the manager takes the next
//! epoch, durably, before it hands out an id of it, as a restart would. So
//! a manager's ids keep rising for as long as it runs: a participant drops
//! its answers below the leader's watermark and votes no to a Prepare below
//! it (`txn_forget.rs`), so ids that started again from 1 would be refused
//! for ever.

use crate::txn::storage::Storage;
use std::path::Path;

/// The file, in the manager's state directory.
pub(super) const EPOCH_FILE: &str = "epoch";

/// Magic of the file (layout version 1), then the epoch as u32 LE.
const MAGIC: &[u8; 8] = b"SHMCEPO1";

/// The first epoch of state that was made before the file existed.
pub(super) const LEGACY_START: u16 = 0x8000;

/// The last epoch used in `dir`; `None` without a file. The file is ours,
/// but read as untrusted: anything but the exact layout is an error.
pub(super) fn last_epoch<S: Storage>(storage: &S, dir: &Path) -> Result<Option<u16>, String> {
    let path = dir.join(EPOCH_FILE);
    let bytes = match storage.read_all(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    let bad = || format!("{}: not an epoch file", path.display());
    let rest = bytes.strip_prefix(MAGIC).ok_or_else(bad)?;
    let n: [u8; 4] = rest.try_into().map_err(|_| bad())?;
    let n = u32::from_le_bytes(n);
    u16::try_from(n).map(Some).map_err(|_| bad())
}

/// The epoch after `last` (see the rules above): for state that exists.
pub(super) fn next_epoch(last: Option<u16>) -> u16 {
    last.map_or(LEGACY_START, |e| e.wrapping_add(1))
}

/// Make `epoch` the last one used in `dir`, durably.
pub(super) fn save_epoch<S: Storage>(storage: &S, dir: &Path, epoch: u16) -> Result<(), String> {
    let path = dir.join(EPOCH_FILE);
    let tmp = dir.join("epoch.tmp");
    let mut b = MAGIC.to_vec();
    b.extend_from_slice(&u32::from(epoch).to_le_bytes());
    let res = storage
        .create_dir_all(dir)
        .and_then(|()| storage.write_new(&tmp, &b))
        .and_then(|()| storage.rename(&tmp, &path))
        .and_then(|()| storage.sync_dir(dir));
    res.map_err(|e| format!("{}: {e}", path.display()))
}

/// This start's epoch (the rules above): made durable now if the manager
/// has state (not `fresh`), else with its log.
pub(super) fn take_epoch<S: Storage>(
    storage: &S,
    dir: &Path,
    fresh: bool,
    generation: u32,
) -> Result<u16, String> {
    let last = last_epoch(storage, dir)?;
    if fresh {
        let base = last.map_or(0, |e| e.wrapping_add(1));
        return Ok(base.wrapping_add(generation as u16));
    }
    let epoch = next_epoch(last);
    save_epoch(storage, dir, epoch)?;
    Ok(epoch)
}

/// A manager's transaction ids: its slot, its epoch and a counter.
pub(super) struct TxIds {
    epoch: u16,
    /// The counter of the last id handed out (0: none yet this epoch).
    used: u32,
}

impl TxIds {
    pub(super) fn new(epoch: u16) -> TxIds {
        TxIds { epoch, used: 0 }
    }

    /// This start's epoch (the one in the ids handed out now).
    pub(super) fn epoch(&self) -> u16 {
        self.epoch
    }

    fn id(slot: u32, epoch: u16, n: u32) -> u64 {
        (u64::from(slot) << 48) | (u64::from(epoch) << 32) | u64::from(n)
    }

    /// The id [`TxIds::take`] hands out next (a lower bound of every later
    /// one).
    pub(super) fn upcoming(&self, slot: u32) -> u64 {
        match self.used.checked_add(1) {
            Some(n) => Self::id(slot, self.epoch, n),
            None => Self::id(slot, self.epoch.wrapping_add(1), 1),
        }
    }

    /// A new id. When this epoch's counter is spent, `save` makes the next
    /// epoch durable first ([`save_epoch`]); if it cannot, no id is handed
    /// out (one that might repeat never is) and the next call tries again.
    pub(super) fn take(
        &mut self,
        slot: u32,
        save: impl FnOnce(u16) -> Result<(), String>,
    ) -> Result<u64, String> {
        if self.used == u32::MAX {
            let next = self.epoch.wrapping_add(1);
            save(next).map_err(|e| format!("cannot take a new epoch for transaction ids: {e}"))?;
            (self.epoch, self.used) = (next, 0);
        }
        self.used += 1;
        Ok(Self::id(slot, self.epoch, self.used))
    }

    /// Skip to the last `left` ids of this epoch (tests of the roll-over).
    #[cfg(test)]
    pub(super) fn spend_all_but(&mut self, left: u32) {
        self.used = u32::MAX - left;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::txn::storage::{CrashImage, Fail, FaultyStorage};

    #[test]
    fn the_epoch_is_bumped_durably_and_bad_files_are_refused() {
        let fs = FaultyStorage::new();
        let dir = Path::new("/state/m0");
        assert_eq!(last_epoch(&fs, dir), Ok(None));
        assert_eq!(next_epoch(None), LEGACY_START);
        save_epoch(&fs, dir, 7).unwrap();
        // Durable: a power loss right after keeps it.
        let fs = fs.crash(CrashImage::POWER_LOSS);
        assert_eq!(last_epoch(&fs, dir), Ok(Some(7)));
        assert_eq!(next_epoch(Some(7)), 8);
        assert_eq!(next_epoch(Some(u16::MAX)), 0);
        // Without state: nothing written, the generation added.
        let fresh = FaultyStorage::new();
        assert_eq!(take_epoch(&fresh, dir, true, 3), Ok(3));
        assert_eq!(last_epoch(&fresh, dir), Ok(None));
        assert_eq!(take_epoch(&fs, dir, true, 2), Ok(10));
        assert_eq!(last_epoch(&fs, dir), Ok(Some(7)));
        // With state: the next one, durable before it is used.
        assert_eq!(take_epoch(&fs, dir, false, 2), Ok(8));
        let fs = fs.crash(CrashImage::POWER_LOSS);
        assert_eq!(last_epoch(&fs, dir), Ok(Some(8)));
        for junk in [&b"SHMCEPO1\x07\x00"[..], b"SHMCEPO1\x00\x00\x01\x00", b"xx"] {
            fs.write_new(&dir.join(EPOCH_FILE), junk).unwrap();
            assert!(last_epoch(&fs, dir).is_err(), "{junk:?}");
        }
    }

    #[test]
    fn ids_rise_across_a_spent_counter_and_the_next_epoch_is_durable_first() {
        let fs = FaultyStorage::new();
        let dir = Path::new("/state/m3");
        let mut ids = TxIds::new(9);
        ids.spend_all_but(2);
        let mut last = 0;
        for _ in 0..4 {
            let next = ids.upcoming(3);
            let id = ids.take(3, |e| save_epoch(&fs, dir, e)).unwrap();
            assert_eq!(id, next);
            assert!(id > last, "{id:#x} after {last:#x}");
            assert_eq!(id >> 48, 3);
            last = id;
        }
        assert_eq!(ids.epoch(), 10);
        assert_eq!(last, (3 << 48) | (10 << 32) | 2);
        // Durable before its first id: a power loss keeps it, and the
        // next start takes a later epoch still.
        let fs = fs.crash(CrashImage::POWER_LOSS);
        assert_eq!(last_epoch(&fs, dir), Ok(Some(10)));
        assert_eq!(take_epoch(&fs, dir, false, 1), Ok(11));
        // If the next epoch cannot be made durable, no id is handed out,
        // and the next try after the disk is back goes on from there.
        let mut ids = TxIds::new(20);
        ids.spend_all_but(0);
        fs.fail_sync_dir(Fail::Once);
        assert!(ids.take(0, |e| save_epoch(&fs, dir, e)).is_err());
        assert_eq!(ids.epoch(), 20);
        assert_eq!(ids.take(0, |e| save_epoch(&fs, dir, e)), Ok((21 << 32) | 1));
    }
}
