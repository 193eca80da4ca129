//! The status area: the coordinator's published status, behind a seqlock.
//!
//! One writer (the coordinator) and any number of readers that never block
//! it. A reader copies the data and keeps the copy only if the sequence
//! counter was even and unchanged around it. A writer that died in the middle
//! of a write leaves the counter odd; the next writer waits a bounded time and
//! then takes over, so a crash cannot wedge the status for good.

use super::layout::{StatusHeader, STATUS_HEADER_LEN};
use super::{Registry, RegistryError, READ_RETRIES};
use std::sync::atomic::{fence, AtomicU64, Ordering};

/// Attempts of a status writer to find the seqlock even before it assumes the
/// previous writer died in the middle of a write and takes over.
const WRITE_LOCK_RETRIES: u32 = 100_000;

impl Registry {
    /// The shared status header and the data words that follow it.
    fn status_parts(&self) -> (&StatusHeader, &[AtomicU64]) {
        let l = &self.meta.layout;
        let base = self.seg.body_ptr();
        // SAFETY: status_off + 16 + round_up(status_cap, 8) == layout.total,
        // which fits in the body; status_off is a multiple of 128 from a
        // 128-aligned base, so the header and the u64 words that follow it are
        // aligned; all are atomics.
        unsafe {
            let h = &*base.add(l.status_off).cast::<StatusHeader>();
            let words = std::slice::from_raw_parts(
                base.add(l.status_off + STATUS_HEADER_LEN)
                    .cast::<AtomicU64>(),
                l.status_words(),
            );
            (h, words)
        }
    }

    /// Publish the collaboration status (by the coordinator). Fails with
    /// `StatusTooLong` if `data` exceeds the status area.
    ///
    /// One writer at a time is expected. A writer that finds the seqlock odd
    /// waits for a bounded time and then assumes the previous writer died in
    /// the middle of a write and takes over.
    pub fn publish_status(&self, data: &[u8]) -> Result<(), RegistryError> {
        let cap = self.status_cap();
        if data.len() > cap {
            return Err(RegistryError::StatusTooLong {
                len: data.len(),
                cap,
            });
        }
        let (h, words) = self.status_parts();
        let mine = lock_for_write(h);
        // SYNC: orders the odd seq before the data stores; pairs with the
        // Acquire fence in read_status.
        fence(Ordering::Release);
        for (w, chunk) in words.iter().zip(data.chunks(8)) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            w.store(u64::from_le_bytes(b), Ordering::Relaxed);
        }
        // Fits: data.len() <= cap <= MAX_STATUS_CAP < u32::MAX.
        h.len.store(data.len() as u32, Ordering::Relaxed);
        // SYNC: publishes data and len; pairs with the Acquire load in
        // read_status.
        h.seq.store(mine.wrapping_add(1), Ordering::Release);
        Ok(())
    }

    /// Read the last published status (empty if none). Retries a bounded
    /// number of times while a write is in progress, then fails with `Busy`.
    pub fn read_status(&self) -> Result<Vec<u8>, RegistryError> {
        let cap = self.status_cap();
        let (h, words) = self.status_parts();
        let mut out = Vec::new();
        for i in 0..READ_RETRIES {
            if i > 0 && i.is_multiple_of(64) {
                crate::sync::yield_now();
            }
            // SYNC: pairs with the Release store that ends publish_status.
            let s1 = h.seq.load(Ordering::Acquire);
            if !s1.is_multiple_of(2) {
                crate::sync::spin_hint();
                continue;
            }
            let len = h.len.load(Ordering::Relaxed) as usize;
            let n = len.min(cap);
            out.clear();
            for w in words.iter().take(n.div_ceil(8)) {
                out.extend_from_slice(&w.load(Ordering::Relaxed).to_le_bytes());
            }
            out.truncate(n);
            // SYNC: pairs with the Release fence in publish_status.
            fence(Ordering::Acquire);
            if h.seq.load(Ordering::Relaxed) != s1 {
                continue;
            }
            if len > cap {
                return Err(RegistryError::Corrupt(format!(
                    "status length {len} exceeds the status area of {cap} bytes"
                )));
            }
            return Ok(out);
        }
        Err(RegistryError::Busy("status"))
    }
}

/// Take the seqlock for writing: even -> odd, or, after
/// [`WRITE_LOCK_RETRIES`] attempts that found it odd, odd -> odd + 2 (the
/// previous writer is taken to have died mid-write). Returns the odd value
/// now held; the caller issues the Release fence before writing data.
fn lock_for_write(h: &StatusHeader) -> u64 {
    let mut tries = 0u32;
    loop {
        let cur = h.seq.load(Ordering::Relaxed);
        let next = if cur.is_multiple_of(2) {
            cur.wrapping_add(1)
        } else if tries >= WRITE_LOCK_RETRIES {
            cur.wrapping_add(2)
        } else {
            tries += 1;
            if tries.is_multiple_of(64) {
                crate::sync::yield_now();
            } else {
                crate::sync::spin_hint();
            }
            continue;
        };
        // Relaxed CAS, then the Release fence in publish_status.
        if h.seq
            .compare_exchange(cur, next, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
        {
            return next;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::test_session as session;

    #[test]
    fn garbage_status_does_not_panic() {
        let s = session();
        let r = Registry::create(&s, "unit", 4, &["a"], 64).unwrap();
        // A garbage status len is an error.
        let (h, _) = r.status_parts();
        h.len.store(u32::MAX, Ordering::Relaxed);
        assert!(matches!(r.read_status(), Err(RegistryError::Corrupt(_))));
        // An odd seq that never ends gives Busy, not a hang.
        h.seq.store(1, Ordering::Relaxed);
        assert!(matches!(r.read_status(), Err(RegistryError::Busy(_))));
        // and a writer takes over from a writer that died mid-write.
        r.publish_status(b"ok").unwrap();
        assert_eq!(r.read_status().unwrap(), b"ok");
    }
}
