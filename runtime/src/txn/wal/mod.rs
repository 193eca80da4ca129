//! The write-ahead log: opaque payloads in checksummed, numbered records,
//! made durable in groups, truncated by checkpoints, recovered after any
//! crash.
//!
//! # Files (in the log's directory)
//!
//! | file | what |
//! | --- | --- |
//! | `wal.log` | header (`base_lsn`) + records from `base_lsn` on + preallocated zeros |
//! | `snapshot` | the state as of every record below its `next_lsn` (absent before the first checkpoint) |
//! | `wal.log.tmp`, `snapshot.tmp` | a checkpoint in progress; removed at open |
//!
//! The byte layouts are drawn in [`format`](mod@format).
//!
//! # Appending and group commit
//!
//! [`Wal::append`] encodes the record into a buffer and returns its LSN;
//! [`Wal::sync`] writes the whole buffer with one `write_at` and then makes
//! it durable with one fdatasync per [`SyncMode`]: the caller appends every
//! commit that is ready, then syncs once, and acknowledges them all after it
//! (group commit). A buffer past 1 MiB is written through by `append`
//! (still acknowledged only by `sync`). The file is preallocated 16 MiB at a
//! time ahead of the records (by [`crate::txn::storage::LogFile::allocate`],
//! then one fdatasync so the new length is durable), so an append never grows
//! the file and the per-commit fdatasync has only data to flush.
//!
//! # Failures
//!
//! Any I/O error from `append` or `sync` drops every record appended since
//! the last successful `sync` (the last acknowledged point): their LSNs are
//! handed out again. Before returning the error the log zeroes, durably, the
//! bytes written past that point, so that a commit that failed can never
//! reappear after recovery. If even that fails, the log is poisoned and every
//! later call returns [`WalError::Poisoned`]; reopening recovers.
//!
//! # Checkpoints, and why a crash never mixes two states
//!
//! [`Wal::checkpoint`] runs these steps; the right column is what a crash
//! right after the step leaves on disk, and what recovery makes of it.
//!
//! | step | a crash after it leaves |
//! | --- | --- |
//! | 1. write `snapshot.tmp` (`next_lsn` = next LSN), fsync | old snapshot + old log: the old state; the tmp file is removed at open |
//! | 2. rename `snapshot.tmp` -> `snapshot` | either name: the old state, or the new snapshot + old log |
//! | 3. fsync the directory | new snapshot + old log |
//! | 4. write `wal.log.tmp` (`base_lsn` = next LSN), preallocate, fdatasync | new snapshot + old log |
//! | 5. rename `wal.log.tmp` -> `wal.log` | new snapshot + old or new log |
//! | 6. fsync the directory | new snapshot + new log: the new state |
//!
//! "New snapshot + old log" is the new state too: recovery skips the old
//! log's records below the snapshot's `next_lsn` (they are in it) and replays
//! those after it (none, or those appended after a checkpoint that failed at
//! step 4-6: the log then stays the old file). "Old snapshot + new log" cannot
//! happen: the new log gets its name only after the new snapshot's name is
//! durable (step 3). A log whose `base_lsn` is above the snapshot's
//! `next_lsn` (or above 1 without a snapshot) would mean lost records and is
//! refused as [`WalError::Corrupt`]. If recovery finds a log whose records
//! all lie below the snapshot's `next_lsn` and whose next LSN is not that
//! `next_lsn`, it finishes the checkpoint (steps 4-6) before appending, so
//! that LSNs in the file stay contiguous. A failure at step 6 poisons the log:
//! appending to a file whose name may not survive would lose commits.
//!
//! # Recovery
//!
//! [`Wal::open`] loads the snapshot, then scans the log ([`recover`]):
//! valid records in LSN order up to the first torn or corrupt one. The bytes
//! after the last valid record that are not zero are zeroed and synced before
//! anything is appended (`Recovered::cut_bytes` counts them).
//!
//! # Measured (this VM, ext4)
//!
//! `cargo test -p shmcollab-runtime --release txn::wal::tests::measure --
//! --ignored --nocapture`, three runs:
//!
//! | preallocation | append 128 B + fdatasync, p50 / p99 | 1024 x 128 B per fdatasync |
//! | --- | --- | --- |
//! | zeros written ([`Prealloc::ZeroFill`], the default) | 118-129 µs / 206-212 µs | 3.8-4.7 M records/s |
//! | `fallocate` ([`Prealloc::Fallocate`]) | 120-130 µs / 198-288 µs | 3.0-3.2 M records/s |
//!
//! Writing real zeros ahead costs one 16 MiB write and fdatasync per chunk
//! (paid by the append that crosses into it); in exchange the fdatasync of a
//! commit has no unwritten extent to convert.
//!
//! # Why one log per manager, not one per host
//!
//! A log shared by the managers of a host (group commit across managers:
//! one fdatasync for the commits of several managers) was measured against
//! today's one log per manager, in two ways, on this 2-vCPU VM (ext4 on
//! virtio-blk), alternating runs:
//!
//! * the floor, no runtime: `benches/floor/shared_log.c`, 8 processes
//!   appending 128-byte records with an fdatasync each, into 8 files or
//!   into one file (robust append lock held for the pwrite only,
//!   cross-process leader/follower fdatasync on a futex). Quiet machine:
//!   8 files 25,596 commits/s median (24,148-25,845), one file 28,642
//!   (25,652-29,908) with 4.4 commits per fdatasync: 1.12x, p50 289 vs
//!   276 µs; loaded, 1.21x in one run and below 1 in another. The 8
//!   files are already 3.7x one writer's 7k/s: the block layer merges the
//!   cache flushes of concurrent fdatasyncs, so the device groups them
//!   without any coordination between the processes.
//! * in the runtime (`commit_8lp`, throwaway build, not kept): the
//!   managers' logs as regions of one host file, the fdatasync shared
//!   through a futex word as above. 2,132-3,056 commits/s against
//!   9,995-11,605 with a log each (default placement, 3 alternating runs);
//!   8,557-9,999 against 8,950-9,066 with `placement = "none"`. A commit
//!   that rides on another manager's fdatasync waits for that manager to
//!   be scheduled after its fdatasync (to publish it and wake the others):
//!   a second wake-up in series, on CPUs shared by 16 processes, that costs
//!   more than the fdatasync it saves.
//!
//! So the logs stay one per manager (the kernel does the grouping across
//! them without a hop between processes), and group commit stays within a
//! manager (one fdatasync for every commit of its LPs that arrived
//! together: `commit_8lp_one_host`). Every figure and the commands:
//! benches/README.md, "Transactions: one log per manager, not per host".
//!
//! [`Prealloc::ZeroFill`]: crate::txn::storage::Prealloc::ZeroFill
//! [`Prealloc::Fallocate`]: crate::txn::storage::Prealloc::Fallocate

