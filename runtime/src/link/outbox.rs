//! Messages queued for a ring, written as one sealed frame for a lone
//! message or as batches ([`shmcollab_shm::batch`]) under one tag.

use super::{entry, header, write_one};
use shmcollab_shm::auth::Sealer;
use shmcollab_shm::batch;
use shmcollab_shm::frame::{kind, FrameHeader, FRAME_HEADER_LEN};
use shmcollab_shm::ring::{Producer, SendError};
use std::collections::VecDeque;

/// Messages waiting for room in a ring, kept as batch entries in one
/// buffer ([`shmcollab_shm::batch`] layout), so that writing a batch is one
/// copy and queueing a message allocates nothing.
#[derive(Default)]
pub struct Outbox {
    buf: Vec<u8>,
    head: usize,
    /// Byte length of each queued entry, oldest first; [`CTL_BIT`] marks
    /// control entries (not counted as messages).
    lens: VecDeque<u32>,
    /// Payload bytes queued per source, when asked for ([`Outbox::by_source`]).
    tally: Option<Tally>,
}

/// Payload bytes queued per source slot: what lets a manager hold back one
/// source that floods its LP without holding back the others.
#[derive(Default)]
struct Tally {
    /// The source of each queued entry, oldest first (beside `lens`).
    srcs: VecDeque<u32>,
    /// Payload bytes queued, indexed by source slot.
    bytes: Vec<usize>,
}

impl Tally {
    fn add(&mut self, src: u32, n: usize) {
        let i = src as usize;
        if i >= self.bytes.len() {
            self.bytes.resize(i + 1, 0);
        }
        self.bytes[i] += n;
        self.srcs.push_back(src);
    }

    fn take_front(&mut self, n: usize) {
        if let Some(src) = self.srcs.pop_front() {
            let b = &mut self.bytes[src as usize];
            *b = b.saturating_sub(n);
        }
    }
}

/// Marks a control entry in [`Outbox::lens`].
const CTL_BIT: u32 = 1 << 31;

fn len_of(n: u32) -> usize {
    (n & !CTL_BIT) as usize
}

impl Outbox {
    /// An empty outbox.
    pub fn new() -> Outbox {
        Outbox::default()
    }

    /// An empty outbox that also keeps the payload bytes queued per source
    /// slot ([`Outbox::bytes_from`]). Sources are slots the caller stamped
    /// (never a number an LP or a peer chose), so the tally stays small.
    pub fn by_source() -> Outbox {
        Outbox {
            tally: Some(Tally::default()),
            ..Outbox::default()
        }
    }

    /// An empty outbox of the same kind (tallied or not).
    fn empty_like(&self) -> Outbox {
        match self.tally {
            Some(_) => Outbox::by_source(),
            None => Outbox::new(),
        }
    }

    /// Payload bytes queued from source slot `src` (0 unless this outbox
    /// was made [`Outbox::by_source`]).
    pub fn bytes_from(&self, src: u32) -> usize {
        self.tally
            .as_ref()
            .and_then(|t| t.bytes.get(src as usize).copied())
            .unwrap_or(0)
    }

    /// Queue a message.
    pub fn push(&mut self, h: &FrameHeader, payload: &[u8]) {
        if self.head > 0 && self.head >= self.buf.len() / 2 {
            self.buf.drain(..self.head);
            self.head = 0;
        }
        batch::push(&mut self.buf, &entry(h), payload);
        if let Some(t) = self.tally.as_mut() {
            t.add(h.src, payload.len());
        }
        let ctl = if h.kind == kind::CONTROL { CTL_BIT } else { 0 };
        self.lens
            .push_back(batch::entry_len(payload.len()) as u32 | ctl);
    }

    /// Messages queued.
    pub fn len(&self) -> usize {
        self.lens.len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.lens.is_empty()
    }

    /// Payload length of the oldest queued message.
    pub fn front_len(&self) -> Option<usize> {
        self.lens
            .front()
            .map(|&n| len_of(n) - batch::ENTRY_HEADER_LEN)
    }

    /// Payload bytes queued (without entry headers).
    pub fn payload_bytes(&self) -> usize {
        self.buf.len() - self.head - self.lens.len() * batch::ENTRY_HEADER_LEN
    }

    /// Put `front` before everything queued.
    pub fn prepend(&mut self, front: Outbox) {
        let mut merged = self.empty_like();
        for o in [&front, &*self] {
            o.for_each(|h, p| merged.push(&h, p));
        }
        *self = merged;
    }

