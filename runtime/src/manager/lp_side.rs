//! The manager's side towards its LP: starting a generation, the life
//! cycle's actions, the LP's exit, its frames and control messages, and
//! what we queue for it.

use super::*;

impl Manager {
    /// Start a new generation of our LP, with new keys, and offer it a
    /// direct ring from every live peer that talked to our LP.
    pub(super) fn start_lp(&mut self) -> Result<(), SpawnError> {
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
    pub(super) fn life_event(&mut self, ev: lifecycle::Event) -> bool {
        let actions = self.life.on(ev);
        let any = !actions.is_empty();
        for a in actions {
            self.act(a);
        }
        any
    }

    pub(super) fn act(&mut self, a: Action) {
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

    pub(super) fn signal(&self, sig: rustix::process::Signal) {
        if let Some(p) = &self.proc_ {
            p.signal(sig);
        }
    }

    /// Our LP ended: route what it sent, keep what it did not take for its
    /// successor, then let the life cycle decide.
    pub(super) fn on_lp_exit(&mut self) -> anyhow::Result<()> {
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
    pub(super) fn lp_held_back(&self) -> bool {
        let (most, all) = self.peers.backlog();
        backlog::peers_full(most, all) || self.queue.bytes_from(self.ctx.slot) > backlog::BACKLOG
    }

    /// Take frames out of the LP's ring and route them; `all`: every frame,
    /// whatever the backlog.
    pub(super) fn pump_lp(&mut self, all: bool) -> anyhow::Result<bool> {
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
            own_txn: 0,
        };
        let slot = self.ctx.slot;
        let pumped = self
            .lp
            .pump(slot, budget, &mut self.scratch, |h, p, lone| {
                sink.take(h, p, lone)
            })
            .map_err(|e| anyhow!("LP ring: {e}"))?;
        let (ctl, framed, own_txn) = (std::mem::take(&mut sink.ctl), sink.framed, sink.own_txn);
        self.pumped_own_txn += own_txn;
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
    pub(super) fn on_lp_ctl(&mut self, c: LpCtl) {
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
    pub(super) fn flush_lp(&mut self) -> bool {
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
}