mod checkpoint;
pub mod format;
mod open;
pub mod recover;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_crash;

use crate::txn::storage::{LogFile, Storage, SyncData};
use format::{encode_record, record_len, MAX_PAYLOAD};
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub use format::FormatError;
pub use recover::Stop;

/// Name of the log file in the log's directory.
pub const LOG_FILE: &str = "wal.log";
/// Name of the snapshot file.
pub const SNAPSHOT_FILE: &str = "snapshot";
const LOG_TMP: &str = "wal.log.tmp";
const SNAPSHOT_TMP: &str = "snapshot.tmp";
/// The log file is preallocated this much at a time.
pub const PREALLOC_CHUNK: u64 = 16 << 20;
/// `append` writes the buffer through once it holds this much.
const WRITE_THROUGH: usize = 1 << 20;
/// In [`SyncMode::Batch`], the least time between two fdatasyncs.
pub const BATCH_INTERVAL: Duration = Duration::from_millis(10);

/// When [`Wal::sync`] calls fdatasync.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SyncMode {
    /// Every `sync` writes and fdatasyncs: a commit acknowledged after it
    /// survives a power loss.
    #[default]
    Always,
    /// Every `sync` writes (into the page cache: it survives a kill -9 of any
    /// process) and fdatasyncs only if the last fdatasync is at least
    /// [`BATCH_INTERVAL`] old: a power loss may lose the last 10 ms. Call
    /// `sync` again by [`Wal::sync_deadline`] to bound that window. A failed
    /// fdatasync drops (and zeroes) the group being synced only; the groups
    /// acknowledged before it stay, as durable as the page cache keeps them.
    Batch,
    /// Every `sync` writes; never fdatasync (the OS decides).
    Off,
}

