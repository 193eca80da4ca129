//! Single-producer single-consumer ring of variable-size frames.
//!
//! The producer and the consumer are usually in different processes and map
//! the same segment. Frames are written in place ([`Producer::reserve`],
//! [`WriteSlot::commit`]) and read in place ([`Consumer::peek`],
//! [`ReadFrame::release`]); the tail is published once per batch
//! ([`Producer::flush`]).
//!
//! # Layout (segment body, little-endian)
//!
//! ```text
//! offset size  field
//!      0    8  magic  b"SHMCRNG1"
//!      8    4  layout version (1)
//!     12    4  flags (0)
//!     16    8  capacity: data bytes, a power of two, 64 ..= 2^30
//!     24  104  reserved
//!    128    8  head: consumer position (bytes ever released)      [own 128-byte line]
//!    256    8  tail: producer position (bytes ever published)     [own line]
//!    384    8  data doorbell: the consumer sleeps here (unless its owner uses an external one)
//!    512    8  space doorbell: the producer sleeps here when the ring is full
//!    640    -  data[capacity]
//! ```
//!
//! Positions grow without wrapping (u64); the byte at position `p` lives at
//! `data[p % capacity]`. `head <= tail <= head + capacity`, both multiples of 8.
//!
//! A record is an 8-byte header `len: u32, marker: u32` followed by `len`
//! bytes, padded to a multiple of 8. `marker` is `FRAME` for a frame, `PAD`
//! for filler up to the end of the data area (a frame never wraps, so it can
//! be read in place). The largest record is `capacity / 2`, so a frame always
//! fits once the ring has drained.
//!
//! # Waiting
//!
//! A full ring is back-pressure: [`Producer::send`] waits, `send_timeout`
//! gives up, `try_send` returns [`SendError::WouldBlock`]. Waiting is adaptive
//! ([`WaitStrategy`]): spin, yield, then sleep on a futex in the ring's
//! doorbells; a producer calls FUTEX_WAKE only if the consumer said it sleeps
//! and the reverse (see [`crate::doorbell`]).
//!
//! # Trust
//!
//! Head, tail and record headers are written by the other process and are
//! untrusted: every value is checked before use and a bad one yields
//! [`RingError::Corrupt`], never a read outside the data area or a panic.
//! The consumer's position lives in shared memory, so a consumer that
//! restarts resumes at the first unreleased frame.

use crate::doorbell::{Doorbell, WaitStrategy};
use crate::sync::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// `b"SHMCRNG1"` as a little-endian u64.
pub const RING_MAGIC: u64 = u64::from_le_bytes(*b"SHMCRNG1");
const RING_VERSION: u32 = 1;
const FRAME: u32 = 0x4652_4d31; // "FRM1"
const PAD: u32 = 0x5041_4431; // "PAD1"
const REC_HDR: usize = 8;
/// Smallest capacity accepted.
pub const MIN_CAPACITY: usize = 64;
/// Largest capacity accepted.
pub const MAX_CAPACITY: usize = 1 << 30;

/// Own 128-byte alignment wrapper (CachePadded's alignment varies by target).
#[repr(C, align(128))]
struct Line<T>(T);

#[repr(C)]
struct Meta {
    magic: u64,
    version: u32,
    flags: u32,
    capacity: u64,
}

/// The ring's control block at the start of the segment body.
#[repr(C)]
pub struct RingHeader {
    meta: Line<Meta>,
    /// Consumer position. Written only by the consumer.
    /// SYNC: Release store in `Consumer::release` (the frame's bytes are no
    /// longer read); Acquire load in `Producer::refresh_head`.
    head: Line<AtomicU64>,
    /// Producer position. Written only by the producer.
    /// SYNC: Release store in `Producer::flush` publishes the frames written
    /// before it; Acquire load in `Consumer::refresh_tail`.
    tail: Line<AtomicU64>,
    data_bell: Line<Doorbell>,
    space_bell: Line<Doorbell>,
}
#[cfg(not(loom))]
const _: () = assert!(std::mem::size_of::<RingHeader>() == 640);
#[cfg(not(loom))]
const _: () = assert!(std::mem::align_of::<RingHeader>() == 128);

/// Bytes of segment body a ring of `capacity` data bytes needs.
pub const fn ring_body_len(capacity: usize) -> usize {
    640 + capacity
}

