//! The transaction server: each manager serves the state of the
//! sub-functions its LP hosts (a [`Store`]), makes every commit durable in
//! its write-ahead log before it answers (one fdatasync for every commit
//! that arrived in the same turn: group commit, across LPs and across the
//! pipelined commits of one LP), and coordinates the commits of its own LP:
//! at the one host of everything the transaction touched, or by two-phase
//! commit across the hosts (`txn_2pc.rs`).
//!
//! Where things live: `<state_dir>/<collaboration>/m<slot>/` holds this
//! manager's log (one per manager: one fdatasync covers every sub-function
//! it hosts, and managers sync in parallel on their own files; why not one
//! log per host shared by the managers: measured, see
//! [`crate::txn::wal`], "Why one log per manager, not one per host") and its
//! checkpoint; the checkpoint keeps each sub-function in a section of its
//! own, so that one sub-function's state can be cut out and moved
//! (`Store::snapshot_of` / `Store::load_subfn`). A lock file there makes a
//! second owner (another collaboration of the same name on the same
//! `state_dir`) fail with a clear error.
//!
//! A commit's life: validated and its keys locked (`Store::prepare`), its
//! record appended, the group synced, then applied and answered; if the
//! sync fails it is undone and answered `Failed`, and the log is cut back
//! so that it cannot reappear after a restart. Reads are served from the
//! applied state only: nothing uncommitted is ever seen.

use super::context::Ctx;
use super::txn_2pc::TwoPhase;
use super::txn_group::{AfterSync, Groups};
use crate::report::TxnReport;
use crate::txn::msg::{TxnReply, TxnRequest};
use crate::txn::record::Record;
use crate::txn::storage::{FsStorage, Storage};
use crate::txn::store::{Store, TxnSet, Version};
use crate::txn::wal::Wal;
use crate::wire::{FLAG_DST_LP, FLAG_MANAGER};
use shmcollab_shm::frame::{kind, FrameHeader};
use std::path::PathBuf;
use std::time::Instant;

/// A transaction frame for the server.
pub(super) struct TxnFrame {
    pub h: FrameHeader,
    pub payload: Vec<u8>,
    /// From our own LP (not from a peer manager or our server).
    pub from_lp: bool,
}

/// Who to answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Requester {
    pub slot: u32,
    pub corr: u32,
    /// A manager (two-phase commit), not an LP.
    pub manager: bool,
}

/// Frames the server sends (routed like frames of the manager).
pub(super) type Outbox = Vec<(FrameHeader, Vec<u8>)>;

pub(super) struct TxnServer<S: Storage = FsStorage> {
    pub(super) store: Store,
    /// The log, or why there is none (every commit then fails with it).
    pub(super) wal: Result<Wal<S>, String>,
    /// A manager with no state yet makes its log at its first record, not
    /// at start (a log is preallocated: 32 managers would write 512 MB at
    /// launch): the storage, directory and mode to make it with.
    deferred: Option<(S, PathBuf, crate::plan::SyncMode)>,
    _lock: Option<std::fs::File>,
    pub(super) next_version: Version,
    /// Transaction ids: this start's epoch and a counter (`txn_epoch.rs`).
    ids: super::txn_epoch::TxIds,
    /// Group commit: the group being gathered and the one being synced.
    pub(super) groups: Groups,
    pub(super) two_phase: TwoPhase,
    pub(super) stats: TxnReport,
    /// A crash point to pass once the frames of this turn are sent
    /// (`crate::failpoint`; crash tests).
    pub(super) point_after_send: Option<&'static str>,
}

/// This manager's state directory.
pub(super) fn state_dir(ctx: &Ctx) -> PathBuf {
    ctx.plan
        .state_dir
        .join(&ctx.plan.name)
        .join(format!("m{}", ctx.slot))
}

/// Open the log (in unit tests with a small preallocation: their storage
/// keeps files in memory and copies them at each simulated crash).
fn open_wal<S: Storage>(
    storage: S,
    dir: &std::path::Path,
    sync: crate::plan::SyncMode,
) -> Result<(Wal<S>, crate::txn::wal::Recovered), crate::txn::wal::WalError> {
    let mut opts = crate::txn::wal::WalOptions::new(sync);
    if cfg!(test) {
        opts.prealloc_chunk = 64 << 10;
    }
    Wal::open_with(storage, dir, opts)
}

