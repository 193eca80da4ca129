//! The manager: one per LP, a separate process (`shmcollab manager --slot
//! N`), made of parts that each own their state:
//!
//! | part | file | owns |
//! | --- | --- | --- |
//! | context | `context.rs` | session, registry, plan, slot, generation, master key and the key derivations; borrowed by every part, changed by none |
//! | LP link | `lp_link.rs` | the two rings to and from our LP |
//! | LP process | `lp_proc.rs` | spawn with keys on a pipe, pidfd watch, signals, placement |
//! | LP access | `lp_access.rs` | what the LP gets by descriptor (rings, view, socket for direct rings), its sandbox and user |
//! | LP life cycle | `lifecycle.rs` | the state machine: backoff, running, placed, ready, stopping, done |
//! | router | `router.rs` | the pure function from a header to a route |
//! | delivery | `deliver.rs` | what each route does, for frames from the LP and from peers |
//! | back-pressure | `backlog.rs` | how much is queued per source and per peer before frames wait in their rings |
//! | peers | `peers.rs` | the rings to and from each peer manager, their queues, the direct rings we write |
//! | direct out | `direct_out.rs` | the direct rings we write into peers' LPs: opened on an OFFER, given up (UNSWITCH), their sealers' sequences |
//! | discovery | `discovery.rs` | the registry's slots and change counter -> the known peers up and gone; ring requests (rings are made when a pair first talks) |
//! | direct path | `direct.rs` | the direct rings into our LP, as a state machine per ring |
//! | coordinator | `coordinator.rs` | the role's election and the published aggregate |
//! | reports | `reports.rs` | counters, what the LP told us, the report's cadence and content |
//! | leaving | `leave.rs` | what a manager does once its LP is done for good: the last words to the peers, the last report, the slot released |
//! | load | `load.rs` | the load mode as last read (how we and our LP wait), our LP's message count for the governor |
//!
//! The manager itself (this file) holds the parts; its loop is in
//! `event_loop.rs`, its handling of its LP's side in `lp_side.rs`, of the
//! peers' side in `peer_side.rs`, its leaving in `leave.rs`.
//!
//! [`run`] claims the slot, starts the LP and runs the loop: one thread,
//! sleeping on the doorbell of our registry slot, which every peer rings
//! after publishing frames, and on the doorbell of our LP's ring to us,
//! which the LP rings (it does not map the registry: `lp_access.rs`), until
//! the earliest deadline a part reports. Two small threads turn a signal and the LP's pidfd into a
//! doorbell ring.
//!
//! A message's path, from `Lp::send` to `Lp::recv`, every place it passes:
//!
//! 1. `lp/mod.rs` `Lp::send` -> `link/tx.rs` `TxLink::send`: sealed in place
//!    into LP a's ring to manager a, which is woken through its doorbell.
//! 2. `lp_link.rs` `LpLink::pump` -> `link/rx.rs` `RxLink::next`: opened
//!    (tag, sequence number), unpacked, source stamped with a's slot.
//! 3. `deliver.rs` `FromLp::take` -> [`router::route`]: `Route::Peer(b)`
//!    -> `peers.rs` `Peers::send`: queued for b's LP's direct ring (or b's
//!    ring, on the 6-hop path). A lone message (nothing behind it in the
//!    LP's ring, nothing queued before it: `Peers::send_lone`) skips the
//!    queue: sealed into that ring and published at once, as in 4.
//! 4. `peers.rs` `Peers::pump_out` -> `link/tx.rs` `TxLink::drain`: sealed
//!    (batched) into the direct ring into LP b, with the key derived from
//!    LP b's own link key; LP b's doorbell rung.
//!    On the 6-hop path: into manager b's ring instead, read by b's
//!    `Peers::pump_in` -> `FromPeers::take` -> `Route::Local` -> b's queue
//!    -> `LpLink::flush` into LP b's ring.
//! 5. `lp/inbound.rs` `Lp::fill_inbox` -> `RxLink::next_held`: opened,
//!    unpacked into the inbox; `Lp::recv` hands it out (the frame is
//!    released at the next receive: at-least-once across an LP crash).

