//! Manager slots: claim, release, mark dead, the stopping state, heartbeats
//! and the LP fields a manager reports.
//!
//! A slot's state and generation share one 64-bit word (see
//! `Slot::state_gen` in the layout) so that "state S at generation G" is
//! checked and changed by one CAS: a stale holder (an old generation) can
//! never release or stop a slot that was claimed again meanwhile. Readers copy
//! a slot as a seqlock, re-checking that word after the copy.

use super::layout::{check_name, decode_name, Layout, Slot, MAX_NAME_LEN};
use super::{Registry, RegistryError, READ_RETRIES};
use crate::doorbell::Doorbell;
use std::sync::atomic::{fence, Ordering};

/// State of a manager slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SlotState {
    /// Never used.
    Free,
    /// A manager is writing its name and pid.
    Claiming,
    /// A manager holds the slot.
    Active,
    /// The manager holds the slot and is shutting down.
    Stopping,
    /// The manager released the slot or died; it may be claimed again.
    Dead,
    /// A value this build does not know (garbage or a newer writer).
    Unknown(u32),
}

impl SlotState {
    /// The value stored in shared memory.
    pub fn as_u32(self) -> u32 {
        match self {
            SlotState::Free => 0,
            SlotState::Claiming => 1,
            SlotState::Active => 2,
            SlotState::Stopping => 3,
            SlotState::Dead => 4,
            SlotState::Unknown(v) => v,
        }
    }

    /// Decode a stored value; unknown values give `Unknown`.
    pub fn from_u32(v: u32) -> SlotState {
        match v {
            0 => SlotState::Free,
            1 => SlotState::Claiming,
            2 => SlotState::Active,
            3 => SlotState::Stopping,
            4 => SlotState::Dead,
            v => SlotState::Unknown(v),
        }
    }
}

/// State of a slot's logical process, as its manager reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LpState {
    /// Being started.
    Starting,
    /// Running, not yet ready.
    Running,
    /// Called `ready()`.
    Ready,
    /// Exited and about to be restarted.
    Restarting,
    /// Exited for good.
    Exited,
    /// Failed for good (restart limit exceeded).
    Failed,
    /// A value this build does not know.
    Unknown(u32),
}

impl LpState {
    /// The value stored in shared memory.
    pub fn as_u32(self) -> u32 {
        match self {
            LpState::Starting => 0,
            LpState::Running => 1,
            LpState::Ready => 2,
            LpState::Restarting => 3,
            LpState::Exited => 4,
            LpState::Failed => 5,
            LpState::Unknown(v) => v,
        }
    }

    /// Decode a stored value; unknown values give `Unknown`.
    pub fn from_u32(v: u32) -> LpState {
        match v {
            0 => LpState::Starting,
            1 => LpState::Running,
            2 => LpState::Ready,
            3 => LpState::Restarting,
            4 => LpState::Exited,
            5 => LpState::Failed,
            v => LpState::Unknown(v),
        }
    }
}

const FREE: u32 = 0;
const CLAIMING: u32 = 1;
pub(super) const ACTIVE: u32 = 2;
pub(super) const STOPPING: u32 = 3;
const DEAD: u32 = 4;

pub(super) fn state_of(word: u64) -> u32 {
    word as u32
}
pub(super) fn gen_of(word: u64) -> u32 {
    (word >> 32) as u32
}
pub(super) fn pack(generation: u32, state: u32) -> u64 {
    (u64::from(generation) << 32) | u64::from(state)
}

/// A validated copy of one slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotView {
    /// Slot index.
    pub index: u32,
    /// Slot state.
    pub state: SlotState,
    /// Generation (bumped on every claim).
    pub generation: u32,
    /// Manager pid (of the last claim).
    pub pid: u32,
    /// LP pid, 0 if none.
    pub lp_pid: u32,
    /// LP state.
    pub lp_state: LpState,
    /// LP restarts.
    pub restarts: u32,
    /// CLOCK_MONOTONIC ms of the last heartbeat (see [`monotonic_ms`]).
    pub heartbeat_ms: u64,
    /// Nanoseconds the slot's LPs spent waiting in the LP API, summed
    /// (written by the LPs: a hint, not a fact).
    pub lp_wait_ns: u64,
    /// Manager name; empty for a slot that is free or being claimed (a DEAD
    /// slot keeps its last holder's name).
    pub name: String,
}

/// CLOCK_MONOTONIC in milliseconds.
///
/// This clock is system-wide (it does not depend on the process), so values
/// from different processes on the host compare; it does not jump with the
/// wall clock and does not count time the system was suspended.
pub fn monotonic_ms() -> u64 {
    monotonic_us() / 1000
}