/// Take the directory's lock: one owner at a time.
fn lock(dir: &std::path::Path) -> Result<std::fs::File, String> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let path = dir.join("lock");
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    rustix::fs::flock(&f, rustix::fs::FlockOperation::NonBlockingLockExclusive).map_err(|_| {
        format!(
            "{} is locked: another process owns this state (a collaboration of the same name on the same state_dir?)",
            dir.display()
        )
    })?;
    Ok(f)
}

impl TxnServer {
    /// Open this manager's state on the real file system.
    pub fn open(ctx: &Ctx) -> TxnServer {
        TxnServer::open_on(ctx, FsStorage::new())
    }
}

impl<S: Storage> TxnServer<S> {
    /// Open this manager's state: lock it, recover the log, host our
    /// sub-functions. Errors are kept (and answered to every commit) rather
    /// than fatal, so that messaging still works.
    pub fn open_on(ctx: &Ctx, storage: S) -> TxnServer<S> {
        let mut s = TxnServer {
            store: Store::new(),
            wal: Err("not opened".into()),
            deferred: None,
            _lock: None,
            next_version: 1,
            ids: super::txn_epoch::TxIds::new(0),
            groups: Groups::new(ctx),
            two_phase: TwoPhase::default(),
            stats: TxnReport::default(),
            point_after_send: None,
        };
        // Hosted before the log is replayed: replay skips what is not.
        for &i in ctx.assign.subfns_of(ctx.slot) {
            s.store.host(i);
        }
        let dir = state_dir(ctx);
        match lock(&dir) {
            Ok(l) => s._lock = Some(l),
            Err(e) => return s.disabled(ctx, e),
        }
        let exists = |f: &str| storage.exists(&dir.join(f));
        let fresh = !exists(crate::txn::wal::LOG_FILE) && !exists(crate::txn::wal::SNAPSHOT_FILE);
        match super::txn_epoch::take_epoch(&storage, &dir, fresh, ctx.generation) {
            Ok(e) => s.ids = super::txn_epoch::TxIds::new(e),
            Err(e) => return s.disabled(ctx, e),
        }
        if fresh {
            s.deferred = Some((storage, dir, ctx.plan.sync));
            return s;
        }
        match open_wal(storage, &dir, ctx.plan.sync) {
            Ok((wal, rec)) => {
                s.wal = Ok(wal);
                if let Err(e) = s.recover(ctx, rec) {
                    eprintln!(
                        "shmcollab: {}: state cannot be recovered: {e}",
                        ctx.lp_plan().name
                    );
                    s.wal = Err(e);
                }
            }
            Err(e) => {
                eprintln!(
                    "shmcollab: {}: cannot open the log: {e}",
                    ctx.lp_plan().name
                );
                s.wal = Err(e.to_string());
            }
        }
        s
    }

    /// Load the checkpoint and replay the records after it.
    fn recover(&mut self, ctx: &Ctx, rec: crate::txn::wal::Recovered) -> Result<(), String> {
        let started = Instant::now();
        if let Some(snap) = rec.snapshot {
            let (store, kept) = super::txn_checkpoint::decode_checkpoint(&snap)?;
            self.store = store;
            self.two_phase.restore(kept);
            for &i in ctx.assign.subfns_of(ctx.slot) {
                self.store.host(i);
            }
        }
        for (txid, _) in self.store.prepared() {
            self.two_phase.in_doubt.insert(txid, None);
        }
        let n = rec.records.len();
        for (_, payload) in rec.records {
            let r = Record::decode(&payload).map_err(|e| format!("a log record: {e}"))?;
            self.replay(r);
        }
        // Our Staging records: settled by their Decision, or in doubt
        // (probed from the first tick).
        let staged = self.two_phase.settle_staged();
        self.next_version = self.store.max_version().max(staged) + 1;
        if n > 0 || rec.cut_bytes > 0 {
            eprintln!(
                "shmcollab: {}: recovered {n} log records in {} ms{}",
                ctx.lp_plan().name,
                started.elapsed().as_millis(),
                if rec.cut_bytes > 0 {
                    format!(", cut a torn tail of {} bytes", rec.cut_bytes)
                } else {
                    String::new()
                }
            );
        }
        Ok(())
    }

