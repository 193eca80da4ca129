//! The platform under the write-ahead log, behind two small traits so that
//! crash and fault tests can swap it.
//!
//! * [`FsStorage`]: the real one (std::fs, `fallocate(2)`, `fdatasync(2)`,
//!   files 0600, directories 0700).
//! * [`FaultyStorage`]: an in-memory file system that injects faults (ENOSPC
//!   past a size limit, EIO on sync, torn writes, a halt after N operations)
//!   and builds the image a kill -9 or a power loss would leave
//!   ([`FaultyStorage::crash`]).
//!
//! The durability model both follow (and the log relies on):
//! * bytes written to a file are durable after [`LogFile::sync_data`] on it;
//! * a directory entry (a new file, a rename, a removal) is durable after
//!   [`Storage::sync_dir`] on its directory;
//! * [`Storage::write_new`] makes the file's contents durable, not its name.

mod faulty;
mod fs;

pub use faulty::{CrashImage, Fail, FaultyStorage, FaultySyncer, Unsynced};
pub use fs::{FsStorage, FsSyncer, Prealloc};

use std::io;
use std::path::Path;

/// An open file of the log: positional reads and writes, no cursor.
// `len` is a fallible system call (fstat), not a collection's size: an
// `is_empty` beside it would add nothing.
#[allow(clippy::len_without_is_empty)]
pub trait LogFile: Send {
    /// A second handle on this file that only makes it durable, to run an
    /// fdatasync on another thread while this one goes on writing.
    type Syncer: SyncData;
    /// The syncer of this file (cheap: a shared reference to it).
    fn syncer(&self) -> Self::Syncer;
    /// Read up to `buf.len()` bytes at `off`; fewer only at the end of the
    /// file (0 at or past it).
    fn read_at(&self, off: u64, buf: &mut [u8]) -> io::Result<usize>;
    /// Write all of `buf` at `off`, or fail (a failed write may have written
    /// a prefix: a torn write).
    fn write_at(&mut self, off: u64, buf: &[u8]) -> io::Result<()>;
    /// `fdatasync(2)`: the data written so far (and the length) is durable.
    fn sync_data(&mut self) -> io::Result<()>;
    /// The file's length in bytes.
    fn len(&self) -> io::Result<u64>;
    /// Truncate or extend (with zeros) to `len` bytes.
    fn set_len(&mut self, len: u64) -> io::Result<()>;
    /// Make the file at least `len` bytes long with the space reserved, so
    /// that writes below `len` do not grow it; the new bytes read as zeros.
    /// A file already that long is left alone.
    fn allocate(&mut self, len: u64) -> io::Result<()>;
}

/// `fdatasync(2)` on a file, from any thread: the data written to the file
/// before the call (through any handle) is durable when it returns `Ok`.
pub trait SyncData: Send + 'static {
    /// Make the file's data durable.
    fn sync_data(&mut self) -> io::Result<()>;
}

/// A file system: the operations the log needs on paths.
pub trait Storage: Send + Sync + 'static {
    /// The open file type.
    type File: LogFile;
    /// Open `path` for reading and writing; with `create`, create it (mode
    /// 0600) if missing.
    fn open(&self, path: &Path, create: bool) -> io::Result<Self::File>;
    /// The whole contents of `path`.
    fn read_all(&self, path: &Path) -> io::Result<Vec<u8>>;
    /// Create or truncate `path` (mode 0600), write `bytes`, fsync the file.
    /// The name itself is durable only after [`Storage::sync_dir`].
    fn write_new(&self, path: &Path, bytes: &[u8]) -> io::Result<()>;
    /// Atomically rename `from` to `to`, replacing `to`.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Remove the file `path`.
    fn remove(&self, path: &Path) -> io::Result<()>;
    /// fsync the directory `dir`: entries created, renamed or removed in it
    /// so far are durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// Create `dir` and its missing parents (mode 0700).
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// Whether `path` exists.
    fn exists(&self, path: &Path) -> bool;
}