/// What [`Wal::open`] recovered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovered {
    /// The last checkpoint's snapshot, if any.
    pub snapshot: Option<Vec<u8>>,
    /// `(lsn, payload)` of the valid records after it, in order.
    pub records: Vec<(u64, Vec<u8>)>,
    /// Bytes of torn or corrupt tail zeroed (0 after a clean shutdown).
    pub cut_bytes: u64,
    /// Why the scan of the log stopped.
    pub stop: Stop,
}

/// What went wrong in a log operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WalError {
    /// A storage operation failed.
    #[error("write-ahead log: {what}: {source}")]
    Io {
        /// The step that failed.
        what: &'static str,
        /// The error from the storage.
        #[source]
        source: io::Error,
    },
    /// A payload larger than a record may hold.
    #[error("write-ahead log: record of {len} bytes, at most {max}")]
    TooLarge {
        /// Payload length.
        len: usize,
        /// The bound.
        max: usize,
    },
    /// [`Wal::begin_sync`] or a checkpoint while a sync job is out.
    #[error("write-ahead log: a sync is in flight")]
    SyncInFlight,
    /// [`Wal::finish_sync`] without a job out.
    #[error("write-ahead log: no sync in flight")]
    NoSyncInFlight,
    /// An earlier failure could not be cleaned up; reopen the log.
    #[error("write-ahead log: poisoned by an earlier failure, reopen it")]
    Poisoned,
    /// A snapshot or log header that cannot be read, or a log that does not
    /// continue the snapshot (the log's header is never torn: it is written
    /// under a temporary name and renamed).
    #[error("write-ahead log: {file} is corrupt: {source}")]
    Corrupt {
        /// The file.
        file: PathBuf,
        /// What is wrong with it.
        #[source]
        source: FormatError,
    },
}

fn io_err(what: &'static str) -> impl FnOnce(io::Error) -> WalError {
    move |source| WalError::Io { what, source }
}

/// How to open a log: [`Wal::open`] takes the defaults with a sync mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalOptions {
    /// When `sync` calls fdatasync.
    pub sync: SyncMode,
    /// Bytes preallocated at a time (rounded up to a multiple of 8, at
    /// least 4 KiB); [`PREALLOC_CHUNK`] by default.
    pub prealloc_chunk: u64,
}

impl WalOptions {
    /// The defaults with `sync`.
    pub fn new(sync: SyncMode) -> Self {
        WalOptions {
            sync,
            prealloc_chunk: PREALLOC_CHUNK,
        }
    }

    fn chunk(&self) -> u64 {
        self.prealloc_chunk.max(4096).next_multiple_of(8)
    }
}

/// The last acknowledged point: the log's end offset and LSN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Mark {
    end: u64,
    lsn: u64,
}

/// The write-ahead log of one directory. See the module docs.
pub struct Wal<S: Storage> {
    storage: S,
    dir: PathBuf,
    file: S::File,
    mode: SyncMode,
    /// Preallocation step.
    chunk: u64,
    /// LSN the next `append` hands out.
    next_lsn: u64,
    /// Encoded records not yet written to the file; they go at `written`.
    buf: Vec<u8>,
    /// End offset of the records written to the file.
    written: u64,
    /// What `sync` last acknowledged; `written` and `buf` go past it.
    acked: Mark,
    /// What the sync job in flight covers (between `acked` and `written`).
    syncing: Option<Mark>,
    /// Highest LSN made durable by fdatasync (or a checkpoint).
    synced_lsn: u64,
    /// Length of the file (preallocated up to here).
    alloc: u64,
    last_fdatasync: Option<Instant>,
    last_sync: Option<Duration>,
    syncs: u64,
    poisoned: bool,
}

impl<S: Storage> Wal<S> {
    /// Append one record (buffered, not yet durable); returns its LSN (1, 2,
    /// 3..., continuing across restarts and checkpoints). On an I/O error
    /// every record since the last successful `sync` is dropped (see the
    /// module docs); on [`WalError::TooLarge`] nothing changes.
    pub fn append(&mut self, payload: &[u8]) -> Result<u64, WalError> {
        self.check_poison()?;
        if payload.len() > MAX_PAYLOAD {
            return Err(WalError::TooLarge {
                len: payload.len(),
                max: MAX_PAYLOAD,
            });
        }
        let end = self.written + (self.buf.len() + record_len(payload.len())) as u64;
        if end > self.alloc {
            if let Err(e) = self.preallocate(end) {
                return Err(self.roll_back(e));
            }
        }
        let lsn = self.next_lsn;
        encode_record(lsn, payload, &mut self.buf);
        self.next_lsn += 1;
        if self.buf.len() >= WRITE_THROUGH {
            if let Err(e) = self.write_buf() {
                return Err(self.roll_back(e));
            }
        }
        Ok(lsn)
    }

