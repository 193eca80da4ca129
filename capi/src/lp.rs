//! Entry points of the LP itself: connect, close, who it is, readiness,
//! reports and the collaboration state (messages: `msg.rs`).
//!
//! Thread-safety of every function here that takes a `shmc_lp *`: only on
//! the thread that connected it; from another thread it returns
//! `SHMC_ERR_WRONG_THREAD` and does nothing. Functions without an LP
//! handle say so themselves.

use crate::args::{out_arg, str_arg, write_str};
use crate::handle::{close, with_lp, ShmcLp};
use crate::status::{guard, Error, ShmcStatus};
use shmcollab_runtime::Lp;
use std::ffi::c_char;

/// Connects to the manager that started this process, from the
/// environment it set, and stores the handle in `*out` (null on failure).
/// Once per process: the link keys can be read only once.
///
/// Thread-safety: any thread; the handle then belongs to that thread.
///
/// # Safety
/// `out` is null or valid for a write of a pointer.
#[no_mangle]
pub unsafe extern "C" fn shmc_connect(out: *mut *mut ShmcLp) -> ShmcStatus {
    guard(|| {
        // SAFETY: null or writable, by this function's contract.
        let out = unsafe { out_arg(out, "out") }?;
        *out = std::ptr::null_mut();
        let lp = Lp::connect()?;
        *out = ShmcLp::new_raw(lp)?;
        Ok(())
    })
}

/// Closes the connection. The pointer stays safe to pass (later calls
/// return `SHMC_ERR_CLOSED`); open transactions are aborted, pending
/// commits forgotten (their outcome is still decided by the managers).
///
/// Thread-safety: only on the thread that connected `lp`
/// (`SHMC_ERR_WRONG_THREAD` elsewhere).
///
/// # Safety
/// `lp` is null or a handle from `shmc_connect`.
#[no_mangle]
pub unsafe extern "C" fn shmc_close(lp: *mut ShmcLp) -> ShmcStatus {
    // SAFETY: forwarded contract.
    unsafe { close(lp) }
}

/// Whether this process was started by a shmcollab manager (1) or not (0).
///
/// Thread-safety: any thread.
#[no_mangle]
pub extern "C" fn shmc_under_manager() -> i32 {
    std::panic::catch_unwind(shmcollab_runtime::lp::under_manager).map_or(0, i32::from)
}

/// This LP's name, NUL-terminated, into `buf` (`cap` bytes); the bytes it
/// takes into `*needed` (may be null). See `shmc_subfunction` for the
/// buffer rules.
///
/// Thread-safety: only on the thread that connected `lp`
/// (`SHMC_ERR_WRONG_THREAD` elsewhere).
///
/// # Safety
/// `lp` is null or from `shmc_connect`; `buf` null or writable for `cap`
/// bytes; `needed` null or writable.
#[no_mangle]
pub unsafe extern "C" fn shmc_name(
    lp: *mut ShmcLp,
    buf: *mut c_char,
    cap: usize,
    needed: *mut usize,
) -> ShmcStatus {
    // SAFETY: forwarded contract (for `with_lp` and `write_str`).
    unsafe { with_lp(lp, |o| write_str(o.lp.name(), buf, cap, needed)) }
}

/// This LP's registry slot (its identity in `shmc_message.from`).
///
/// Thread-safety: only on the thread that connected `lp`
/// (`SHMC_ERR_WRONG_THREAD` elsewhere).
///
/// # Safety
/// `lp` null or from `shmc_connect`; `out` null or writable.
#[no_mangle]
pub unsafe extern "C" fn shmc_slot(lp: *mut ShmcLp, out: *mut u32) -> ShmcStatus {
    // SAFETY: forwarded contract.
    unsafe {
        with_lp(lp, |o| {
            *out_arg(out, "out")? = o.lp.slot();
            Ok(())
        })
    }
}

/// How many sub-functions this LP hosts.
///
/// Thread-safety: only on the thread that connected `lp`
/// (`SHMC_ERR_WRONG_THREAD` elsewhere).
///
/// # Safety
/// `lp` null or from `shmc_connect`; `out` null or writable.
#[no_mangle]
pub unsafe extern "C" fn shmc_subfunction_count(lp: *mut ShmcLp, out: *mut usize) -> ShmcStatus {
    // SAFETY: forwarded contract.
    unsafe {
        with_lp(lp, |o| {
            *out_arg(out, "out")? = o.lp.subfunctions().len();
            Ok(())
        })
    }
}

/// The name of hosted sub-function `index` (0 .. count-1), NUL-terminated,
/// into `buf` of `cap` bytes. `*needed` (if not null) gets the bytes the
/// name takes with its NUL, also when `buf` is too small
/// (`SHMC_ERR_BUFFER_TOO_SMALL`, nothing written); `buf` may be null when
/// `cap` is 0. A buffer of `SHMC_SUBFN_NAME_CAP` bytes always suffices.
///
/// Thread-safety: only on the thread that connected `lp`
/// (`SHMC_ERR_WRONG_THREAD` elsewhere).
///
/// # Safety
/// `lp` null or from `shmc_connect`; `buf` null or writable for `cap`
/// bytes; `needed` null or writable.
#[no_mangle]
pub unsafe extern "C" fn shmc_subfunction(
    lp: *mut ShmcLp,
    index: usize,
    buf: *mut c_char,
    cap: usize,
    needed: *mut usize,
) -> ShmcStatus {
    // SAFETY: forwarded contract.
    unsafe {
        with_lp(lp, |o| {
            let subfns = o.lp.subfunctions();
            let name = subfns.get(index).ok_or_else(|| {
                Error::invalid(format!(
                    "index {index}: this LP hosts {} sub-functions",
                    subfns.len()
                ))
            })?;
            write_str(name, buf, cap, needed)
        })
    }
}

