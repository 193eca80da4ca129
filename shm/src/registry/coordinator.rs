//! The coordinator epoch: which slot's manager coordinates the
//! collaboration, claimed and resigned by CAS on one header word.
//!
//! The word is `(epoch << 32) | slot`. The epoch grows by one on every claim
//! and never goes back, so a claim names the epoch it saw and fails if
//! someone else claimed first; a resignation keeps the epoch and clears the
//! slot. A dead coordinator's slot is not cleared by anyone: the next one
//! claims a new epoch.

use super::layout::NO_SLOT;
use super::{Registry, RegistryError};
use std::sync::atomic::Ordering;

/// The coordinator word for `slot` holding the role at `epoch` (`slot` is
/// [`NO_SLOT`] when nobody holds it).
pub(super) fn pack_coordinator(epoch: u32, slot: u32) -> u64 {
    (u64::from(epoch) << 32) | u64::from(slot)
}

/// The `(epoch, slot)` of a coordinator word.
fn unpack_coordinator(word: u64) -> (u32, u32) {
    ((word >> 32) as u32, word as u32)
}

impl Registry {
    fn coordinator_word(&self) -> u64 {
        // SYNC: pairs with the AcqRel CASes in claim/resign_coordinator.
        self.header().coordinator.load(Ordering::Acquire)
    }

    /// The current coordinator `(epoch, slot)`, or `None` if nobody holds the
    /// role (or the stored slot is not a valid one).
    pub fn coordinator(&self) -> Option<(u32, u32)> {
        let (epoch, slot) = unpack_coordinator(self.coordinator_word());
        (slot < self.max_slots()).then_some((epoch, slot))
    }

    /// The current coordinator epoch (0 before anyone claimed the role).
    pub fn coordinator_epoch(&self) -> u32 {
        unpack_coordinator(self.coordinator_word()).0
    }

    /// Claim the coordinator role for `slot`, having seen epoch
    /// `seen_epoch`: moves the word from `(seen_epoch, anything)` to
    /// `(seen_epoch + 1, slot)` by CAS and returns the new epoch. Fails with
    /// `EpochChanged` if the epoch is no longer `seen_epoch`.
    pub fn claim_coordinator(&self, slot: u32, seen_epoch: u32) -> Result<u32, RegistryError> {
        self.slot_ref(slot)?;
        let new_epoch = seen_epoch
            .checked_add(1)
            .ok_or(RegistryError::EpochExhausted)?;
        let c = &self.header().coordinator;
        // SYNC: Acquire, pairs with the AcqRel CASes below.
        let mut cur = c.load(Ordering::Acquire);
        loop {
            let (current, _) = unpack_coordinator(cur);
            if current != seen_epoch {
                return Err(RegistryError::EpochChanged {
                    seen: seen_epoch,
                    current,
                });
            }
            let new = pack_coordinator(new_epoch, slot);
            // SYNC: AcqRel: see the predecessor's writes, publish ours; pairs
            // with the Acquire load in `coordinator`.
            match c.compare_exchange(cur, new, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => break,
                // Same epoch but another slot value (a resign): try again.
                Err(now) => cur = now,
            }
        }
        self.changes().notify();
        Ok(new_epoch)
    }

    /// Give up the coordinator role held by `slot` at `epoch`: the slot
    /// becomes none, the epoch stays.
    pub fn resign_coordinator(&self, slot: u32, epoch: u32) -> Result<(), RegistryError> {
        let c = &self.header().coordinator;
        let held = pack_coordinator(epoch, slot);
        let none = pack_coordinator(epoch, NO_SLOT);
        // SYNC: AcqRel as in claim_coordinator.
        c.compare_exchange(held, none, Ordering::AcqRel, Ordering::Relaxed)
            .map_err(|_| RegistryError::NotCoordinator { slot, epoch })?;
        self.changes().notify();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::test_session as session;

    #[test]
    fn garbage_coordinator_slot_reads_as_none() {
        let s = session();
        let r = Registry::create(&s, "unit", 4, &["a"], 64).unwrap();
        // Garbage coordinator slot reads as no coordinator.
        r.header()
            .coordinator
            .store(5 << 32 | 1000, Ordering::Relaxed);
        assert_eq!(r.coordinator(), None);
        assert_eq!(r.coordinator_epoch(), 5);
    }
}