/// CLOCK_MONOTONIC in microseconds (the same clock as [`monotonic_ms`]):
/// for timestamps that travel between processes, such as a message's send
/// time.
pub fn monotonic_us() -> u64 {
    let ts = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    (ts.tv_sec.max(0) as u64)
        .saturating_mul(1_000_000)
        .saturating_add((ts.tv_nsec.max(0) as u64) / 1_000)
}

impl Registry {
    /// The shared slot `slot`.
    pub(super) fn slot_ref(&self, slot: u32) -> Result<&Slot, RegistryError> {
        let max = self.meta.layout.max_slots;
        if slot >= max {
            return Err(RegistryError::NoSuchSlot { slot, max });
        }
        let off = Layout::slot_off(slot);
        // SAFETY: slot < max_slots, so [off, off + SLOT_LEN) lies within the
        // validated layout, which fits in the body; off is a multiple of 128
        // from a 128-aligned base; all fields of Slot are atomic.
        Ok(unsafe { &*self.seg.body_ptr().add(off).cast::<Slot>() })
    }

    /// Claim `slot` for the manager `name` (1..=63 bytes) with pid `pid`.
    ///
    /// The slot must be FREE or DEAD; it goes through CLAIMING (name and pid
    /// written, generation bumped, heartbeat set) to ACTIVE, and the change
    /// counter is notified. Returns the new generation. `restarts` is left
    /// alone (the supervisor keeps counting across manager restarts); the LP
    /// fields are reset.
    pub fn claim_slot(&self, slot: u32, name: &str, pid: u32) -> Result<u32, RegistryError> {
        check_name(name, MAX_NAME_LEN).map_err(|reason| RegistryError::BadName {
            what: "manager",
            name: name.to_owned(),
            reason,
        })?;
        let s = self.slot_ref(slot)?;
        // Relaxed: only a hint; the CAS below decides.
        let mut cur = s.state_gen.load(Ordering::Relaxed);
        let generation = loop {
            let st = state_of(cur);
            if st != FREE && st != DEAD {
                return Err(RegistryError::SlotTaken(slot));
            }
            let g = gen_of(cur).wrapping_add(1);
            // SYNC: Acquire: see the previous owner's writes before ours.
            match s.state_gen.compare_exchange(
                cur,
                pack(g, CLAIMING),
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => break g,
                Err(now) => cur = now,
            }
        };
        // SYNC: orders the CLAIMING store before the name writes below; pairs
        // with the Acquire fence in `slot` (seqlock re-check).
        fence(Ordering::Release);
        let bytes = name.as_bytes();
        for (i, b) in s.name.iter().enumerate() {
            b.store(bytes.get(i).copied().unwrap_or(0), Ordering::Relaxed);
        }
        // Relaxed: all of these are published by the Release CAS to ACTIVE.
        s.name_len.store(bytes.len() as u32, Ordering::Relaxed);
        s.pid.store(pid, Ordering::Relaxed);
        s.lp_pid.store(0, Ordering::Relaxed);
        s.lp_state
            .store(LpState::Starting.as_u32(), Ordering::Relaxed);
        s.heartbeat_ms.store(monotonic_ms(), Ordering::Relaxed);
        // SYNC: Release publishes the writes above; pairs with the Acquire
        // load in `slot`. A CAS, not a store: the supervisor may have marked
        // the slot dead meanwhile (it thought we died).
        s.state_gen
            .compare_exchange(
                pack(generation, CLAIMING),
                pack(generation, ACTIVE),
                Ordering::Release,
                Ordering::Relaxed,
            )
            .map_err(|_| RegistryError::SlotTaken(slot))?;
        self.changes().notify();
        Ok(generation)
    }

