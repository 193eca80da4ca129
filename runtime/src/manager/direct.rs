//! The direct path, reader's side: rings that peer managers write straight
//! into our LP (4 hops per round trip instead of 6), made by us, one per
//! peer generation and LP generation (`m<a>.g<G>-lp<b>.g<G>.<lp gen>`).
//!
//! Why it keeps every property of the 6-hop path:
//! - Keys: a ring's key derives from our LP's inbound link key and the
//!   writer's id, so the LP holds no key but its own link's.
//! - Order per sender: a writer sends SWITCH on its ring to us after
//!   everything it routed through us; we queue ATTACH for the LP behind
//!   those frames, and the LP reads the direct ring only from then on.
//! - Nothing lost: when our LP dies we read its direct rings ourselves
//!   (after the frames reclaimed from its main ring), so its successor
//!   gets what it did not release, in order, before the newer rings.
//! - Garbage in a ring: we drop the ring and REVOKE it; the writer answers
//!   UNSWITCH on its ring and goes back to the 6-hop path.
//!
//! Each ring is a small state machine of two halves: who writes it
//! ([`Writer`]) and who reads it ([`Reader`]). The events are the methods
//! of [`DirectIn`]; each returns the control messages to send ([`Out`]).

use super::context::Ctx;
use super::{backlog, Counters, Out};
use crate::ctl::{LpCtl, PeerCtl};
use crate::link::{Outbox, Resync, RxLink, Step};
use crate::wire;
use shmcollab_shm::auth::{Opener, RxStats};
use shmcollab_shm::frame::kind;
use shmcollab_shm::ring::{create_ring, Consumer};
use shmcollab_shm::segment::Segment;

/// The writer's half.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Writer {
    /// Offered; the writer's SWITCH has not been routed yet, so what it
    /// wrote must wait behind what it routed through us.
    Offered,
    /// Its SWITCH was routed: the ring's frames may be read.
    Switched,
    /// It writes nothing more (a newer ring, or UNSWITCH); `switched`:
    /// its SWITCH was routed before.
    Superseded { switched: bool },
    /// The writing manager is gone.
    Gone,
}

impl Writer {
    /// Frames in the ring may be read now (nothing routed earlier waits).
    fn may_read(self) -> bool {
        !matches!(
            self,
            Writer::Offered | Writer::Superseded { switched: false }
        )
    }

    /// Nothing more will be written.
    fn finished(self) -> bool {
        matches!(self, Writer::Superseded { .. } | Writer::Gone)
    }

    fn switched(self) -> Writer {
        match self {
            Writer::Offered => Writer::Switched,
            Writer::Superseded { .. } => Writer::Superseded { switched: true },
            w => w,
        }
    }

    fn superseded(self) -> Writer {
        match self {
            Writer::Offered => Writer::Superseded { switched: false },
            Writer::Switched => Writer::Superseded { switched: true },
            w => w,
        }
    }
}

/// The reader's half.
enum Reader {
    /// Nobody reads it yet (no SWITCH, or not for our current LP).
    Unread,
    /// Our LP reads it (ATTACH queued).
    Lp,
    /// We read it (its LP is dead or cannot read it), resuming at the
    /// first frame that authenticates after what the LP released.
    Manager(Box<RxLink>),
    /// Garbage was found in it: removed at the next sweep.
    Dropped,
}

/// One direct ring into our LP.
struct Ring {
    peer: u32,
    peer_gen: u32,
    lp_gen: u32,
    name: String,
    seg: Segment,
    writer: Writer,
    reader: Reader,
}

impl Ring {
    fn is(&self, peer: u32, peer_gen: u32, lp_gen: u32) -> bool {
        (self.peer, self.peer_gen, self.lp_gen) == (peer, peer_gen, lp_gen)
    }

    fn drained_by_us(&self) -> Option<&RxLink> {
        match &self.reader {
            Reader::Manager(l) => Some(&**l),
            _ => None,
        }
    }

    /// Nothing more will come out of it: remove it.
    fn done(&self) -> bool {
        match &self.reader {
            Reader::Manager(l) => self.writer.finished() && !l.has_data(),
            Reader::Dropped => true,
            _ => false,
        }
    }
}

/// Our LP's inbound direct rings.
#[derive(Default)]
pub(super) struct DirectIn {
    rings: Vec<Ring>,
    /// What rings we drained and removed since rejected.
    gone: RxStats,
}

/// What draining did.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Drained {
    pub work: bool,
    pub rejected: bool,
}

impl DirectIn {
    /// The segment of direct ring `name` (to hand our LP its descriptor).
    pub fn segment(&self, name: &str) -> Option<&Segment> {
        self.rings.iter().find(|r| r.name == name).map(|r| &r.seg)
    }