    fn replay(&mut self, r: Record) {
        match r {
            Record::Commit {
                version, writes, ..
            } => self.store.apply(&writes, version),
            Record::Prepare { txid, set, .. } => {
                self.two_phase.replay_prepare(&mut self.store, txid, set)
            }
            Record::Decision {
                txid,
                commit,
                version,
            } => self
                .two_phase
                .replay_decision(&mut self.store, txid, commit, version),
            Record::Staging {
                txid,
                version,
                participants,
                set,
            } => self
                .two_phase
                .replay_staging(&mut self.store, txid, version, participants, set),
            Record::Forget { leader, below } => self.two_phase.replay_forget(leader, below),
            Record::Finished { txid } => self.two_phase.replay_finished(txid),
        }
    }

    /// Say why transactions are off here and keep the error: every commit
    /// is answered with it (messaging goes on).
    fn disabled(mut self, ctx: &Ctx, e: String) -> Self {
        eprintln!(
            "shmcollab: {}: transactions disabled: {e}",
            ctx.lp_plan().name
        );
        self.wal = Err(e);
        self
    }

    /// A new transaction id, unique across the collaboration, restarts and
    /// launches on the same state: our slot, our epoch (not the registry
    /// generation, which every launch starts again: `txn_epoch.rs`), a
    /// counter; rising (a spent counter takes the next epoch, durably).
    pub(super) fn new_txid(&mut self, ctx: &Ctx) -> Result<u64, String> {
        use super::txn_epoch::save_epoch;
        let (deferred, wal) = (&self.deferred, &self.wal);
        self.ids.take(ctx.slot, |next| match (deferred, wal) {
            (Some((storage, dir, _)), _) => save_epoch(storage, dir, next),
            (None, Ok(wal)) => save_epoch(wal.storage(), wal.dir(), next),
            (None, Err(e)) => Err(e.clone()),
        })
    }

    /// The id `new_txid` hands out next (a lower bound of every later one).
    pub(super) fn upcoming_txid(&self, ctx: &Ctx) -> u64 {
        self.ids.upcoming(ctx.slot)
    }

    /// Skip to the last `left` transaction ids of this epoch (tests).
    #[cfg(test)]
    pub(super) fn spend_txids_but(&mut self, left: u32) {
        self.ids.spend_all_but(left);
    }

    /// Append a record to the log; the error says why it cannot be. A
    /// failed append makes the log drop every record since its last sync,
    /// so it fails the whole group.
    pub(super) fn append(&mut self, r: &Record) -> Result<(), String> {
        if let Some(e) = &self.groups.failed {
            return Err(e.clone());
        }
        if let Some((storage, dir, sync)) = self.deferred.take() {
            // The first record: make the log (empty: nothing to recover),
            // our epoch durable first (`txn_epoch.rs`).
            self.wal = super::txn_epoch::save_epoch(&storage, &dir, self.ids.epoch())
                .and_then(|()| open_wal(storage, &dir, sync).map_err(|e| e.to_string()))
                .map(|(w, _)| w)
                .map_err(|e| format!("cannot make the log: {e}"));
        }
        let wal = self.wal.as_mut().map_err(|e| e.clone())?;
        let res = wal.append(&r.encode()).map(drop).map_err(|e| e.to_string());
        if let Err(e) = &res {
            self.groups.failed = Some(e.clone());
        }
        res
    }

    pub(super) fn after_sync(&mut self, a: super::txn_2pc::AfterSync) {
        self.groups.gathering.push(AfterSync::TwoPhase(a));
    }

    /// As `after_sync`, for a step nobody waits for (see `Groups::lazy`).
    pub(super) fn after_sync_lazy(&mut self, a: super::txn_2pc::AfterSync) {
        self.groups.lazy_since.get_or_insert_with(Instant::now);
        self.groups.lazy.push(AfterSync::TwoPhase(a));
    }

