//! Links to the other managers: per peer, the ring it writes to us (made
//! by us when it asks for one; old generations' rings drained to the end),
//! the ring we write to it (made by it), the queue of what waits for room
//! or for that ring, the newest state report for it (the coordinator), and
//! the direct ring into the peer's LP that the peer offered, with its own
//! queue (opening and giving it up: `direct_out.rs`).
//!
//! Discovery (who is up, in which generation) and getting a ring when a
//! pair first talks are in `discovery.rs`.

use super::context::Ctx;
use super::direct_out::DirectOut;
use crate::ctl::PeerCtl;
use crate::link::{Outbox, RxLink, Step, TxLink};
use shmcollab_shm::auth::RxStats;
use shmcollab_shm::frame::FrameHeader;
use shmcollab_shm::ring::SendError;
use shmcollab_shm::segment::Segment;
use std::collections::BTreeMap;

/// Frames read per ring per turn, so that one busy peer cannot starve the
/// others or the LP.
const TURN_BUDGET: usize = 256;

/// A ring a peer writes to us.
pub(super) struct Inbound {
    pub link: RxLink,
    pub name: String,
    /// The ring (we made it: we heal its fixed fields).
    pub seg: shmcollab_shm::segment::Segment,
}

/// One peer manager.
pub(super) struct Peer {
    pub slot: u32,
    pub generation: u32,
    /// Its registry slot is active.
    pub up: bool,
    /// We looked at its registry slot at least once.
    pub seen: bool,
    /// It sent a message to our LP in its current generation (we offer it
    /// a direct ring into our LP then, not before).
    pub talked: bool,
    /// We asked it for a ring to write to it: (its generation, when).
    pub requested: Option<(u32, std::time::Instant)>,
    /// Its LP ended for good: nothing is queued for it any more.
    pub finished: bool,
    /// Frames from the peer.
    pub rx: Option<Inbound>,
    /// Rings of its earlier generations still being read.
    pub draining: Vec<Inbound>,
    /// Frames to the peer.
    pub tx: Option<TxLink>,
    /// Messages waiting for `tx` or for room in it.
    pub pending: Outbox,
    /// The newest state report for the peer (the coordinator), sent ahead
    /// of `pending`; an older one not yet sent is replaced.
    report: Option<(FrameHeader, Vec<u8>)>,
    /// The direct ring into the peer's LP, once offered.
    pub(super) direct: Option<DirectOut>,
    /// Messages for the peer's LP waiting for room in `direct`.
    pub(super) direct_pending: Outbox,
    /// For each generation of the peer we sealed for, the next sequence
    /// number (see `drop_tx`; the few newest generations are kept).
    pub sealed: std::collections::BTreeMap<u32, u64>,
    /// The segment of `tx`, to see whether the file is still ours.
    pub tx_seg: Option<Segment>,
    /// Where the sealer of each direct ring we stopped writing was, by
    /// (peer generation, LP generation): a ring offered again for the same
    /// pair has the same key, and its sealer goes on from there (no nonce
    /// reuse; the few newest are kept).
    pub(super) direct_sealed: BTreeMap<(u32, u32), u64>,
}

impl Peer {
    /// Drop the link to the peer, remembering where its sealer was: a link
    /// made again for the same generation (same key) must not reuse a
    /// sequence number.
    pub fn drop_tx(&mut self) {
        self.tx_seg = None;
        if let Some(tx) = self.tx.take() {
            let next = self.sealed.entry(self.generation).or_default();
            *next = (*next).max(tx.next_seq());
            // Generations only grow; garbage in the registry may show many
            // for a moment: keep the newest few.
            while self.sealed.len() > 16 {
                self.sealed.pop_first();
            }
        }
    }

