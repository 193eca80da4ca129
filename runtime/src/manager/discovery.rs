//! Discovery: the communications module's view of who is up. The registry
//! holds a slot per manager (state and generation) and a change counter
//! every manager bumps when it joins, leaves or its LP changes state. When
//! the counter moved, we look at every slot: a new peer (or a new
//! generation of one) gets a fresh ring from it to us, made by us; we
//! attach as producer to the ring it made for us; a peer that left is
//! drained and forgotten.

use super::context::Ctx;
use super::peers::{Inbound, Peers};
use crate::link::{Resync, RxLink, TxLink};
use crate::wire;
use shmcollab_shm::auth::{Opener, Sealer};
use shmcollab_shm::frame::kind;
use shmcollab_shm::registry::{LpState, SlotState, SlotView};
use shmcollab_shm::ring::{create_ring, open_ring, BellRef, Consumer, Producer};

/// A peer that changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Change {
    /// Up in a new generation (or for the first time).
    Up { slot: u32, generation: u32 },
    /// Left.
    Gone { slot: u32 },
}

/// What one look at the registry found.
#[derive(Debug, Default)]
pub(super) struct Discovered {
    pub changes: Vec<Change>,
    /// Messages dropped for peers whose LP ended for good.
    pub dropped: u64,
}

impl Peers {
    /// Look at the registry if it changed since last time.
    pub fn discover(&mut self, ctx: &Ctx) -> Option<Discovered> {
        let seq = ctx.registry.changes().seq();
        if self.changes_seen == Some(seq) {
            return None;
        }
        self.changes_seen = Some(seq);
        let mut found = Discovered::default();
        let mut created = false;
        for s in (0..ctx.slots()).filter(|&s| s != ctx.slot) {
            let Ok(view) = ctx.registry.slot(s) else {
                continue;
            };
            created |= self.look_at(ctx, s, &view, &mut found);
        }
        if created {
            // Our own bump makes the next turn look again, which is
            // harmless; not bumping could miss another manager's change.
            ctx.registry.changes().notify();
        }
        self.open_outbound(ctx);
        Some(found)
    }

    /// Whether the registry changed since we looked.
    pub fn registry_changed(&self, ctx: &Ctx) -> bool {
        self.changes_seen != Some(ctx.registry.changes().seq())
    }

    /// One slot; true if we made a ring for it.
    fn look_at(&mut self, ctx: &Ctx, s: u32, view: &SlotView, found: &mut Discovered) -> bool {
        let active = view.state == SlotState::Active;
        let peer = self.entry(s);
        let mut created = false;
        if active && (!peer.up || peer.generation != view.generation) {
            // A new peer or a new generation of it; or the same one whose
            // slot seemed to leave (another process wrote into it): then
            // its ring is the one we read already, and one ring has one
            // reader (two would fight over its head).
            let name = wire::peer_ring(s, view.generation, ctx.slot, ctx.generation);
            let mut same = None;
            if let Some(old) = peer.rx.take() {
                if old.name == name {
                    same = Some(old);
                } else {
                    peer.draining.push(old);
                }
            }
            if same.is_none() {
                if let Some(i) = peer.draining.iter().position(|d| d.name == name) {
                    same = Some(peer.draining.remove(i));
                }
            }
            peer.drop_tx();
            peer.unsplit_direct();
            // OFFER and SWITCH were for its predecessor.
            peer.pending.retain(|h| h.kind != kind::CONTROL);
            peer.generation = view.generation;
            peer.up = true;
            found.changes.push(Change::Up {
                slot: s,
                generation: view.generation,
            });
            let cap = ctx.plan.ring_capacity;
            if let Some(rx) = same {
                peer.rx = Some(rx);
                peer.finished = false;
                Ctx::wake(&ctx.registry, s);
                return false;
            }
            let seg =
                create_ring(&ctx.session, &name, cap).or_else(|_| open_ring(&ctx.session, &name));
            if let Ok((seg, c)) = seg.and_then(|seg| Consumer::attach(&seg).map(|c| (seg, c))) {
                let opener = Opener::new(ctx.peer_to_us_key(s, view.generation));
                let link = RxLink::new(c, opener, Resync::Never);
                peer.rx = Some(Inbound { link, name, seg });
                created = true;
            }
            Ctx::wake(&ctx.registry, s);
        } else if !active && peer.up {
            peer.up = false;
            peer.drop_tx();
            peer.unsplit_direct();
            found.changes.push(Change::Gone { slot: s });
            if let Some(old) = peer.rx.take() {
                peer.draining.push(old);
            }
        }
        // A slot whose LP ended for good never comes back: what is queued
        // for it is dropped and counted, not kept forever.
        let finished = !active && matches!(view.lp_state, LpState::Exited | LpState::Failed);
        peer.finished = finished;
        if finished && !peer.pending.is_empty() {
            found.dropped += peer.pending.len() as u64;
            peer.pending = crate::link::Outbox::new();
        }
        created
    }

    /// Attach to the rings the peers made for us.
    pub(super) fn open_outbound(&mut self, ctx: &Ctx) {
        for peer in self.map.values_mut().filter(|p| p.up && p.tx.is_none()) {
            let name = wire::peer_ring(ctx.slot, ctx.generation, peer.slot, peer.generation);
            let Ok(seg) = open_ring(&ctx.session, &name) else {
                continue;
            };
            let Ok(bell) = ctx.registry.doorbell(peer.slot) else {
                continue;
            };
            // SAFETY: `bell` is the peer slot's doorbell inside the registry
            // segment, which BellRef keeps mapped.
            let bell = unsafe { BellRef::new(ctx.registry.segment().clone(), bell as *const _) };
            if let Ok(p) = Producer::attach(&seg, Some(bell)) {
                let key = ctx.us_to_peer_key(peer.slot, peer.generation);
                // The same generation again (its slot seemed to leave and
                // come back): go on from the sequence already used.
                let sealer = match peer.sealed.get(&peer.generation) {
                    Some(&next) => Sealer::resume(key, next),
                    None => Sealer::new(key),
                };
                peer.tx = Some(TxLink::new(p, sealer));
                peer.tx_seg = Some(seg);
            }
        }
    }
}