/// Tells the manager (and through it the supervisor) that this LP is
/// ready: processes waiting on it may start.
///
/// Thread-safety: only on the thread that connected `lp`
/// (`SHMC_ERR_WRONG_THREAD` elsewhere).
///
/// # Safety
/// `lp` null or from `shmc_connect`.
#[no_mangle]
pub unsafe extern "C" fn shmc_ready(lp: *mut ShmcLp) -> ShmcStatus {
    // SAFETY: forwarded contract.
    unsafe {
        with_lp(lp, |o| {
            o.lp.ready()?;
            Ok(())
        })
    }
}

/// Publishes `key = value` in this LP's state report (under "custom" in
/// `shmcollab status`).
///
/// Thread-safety: only on the thread that connected `lp`
/// (`SHMC_ERR_WRONG_THREAD` elsewhere).
///
/// # Safety
/// `lp` null or from `shmc_connect`; `key` and `value` null or
/// NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn shmc_report(
    lp: *mut ShmcLp,
    key: *const c_char,
    value: *const c_char,
) -> ShmcStatus {
    // SAFETY: forwarded contract.
    unsafe {
        with_lp(lp, |o| {
            let (k, v) = (str_arg(key, "key")?, str_arg(value, "value")?);
            o.lp.report(k, v)?;
            Ok(())
        })
    }
}

/// The coordinator's view of the collaboration as a JSON document (the
/// format of `shmcollab status --json`), NUL-terminated, into `buf`; buffer
/// rules as for `shmc_subfunction` (the document can grow between a size
/// query and the call: loop while `SHMC_ERR_BUFFER_TOO_SMALL`).
/// `SHMC_ERR_STATE` until the coordinator has published.
///
/// Thread-safety: only on the thread that connected `lp`
/// (`SHMC_ERR_WRONG_THREAD` elsewhere).
///
/// # Safety
/// `lp` null or from `shmc_connect`; `buf` null or writable for `cap`
/// bytes; `needed` null or writable.
#[no_mangle]
pub unsafe extern "C" fn shmc_collaboration_state(
    lp: *mut ShmcLp,
    buf: *mut c_char,
    cap: usize,
    needed: *mut usize,
) -> ShmcStatus {
    // SAFETY: forwarded contract.
    unsafe {
        with_lp(lp, |o| {
            let state = o.lp.collaboration_state()?;
            let json = String::from_utf8(state.encode())
                .map_err(|e| Error::new(ShmcStatus::SHMC_ERR_OTHER, e.to_string()))?;
            write_str(&json, buf, cap, needed)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::msg::*;
    use crate::txn::*;
    use ShmcStatus::*;

    /// Without a manager: a null handle is refused by every call, and
    /// connect says why it cannot (the C test `badargs.c` covers a live,
    /// a foreign-thread and a closed handle, as an LP).
    #[test]
    fn null_handles_and_no_manager_are_error_codes() {
        let null = std::ptr::null_mut();
        let mut m = ShmcMessage::empty();
        let mut n = 0usize;
        let mut t = 0u64;
        // SAFETY: every pointer is null or points at a live local.
        unsafe {
            assert_eq!(
                shmc_connect(std::ptr::null_mut()),
                SHMC_ERR_INVALID_ARGUMENT
            );
            assert_eq!(
                shmc_send(null, c"x".as_ptr(), b"y".as_ptr(), 1),
                SHMC_ERR_INVALID_ARGUMENT
            );
            assert_eq!(
                shmc_recv_timeout(null, 0, &mut m),
                SHMC_ERR_INVALID_ARGUMENT
            );
            assert_eq!(
                shmc_subfunction_count(null, &mut n),
                SHMC_ERR_INVALID_ARGUMENT
            );
            assert_eq!(shmc_txn_begin(null, &mut t), SHMC_ERR_INVALID_ARGUMENT);
            assert_eq!(
                shmc_commit_wait(null, 1, 0, std::ptr::null_mut()),
                SHMC_ERR_INVALID_ARGUMENT
            );
            assert_eq!(shmc_close(null), SHMC_ERR_INVALID_ARGUMENT);
            assert_eq!(shmc_message_free(&mut m), SHMC_OK);
            assert_eq!(
                shmc_message_free(std::ptr::null_mut()),
                SHMC_ERR_INVALID_ARGUMENT
            );
            if shmc_under_manager() == 0 {
                let mut lp = std::ptr::dangling_mut::<ShmcLp>();
                assert_eq!(shmc_connect(&mut lp), SHMC_ERR_ENVIRONMENT);
                assert!(lp.is_null());
            }
        }
    }
}
