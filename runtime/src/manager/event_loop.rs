//! The manager's loop: a turn in which every part gets to work once, then a
//! sleep until a frame, a registry change, a signal or the earliest
//! deadline a part reports (see the module doc of `mod.rs`).

use super::*;

impl Manager {
    pub(super) fn event_loop(&mut self) -> anyhow::Result<i32> {
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
            self.forward()?;
        }
    }

    /// The fast path after a wake-up: what our LP sent goes on to its peers
    /// (whose LPs are woken, and while compact get our CPU: the hand-over)
    /// before the rest of the turn, whose parts (discovery, the transaction
    /// server, the view, healing, timers, reports, the load mode) then run
    /// after that hop instead of before it. The same pump as the turn's,
    /// only first: as if the last turn had ended with it. What it takes off
    /// a paced round trip's manager hop: discovery and the search for rings
    /// to open (0.3-0.5 µs stamped, benches/hops.md).
    fn forward(&mut self) -> anyhow::Result<()> {
        if !self.lp.has_input() {
            return Ok(());
        }
        if self.pump_lp(false)? {
            self.forwarded = true;
            // Rings still to open wait for the turn (`Peers::pump_out`).
            let (_, dropped) = self.peers.pump_linked(&self.ctx);
            self.counters.dropped += dropped;
        }
        Ok(())
    }

    /// One turn: every part gets to work once. True if anything moved.
    fn turn(&mut self) -> anyhow::Result<bool> {
        self.discover();
        let mut work = self.pump_lp(false)? | std::mem::take(&mut self.forwarded);
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
        self.load.turn(
            &self.ctx,
            &self.lp,
            std::mem::take(&mut self.pumped),
            std::mem::take(&mut self.pumped_own_txn),
        );
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
}
