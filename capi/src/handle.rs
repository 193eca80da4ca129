//! The LP handle: a connected [`Lp`] with the transactions and pending
//! commits it has open, and the rules that make a bad handle an error code
//! rather than undefined behaviour.
//!
//! * One thread: an `Lp` is not `Sync`. The handle records the thread that
//!   connected it; a call from another thread returns
//!   `SHMC_ERR_WRONG_THREAD` and touches nothing but that record.
//! * Closed: `shmc_close` drops the `Lp` (and every transaction) but keeps
//!   the handle's small shell allocated for the life of the process, so a
//!   later call with the pointer finds `Closed` rather than freed memory.
//!   A process connects at most once (the link keys are read once), so at
//!   most one shell stays behind.
//! * Poisoned: a panic inside a call leaves the `Lp` in an unknown state;
//!   it is leaked and every later call returns `SHMC_ERR_PANIC`.

use crate::status::{guard, Error, ShmcStatus};
use shmcollab_runtime::{CommitHandle, Lp, OwnedTxn};
use std::cell::UnsafeCell;
use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::thread::ThreadId;

/// Marks a live handle (a cheap check against pointers of another kind).
const MAGIC: u64 = u64::from_le_bytes(*b"shmc_lp\0");

/// An LP's connection (`shmc_lp` in C): opaque, made by `shmc_connect`.
pub struct ShmcLp {
    magic: u64,
    /// The thread that connected; the only one that may touch `state`.
    owner: ThreadId,
    /// Touched only by `owner` (checked before every access).
    state: UnsafeCell<State>,
}

enum State {
    Open(Box<Open>),
    Closed,
    Poisoned,
}

/// A connected LP and what the C side holds ids of.
pub(crate) struct Open {
    pub(crate) lp: Lp,
    pub(crate) txns: HashMap<u64, OwnedTxn>,
    pub(crate) commits: HashMap<u64, CommitHandle>,
    /// The next transaction or commit id (never 0, never reused).
    next_id: u64,
}

impl Open {
    pub(crate) fn next_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }
}

thread_local! {
    static ME: ThreadId = std::thread::current().id();
}

fn this_thread() -> Option<ThreadId> {
    ME.try_with(|t| *t).ok()
}

impl ShmcLp {
    /// A new handle owned by this thread, on the heap; the pointer is what
    /// C holds.
    pub(crate) fn new_raw(lp: Lp) -> Result<*mut ShmcLp, Error> {
        let owner = this_thread().ok_or_else(|| Error::invalid("thread is exiting"))?;
        let h = Box::new(ShmcLp {
            magic: MAGIC,
            owner,
            state: UnsafeCell::new(State::Open(Box::new(Open {
                lp,
                txns: HashMap::new(),
                commits: HashMap::new(),
                next_id: 1,
            }))),
        });
        Ok(Box::into_raw(h))
    }
}

/// The handle behind `p`, checked for null, kind and thread.
///
/// # Safety
/// `p` is null or a pointer `shmc_connect` returned (closed or not).
unsafe fn checked<'a>(p: *mut ShmcLp) -> Result<&'a ShmcLp, Error> {
    // SAFETY: null or a handle from shmc_connect, whose shell is never
    // freed; only the immutable fields are read through this reference
    // before the thread check.
    let h = unsafe { p.as_ref() }.ok_or_else(|| Error::null("lp"))?;
    if h.magic != MAGIC {
        return Err(Error::invalid("lp is not a handle from shmc_connect"));
    }
    if this_thread() != Some(h.owner) {
        return Err(Error::new(
            ShmcStatus::SHMC_ERR_WRONG_THREAD,
            "the LP handle belongs to the thread that connected it",
        ));
    }
    Ok(h)
}

/// Runs `f` on the open LP behind `p`: the entry points' common frame
/// (argument checks, errors, panics).
///
/// # Safety
/// `p` is null or a pointer `shmc_connect` returned (closed or not); `f`
/// gets no other access to the handle.
pub(crate) unsafe fn with_lp(
    p: *mut ShmcLp,
    f: impl FnOnce(&mut Open) -> Result<(), Error>,
) -> ShmcStatus {
    guard(|| {
        // SAFETY: forwarded contract of this function.
        let h = unsafe { checked(p) }?;
        // SAFETY: we are on the owner thread (checked above), the only one
        // that ever touches `state`, and no call into the library is in
        // progress on it (no callbacks, so no re-entry): this is the only
        // reference to the state.
        let state = unsafe { &mut *h.state.get() };
        let open = match state {
            State::Open(o) => o,
            State::Closed => {
                return Err(Error::new(
                    ShmcStatus::SHMC_ERR_CLOSED,
                    "the LP handle was closed",
                ))
            }
            State::Poisoned => {
                return Err(Error::new(
                    ShmcStatus::SHMC_ERR_PANIC,
                    "an earlier call on this LP handle panicked; close it",
                ))
            }
        };
        match catch_unwind(AssertUnwindSafe(|| f(open))) {
            Ok(r) => r,
            Err(p) => {
                // Whatever the LP holds may be half updated: never touch
                // it again (leak it rather than run its destructor).
                std::mem::forget(std::mem::replace(state, State::Poisoned));
                std::panic::resume_unwind(p)
            }
        }
    })
}

/// Closes the handle behind `p`: drops the LP, keeps the shell.
///
/// # Safety
/// As for [`with_lp`].
pub(crate) unsafe fn close(p: *mut ShmcLp) -> ShmcStatus {
    guard(|| {
        // SAFETY: forwarded contract of this function.
        let h = unsafe { checked(p) }?;
        // SAFETY: owner thread, no other reference (as in `with_lp`).
        let state = unsafe { &mut *h.state.get() };
        match std::mem::replace(state, State::Closed) {
            State::Open(o) => {
                drop(o);
                Ok(())
            }
            State::Closed => Err(Error::new(
                ShmcStatus::SHMC_ERR_CLOSED,
                "the LP handle was already closed",
            )),
            State::Poisoned => Ok(()),
        }
    })
}
