//! The writing end of a ring: reserve room, write a frame in place, commit,
//! and publish a batch of frames with one Release store of the tail
//! ([`Producer::flush`]). A full ring is back-pressure: `reserve_wait` sleeps
//! on the ring's space doorbell.

use super::layout::{
    check_positions, data_off, max_frame_len, pad_before, record_len, FRAME, PAD, REC_HDR,
};
use super::mem::Mem;
#[cfg(not(loom))]
use super::shmring::{self, BellRef};
use super::SendError;
use crate::doorbell::{Doorbell, WaitStrategy};
use crate::sync::Ordering;
use std::time::Duration;

/// The writing end of a ring. One per ring.
pub struct Producer {
    pub(super) mem: Mem,
    pub(super) cap: usize,
    /// Local tail: includes committed but unpublished frames.
    tail: u64,
    /// Last tail value stored to shared memory.
    published: u64,
    cached_head: u64,
    /// The positions were inconsistent when this end attached: the next
    /// reserve checks them again before writing anything.
    suspect: bool,
    #[cfg(not(loom))]
    bell: Option<BellRef>,
    strategy: WaitStrategy,
    frames: u64,
    bytes: u64,
}

impl Producer {
    pub(super) fn new(mem: Mem, cap: usize, #[cfg(not(loom))] bell: Option<BellRef>) -> Producer {
        let mut tail = mem.hdr().tail.0.load(Ordering::Acquire);
        let mut head = mem.hdr().head.0.load(Ordering::Acquire);
        // Attach validated the positions, but another process may have
        // changed them since: never compute with unchecked ones. An aligned
        // tail keeps every record offset a multiple of 8 (so the padding
        // before a record is 0 or at least a record header), and the first
        // reserve checks the positions again and reports the corruption.
        let suspect = check_positions(head, tail, cap).is_err();
        if suspect {
            tail &= !7;
            head = tail;
        }
        Producer {
            mem,
            cap,
            tail,
            published: tail,
            cached_head: head,
            suspect,
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
        // Our writes go round the whole ring: fault its pages in now.
        seg.prefault();
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

    /// Tell the consumer how it had best wait (a
    /// [`LoadMode`](crate::load::LoadMode) as a word): it reads the ring's
    /// wait hint at each wait. A store only when the value changed.
    pub fn set_wait_hint(&self, hint: u32) {
        let w = &self.mem.hdr().meta.0.wait_hint;
        // Relaxed: a hint; it publishes nothing.
        if w.load(Ordering::Relaxed) != hint {
            w.store(hint, Ordering::Relaxed);
        }
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
        if self.suspect {
            self.refresh_head()?;
            self.suspect = false;
        }
        let mut off = data_off(self.tail, self.cap);
        let pad = pad_before(off, rec, self.cap);
        // Positions are multiples of 8 (checked), so a filler is 0 bytes or
        // holds at least its header; checked anyway rather than underflow.
        let pad_len = match pad {
            0 => 0,
            p => p
                .checked_sub(REC_HDR)
                .ok_or(SendError::Corrupt("misaligned position"))?,
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
            h[..4].copy_from_slice(&(pad_len as u32).to_le_bytes());
            h[4..].copy_from_slice(&PAD.to_le_bytes());
            self.mem.write(off, &h);
            self.tail += pad as u64;
            off = 0;
        }
        Ok(WriteSlot::new(self, off, len))
    }

    /// The shared tail is not the one we published: a restarted producer's
    /// predecessor, a consumer that reset the ring, or a process that
    /// should not write here moved it.
    #[cold]
    fn adopt_tail(&mut self, shared: u64) -> Result<(), SendError> {
        let head = self.mem.hdr().head.0.load(Ordering::Acquire);
        if check_positions(head, shared, self.cap).is_ok() {
            // Consistent: continue after it rather than overwrite what it
            // published. Frames committed but not yet published are dropped
            // (their sequence numbers are gone: the reader counts the gap).
            self.tail = shared;
            self.published = shared;
            self.cached_head = head;
            self.suspect = false;
            return Ok(());
        }
        // Garbage: the tail is ours alone, put back what we published.
        check_positions(head, self.published, self.cap).map_err(SendError::Corrupt)?;
        // SYNC: as in `flush`; everything before `published` was written.
        self.mem
            .hdr()
            .tail
            .0
            .store(self.published, Ordering::Release);
        self.cached_head = head;
        Ok(())
    }

    /// Put back our own shared field (the tail) if another process changed
    /// it to something inconsistent (a consistent foreign tail is adopted,
    /// as `reserve` does). Returns whether it had changed; an error if the
    /// consumer's head is garbage too (its owner repairs that).
    pub fn heal(&mut self) -> Result<bool, SendError> {
        let shared = self.mem.hdr().tail.0.load(Ordering::Relaxed);
        let head = self.mem.hdr().head.0.load(Ordering::Acquire);
        if shared == self.published && check_positions(head, shared, self.cap).is_ok() {
            return Ok(false);
        }
        if shared != self.published && self.adopt_tail(shared).is_ok() {
            return Ok(true);
        }
        let hdr = self.mem.hdr();
        // The head is garbage too: declare the ring empty at our tail (what
        // was unread is lost; the reader counts the gap); the consumer
        // adopts a consistent shared pair.
        // SYNC: as in `flush`.
        hdr.tail.0.store(self.published, Ordering::Release);
        hdr.head.0.store(self.published, Ordering::Release);
        self.tail = self.published;
        self.cached_head = self.published;
        self.suspect = false;
        Ok(true)
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
        let off = data_off(self.tail, self.cap);
        let pad = pad_before(off, rec, self.cap);
        self.cap as u64 - (self.tail - self.cached_head) >= (pad + rec) as u64
    }

    fn space_available(&self, len: usize) -> Result<bool, SendError> {
        let head = self.mem.hdr().head.0.load(Ordering::Acquire);
        check_positions(head, self.tail, self.cap).map_err(SendError::Corrupt)?;
        let rec = record_len(len);
        let off = data_off(self.tail, self.cap);
        let pad = pad_before(off, rec, self.cap);
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

    /// Publish every committed frame and wake the consumer if it sleeps;
    /// then hand the CPU over if this process's policy says so
    /// ([`crate::handover`]).
    #[inline]
    pub fn flush(&mut self) {
        if self.tail != self.published {
            // SYNC: publishes the frames written above; pairs with the
            // Acquire load in Consumer::refresh_tail.
            self.mem.hdr().tail.0.store(self.tail, Ordering::Release);
            self.published = self.tail;
            self.wake_reader();
            crate::handover::after_publish();
        }
    }

    /// Wake the consumer if it sleeps, with nothing new in the ring (it has
    /// something else to look at).
    pub fn wake_reader(&self) {
        #[cfg(not(loom))]
        if let Some(b) = &self.bell {
            b.get().ring();
            return;
        }
        self.mem.hdr().data_bell.0.ring();
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
