//! Status codes, the thread-local last error, and the guard every entry
//! point runs its body in (no panic crosses the boundary).

use shmcollab_runtime::{LpError, TxnError};
use std::cell::RefCell;
use std::ffi::{c_char, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// What a call returned. `SHMC_OK` is 0; every other value is an error
/// whose message [`shmc_last_error`] gives on the same thread.
///
/// Values are stable: new codes are added at the end.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum ShmcStatus {
    /// Success.
    SHMC_OK = 0,
    /// A null pointer where one is required, a string that is not UTF-8,
    /// a length that cannot be right, an output buffer of 0 bytes with a
    /// null pointer.
    SHMC_ERR_INVALID_ARGUMENT = 1,
    /// The LP handle was closed by `shmc_close`.
    SHMC_ERR_CLOSED = 2,
    /// The LP handle was used from a thread other than the one that
    /// connected it.
    SHMC_ERR_WRONG_THREAD = 3,
    /// Not started by a shmcollab manager, or its environment is damaged
    /// (also: `shmc_connect` called a second time in one process).
    SHMC_ERR_ENVIRONMENT = 4,
    /// The session or one of its segments could not be opened.
    SHMC_ERR_ATTACH = 5,
    /// No sub-function of that name in this collaboration.
    SHMC_ERR_UNKNOWN_SUBFN = 6,
    /// The ring to the manager is full (`shmc_try_send`, or a timeout
    /// that ran out waiting for room).
    SHMC_ERR_WOULD_BLOCK = 7,
    /// Nothing arrived in time (`shmc_recv_timeout`, `shmc_request`,
    /// `shmc_commit_wait`; for a commit: its outcome is unknown).
    SHMC_ERR_TIMEOUT = 8,
    /// The message is larger than a ring carries.
    SHMC_ERR_TOO_LARGE = 9,
    /// A ring shared with the manager is unusable.
    SHMC_ERR_CORRUPT = 10,
    /// The collaboration state is not available (not published yet).
    SHMC_ERR_STATE = 11,
    /// The output buffer is too small; the size needed was stored.
    SHMC_ERR_BUFFER_TOO_SMALL = 12,
    /// The transaction conflicted with another one: nothing applied, run
    /// it again.
    SHMC_ERR_CONFLICT = 13,
    /// The commit failed and nothing of it was applied (full disk, I/O
    /// error, no host).
    SHMC_ERR_TXN_FAILED = 14,
    /// The transaction server's answer did not decode.
    SHMC_ERR_BAD_REPLY = 15,
    /// No open transaction or pending commit with that id on this handle
    /// (never issued, already committed or aborted, or its outcome
    /// already taken).
    SHMC_ERR_NO_SUCH_ID = 16,
    /// `shmc_commit_poll`: the outcome is not known yet.
    SHMC_ERR_PENDING = 17,
    /// A bug: the library panicked. The call did nothing reliable; an LP
    /// handle it was given is poisoned (every later call on it returns this).
    SHMC_ERR_PANIC = 18,
    /// An error the library does not know a code for (see the message).
    SHMC_ERR_OTHER = 19,
}

use ShmcStatus::*;

/// Every status, in value order.
const ALL: [ShmcStatus; 20] = [
    SHMC_OK,
    SHMC_ERR_INVALID_ARGUMENT,
    SHMC_ERR_CLOSED,
    SHMC_ERR_WRONG_THREAD,
    SHMC_ERR_ENVIRONMENT,
    SHMC_ERR_ATTACH,
    SHMC_ERR_UNKNOWN_SUBFN,
    SHMC_ERR_WOULD_BLOCK,
    SHMC_ERR_TIMEOUT,
    SHMC_ERR_TOO_LARGE,
    SHMC_ERR_CORRUPT,
    SHMC_ERR_STATE,
    SHMC_ERR_BUFFER_TOO_SMALL,
    SHMC_ERR_CONFLICT,
    SHMC_ERR_TXN_FAILED,
    SHMC_ERR_BAD_REPLY,
    SHMC_ERR_NO_SUCH_ID,
    SHMC_ERR_PENDING,
    SHMC_ERR_PANIC,
    SHMC_ERR_OTHER,
];