    /// Make the ring from peer `s` (generation `peer_gen`) into our LP of
    /// generation `lp_gen`, and offer it.
    pub fn offer(&mut self, ctx: &Ctx, s: u32, peer_gen: u32, lp_gen: u32) -> Vec<Out> {
        if !wire::direct_enabled() || self.rings.iter().any(|r| r.is(s, peer_gen, lp_gen)) {
            return Vec::new();
        }
        let name = wire::direct_ring(s, peer_gen, ctx.slot, ctx.generation, lp_gen);
        let seg = match create_ring(&ctx.session, &name, ctx.plan.ring_capacity) {
            Ok(seg) => seg,
            Err(e) => {
                // The 6-hop path still works.
                eprintln!("shmcollab: cannot create the direct ring {name}: {e}");
                return Vec::new();
            }
        };
        self.rings.push(Ring {
            peer: s,
            peer_gen,
            lp_gen,
            name,
            seg,
            writer: Writer::Offered,
            reader: Reader::Unread,
        });
        let from_gen = ctx.generation;
        vec![Out::Peer(s, PeerCtl::Offer { lp_gen, from_gen })]
    }

    /// Peer `s` writes into the ring of LP generation `lp_gen` from now on;
    /// everything it sent before is routed. `live_lp`: the generation of
    /// our LP if one runs.
    pub fn on_switch(&mut self, sw: Switch, live_lp: Option<u32>, q: &mut Queue) -> Vec<Out> {
        let Switch { s, s_gen, lp_gen } = sw;
        for r in self.rings.iter_mut() {
            if r.peer == s && r.peer_gen == s_gen && r.lp_gen < lp_gen {
                r.writer = r.writer.superseded();
            }
        }
        let Some(r) = self.rings.iter_mut().find(|r| r.is(s, s_gen, lp_gen)) else {
            return Vec::new();
        };
        r.writer = r.writer.switched();
        let for_our_lp = live_lp == Some(lp_gen) && matches!(r.reader, Reader::Unread | Reader::Lp);
        // What `s` wrote into older rings goes first.
        let mut out = self.drain(Some(s), true, q).1;
        let Some(r) = self.rings.iter_mut().find(|r| r.is(s, s_gen, lp_gen)) else {
            return out;
        };
        if for_our_lp && matches!(r.reader, Reader::Unread) {
            r.reader = Reader::Lp;
            out.push(Out::Lp(LpCtl::Attach {
                writer: s,
                writer_generation: s_gen,
                ring: r.name.clone(),
            }));
            if r.writer == Writer::Gone {
                out.push(Out::Lp(LpCtl::Detach {
                    ring: r.name.clone(),
                }));
            }
        }
        out
    }

    /// Peer `s` writes nothing more into its ring into our LP of
    /// `lp_gen`: what is left there is queued now, before the frames that
    /// follow on `s`'s ring (so this runs while routing them).
    pub fn on_unswitch(&mut self, sw: Switch, q: &mut Queue) -> Vec<Out> {
        for r in self
            .rings
            .iter_mut()
            .filter(|r| r.is(sw.s, sw.s_gen, sw.lp_gen))
        {
            r.writer = r.writer.switched().superseded();
        }
        self.drain(Some(sw.s), true, q).1
    }

    /// Peer `s` has a new generation (`Some`) or left (`None`): its older
    /// rings get nothing more.
    pub fn peer_gone(&mut self, ctx: &Ctx, s: u32, new_gen: Option<u32>) -> Vec<Out> {
        let mut out = Vec::new();
        for i in 0..self.rings.len() {
            let r = &mut self.rings[i];
            if r.peer != s || Some(r.peer_gen) == new_gen || r.writer == Writer::Gone {
                continue;
            }
            r.writer = Writer::Gone;
            match r.reader {
                Reader::Lp => out.push(Out::Lp(LpCtl::Detach {
                    ring: r.name.clone(),
                })),
                // Never attached: read what the dead writer left (usually
                // nothing) ourselves, then remove the ring.
                Reader::Unread => self.take_over(ctx, i),
                _ => {}
            }
        }
        out
    }

    /// Our LP cannot read ring `name`: we read it, and its writer goes back
    /// to the 6-hop path (we read what it left once it says UNSWITCH).
    pub fn lost(&mut self, ctx: &Ctx, name: &str) -> Vec<Out> {
        let Some(i) = self.rings.iter().position(|r| r.name == name) else {
            return Vec::new();
        };
        self.take_over(ctx, i);
        let r = &self.rings[i];
        vec![revoke(ctx, r.peer, r.lp_gen)]
    }

    /// Our LP of generation `dead` died: we read its rings from here on.
    pub fn lp_died(&mut self, ctx: &Ctx, dead: u32, q: &mut Queue) -> Vec<Out> {
        for i in 0..self.rings.len() {
            if self.rings[i].lp_gen == dead {
                self.take_over(ctx, i);
            }
        }
        self.drain(None, true, q).1
    }

    /// Our LP dropped ring `name` (empty, its writer gone): remove it.
    pub fn detached(&mut self, ctx: &Ctx, name: &str) {
        self.rings.retain(|r| {
            let done = r.name == name
                && r.writer == Writer::Gone
                && !matches!(r.reader, Reader::Manager(_));
            if done {
                ctx.remove_ring(&r.name);
            }
            !done
        });
    }