    /// Serve one frame.
    pub fn handle(&mut self, ctx: &Ctx, f: TxnFrame, out: &mut Outbox) {
        // Frames that come during a sync: keep syncing on the thread.
        self.groups.busy |= self.sync_in_flight();
        let from = Requester {
            slot: f.h.src,
            corr: f.h.aux,
            manager: !f.from_lp && f.h.flags & FLAG_MANAGER != 0,
        };
        if f.h.kind == kind::TXN_REPLY {
            let Ok(r) = TxnReply::decode(&f.payload) else {
                return;
            };
            return TwoPhase::on_reply(self, ctx, from, r, out);
        }
        if let (Err(why), None) = (&self.wal, &self.deferred) {
            // Without its state (locked by another owner, unrecoverable),
            // this server answers nothing but that: an empty store must
            // never be served as the state.
            let why = format!("this manager's state is unavailable: {why}");
            return reply(ctx, out, from, TxnReply::Failed(why));
        }
        let req = match TxnRequest::decode(&f.payload) {
            Ok(r) => r,
            Err(e) => {
                return reply(
                    ctx,
                    out,
                    from,
                    TxnReply::Failed(format!("bad request: {e}")),
                )
            }
        };
        match req {
            TxnRequest::Get { subfn, key } => {
                let r = match self.store.get(subfn, &key) {
                    Ok((value, version)) => TxnReply::Value { value, version },
                    Err(e) => TxnReply::Failed(e.to_string()),
                };
                reply(ctx, out, from, r)
            }
            TxnRequest::Scan {
                subfn,
                prefix,
                limit,
            } => {
                let r = match self.store.scan(subfn, &prefix, limit) {
                    // A reply is one frame: a scan that would not fit is
                    // refused whole (cutting it would hide keys from the
                    // validation of the scan).
                    Ok(e) if entries_len(&e) > ctx.plan.ring_capacity / 4 => {
                        TxnReply::Failed(format!(
                            "the scan's result is over {} bytes: ask for fewer keys",
                            ctx.plan.ring_capacity / 4
                        ))
                    }
                    Ok(e) => TxnReply::Entries(e),
                    Err(e) => TxnReply::Failed(e.to_string()),
                };
                reply(ctx, out, from, r)
            }
            TxnRequest::Commit { set } if f.from_lp => self.coordinate(ctx, from, set, out),
            TxnRequest::CommitLocal { txid, set } if from.manager => {
                self.commit_local(ctx, from, txid, set, out)
            }
            TxnRequest::Prepare { txid, set } if from.manager => {
                TwoPhase::prepare(self, ctx, from, txid, set, out)
            }
            TxnRequest::Decide {
                txid,
                commit,
                finished_below,
            } if from.manager => {
                TwoPhase::on_watermark(self, from.slot, finished_below);
                TwoPhase::decide(self, ctx, from, txid, commit, out)
            }
            TxnRequest::Outcome { txid } if from.manager => {
                let commit = self.two_phase.outcome(txid);
                reply(ctx, out, from, TxnReply::Outcome { txid, commit })
            }
            TxnRequest::Probe { txid } if from.manager => TwoPhase::probe(self, from, txid),
            TxnRequest::Forget { below } if from.manager => {
                TwoPhase::on_watermark(self, from.slot, below)
            }
            _ => reply(
                ctx,
                out,
                from,
                TxnReply::Failed("request not allowed from this sender".into()),
            ),
        }
    }

    /// Our LP's commit: at the one host of everything it touched (us or
    /// another manager), or by two-phase commit across the hosts.
    fn coordinate(&mut self, ctx: &Ctx, lp: Requester, set: TxnSet, out: &mut Outbox) {
        if let Err(e) = set.check_limits() {
            return reply(
                ctx,
                out,
                lp,
                TxnReply::Failed(format!("transaction too large: {e}")),
            );
        }
        let hosts = match hosts_of(ctx, &set) {
            Ok(h) => h,
            Err(e) => return reply(ctx, out, lp, TxnReply::Failed(e)),
        };
        let txid = match self.new_txid(ctx) {
            Ok(t) => t,
            Err(e) => return reply(ctx, out, lp, TxnReply::Failed(e)),
        };
        match hosts.as_slice() {
            [] => {
                let r = TxnReply::Committed {
                    version: 0,
                    writes_carry_version: false,
                };
                reply(ctx, out, lp, r)
            }
            [one] if *one == ctx.slot => self.commit_local(ctx, lp, txid, set, out),
            [one] => {
                let corr = self.two_phase.forward(lp);
                let req = TxnRequest::CommitLocal { txid, set };
                out.push(to_manager(ctx, *one, corr, &req));
            }
            many => {
                let many = many.to_vec();
                TwoPhase::lead(self, ctx, lp, txid, set, many, out)
            }
        }
    }

