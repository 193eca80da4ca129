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
//! | discovery | `discovery.rs` | the registry's slots and change counter -> the known peers up and gone; ring requests (rings are made when a pair first talks) |
//! | direct path | `direct.rs` | the direct rings into our LP, as a state machine per ring |
//! | coordinator | `coordinator.rs` | the role's election and the published aggregate |
//! | reports | `reports.rs` | counters, what the LP told us, the report's cadence and content |
//! | leaving | `leave.rs` | what a manager does once its LP is done for good: the last words to the peers, the last report, the slot released |
//! | load | `load.rs` | the load mode as last read (how we and our LP wait), our LP's message count for the governor |
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
//!    ring, on the 6-hop path).
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
mod discovery;
mod heal;
mod leave;
mod lifecycle;
mod load;
mod lp_access;
mod lp_link;
mod lp_proc;
mod peers;
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
    let ctx = start::context(dir, slot)?;
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
}

impl Manager {
    // ---- the loop -----------------------------------------------------

    fn event_loop(&mut self) -> anyhow::Result<i32> {
        loop {
            let work = self.turn()?;
            if let Some(code) = self.life.done() {
                return Ok(self.shutdown(code));
            }
            // Another full turn only if input is waiting: else the wait
            // below (which checks for input first) is cheaper than a turn.
            if work && self.any_input() {
                continue;
            }
            self.sleep(work);
        }
    }

    /// One turn: every part gets to work once. True if anything moved.
    fn turn(&mut self) -> anyhow::Result<bool> {
        self.discover();
        let mut work = self.pump_lp(false)?;
        let lp_work = work;
        let (peers_work, read) = self.pump_peers();
        work |= peers_work;
        // Traffic in from our LP or a peer (not our own report going out,
        // which would keep an idle manager "active" for ever): the report
        // and heal timers stay short while there is some.
        if lp_work || read {
            self.reports.activity();
            self.healer.active_at = Instant::now();
        }
        // Only rings we read ourselves (rare: a dead or failing LP).
        if self.direct.draining() {
            work |= self.drain_direct();
        }
        work |= self.serve_txn();
        work |= self.access.serve_view(&self.ctx);
        work |= self.heal_rings();
        work |= self.flush_lp();
        if let Some(p) = self.txn.point_after_send.take() {
            // A crash test's kill -9 once this turn's frames are out.
            self.peers.pump_out(&self.ctx);
            crate::failpoint::hit(p);
        }
        if self.ctx.flags.stopping() && !self.stop_sent {
            self.stop_sent = true;
            self.life_event(lifecycle::Event::Stop(Instant::now()));
        }
        if self.ctx.flags.lp_exited.swap(false, Ordering::SeqCst) {
            self.on_lp_exit()?;
            work = true;
        }
        // Timers of the life cycle (back-off, grace period), when one is set.
        if let Some(t) = self.life.deadline() {
            let now = Instant::now();
            if now >= t {
                work |= self.life_event(lifecycle::Event::Tick(now));
            }
        }
        self.maybe_report();
        // Peers' reports are published within 20 ms of their arrival.
        self.coord.publish(&self.ctx, false);
        self.load
            .turn(&self.ctx, &self.lp, std::mem::take(&mut self.pumped));
        Ok(work)
    }

    /// Input the loop would act on. Input it leaves alone (back-pressure)
    /// does not count, or the manager would spin instead of sleeping.
    fn any_input(&self) -> bool {
        let q = &self.queue;
        let flags = &self.ctx.flags;
        (self.lp.has_input() && !self.lp_held_back())
            || self.peers.has_input(|s| !backlog::held_back(q, s))
            || (!backlog::all_held_back(q) && self.direct.has_input())
            || (flags.stop.load(Ordering::Relaxed) && !self.stop_sent)
            || flags.lp_exited.load(Ordering::Relaxed)
            || self.peers.registry_changed(&self.ctx)
            || self.txn.groups.sync_done()
            || self.access.view_wanted()
    }

