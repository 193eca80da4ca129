//! [`Wal::open`]: load the snapshot, scan the log, cut what is torn, and be
//! ready to append.

use super::format::{self, decode_log_header, FormatError, LOG_HEADER_LEN};
use super::recover::{self, Stop};
use super::{
    io_err, zero_range, Mark, Recovered, SyncMode, Wal, WalError, WalOptions, LOG_FILE, LOG_TMP,
    SNAPSHOT_FILE, SNAPSHOT_TMP,
};
use crate::txn::storage::{LogFile, Storage};
use std::path::Path;

impl<S: Storage> Wal<S> {
    /// Open or create the log in `dir` (creating `dir`), recover (stop at the
    /// first torn or corrupt record and zero the log from there), make what
    /// it recovered durable (one fdatasync), and be ready to append after
    /// the last valid record.
    pub fn open(storage: S, dir: &Path, sync: SyncMode) -> Result<(Wal<S>, Recovered), WalError> {
        Self::open_with(storage, dir, WalOptions::new(sync))
    }

    /// [`Wal::open`] with options.
    pub fn open_with(
        storage: S,
        dir: &Path,
        opts: WalOptions,
    ) -> Result<(Wal<S>, Recovered), WalError> {
        let chunk = opts.chunk();
        storage
            .create_dir_all(dir)
            .map_err(io_err("create the directory"))?;
        for tmp in [LOG_TMP, SNAPSHOT_TMP] {
            let path = dir.join(tmp);
            if storage.exists(&path) {
                storage
                    .remove(&path)
                    .map_err(io_err("remove a checkpoint's temporary file"))?;
            }
        }
        let (snap_next, snapshot) = load_snapshot(&storage, dir)?;
        let log_path = dir.join(LOG_FILE);
        let (file, scan) = if storage.exists(&log_path) {
            open_log(&storage, dir, snap_next, chunk)?
        } else {
            (create_log(&storage, dir, snap_next, chunk)?, None)
        };
        let (end, next_lsn, cut_bytes, stop, records) = match scan {
            Some(s) => (s.end, s.next_lsn, s.dirty_end - s.end, s.stop, s.records),
            None => (LOG_HEADER_LEN as u64, snap_next, 0, Stop::End, Vec::new()),
        };
        let alloc = file.len().map_err(io_err("stat the log"))?;
        let wal = Wal {
            storage,
            dir: dir.to_path_buf(),
            file,
            mode: opts.sync,
            chunk,
            next_lsn,
            buf: Vec::new(),
            written: end,
            acked: Mark {
                end,
                lsn: next_lsn - 1,
            },
            syncing: None,
            synced_lsn: next_lsn - 1,
            alloc,
            last_fdatasync: None,
            last_sync: None,
            syncs: 0,
            poisoned: false,
        };
        let recovered = Recovered {
            snapshot,
            records,
            cut_bytes,
            stop,
        };
        Ok((wal, recovered))
    }
}

/// The snapshot's `next_lsn` and payload, or `(1, None)` without one.
fn load_snapshot<S: Storage>(storage: &S, dir: &Path) -> Result<(u64, Option<Vec<u8>>), WalError> {
    let path = dir.join(SNAPSHOT_FILE);
    if !storage.exists(&path) {
        return Ok((1, None));
    }
    let bytes = storage
        .read_all(&path)
        .map_err(io_err("read the snapshot"))?;
    let (next, payload) = format::decode_snapshot(&bytes)
        .map_err(|source| WalError::Corrupt { file: path, source })?;
    Ok((next, Some(payload.to_vec())))
}

/// Open the existing log, scan it and zero its torn tail durably. If its
/// records all lie below the snapshot (a checkpoint stopped before switching
/// logs) and it does not continue at `snap_next`, switch to a fresh log.
fn open_log<S: Storage>(
    storage: &S,
    dir: &Path,
    snap_next: u64,
    chunk: u64,
) -> Result<(S::File, Option<recover::Scan>), WalError> {
    let path = dir.join(LOG_FILE);
    let mut file = storage.open(&path, false).map_err(io_err("open the log"))?;
    let mut header = [0u8; LOG_HEADER_LEN];
    let n = file
        .read_at(0, &mut header)
        .map_err(io_err("read the log header"))?;
    let corrupt = |source| WalError::Corrupt {
        file: path.clone(),
        source,
    };
    let base = decode_log_header(&header[..n]).map_err(corrupt)?;
    if base > snap_next {
        return Err(corrupt(FormatError::BadField(
            "base_lsn (the log starts after the snapshot ends: records are missing)",
        )));
    }
    let scan = recover::scan(&file, base, snap_next).map_err(io_err("read the log"))?;
    if scan.next_lsn < snap_next {
        return Ok((create_log(storage, dir, snap_next, chunk)?, None));
    }
    if scan.dirty_end > scan.end {
        zero_range(&mut file, scan.end, scan.dirty_end)
            .map_err(io_err("cut the log's torn tail"))?;
    }
    // What recovery read may be in the page cache only (a kill -9 before
    // the fdatasync): make it durable before anything acts on it (a
    // two-phase commit decided from recovered records must not lose them
    // to a later power loss).
    file.sync_data()
        .map_err(io_err("make the recovered log durable"))?;
    Ok((file, Some(scan)))
}

/// Write a fresh log whose first record will be `base_lsn` under the
/// temporary name, preallocated and synced (steps 4 of a checkpoint).
pub(super) fn prepare_log<S: Storage>(
    storage: &S,
    dir: &Path,
    base_lsn: u64,
    chunk: u64,
) -> Result<S::File, WalError> {
    let tmp = dir.join(LOG_TMP);
    let result = (|| {
        storage.write_new(&tmp, &format::encode_log_header(base_lsn))?;
        let mut file = storage.open(&tmp, false)?;
        file.allocate(chunk)?;
        file.sync_data()?;
        Ok(file)
    })();
    result.map_err(|e| {
        // Best effort: a leftover is removed at the next open anyway.
        let _ = storage.remove(&tmp);
        io_err("write a new log")(e)
    })
}

/// Give the prepared log its name and make the name durable (steps 5 and 6).
pub(super) fn install_log<S: Storage>(storage: &S, dir: &Path) -> Result<(), InstallError> {
    storage
        .rename(&dir.join(LOG_TMP), &dir.join(LOG_FILE))
        .map_err(|e| InstallError::NotRenamed(io_err("rename the new log")(e)))?;
    storage
        .sync_dir(dir)
        .map_err(|e| InstallError::NotDurable(io_err("sync the directory after the log switch")(e)))
}

/// How [`install_log`] failed.
pub(super) enum InstallError {
    /// The old log still has the name.
    NotRenamed(WalError),
    /// The new log has the name, but it may not survive a crash.
    NotDurable(WalError),
}

/// Create a fresh log at open (no log yet, or finishing a checkpoint).
fn create_log<S: Storage>(
    storage: &S,
    dir: &Path,
    base_lsn: u64,
    chunk: u64,
) -> Result<S::File, WalError> {
    let file = prepare_log(storage, dir, base_lsn, chunk)?;
    match install_log(storage, dir) {
        Ok(()) => Ok(file),
        Err(InstallError::NotRenamed(e) | InstallError::NotDurable(e)) => Err(e),
    }
}