mod assignment;
mod backlog;
mod context;
mod coordinator;
mod deliver;
mod direct;
mod direct_out;
mod discovery;
mod event_loop;
mod heal;
mod leave;
mod lifecycle;
mod load;
mod lp_access;
mod lp_link;
mod lp_proc;
mod lp_side;
mod peer_side;
mod peers;
#[cfg(test)]
mod peers_tests;
mod reports;
pub mod router;
mod serve_txn;
mod start;
mod syncer;
#[cfg(test)]
mod testctx;
mod txn_2pc;
mod txn_2pc_host;
mod txn_checkpoint;
mod txn_epoch;
mod txn_forget;
mod txn_group;
mod txn_server;

pub use crate::plan::resolve_program;
pub use lifecycle::EXIT_LP_FAILED;
pub use lp_proc::SpawnError;

use crate::ctl::{LpCtl, PeerCtl};
use crate::link::Outbox;
use anyhow::{anyhow, Context};
use context::Ctx;
use coordinator::Coordinator;
use deliver::{FromLp, FromPeers};
use direct::{DirectIn, Queue};
use discovery::Change;
use lifecycle::{Action, Lifecycle};
use lp_access::LpAccess;
use lp_link::LpLink;
use lp_proc::LpProc;
use peers::Peers;
use reports::{Counters, Inputs, Reports};
use shmcollab_shm::frame::{kind, FrameHeader};
use shmcollab_shm::registry::LpState;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use txn_server::{TxnFrame, TxnServer};

/// A full ring is polled this often (its reader frees space without
/// ringing us).
const BLOCKED_POLL: Duration = Duration::from_micros(200);

/// Rings of our dead LP that a live peer still writes are polled this
/// often (the writer rings the LP's doorbell, not ours).
const DRAIN_POLL: Duration = Duration::from_millis(1);

/// A control message a part wants sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Out {
    /// To peer manager `slot`, on our ring to it.
    Peer(u32, PeerCtl),
    /// To our LP, behind what is queued for it.
    Lp(LpCtl),
}

/// Header of a control frame from manager `slot`.
fn ctl_header(slot: u32) -> FrameHeader {
    FrameHeader {
        kind: kind::CONTROL,
        src: slot,
        ..Default::default()
    }
}

/// Run the manager of `slot` in session `dir`. Returns the process exit code.
pub fn run(dir: &Path, slot: u32) -> anyhow::Result<i32> {
    run_ctx(start::context(dir, slot, None)?, slot)
}

/// [`run`] in a process the supervisor forked without exec: the plan and
/// the master key are the ones it holds, not read again (parsing the plan
/// of 1,024 LPs was a millisecond in every manager).
pub fn run_forked(
    dir: &Path,
    slot: u32,
    plan: crate::plan::Plan,
    master: Option<shmcollab_shm::auth::MasterKey>,
) -> anyhow::Result<i32> {
    run_ctx(start::context(dir, slot, Some((plan, master)))?, slot)
}

