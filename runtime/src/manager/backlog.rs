//! Back-pressure: how much a manager queues before it stops taking frames
//! in, per source and per destination (issue 11 item 6).
//!
//! One limit for everything let one party hold back unrelated ones: a
//! peer flooding a slow LP filled the LP's queue and the manager stopped
//! reading every peer ring, so other LPs' transactions and requests to this
//! manager waited behind the flood; and messages an LP sent to itself were
//! queued without any limit (an LP could exhaust its manager's memory).
//!
//! Now:
//! - Towards the LP, bytes are tallied per source slot (a peer, or the LP
//!   itself): a source over [`BACKLOG`] is held back alone; all sources
//!   together over [`BACKLOG_ALL`] are all held back (the bound on the
//!   manager's memory).
//! - Towards peers, the LP's ring is read while no peer's queue is over
//!   [`BACKLOG`] and all of them together under [`BACKLOG_ALL`]. The LP's
//!   ring is one queue in order, so a message for a full peer at its head
//!   holds back what the LP sends behind it: the LP that sends to a slow
//!   peer waits (its `send` blocks, `try_send` says full); no other LP does.
//!
//! The limits are soft: a turn takes at most a turn's budget of frames past
//! them.

use crate::link::Outbox;

/// Payload bytes queued from one source (for the LP) or for one peer
/// before that source is held back.
pub(super) const BACKLOG: usize = 4 << 20;

/// Payload bytes queued for the LP, or for all peers, before every source
/// is held back.
pub(super) const BACKLOG_ALL: usize = 16 * BACKLOG;

/// Frames from `src` for the LP's queue wait where they are (in the
/// source's ring) until the LP has read some.
pub(super) fn held_back(queue: &Outbox, src: u32) -> bool {
    queue.bytes_from(src) > BACKLOG || queue.payload_bytes() > BACKLOG_ALL
}

/// The LP's queue holds all it may for every source.
pub(super) fn all_held_back(queue: &Outbox) -> bool {
    queue.payload_bytes() > BACKLOG_ALL
}

/// The LP's ring waits: a peer's queue, or all of them together, are full.
pub(super) fn peers_full(most: usize, all: usize) -> bool {
    most > BACKLOG || all > BACKLOG_ALL
}
