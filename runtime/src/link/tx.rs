//! The one writer of a link: a producer and the sealer of its key. A
//! message is sealed in place in the ring (reserve, fill, seal, commit);
//! queued messages ([`Outbox`]) go out as batches under one tag.

use super::Outbox;
use shmcollab_shm::auth::Sealer;
use shmcollab_shm::frame::{FrameHeader, FRAME_HEADER_LEN};
use shmcollab_shm::ring::{Producer, SendError};
use std::time::Duration;

/// How a send waits for room in the ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// Not at all: a full ring is `SendError::WouldBlock`.
    No,
    /// As long as it takes.
    Forever,
    /// At most this long.
    For(Duration),
}

impl Wait {
    /// The timeout of a waiting reserve; `None` for [`Wait::No`].
    fn timeout(self) -> Option<Option<Duration>> {
        match self {
            Wait::No => None,
            Wait::Forever => Some(None),
            Wait::For(t) => Some(Some(t)),
        }
    }
}

/// What [`TxLink::drain`] wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Drained {
    /// Messages written (control entries not counted).
    pub msgs: usize,
    /// Their payload bytes.
    pub bytes: u64,
    /// Messages dropped because they can never fit or be sealed.
    pub dropped: usize,
    /// The ring's positions were garbage: what was not written stays
    /// queued (see [`Outbox::drain`]).
    pub corrupt: bool,
}

impl Drained {
    /// Whether anything left the queue.
    pub fn any(&self) -> bool {
        self.msgs + self.dropped > 0
    }
}

/// The writing end of a link.
pub struct TxLink {
    tx: Producer,
    sealer: Sealer,
}

impl TxLink {
    /// A link written with `sealer`.
    pub fn new(tx: Producer, sealer: Sealer) -> TxLink {
        TxLink { tx, sealer }
    }

    /// Put our shared field back if another process changed it (see
    /// [`Producer::heal`]); true if it had changed.
    pub fn heal(&mut self) -> bool {
        self.tx.heal().unwrap_or(false)
    }

    /// Wake the reader (see [`Producer::wake_reader`]).
    pub fn wake_reader(&self) {
        self.tx.wake_reader();
    }

    /// Tell the reader how it had best wait (see [`Producer::set_wait_hint`]).
    pub fn set_wait_hint(&self, hint: u32) {
        self.tx.set_wait_hint(hint);
    }

    /// Replace the sealer (a new key: the LP at the other end restarted).
    pub fn set_sealer(&mut self, sealer: Sealer) {
        self.sealer = sealer;
    }

    /// Write as much of `q` as fits now, without waiting.
    pub fn drain(&mut self, q: &mut Outbox) -> Drained {
        let (msgs, bytes, dropped, corrupt) = q.drain(&mut self.tx, &mut self.sealer);
        Drained {
            msgs,
            bytes,
            dropped,
            corrupt,
        }
    }

    /// Seal one message into the ring. `Ok(false)`: the ring is full.
    pub fn write_one(&mut self, h: &FrameHeader, payload: &[u8]) -> Result<bool, SendError> {
        super::write_one(&mut self.tx, &mut self.sealer, h, payload)
    }

    /// Seal one message into the ring, waiting for room as `wait` says,
    /// and publish it.
    pub fn send(&mut self, h: FrameHeader, payload: &[u8], wait: Wait) -> Result<(), SendError> {
        let len = self.sealer.frame_len(payload.len());
        let mut slot = match wait.timeout() {
            None => self.tx.reserve(len)?,
            Some(t) => self.tx.reserve_wait(len, t)?,
        };
        let buf = slot.as_mut_slice();
        buf[FRAME_HEADER_LEN..FRAME_HEADER_LEN + payload.len()].copy_from_slice(payload);
        let hdr = FrameHeader {
            payload_len: payload.len() as u32,
            ..h
        };
        let n = self
            .sealer
            .seal_in_place(hdr, buf)
            .map_err(|_| SendError::TooLarge {
                len: payload.len(),
                max: shmcollab_shm::frame::MAX_PAYLOAD,
            })?;
        slot.commit_len(n);
        self.tx.flush();
        Ok(())
    }

    /// Wait until a message of `payload_len` bytes fits (`wait` as in
    /// [`TxLink::send`]).
    pub fn wait_room(&mut self, payload_len: usize, wait: Wait) -> Result<(), SendError> {
        let len = self.sealer.frame_len(payload_len);
        match wait.timeout() {
            None => self.tx.reserve(len).map(drop),
            Some(t) => self.tx.reserve_wait(len, t).map(drop),
        }
    }

    /// Largest payload of one message.
    pub fn max_payload(&self) -> usize {
        self.tx
            .max_frame_len()
            .saturating_sub(self.sealer.frame_len(0))
    }

    /// Publish what was written.
    pub fn flush(&mut self) {
        self.tx.flush()
    }

    /// The sequence number the next frame gets: every frame this link
    /// sealed so far has a lower one.
    pub fn next_seq(&self) -> u64 {
        self.sealer.next_seq()
    }

    /// Bytes in the ring the reader has not released (as last seen).
    pub fn depth(&self) -> u64 {
        self.tx.depth()
    }
}