/// Largest frame a ring of `capacity` bytes carries.
pub const fn max_frame_len(capacity: usize) -> usize {
    capacity / 2 - REC_HDR
}

#[inline]
const fn record_len(len: usize) -> usize {
    (REC_HDR + len + 7) & !7
}

/// Errors of sending.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The ring is full (try_send) or stayed full until the timeout.
    #[error("ring is full")]
    WouldBlock,
    /// The frame can never fit in this ring.
    #[error("frame of {len} bytes exceeds the ring's maximum of {max}")]
    TooLarge {
        /// Frame length asked for.
        len: usize,
        /// Largest frame this ring takes.
        max: usize,
    },
    /// The shared indices are inconsistent.
    #[error("ring is corrupt: {0}")]
    Corrupt(&'static str),
}

/// Errors of receiving.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RingError {
    /// The shared indices or a record header are inconsistent; the ring
    /// cannot be read any further.
    #[error("ring is corrupt: {0}")]
    Corrupt(&'static str),
}

/// Where the ring's memory comes from; kept alive by every handle.
#[cfg(not(loom))]
struct Mem {
    _keep: Arc<dyn Send + Sync>,
    hdr: *const RingHeader,
    data: *mut u8,
}

#[cfg(loom)]
struct Mem {
    inner: Arc<LoomRing>,
}

#[cfg(loom)]
struct LoomRing {
    hdr: RingHeader,
    data: Vec<loom::cell::UnsafeCell<u8>>,
}

