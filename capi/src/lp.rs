//! Entry points of the LP itself: connect, close, who it is, messages,
//! readiness, reports and the collaboration state.
//!
//! Thread-safety of every function here that takes a `shmc_lp *`: only on
//! the thread that connected it; from another thread it returns
//! `SHMC_ERR_WRONG_THREAD` and does nothing. Functions without an LP
//! handle say so themselves.

use crate::args::{bytes_arg, free_bytes, give_bytes, out_arg, str_arg, write_str};
use crate::handle::{close, with_lp, ShmcLp};
use crate::status::{guard, Error, ShmcStatus};
use shmcollab_runtime::{Lp, Message, MessageKind};
use std::ffi::c_char;
use std::time::Duration;

/// Bytes in [`ShmcMessage::to`]: the longest sub-function name (55) and
/// its NUL.
pub const SHMC_SUBFN_NAME_CAP: usize = 56;

const _: () = assert!(SHMC_SUBFN_NAME_CAP == shmcollab_shm::registry::MAX_SUBFN_NAME_LEN + 1);

/// A plain message (`shmc_send`).
pub const SHMC_KIND_DATA: u32 = 0;
/// A request: answer it with `shmc_reply`.
pub const SHMC_KIND_REQUEST: u32 = 1;
/// A reply to a request of ours.
pub const SHMC_KIND_REPLY: u32 = 2;
/// A broadcast.
pub const SHMC_KIND_BROADCAST: u32 = 3;

/// A received message (`shmc_message` in C). The struct is the caller's;
/// the bytes at `data` are the library's until `shmc_message_free`.
/// Zero it (`shmc_message m = {0};`) before first use.
#[repr(C)]
#[derive(Debug)]
pub struct ShmcMessage {
    /// The payload (null when `len` is 0).
    pub data: *mut u8,
    /// Its length in bytes.
    pub len: usize,
    /// Slot of the sending LP, as its manager stamped it.
    pub from: u32,
    /// `SHMC_KIND_DATA`, `_REQUEST`, `_REPLY` or `_BROADCAST`.
    pub kind: u32,
    /// Correlation id (requests and replies).
    pub corr: u32,
    /// The sub-function it was addressed to, NUL-terminated ("" for
    /// replies and broadcasts).
    pub to: [c_char; SHMC_SUBFN_NAME_CAP],
}

impl ShmcMessage {
    fn empty() -> ShmcMessage {
        ShmcMessage {
            data: std::ptr::null_mut(),
            len: 0,
            from: 0,
            kind: 0,
            corr: 0,
            to: [0; SHMC_SUBFN_NAME_CAP],
        }
    }

    fn from_message(m: Message) -> ShmcMessage {
        let mut out = ShmcMessage::empty();
        out.from = m.from;
        out.corr = m.corr;
        out.kind = match m.kind {
            MessageKind::Data => SHMC_KIND_DATA,
            MessageKind::Request => SHMC_KIND_REQUEST,
            MessageKind::Reply => SHMC_KIND_REPLY,
            MessageKind::Broadcast => SHMC_KIND_BROADCAST,
        };
        if let Some(to) = m.to {
            let n = to.len().min(SHMC_SUBFN_NAME_CAP - 1);
            for (d, s) in out.to.iter_mut().zip(&to.as_bytes()[..n]) {
                *d = *s as c_char;
            }
        }
        (out.data, out.len) = give_bytes(m.payload);
        out
    }
}

fn ms(timeout_ms: u64) -> Duration {
    Duration::from_millis(timeout_ms)
}

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

/// The three ways of sending.
enum How {
    Wait,
    Try,
    For(Duration),
}

/// Sends with `how`, after the argument checks.
///
/// Thread-safety: only on the thread that connected `lp`
/// (`SHMC_ERR_WRONG_THREAD` elsewhere).
///
/// # Safety
/// As for [`shmc_send`].
unsafe fn send_how(
    lp: *mut ShmcLp,
    subfn: *const c_char,
    data: *const u8,
    len: usize,
    how: How,
) -> ShmcStatus {
    // SAFETY: forwarded contract.
    unsafe {
        with_lp(lp, |o| {
            let subfn = str_arg(subfn, "subfn")?;
            let bytes = bytes_arg(data, len, "data")?;
            match how {
                How::Wait => o.lp.send(subfn, bytes),
                How::Try => o.lp.try_send(subfn, bytes),
                How::For(t) => o.lp.send_timeout(subfn, bytes, t),
            }?;
            Ok(())
        })
    }
}

