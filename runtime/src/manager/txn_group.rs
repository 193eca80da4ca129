//! Group commit in the transaction server: commits are gathered while the
//! group before them is being made durable, then synced together with one
//! fdatasync on the syncing thread (`syncer.rs`), then applied and answered.
//!
//! ```text
//!   gathering ──(no sync out)──> begin_sync ──> syncing ──(done)──> apply, answer
//!       ^  commits, 2PC steps                     |  reads and new commits go on
//!       └─────────────────────────────────────────┘  into the next gathering
//! ```
//!
//! Where the fdatasync runs: on the syncing thread while frames keep
//! coming during syncs (other LPs' reads, pipelined commits), so that they
//! are served meanwhile; on the loop's own thread while nothing else waits
//! for the loop (one LP committing at a time), which saves the two wake-ups
//! of a hand-off to the thread and back (about 40 µs here, a quarter of a
//! commit).
//!
//! Failures: an append that fails drops the gathering group's records (the
//! log keeps what the sync out covers), so the whole gathering group fails;
//! a sync that fails drops everything past the last acknowledged point, so
//! the group being synced fails and the gathering one with it.

use super::context::Ctx;
use super::syncer::Syncer;
use super::txn_2pc::TwoPhase;
use super::txn_server::{reply, Outbox, Requester, TxnServer};
use crate::txn::msg::TxnReply;
use crate::txn::storage::Storage;
use crate::txn::store::Version;
use crate::txn::wal::Begun;
use shmcollab_shm::ring::BellRef;
use std::time::{Duration, Instant};

/// The longest a lazy step waits for a group's fdatasync to ride along with.
const LAZY_SYNC: Duration = Duration::from_millis(20);

/// Checkpoint once the log holds this many bytes.
const CHECKPOINT_BYTES: u64 = 64 << 20;

/// What to do once a group's records are durable.
pub(super) enum AfterSync {
    /// A local commit: apply it and answer.
    Commit {
        to: Requester,
        txid: u64,
        version: Version,
        /// All of the transaction's writes are in this commit (the answer
        /// tells the LP that they carry `version`).
        whole: bool,
    },
    /// Two-phase commit steps (`txn_2pc.rs`).
    TwoPhase(super::txn_2pc::AfterSync),
}

/// The groups of one server.
pub(super) struct Groups {
    /// Steps whose records are appended, for the next sync.
    pub gathering: Vec<AfterSync>,
    /// Steps whose records the sync out covers.
    syncing: Vec<AfterSync>,
    /// Steps that need their records durable but nobody waits for (a
    /// host's acknowledgement of a decision): they ride along with the next
    /// group's fdatasync, or get one of their own after [`LAZY_SYNC`].
    pub lazy: Vec<AfterSync>,
    pub lazy_since: Option<Instant>,
    /// An append of the gathering group failed: the log dropped its
    /// records, so the whole group fails (and nothing more is appended to
    /// it).
    pub failed: Option<String>,
    syncer: Syncer,
    /// Frames came during the last sync (or are waiting after it): the
    /// next sync goes to the thread.
    pub busy: bool,
}

impl Groups {
    /// Empty groups and a syncing thread that wakes the manager of `ctx`.
    pub fn new(ctx: &Ctx) -> Groups {
        let bell = ctx.registry.doorbell(ctx.slot).ok().map(|b| {
            // SAFETY: `b` is our slot's doorbell inside the registry
            // segment, which BellRef keeps mapped.
            unsafe { BellRef::new(ctx.registry.segment().clone(), b as *const _) }
        });
        Groups {
            gathering: Vec::new(),
            syncing: Vec::new(),
            lazy: Vec::new(),
            lazy_since: None,
            failed: None,
            syncer: Syncer::spawn(bell),
            busy: false,
        }
    }

    /// When the lazy steps want their own fdatasync.
    pub fn deadline(&self) -> Option<Instant> {
        self.lazy_since.map(|t| t + LAZY_SYNC)
    }

    /// Whether the sync out is done and waits to be finished.
    pub fn sync_done(&self) -> bool {
        self.syncer.ready()
    }
}

impl<S: Storage> TxnServer<S> {
    /// Finish the sync out if it is done; then, if none is out, start the
    /// gathering group's (or, with nothing to sync, answer it at once).
    /// `waiting` tells whether frames wait for the loop.
    pub fn sync_group(&mut self, ctx: &Ctx, out: &mut Outbox, waiting: &dyn Fn() -> bool) {
        if self.sync_in_flight() {
            let Some(done) = self.groups.syncer.take() else {
                return;
            };
            self.finish_sync(ctx, done, out);
        }
        self.start_group(ctx, out, waiting);
    }

    /// Whether a sync is out (on the thread).
    pub fn sync_in_flight(&self) -> bool {
        self.wal.as_ref().is_ok_and(|w| w.sync_in_flight())
    }

    /// Wait for the sync out, finish it and start the next (tests); with
    /// `busy`, syncs go to the thread.
    #[cfg(test)]
    pub fn sync_group_wait(&mut self, ctx: &Ctx, out: &mut Outbox, busy: bool) {
        self.groups.busy = busy;
        self.sync_group(ctx, out, &|| busy);
        while self.sync_in_flight() {
            let done = self.groups.syncer.wait();
            self.finish_sync(ctx, done, out);
            self.groups.busy = busy;
            self.start_group(ctx, out, &|| busy);
        }
    }