    fn new(slot: u32) -> Peer {
        Peer {
            slot,
            generation: 0,
            up: false,
            seen: false,
            talked: false,
            requested: None,
            finished: false,
            rx: None,
            draining: Vec::new(),
            tx: None,
            pending: Outbox::new(),
            report: None,
            direct: None,
            direct_pending: Outbox::new(),
            sealed: std::collections::BTreeMap::new(),
            tx_seg: None,
            direct_sealed: BTreeMap::new(),
        }
    }

    /// Write what waits, without waiting; returns (work, dropped). A ring
    /// found corrupt keeps what waits for it (it is repaired by its reader
    /// or reset); the direct ring is given up for the 6-hop way, behind an
    /// UNSWITCH, as if its reader had revoked it.
    fn pump_out(&mut self, ctx: &Ctx) -> (bool, u64) {
        let mut work = false;
        let mut dropped = 0u64;
        if let Some(tx) = self.tx.as_mut() {
            if let Some((h, r)) = self.report.take() {
                match tx.write_one(&h, &r) {
                    Ok(true) => work = true,
                    Ok(false) | Err(SendError::Corrupt(_)) => self.report = Some((h, r)),
                    Err(_) => dropped += 1,
                }
            }
            let d = tx.drain(&mut self.pending);
            dropped += d.dropped as u64;
            work |= d.any();
            tx.flush();
        }
        let mut give_up = None;
        if let Some(out) = self.direct.as_mut() {
            if !self.direct_pending.is_empty() {
                let d = out.link.drain(&mut self.direct_pending);
                dropped += d.dropped as u64;
                work |= d.any();
                out.link.flush();
                if d.corrupt {
                    give_up = Some(out.lp_gen);
                }
            }
        }
        if let Some(lp_gen) = give_up {
            eprintln!(
                "shmcollab: the direct ring into slot {}'s LP is corrupt: back to the 6-hop way",
                self.slot
            );
            let m = PeerCtl::Unswitch {
                lp_gen,
                from_gen: ctx.generation,
            };
            self.pending.push(&super::ctl_header(ctx.slot), &m.encode());
            self.unsplit_direct();
            work = true;
        }
        (work, dropped)
    }

    /// Seal a message straight into the ring it goes to (the direct ring
    /// into the peer's LP if it offered one, else the peer's ring) and
    /// publish it, if nothing waits for that ring (order per pair: what
    /// waits goes first). `Some(true)`: written; `Some(false)`: it can never
    /// be (too large; dropped, as the drain would); `None`: nothing written,
    /// queue it (no ring yet, something waits, the ring is full or
    /// corrupt: the pump deals with those as with any queued message).
    fn write_now(&mut self, h: &FrameHeader, payload: &[u8]) -> Option<bool> {
        let link = match self.direct.as_mut() {
            Some(_) if !self.direct_pending.is_empty() => return None,
            Some(d) => &mut d.link,
            None if !self.pending.is_empty() || self.report.is_some() => return None,
            None => self.tx.as_mut()?,
        };
        match link.write_one(h, payload) {
            Ok(true) => {
                link.flush();
                Some(true)
            }
            Ok(false) | Err(SendError::Corrupt(_)) => None,
            Err(_) => Some(false),
        }
    }

    /// The peer's LP ended for good: what waits for it (its state report
    /// too) is dropped; the number of messages dropped.
    pub fn finish(&mut self) -> usize {
        self.finished = true;
        self.report = None;
        std::mem::replace(&mut self.pending, Outbox::new()).len()
    }

    /// Something is queued for the peer's manager (a state report
    /// included): it needs a ring to it.
    pub fn wants_tx(&self) -> bool {
        !self.pending.is_empty() || self.report.is_some()
    }

    /// Something is queued (a state report included) and has a ring to go
    /// to.
    fn blocked(&self) -> bool {
        (!self.pending.is_empty() || self.report.is_some()) && self.tx.is_some()
            || !self.direct_pending.is_empty() && self.direct.is_some()
    }

    fn inbound(&self) -> impl Iterator<Item = &Inbound> {
        self.draining.iter().chain(self.rx.iter())
    }
}