    /// Read ring `i` ourselves from now on.
    fn take_over(&mut self, ctx: &Ctx, i: usize) {
        let r = &mut self.rings[i];
        if matches!(r.reader, Reader::Manager(_) | Reader::Dropped) {
            return;
        }
        let key = ctx.direct_key((r.peer, r.peer_gen), (ctx.slot, ctx.generation), r.lp_gen);
        if let Ok(c) = Consumer::attach(&r.seg) {
            let link = RxLink::new(c, Opener::new(key), Resync::UntilAuthentic);
            r.reader = Reader::Manager(Box::new(link));
        }
    }

    /// Move the frames of the rings we read (all, or peer `only`'s) to the
    /// LP's queue; `all` ignores the backlog limit. Rings that are empty
    /// and get nothing more are removed.
    pub fn drain(&mut self, only: Option<u32>, all: bool, q: &mut Queue) -> (Drained, Vec<Out>) {
        let mut done = Drained::default();
        let mut out = Vec::new();
        for r in self.rings.iter_mut() {
            if only.is_some_and(|s| s != r.peer) || !r.writer.may_read() {
                continue;
            }
            let Reader::Manager(link) = &mut r.reader else {
                continue;
            };
            let writer = r.peer;
            while all || !backlog::held_back(q.lp, writer) {
                let step = link.next(q.scratch, |mut h, p| {
                    if h.kind != kind::CONTROL {
                        // Stamped again: the key of this ring derives from
                        // our LP's, so what the ring says about its source
                        // proves nothing; its writer is manager `writer`.
                        h.src = writer;
                        q.lp.push(&h, p);
                    }
                });
                match step {
                    Ok(Step::Empty) => break,
                    Ok(Step::Rejected) => done.rejected = true,
                    Ok(Step::Opened { malformed, .. }) => {
                        q.counters.bad_batches += u64::from(malformed);
                    }
                    Err(e) => {
                        eprintln!(
                            "shmcollab: direct ring {} is corrupt ({e}); dropped",
                            r.name
                        );
                        if r.writer != Writer::Gone {
                            out.push(Out::Peer(
                                r.peer,
                                PeerCtl::Revoke {
                                    lp_gen: r.lp_gen,
                                    from_gen: q.ctx.generation,
                                },
                            ));
                        }
                        q.counters.bad_rings += 1;
                        r.writer = Writer::Gone;
                        r.reader = Reader::Dropped;
                        break;
                    }
                }
                done.work = true;
            }
        }
        self.sweep(q.ctx);
        (done, out)
    }

    fn sweep(&mut self, ctx: &Ctx) {
        let mut gone = RxStats::default();
        self.rings.retain(|r| {
            let done = r.done();
            if done {
                if let Some(l) = r.drained_by_us() {
                    gone.add(l.stats());
                }
                ctx.remove_ring(&r.name);
            }
            !done
        });
        self.gone.add(&gone);
    }

    /// We read at least one ring ourselves.
    pub fn draining(&self) -> bool {
        self.rings.iter().any(|r| r.drained_by_us().is_some())
    }

    /// A ring we read has frames.
    pub fn has_input(&self) -> bool {
        let mut ours = self.rings.iter().filter_map(Ring::drained_by_us);
        ours.any(RxLink::has_data)
    }

    /// A ring we read still has a live writer, which rings the LP's
    /// doorbell, not ours: poll it.
    pub fn needs_poll(&self) -> bool {
        let live = |r: &&Ring| !r.writer.finished();
        self.rings
            .iter()
            .filter(live)
            .any(|r| r.drained_by_us().is_some())
    }

    /// What the direct rings we read lost, per writer (`direct/<slot>`);
    /// removed rings under `direct/gone`.
    pub fn link_stats(&self) -> Vec<(String, RxStats)> {
        let mut per: std::collections::BTreeMap<String, RxStats> = Default::default();
        per.insert("direct/gone".into(), self.gone);
        for r in &self.rings {
            if let Some(l) = r.drained_by_us() {
                per.entry(format!("direct/{}", r.peer))
                    .or_default()
                    .add(l.stats());
            }
        }
        per.into_iter().collect()
    }

    /// What the rings we read, and removed ones, rejected.
    pub fn rejects(&self) -> RxStats {
        let mut all = self.gone;
        for l in self.rings.iter().filter_map(Ring::drained_by_us) {
            all.add(l.stats());
        }
        all
    }
}

/// A SWITCH or UNSWITCH from peer `s` (generation `s_gen`) about the ring
/// into our LP of generation `lp_gen`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Switch {
    pub s: u32,
    pub s_gen: u32,
    pub lp_gen: u32,
}

/// Where drained frames go, and what draining needs.
pub(super) struct Queue<'a> {
    pub ctx: &'a Ctx,
    pub lp: &'a mut Outbox,
    pub scratch: &'a mut Vec<u8>,
    pub counters: &'a mut Counters,
}

fn revoke(ctx: &Ctx, peer: u32, lp_gen: u32) -> Out {
    let from_gen = ctx.generation;
    Out::Peer(peer, PeerCtl::Revoke { lp_gen, from_gen })
}

#[cfg(test)]
#[path = "direct_tests.rs"]
mod tests;
