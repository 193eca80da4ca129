//! Discovery: the communications module's view of who is up, kept only
//! for the peers we talk with. The registry holds a slot per manager
//! (state and generation) and a change counter every manager bumps when it
//! joins, leaves or its LP changes state. When the counter moved, we look
//! at the slots of the peers we know (never every slot: with hundreds of
//! managers that scan, times every change, was the launch's cost); a peer
//! we have never looked at is looked at when we first have something for
//! it.
//!
//! Rings are made when a pair first talks. A manager with frames for a
//! peer and no ring to write them into asks the peer for one (a bit in the
//! peer's registry slot, then the peer's doorbell); the peer makes the
//! ring (its reader, as always), bumps our `made` counter and rings us; we
//! attach as producer. Until then the frames wait in the peer's queue, in
//! order. A new generation of a peer gets a new ring the same way; the old
//! generation's ring is drained to the end and removed.

use super::context::Ctx;
use super::peers::{Inbound, Peers};
use crate::link::{Resync, RxLink, TxLink};
use crate::wire;
use shmcollab_shm::auth::{Opener, Sealer};
use shmcollab_shm::frame::kind;
use shmcollab_shm::registry::{LpState, SlotState, SlotView};
use shmcollab_shm::ring::{create_ring, open_ring, BellRef, Consumer, Producer};
use std::time::{Duration, Instant};

/// A request for a ring not answered in this long is made again (its
/// answer may have been lost to a peer that restarted in between).
pub(super) const REQUEST_AGAIN: Duration = Duration::from_millis(100);

/// A peer that changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Change {
    /// Up in a new generation (or for the first time).
    Up { slot: u32, generation: u32 },
    /// Left.
    Gone { slot: u32 },
}

/// What looking at the registry found.
#[derive(Debug, Default)]
pub(super) struct Discovered {
    pub changes: Vec<Change>,
    /// Messages dropped for peers whose LP ended for good.
    pub dropped: u64,
}

impl Discovered {
    fn is_empty(&self) -> bool {
        self.changes.is_empty() && self.dropped == 0
    }
}

impl Peers {
    /// Look at the registry if it changed since last time, answer the
    /// peers' ring requests, and return what changed (here or while
    /// connecting to a peer since the last call).
    pub fn discover(&mut self, ctx: &Ctx) -> Option<Discovered> {
        let seq = ctx.registry.changes().seq();
        if self.changes_seen != Some(seq) {
            self.changes_seen = Some(seq);
            let known: Vec<u32> = self.map.keys().copied().collect();
            for s in known {
                self.look(ctx, s);
            }
            // Even with nothing new here: the coordinator may have moved.
            self.looked = true;
        }
        if ctx.registry.has_requests(ctx.slot) {
            self.serve_requests(ctx);
        }
        if self.found.is_empty() && !std::mem::take(&mut self.looked) {
            return None;
        }
        Some(std::mem::take(&mut self.found))
    }

    /// Whether the registry changed since we looked, a peer asked for a
    /// ring, a ring we asked for was made, or a change waits to be handed
    /// out.
    pub fn registry_changed(&self, ctx: &Ctx) -> bool {
        self.changes_seen != Some(ctx.registry.changes().seq())
            || ctx.registry.has_requests(ctx.slot)
            || self.made_seen != ctx.registry.rings_made(ctx.slot)
            || !self.found.is_empty()
    }

    /// Look at slot `s` now.
    fn look(&mut self, ctx: &Ctx, s: u32) {
        if s == ctx.slot || s >= ctx.slots() {
            return;
        }
        let Ok(view) = ctx.registry.slot(s) else {
            return;
        };
        let mut found = std::mem::take(&mut self.found);
        self.look_at(ctx, s, &view, &mut found);
        self.found = found;
        self.entry(s).seen = true;
    }

    /// Make the rings the peers asked for, and tell each it can write.
    fn serve_requests(&mut self, ctx: &Ctx) {
        for s in ctx.registry.take_requests(ctx.slot) {
            if s == ctx.slot || s >= ctx.slots() {
                continue;
            }
            self.look(ctx, s);
            if self.ensure_rx(ctx, s) {
                let _ = ctx.registry.ring_made(s);
            }
            Ctx::wake(&ctx.registry, s);
        }
    }