/// Where the messages read from peers go.
pub(super) trait Sink {
    /// No room for more now (back-pressure on the peers' rings).
    fn full(&self, from: u32) -> bool;
    /// A message from peer `from` (its source stamped).
    fn take(&mut self, from: u32, h: FrameHeader, p: &[u8]);
}

/// What reading the peers' rings did.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Read {
    pub work: bool,
    pub rejected: usize,
    pub malformed: usize,
    pub corrupt: usize,
}

/// Every peer, by slot.
#[derive(Default)]
pub(super) struct Peers {
    pub(super) map: BTreeMap<u32, Peer>,
    /// The registry's change counter when we last looked.
    pub(super) changes_seen: Option<u32>,
    /// Our slot's counter of rings made for us, when we last looked.
    pub(super) made_seen: u32,
    /// The counter moved since `discover` last returned.
    pub(super) looked: bool,
    /// Changes found since `discover` last returned (also while connecting).
    pub(super) found: super::discovery::Discovered,
    /// The peer the newest state report went to (or waits for).
    report_to: Option<u32>,
}

impl Peers {
    pub(super) fn entry(&mut self, s: u32) -> &mut Peer {
        self.map.entry(s).or_insert_with(|| Peer::new(s))
    }

    /// Queue a message for peer `s` (its LP's direct ring if it offered
    /// one); false if the peer's LP ended for good (dropped).
    pub fn send(&mut self, s: u32, h: &FrameHeader, payload: &[u8]) -> bool {
        let peer = self.entry(s);
        if peer.finished {
            return false;
        }
        if peer.direct.is_some() {
            peer.direct_pending.push(h, payload);
        } else {
            peer.pending.push(h, payload);
        }
        true
    }

    /// As [`Peers::send`], for a lone message (nothing known to follow it
    /// from its source, see [`crate::link::RxLink::next_lone`]): written
    /// and published at once when nothing waits for its ring before it,
    /// instead of queued and written at the end of the pump. Back to back,
    /// the outbox (the push, the drain up to the reserve) was 130-150 ns of
    /// each manager hop (benches/hops.md, "lat10"). A message that does not
    /// fit now is queued as by [`Peers::send`]; false if the peer's LP
    /// ended for good or the message can never be written (dropped).
    pub fn send_lone(&mut self, s: u32, h: &FrameHeader, payload: &[u8]) -> bool {
        let peer = self.entry(s);
        if peer.finished {
            return false;
        }
        match peer.write_now(h, payload) {
            Some(written) => written,
            None => self.send(s, h, payload),
        }
    }

    /// Queue a frame for peer manager `s` itself (its transaction server),
    /// on its ring: the direct ring goes to its LP.
    pub fn send_to_manager(&mut self, s: u32, h: &FrameHeader, payload: &[u8]) -> bool {
        let peer = self.entry(s);
        if peer.finished {
            return false;
        }
        peer.pending.push(h, payload);
        true
    }

    /// Queue a control message for peer `s`, on its ring (never direct).
    pub fn tell(&mut self, ctx: &Ctx, s: u32, m: PeerCtl) {
        if let Some(peer) = self.map.get_mut(&s) {
            peer.pending.push(&super::ctl_header(ctx.slot), &m.encode());
        }
    }

    /// The newest state report for peer `s`, replacing one not sent yet,
    /// to `s` or to an earlier coordinator: one holder at a time, and a
    /// report kept for a holder that left would keep asking for a ring to
    /// it.
    pub fn set_report(&mut self, s: u32, h: FrameHeader, bytes: Vec<u8>) {
        if let Some(old) = self.report_to.replace(s).filter(|&o| o != s) {
            if let Some(p) = self.map.get_mut(&old) {
                p.report = None;
            }
        }
        self.entry(s).report = Some((h, bytes));
    }

    /// Whether slot `s`'s LP ended for good.
    pub fn finished(&self, s: u32) -> bool {
        self.map.get(&s).is_some_and(|p| p.finished)
    }

