//! The manager's side towards its peers: discovery, direct rings offered
//! and drained, the peers' frames and control messages, and what the parts
//! want sent.

use super::*;

impl Manager {
    pub(super) fn discover(&mut self) {
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
    pub(super) fn offer_direct(&mut self, s: u32) {
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
    pub(super) fn pump_peers(&mut self) -> (bool, bool) {
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
    pub(super) fn on_peer_ctl(&mut self, from: u32, m: PeerCtl) {
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
    pub(super) fn drain_direct(&mut self) -> bool {
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
    pub(super) fn send(&mut self, outs: Vec<Out>) {
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
}