    /// Make (or find) the ring from peer `s`'s current generation to us;
    /// true if there is one.
    fn ensure_rx(&mut self, ctx: &Ctx, s: u32) -> bool {
        let peer = self.entry(s);
        if !peer.up {
            return false;
        }
        let name = wire::peer_ring(s, peer.generation, ctx.slot, ctx.generation);
        if peer.rx.as_ref().is_some_and(|rx| rx.name == name) {
            return true;
        }
        let cap = ctx.plan.ring_capacity;
        let seg = create_ring(&ctx.session, &name, cap).or_else(|_| open_ring(&ctx.session, &name));
        let Ok((seg, c)) = seg.and_then(|seg| Consumer::attach(&seg).map(|c| (seg, c))) else {
            return false;
        };
        let opener = Opener::new(ctx.peer_to_us_key(s, peer.generation));
        let link = RxLink::new(c, opener, Resync::Never);
        if let Some(old) = peer.rx.replace(Inbound { link, name, seg }) {
            peer.draining.push(old);
        }
        true
    }

    /// One slot: follow its state and generation.
    fn look_at(&mut self, ctx: &Ctx, s: u32, view: &SlotView, found: &mut Discovered) {
        let active = view.state == SlotState::Active;
        let peer = self.entry(s);
        if active && (!peer.up || peer.generation != view.generation) {
            // A new peer or a new generation of it; or the same one whose
            // slot seemed to leave (another process wrote into it): then
            // its ring is the one we read already, and one ring has one
            // reader (two would fight over its head).
            let name = wire::peer_ring(s, view.generation, ctx.slot, ctx.generation);
            if let Some(old) = peer.rx.take() {
                if old.name == name {
                    peer.rx = Some(old);
                } else {
                    peer.draining.push(old);
                }
            }
            if peer.rx.is_none() {
                if let Some(i) = peer.draining.iter().position(|d| d.name == name) {
                    peer.rx = Some(peer.draining.remove(i));
                }
            }
            peer.drop_tx();
            peer.unsplit_direct();
            // OFFER and SWITCH were for its predecessor.
            peer.pending.retain(|h| h.kind != kind::CONTROL);
            if peer.generation != view.generation {
                peer.talked = false;
            }
            peer.generation = view.generation;
            peer.up = true;
            peer.finished = false;
            peer.requested = None;
            found.changes.push(Change::Up {
                slot: s,
                generation: view.generation,
            });
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
        if finished {
            found.dropped += peer.finish() as u64;
        }
    }

    /// Get a ring for every peer that has something for it and none: look
    /// at peers never looked at, attach to rings made for us, ask for the
    /// others.
    pub(super) fn connect(&mut self, ctx: &Ctx) {
        let made = ctx.registry.rings_made(ctx.slot);
        let answered = std::mem::replace(&mut self.made_seen, made) != made;
        let waiting: Vec<u32> = self
            .map
            .values()
            .filter(|p| p.tx.is_none() && p.wants_tx())
            .map(|p| p.slot)
            .collect();
        let now = Instant::now();
        for s in waiting {
            let peer = self.entry(s);
            let due = peer.requested.is_none_or(|(_, t)| now >= t + REQUEST_AGAIN);
            if !peer.seen || (!peer.up && (answered || due)) {
                self.look(ctx, s);
            }
            let peer = self.entry(s);
            if peer.finished || !peer.wants_tx() {
                continue;
            }
            let asked_this_gen = peer.requested.is_some_and(|(g, _)| g == peer.generation);
            if peer.up && (answered || due || !asked_this_gen) && self.open_outbound(ctx, s) {
                continue;
            }
            let peer = self.entry(s);
            if !asked_this_gen || due {
                peer.requested = Some((peer.generation, now));
                let _ = ctx.registry.request_ring(s, ctx.slot);
                Ctx::wake(&ctx.registry, s);
            }
        }
    }

    /// When a waiting peer's request is made again (never for a peer that
    /// ended for good: `connect` asks it nothing, and a deadline already
    /// past would make the loop spin).
    pub(super) fn connect_deadline(&self) -> Option<Instant> {
        let waiting = self
            .map
            .values()
            .filter(|p| p.tx.is_none() && p.wants_tx() && !p.finished);
        waiting
            .filter_map(|p| p.requested.map(|(_, t)| t + REQUEST_AGAIN))
            .min()
    }

    /// Attach to the ring peer `s` made for us; true if we did.
    fn open_outbound(&mut self, ctx: &Ctx, s: u32) -> bool {
        let peer = self.entry(s);
        let name = wire::peer_ring(ctx.slot, ctx.generation, s, peer.generation);
        let Ok(seg) = open_ring(&ctx.session, &name) else {
            return false;
        };
        let Ok(bell) = ctx.registry.doorbell(s) else {
            return false;
        };
        // SAFETY: `bell` is the peer slot's doorbell inside the registry
        // segment, which BellRef keeps mapped.
        let bell = unsafe { BellRef::new(ctx.registry.segment().clone(), bell as *const _) };
        let Ok(p) = Producer::attach(&seg, Some(bell)) else {
            return false;
        };
        let key = ctx.us_to_peer_key(s, peer.generation);
        // The same generation again (its slot seemed to leave and come
        // back): go on from the sequence already used.
        let sealer = match peer.sealed.get(&peer.generation) {
            Some(&next) => Sealer::resume(key, next),
            None => Sealer::new(key),
        };
        peer.tx = Some(TxLink::new(p, sealer));
        peer.tx_seg = Some(seg);
        peer.requested = None;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manager::peers::Sink;
    use crate::manager::testctx;
    use shmcollab_shm::frame::FrameHeader;

    /// What a peer's rings delivered: (from, dst).
    #[derive(Default)]
    struct Got(Vec<(u32, u32)>);

    impl Sink for Got {
        fn full(&self, _from: u32) -> bool {
            false
        }
        fn take(&mut self, from: u32, h: FrameHeader, _: &[u8]) {
            self.0.push((from, h.dst));
        }
    }

    fn segments(ctx: &Ctx) -> usize {
        std::fs::read_dir(ctx.session.dir()).unwrap().count()
    }

    #[test]
    fn a_ring_is_made_when_a_pair_first_talks_and_its_first_messages_wait_in_order() {
        let a = testctx::ctx(0, 4);
        let b = testctx::peer_of(&a, 1);
        let (mut pa, mut pb) = (Peers::default(), Peers::default());
        pa.discover(&a);
        pb.discover(&b);
        pa.pump_out(&a);
        let before = segments(&a);
        for dst in 0..3 {
            let h = FrameHeader {
                kind: kind::DATA,
                dst,
                ..Default::default()
            };
            assert!(pa.send(1, &h, b"m"));
        }
        // No ring yet: a asks b for one, the messages wait.
        pa.pump_out(&a);
        assert_eq!(segments(&a), before, "the ring is b's to make");
        assert!(b.registry.has_requests(1) && pb.registry_changed(&b));
        pb.discover(&b);
        assert_eq!(segments(&a), before + 1, "b made the ring a -> b");
        assert!(!b.registry.has_requests(1));
        assert!(pa.registry_changed(&a), "b told a");
        pa.pump_out(&a);
        let mut got = Got::default();
        pb.pump_in(&b, &mut Vec::new(), &mut got);
        assert_eq!(got.0, [(0, 0), (0, 1), (0, 2)]);
        // Nothing for slots 2 and 3, nothing back from b: no other ring.
        pb.pump_out(&b);
        assert_eq!(segments(&a), before + 1);
    }

    /// A state report queued for a coordinator whose LP then ended for
    /// good, or that the role moved away from, is dropped: kept, it asked
    /// for a ring to a peer that will never make one, with a request
    /// deadline already past, and the manager's loop spun (every manager
    /// of a collaboration whose coordinator's LP exited).
    #[test]
    fn a_report_for_a_coordinator_that_left_or_moved_on_is_dropped() {
        use shmcollab_shm::frame::FrameHeader;
        let a = testctx::ctx(0, 4);
        let mut pa = Peers::default();
        pa.discover(&a);
        let report = |dst: u32| FrameHeader {
            kind: kind::REPORT,
            dst,
            ..Default::default()
        };
        // The role moved from 1 to 2 before 1 made a ring: only 2's waits.
        pa.set_report(1, report(1), b"r1".to_vec());
        pa.set_report(2, report(2), b"r2".to_vec());
        assert!(!pa.entry(1).wants_tx() && pa.entry(2).wants_tx());
        pa.pump_out(&a);
        assert!(a.registry.has_requests(2) && !a.registry.has_requests(1));
        assert!(pa.connect_deadline().is_some(), "asked 2 for a ring");
        // 2's LP ends for good and its manager leaves.
        let g2 = a.registry.slot(2).unwrap().generation;
        a.registry.set_lp(2, 0, LpState::Exited).unwrap();
        a.registry.release_slot(2, g2).unwrap();
        pa.discover(&a);
        pa.pump_out(&a);
        assert!(pa.finished(2));
        assert!(!pa.entry(2).wants_tx(), "the report for 2 is dropped");
        assert_eq!(pa.connect_deadline(), None, "nothing to ask anyone");
    }
}