    /// Call `f` for each queued message, oldest first.
    pub fn for_each(&self, mut f: impl FnMut(FrameHeader, &[u8])) {
        for e in batch::entries(&self.buf[self.head..]).flatten() {
            f(header(&e.0, e.1.len()), e.1);
        }
    }

    /// Drop the `k` oldest entries; returns how many were control entries
    /// and their payload bytes (neither counts as messages).
    fn pop(&mut self, k: usize) -> (usize, usize) {
        let mut ctl = (0, 0);
        for _ in 0..k {
            if let Some(n) = self.lens.pop_front() {
                self.head += len_of(n);
                if let Some(t) = self.tally.as_mut() {
                    t.take_front(len_of(n) - batch::ENTRY_HEADER_LEN);
                }
                if n & CTL_BIT != 0 {
                    ctl.0 += 1;
                    ctl.1 += len_of(n) - batch::ENTRY_HEADER_LEN;
                }
            }
        }
        if self.lens.is_empty() {
            self.buf.clear();
            self.head = 0;
        }
        ctl
    }

    /// Keep only the entries for which `keep` holds.
    pub fn retain(&mut self, mut keep: impl FnMut(&FrameHeader) -> bool) {
        let mut kept = self.empty_like();
        self.for_each(|h, p| {
            if keep(&h) {
                kept.push(&h, p);
            }
        });
        *self = kept;
    }

    /// Write as much as fits into `tx` now, without waiting: a lone message
    /// as one frame, several as batches under one tag. Returns messages
    /// written (control entries not counted), their payload bytes, messages
    /// dropped because they can never fit, and whether the ring was found
    /// corrupt (then the rest stays queued, in order: nothing is dropped
    /// for it).
    pub fn drain(&mut self, tx: &mut Producer, sealer: &mut Sealer) -> (usize, u64, usize, bool) {
        let mut corrupt = false;
        let mut msgs = 0;
        let mut bytes = 0u64;
        let mut dropped = 0;
        let max = max_batch(tx, sealer);
        // Largest batch worth trying; halved when the ring has less room.
        let mut limit = 1024;
        while let Some(&first) = self.lens.front() {
            let mut k = 0;
            let mut total = 0usize;
            for &n in self.lens.iter() {
                if k > 0 && (total + len_of(n) > max || k == limit) {
                    break;
                }
                total += len_of(n);
                k += 1;
            }
            let first = len_of(first);
            if k == 1 {
                let Some(Ok((e, p))) =
                    batch::entries(&self.buf[self.head..self.head + first]).next()
                else {
                    dropped += 1;
                    self.pop(1);
                    continue;
                };
                let len = p.len();
                match write_one(tx, sealer, &header(&e, len), p) {
                    Ok(true) => {
                        let (ctl, ctl_bytes) = self.pop(1);
                        bytes += (len - ctl_bytes) as u64;
                        msgs += 1 - ctl;
                    }
                    Ok(false) => break,
                    Err(SendError::Corrupt(_)) => {
                        corrupt = true;
                        break;
                    }
                    Err(_) => {
                        dropped += 1;
                        self.pop(1);
                    }
                }
                continue;
            }
            let mut slot = match tx.reserve(sealer.frame_len(total)) {
                Ok(slot) => slot,
                Err(SendError::Corrupt(_)) => {
                    corrupt = true;
                    break;
                }
                Err(_) => {
                    // Not room for all of them: try fewer, down to one.
                    limit = k / 2;
                    continue;
                }
            };
            let buf = slot.as_mut_slice();
            buf[FRAME_HEADER_LEN..FRAME_HEADER_LEN + total]
                .copy_from_slice(&self.buf[self.head..self.head + total]);
            let hdr = FrameHeader {
                kind: kind::BATCH,
                payload_len: total as u32,
                ..Default::default()
            };
            match sealer.seal_in_place(hdr, buf) {
                Ok(n) => {
                    slot.commit_len(n);
                    let (ctl, ctl_bytes) = self.pop(k);
                    msgs += k - ctl;
                    bytes += (total - k * batch::ENTRY_HEADER_LEN - ctl_bytes) as u64;
                }
                Err(_) => {
                    dropped += k;
                    self.pop(k);
                }
            }
        }
        (msgs, bytes, dropped, corrupt)
    }
}

