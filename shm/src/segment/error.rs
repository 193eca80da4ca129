//! The errors of the session and segment operations, one type per
//! operation: a caller that opens a segment acts on why it was refused
//! (not there yet, another session, corrupt), one that creates it on
//! whether it already exists.

use std::io;
use std::path::PathBuf;

/// Errors of [`Session::create`](super::Session::create) and [`Session::open`](super::Session::open).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// The name is empty, too long or has characters other than `[A-Za-z0-9_-]`.
    #[error("invalid session name {0:?}: use 1-64 characters from [A-Za-z0-9_-]")]
    BadName(String),
    /// The directory is not a session directory.
    #[error("{0} is not a shmcollab session directory")]
    NotASession(PathBuf),
    /// The directory is refused: not ours, not a directory, wrong mode,
    /// or without a valid owner record.
    #[error("{path} is refused as a session directory: {reason}")]
    Refused {
        /// The path involved.
        path: PathBuf,
        /// Why.
        reason: EntryError,
    },
    /// The directory name is taken (by another user if `uid` says so).
    #[error("{path} exists already{}", uid.map(|u| format!(" (owned by uid {u})")).unwrap_or_default())]
    Exists {
        /// The path involved.
        path: PathBuf,
        /// Its owner, if it could be seen.
        uid: Option<u32>,
    },
    /// The shm root is full.
    #[error("no space left in {root} to create a session (see `df {root}`; `shmcollab clean` removes what crashed sessions left)", root = root.display())]
    NoSpace {
        /// The shm root.
        root: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// A filesystem call failed.
    #[error("session directory {path}: {source}")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
}

/// Errors of [`Segment::create`](super::Segment::create).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CreateError {
    /// The segment name is not acceptable.
    #[error("invalid segment name {0:?}: use 1-100 characters from [A-Za-z0-9._-]")]
    BadName(String),
    /// A segment of this name already exists in the session.
    #[error("segment {0} already exists")]
    Exists(PathBuf),
    /// The shm root has not the room for the segment.
    #[error(
        "no space left in {root} for segment {path}: {wanted} bytes wanted (see `df {root}`; \
         `shmcollab clean` removes what crashed sessions left)",
        root = root.display(),
        path = path.display()
    )]
    NoSpace {
        /// The shm root (`/dev/shm` unless `SHMCOLAB_SHM_ROOT` says otherwise).
        root: PathBuf,
        /// The segment.
        path: PathBuf,
        /// Its size in bytes.
        wanted: u64,
    },
    /// A filesystem or mapping call failed.
    #[error("segment {path}: {source}")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
}

/// Errors of [`Segment::open`](super::Segment::open): the file is refused, never trusted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The segment name is not acceptable.
    #[error("invalid segment name {0:?}")]
    BadName(String),
    /// Opening or mapping failed (including: no such segment).
    #[error("segment {path}: {source}")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// Shorter than its header or than the length it declares.
    #[error("segment {path} is truncated: {len} bytes, needs {needed}")]
    Truncated {
        /// The path involved.
        path: PathBuf,
        /// Its length on disk.
        len: u64,
        /// What it should be at least.
        needed: u64,
    },
    /// Not a shmcollab segment.
    #[error("segment {0} has a bad magic: not a shmcollab segment")]
    BadMagic(PathBuf),
    /// Made by another layout version.
    #[error("segment {path} has layout version {found}, this build reads {expected}")]
    Version {
        /// The path involved.
        path: PathBuf,
        /// Version in the file.
        found: u32,
        /// Version of this build.
        expected: u32,
    },
    /// Belongs to another session.
    #[error("segment {path} belongs to session {found:016x}, expected {expected:016x}")]
    Session {
        /// The path involved.
        path: PathBuf,
        /// Session id in the file.
        found: u64,
        /// Session id asked for.
        expected: u64,
    },
    /// Holds another kind of structure.
    #[error("segment {path} is of kind {found}, expected {expected}")]
    Kind {
        /// The path involved.
        path: PathBuf,
        /// Kind in the file.
        found: u32,
        /// Kind asked for.
        expected: u32,
    },
    /// Header and file disagree on the length.
    #[error("segment {path} declares {declared} bytes but the file has {actual}")]
    Length {
        /// The path involved.
        path: PathBuf,
        /// Length in the header.
        declared: u64,
        /// Length of the file.
        actual: u64,
    },
    /// The creator has not finished initialising it (or died doing so).
    #[error("segment {0} is not initialised yet")]
    NotReady(PathBuf),
    /// The body fails the checks of its kind.
    #[error("segment {path}: {reason}")]
    Corrupt {
        /// The path involved.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// Why an entry of the shm root was not taken for a session of ours, or
/// its owner record was refused (see `owner.rs`): the shm root is shared
/// with every user, so each of these is expected input, not a fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EntryError {
    /// The entry is not a directory (a FIFO, a symlink, a file, ...).
    #[error("not a directory")]
    NotADirectory,
    /// Owned by another user: never read, never removed.
    #[error("owned by uid {uid}, not by us (uid {ours})")]
    NotOurs {
        /// Its owner.
        uid: u32,
        /// Our effective uid.
        ours: u32,
    },
    /// Ours, but with other mode bits than the ones we create it with.
    #[error("mode {found:04o}, expected {expected:04o}")]
    BadMode {
        /// The mode bits found.
        found: u32,
        /// The mode bits required.
        expected: u32,
    },
    /// The owner file is missing.
    #[error("no owner file")]
    NoOwner,
    /// The owner file is not a regular file of ours with mode 0600.
    #[error("owner file refused: {0}")]
    OwnerFile(Refusal),
    /// The owner file is larger than any record.
    #[error("owner file of {0} bytes (a record has at most {max})", max = super::owner::OWNER_MAX_LEN)]
    OwnerTooLong(u64),
    /// The owner record does not parse or does not match the directory.
    #[error("invalid owner record {0:?}")]
    BadRecord(String),
    /// A system call failed.
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// Why a file's metadata was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// Another file type than the one expected.
    #[error("wrong file type (a FIFO, a link, a device, ...)")]
    WrongType,
    /// Owned by another user.
    #[error("owned by uid {uid}, not by us (uid {ours})")]
    NotOurs {
        /// Its owner.
        uid: u32,
        /// Our effective uid.
        ours: u32,
    },
    /// Other mode bits than required.
    #[error("mode {found:04o}, expected {expected:04o}")]
    BadMode {
        /// The mode bits found.
        found: u32,
        /// The mode bits required.
        expected: u32,
    },
    /// fstat failed.
    #[error("{0}")]
    Io(io::Error),
}