    /// Slots of the peers that are up, not finished, and sent our LP a
    /// message in their current generation.
    pub fn talkers(&self) -> Vec<u32> {
        let live = self
            .map
            .values()
            .filter(|p| p.up && !p.finished && p.talked);
        live.map(|p| p.slot).collect()
    }

    /// Peer `s` sent our LP a message: true the first time in its
    /// generation (offer it a direct ring then).
    pub fn talked(&mut self, s: u32) -> bool {
        match self.map.get_mut(&s) {
            Some(p) if p.up && !p.finished && !p.talked => {
                p.talked = true;
                true
            }
            _ => false,
        }
    }

    /// Ring the doorbells of the peers we have links with (we leave, or
    /// our coordinator role moved).
    pub fn ring_known(&self, ctx: &Ctx) {
        for &s in self.map.keys() {
            Ctx::wake(&ctx.registry, s);
        }
    }

    /// Payload bytes queued towards peers: the most for one peer, and all.
    pub fn backlog(&self) -> (usize, usize) {
        let each = self.map.values();
        let each = each.map(|p| p.pending.payload_bytes() + p.direct_pending.payload_bytes());
        each.fold((0, 0), |(most, all), b| (most.max(b), all + b))
    }

    /// Nothing waits to be written to any peer (a state report included).
    pub fn idle(&self) -> bool {
        self.queued() == 0 && self.map.values().all(|p| p.report.is_none())
    }

    /// Messages queued towards peers.
    pub fn queued(&self) -> usize {
        let n = self.map.values();
        n.map(|p| p.pending.len() + p.direct_pending.len()).sum()
    }

    /// Put back what another process overwrote in the peer rings: the
    /// fixed fields of those we made, our own positions in every one we
    /// read or write (the direct rings we write into peers' LPs too).
    /// Returns how many fields.
    pub fn heal(&mut self, ctx: &Ctx) -> usize {
        let (cap, id) = (ctx.plan.ring_capacity, ctx.session.id());
        let mut n = 0;
        for p in self.map.values_mut() {
            if let Some(rx) = p.rx.as_mut() {
                n += usize::from(shmcollab_shm::ring::heal_ring(&rx.seg, cap, id));
                n += usize::from(rx.link.heal());
            }
            if let Some(tx) = p.tx.as_mut() {
                n += usize::from(tx.heal());
            }
            // The direct ring into the peer's LP: our tail (the LP, its
            // reader, repairs its head when it looks).
            if let Some(d) = p.direct.as_mut() {
                n += usize::from(d.link.heal());
            }
        }
        n
    }

    /// Write what waits for every peer (asking for the rings missing
    /// first); returns (work, dropped).
    pub fn pump_out(&mut self, ctx: &Ctx) -> (bool, u64) {
        self.connect(ctx);
        self.pump_linked(ctx)
    }

    /// [`Peers::pump_out`] without opening rings first (the fast path).
    pub fn pump_linked(&mut self, ctx: &Ctx) -> (bool, u64) {
        let mut work = false;
        let mut dropped = 0;
        for peer in self.map.values_mut() {
            let (w, d) = peer.pump_out(ctx);
            work |= w;
            dropped += d;
        }
        (work, dropped)
    }

