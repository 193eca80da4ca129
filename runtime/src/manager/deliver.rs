//! What happens to each message once [`super::router::route`] has placed
//! it: the two sinks the manager's read loops feed, one for its LP's ring
//! and one for the peers' rings. They hold borrows of just the parts they
//! touch, so reading a ring never needs the whole manager (and nothing is
//! ever moved out of it to make room).

use super::context::Ctx;
use super::coordinator::Coordinator;
use super::direct::{DirectIn, Queue, Switch};
use super::peers::{Peers, Sink};
use super::reports::Counters;
use super::router::{route, Here, Origin, Route};
use super::txn_server::TxnFrame;
use super::{backlog, Out};
use crate::ctl::{LpCtl, PeerCtl};
use crate::link::Outbox;
use shmcollab_shm::frame::{kind, FrameHeader};

/// Messages from our LP.
pub(super) struct FromLp<'a> {
    pub ctx: &'a Ctx,
    pub peers: &'a mut Peers,
    pub queue: &'a mut Outbox,
    pub counters: &'a mut Counters,
    /// Frames for our transaction server, served after the read.
    pub txn: &'a mut Vec<TxnFrame>,
    /// Control for us, handled after the read (it may touch any part).
    pub ctl: Vec<LpCtl>,
    /// The LP sent at least one frame.
    pub framed: bool,
    /// Transaction frames for our own server among them.
    pub own_txn: usize,
}

impl FromLp<'_> {
    /// A message from our LP; `lone`: nothing known to follow it (see
    /// [`Peers::send_lone`]).
    pub fn take(&mut self, h: FrameHeader, p: &[u8], lone: bool) {
        self.framed = true;
        let ctx = self.ctx;
        if h.kind != kind::CONTROL {
            // Messages to other LPs, not talk with this manager.
            self.counters.msgs_out += 1;
            self.counters.bytes_out += p.len() as u64;
        }
        let here = Here {
            slot: ctx.slot,
            slots: ctx.slots(),
            owners: &ctx.assign,
        };
        match route(&here, Origin::Lp, &h) {
            Route::Local => self.queue.push(&h, p),
            Route::Peer(s) => {
                // A transaction request is for the host's manager; the
                // rest for its LP (on the direct path when there is one).
                let sent = if h.kind == kind::TXN {
                    self.peers.send_to_manager(s, &h, p)
                } else if lone {
                    self.peers.send_lone(s, &h, p)
                } else {
                    self.peers.send(s, &h, p)
                };
                if !sent {
                    self.counters.dropped += 1;
                }
            }
            Route::Broadcast => {
                // LPs that ended for good are not "every other LP" any more.
                for s in (0..ctx.slots()).filter(|&s| s != ctx.slot) {
                    if !self.peers.finished(s) {
                        self.peers.send(s, &h, p);
                    }
                }
            }
            Route::LpControl => match LpCtl::decode(p) {
                Ok(c) => self.ctl.push(c),
                Err(_) => self.counters.dropped += 1,
            },
            Route::Txn => {
                self.own_txn += 1;
                self.txn.push(TxnFrame {
                    h,
                    payload: p.to_vec(),
                    from_lp: true,
                })
            }
            _ => self.counters.dropped += 1,
        }
    }
}

/// Messages from peer managers.
pub(super) struct FromPeers<'a> {
    pub ctx: &'a Ctx,
    pub queue: &'a mut Outbox,
    pub direct: &'a mut DirectIn,
    pub coord: &'a mut Coordinator,
    pub counters: &'a mut Counters,
    /// Frames for our transaction server, served after the read.
    pub txn: &'a mut Vec<TxnFrame>,
    /// For draining direct rings (the frame being read is in the other).
    pub scratch: &'a mut Vec<u8>,
    /// The generation of our LP, if one runs.
    pub live_lp: Option<u32>,
    /// Peer control that touches the peers, handled after the read.
    pub later: Vec<(u32, PeerCtl)>,
    /// Control to send.
    pub outs: Vec<Out>,
    /// Peers that sent our LP a message in this read.
    pub talkers: Vec<u32>,
}

impl FromPeers<'_> {
    /// SWITCH and UNSWITCH act on our direct rings in the order they come,
    /// between the frames of their sender that must go before and after.
    fn control(&mut self, from: u32, m: PeerCtl) {
        match m {
            PeerCtl::Switch {
                lp_gen,
                from_gen,
                to_gen,
            } => {
                if to_gen != self.ctx.generation {
                    return;
                }
                let sw = Switch {
                    s: from,
                    s_gen: from_gen,
                    lp_gen,
                };
                let live = self.live_lp;
                let mut q = Queue {
                    ctx: self.ctx,
                    lp: &mut *self.queue,
                    scratch: &mut *self.scratch,
                    counters: &mut *self.counters,
                };
                let outs = self.direct.on_switch(sw, live, &mut q);
                self.outs.extend(outs);
            }
            PeerCtl::Unswitch { lp_gen, from_gen } => {
                let sw = Switch {
                    s: from,
                    s_gen: from_gen,
                    lp_gen,
                };
                let mut q = Queue {
                    ctx: self.ctx,
                    lp: &mut *self.queue,
                    scratch: &mut *self.scratch,
                    counters: &mut *self.counters,
                };
                let outs = self.direct.on_unswitch(sw, &mut q);
                self.outs.extend(outs);
            }
            other => self.later.push((from, other)),
        }
    }
}

impl Sink for FromPeers<'_> {
    fn full(&self, from: u32) -> bool {
        backlog::held_back(self.queue, from)
    }

    fn take(&mut self, from: u32, h: FrameHeader, p: &[u8]) {
        let ctx = self.ctx;
        let here = Here {
            slot: ctx.slot,
            slots: ctx.slots(),
            owners: &ctx.assign,
        };
        match route(&here, Origin::Peer(from), &h) {
            Route::Local => {
                if !self.talkers.contains(&from) {
                    self.talkers.push(from);
                }
                self.queue.push(&h, p)
            }
            // Reports of a stale epoch are ignored.
            Route::Report => self.coord.on_report(ctx, from, h.aux, p),
            Route::PeerControl => match PeerCtl::decode(p) {
                Ok(m) => self.control(from, m),
                Err(_) => self.counters.dropped += 1,
            },
            Route::Txn => self.txn.push(TxnFrame {
                h,
                payload: p.to_vec(),
                from_lp: false,
            }),
            _ => self.counters.dropped += 1,
        }
    }
}
