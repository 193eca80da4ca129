//! Arguments from C: strings, byte ranges and output pointers, checked
//! before use. A null pointer where one is needed, a string that is not
//! UTF-8 or a length no buffer can have is `SHMC_ERR_INVALID_ARGUMENT`.

use crate::status::{Error, ShmcStatus};
use std::ffi::{c_char, CStr};

/// The UTF-8 string at `p`, named `what` in errors.
///
/// # Safety
/// `p` is null or points at a NUL-terminated string that stays valid and
/// unchanged for `'a`.
pub(crate) unsafe fn str_arg<'a>(p: *const c_char, what: &str) -> Result<&'a str, Error> {
    if p.is_null() {
        return Err(Error::null(what));
    }
    // SAFETY: not null, and NUL-terminated and valid for 'a by the
    // caller's contract.
    let c = unsafe { CStr::from_ptr(p) };
    c.to_str()
        .map_err(|_| Error::invalid(format!("{what} is not UTF-8")))
}

/// The `len` bytes at `p`, named `what` in errors; `p` may be null when
/// `len` is 0.
///
/// # Safety
/// Unless `len` is 0, `p` is null or points at `len` readable bytes that
/// stay valid and unchanged for `'a`.
pub(crate) unsafe fn bytes_arg<'a>(
    p: *const u8,
    len: usize,
    what: &str,
) -> Result<&'a [u8], Error> {
    if len == 0 {
        return Ok(&[]);
    }
    if p.is_null() {
        return Err(Error::null(what));
    }
    if len > isize::MAX as usize {
        return Err(Error::invalid(format!(
            "{what}: a length of {len} bytes cannot be right"
        )));
    }
    // SAFETY: `p` is not null, `len` fits an isize, and the caller
    // promises `len` readable bytes valid for 'a.
    Ok(unsafe { std::slice::from_raw_parts(p, len) })
}

/// The place an output goes, named `what` in errors.
///
/// # Safety
/// `p` is null or valid for writes of one `T` (alignment included) for
/// `'a`, and nothing else reads or writes it meanwhile.
pub(crate) unsafe fn out_arg<'a, T>(p: *mut T, what: &str) -> Result<&'a mut T, Error> {
    // SAFETY: by the caller's contract, `p` is null or valid and unique.
    unsafe { p.as_mut() }.ok_or_else(|| Error::null(what))
}

/// Writes `s` with a terminating NUL into `buf` (`cap` bytes), and the
/// bytes that takes (`s.len() + 1`) into `*needed` unless `needed` is null.
/// A `buf` too small gets nothing and the call fails with
/// `SHMC_ERR_BUFFER_TOO_SMALL`: ask with `cap = 0` (and `buf` null) for the
/// size first.
///
/// # Safety
/// `buf` is null or valid for writes of `cap` bytes; `needed` is null or
/// valid for a write of a `usize`.
pub(crate) unsafe fn write_str(
    s: &str,
    buf: *mut c_char,
    cap: usize,
    needed: *mut usize,
) -> Result<(), Error> {
    let want = s.len() + 1;
    // SAFETY: `needed` is null or writable, by the caller's contract.
    if let Some(n) = unsafe { needed.as_mut() } {
        *n = want;
    }
    if cap < want {
        return Err(Error::new(
            ShmcStatus::SHMC_ERR_BUFFER_TOO_SMALL,
            format!("the buffer holds {cap} bytes; {want} are needed"),
        ));
    }
    if buf.is_null() {
        return Err(Error::null("buf"));
    }
    // SAFETY: `buf` is writable for `cap >= want` bytes; `s` is a
    // different allocation (a Rust string), so they do not overlap.
    unsafe {
        std::ptr::copy_nonoverlapping(s.as_ptr(), buf.cast::<u8>(), s.len());
        *buf.add(s.len()) = 0;
    }
    Ok(())
}

/// Bytes handed to C: a boxed slice as a pointer and a length, freed by
/// [`free_bytes`]. An empty slice is a null pointer.
pub(crate) fn give_bytes(v: Vec<u8>) -> (*mut u8, usize) {
    if v.is_empty() {
        return (std::ptr::null_mut(), 0);
    }
    let b = v.into_boxed_slice();
    let len = b.len();
    (Box::into_raw(b).cast::<u8>(), len)
}

/// Frees what [`give_bytes`] handed out.
///
/// # Safety
/// `(p, len)` came from one `give_bytes` call and was not freed since, or
/// `p` is null.
pub(crate) unsafe fn free_bytes(p: *mut u8, len: usize) {
    if p.is_null() {
        return;
    }
    let slice = std::ptr::slice_from_raw_parts_mut(p, len);
    // SAFETY: (p, len) is the boxed slice `give_bytes` leaked, freed once.
    drop(unsafe { Box::from_raw(slice) });
}