impl ShmcStatus {
    /// The status's name as a NUL-terminated string.
    fn name(self) -> &'static CStr {
        match self {
            SHMC_OK => c"SHMC_OK",
            SHMC_ERR_INVALID_ARGUMENT => c"SHMC_ERR_INVALID_ARGUMENT",
            SHMC_ERR_CLOSED => c"SHMC_ERR_CLOSED",
            SHMC_ERR_WRONG_THREAD => c"SHMC_ERR_WRONG_THREAD",
            SHMC_ERR_ENVIRONMENT => c"SHMC_ERR_ENVIRONMENT",
            SHMC_ERR_ATTACH => c"SHMC_ERR_ATTACH",
            SHMC_ERR_UNKNOWN_SUBFN => c"SHMC_ERR_UNKNOWN_SUBFN",
            SHMC_ERR_WOULD_BLOCK => c"SHMC_ERR_WOULD_BLOCK",
            SHMC_ERR_TIMEOUT => c"SHMC_ERR_TIMEOUT",
            SHMC_ERR_TOO_LARGE => c"SHMC_ERR_TOO_LARGE",
            SHMC_ERR_CORRUPT => c"SHMC_ERR_CORRUPT",
            SHMC_ERR_STATE => c"SHMC_ERR_STATE",
            SHMC_ERR_BUFFER_TOO_SMALL => c"SHMC_ERR_BUFFER_TOO_SMALL",
            SHMC_ERR_CONFLICT => c"SHMC_ERR_CONFLICT",
            SHMC_ERR_TXN_FAILED => c"SHMC_ERR_TXN_FAILED",
            SHMC_ERR_BAD_REPLY => c"SHMC_ERR_BAD_REPLY",
            SHMC_ERR_NO_SUCH_ID => c"SHMC_ERR_NO_SUCH_ID",
            SHMC_ERR_PENDING => c"SHMC_ERR_PENDING",
            SHMC_ERR_PANIC => c"SHMC_ERR_PANIC",
            SHMC_ERR_OTHER => c"SHMC_ERR_OTHER",
        }
    }
}

/// An error on its way to the caller: the code and the message that
/// [`shmc_last_error`] will return.
#[derive(Debug)]
pub(crate) struct Error {
    pub(crate) status: ShmcStatus,
    pub(crate) msg: String,
}

impl Error {
    pub(crate) fn new(status: ShmcStatus, msg: impl Into<String>) -> Error {
        Error {
            status,
            msg: msg.into(),
        }
    }

    /// A null pointer for the argument `what`.
    pub(crate) fn null(what: &str) -> Error {
        Error::new(
            SHMC_ERR_INVALID_ARGUMENT,
            format!("{what} is a null pointer"),
        )
    }

    pub(crate) fn invalid(msg: impl Into<String>) -> Error {
        Error::new(SHMC_ERR_INVALID_ARGUMENT, msg)
    }
}

impl From<LpError> for Error {
    fn from(e: LpError) -> Error {
        let status = match &e {
            LpError::Environment(_) => SHMC_ERR_ENVIRONMENT,
            LpError::Attach(_) => SHMC_ERR_ATTACH,
            LpError::UnknownSubfn(_) => SHMC_ERR_UNKNOWN_SUBFN,
            LpError::WouldBlock => SHMC_ERR_WOULD_BLOCK,
            LpError::Timeout => SHMC_ERR_TIMEOUT,
            LpError::TooLarge { .. } => SHMC_ERR_TOO_LARGE,
            LpError::Corrupt(_) => SHMC_ERR_CORRUPT,
            LpError::State(_) => SHMC_ERR_STATE,
            _ => SHMC_ERR_OTHER,
        };
        Error::new(status, e.to_string())
    }
}