    /// Make every appended record durable per the [`SyncMode`]: one write
    /// and at most one fdatasync for all records appended since the last
    /// sync (group commit). Returns the highest acknowledged LSN (with
    /// `Batch` and `Off`: written to the OS, see [`SyncMode`]). On failure
    /// the unacknowledged records are dropped and zeroed (see the module
    /// docs) and the error returned. [`Wal::begin_sync`] and
    /// [`Wal::finish_sync`] do the same with the fdatasync on another thread.
    pub fn sync(&mut self) -> Result<u64, WalError> {
        match self.begin_sync()? {
            Begun::Done(lsn) => Ok(lsn),
            Begun::Sync(job) => self.finish_sync(job.run()),
        }
    }

    /// The first half of [`Wal::sync`]: write what is buffered and, if an
    /// fdatasync is due, hand it out as a [`SyncJob`] to run on any thread,
    /// whose result goes to [`Wal::finish_sync`]. Records appended
    /// meanwhile are not covered by it (they wait for the next sync); an
    /// I/O error in such an append drops only them. One sync at a time:
    /// [`WalError::SyncInFlight`] while a job is out.
    pub fn begin_sync(&mut self) -> Result<Begun, WalError> {
        self.check_poison()?;
        if self.syncing.is_some() {
            return Err(WalError::SyncInFlight);
        }
        if let Err(e) = self.write_buf() {
            return Err(self.roll_back(e));
        }
        let mark = Mark {
            end: self.written,
            lsn: self.next_lsn - 1,
        };
        let due = match self.mode {
            SyncMode::Always => self.synced_lsn < mark.lsn,
            SyncMode::Batch => {
                self.synced_lsn < mark.lsn
                    && self
                        .last_fdatasync
                        .is_none_or(|at| at.elapsed() >= BATCH_INTERVAL)
            }
            SyncMode::Off => false,
        };
        if !due {
            self.acked = mark;
            return Ok(Begun::Done(mark.lsn));
        }
        self.syncing = Some(mark);
        Ok(Begun::Sync(SyncJob {
            file: Box::new(self.file.syncer()),
        }))
    }

    /// The second half of [`Wal::sync`]: the job's result. `Ok` acknowledges
    /// every record up to the job's start and returns the highest LSN; an
    /// error drops and zeroes every unacknowledged record (those appended
    /// since the job started too) and is returned.
    pub fn finish_sync(&mut self, done: SyncDone) -> Result<u64, WalError> {
        let mark = self.syncing.take().ok_or(WalError::NoSyncInFlight)?;
        match done.result {
            Ok(()) => {
                self.last_sync = Some(done.took);
                self.last_fdatasync = Some(Instant::now());
                self.syncs += 1;
                self.synced_lsn = self.synced_lsn.max(mark.lsn);
                self.acked = mark;
                Ok(mark.lsn)
            }
            Err(e) => Err(self.roll_back(io_err("fdatasync")(e))),
        }
    }

    /// Whether a [`SyncJob`] is out.
    pub fn sync_in_flight(&self) -> bool {
        self.syncing.is_some()
    }