    /// The sync out is done: acknowledge its group or fail it (and the
    /// gathering one, whose records its failure dropped).
    fn finish_sync(&mut self, ctx: &Ctx, done: crate::txn::wal::SyncDone, out: &mut Outbox) {
        let Ok(w) = self.wal.as_mut() else {
            return;
        };
        let synced = w.finish_sync(done).map(drop).map_err(|e| e.to_string());
        self.stats.fsyncs = w.syncs();
        self.stats.last_fsync_us = w.last_sync().map_or(0, |d| d.as_micros() as u64);
        self.stats.log_bytes = w.size();
        if let Err(e) = &synced {
            if !self.groups.gathering.is_empty() && self.groups.failed.is_none() {
                self.groups.failed = Some(e.clone());
            }
        }
        let group = std::mem::take(&mut self.groups.syncing);
        self.finish_group(ctx, group, synced, out);
        self.maybe_checkpoint();
    }

    /// Start the gathering group's sync (none is out).
    fn start_group(&mut self, ctx: &Ctx, out: &mut Outbox, waiting: &dyn Fn() -> bool) {
        let g = &mut self.groups;
        let lazy_due = g.lazy_since.is_some_and(|t| t.elapsed() >= LAZY_SYNC);
        if !g.gathering.is_empty() || lazy_due {
            // This fdatasync covers the lazy steps' records too.
            g.gathering.append(&mut g.lazy);
            g.lazy_since = None;
        }
        if g.gathering.is_empty() {
            // A failed append's own commit was answered already.
            g.failed = None;
            self.batch_sync();
            return;
        }
        let group = std::mem::take(&mut g.gathering);
        if let Some(e) = g.failed.take() {
            return self.finish_group(ctx, group, Err(e), out);
        }
        let begun = match self.wal.as_mut() {
            Ok(w) => w.begin_sync().map_err(|e| e.to_string()),
            Err(e) => Err(e.clone()),
        };
        let on_thread = (self.groups.busy || waiting()) && !self.checkpoint_due();
        match begun {
            Ok(Begun::Sync(job)) if on_thread => {
                self.groups.busy = false;
                self.groups.syncing = group;
                self.groups.syncer.start(job);
            }
            Ok(Begun::Sync(job)) => {
                // Inline (nobody else waits; or a checkpoint is due, which
                // must find nothing in flight, and under a steady load
                // there is always a group gathering).
                self.groups.syncing = group;
                let done = job.run();
                self.groups.busy = waiting();
                self.finish_sync(ctx, done, out);
            }
            Ok(Begun::Done(_)) => {
                self.finish_group(ctx, group, Ok(()), out);
                self.maybe_checkpoint();
            }
            Err(e) => self.finish_group(ctx, group, Err(e), out),
        }
    }

    /// With `sync = "batch"`: acknowledged records not yet fdatasynced get
    /// their fdatasync within the batch interval even when nothing else
    /// comes (a failure then poisons or cuts only unacknowledged data).
    fn batch_sync(&mut self) {
        let Ok(w) = self.wal.as_mut() else {
            return;
        };
        if w.sync_deadline().is_some_and(|t| Instant::now() >= t) {
            if let Err(e) = w.sync() {
                eprintln!("shmcollab: the log's batch fdatasync failed: {e}");
            }
        }
    }

    /// A group's records are durable (`Ok`) or gone: apply and answer, or
    /// undo and answer `Failed`.
    fn finish_group(
        &mut self,
        ctx: &Ctx,
        group: Vec<AfterSync>,
        synced: Result<(), String>,
        out: &mut Outbox,
    ) {
        for a in group {
            match a {
                AfterSync::Commit {
                    to,
                    txid,
                    version,
                    whole,
                } => {
                    let ok = synced.is_ok();
                    self.store.decide(txid, ok, version);
                    let r = match &synced {
                        Ok(()) => {
                            self.stats.commits += 1;
                            TxnReply::Committed {
                                version,
                                writes_carry_version: whole,
                            }
                        }
                        Err(e) => {
                            self.stats.aborts += 1;
                            TxnReply::Failed(e.clone())
                        }
                    };
                    reply(ctx, out, to, r);
                }
                AfterSync::TwoPhase(a) => TwoPhase::after_sync(self, ctx, a, &synced, out),
            }
        }
    }

    fn checkpoint_due(&self) -> bool {
        self.wal
            .as_ref()
            .is_ok_and(|w| w.size() >= CHECKPOINT_BYTES)
    }

    /// Checkpoint when the log has grown and nothing is in flight.
    pub(super) fn maybe_checkpoint(&mut self) {
        let Ok(w) = self.wal.as_mut() else {
            return;
        };
        let busy = !self.groups.gathering.is_empty() || w.sync_in_flight();
        if w.size() < CHECKPOINT_BYTES || busy || self.two_phase.busy() {
            return;
        }
        let snap = super::txn_checkpoint::encode_checkpoint(&self.store, &self.two_phase);
        if let Err(e) = w.checkpoint(&snap) {
            eprintln!("shmcollab: checkpoint failed (the log keeps growing): {e}");
        }
        self.stats.log_bytes = w.size();
    }
}
