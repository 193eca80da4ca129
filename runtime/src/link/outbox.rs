//! Messages queued for a ring, written as one sealed frame for a lone
//! message or as batches ([`shmcollab_shm::batch`]) under one tag.

use super::{entry, header, write_one};
use shmcollab_shm::auth::Sealer;
use shmcollab_shm::batch;
use shmcollab_shm::frame::{kind, FrameHeader, FRAME_HEADER_LEN};
use shmcollab_shm::ring::Producer;
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

    /// Queue a message.
    pub fn push(&mut self, h: &FrameHeader, payload: &[u8]) {
        if self.head > 0 && self.head >= self.buf.len() / 2 {
            self.buf.drain(..self.head);
            self.head = 0;
        }
        batch::push(&mut self.buf, &entry(h), payload);
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
        let mut merged = Outbox::new();
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

    /// Drop the `k` oldest entries; returns how many were control entries.
    fn pop(&mut self, k: usize) -> usize {
        let mut ctl = 0;
        for _ in 0..k {
            if let Some(n) = self.lens.pop_front() {
                self.head += len_of(n);
                ctl += usize::from(n & CTL_BIT != 0);
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
        let mut kept = Outbox::new();
        self.for_each(|h, p| {
            if keep(&h) {
                kept.push(&h, p);
            }
        });
        *self = kept;
    }

    /// Write as much as fits into `tx` now, without waiting: a lone message
    /// as one frame, several as batches under one tag. Returns messages
    /// written (control entries not counted), their payload bytes, and
    /// messages dropped because they can never fit.
    pub fn drain(&mut self, tx: &mut Producer, sealer: &mut Sealer) -> (usize, u64, usize) {
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
                match write_one(tx, sealer, &header(&e, p.len()), p) {
                    Ok(true) => {
                        bytes += p.len() as u64;
                        msgs += 1 - self.pop(1);
                    }
                    Ok(false) => break,
                    Err(_) => {
                        dropped += 1;
                        self.pop(1);
                    }
                }
                continue;
            }
            let Ok(mut slot) = tx.reserve(sealer.frame_len(total)) else {
                // Not room for all of them: try fewer, down to one.
                limit = k / 2;
                continue;
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
                    msgs += k - self.pop(k);
                    bytes += (total - k * batch::ENTRY_HEADER_LEN) as u64;
                }
                Err(_) => {
                    dropped += k;
                    self.pop(k);
                }
            }
        }
        (msgs, bytes, dropped)
    }
}

/// Largest batch payload on this ring.
fn max_batch(tx: &Producer, sealer: &Sealer) -> usize {
    let overhead = sealer.frame_len(0);
    tx.max_frame_len().saturating_sub(overhead).min(64 * 1024)
}
