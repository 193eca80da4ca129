//! The shmcollab LP API as a C ABI: `libshmcollab.so` and
//! `libshmcollab.a`, declared by `include/shmcollab.h` (generated from
//! this crate by cbindgen, checked in; `tests/header.rs` fails when it is
//! stale: `SHMC_BLESS=1 cargo test -p shmcollab-c --test header`
//! rewrites it).
//!
//! # Conventions
//!
//! * Every symbol starts with `shmc_`. Every function returns a
//!   [`ShmcStatus`] (`SHMC_OK` = 0), except the few getters that cannot
//!   fail ([`shmc_last_error`], [`shmc_status_name`], `shmc_version`,
//!   `shmc_under_manager`).
//! * On an error, [`shmc_last_error`] gives the message, on the thread
//!   that made the call.
//! * Nothing unwinds across the boundary: every entry point runs its body
//!   under `catch_unwind` (`SHMC_ERR_PANIC`).
//! * Bad arguments are error codes: null pointers where one is needed,
//!   strings that are not UTF-8, impossible lengths, a closed handle, a
//!   handle used from the wrong thread, a transaction or commit id that is
//!   not open (`SHMC_ERR_INVALID_ARGUMENT`, `SHMC_ERR_CLOSED`,
//!   `SHMC_ERR_WRONG_THREAD`, `SHMC_ERR_NO_SUCH_ID`). What C cannot tell
//!   apart from a valid argument (a dangling pointer, a length longer than
//!   its buffer) stays the caller's duty.
//! * Ownership: structs passed by pointer for output (`shmc_message`,
//!   `shmc_bytes`, `shmc_entries`) are the caller's; the bytes they point
//!   to are the library's until the matching `shmc_*_free`, which also
//!   empties the struct (a second free does nothing). Zero them before
//!   first use.
//! * Text out (names, the state document): the caller's buffer, with the
//!   size needed reported (`shmc_subfunction`).
//!
//! # Thread-safety
//!
//! An LP handle (`shmc_lp *`) belongs to the thread that called
//! `shmc_connect`: every function taking one works only there, and returns
//! `SHMC_ERR_WRONG_THREAD` (doing nothing) on any other thread. The free
//! functions, `shmc_last_error`, `shmc_status_name`, `shmc_version` and
//! `shmc_under_manager` work on any thread. Each function's doc repeats
//! this.
//!
//! ```c
//! #include <shmcollab.h>
//! shmc_lp *lp;
//! if (shmc_connect(&lp) != SHMC_OK) { fprintf(stderr, "%s\n", shmc_last_error()); return 1; }
//! shmc_ready(lp);
//! shmc_message m = {0};
//! while (shmc_recv_timeout(lp, 1000, &m) == SHMC_OK) {
//!     if (m.kind == SHMC_KIND_REQUEST) shmc_reply(lp, &m, m.data, m.len);
//!     shmc_message_free(&m);
//! }
//! shmc_close(lp);
//! ```
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

mod args;
mod handle;
mod lp;
mod msg;
mod status;
mod txn;

pub use handle::ShmcLp;
pub use lp::*;
pub use msg::*;
pub use status::{shmc_last_error, shmc_status_name, ShmcStatus};
pub use txn::*;

/// The library's version, a static NUL-terminated string ("0.1.0").
///
/// Thread-safety: any thread.
#[no_mangle]
pub extern "C" fn shmc_version() -> *const std::ffi::c_char {
    const V: &str = concat!(env!("CARGO_PKG_VERSION"), "\0");
    V.as_ptr().cast()
}
