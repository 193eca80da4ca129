//! The ring's byte layout and index arithmetic: the control block
//! ([`RingHeader`]) with its compile-time size and alignment checks, record
//! sizes, and the one check of the untrusted head and tail positions.
//!
//! The layout is drawn in the [module doc](super).

use crate::doorbell::Doorbell;
use crate::sync::{AtomicU32, AtomicU64};

/// `b"SHMCRNG1"` as a little-endian u64.
pub const RING_MAGIC: u64 = u64::from_le_bytes(*b"SHMCRNG1");
pub(super) const RING_VERSION: u32 = 1;
pub(super) const FRAME: u32 = 0x4652_4d31; // "FRM1"
pub(super) const PAD: u32 = 0x5041_4431; // "PAD1"
pub(super) const REC_HDR: usize = 8;
/// Bytes of the control block; the data area follows it.
pub(super) const HEADER_LEN: usize = 640;
/// Smallest capacity accepted.
pub const MIN_CAPACITY: usize = 64;
/// Largest capacity accepted.
pub const MAX_CAPACITY: usize = 1 << 30;

/// Own 128-byte alignment wrapper (CachePadded's alignment varies by target).
#[repr(C, align(128))]
pub(super) struct Line<T>(pub(super) T);

#[repr(C)]
pub(super) struct Meta {
    pub(super) magic: u64,
    pub(super) version: u32,
    pub(super) flags: u32,
    pub(super) capacity: u64,
    /// How the consumer had best wait, as its owner last said (the manager
    /// of an LP copies the collaboration's
    /// [`LoadMode`](crate::load::LoadMode) here for its LP). Written by the
    /// producer's side, read by the consumer's at each wait; untrusted
    /// there. Publishes nothing: Relaxed on both sides.
    pub(super) wait_hint: AtomicU32,
}
#[cfg(not(loom))]
const _: () = assert!(std::mem::offset_of!(Meta, wait_hint) == 24);

/// The ring's control block at the start of the segment body.
#[repr(C)]
pub struct RingHeader {
    pub(super) meta: Line<Meta>,
    /// Consumer position. Written only by the consumer.
    /// SYNC: Release store in `Consumer::release` (the frame's bytes are no
    /// longer read); Acquire load in `Producer::refresh_head`.
    pub(super) head: Line<AtomicU64>,
    /// Producer position. Written only by the producer.
    /// SYNC: Release store in `Producer::flush` publishes the frames written
    /// before it; Acquire load in `Consumer::refresh_tail`.
    pub(super) tail: Line<AtomicU64>,
    pub(super) data_bell: Line<Doorbell>,
    pub(super) space_bell: Line<Doorbell>,
}
#[cfg(not(loom))]
const _: () = assert!(std::mem::size_of::<RingHeader>() == HEADER_LEN);
#[cfg(not(loom))]
const _: () = assert!(std::mem::align_of::<RingHeader>() == 128);

/// Bytes of segment body a ring of `capacity` data bytes needs.
pub const fn ring_body_len(capacity: usize) -> usize {
    HEADER_LEN + capacity
}

/// Largest frame a ring of `capacity` bytes carries.
pub const fn max_frame_len(capacity: usize) -> usize {
    capacity / 2 - REC_HDR
}

/// Offset in the data area of the byte at position `pos`.
#[inline]
pub(super) const fn data_off(pos: u64, cap: usize) -> usize {
    (pos & (cap as u64 - 1)) as usize
}

/// Filler needed before a record of `rec` bytes at data offset `off` so
/// that the record does not wrap: the rest of the data area, or 0 if the
/// record fits before its end.
#[inline]
pub(super) const fn pad_before(off: usize, rec: usize, cap: usize) -> usize {
    if off + rec > cap {
        cap - off
    } else {
        0
    }
}

#[inline]
pub(super) const fn record_len(len: usize) -> usize {
    (REC_HDR + len + 7) & !7
}

pub(super) fn check_positions(head: u64, tail: u64, cap: usize) -> Result<(), &'static str> {
    if (head | tail) & 7 != 0 {
        return Err("misaligned position");
    }
    if tail < head {
        return Err("tail behind head");
    }
    if tail - head > cap as u64 {
        return Err("more data than capacity");
    }
    Ok(())
}

/// Write the control block of a fresh ring of `capacity` data bytes.
///
/// # Safety
///
/// `hdr` must point to zeroed, 128-aligned, writable memory of at least
/// `ring_body_len(capacity)` bytes that nobody else accesses yet.
#[cfg(not(loom))]
pub(super) unsafe fn init_header(hdr: *mut RingHeader, capacity: usize) {
    // SAFETY: the caller passes a pointer to zeroed, aligned memory of at
    // least ring_body_len(capacity) bytes that nobody else accesses yet.
    unsafe {
        let meta = std::ptr::addr_of_mut!((*hdr).meta.0);
        std::ptr::addr_of_mut!((*meta).magic).write(RING_MAGIC);
        std::ptr::addr_of_mut!((*meta).version).write(RING_VERSION);
        std::ptr::addr_of_mut!((*meta).capacity).write(capacity as u64);
    }
}