/// Sends the `len` bytes at `data` to sub-function `subfn`, waiting while
/// the ring to the manager is full. `data` may be null when `len` is 0.
///
/// Thread-safety: only on the thread that connected `lp`
/// (`SHMC_ERR_WRONG_THREAD` elsewhere).
///
/// # Safety
/// `lp` null or from `shmc_connect`; `subfn` null or a NUL-terminated
/// string; `data` null or readable for `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn shmc_send(
    lp: *mut ShmcLp,
    subfn: *const c_char,
    data: *const u8,
    len: usize,
) -> ShmcStatus {
    // SAFETY: forwarded contract.
    unsafe { send_how(lp, subfn, data, len, How::Wait) }
}

/// As `shmc_send`, but `SHMC_ERR_WOULD_BLOCK` at once if the ring is full.
///
/// Thread-safety: only on the thread that connected `lp`
/// (`SHMC_ERR_WRONG_THREAD` elsewhere).
///
/// # Safety
/// As for `shmc_send`.
#[no_mangle]
pub unsafe extern "C" fn shmc_try_send(
    lp: *mut ShmcLp,
    subfn: *const c_char,
    data: *const u8,
    len: usize,
) -> ShmcStatus {
    // SAFETY: forwarded contract.
    unsafe { send_how(lp, subfn, data, len, How::Try) }
}

/// As `shmc_send`, waiting at most `timeout_ms` for room
/// (`SHMC_ERR_WOULD_BLOCK` then).
///
/// Thread-safety: only on the thread that connected `lp`
/// (`SHMC_ERR_WRONG_THREAD` elsewhere).
///
/// # Safety
/// As for `shmc_send`.
#[no_mangle]
pub unsafe extern "C" fn shmc_send_timeout(
    lp: *mut ShmcLp,
    subfn: *const c_char,
    data: *const u8,
    len: usize,
    timeout_ms: u64,
) -> ShmcStatus {
    // SAFETY: forwarded contract.
    unsafe { send_how(lp, subfn, data, len, How::For(ms(timeout_ms))) }
}

/// Sends the bytes to every other LP.
///
/// Thread-safety: only on the thread that connected `lp`
/// (`SHMC_ERR_WRONG_THREAD` elsewhere).
///
/// # Safety
/// `lp` null or from `shmc_connect`; `data` null or readable for `len`.
#[no_mangle]
pub unsafe extern "C" fn shmc_broadcast(
    lp: *mut ShmcLp,
    data: *const u8,
    len: usize,
) -> ShmcStatus {
    // SAFETY: forwarded contract.
    unsafe {
        with_lp(lp, |o| {
            o.lp.broadcast(bytes_arg(data, len, "data")?)?;
            Ok(())
        })
    }
}

/// Waits up to `timeout_ms` (0: just look) for the next message and
/// stores it in `*out`; `SHMC_ERR_TIMEOUT` if none came. `*out` is
/// overwritten on every call (empty unless `SHMC_OK`): free what an earlier
/// call stored in it first, with `shmc_message_free`.
///
/// Thread-safety: only on the thread that connected `lp`
/// (`SHMC_ERR_WRONG_THREAD` elsewhere).
///
/// # Safety
/// `lp` null or from `shmc_connect`; `out` null or writable.
#[no_mangle]
pub unsafe extern "C" fn shmc_recv_timeout(
    lp: *mut ShmcLp,
    timeout_ms: u64,
    out: *mut ShmcMessage,
) -> ShmcStatus {
    // SAFETY: forwarded contract.
    unsafe {
        with_lp(lp, |o| {
            let out = out_arg(out, "out")?;
            // Written (empty) before anything can fail, so that a free
            // after any outcome is harmless.
            *out = ShmcMessage::empty();
            match o.lp.recv_timeout(ms(timeout_ms))? {
                Some(m) => {
                    *out = ShmcMessage::from_message(m);
                    Ok(())
                }
                None => Err(Error::new(
                    ShmcStatus::SHMC_ERR_TIMEOUT,
                    "no message arrived in time",
                )),
            }
        })
    }
}