    /// Read every peer's rings into `sink`, up to [`TURN_BUDGET`] frames a
    /// ring. A ring with garbage in it is reset in place (its loss counted
    /// and reported, see [`RxLink::reset_ring`]); the peer keeps writing to
    /// it. (It used to be removed and never made again: the peer filled it
    /// and stalled.)
    pub fn pump_in(&mut self, ctx: &Ctx, scratch: &mut Vec<u8>, sink: &mut impl Sink) -> Read {
        let mut read = Read::default();
        for (&s, peer) in self.map.iter_mut() {
            for ring in peer.draining.iter_mut().chain(peer.rx.iter_mut()) {
                for _ in 0..TURN_BUDGET {
                    if sink.full(s) {
                        break;
                    }
                    // Stamped by the link: frames on this ring come from `s`.
                    let step = ring.link.next(scratch, |mut h, p| {
                        h.src = s;
                        sink.take(s, h, p)
                    });
                    match step {
                        Ok(Step::Empty) => break,
                        Ok(Step::Rejected) => read.rejected += 1,
                        Ok(Step::Opened { malformed, .. }) => {
                            read.malformed += usize::from(malformed)
                        }
                        Err(e) => {
                            let skipped = ring.link.reset_ring();
                            eprintln!(
                                "shmcollab: ring {} from slot {s} is corrupt ({e}): reset, {skipped} bytes lost",
                                ring.name
                            );
                            read.corrupt += 1;
                            read.work = true;
                            break;
                        }
                    }
                    read.work = true;
                }
            }
            // Finished draining old generations: remove their rings.
            peer.draining.retain(|r| {
                let keep = r.link.has_data();
                if !keep {
                    ctx.remove_ring(&r.name);
                }
                keep
            });
        }
        read
    }

    /// A ring of a peer for which `open` holds has frames to read.
    pub fn has_input(&self, open: impl Fn(u32) -> bool) -> bool {
        let mut rings = self.map.iter().filter(|(&s, _)| open(s));
        rings.any(|(_, p)| p.inbound().any(|r| r.link.has_data()))
    }

    /// Something waits for room in a ring (whose reader frees space
    /// without ringing us).
    pub fn blocked(&self) -> bool {
        self.map.values().any(Peer::blocked)
    }

    /// The live peers (or ones not looked at yet) something waits for: for
    /// room in their ring, or for the ring itself (rings are made when a
    /// pair first talks: the last words of an LP that ends may be the first
    /// to a peer); with how many messages wait for each.
    pub fn unsent(&self) -> Vec<(u32, usize)> {
        let waits = |p: &Peer| p.tx.is_none() && p.wants_tx() && !p.finished;
        let some = |p: &&Peer| (p.up && p.blocked()) || ((p.up || !p.seen) && waits(p));
        let n = |p: &Peer| p.pending.len() + p.direct_pending.len();
        self.map
            .values()
            .filter(some)
            .map(|p| (p.slot, n(p)))
            .collect()
    }

    /// Rejected frames on every peer ring.
    pub fn rejects(&self) -> RxStats {
        let mut all = RxStats::default();
        for r in self.map.values().flat_map(Peer::inbound) {
            all.add(r.link.stats());
        }
        all
    }

    /// What each peer's rings (current and draining) accepted and lost,
    /// as `peer/<slot>`.
    pub fn link_stats(&self) -> Vec<(String, RxStats)> {
        let per_peer = self.map.values().map(|p| {
            let mut all = RxStats::default();
            for r in p.inbound() {
                all.add(r.link.stats());
            }
            (format!("peer/{}", p.slot), all)
        });
        per_peer.collect()
    }

    /// Rings we write whose files were replaced (a reader made its ring
    /// again after garbage in the registry made a healthy peer look gone
    /// and back, or another process unlinked it): what we wrote there
    /// nobody reads. A peer ring is opened again by name (its sealer goes
    /// on from its sequence); a direct ring is given up for the 6-hop way
    /// (until its reader offers one again; its sealer goes on from its
    /// sequence too). Returns how many were replaced.
    pub fn heal_replaced(&mut self, ctx: &Ctx) -> usize {
        let mut n = 0;
        for peer in self.map.values_mut() {
            if peer.tx_seg.as_ref().is_some_and(Segment::replaced) {
                peer.drop_tx();
                n += 1;
            }
            if peer.direct.as_ref().is_some_and(|d| d.seg.replaced()) {
                peer.give_up_direct(ctx);
                n += 1;
            }
        }
        if n > 0 {
            self.connect(ctx);
        }
        n
    }
}
