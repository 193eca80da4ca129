//! Messages: the received-message struct and sending, receiving,
//! requests and replies.
//!
//! Thread-safety of every function here that takes a `shmc_lp *`: only on
//! the thread that connected it; from another thread it returns
//! `SHMC_ERR_WRONG_THREAD` and does nothing.

use crate::args::{bytes_arg, free_bytes, give_bytes, out_arg, str_arg};
use crate::handle::{with_lp, ShmcLp};
use crate::status::{guard, Error, ShmcStatus};
use shmcollab_runtime::{Message, MessageKind};
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
    pub(crate) fn empty() -> ShmcMessage {
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

#[cfg(test)]
mod tests {
    use super::*;
    use ShmcStatus::*;

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
