//! Sessions and segments.
//!
//! A *session* is a directory `<root>/shmc.<name>.<id>` (root is `/dev/shm`
//! unless `SHMCOLAB_SHM_ROOT` says otherwise), mode 0700, holding:
//!
//! * `owner`: `"<pid> <start time in clock ticks> <session id hex>\n"`, mode
//!   0600, written by the creator (to a temporary file renamed into place),
//!   used to tell a live owner from a dead one (the start time defeats pid
//!   reuse) and by `stop` to find the supervisor;
//! * one file per segment, mode 0600, created with `O_EXCL`.
//!
//! Every segment starts with this 128-byte header (little-endian):
//!
//! ```text
//! offset size field
//!      0    8 magic            b"SHMCOLAB"
//!      8    4 layout_version   LAYOUT_VERSION
//!     12    4 kind             SegmentKind as u32
//!     16    8 session_id
//!     24    8 total_len        length of the whole file in bytes
//!     32    4 ready            0 while being created, READY once the body is initialised
//!     36    4 creator_pid
//!     40   88 reserved (zero)
//!    128    - body
//! ```
//!
//! The header is untrusted on open: magic, version, kind, session and length
//! are checked against the file before anything in the body is touched.
//!
//! # Parts
//!
//! `session` holds the directory (naming, creation, attaching), `owner` the
//! owner record and the checks that make an entry of the shared shm root a
//! session of ours (owner uid, mode, file type, bounded reads, no link
//! followed, nothing that blocks), `scan` finding sessions and removing
//! what dead owners left, and `file` the segment files in it
//! (creating, and opening with the header checks above); `error` has one
//! error type per operation. This module keeps the one description of the
//! header that both of them follow.

use crate::sync::AtomicU32;

mod error;
mod file;
mod owner;
mod scan;
mod session;
pub mod sigbus;

pub use error::{CreateError, EntryError, OpenError, Refusal, SessionError};
pub use file::{Segment, PREFAULT_MAX};
pub use owner::{
    euid, open_session_dir, parse_owner, process_alive, process_start_time, read_owner, Owner,
    OWNER_MAX_LEN,
};
pub use scan::{
    classify, clean_stale_sessions, scan_sessions, stale_sessions, CleanReport, EntryState,
    SessionEntry, StaleReason, CREATION_GRACE,
};
pub use session::{parse_session_dir_name, session_dir_name, shm_root, Session};

/// `b"SHMCOLAB"` read as a little-endian u64.
pub const SEGMENT_MAGIC: u64 = u64::from_le_bytes(*b"SHMCOLAB");
/// Version of every layout in this crate; bump on any change.
pub const LAYOUT_VERSION: u32 = 1;
/// Size of [`SegmentHeader`]; the body starts here.
pub const HEADER_LEN: usize = 128;
const READY: u32 = 0x5245_4459; // "READY"

/// What a segment holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum SegmentKind {
    /// A frame ring ([`crate::ring`]).
    Ring = 1,
    /// The registry ([`crate::registry`]).
    Registry = 2,
    /// Anything else (tests, user data).
    Blob = 3,
}

/// The header at offset 0 of every segment.
#[repr(C, align(128))]
pub struct SegmentHeader {
    magic: u64,
    layout_version: u32,
    kind: u32,
    session_id: u64,
    total_len: u64,
    /// 0 while the creator initialises the body; READY after.
    /// SYNC: stored with Release by the creator after the body is written;
    /// loaded with Acquire by `Segment::open`.
    ready: AtomicU32,
    creator_pid: u32,
    _reserved: [u8; 88],
}
const _: () = assert!(std::mem::size_of::<SegmentHeader>() == HEADER_LEN);
const _: () = assert!(std::mem::align_of::<SegmentHeader>() == 128);

/// Whether `name` may name a session (`max` 64, no dots) or a segment
/// (`max` 100, `dot` allowed): ASCII letters, digits, `_` and `-`, never a
/// leading dot, so that no name can step out of its directory.
fn valid_name(name: &str, max: usize, dot: bool) -> bool {
    !name.is_empty()
        && name.len() <= max
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || (dot && b == b'.'))
}