impl From<TxnError> for Error {
    fn from(e: TxnError) -> Error {
        let status = match e {
            TxnError::Lp(e) => return e.into(),
            TxnError::Conflict(_) => SHMC_ERR_CONFLICT,
            TxnError::Failed(_) => SHMC_ERR_TXN_FAILED,
            TxnError::Timeout => SHMC_ERR_TIMEOUT,
            TxnError::UnknownSubfn(_) => SHMC_ERR_UNKNOWN_SUBFN,
            TxnError::BadReply(_) => SHMC_ERR_BAD_REPLY,
            _ => SHMC_ERR_OTHER,
        };
        Error::new(status, e.to_string())
    }
}

thread_local! {
    /// The message of the last error on this thread.
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

pub(crate) fn set_last_error(msg: &str) {
    // A message with a NUL in it is cut there.
    let bytes = msg.as_bytes();
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    let c = CString::new(&bytes[..end]).unwrap_or_default();
    // A thread being torn down has no slot any more: nothing to keep then.
    let _ = LAST_ERROR.try_with(|e| *e.borrow_mut() = c);
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    let what = p
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".into());
    format!("internal error (panic): {what}")
}

/// Runs an entry point's body: its error becomes the status and the
/// thread's last error, and a panic is caught (`SHMC_ERR_PANIC`).
pub(crate) fn guard(f: impl FnOnce() -> Result<(), Error>) -> ShmcStatus {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => SHMC_OK,
        Ok(Err(e)) => {
            set_last_error(&e.msg);
            e.status
        }
        Err(p) => {
            set_last_error(&panic_message(&*p));
            SHMC_ERR_PANIC
        }
    }
}

/// The message of the last call on this thread that returned an error, as
/// a NUL-terminated UTF-8 string ("" if none did). It stays valid until the
/// next call into the library on this thread; copy it to keep it.
///
/// Thread-safety: any thread; each thread has its own.
#[no_mangle]
pub extern "C" fn shmc_last_error() -> *const c_char {
    let r = catch_unwind(|| {
        LAST_ERROR
            .try_with(|e| e.borrow().as_ptr())
            .unwrap_or(c"".as_ptr())
    });
    r.unwrap_or(c"".as_ptr())
}

/// The name of a status (`"SHMC_ERR_TIMEOUT"`), a static string;
/// `"SHMC_ERR_UNKNOWN"` for a value that is no status.
///
/// Thread-safety: any thread.
#[no_mangle]
pub extern "C" fn shmc_status_name(status: i32) -> *const c_char {
    ALL.iter()
        .find(|s| **s as i32 == status)
        .map_or(c"SHMC_ERR_UNKNOWN".as_ptr(), |s| s.name().as_ptr())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_their_positions() {
        for (i, s) in ALL.iter().enumerate() {
            assert_eq!(*s as usize, i, "{s:?}");
            let name = s.name().to_str().unwrap();
            assert_eq!(name, format!("{s:?}"));
        }
    }

    #[test]
    fn guard_catches_panics_and_keeps_the_message() {
        let s = guard(|| panic!("boom"));
        assert_eq!(s, SHMC_ERR_PANIC);
        // SAFETY: shmc_last_error returns a NUL-terminated string that
        // stays valid until the next call on this thread.
        let msg = unsafe { CStr::from_ptr(shmc_last_error()) };
        assert!(msg.to_str().unwrap().contains("boom"), "{msg:?}");
        let s = guard(|| Err(Error::null("x")));
        assert_eq!(s, SHMC_ERR_INVALID_ARGUMENT);
        // SAFETY: as above.
        let msg = unsafe { CStr::from_ptr(shmc_last_error()) };
        assert_eq!(msg.to_str().unwrap(), "x is a null pointer");
    }

    #[test]
    fn unknown_status_has_a_name() {
        // SAFETY: static NUL-terminated strings.
        let n = unsafe { CStr::from_ptr(shmc_status_name(999)) };
        assert_eq!(n.to_str().unwrap(), "SHMC_ERR_UNKNOWN");
        // SAFETY: as above.
        let n = unsafe { CStr::from_ptr(shmc_status_name(8)) };
        assert_eq!(n.to_str().unwrap(), "SHMC_ERR_TIMEOUT");
    }
}
