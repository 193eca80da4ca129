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
//!     24    4  wait hint: how the consumer had best wait, set by the producer's
//!                side (0: no hint; see `crate::load::LoadMode`), untrusted
//!     28  100  reserved
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
//! ([`WaitStrategy`](crate::doorbell::WaitStrategy)): spin, yield, then sleep on a futex in the ring's
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
//!
//! # Parts
//!
//! - `layout`: the control block, record sizes and the position check;
//! - `mem`: where the bytes live (mapping, heap or loom cells);
//! - `shmring`: ring segments (create, open, validate) and [`BellRef`];
//! - `producer`: [`Producer`] and [`WriteSlot`];
//! - `consumer`: [`Consumer`] and [`ReadFrame`].
//!
//! This file holds the errors of the two ends.

mod consumer;
mod layout;
mod mem;
mod producer;
#[cfg(not(loom))]
mod shmring;
#[cfg(all(test, not(loom)))]
mod tests;

pub use consumer::{Consumer, ReadFrame};
pub use layout::{
    max_frame_len, ring_body_len, RingHeader, MAX_CAPACITY, MIN_CAPACITY, RING_MAGIC,
};
pub use mem::heap_ring;
pub use producer::{Producer, WriteSlot};
#[cfg(not(loom))]
pub use shmring::{create_ring, data_bell_ref, heal_ring, open_ring, open_ring_fd, BellRef};

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
