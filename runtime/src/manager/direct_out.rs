//! The writer's side of the direct path, per peer: the ring into the
//! peer's LP that the peer offered (opened on its OFFER, behind a SWITCH on
//! the peer's ring), given up for the 6-hop way (UNSWITCH) when its reader
//! revokes it, its file is replaced or it is found corrupt, and dropped
//! when the peer's manager changes or leaves; where each dropped ring's
//! sealer was, so that a ring offered again for the same pair goes on from
//! its sequence (no nonce reuse).
//!
//! The rest of a peer's links (its rings to and from us, the queues, the
//! reading and the writing) are in `peers.rs`.

use super::context::Ctx;
use super::peers::{Peer, Peers};
use crate::ctl::PeerCtl;
use crate::link::TxLink;
use crate::wire;
use shmcollab_shm::auth::Sealer;
use shmcollab_shm::ring::{data_bell_ref, open_ring, Producer};
use shmcollab_shm::segment::Segment;

/// The direct ring into a peer's LP, written by us.
pub(super) struct DirectOut {
    pub(super) link: TxLink,
    /// Its segment, to see whether the file is still the one we write.
    pub(super) seg: Segment,
    /// The generation of the peer it serves.
    pub(super) b_gen: u32,
    /// The generation of the peer's LP it serves.
    pub(super) lp_gen: u32,
}

impl Peer {
    /// The peer's manager changed or left: the direct ring into its LP is
    /// gone with it; what waits for it goes the 6-hop way, after what
    /// already waits there.
    pub fn unsplit_direct(&mut self) {
        if let Some(d) = self.direct.take() {
            let next = self.direct_sealed.entry((d.b_gen, d.lp_gen)).or_default();
            *next = (*next).max(d.link.next_seq());
            while self.direct_sealed.len() > 16 {
                self.direct_sealed.pop_first();
            }
        }
        if !self.direct_pending.is_empty() {
            let later = std::mem::take(&mut self.direct_pending);
            later.for_each(|h, p| self.pending.push(&h, p));
        }
    }

    /// Stop writing the direct ring into the peer's LP: UNSWITCH, then what
    /// waits for it goes the 6-hop way.
    pub(super) fn give_up_direct(&mut self, ctx: &Ctx) {
        let Some(out) = self.direct.as_mut() else {
            return;
        };
        out.link.flush();
        let lp_gen = out.lp_gen;
        let m = PeerCtl::Unswitch {
            lp_gen,
            from_gen: ctx.generation,
        };
        // UNSWITCH goes ahead of what now takes the 6-hop way.
        self.pending.push(&super::ctl_header(ctx.slot), &m.encode());
        self.unsplit_direct();
    }
}

impl Peers {
    /// Peer `b` offers its LP's direct ring of `lp_gen` (b's generation
    /// `b_gen`): write there from now on, behind a SWITCH on b's ring.
    pub fn on_offer(&mut self, ctx: &Ctx, b: u32, lp_gen: u32, b_gen: u32) {
        let key = ctx.direct_key((ctx.slot, ctx.generation), (b, b_gen), lp_gen);
        let Some(peer) = self.map.get_mut(&b) else {
            return;
        };
        if !peer.up || peer.generation != b_gen || peer.finished {
            return;
        }
        if peer.direct.as_ref().is_some_and(|d| d.lp_gen >= lp_gen) {
            return;
        }
        let name = wire::direct_ring(ctx.slot, ctx.generation, b, b_gen, lp_gen);
        let Ok(seg) = open_ring(&ctx.session, &name) else {
            return;
        };
        // The LP waits on its main ring's doorbell: ring that one.
        let bell = open_ring(&ctx.session, &wire::lp_in_ring(b, b_gen))
            .ok()
            .and_then(|s| data_bell_ref(&s).ok());
        let Some(tx) = bell.and_then(|bell| Producer::attach(&seg, Some(bell)).ok()) else {
            return;
        };
        if let Some(old) = peer.direct.as_mut() {
            old.link.flush();
        }
        let sealer = match peer.direct_sealed.get(&(b_gen, lp_gen)) {
            Some(&next) => Sealer::resume(key, next),
            None => Sealer::new(key),
        };
        peer.direct = Some(DirectOut {
            link: TxLink::new(tx, sealer),
            seg,
            b_gen,
            lp_gen,
        });
        // For this generation of b only (`to_gen`): a SWITCH still queued
        // when b restarts must not match the new b's ring.
        let switch = PeerCtl::Switch {
            lp_gen,
            from_gen: ctx.generation,
            to_gen: b_gen,
        };
        self.tell(ctx, b, switch);
    }

    /// Peer `b` found garbage in the direct ring we write for its LP of
    /// `lp_gen` and dropped it: what we queue for that LP goes the 6-hop
    /// way again, behind an UNSWITCH.
    pub fn on_revoke(&mut self, ctx: &Ctx, b: u32, lp_gen: u32, b_gen: u32) {
        let Some(peer) = self.map.get_mut(&b) else {
            return;
        };
        if peer.generation != b_gen {
            return;
        }
        if peer.direct.as_ref().is_some_and(|d| d.lp_gen == lp_gen) {
            peer.give_up_direct(ctx);
        }
    }
}