impl Mem {
    #[inline]
    fn hdr(&self) -> &RingHeader {
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

    /// Copy `src` into the data area at `off`. Caller guarantees
    /// `off + src.len() <= capacity` and that it owns that range.
    #[inline]
    fn write(&self, off: usize, src: &[u8]) {
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
    fn read(&self, off: usize, dst: &mut [u8]) {
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

    /// Pointer to byte `off` of the data area.
    ///
    /// # Safety
    /// `off` must be at most the capacity checked at attach.
    #[cfg(not(loom))]
    #[inline]
    unsafe fn ptr(&self, off: usize) -> *mut u8 {
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

/// Reference to a doorbell in some segment, rung by a producer after each
/// flush instead of the ring's own data doorbell.
#[cfg(not(loom))]
#[derive(Clone)]
pub struct BellRef {
    _keep: Arc<dyn Send + Sync>,
    bell: *const Doorbell,
}

#[cfg(not(loom))]
// SAFETY: the pointer targets a Doorbell (atomics only) kept alive by `_keep`.
unsafe impl Send for BellRef {}
#[cfg(not(loom))]
// SAFETY: as above; Doorbell is Sync.
unsafe impl Sync for BellRef {}

#[cfg(not(loom))]
impl BellRef {
    /// A doorbell inside `seg`.
    ///
    /// # Safety
    /// `bell` must point to a properly aligned `Doorbell` inside `seg`'s mapping.
    pub unsafe fn new(seg: crate::segment::Segment, bell: *const Doorbell) -> BellRef {
        BellRef {
            _keep: Arc::new(seg),
            bell,
        }
    }

    /// The doorbell.
    pub fn get(&self) -> &Doorbell {
        // SAFETY: guaranteed by the contract of `new`; `_keep` keeps it mapped.
        unsafe { &*self.bell }
    }
}

fn check_positions(head: u64, tail: u64, cap: usize) -> Result<(), &'static str> {
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

fn init_header(hdr: *mut RingHeader, capacity: usize) {
    // SAFETY: the caller passes a pointer to zeroed, aligned memory of at
    // least ring_body_len(capacity) bytes that nobody else accesses yet.
    unsafe {
        let meta = std::ptr::addr_of_mut!((*hdr).meta.0);
        std::ptr::addr_of_mut!((*meta).magic).write(RING_MAGIC);
        std::ptr::addr_of_mut!((*meta).version).write(RING_VERSION);
        std::ptr::addr_of_mut!((*meta).capacity).write(capacity as u64);
    }
}

#[cfg(not(loom))]
mod shmring {
    use super::*;
    use crate::segment::{CreateError, OpenError, Segment, SegmentKind, Session};

    /// Create a ring segment `name` with `capacity` data bytes (a power of
    /// two, 64 ..= 2^30).
    pub fn create_ring(
        session: &Session,
        name: &str,
        capacity: usize,
    ) -> Result<Segment, CreateError> {
        assert!(
            capacity.is_power_of_two() && (MIN_CAPACITY..=MAX_CAPACITY).contains(&capacity),
            "ring capacity must be a power of two in 64..=2^30"
        );
        Segment::create(
            session,
            name,
            SegmentKind::Ring,
            ring_body_len(capacity),
            |p, _| init_header(p.cast(), capacity),
        )
    }

    /// The data doorbell of the ring in `seg`, for a producer of another
    /// ring whose consumer waits on this one (an LP reading several rings
    /// waits on its main ring's doorbell).
    pub fn data_bell_ref(seg: &Segment) -> Result<BellRef, OpenError> {
        let (mem, _) = mem(seg)?;
        let bell: *const Doorbell = &mem.hdr().data_bell.0;
        // SAFETY: `bell` points at the aligned doorbell inside the header of
        // `seg`'s mapping (validated by `mem`); BellRef keeps `seg` mapped.
        Ok(unsafe { BellRef::new(seg.clone(), bell) })
    }

    /// Open ring segment `name` of `session`.
    pub fn open_ring(session: &Session, name: &str) -> Result<Segment, OpenError> {
        let seg = Segment::open(session, name, SegmentKind::Ring)?;
        validate(&seg)?;
        Ok(seg)
    }

    /// Check a ring segment's control block; returns the capacity.
    pub(super) fn validate(seg: &Segment) -> Result<usize, OpenError> {
        let corrupt = |reason: &str| OpenError::Corrupt {
            path: seg.path().to_owned(),
            reason: reason.to_owned(),
        };
        if seg.body_len() < ring_body_len(0) {
            return Err(corrupt("ring segment shorter than its control block"));
        }
        let hdr = seg.body_ptr().cast::<RingHeader>();
        // SAFETY: body is at least 640 bytes, 128-aligned (header is 128
        // bytes into a page-aligned mapping); plain integer reads.
        let (magic, version, cap) = unsafe {
            let meta = std::ptr::addr_of!((*hdr).meta.0);
            (
                std::ptr::addr_of!((*meta).magic).read_volatile(),
                std::ptr::addr_of!((*meta).version).read_volatile(),
                std::ptr::addr_of!((*meta).capacity).read_volatile(),
            )
        };
        if magic != RING_MAGIC {
            return Err(corrupt("bad ring magic"));
        }
        if version != RING_VERSION {
            return Err(corrupt("unknown ring version"));
        }
        let cap = usize::try_from(cap).map_err(|_| corrupt("capacity out of range"))?;
        if !cap.is_power_of_two() || !(MIN_CAPACITY..=MAX_CAPACITY).contains(&cap) {
            return Err(corrupt("capacity is not a power of two in range"));
        }
        if ring_body_len(cap) > seg.body_len() {
            return Err(corrupt("capacity exceeds the segment"));
        }
        // SAFETY: as above; atomics at aligned offsets.
        let (head, tail) = unsafe {
            (
                (*hdr).head.0.load(Ordering::Acquire),
                (*hdr).tail.0.load(Ordering::Acquire),
            )
        };
        check_positions(head, tail, cap).map_err(corrupt)?;
        Ok(cap)
    }

    pub(super) fn mem(seg: &Segment) -> Result<(Mem, usize), OpenError> {
        let cap = validate(seg)?;
        let hdr = seg.body_ptr().cast::<RingHeader>();
        // SAFETY: validate() checked that 640 + cap bytes lie in the body.
        let data = unsafe { seg.body_ptr().add(640) };
        Ok((
            Mem {
                _keep: Arc::new(seg.clone()),
                hdr,
                data,
            },
            cap,
        ))
    }
}
#[cfg(not(loom))]
pub use shmring::{create_ring, data_bell_ref, open_ring};

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
        init_header(hdr, capacity);
        let mk = || Mem {
            _keep: heap.clone(),
            hdr,
            // SAFETY: the data area follows the 640-byte header within the buffer.
            data: unsafe { hdr.cast::<u8>().add(640) },
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

/// The writing end of a ring. One per ring.
pub struct Producer {
    mem: Mem,
    cap: usize,
    /// Local tail: includes committed but unpublished frames.
    tail: u64,
    /// Last tail value stored to shared memory.
    published: u64,
    cached_head: u64,
    #[cfg(not(loom))]
    bell: Option<BellRef>,
    strategy: WaitStrategy,
    frames: u64,
    bytes: u64,
}

impl Producer {
    fn new(mem: Mem, cap: usize, #[cfg(not(loom))] bell: Option<BellRef>) -> Producer {
        let tail = mem.hdr().tail.0.load(Ordering::Acquire);
        let mut head = mem.hdr().head.0.load(Ordering::Acquire);
        if check_positions(head, tail, cap).is_err() {
            // Changed since attach validated it: look full, so that the
            // first reserve reloads the head and reports the corruption
            // (instead of an arithmetic underflow on `tail - head`).
            head = tail.saturating_sub(cap as u64);
        }
        Producer {
            mem,
            cap,
            tail,
            published: tail,
            cached_head: head,
            #[cfg(not(loom))]
            bell,
            strategy: WaitStrategy::default(),
            frames: 0,
            bytes: 0,
        }
    }

    /// Attach as the producer of the ring in `seg`. `bell`, if given, is
    /// rung after each flush instead of the ring's own data doorbell (a
    /// consumer that waits on many rings sleeps on one doorbell).
    #[cfg(not(loom))]
    pub fn attach(
        seg: &crate::segment::Segment,
        bell: Option<BellRef>,
    ) -> Result<Producer, crate::segment::OpenError> {
        let (mem, cap) = shmring::mem(seg)?;
        Ok(Producer::new(mem, cap, bell))
    }

    /// Set how this end waits for space.
    pub fn set_wait_strategy(&mut self, s: WaitStrategy) {
        self.strategy = s;
    }

    /// Capacity in data bytes.
    pub fn capacity(&self) -> usize {
        self.cap
    }

    /// Largest frame this ring carries.
    pub fn max_frame_len(&self) -> usize {
        max_frame_len(self.cap)
    }

    /// Frames and bytes committed through this handle.
    pub fn counters(&self) -> (u64, u64) {
        (self.frames, self.bytes)
    }

    /// Bytes in the ring not yet released by the consumer (as last seen).
    pub fn depth(&self) -> u64 {
        self.tail
            .saturating_sub(self.mem.hdr().head.0.load(Ordering::Relaxed))
    }

    fn refresh_head(&mut self) -> Result<(), SendError> {
        // SYNC: pairs with the Release store of head in Consumer::release:
        // the consumer no longer reads the bytes before it.
        let head = self.mem.hdr().head.0.load(Ordering::Acquire);
        check_positions(head, self.tail, self.cap).map_err(SendError::Corrupt)?;
        self.cached_head = head;
        Ok(())
    }

    /// Reserve room for a frame of `len` bytes without waiting.
    pub fn reserve(&mut self, len: usize) -> Result<WriteSlot<'_>, SendError> {
        let rec = record_len(len);
        if len > self.max_frame_len() {
            return Err(SendError::TooLarge {
                len,
                max: self.max_frame_len(),
            });
        }
        // Another writer moved the tail (a restarted producer's predecessor,
        // or a process that should not write here): continue after it
        // rather than overwrite what it published.
        let shared = self.mem.hdr().tail.0.load(Ordering::Relaxed);
        if shared != self.published {
            self.adopt_tail(shared)?;
        }
        let mut off = (self.tail & (self.cap as u64 - 1)) as usize;
        let pad = if off + rec > self.cap {
            self.cap - off
        } else {
            0
        };
        let need = (pad + rec) as u64;
        if self.cap as u64 - (self.tail - self.cached_head) < need {
            self.refresh_head()?;
            if self.cap as u64 - (self.tail - self.cached_head) < need {
                return Err(SendError::WouldBlock);
            }
        }
        if pad > 0 {
            let mut h = [0u8; REC_HDR];
            h[..4].copy_from_slice(&((pad - REC_HDR) as u32).to_le_bytes());
            h[4..].copy_from_slice(&PAD.to_le_bytes());
            self.mem.write(off, &h);
            self.tail += pad as u64;
            off = 0;
        }
        Ok(WriteSlot::new(self, off, len))
    }

    #[cold]
    fn adopt_tail(&mut self, shared: u64) -> Result<(), SendError> {
        if self.tail != self.published {
            return Err(SendError::Corrupt("tail moved under unpublished frames"));
        }
        let head = self.mem.hdr().head.0.load(Ordering::Acquire);
        check_positions(head, shared, self.cap).map_err(SendError::Corrupt)?;
        self.tail = shared;
        self.published = shared;
        self.cached_head = head;
        Ok(())
    }

    /// Reserve room for `len` bytes, waiting up to `timeout` (forever if
    /// `None`) for the consumer to make space.
    pub fn reserve_wait(
        &mut self,
        len: usize,
        timeout: Option<Duration>,
    ) -> Result<WriteSlot<'_>, SendError> {
        // Fast path: room by the cached head, no load of the consumer's line.
        if self.fits_cached(len) {
            return self.reserve(len);
        }
        match self.try_space(len) {
            Ok(true) => {}
            Ok(false) => {
                // Let the consumer see what we have before we wait on it.
                self.flush();
                let mut err = None;
                let ok = self.space_bell().wait_until(self.strategy, timeout, || {
                    match self.space_available(len) {
                        Ok(true) => Some(()),
                        Ok(false) => None,
                        Err(e) => {
                            err = Some(e);
                            Some(())
                        }
                    }
                });
                if let Some(e) = err {
                    return Err(e);
                }
                if ok.is_none() {
                    return Err(SendError::WouldBlock);
                }
            }
            Err(e) => return Err(e),
        }
        self.reserve(len)
    }

    fn space_bell(&self) -> &Doorbell {
        &self.mem.hdr().space_bell.0
    }

    #[inline]
    fn fits_cached(&self, len: usize) -> bool {
        if len > self.max_frame_len() {
            return false;
        }
        let rec = record_len(len);
        let off = (self.tail & (self.cap as u64 - 1)) as usize;
        let pad = if off + rec > self.cap {
            self.cap - off
        } else {
            0
        };
        self.cap as u64 - (self.tail - self.cached_head) >= (pad + rec) as u64
    }

    fn space_available(&self, len: usize) -> Result<bool, SendError> {
        let head = self.mem.hdr().head.0.load(Ordering::Acquire);
        check_positions(head, self.tail, self.cap).map_err(SendError::Corrupt)?;
        let rec = record_len(len);
        let off = (self.tail & (self.cap as u64 - 1)) as usize;
        let pad = if off + rec > self.cap {
            self.cap - off
        } else {
            0
        };
        Ok(self.cap as u64 - (self.tail - head) >= (pad + rec) as u64)
    }

    fn try_space(&mut self, len: usize) -> Result<bool, SendError> {
        if len > self.max_frame_len() {
            return Err(SendError::TooLarge {
                len,
                max: self.max_frame_len(),
            });
        }
        self.space_available(len)
    }

    /// Publish every committed frame and wake the consumer if it sleeps.
    #[inline]
    pub fn flush(&mut self) {
        if self.tail != self.published {
            // SYNC: publishes the frames written above; pairs with the
            // Acquire load in Consumer::refresh_tail.
            self.mem.hdr().tail.0.store(self.tail, Ordering::Release);
            self.published = self.tail;
            #[cfg(not(loom))]
            if let Some(b) = &self.bell {
                b.get().ring();
                return;
            }
            self.mem.hdr().data_bell.0.ring();
        }
    }

    /// Copy `frame` in and publish it, failing at once if the ring is full.
    pub fn try_send(&mut self, frame: &[u8]) -> Result<(), SendError> {
        let mut slot = self.reserve(frame.len())?;
        slot.copy_from(frame);
        slot.commit();
        self.flush();
        Ok(())
    }

    /// Copy `frame` in and publish it, waiting for space as long as it takes.
    pub fn send(&mut self, frame: &[u8]) -> Result<(), SendError> {
        self.send_timeout(frame, None)
    }

    /// Copy `frame` in and publish it, waiting for space up to `timeout`.
    pub fn send_timeout(
        &mut self,
        frame: &[u8],
        timeout: Option<Duration>,
    ) -> Result<(), SendError> {
        let mut slot = self.reserve_wait(frame.len(), timeout)?;
        slot.copy_from(frame);
        slot.commit();
        self.flush();
        Ok(())
    }
}

impl Drop for Producer {
    fn drop(&mut self) {
        self.flush();
    }
}

/// Room for one frame, reserved in the ring. Fill it, then `commit`;
/// dropping it without commit writes nothing.
pub struct WriteSlot<'a> {
    producer: &'a mut Producer,
    off: usize,
    len: usize,
    #[cfg(loom)]
    buf: Vec<u8>,
}

impl<'a> WriteSlot<'a> {
    fn new(producer: &'a mut Producer, off: usize, len: usize) -> Self {
        WriteSlot {
            producer,
            off,
            len,
            #[cfg(loom)]
            buf: vec![0; len],
        }
    }

    /// The reserved bytes.
    #[inline]
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        #[cfg(not(loom))]
        // SAFETY: [off+8, off+8+len) lies in the data area (reserve checked
        // it against the capacity) and is owned by the producer until the
        // tail is published past it; &mut self gives exclusive access.
        unsafe {
            std::slice::from_raw_parts_mut(self.producer.mem.ptr(self.off + REC_HDR), self.len)
        }
        #[cfg(loom)]
        &mut self.buf
    }

    /// Copy `src` to the start of the slot (src must fit).
    pub fn copy_from(&mut self, src: &[u8]) {
        self.as_mut_slice()[..src.len()].copy_from_slice(src);
    }

    /// Commit the whole slot. It is published by the next `flush`.
    pub fn commit(self) {
        let len = self.len;
        self.commit_len(len);
    }

    /// Commit only the first `len` bytes (at most the reserved length).
    pub fn commit_len(self, len: usize) {
        let len = len.min(self.len);
        let p = self.producer;
        #[cfg(loom)]
        p.mem.write(self.off + REC_HDR, &self.buf[..len]);
        let mut h = [0u8; REC_HDR];
        h[..4].copy_from_slice(&(len as u32).to_le_bytes());
        h[4..].copy_from_slice(&FRAME.to_le_bytes());
        p.mem.write(self.off, &h);
        p.tail += record_len(len) as u64;
        p.frames += 1;
        p.bytes += len as u64;
    }
}

/// The reading end of a ring. One per ring.
pub struct Consumer {
    mem: Mem,
    cap: usize,
    head: u64,
    cached_tail: u64,
    /// Bytes released since the producer was last told with a full fence.
    unsignalled: u64,
    strategy: WaitStrategy,
    frames: u64,
    bytes: u64,
}

impl Consumer {
    fn new(mem: Mem, cap: usize) -> Consumer {
        let head = mem.hdr().head.0.load(Ordering::Acquire);
        Consumer {
            mem,
            cap,
            head,
            cached_tail: head,
            unsignalled: 0,
            strategy: WaitStrategy::default(),
            frames: 0,
            bytes: 0,
        }
    }

    /// Attach as the consumer of the ring in `seg`; reading resumes at the
    /// first frame not yet released.
    #[cfg(not(loom))]
    pub fn attach(seg: &crate::segment::Segment) -> Result<Consumer, crate::segment::OpenError> {
        let (mem, cap) = shmring::mem(seg)?;
        // We are the only consumer: a predecessor's sleeper count is stale.
        mem.hdr().data_bell.0.reset_sleepers();
        Ok(Consumer::new(mem, cap))
    }

    /// Set how this end waits for frames.
    pub fn set_wait_strategy(&mut self, s: WaitStrategy) {
        self.strategy = s;
    }

    /// Frames and bytes released through this handle.
    pub fn counters(&self) -> (u64, u64) {
        (self.frames, self.bytes)
    }

    /// Published bytes not yet released.
    pub fn depth(&self) -> u64 {
        self.mem
            .hdr()
            .tail
            .0
            .load(Ordering::Relaxed)
            .saturating_sub(self.head)
    }

    /// The doorbell this ring's producer rings unless told otherwise.
    pub fn data_bell(&self) -> &Doorbell {
        &self.mem.hdr().data_bell.0
    }

    fn refresh_tail(&mut self) -> Result<(), RingError> {
        // SYNC: pairs with the Release store in Producer::flush: the frames
        // before the tail are fully written.
        let tail = self.mem.hdr().tail.0.load(Ordering::Acquire);
        check_positions(self.head, tail, self.cap).map_err(RingError::Corrupt)?;
        self.cached_tail = tail;
        Ok(())
    }

    /// Whether a frame is published (cheap; no validation).
    #[inline]
    pub fn has_data(&self) -> bool {
        self.head != self.cached_tail || self.mem.hdr().tail.0.load(Ordering::Acquire) != self.head
    }

    fn signal_space(&mut self) {
        if self.unsignalled > 0 {
            self.unsignalled = 0;
            self.mem.hdr().space_bell.0.ring();
        }
    }

    /// The next frame, read in place, or `None` if the ring is empty.
    pub fn peek(&mut self) -> Result<Option<ReadFrame<'_>>, RingError> {
        loop {
            if self.head == self.cached_tail {
                self.refresh_tail()?;
                if self.head == self.cached_tail {
                    self.signal_space();
                    return Ok(None);
                }
            }
            let off = (self.head & (self.cap as u64 - 1)) as usize;
            let avail = self.cached_tail - self.head;
            let mut h = [0u8; REC_HDR];
            // off is a multiple of 8 and cap >= 64, so 8 bytes fit.
            self.mem.read(off, &mut h);
            let len = u32::from_le_bytes([h[0], h[1], h[2], h[3]]) as usize;
            let marker = u32::from_le_bytes([h[4], h[5], h[6], h[7]]);
            match marker {
                PAD => {
                    let pad = (self.cap - off) as u64;
                    if len as u64 != pad - REC_HDR as u64 || pad > avail {
                        return Err(RingError::Corrupt("bad padding record"));
                    }
                    self.advance(pad);
                }
                FRAME => {
                    let rec = record_len(len.min(self.cap));
                    if len > max_frame_len(self.cap) || off + rec > self.cap || rec as u64 > avail {
                        return Err(RingError::Corrupt("frame length out of bounds"));
                    }
                    return Ok(Some(ReadFrame::new(self, off + REC_HDR, len, rec)));
                }
                _ => return Err(RingError::Corrupt("bad record marker")),
            }
        }
    }

    fn advance(&mut self, n: u64) {
        self.head += n;
        // SYNC: the released bytes are no longer read; pairs with the
        // Acquire load in Producer::refresh_head.
        self.mem.hdr().head.0.store(self.head, Ordering::Release);
        self.unsignalled += n;
        if self.unsignalled >= (self.cap / 4) as u64 {
            self.signal_space();
        } else {
            self.mem.hdr().space_bell.0.ring_relaxed();
        }
    }

    /// Tell the producer about all released space; call before waiting on
    /// another doorbell than this ring's (what [`Consumer::wait`] does).
    pub fn prepare_wait(&mut self) {
        self.signal_space();
    }

    /// Wait up to `timeout` (forever if `None`) until a frame is published.
    /// Returns whether one is.
    pub fn wait(&mut self, timeout: Option<Duration>) -> bool {
        if self.has_data() {
            return true;
        }
        self.signal_space();
        let this = &*self;
        this.mem
            .hdr()
            .data_bell
            .0
            .wait_until(this.strategy, timeout, || this.has_data().then_some(()))
            .is_some()
    }

    /// Copy the next frame out, waiting up to `timeout`.
    pub fn recv_timeout(
        &mut self,
        timeout: Option<Duration>,
    ) -> Result<Option<Vec<u8>>, RingError> {
        loop {
            if let Some(f) = self.peek()? {
                let v = f.to_vec();
                f.release();
                return Ok(Some(v));
            }
            if !self.wait(timeout) {
                return Ok(None);
            }
        }
    }
}

/// A frame in the ring, borrowed in place. `release` frees its space;
/// dropping it without release leaves it for the next `peek`.
pub struct ReadFrame<'a> {
    consumer: &'a mut Consumer,
    #[cfg(not(loom))]
    off: usize,
    len: usize,
    rec: usize,
    #[cfg(loom)]
    buf: Vec<u8>,
}

