//! Links: the rings between two parties, each read through one read loop
//! ([`RxLink`]: peek, open, release, unpack) and written through one writer
//! ([`TxLink`] with an [`Outbox`] of queued messages).
//!
//! A frame on a link is one message or a batch of them under one tag
//! ([`shmcollab_shm::batch`]); [`unpack`] turns either into messages.

mod outbox;
mod rx;
mod tx;

pub use outbox::Outbox;
pub use rx::{Resync, RxLink, Step};
pub use tx::{Drained, TxLink, Wait};

use shmcollab_shm::auth::Sealer;
use shmcollab_shm::batch::{self, Entry};
use shmcollab_shm::frame::{kind, FrameHeader, FRAME_HEADER_LEN};
use shmcollab_shm::ring::{Producer, SendError};

/// Seal one message into `tx`. `Ok(false)`: the ring is full.
/// `Err(SendError::Corrupt)`: the ring's positions are garbage now (nothing
/// written; the message can be tried again once the ring is repaired);
/// `Err(SendError::TooLarge)`: the message can never be written.
pub fn write_one(
    tx: &mut Producer,
    sealer: &mut Sealer,
    h: &FrameHeader,
    payload: &[u8],
) -> Result<bool, SendError> {
    let len = sealer.frame_len(payload.len());
    let mut slot = match tx.reserve(len) {
        Ok(s) => s,
        Err(SendError::WouldBlock) => return Ok(false),
        Err(e) => return Err(e),
    };
    let buf = slot.as_mut_slice();
    buf[FRAME_HEADER_LEN..FRAME_HEADER_LEN + payload.len()].copy_from_slice(payload);
    let hdr = FrameHeader {
        payload_len: payload.len() as u32,
        ..*h
    };
    match sealer.seal_in_place(hdr, buf) {
        Ok(n) => {
            slot.commit_len(n);
            Ok(true)
        }
        // Cannot seal (too long, sequence numbers used up): never will.
        Err(_) => Err(SendError::TooLarge {
            len: payload.len(),
            max: shmcollab_shm::frame::MAX_PAYLOAD,
        }),
    }
}

fn entry(h: &FrameHeader) -> Entry {
    Entry {
        kind: h.kind,
        flags: h.flags,
        src: h.src,
        dst: h.dst,
        aux: h.aux,
    }
}

fn header(e: &Entry, len: usize) -> FrameHeader {
    FrameHeader {
        kind: e.kind,
        flags: e.flags,
        src: e.src,
        dst: e.dst,
        aux: e.aux,
        payload_len: len as u32,
        ..Default::default()
    }
}

/// The messages of a received frame: itself, or the entries of a batch.
/// Calls `f` for each with a header carrying the entry's fields; returns
/// false if a batch was malformed (the rest of it is dropped).
pub fn unpack(h: &FrameHeader, payload: &[u8], mut f: impl FnMut(FrameHeader, &[u8])) -> bool {
    if h.kind != kind::BATCH {
        f(*h, payload);
        return true;
    }
    for e in batch::entries(payload) {
        match e {
            Ok((e, p)) => f(
                FrameHeader {
                    version: h.version,
                    seq: h.seq,
                    ..header(&e, p.len())
                },
                p,
            ),
            Err(_) => return false,
        }
    }
    true
}