/// Largest batch payload on this ring.
fn max_batch(tx: &Producer, sealer: &Sealer) -> usize {
    let overhead = sealer.frame_len(0);
    tx.max_frame_len().saturating_sub(overhead).min(64 * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::link::{Resync, RxLink, Step, TxLink};
    use shmcollab_shm::auth::{LinkKey, Opener};
    use shmcollab_shm::ring::heap_ring;

    fn h(k: u8, dst: u32) -> FrameHeader {
        FrameHeader {
            kind: k,
            dst,
            ..Default::default()
        }
    }

    /// A sealed link over a heap ring of `cap` bytes.
    fn link(cap: usize) -> (TxLink, RxLink) {
        let (p, c) = heap_ring(cap);
        let key = LinkKey::from_bytes([3; 16]);
        let tx = TxLink::new(p, Sealer::new(Some(key.clone())));
        (tx, RxLink::new(c, Opener::new(Some(key)), Resync::Never))
    }

    /// Everything in the ring: (kind, dst, payload) per message, and frames.
    fn read_all(rx: &mut RxLink) -> (Vec<(u8, u32, Vec<u8>)>, usize) {
        let mut got = Vec::new();
        let mut frames = 0;
        let mut scratch = Vec::new();
        while let Ok(Step::Opened { .. }) =
            rx.next(&mut scratch, |h, p| got.push((h.kind, h.dst, p.to_vec())))
        {
            frames += 1;
        }
        (got, frames)
    }

    #[test]
    fn queue_bookkeeping() {
        let mut q = Outbox::new();
        assert!(q.is_empty() && q.front_len().is_none());
        q.push(&h(kind::DATA, 1), b"abc");
        q.push(&h(kind::CONTROL, 0), b"x");
        q.push(&h(kind::DATA, 2), b"defgh");
        assert_eq!((q.len(), q.payload_bytes(), q.front_len()), (3, 9, Some(3)));
        let mut front = Outbox::new();
        front.push(&h(kind::DATA, 0), b"first");
        q.prepend(front);
        q.retain(|h| h.kind != kind::CONTROL);
        let mut order = Vec::new();
        q.for_each(|h, p| order.push((h.dst, p.to_vec())));
        assert_eq!(
            order,
            [
                (0, b"first".to_vec()),
                (1, b"abc".to_vec()),
                (2, b"defgh".to_vec())
            ]
        );
    }

    /// Issue 11 item 6: the tally per source follows pushes, drains,
    /// prepends and retains.
    #[test]
    fn bytes_are_tallied_per_source() {
        let src = |s: u32| FrameHeader {
            kind: kind::DATA,
            src: s,
            ..Default::default()
        };
        let mut q = Outbox::by_source();
        q.push(&src(1), &[0; 10]);
        q.push(&src(7), &[0; 5]);
        q.push(&src(1), &[0; 3]);
        assert_eq!(
            (q.bytes_from(1), q.bytes_from(7), q.bytes_from(2)),
            (13, 5, 0)
        );
        let mut front = Outbox::new();
        front.push(&src(2), &[0; 4]);
        q.prepend(front);
        assert_eq!(q.bytes_from(2), 4);
        q.retain(|h| h.src != 7);
        assert_eq!((q.bytes_from(1), q.bytes_from(7)), (13, 0));
        let (mut tx, mut rx) = link(1 << 16);
        tx.drain(&mut q);
        tx.flush();
        assert_eq!(read_all(&mut rx).0.len(), 3);
        assert_eq!((q.bytes_from(1), q.bytes_from(2)), (0, 0));
        assert_eq!(Outbox::new().bytes_from(1), 0, "untallied");
    }

    #[test]
    fn several_messages_go_as_one_batch_in_order_and_control_is_not_counted() {
        let (mut tx, mut rx) = link(1 << 16);
        let mut q = Outbox::new();
        for i in 0..10u32 {
            q.push(&h(kind::DATA, i), &[i as u8; 64]);
        }
        q.push(&h(kind::CONTROL, 0), b"c");
        let d = tx.drain(&mut q);
        tx.flush();
        assert_eq!((d.msgs, d.bytes, d.dropped), (10, 640, 0));
        assert!(q.is_empty());
        let (got, frames) = read_all(&mut rx);
        assert_eq!(frames, 1, "one batch under one tag");
        assert_eq!(got.len(), 11);
        assert!(got[..10].iter().enumerate().all(|(i, m)| m.1 == i as u32));
        assert_eq!(got[10].0, kind::CONTROL);
    }

    #[test]
    fn a_lone_message_is_a_plain_frame() {
        let (mut tx, mut rx) = link(1 << 12);
        let mut q = Outbox::new();
        q.push(&h(kind::REQUEST, 4), b"ping");
        assert_eq!(tx.drain(&mut q).msgs, 1);
        tx.flush();
        let mut scratch = Vec::new();
        let mut kinds = Vec::new();
        rx.next(&mut scratch, |h, _| kinds.push(h.kind)).unwrap();
        assert_eq!(kinds, [kind::REQUEST]);
    }

    #[test]
    fn a_full_ring_keeps_the_rest_queued_in_order() {
        let (mut tx, mut rx) = link(1 << 10);
        let mut q = Outbox::new();
        for i in 0..40u32 {
            q.push(&h(kind::DATA, i), &[0; 100]);
        }
        let mut seen = Vec::new();
        while !q.is_empty() {
            let d = tx.drain(&mut q);
            tx.flush();
            assert_eq!(d.dropped, 0);
            let (got, _) = read_all(&mut rx);
            assert!(d.msgs > 0 && d.msgs == got.len(), "{d:?}");
            seen.extend(got.into_iter().map(|m| m.1));
        }
        assert_eq!(seen, (0..40).collect::<Vec<_>>());
    }

    /// Issue 11 item 5: a ring whose positions are garbage used to make the
    /// outbox drop every queued message (and every later one) as
    /// unwritable. Now they stay queued, in order, and go out once the
    /// reader has put its position back.
    #[test]
    fn a_corrupt_ring_keeps_the_queue() {
        use shmcollab_shm::ring::{create_ring, Consumer};
        use shmcollab_shm::segment::Session;
        use std::os::unix::fs::FileExt;
        let session = Session::create(&format!("obx-{}", std::process::id())).unwrap();
        let seg = create_ring(&session, "r", 1 << 12).unwrap();
        let key = LinkKey::from_bytes([3; 16]);
        let p = Producer::attach(&seg, None).unwrap();
        let mut tx = TxLink::new(p, Sealer::new(Some(key.clone())));
        let c = Consumer::attach(&seg).unwrap();
        let mut rx = RxLink::new(c, Opener::new(Some(key)), Resync::Never);
        let mut q = Outbox::new();
        // Fill the ring: the writer must look at the reader's head next.
        while tx.write_one(&h(kind::DATA, 99), &[0; 100]).unwrap() {}
        tx.flush();
        // Something else writes garbage over the reader's head (segment
        // header 128 bytes, ring meta line 128 bytes, then the head).
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(seg.path())
            .unwrap();
        f.write_all_at(&12_345u64.to_le_bytes(), 256).unwrap();
        for i in 0..5u32 {
            q.push(&h(kind::DATA, i), &[i as u8; 100]);
        }
        for single in [true, false] {
            let d = tx.drain(&mut q);
            assert_eq!((d.msgs, d.dropped, d.corrupt), (0, 0, true), "{single}");
            assert_eq!(q.len(), 5);
        }
        // The reader reads on, its releases put its head back.
        let (first, _) = read_all(&mut rx);
        assert!(first.iter().all(|m| m.1 == 99));
        let d = tx.drain(&mut q);
        tx.flush();
        assert_eq!((d.msgs, d.dropped, d.corrupt), (5, 0, false));
        let (got, _) = read_all(&mut rx);
        assert_eq!(got.iter().map(|m| m.1).collect::<Vec<_>>(), [0, 1, 2, 3, 4]);
    }

    #[test]
    fn a_message_that_can_never_fit_is_dropped_and_counted() {
        let (mut tx, mut rx) = link(1 << 10);
        let mut q = Outbox::new();
        q.push(&h(kind::DATA, 0), &[0; 4096]);
        q.push(&h(kind::DATA, 1), b"small");
        let mut d = tx.drain(&mut q);
        if !q.is_empty() {
            let more = tx.drain(&mut q);
            d.msgs += more.msgs;
            d.dropped += more.dropped;
        }
        tx.flush();
        assert_eq!((d.msgs, d.dropped), (1, 1));
        let (got, _) = read_all(&mut rx);
        assert_eq!(got.iter().map(|m| m.1).collect::<Vec<_>>(), [1]);
    }
}