impl<'a> ReadFrame<'a> {
    fn new(consumer: &'a mut Consumer, off: usize, len: usize, rec: usize) -> Self {
        #[cfg(loom)]
        let buf = {
            let mut b = vec![0; len];
            consumer.mem.read(off, &mut b);
            b
        };
        ReadFrame {
            consumer,
            #[cfg(not(loom))]
            off,
            len,
            rec,
            #[cfg(loom)]
            buf,
        }
    }

    /// The frame's bytes. They live in shared memory that the producer
    /// could overwrite if it misbehaves: copy before validating anything
    /// that must not change under you.
    #[inline]
    pub fn as_slice(&self) -> &[u8] {
        #[cfg(not(loom))]
        // SAFETY: peek checked [off, off+len) against the capacity and the
        // published tail; the producer does not reuse it before release.
        unsafe {
            std::slice::from_raw_parts(self.consumer.mem.ptr(self.off), self.len)
        }
        #[cfg(loom)]
        &self.buf
    }

    /// Copy the frame out.
    pub fn to_vec(&self) -> Vec<u8> {
        self.as_slice().to_vec()
    }

    /// Free the frame's space for the producer.
    pub fn release(self) {
        let c = self.consumer;
        c.frames += 1;
        c.bytes += self.len as u64;
        c.advance(self.rec as u64);
    }
}