    /// Claim the first free (or dead) slot; returns `(slot, generation)`.
    pub fn claim_any(&self, name: &str, pid: u32) -> Result<(u32, u32), RegistryError> {
        for slot in 0..self.max_slots() {
            match self.claim_slot(slot, name, pid) {
                Ok(g) => return Ok((slot, g)),
                Err(RegistryError::SlotTaken(_)) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(RegistryError::Full)
    }

    /// CAS the slot's state from one of `from` to `to`, keeping the
    /// generation; `generation` restricts it to that generation.
    fn transition(
        &self,
        slot: u32,
        generation: Option<u32>,
        from: &[u32],
        to: u32,
    ) -> Result<(), RegistryError> {
        let s = self.slot_ref(slot)?;
        // Relaxed: only a hint; the CAS decides.
        let mut cur = s.state_gen.load(Ordering::Relaxed);
        loop {
            let (st, g) = (state_of(cur), gen_of(cur));
            if !from.contains(&st) || generation.is_some_and(|want| want != g) {
                return Err(RegistryError::WrongState {
                    slot,
                    state: SlotState::from_u32(st),
                    generation: g,
                });
            }
            // SYNC: AcqRel: Release publishes the caller's last writes to the
            // slot to whoever reclaims it (Acquire CAS in claim_slot).
            match s.state_gen.compare_exchange(
                cur,
                pack(g, to),
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(now) => cur = now,
            }
        }
        self.changes().notify();
        Ok(())
    }

    /// Release `slot` held at `generation`: ACTIVE or STOPPING -> DEAD.
    /// Fails with `WrongState` if the slot was re-claimed or not held.
    pub fn release_slot(&self, slot: u32, generation: u32) -> Result<(), RegistryError> {
        self.transition(slot, Some(generation), &[ACTIVE, STOPPING], DEAD)
    }

    /// Mark `slot` DEAD whatever its state (the supervisor, when the manager
    /// died, possibly in the middle of a claim). A FREE or DEAD slot is left
    /// as it is. Does not touch the coordinator word: the next coordinator
    /// claims a new epoch.
    pub fn mark_dead(&self, slot: u32) -> Result<(), RegistryError> {
        match self.transition(slot, None, &[CLAIMING, ACTIVE, STOPPING], DEAD) {
            Err(RegistryError::WrongState {
                state: SlotState::Free | SlotState::Dead,
                ..
            }) => Ok(()),
            Err(RegistryError::WrongState {
                state: SlotState::Unknown(_),
                ..
            }) => self.transition_unknown_to_dead(slot),
            r => r,
        }
    }

    fn transition_unknown_to_dead(&self, slot: u32) -> Result<(), RegistryError> {
        let s = self.slot_ref(slot)?;
        // Relaxed: a hint for the CAS.
        let cur = s.state_gen.load(Ordering::Relaxed);
        if state_of(cur) > DEAD {
            // SYNC: AcqRel as in `transition`.
            let _ = s.state_gen.compare_exchange(
                cur,
                pack(gen_of(cur), DEAD),
                Ordering::AcqRel,
                Ordering::Relaxed,
            );
            self.changes().notify();
        }
        Ok(())
    }

    /// ACTIVE -> STOPPING (the manager is shutting down).
    pub fn set_stopping(&self, slot: u32) -> Result<(), RegistryError> {
        self.transition(slot, None, &[ACTIVE], STOPPING)
    }

    /// A validated copy of `slot`.
    pub fn slot(&self, slot: u32) -> Result<SlotView, RegistryError> {
        let s = self.slot_ref(slot)?;
        for _ in 0..READ_RETRIES {
            // SYNC: pairs with the Release CAS to ACTIVE in claim_slot.
            let before = s.state_gen.load(Ordering::Acquire);
            let state = state_of(before);
            let name_len = s.name_len.load(Ordering::Relaxed) as usize;
            let mut name = [0u8; 64];
            for (d, b) in name.iter_mut().zip(&s.name) {
                *d = b.load(Ordering::Relaxed);
            }
            let pid = s.pid.load(Ordering::Relaxed);
            // SYNC: pairs with the Release fence in claim_slot: if a name byte
            // above came from a newer claim, the re-load sees its CLAIMING.
            fence(Ordering::Acquire);
            if s.state_gen.load(Ordering::Relaxed) != before {
                continue;
            }
            // While CLAIMING the name is being written: report none.
            let name = if state == CLAIMING || (state == FREE && name_len == 0) {
                String::new()
            } else {
                decode_name(name_len, &name, MAX_NAME_LEN)
                    .map_err(|e| RegistryError::Corrupt(format!("slot {slot}: {e}")))?
            };
            // SYNC: pairs with the Release store in set_lp.
            let lp_state = s.lp_state.load(Ordering::Acquire);
            return Ok(SlotView {
                index: slot,
                state: SlotState::from_u32(state),
                generation: gen_of(before),
                pid,
                lp_pid: s.lp_pid.load(Ordering::Relaxed),
                lp_state: LpState::from_u32(lp_state),
                restarts: s.restarts.load(Ordering::Relaxed),
                heartbeat_ms: s.heartbeat_ms.load(Ordering::Relaxed),
                lp_wait_ns: s.lp_wait_ns.load(Ordering::Relaxed),
                name,
            });
        }
        Err(RegistryError::Busy("slot"))
    }

    /// Copies of the ACTIVE and STOPPING slots. Slots that fail validation
    /// (see [`Registry::slot`]) are skipped.
    pub fn active_slots(&self) -> Vec<SlotView> {
        (0..self.max_slots())
            .filter_map(|i| self.slot(i).ok())
            .filter(|v| matches!(v.state, SlotState::Active | SlotState::Stopping))
            .collect()
    }

    /// Record a heartbeat of `slot`'s manager (now, CLOCK_MONOTONIC ms). Does
    /// not notify the change counter.
    pub fn heartbeat(&self, slot: u32) -> Result<(), RegistryError> {
        // Relaxed: the value publishes nothing else.
        self.slot_ref(slot)?
            .heartbeat_ms
            .store(monotonic_ms(), Ordering::Relaxed);
        Ok(())
    }

    /// Add `ns` to the time the slot's LP spent waiting (called by the LP).
    pub fn add_lp_wait(&self, slot: u32, ns: u64) -> Result<(), RegistryError> {
        // Relaxed: the value publishes nothing else.
        self.slot_ref(slot)?
            .lp_wait_ns
            .fetch_add(ns, Ordering::Relaxed);
        Ok(())
    }

    /// Record the slot's LP pid and state, and notify the change counter.
    pub fn set_lp(&self, slot: u32, lp_pid: u32, lp_state: LpState) -> Result<(), RegistryError> {
        let s = self.slot_ref(slot)?;
        // Relaxed: published by the Release store of lp_state.
        s.lp_pid.store(lp_pid, Ordering::Relaxed);
        // SYNC: pairs with the Acquire load in `slot`.
        s.lp_state.store(lp_state.as_u32(), Ordering::Release);
        self.changes().notify();
        Ok(())
    }

    /// Record the slot's LP restart count, and notify the change counter.
    pub fn set_restarts(&self, slot: u32, n: u32) -> Result<(), RegistryError> {
        // Relaxed: the value publishes nothing else.
        self.slot_ref(slot)?.restarts.store(n, Ordering::Relaxed);
        self.changes().notify();
        Ok(())
    }

    /// The doorbell of `slot`'s manager.
    pub fn doorbell(&self, slot: u32) -> Result<&Doorbell, RegistryError> {
        Ok(&self.slot_ref(slot)?.doorbell)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::test_session as session;

    #[test]
    fn garbage_slot_values_do_not_panic() {
        let s = session();
        let r = Registry::create(&s, "unit", 4, &["a"], 64).unwrap();
        let slot = r.slot_ref(1).unwrap();
        slot.state_gen.store(pack(7, 99), Ordering::Relaxed);
        slot.lp_state.store(1234, Ordering::Relaxed);
        slot.name_len.store(3, Ordering::Relaxed);
        for (i, b) in b"abc".iter().enumerate() {
            slot.name[i].store(*b, Ordering::Relaxed);
        }
        let v = r.slot(1).unwrap();
        assert_eq!(v.state, SlotState::Unknown(99));
        assert_eq!(v.lp_state, LpState::Unknown(1234));
        assert_eq!(v.generation, 7);
        // A garbage name length is an error, not a panic.
        slot.name_len.store(u32::MAX, Ordering::Relaxed);
        assert!(matches!(r.slot(1), Err(RegistryError::Corrupt(_))));
        // Invalid UTF-8.
        slot.name_len.store(2, Ordering::Relaxed);
        slot.name[0].store(0xff, Ordering::Relaxed);
        assert!(matches!(r.slot(1), Err(RegistryError::Corrupt(_))));
        // mark_dead recovers an unknown state.
        r.mark_dead(1).unwrap();
        assert_eq!(state_of(slot.state_gen.load(Ordering::Relaxed)), DEAD);
    }

    #[test]
    fn claim_release_generation() {
        let s = session();
        let r = Registry::create(&s, "unit", 2, &[], 0).unwrap();
        let g1 = r.claim_slot(0, "m0", 10).unwrap();
        assert!(matches!(
            r.claim_slot(0, "m0", 10),
            Err(RegistryError::SlotTaken(0))
        ));
        r.release_slot(0, g1).unwrap();
        let g2 = r.claim_slot(0, "m0b", 11).unwrap();
        assert_eq!(g2, g1 + 1);
        // A stale generation cannot release the new holder.
        assert!(matches!(
            r.release_slot(0, g1),
            Err(RegistryError::WrongState { .. })
        ));
        r.set_stopping(0).unwrap();
        assert_eq!(r.slot(0).unwrap().state, SlotState::Stopping);
        r.release_slot(0, g2).unwrap();
        assert_eq!(r.slot(0).unwrap().state, SlotState::Dead);
        assert_eq!(r.slot(0).unwrap().name, "m0b");
        assert!(matches!(
            r.claim_slot(2, "x", 1),
            Err(RegistryError::NoSuchSlot { slot: 2, max: 2 })
        ));
        assert!(matches!(
            r.claim_slot(1, &"x".repeat(64), 1),
            Err(RegistryError::BadName { .. })
        ));
    }
}
