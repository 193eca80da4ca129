//! Putting back what another process overwrote in the registry. Any process
//! of the user can write into it (DESIGN.md, "Threat model"); its fixed
//! parts (the segment header, the registry header but for the coordinator
//! word and the change counter, the sub-function table) never change after
//! [`Registry::create`], so its creator keeps a copy ([`Golden`]) and puts
//! back every byte that differs ([`Registry::heal_fixed`]); each manager
//! does the same for its own slot ([`Registry::heal_slot`]). What is left
//! (the coordinator word, the status area, other fields of the slots) is
//! rewritten by its owners in their normal course, or only informs.

use super::layout::{Layout, HEADER_LEN};
use super::slots::{gen_of, pack, state_of, ACTIVE, STOPPING};
use super::{LpState, Registry};
use crate::segment::HEADER_LEN as SEGMENT_HEADER_LEN;
use std::sync::atomic::Ordering;

/// Body offsets of the registry header's words that change at run time:
/// the coordinator word (8 bytes at 32) and the change counter (8 at 40).
const DYNAMIC: std::ops::Range<usize> = 32..48;
/// The load mode (4 bytes at 116), which the supervisor writes itself.
const LOAD_MODE: std::ops::Range<usize> = 116..120;

/// A copy of a registry's fixed parts, taken by its creator.
#[derive(Debug, Clone)]
pub struct Golden {
    segment_header: Vec<u8>,
    header: Vec<u8>,
    subfns: Vec<u8>,
    subfns_off: usize,
}

/// Copy `len` bytes at `p` (shared memory: volatile reads).
///
/// # Safety
/// `p..p + len` must lie inside a live mapping.
unsafe fn copy_out(p: *const u8, len: usize) -> Vec<u8> {
    // SAFETY: per the contract.
    (0..len)
        .map(|i| unsafe { p.add(i).read_volatile() })
        .collect()
}

/// Write back the bytes of `want` that differ at `p`, except in `skip`;
/// returns how many differed.
///
/// # Safety
/// `p..p + want.len()` must lie inside a live, writable mapping.
unsafe fn put_back(p: *mut u8, want: &[u8], skip: &[std::ops::Range<usize>]) -> usize {
    let mut n = 0;
    for (i, w) in want.iter().enumerate() {
        if skip.iter().any(|r| r.contains(&i)) {
            continue;
        }
        // SAFETY: per the contract; other processes may write here too,
        // which is why it is checked byte by byte with volatile accesses.
        unsafe {
            if p.add(i).read_volatile() != *w {
                p.add(i).write_volatile(*w);
                n += 1;
            }
        }
    }
    n
}

impl Registry {
    /// A copy of the fixed parts, to heal from later (by the creator, right
    /// after [`Registry::create`] and the assignment).
    pub fn golden(&self) -> Golden {
        let layout: &Layout = &self.meta.layout;
        let body = self.seg.body_ptr();
        // SAFETY: the segment header lies before the body in the mapping;
        // the registry header and the sub-function table lie in the body
        // (the layout was validated when the registry was made or opened).
        unsafe {
            Golden {
                segment_header: copy_out(body.sub(SEGMENT_HEADER_LEN), SEGMENT_HEADER_LEN),
                header: copy_out(body, HEADER_LEN),
                subfns: copy_out(
                    body.add(layout.subfns_off),
                    layout.status_off - layout.subfns_off,
                ),
                subfns_off: layout.subfns_off,
            }
        }
    }

    /// Put back the fixed parts from `g`; returns how many bytes differed.
    pub fn heal_fixed(&self, g: &Golden) -> usize {
        let body = self.seg.body_ptr();
        // SAFETY: as in `golden`: the same ranges of the same mapping.
        unsafe {
            put_back(body.sub(SEGMENT_HEADER_LEN), &g.segment_header, &[])
                + put_back(body, &g.header, &[DYNAMIC, LOAD_MODE])
                + put_back(body.add(g.subfns_off), &g.subfns, &[])
        }
    }

    /// For the manager holding `slot` at `generation` (pid `pid`, name
    /// `name`): put back its state word, pid and name if another process
    /// changed them. Returns whether anything changed (then the change
    /// counter is notified, so that the others look again).
    pub fn heal_slot(&self, slot: u32, generation: u32, pid: u32, name: &str) -> bool {
        let Ok(s) = self.slot_ref(slot) else {
            return false;
        };
        let mut changed = false;
        let cur = s.state_gen.load(Ordering::Acquire);
        if gen_of(cur) != generation || !matches!(state_of(cur), ACTIVE | STOPPING) {
            // SYNC: Release, as the claim's CAS to ACTIVE: name and pid
            // below are rewritten after, and read by `slot` as a seqlock.
            s.state_gen
                .store(pack(generation, ACTIVE), Ordering::Release);
            changed = true;
        }
        if s.pid.load(Ordering::Relaxed) != pid {
            s.pid.store(pid, Ordering::Relaxed);
            changed = true;
        }
        let bytes = name.as_bytes();
        for (i, b) in s.name.iter().enumerate() {
            let want = bytes.get(i).copied().unwrap_or(0);
            if b.load(Ordering::Relaxed) != want {
                b.store(want, Ordering::Relaxed);
                changed = true;
            }
        }
        if s.name_len.load(Ordering::Relaxed) != bytes.len() as u32 {
            s.name_len.store(bytes.len() as u32, Ordering::Relaxed);
            changed = true;
        }
        if changed {
            self.changes().notify();
        }
        changed
    }

    /// For the manager of `slot`: put back what it last wrote of its LP
    /// (pid, state, restarts) if another process changed it. Returns
    /// whether anything changed.
    pub fn heal_lp(&self, slot: u32, lp_pid: u32, lp_state: LpState, restarts: u32) -> bool {
        let Ok(s) = self.slot_ref(slot) else {
            return false;
        };
        let changed = s.lp_pid.load(Ordering::Relaxed) != lp_pid
            || s.lp_state.load(Ordering::Acquire) != lp_state.as_u32()
            || s.restarts.load(Ordering::Relaxed) != restarts;
        if changed {
            let _ = self.set_lp(slot, lp_pid, lp_state);
            let _ = self.set_restarts(slot, restarts);
        }
        changed
    }
}