/// Sends a request to `subfn` and waits up to `timeout_ms` for its reply,
/// stored in `*reply` as by `shmc_recv_timeout`. Messages that arrive
/// meanwhile are kept for `shmc_recv_timeout`.
///
/// Thread-safety: only on the thread that connected `lp`
/// (`SHMC_ERR_WRONG_THREAD` elsewhere).
///
/// # Safety
/// `lp` null or from `shmc_connect`; `subfn` null or NUL-terminated;
/// `data` null or readable for `len` bytes; `reply` null or writable.
#[no_mangle]
pub unsafe extern "C" fn shmc_request(
    lp: *mut ShmcLp,
    subfn: *const c_char,
    data: *const u8,
    len: usize,
    timeout_ms: u64,
    reply: *mut ShmcMessage,
) -> ShmcStatus {
    // SAFETY: forwarded contract.
    unsafe {
        with_lp(lp, |o| {
            let out = out_arg(reply, "reply")?;
            *out = ShmcMessage::empty();
            let subfn = str_arg(subfn, "subfn")?;
            let bytes = bytes_arg(data, len, "data")?;
            let m = o.lp.request(subfn, bytes, ms(timeout_ms))?;
            *out = ShmcMessage::from_message(m);
            Ok(())
        })
    }
}

/// Answers the request `req` (a message of kind `SHMC_KIND_REQUEST`) with
/// the `len` bytes at `data`.
///
/// Thread-safety: only on the thread that connected `lp`
/// (`SHMC_ERR_WRONG_THREAD` elsewhere).
///
/// # Safety
/// `lp` null or from `shmc_connect`; `req` null or a readable message;
/// `data` null or readable for `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn shmc_reply(
    lp: *mut ShmcLp,
    req: *const ShmcMessage,
    data: *const u8,
    len: usize,
) -> ShmcStatus {
    // SAFETY: forwarded contract.
    unsafe {
        with_lp(lp, |o| {
            let req = req.as_ref().ok_or_else(|| Error::null("req"))?;
            if req.kind != SHMC_KIND_REQUEST {
                return Err(Error::invalid(format!(
                    "req is a message of kind {}, not a request",
                    req.kind
                )));
            }
            let bytes = bytes_arg(data, len, "data")?;
            let m = Message {
                from: req.from,
                to: None,
                kind: MessageKind::Request,
                corr: req.corr,
                payload: Vec::new(),
            };
            o.lp.reply(&m, bytes)?;
            Ok(())
        })
    }
}

/// Frees the bytes of a message and empties it (`data` null, `len` 0), so
/// a second free does nothing. A null `m` is `SHMC_ERR_INVALID_ARGUMENT`.
///
/// Thread-safety: any thread (a message is plain data).
///
/// # Safety
/// `m` is null or a message filled by this library (or zeroed), not
/// changed by the caller since.
#[no_mangle]
pub unsafe extern "C" fn shmc_message_free(m: *mut ShmcMessage) -> ShmcStatus {
    guard(|| {
        // SAFETY: null or writable, by this function's contract.
        let m = unsafe { out_arg(m, "m") }?;
        let (p, len) = (m.data, m.len);
        m.data = std::ptr::null_mut();
        m.len = 0;
        // SAFETY: (p, len) came from `give_bytes` in `from_message` and
        // was not freed: the fields are reset here on every free.
        unsafe { free_bytes(p, len) };
        Ok(())
    })
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

    #[test]
    fn messages_hand_out_and_take_back_their_bytes() {
        let mut m = ShmcMessage::from_message(Message {
            from: 3,
            to: Some("count/7".into()),
            kind: MessageKind::Request,
            corr: 9,
            payload: b"hello".to_vec(),
        });
        assert_eq!(
            (m.from, m.kind, m.corr, m.len),
            (3, SHMC_KIND_REQUEST, 9, 5)
        );
        // SAFETY: `to` is NUL-terminated (zeroed, name shorter than it).
        let to = unsafe { std::ffi::CStr::from_ptr(m.to.as_ptr()) };
        assert_eq!(to.to_str().unwrap(), "count/7");
        // SAFETY: (data, len) was handed out by from_message just now.
        let bytes = unsafe { std::slice::from_raw_parts(m.data, m.len) };
        assert_eq!(bytes, b"hello");
        // SAFETY: a message filled by the library.
        unsafe {
            assert_eq!(shmc_message_free(&mut m), SHMC_OK);
            assert!(m.data.is_null() && m.len == 0);
            assert_eq!(shmc_message_free(&mut m), SHMC_OK);
        }
    }
}