    /// The earliest time a part wants a turn.
    fn deadline(&self) -> Instant {
        let now = Instant::now();
        let interval = Duration::from_millis(self.ctx.plan.report_interval_ms);
        let mut t = self.reports.deadline(interval);
        let parts = [
            self.life.deadline(),
            self.coord.deadline(&self.ctx),
            self.txn.deadline(),
            Some(self.healer.next),
            self.peers.connect_deadline(),
        ];
        t = parts.into_iter().flatten().fold(t, Instant::min);
        let lp_blocked = !self.queue.is_empty() && self.life.is_up();
        if lp_blocked || self.peers.blocked() {
            t = t.min(now + BLOCKED_POLL);
        }
        if self.direct.needs_poll() {
            t = t.min(now + DRAIN_POLL);
        }
        t
    }

    /// Sleep until a frame, a registry change, a signal or a deadline, as
    /// the load mode says (see [`load::Load::strategy`]).
    fn sleep(&self, busy: bool) {
        let timeout = self.deadline().saturating_duration_since(Instant::now());
        let Ok(bell) = self.ctx.registry.doorbell(self.ctx.slot) else {
            return std::thread::sleep(timeout);
        };
        // Our LP rings its ring's own doorbell (it does not map the
        // registry): sleep on both.
        shmcollab_shm::Doorbell::wait_until_any(
            &[bell, self.lp.lp_bell()],
            self.load.strategy(busy),
            Some(timeout),
            || self.any_input().then_some(()),
        );
    }

    // ---- the LP -------------------------------------------------------

    /// Start a new generation of our LP, with new keys, and offer it a
    /// direct ring from every live peer that talked to our LP.
    fn start_lp(&mut self) -> Result<(), SpawnError> {
        self.lp_gen += 1;
        let keys = self.ctx.lp_keys(self.lp_gen);
        self.lp.rekey(&keys);
        let access = self.access.prepare(&self.ctx, &self.lp)?;
        let p = LpProc::spawn(&self.ctx, &keys, access)?;
        self.proc_ = Some(p);
        self.life_event(lifecycle::Event::Spawned);
        for s in self.peers.talkers() {
            self.offer_direct(s);
        }
        Ok(())
    }

    /// Feed the life cycle an event and carry out its actions; true if it
    /// asked for any.
    fn life_event(&mut self, ev: lifecycle::Event) -> bool {
        let actions = self.life.on(ev);
        let any = !actions.is_empty();
        for a in actions {
            self.act(a);
        }
        any
    }

    fn act(&mut self, a: Action) {
        let slot = self.ctx.slot;
        let reg = &self.ctx.registry;
        match a {
            Action::Spawn => {
                if let Err(e) = self.start_lp() {
                    self.life_event(lifecycle::Event::SpawnFailed(e.to_string()));
                }
            }
            Action::Place => {
                if let Some(p) = &self.proc_ {
                    p.place(&self.ctx, self.ctx.registry.load_mode());
                }
            }
            Action::Terminate => self.signal(rustix::process::Signal::TERM),
            Action::Kill => self.signal(rustix::process::Signal::KILL),
            Action::SetState(state) => {
                let live = matches!(state, LpState::Running | LpState::Ready);
                let pid = self.proc_.as_ref().filter(|_| live).map_or(0, LpProc::pid);
                let _ = reg.set_lp(slot, pid, state);
                self.healer.lp = Some((pid, state));
                if state == LpState::Ready {
                    reg.changes().notify();
                }
                self.reports.mark();
            }
            Action::SetRestarts(n) => {
                let _ = reg.set_restarts(slot, n);
                self.healer.restarts = n;
            }
            Action::Say(s) => eprintln!("shmcollab: {s}"),
        }
    }

    fn signal(&self, sig: rustix::process::Signal) {
        if let Some(p) = &self.proc_ {
            p.signal(sig);
        }
    }

