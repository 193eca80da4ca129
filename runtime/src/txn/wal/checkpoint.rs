//! [`Wal::checkpoint`]: write the snapshot atomically, then switch to a
//! fresh log. The steps and what a crash after each leaves are in the
//! module docs of [`crate::txn::wal`].

use super::format::{encode_snapshot, LOG_HEADER_LEN};
use super::open::{install_log, prepare_log, InstallError};
use super::{io_err, Mark, Wal, WalError, SNAPSHOT_FILE, SNAPSHOT_TMP};
use crate::txn::storage::{LogFile, Storage};

impl<S: Storage> Wal<S> {
    /// Checkpoint: sync what is appended (as [`Wal::sync`]), write
    /// `snapshot` (the state as of every record appended so far) atomically
    /// (temporary file, fsync, rename, fsync of the directory), then switch
    /// to a fresh log whose LSNs continue; recovery then starts from it.
    ///
    /// On an error the log goes on as before (still correct after a crash:
    /// see the module docs), except after a failed directory sync of the log
    /// switch, which poisons it.
    pub fn checkpoint(&mut self, snapshot: &[u8]) -> Result<(), WalError> {
        // The snapshot must not hold a commit that could still fail.
        if self.sync_in_flight() {
            return Err(WalError::SyncInFlight);
        }
        self.sync()?;
        let next = self.next_lsn;
        self.write_snapshot(next, snapshot)?;
        let file = prepare_log(&self.storage, &self.dir, next, self.chunk)?;
        match install_log(&self.storage, &self.dir) {
            Ok(()) => {}
            Err(InstallError::NotRenamed(e)) => return Err(e),
            Err(InstallError::NotDurable(e)) => {
                self.poisoned = true;
                return Err(e);
            }
        }
        self.alloc = file.len().map_err(io_err("stat the new log"))?;
        self.file = file;
        self.written = LOG_HEADER_LEN as u64;
        self.acked = Mark {
            end: self.written,
            lsn: next - 1,
        };
        self.synced_lsn = next - 1;
        Ok(())
    }

    /// Steps 1-3: the snapshot under its name, durably.
    fn write_snapshot(&mut self, next: u64, snapshot: &[u8]) -> Result<(), WalError> {
        let tmp = self.dir.join(SNAPSHOT_TMP);
        let bytes = encode_snapshot(next, snapshot);
        if let Err(e) = self.storage.write_new(&tmp, &bytes) {
            let _ = self.storage.remove(&tmp);
            return Err(io_err("write the snapshot")(e));
        }
        self.storage
            .rename(&tmp, &self.dir.join(SNAPSHOT_FILE))
            .map_err(io_err("rename the snapshot"))?;
        self.storage
            .sync_dir(&self.dir)
            .map_err(io_err("sync the directory after the snapshot"))
    }
}
