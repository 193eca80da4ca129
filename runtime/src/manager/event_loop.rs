//! The manager's loop: a turn in which every part gets to work once, then a
//! sleep until a frame, a registry change, a signal or the earliest
//! deadline a part reports (see the module doc of `mod.rs`). A wake-up
//! that brought only our LP's frames, which the fast path forwarded, goes
//! back to sleep without a turn while no part wants one ([`Manager::only_forwarded`]).

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
            let mut due = self.deadline();
            self.sleep(work, due);
            // The light path only after a lone message (a request, back to
            // back): after a forward of several (a flood), a turn, as
            // before it. A 256-LP mesh flood made half the messages
            // without that turn (1.7-2.0 against 3.5 M msgs/s; why not
            // pinned); back to back loses nothing (benches/hops.md, lat9).
            while self.forward()? == 1 {
                match self.only_forwarded() {
                    Some(t) => due = t,
                    None => break,
                }
                self.sleep(true, due);
            }
        }
    }

    /// After a forward: the deadline to sleep to if no part wants a turn
    /// now, having done what the turn does for our LP's traffic (the report
    /// and heal timers kept short, the message count and the load mode);
    /// `None`: a turn. Back to back, the turn after every forward (0.3 µs
    /// stamped, a third of a manager's work per hop) was on the path: the
    /// next request came while it ran (p50 3.7 -> 3.4 µs without it;
    /// benches/hops.md, "lat9"; paced, it runs after the hand-over, off
    /// the path). What a turn would act on is input other than our LP's
    /// (`other_input`: the peers' rings, direct rings, registry changes,
    /// stop and exit, the transaction server's sync, the view), what the
    /// parts queued (for our LP, our transaction server, the peers, a
    /// report among them) or a deadline that came (timers, polls;
    /// recomputed here, so a part the forward changed, a control frame
    /// from our LP, say, is asked again). More of our LP's frames are the
    /// next forward's (the sleep returns at once). Asked only after a
    /// forward of one message (`event_loop`: a flood gets its turn).
    fn only_forwarded(&mut self) -> Option<Instant> {
        if self.other_input()
            || !self.queue.is_empty()
            || !self.txn_in.is_empty()
            || !self.peers.idle()
        {
            return None;
        }
        // Traffic from our LP: the report timer stays short (before the
        // deadline, which depends on it).
        self.reports.activity();
        let (now, due) = self.deadline_at();
        if due <= now {
            return None;
        }
        self.forwarded = false;
        self.healer.active_at = now;
        self.count_load();
        Some(due)
    }

    /// The fast path after a wake-up: what our LP sent goes on to its peers
    /// (whose LPs are woken, and while compact get our CPU: the hand-over)
    /// before the rest of the turn, whose parts (discovery, the transaction
    /// server, the view, healing, timers, reports, the load mode) then run
    /// after that hop instead of before it. The same pump as the turn's,
    /// only first: as if the last turn had ended with it. What it takes off
    /// a paced round trip's manager hop: discovery and the search for rings
    /// to open (0.3-0.5 µs stamped, benches/hops.md).
    ///
    /// The messages it forwarded (0: none).
    fn forward(&mut self) -> anyhow::Result<usize> {
        if !self.lp.has_input() {
            return Ok(0);
        }
        let before = self.pumped;
        if !self.pump_lp(false)? {
            return Ok(0);
        }
        self.forwarded = true;
        // Rings still to open wait for the turn (`Peers::pump_out`).
        let (_, dropped) = self.peers.pump_linked(&self.ctx);
        self.counters.dropped += dropped;
        Ok((self.pumped - before).max(1))
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
        self.count_load();
        Ok(work)
    }

    /// Give the load mode what our LP sent since it last counted.
    fn count_load(&mut self) {
        self.load.turn(
            &self.ctx,
            &self.lp,
            std::mem::take(&mut self.pumped),
            std::mem::take(&mut self.pumped_own_txn),
        );
    }

    /// Input the loop would act on. Input it leaves alone (back-pressure)
    /// does not count, or the manager would spin instead of sleeping.
    fn any_input(&self) -> bool {
        (self.lp.has_input() && !self.lp_held_back()) || self.other_input()
    }

    /// Input the loop would act on, other than our LP's frames.
    fn other_input(&self) -> bool {
        let q = &self.queue;
        let flags = &self.ctx.flags;
        self.peers.has_input(|s| !backlog::held_back(q, s))
            || (!backlog::all_held_back(q) && self.direct.has_input())
            || (flags.stop.load(Ordering::Relaxed) && !self.stop_sent)
            || flags.lp_exited.load(Ordering::Relaxed)
            || self.peers.registry_changed(&self.ctx)
            || self.txn.groups.sync_done()
            || self.access.view_wanted()
    }

    /// The earliest time a part wants a turn.
    fn deadline(&self) -> Instant {
        self.deadline_at().1
    }

    /// Now, and the earliest time a part wants a turn.
    fn deadline_at(&self) -> (Instant, Instant) {
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
        (now, t)
    }

    /// Sleep until a frame, a registry change, a signal or `deadline`, as
    /// the load mode says (see [`load::Load::strategy`]).
    fn sleep(&self, busy: bool, deadline: Instant) {
        let timeout = deadline.saturating_duration_since(Instant::now());
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