    /// Write the buffer at `written`.
    fn write_buf(&mut self) -> Result<(), WalError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        self.file
            .write_at(self.written, &self.buf)
            .map_err(io_err("write"))?;
        self.written += self.buf.len() as u64;
        self.buf.clear();
        Ok(())
    }

    fn fdatasync(&mut self, what: &'static str) -> Result<(), WalError> {
        let start = Instant::now();
        self.file.sync_data().map_err(io_err(what))?;
        self.last_sync = Some(start.elapsed());
        self.last_fdatasync = Some(Instant::now());
        self.syncs += 1;
        Ok(())
    }

    /// Grow the file to a multiple of the preallocation chunk at or above
    /// `end`, and make the new length durable.
    fn preallocate(&mut self, end: u64) -> Result<(), WalError> {
        let want = end.div_ceil(self.chunk) * self.chunk;
        self.file.allocate(want).map_err(io_err("preallocate"))?;
        self.alloc = want;
        if self.mode != SyncMode::Off {
            self.fdatasync("fdatasync after preallocate")?;
        }
        Ok(())
    }

    /// Drop everything past the acknowledged point (or, while a sync is in
    /// flight, past what it covers) and zero, durably, what may have
    /// reached the file; poison the log if that fails. Returns `err` for the
    /// caller to return.
    fn roll_back(&mut self, err: WalError) -> WalError {
        let keep = self.syncing.unwrap_or(self.acked);
        let dirty = self.written + self.buf.len() as u64;
        self.buf.clear();
        self.next_lsn = keep.lsn + 1;
        self.written = keep.end;
        let from = keep.end;
        // Zero up to what the failed write may have covered (never past the
        // preallocated length: writes never go there).
        let to = dirty.min(self.alloc.max(from));
        let zeroed = (from..to).is_empty()
            || (zero_range(&mut self.file, from, to).is_ok() && self.file.sync_data().is_ok());
        if !zeroed {
            self.poisoned = true;
        }
        err
    }

    fn check_poison(&self) -> Result<(), WalError> {
        if self.poisoned {
            return Err(WalError::Poisoned);
        }
        Ok(())
    }

    /// Bytes of records in the log now (written or buffered).
    pub fn size(&self) -> u64 {
        self.written + self.buf.len() as u64 - format::LOG_HEADER_LEN as u64
    }

    /// The highest LSN the last successful `sync` (or checkpoint)
    /// acknowledged.
    pub fn durable_lsn(&self) -> u64 {
        self.acked.lsn
    }

    /// The highest LSN made durable by fdatasync or a checkpoint (below
    /// [`Wal::durable_lsn`] in `Batch` and `Off` modes).
    pub fn synced_lsn(&self) -> u64 {
        self.synced_lsn
    }

    /// The LSN the next `append` will return.
    pub fn next_lsn(&self) -> u64 {
        self.next_lsn
    }

    /// Duration of the last fdatasync.
    pub fn last_sync(&self) -> Option<Duration> {
        self.last_sync
    }

    /// fdatasyncs done by `append`, `sync` and `checkpoint` (those of
    /// recovery and of a roll-back excluded).
    pub fn syncs(&self) -> u64 {
        self.syncs
    }

    /// Whether an earlier failure poisoned the log.
    pub fn is_poisoned(&self) -> bool {
        self.poisoned
    }

    /// In [`SyncMode::Batch`] with acknowledged records not yet fdatasynced:
    /// when `sync` should be called again (even with nothing new) so that
    /// they are synced within [`BATCH_INTERVAL`].
    pub fn sync_deadline(&self) -> Option<Instant> {
        if self.mode != SyncMode::Batch || self.synced_lsn >= self.acked.lsn {
            return None;
        }
        Some(self.last_fdatasync? + BATCH_INTERVAL)
    }

    /// The log's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The storage the log is kept on.
    pub fn storage(&self) -> &S {
        &self.storage
    }
}

/// What [`Wal::begin_sync`] did.
pub enum Begun {
    /// Nothing to fdatasync now (per the [`SyncMode`]): acknowledged up to
    /// this LSN.
    Done(u64),
    /// Run this job (on any thread), then give its result to
    /// [`Wal::finish_sync`].
    Sync(SyncJob),
}

/// An fdatasync of the log, to run on any thread ([`Wal::begin_sync`]).
pub struct SyncJob {
    file: Box<dyn SyncData>,
}

impl SyncJob {
    /// Run the fdatasync.
    pub fn run(mut self) -> SyncDone {
        let start = Instant::now();
        let result = self.file.sync_data();
        SyncDone {
            result,
            took: start.elapsed(),
        }
    }
}

/// The result of a [`SyncJob`], for [`Wal::finish_sync`].
#[derive(Debug)]
pub struct SyncDone {
    result: io::Result<()>,
    took: Duration,
}

/// Write zeros over `from..to`.
fn zero_range<F: LogFile>(file: &mut F, from: u64, to: u64) -> io::Result<()> {
    const CHUNK: u64 = 1 << 20;
    let zeros = vec![0u8; CHUNK.min(to - from) as usize];
    let mut off = from;
    while off < to {
        let n = CHUNK.min(to - off) as usize;
        file.write_at(off, &zeros[..n])?;
        off += n as u64;
    }
    Ok(())
}