    /// Our LP ended: route what it sent, keep what it did not take for its
    /// successor, then let the life cycle decide.
    fn on_lp_exit(&mut self) -> anyhow::Result<()> {
        let Some(p) = self.proc_.take() else {
            return Ok(());
        };
        let status = p.wait()?;
        // Whatever it sent before dying is still routed, all of it, before
        // its successor's key replaces the opener.
        self.pump_lp(true)?;
        let keys = self.ctx.lp_keys(self.lp_gen);
        self.lp.reclaim(&keys, &mut self.scratch, &mut self.queue);
        let mut q = Queue {
            ctx: &self.ctx,
            lp: &mut self.queue,
            scratch: &mut self.scratch,
            counters: &mut self.counters,
        };
        let outs = self.direct.lp_died(&self.ctx, self.lp_gen, &mut q);
        self.send(outs);
        self.reports.lp_died();
        eprintln!("shmcollab: {} exited ({status})", self.ctx.lp_plan().name);
        let ok = status.success();
        let status = status.to_string();
        self.life_event(lifecycle::Event::Exited { ok, status });
        self.reports.mark();
        Ok(())
    }

    /// The LP's ring waits (see [`backlog`]): a peer's queue is full, or
    /// what the LP sent to itself fills its queue. Frames queued for the LP
    /// from others never hold it back (it may be blocked in a send while
    /// its inbound queue fills).
    fn lp_held_back(&self) -> bool {
        let (most, all) = self.peers.backlog();
        backlog::peers_full(most, all) || self.queue.bytes_from(self.ctx.slot) > backlog::BACKLOG
    }

    /// Take frames out of the LP's ring and route them; `all`: every frame,
    /// whatever the backlog.
    fn pump_lp(&mut self, all: bool) -> anyhow::Result<bool> {
        // Checked once per turn: the limits are soft, a turn adds at most
        // 256 frames.
        if !all && self.lp_held_back() {
            return Ok(false);
        }
        let budget = if all { usize::MAX } else { 256 };
        let mut sink = FromLp {
            ctx: &self.ctx,
            peers: &mut self.peers,
            queue: &mut self.queue,
            counters: &mut self.counters,
            txn: &mut self.txn_in,
            ctl: Vec::new(),
            framed: false,
        };
        let slot = self.ctx.slot;
        let pumped = self
            .lp
            .pump(slot, budget, &mut self.scratch, |h, p| sink.take(h, p))
            .map_err(|e| anyhow!("LP ring: {e}"))?;
        let (ctl, framed) = (std::mem::take(&mut sink.ctl), sink.framed);
        self.counters.bad_batches += pumped.malformed as u64;
        self.pumped += pumped.messages;
        if pumped.rejected > 0 {
            self.reports.mark();
        }
        if framed {
            self.life_event(lifecycle::Event::Frame);
        }
        for c in ctl {
            self.on_lp_ctl(c);
        }
        Ok(pumped.frames > 0)
    }

    /// Control from our LP.
    fn on_lp_ctl(&mut self, c: LpCtl) {
        match c {
            LpCtl::Ready => {
                self.life_event(lifecycle::Event::Ready);
            }
            LpCtl::Report { key, value } => {
                if !self.reports.custom(key, value) {
                    self.counters.dropped += 1;
                }
            }
            LpCtl::Stats(st) => self.reports.lp_direct(st),
            LpCtl::Detached { ring } => self.direct.detached(&self.ctx, &ring),
            LpCtl::Lost { ring } => {
                let name = &self.ctx.lp_plan().name;
                eprintln!(
                    "shmcollab: {name} cannot read the direct ring {ring}; its manager reads it"
                );
                self.counters.bad_rings += 1;
                self.reports.mark();
                let outs = self.direct.lost(&self.ctx, &ring);
                self.send(outs);
            }
            LpCtl::Attach { .. } | LpCtl::Detach { .. } => self.counters.dropped += 1,
        }
    }

    /// Write what is queued for the LP.
    fn flush_lp(&mut self) -> bool {
        if !self.life.is_up() {
            self.lp.publish();
            return false;
        }
        let d = self.lp.flush(&mut self.queue);
        self.counters.msgs_in += d.msgs as u64;
        self.counters.bytes_in += d.bytes;
        self.counters.dropped += d.dropped as u64;
        d.any()
    }

    // ---- peers and the direct path ------------------------------------