fn run_ctx(ctx: context::Ctx, slot: u32) -> anyhow::Result<i32> {
    let lp = LpLink::create(&ctx).context("creating the LP rings")?;
    let grace = Duration::from_millis(ctx.plan.grace_ms);
    let life = Lifecycle::new(ctx.lp_plan().clone(), grace, Instant::now());
    let txn = TxnServer::open(&ctx);
    // Read here, passed down: `SHMCOLAB_LANDLOCK=0` acts as on a kernel
    // without Landlock (the sandbox's stated fallback, for tests).
    let landlock = std::env::var("SHMCOLAB_LANDLOCK").map_or(true, |v| v != "0");
    let mut m = Manager {
        ctx,
        lp,
        queue: Outbox::by_source(),
        proc_: None,
        life,
        lp_gen: 0,
        peers: Peers::default(),
        direct: DirectIn::default(),
        coord: Coordinator::default(),
        reports: Reports::default(),
        counters: Counters::default(),
        scratch: Vec::with_capacity(4096),
        scratch2: Vec::with_capacity(4096),
        stop_sent: false,
        txn,
        txn_in: Vec::new(),
        healer: heal::Healer::default(),
        access: LpAccess::new(landlock),
        load: load::Load::default(),
        pumped: 0,
        pumped_own_txn: 0,
        forwarded: false,
    };
    if let Err(e) = m.start_lp() {
        // Not a crash of the manager: restarting it would not help.
        eprintln!("shmcollab: {} cannot start: {e}", m.ctx.lp_plan().name);
        let _ = m.ctx.registry.set_lp(slot, 0, LpState::Failed);
        let _ = m.ctx.registry.release_slot(slot, m.ctx.generation);
        return Ok(EXIT_LP_FAILED);
    }
    // Tell the others we are here: the change counter for whoever looks,
    // the coordinator's doorbell (a lower slot takes the role over with
    // `coordinator = "auto"`). Nobody else needs waking: who waits for us
    // asked us for a ring, which our first turn makes.
    m.ctx.registry.changes().notify();
    if let Some((_, s)) = m.ctx.registry.coordinator() {
        Ctx::wake(&m.ctx.registry, s);
    }
    m.event_loop()
}

struct Manager {
    ctx: Ctx,
    lp: LpLink,
    /// Messages for our LP, written at the end of each turn.
    queue: Outbox,
    proc_: Option<LpProc>,
    life: Lifecycle,
    /// Generation of the current (or last) LP process.
    lp_gen: u32,
    peers: Peers,
    direct: DirectIn,
    coord: Coordinator,
    reports: Reports,
    counters: Counters,
    /// Frames are opened into these (two: a direct ring may be drained
    /// while a peer's frame is in the first).
    scratch: Vec<u8>,
    scratch2: Vec<u8>,
    /// The stop request went to the life cycle.
    stop_sent: bool,
    /// The transaction server, and the frames waiting for it.
    txn: TxnServer,
    txn_in: Vec<TxnFrame>,
    healer: heal::Healer,
    /// What our LP reaches, by descriptor.
    access: LpAccess,
    load: load::Load,
    /// Messages taken from our LP in this turn.
    pumped: usize,
    /// Of those, transaction frames for our own server.
    pumped_own_txn: usize,
    /// Frames of our LP went on before this turn (`forward`).
    forwarded: bool,
}

impl Manager {
    // ---- reports ------------------------------------------------------

    fn maybe_report(&mut self) {
        let interval = Duration::from_millis(self.ctx.plan.report_interval_ms);
        if !self.reports.take_due(interval) {
            return;
        }
        let ctx = &self.ctx;
        let _ = ctx.registry.heartbeat(ctx.slot);
        let mut rejects = self.direct.rejects();
        rejects.add(self.lp.rx_stats());
        rejects.add(&self.peers.rejects());
        let mut links = vec![self.lp.link_stats()];
        links.extend(self.peers.link_stats());
        links.extend(self.direct.link_stats());
        let inputs = Inputs {
            lp_pid: self.proc_.as_ref().map(LpProc::pid),
            restarts: self.life.restarts(),
            rejects,
            links,
            depths: self.lp.depths(),
            pending: self.queue.len() + self.peers.queued(),
            txn: self.txn.report(),
            sandbox: self.access.level_word(),
        };
        let r = self.reports.build(ctx, &self.counters, inputs);
        match self.coord.holder() {
            Some((_, s)) if s == ctx.slot => self.coord.own(ctx, r),
            Some((epoch, s)) => {
                let h = FrameHeader {
                    kind: kind::REPORT,
                    dst: s,
                    aux: epoch,
                    src: ctx.slot,
                    ..Default::default()
                };
                let bytes = serde_json::to_vec(&r).unwrap_or_default();
                // Only the newest report matters: it replaces one not sent yet.
                self.peers.set_report(s, h, bytes);
            }
            None => {}
        }
        self.coord.publish(&self.ctx, false);
    }
}
