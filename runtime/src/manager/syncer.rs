//! The log's fdatasync on a thread of its own: while the disk makes one
//! group durable, the manager's loop goes on serving reads and taking the
//! next group's commits (pipelined group commit). Without it every read of
//! every LP waited behind the fdatasync, so the LPs' next commits arrived
//! one by one after it and groups stayed small.
//!
//! One job at a time ([`crate::txn::wal::Wal::begin_sync`] refuses a
//! second). When a job is done the thread stores its result and rings the
//! manager's doorbell, which the loop sleeps on; the loop takes the result
//! ([`Syncer::take`]) and gives it to the log.

use crate::txn::wal::{SyncDone, SyncJob};
use shmcollab_shm::ring::BellRef;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

/// The result of the job out, shared with the thread.
#[derive(Default)]
struct Slot {
    done: Mutex<Option<SyncDone>>,
    cond: Condvar,
    /// Set with `done`, read without the lock by the loop's wake-up check.
    ready: AtomicBool,
}

impl Slot {
    fn put(&self, d: SyncDone) {
        *self.done.lock().unwrap_or_else(|p| p.into_inner()) = Some(d);
        // SYNC: Release pairs with the Acquire in `Syncer::ready`: the loop
        // that sees the flag finds the result under the lock.
        self.ready.store(true, Ordering::Release);
        self.cond.notify_all();
    }
}

/// The syncing thread of one manager (or, if it cannot be started, the
/// caller's own thread).
pub(super) struct Syncer {
    jobs: Option<mpsc::Sender<SyncJob>>,
    slot: Arc<Slot>,
    thread: Option<JoinHandle<()>>,
}

impl Syncer {
    /// Start the thread; it rings `bell` (the manager's doorbell) when a
    /// job is done. If the thread cannot be started, jobs run inline.
    pub fn spawn(bell: Option<BellRef>) -> Syncer {
        let slot = Arc::new(Slot::default());
        let (tx, rx) = mpsc::channel::<SyncJob>();
        let shared = Arc::clone(&slot);
        let thread = std::thread::Builder::new()
            .name("wal-sync".into())
            .spawn(move || {
                for job in rx {
                    shared.put(job.run());
                    if let Some(b) = &bell {
                        b.get().ring();
                    }
                }
            });
        match thread {
            Ok(t) => Syncer {
                jobs: Some(tx),
                slot,
                thread: Some(t),
            },
            Err(e) => {
                eprintln!("shmcollab: no thread for the log's fdatasync ({e}): syncing inline");
                Syncer {
                    jobs: None,
                    slot,
                    thread: None,
                }
            }
        }
    }

    /// Run `job` (on the thread).
    pub fn start(&self, job: SyncJob) {
        let job = match &self.jobs {
            Some(tx) => match tx.send(job) {
                Ok(()) => return,
                // The thread is gone (it cannot panic, but if it did):
                // inline.
                Err(mpsc::SendError(job)) => job,
            },
            None => job,
        };
        self.slot.put(job.run());
    }

    /// Whether the job out is done (its result waits for [`Syncer::take`]).
    pub fn ready(&self) -> bool {
        self.slot.ready.load(Ordering::Acquire)
    }

    /// The result of the job out, if it is done.
    pub fn take(&self) -> Option<SyncDone> {
        if !self.ready() {
            return None;
        }
        let mut g = self.slot.done.lock().unwrap_or_else(|p| p.into_inner());
        self.slot.ready.store(false, Ordering::Relaxed);
        g.take()
    }

    /// Wait for the job out to be done and take its result (there must be
    /// one out).
    #[cfg(test)]
    pub fn wait(&self) -> SyncDone {
        let mut g = self.slot.done.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(d) = g.take() {
                self.slot.ready.store(false, Ordering::Relaxed);
                return d;
            }
            g = self.slot.cond.wait(g).unwrap_or_else(|p| p.into_inner());
        }
    }
}

impl Drop for Syncer {
    fn drop(&mut self) {
        // Closing the channel ends the thread after its job.
        self.jobs = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
