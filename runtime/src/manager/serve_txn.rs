//! The manager's loop and its transaction server: what came for the
//! server in a turn is served, made durable with one fdatasync, and the
//! answers routed like the manager's own frames.

use super::router::{route, Here, Origin, Route};
use super::txn_server::{self, TxnFrame};
use super::Manager;
use crate::wire;
use shmcollab_shm::frame::FrameHeader;
use std::time::Instant;

impl Manager {
    /// Serve what came for the transaction server this turn, make it
    /// durable with one fdatasync, and send the answers; frames the server
    /// sends to itself (a two-phase commit it leads and takes part in) go
    /// round again.
    pub(super) fn serve_txn(&mut self) -> bool {
        let mut out = Vec::new();
        let due = self.txn.deadline().is_some_and(|t| Instant::now() >= t);
        if self.txn_in.is_empty() && !due && !self.txn.groups.sync_done() {
            return false;
        }
        if due {
            self.txn.tick(&self.ctx, &mut out);
        }
        let mut frames = std::mem::take(&mut self.txn_in);
        loop {
            for f in frames.drain(..) {
                self.txn.handle(&self.ctx, f, &mut out);
            }
            // Answers that need no fdatasync (reads, conflicts) go first:
            // they must not wait for the group's.
            frames = self.send_txn(std::mem::take(&mut out));
            if !self.txn.groups.gathering.is_empty() {
                // A group is about to be synced, maybe inline: what is
                // queued goes out first (a two-phase commit's prepares, so
                // that the hosts sync while we do; reads answered).
                self.push_out();
            }
            let lp_or_peers = || self.lp.has_input() || self.peers.has_input(|_| true);
            self.txn.sync_group(&self.ctx, &mut out, &lp_or_peers);
            frames.extend(self.send_txn(std::mem::take(&mut out)));
            if frames.is_empty() {
                break;
            }
        }
        self.txn_in = frames;
        // What the server sent to peers goes out now, not at the next
        // turn's pump: a manager that sleeps after this turn would keep a
        // vote, a decision or a read's answer queued until its poll timer
        // (200 µs).
        self.push_out();
        true
    }

    /// Write what is queued for peers and for our LP now.
    fn push_out(&mut self) {
        let (_, dropped) = self.peers.pump_out(&self.ctx);
        self.counters.dropped += dropped;
        self.flush_lp();
    }

    /// Send what the transaction server sent; returns the frames it sent
    /// to itself.
    pub(super) fn send_txn(&mut self, out: txn_server::Outbox) -> Vec<TxnFrame> {
        let mut back = Vec::new();
        for (h, p) in out {
            match self.route_server(&h) {
                Route::Txn => back.push(TxnFrame {
                    h,
                    payload: p,
                    from_lp: false,
                }),
                Route::Local => self.queue.push(&h, &p),
                Route::Peer(s) => {
                    let sent = if h.flags & wire::FLAG_MANAGER != 0 {
                        self.peers.send_to_manager(s, &h, &p)
                    } else {
                        self.peers.send(s, &h, &p)
                    };
                    if !sent {
                        self.counters.dropped += 1;
                    }
                }
                _ => self.counters.dropped += 1,
            }
        }
        back
    }

    fn route_server(&self, h: &FrameHeader) -> Route {
        let here = Here {
            slot: self.ctx.slot,
            slots: self.ctx.slots(),
            owners: &self.ctx.assign,
        };
        route(&here, Origin::Server, h)
    }
}