impl std::ops::Deref for ReadFrame<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_wrap() {
        let (mut p, mut c) = heap_ring(256);
        for i in 0..1000u32 {
            let len = (i as usize * 7) % 100;
            let msg: Vec<u8> = (0..len).map(|j| (i as usize + j) as u8).collect();
            p.try_send(&msg).unwrap();
            let f = c.peek().unwrap().unwrap();
            assert_eq!(&*f, &msg[..]);
            f.release();
        }
        assert!(c.peek().unwrap().is_none());
    }

    #[test]
    fn full_ring_would_block_then_drains() {
        let (mut p, mut c) = heap_ring(128);
        let mut n = 0;
        while p.try_send(&[n as u8; 24]).is_ok() {
            n += 1;
        }
        assert_eq!(p.try_send(&[0; 24]), Err(SendError::WouldBlock));
        assert!(n >= 3);
        for i in 0..n {
            let f = c.peek().unwrap().unwrap();
            assert_eq!(f[0], i as u8);
            f.release();
        }
        p.try_send(&[9; 24]).unwrap();
    }

    #[test]
    fn too_large_is_refused() {
        let (mut p, _c) = heap_ring(128);
        assert!(matches!(
            p.try_send(&[0; 100]),
            Err(SendError::TooLarge { .. })
        ));
        p.try_send(&[0; 56]).unwrap();
    }

    #[test]
    fn batch_is_invisible_until_flush() {
        let (mut p, mut c) = heap_ring(1024);
        for i in 0..5u8 {
            let mut s = p.reserve(3).unwrap();
            s.copy_from(&[i; 3]);
            s.commit();
        }
        assert!(c.peek().unwrap().is_none());
        p.flush();
        for i in 0..5u8 {
            let f = c.peek().unwrap().unwrap();
            assert_eq!(&*f, &[i; 3]);
            f.release();
        }
    }

    #[test]
    fn unreleased_frame_is_seen_again() {
        let (mut p, mut c) = heap_ring(1024);
        p.try_send(b"one").unwrap();
        p.try_send(b"two").unwrap();
        {
            let f = c.peek().unwrap().unwrap();
            assert_eq!(&*f, b"one"); // looked at, not released
        }
        assert_eq!(&*c.peek().unwrap().unwrap(), b"one");
    }

    #[test]
    fn blocking_send_waits_for_consumer_thread() {
        let (mut p, mut c) = heap_ring(256);
        let t = std::thread::spawn(move || {
            let mut got = 0u32;
            while got < 10_000 {
                if let Some(v) = c.recv_timeout(None).unwrap() {
                    assert_eq!(v, got.to_le_bytes());
                    got += 1;
                }
            }
        });
        for i in 0..10_000u32 {
            p.send(&i.to_le_bytes()).unwrap();
        }
        t.join().unwrap();
    }

    #[test]
    fn send_timeout_on_stuck_consumer() {
        let (mut p, _c) = heap_ring(64);
        p.try_send(&[0; 24]).unwrap();
        p.try_send(&[0; 24]).unwrap();
        let r = p.send_timeout(&[0; 24], Some(Duration::from_millis(20)));
        assert_eq!(r, Err(SendError::WouldBlock));
    }
}

#[cfg(all(test, not(loom)))]
mod foreign_writer {
    use super::*;

    #[test]
    fn producer_continues_after_a_foreign_write() {
        let (mut p, mut c) = heap_ring(256);
        p.try_send(b"a").unwrap();
        // A second producer handle on the same memory (what a process that
        // should not write here would do).
        let mut intruder = Producer::new(
            Mem {
                _keep: p.mem._keep.clone(),
                hdr: p.mem.hdr,
                data: p.mem.data,
            },
            p.cap,
            None,
        );
        intruder.try_send(b"x").unwrap();
        p.try_send(b"b").unwrap();
        for want in [&b"a"[..], b"x", b"b"] {
            let f = c.peek().unwrap().unwrap();
            assert_eq!(&*f, want);
            f.release();
        }
    }
}