    fn discover(&mut self) {
        let Some(found) = self.peers.discover(&self.ctx) else {
            return;
        };
        self.counters.dropped += found.dropped;
        // Report soon only what changed our report or where it goes: every
        // LP that starts moves the registry's counter, and a report after
        // each move kept hundreds of starting managers reporting 50 times a
        // second, all of it parsed by the coordinator.
        let news = found.dropped > 0 || !found.changes.is_empty();
        for change in found.changes {
            let (s, new_gen) = match change {
                Change::Up { slot, generation } => (slot, Some(generation)),
                Change::Gone { slot } => (slot, None),
            };
            let outs = self.direct.peer_gone(&self.ctx, s, new_gen);
            self.send(outs);
            self.txn.host_gone(s);
        }
        if self.coord.elect(&self.ctx) || news {
            self.reports.mark();
        }
    }

    /// Offer peer `s` a direct ring into our current LP.
    fn offer_direct(&mut self, s: u32) {
        if !self.life.is_up() {
            return;
        }
        let Some(peer) = self.peers.map.get(&s).filter(|p| p.up && !p.finished) else {
            return;
        };
        let outs = self
            .direct
            .offer(&self.ctx, s, peer.generation, self.lp_gen);
        self.send(outs);
    }

    /// Write to peers, then read their rings: (anything moved, anything
    /// was read).
    fn pump_peers(&mut self) -> (bool, bool) {
        let (mut work, dropped) = self.peers.pump_out(&self.ctx);
        self.counters.dropped += dropped;
        let mut sink = FromPeers {
            ctx: &self.ctx,
            queue: &mut self.queue,
            direct: &mut self.direct,
            coord: &mut self.coord,
            counters: &mut self.counters,
            txn: &mut self.txn_in,
            scratch: &mut self.scratch2,
            live_lp: self.life.is_up().then_some(self.lp_gen),
            later: Vec::new(),
            outs: Vec::new(),
            talkers: Vec::new(),
        };
        let read = self.peers.pump_in(&self.ctx, &mut self.scratch, &mut sink);
        let (later, outs, talkers) = (
            std::mem::take(&mut sink.later),
            std::mem::take(&mut sink.outs),
            std::mem::take(&mut sink.talkers),
        );
        // A peer that first talks to our LP gets a direct ring into it (its
        // first messages came the 6-hop way, in order before the SWITCH).
        for s in talkers {
            if self.peers.talked(s) {
                self.offer_direct(s);
            }
        }
        work |= read.work;
        self.counters.bad_batches += read.malformed as u64;
        self.counters.bad_rings += read.corrupt as u64;
        if read.rejected + read.corrupt > 0 {
            self.reports.mark();
        }
        self.send(outs);
        for (from, m) in later {
            self.on_peer_ctl(from, m);
        }
        (work, read.work)
    }

    /// Peer control that acts on our links to the peers.
    fn on_peer_ctl(&mut self, from: u32, m: PeerCtl) {
        match m {
            PeerCtl::Offer { lp_gen, from_gen } => {
                self.peers.on_offer(&self.ctx, from, lp_gen, from_gen)
            }
            PeerCtl::Revoke { lp_gen, from_gen } => {
                self.peers.on_revoke(&self.ctx, from, lp_gen, from_gen)
            }
            // Handled in order, while reading (see `deliver.rs`).
            PeerCtl::Switch { .. } | PeerCtl::Unswitch { .. } => {}
        }
    }

    /// Read the direct rings we read ourselves into the LP's queue.
    fn drain_direct(&mut self) -> bool {
        let mut q = Queue {
            ctx: &self.ctx,
            lp: &mut self.queue,
            scratch: &mut self.scratch,
            counters: &mut self.counters,
        };
        let (done, outs) = self.direct.drain(None, false, &mut q);
        if done.rejected {
            self.reports.mark();
        }
        self.send(outs);
        done.work
    }

    /// Send what the parts asked for.
    fn send(&mut self, outs: Vec<Out>) {
        for o in outs {
            match o {
                Out::Peer(s, m) => self.peers.tell(&self.ctx, s, m),
                Out::Lp(m) => {
                    self.access.before(&m, &self.direct);
                    self.queue.push(&ctl_header(self.ctx.slot), &m.encode())
                }
            }
        }
    }

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
