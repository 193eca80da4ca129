//! The reading end of a ring: peek at the next frame in place, release it
//! (one Release store of the head), and wait on the ring's data doorbell
//! when it is empty. Record headers come from the producer's process and
//! are checked before use.

use super::layout::{check_positions, data_off, max_frame_len, record_len, FRAME, PAD, REC_HDR};
use super::mem::Mem;
#[cfg(not(loom))]
use super::shmring;
use super::RingError;
use crate::doorbell::{Doorbell, WaitStrategy};
use crate::sync::Ordering;
use std::time::Duration;

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
    pub(super) fn new(mem: Mem, cap: usize) -> Consumer {
        let head = mem.hdr().head.0.load(Ordering::Acquire);
        let tail = mem.hdr().tail.0.load(Ordering::Acquire);
        // Positions are not checked at attach: with garbage in them, start
        // empty at an aligned tail (or head); the first read resets or
        // repairs the rest.
        let head = if check_positions(head, tail, cap).is_ok() {
            head
        } else if tail.is_multiple_of(8) {
            tail
        } else {
            head & !7
        };
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

    /// The ring's wait hint, as the producer's side last set it (see
    /// [`Producer::set_wait_hint`](super::Producer::set_wait_hint));
    /// untrusted: any value may be here.
    pub fn wait_hint(&self) -> u32 {
        // Relaxed: a hint; it publishes nothing.
        self.mem.hdr().meta.0.wait_hint.load(Ordering::Relaxed)
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
                    self.repair_head();
                    self.signal_space();
                    return Ok(None);
                }
            }
            let off = data_off(self.head, self.cap);
            let avail = self.cached_tail - self.head;
            let mut h = [0u8; REC_HDR];
            // off is a multiple of 8 and cap >= 64, so 8 bytes fit.
            self.mem.read(off, &mut h);
            let len = u32::from_le_bytes([h[0], h[1], h[2], h[3]]) as usize;
            let marker = u32::from_le_bytes([h[4], h[5], h[6], h[7]]);
            match marker {
                PAD => {
                    let pad = (self.cap - off) as u64;
                    if Some(len as u64) != pad.checked_sub(REC_HDR as u64) || pad > avail {
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

    /// Put back our own shared field (the head) if another process changed
    /// it: for an owner that checks its rings now and then, since a
    /// producer that finds garbage there cannot send, and so never wakes
    /// us to read. Returns whether it had changed.
    pub fn heal(&mut self) -> bool {
        let changed = self.mem.hdr().head.0.load(Ordering::Relaxed) != self.head;
        self.repair_head();
        let hdr = self.mem.hdr();
        let (head, tail) = (
            hdr.head.0.load(Ordering::Acquire),
            hdr.tail.0.load(Ordering::Acquire),
        );
        let broken = check_positions(head, tail, self.cap).is_err();
        if broken {
            // Neither pair is consistent: declare the ring empty at our
            // head; the producer adopts a consistent foreign tail.
            hdr.tail.0.store(self.head, Ordering::Release);
            hdr.head.0.store(self.head, Ordering::Release);
            self.cached_tail = self.head;
        }
        if changed || broken {
            // A producer stopped by the garbage may wait for space.
            self.unsignalled = self.unsignalled.max(1);
            self.signal_space();
        }
        changed || broken
    }

    /// The shared head is ours alone: if someone else changed it, put ours
    /// back (the producer would otherwise see garbage until our next
    /// release, which may never come if it cannot send).
    fn repair_head(&mut self) {
        let hdr = self.mem.hdr();
        let shared = hdr.head.0.load(Ordering::Relaxed);
        if shared == self.head {
            return;
        }
        let tail = hdr.tail.0.load(Ordering::Acquire);
        if check_positions(self.head, tail, self.cap).is_ok() {
            // SYNC: as in `advance`: nothing before `head` is read any more.
            hdr.head.0.store(self.head, Ordering::Release);
            self.unsignalled = self.unsignalled.max(1);
        } else if check_positions(shared, tail, self.cap).is_ok() {
            // Ours no longer fits the tail but the shared pair is
            // consistent (an owner declared the ring empty there): adopt
            // it; what lay between is lost (the opener counts the gap).
            self.head = shared;
            self.cached_tail = shared;
        }
    }

    /// Start again on a ring found corrupt: skip everything published (if
    /// the tail is consistent) or everything not yet released (if it is not:
    /// then the tail is set back to our head, and the producer, the only
    /// other party, continues from there). Returns the bytes skipped. The
    /// frames skipped are lost; a sealed link counts them by the gap in
    /// sequence numbers at the next frame that opens.
    pub fn reset(&mut self) -> u64 {
        let hdr = self.mem.hdr();
        // SYNC: pairs with the Release store in Producer::flush.
        let tail = hdr.tail.0.load(Ordering::Acquire);
        let to = if check_positions(self.head, tail, self.cap).is_ok() {
            tail
        } else {
            // SYNC: the producer adopts a consistent foreign tail in
            // Producer::reserve (Relaxed load, then Acquire of the head).
            hdr.tail.0.store(self.head, Ordering::Release);
            self.head
        };
        let skipped = to - self.head;
        self.head = to;
        self.cached_tail = to;
        // SYNC: as in `advance`.
        hdr.head.0.store(to, Ordering::Release);
        self.unsignalled = 0;
        hdr.space_bell.0.ring();
        skipped
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

/// The next frame in the ring, left in place until [`ReadFrame::release`];
/// dropping it without release leaves it for the next `peek`.
///
/// Its bytes live in shared memory that the producer (another process,
/// possibly misbehaving) can still write, so they are never handed out as a
/// `&[u8]` (that would promise Rust they do not change): they are copied
/// out ([`ReadFrame::copy_to`], [`ReadFrame::to_vec`]) and checked in the
/// copy.
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

    /// The frame's length in bytes.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the frame has no bytes.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether nothing was published after this frame when the consumer
    /// last read the producer's tail (no shared load: more may have come
    /// since). A reader that batches what it forwards can tell a lone
    /// frame from one in a stream by it.
    #[inline]
    pub fn last_known(&self) -> bool {
        self.consumer.cached_tail - self.consumer.head == self.rec as u64
    }

    /// Replace the contents of `out` with a copy of the frame.
    #[inline]
    pub fn copy_to(&self, out: &mut Vec<u8>) {
        out.clear();
        out.resize(self.len, 0);
        #[cfg(not(loom))]
        // peek checked [off, off+len) against the capacity and the
        // published tail.
        self.consumer.mem.read(self.off, out);
        #[cfg(loom)]
        out.copy_from_slice(&self.buf);
    }

    /// A copy of the frame.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = Vec::new();
        self.copy_to(&mut v);
        v
    }

    /// Free the frame's space for the producer.
    pub fn release(self) {
        let c = self.consumer;
        c.frames += 1;
        c.bytes += self.len as u64;
        c.advance(self.rec as u64);
    }
}