    /// Commit `set`, all of it hosted here: validate and lock, log, and
    /// answer once the group is durable.
    fn commit_local(&mut self, ctx: &Ctx, to: Requester, txid: u64, set: TxnSet, out: &mut Outbox) {
        let part = match self.store.prepare(txid, &set) {
            Ok(p) => p,
            Err(c) => {
                self.stats.conflicts += 1;
                self.stats.aborts += 1;
                return reply(ctx, out, to, TxnReply::Conflict(c.to_string()));
            }
        };
        let version = self.next_version;
        self.next_version += 1;
        // Every write is applied here under `version` (none was of a
        // sub-function that moved away): the LP may remember them.
        let whole = part.writes.len() == set.writes.len();
        if part.writes.is_empty() {
            // Read-only: validated, nothing to log.
            self.store.decide(txid, true, version);
            self.stats.commits += 1;
            let r = TxnReply::Committed {
                version,
                writes_carry_version: false,
            };
            return reply(ctx, out, to, r);
        }
        let r = Record::Commit {
            txid,
            version,
            writes: part.writes,
        };
        if let Err(e) = self.append(&r) {
            self.store.decide(txid, false, 0);
            self.stats.aborts += 1;
            return reply(ctx, out, to, TxnReply::Failed(e));
        }
        self.groups.gathering.push(AfterSync::Commit {
            to,
            txid,
            version,
            whole,
        });
    }

    /// Timers: ask coordinators about in-doubt transactions.
    pub fn tick(&mut self, ctx: &Ctx, out: &mut Outbox) {
        TwoPhase::tick(self, ctx, out);
    }

    /// Manager `slot` restarted or left.
    pub fn host_gone(&mut self, slot: u32) {
        TwoPhase::host_gone(self, slot);
    }

    /// When `tick` (or a lazy fdatasync) wants to run next.
    pub fn deadline(&self) -> Option<Instant> {
        let lazy = self.groups.deadline();
        let batch = self.wal.as_ref().ok().and_then(|w| w.sync_deadline());
        [self.two_phase.deadline(), lazy, batch]
            .into_iter()
            .flatten()
            .min()
    }

    /// Figures for the state report.
    pub fn report(&self) -> TxnReport {
        let mut r = self.stats;
        (r.outcomes_kept, r.decisions_open) = self.two_phase.remembered();
        if let Ok(w) = &self.wal {
            r.log_bytes = w.size();
        }
        r
    }
}

/// Bytes of scan results (keys and values).
fn entries_len(e: &[crate::txn::store::Entry]) -> usize {
    e.iter().map(|(k, v, _)| k.len() + v.len() + 16).sum()
}

/// The hosts of every sub-function `set` touches, sorted.
fn hosts_of(ctx: &Ctx, set: &TxnSet) -> Result<Vec<u32>, String> {
    let subfns = set.reads.iter().map(|r| r.subfn);
    let subfns = subfns.chain(set.scans.iter().map(|s| s.subfn));
    let subfns = subfns.chain(set.writes.iter().map(|w| w.subfn));
    let mut hosts = Vec::new();
    for s in subfns {
        let h = ctx
            .assign
            .owner(s)
            .ok_or_else(|| format!("sub-function {s} is not hosted by any LP"))?;
        if !hosts.contains(&h) {
            hosts.push(h);
        }
    }
    hosts.sort_unstable();
    Ok(hosts)
}

/// Answer `to`.
pub(super) fn reply(ctx: &Ctx, out: &mut Outbox, to: Requester, r: TxnReply) {
    let h = FrameHeader {
        kind: kind::TXN_REPLY,
        src: ctx.slot,
        dst: to.slot,
        aux: to.corr,
        flags: if to.manager {
            FLAG_MANAGER
        } else {
            FLAG_DST_LP
        },
        ..Default::default()
    };
    out.push((h, r.encode()));
}

/// A request to manager `slot`.
pub(super) fn to_manager(
    ctx: &Ctx,
    slot: u32,
    corr: u32,
    req: &TxnRequest,
) -> (FrameHeader, Vec<u8>) {
    let h = FrameHeader {
        kind: kind::TXN,
        src: ctx.slot,
        dst: slot,
        aux: corr,
        flags: FLAG_MANAGER,
        ..Default::default()
    };
    (h, req.encode())
}

#[cfg(test)]
#[path = "txn_server_tests.rs"]
mod tests;
