//! Where a ring's bytes live: a shared-memory mapping or a heap buffer
//! (both through [`Mem`]), or loom cells under `--cfg loom`, so that the
//! producer and consumer code is the same in all three.

use super::layout::RingHeader;
#[cfg(not(loom))]
use super::layout::{init_header, ring_body_len, HEADER_LEN};
#[cfg(loom)]
use super::layout::{Line, Meta, RING_MAGIC, RING_VERSION};
use super::layout::{MAX_CAPACITY, MIN_CAPACITY};
use super::{Consumer, Producer};
#[cfg(loom)]
use crate::doorbell::Doorbell;
#[cfg(loom)]
use crate::sync::AtomicU64;
use std::sync::Arc;

/// Where the ring's memory comes from; kept alive by every handle.
#[cfg(not(loom))]
pub(super) struct Mem {
    pub(super) _keep: Arc<dyn Send + Sync>,
    pub(super) hdr: *const RingHeader,
    pub(super) data: *mut u8,
    /// Bytes of the data area (checked against the mapping at attach).
    pub(super) cap: usize,
}

#[cfg(loom)]
pub(super) struct Mem {
    inner: Arc<LoomRing>,
}

#[cfg(loom)]
struct LoomRing {
    hdr: RingHeader,
    data: Vec<loom::cell::UnsafeCell<u8>>,
}

/// Whether `len` bytes at `off` lie inside a data area of `cap` bytes.
#[inline]
fn in_bounds(off: usize, len: usize, cap: usize) -> bool {
    off.checked_add(len).is_some_and(|end| end <= cap)
}

impl Mem {
    /// Bytes of the data area.
    #[inline]
    fn cap(&self) -> usize {
        #[cfg(not(loom))]
        return self.cap;
        #[cfg(loom)]
        return self.inner.data.len();
    }

    #[inline]
    pub(super) fn hdr(&self) -> &RingHeader {
        #[cfg(not(loom))]
        // SAFETY: `hdr` points into memory that `_keep` keeps mapped, is
        // aligned (checked at attach) and holds atomics and plain integers,
        // valid for any bit pattern.
        unsafe {
            &*self.hdr
        }
        #[cfg(loom)]
        &self.inner.hdr
    }

    /// Copy `src` into the data area at `off`. The caller owns that range
    /// (the producer, before publishing it); a range outside the data area
    /// is a bug of the ring and panics rather than write out of bounds.
    #[inline]
    pub(super) fn write(&self, off: usize, src: &[u8]) {
        assert!(
            in_bounds(off, src.len(), self.cap()),
            "ring write out of bounds"
        );
        #[cfg(not(loom))]
        // SAFETY: the caller checked the range against the capacity, which
        // was checked against the mapping at attach; the range is owned by
        // the producer until published.
        unsafe {
            std::ptr::copy_nonoverlapping(src.as_ptr(), self.data.add(off), src.len())
        };
        #[cfg(loom)]
        for (i, b) in src.iter().enumerate() {
            // SAFETY: loom checks that no one else accesses the cell now.
            self.inner.data[off + i].with_mut(|p| unsafe { *p = *b });
        }
    }

    /// Copy from the data area at `off` into `dst`; same contract as `write`.
    #[inline]
    pub(super) fn read(&self, off: usize, dst: &mut [u8]) {
        assert!(
            in_bounds(off, dst.len(), self.cap()),
            "ring read out of bounds"
        );
        #[cfg(not(loom))]
        // SAFETY: as in `write`; the range was published to the consumer.
        unsafe {
            std::ptr::copy_nonoverlapping(self.data.add(off), dst.as_mut_ptr(), dst.len())
        };
        #[cfg(loom)]
        for (i, b) in dst.iter_mut().enumerate() {
            // SAFETY: loom checks that no one else accesses the cell now.
            *b = self.inner.data[off + i].with(|p| unsafe { *p });
        }
    }

    /// Pointer to byte `off` of the data area (for the producer's slot,
    /// which only it writes).
    ///
    /// # Safety
    /// `off` must be at most the capacity checked at attach.
    #[cfg(not(loom))]
    #[inline]
    pub(super) unsafe fn ptr(&self, off: usize) -> *mut u8 {
        // SAFETY: the caller keeps `off` within the data area, which lies
        // inside the mapping kept alive by `_keep`.
        unsafe { self.data.add(off) }
    }
}

// SAFETY: the raw pointers point into memory kept alive by `_keep` (which is
// Send + Sync); access is coordinated by the ring protocol, one producer and
// one consumer handle each.
#[cfg(not(loom))]
unsafe impl Send for Mem {}

/// An in-process ring on the heap (tests, benchmarks, loom models).
pub fn heap_ring(capacity: usize) -> (Producer, Consumer) {
    assert!(capacity.is_power_of_two() && (MIN_CAPACITY..=MAX_CAPACITY).contains(&capacity));
    #[cfg(not(loom))]
    {
        struct Heap(*mut u64, usize);
        // SAFETY: the buffer is only touched through the ring protocol.
        unsafe impl Send for Heap {}
        // SAFETY: as above.
        unsafe impl Sync for Heap {}
        impl Drop for Heap {
            fn drop(&mut self) {
                // SAFETY: built from a Box<[u64]> of length self.1 below.
                drop(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(self.0, self.1)) });
            }
        }
        // u64 words give 8-byte alignment; the header needs 128, so allocate
        // with slack and align by hand.
        let words = (ring_body_len(capacity) + 128) / 8;
        let buf = Box::into_raw(vec![0u64; words].into_boxed_slice()).cast::<u64>();
        let heap = Arc::new(Heap(buf, words));
        let base = buf.cast::<u8>();
        let skew = base.align_offset(128);
        // SAFETY: `skew < 128` and the buffer has 128 bytes of slack.
        let hdr = unsafe { base.add(skew) }.cast::<RingHeader>();
        // SAFETY: `hdr` is 128-aligned with ring_body_len(capacity) zeroed
        // bytes of the fresh buffer after it, not yet shared.
        unsafe { init_header(hdr, capacity) };
        let mk = || Mem {
            _keep: heap.clone(),
            hdr,
            // SAFETY: the data area follows the 640-byte header within the buffer.
            data: unsafe { hdr.cast::<u8>().add(HEADER_LEN) },
            cap: capacity,
        };
        (
            Producer::new(mk(), capacity, None),
            Consumer::new(mk(), capacity),
        )
    }
    #[cfg(loom)]
    {
        let hdr = RingHeader {
            meta: Line(Meta {
                magic: RING_MAGIC,
                version: RING_VERSION,
                flags: 0,
                capacity: capacity as u64,
                wait_hint: crate::sync::AtomicU32::new(0),
            }),
            head: Line(AtomicU64::new(0)),
            tail: Line(AtomicU64::new(0)),
            data_bell: Line(Doorbell::new()),
            space_bell: Line(Doorbell::new()),
        };
        let data = (0..capacity)
            .map(|_| loom::cell::UnsafeCell::new(0))
            .collect();
        let inner = Arc::new(LoomRing { hdr, data });
        (
            Producer::new(
                Mem {
                    inner: inner.clone(),
                },
                capacity,
            ),
            Consumer::new(Mem { inner }, capacity),
        )
    }
}
