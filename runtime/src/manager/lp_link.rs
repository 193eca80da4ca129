//! The manager's end of its LP's two rings (`lp<slot>.g<gen>.in` and
//! `.out`): the frames the LP sends are opened here, the messages for it
//! (queued by the manager in an [`Outbox`]) are sealed here, each with the
//! key of the current LP generation.

use super::context::Ctx;
use super::lp_proc::LpKeys;
use crate::link::{Drained, Outbox, Resync, RxLink, Step, TxLink};
use crate::wire;
use shmcollab_shm::auth::{Opener, Sealer};
use shmcollab_shm::frame::{kind, FrameHeader};
use shmcollab_shm::ring::{create_ring, heal_ring, Consumer, Producer, RingError};
use shmcollab_shm::segment::Segment;
use shmcollab_shm::LoadMode;

/// What a pump of the LP's ring did.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Pumped {
    /// Frames taken out of the ring.
    pub frames: usize,
    /// Messages in the frames that opened (a batch holds many).
    pub messages: usize,
    /// Frames that did not open.
    pub rejected: usize,
    /// Batches with malformed entries.
    pub malformed: usize,
}

pub(super) struct LpLink {
    in_seg: Segment,
    out_seg: Segment,
    out_name: String,
    tx: TxLink,
    rx: RxLink,
}

impl LpLink {
    /// Create the two rings of this manager generation.
    pub fn create(ctx: &Ctx) -> anyhow::Result<LpLink> {
        let cap = ctx.plan.ring_capacity;
        let in_name = wire::lp_in_ring(ctx.slot, ctx.generation);
        let out_name = wire::lp_out_ring(ctx.slot, ctx.generation);
        let in_seg = create_ring(&ctx.session, &in_name, cap)?;
        let out_seg = create_ring(&ctx.session, &out_name, cap)?;
        let tx = TxLink::new(Producer::attach(&in_seg, None)?, Sealer::new(None));
        let rx = RxLink::new(
            Consumer::attach(&out_seg)?,
            Opener::new(None),
            Resync::Never,
        );
        Ok(LpLink {
            in_seg,
            out_seg,
            out_name,
            tx,
            rx,
        })
    }

    /// Put back what another process overwrote in the two rings we made:
    /// their fixed fields, our own positions. Returns how many fields.
    pub fn heal(&mut self, ctx: &Ctx) -> usize {
        let (cap, id) = (ctx.plan.ring_capacity, ctx.session.id());
        usize::from(heal_ring(&self.in_seg, cap, id))
            + usize::from(heal_ring(&self.out_seg, cap, id))
            + usize::from(self.rx.heal())
            + usize::from(self.tx.heal())
    }

    /// The two ring segments (to the LP, from the LP), to hand the LP
    /// their descriptors.
    pub fn segments(&self) -> (&Segment, &Segment) {
        (&self.in_seg, &self.out_seg)
    }

    /// The doorbell our LP rings after writing to us (its ring's own: the
    /// LP does not map the registry), which we sleep on too.
    pub fn lp_bell(&self) -> &shmcollab_shm::Doorbell {
        self.rx.data_bell()
    }

    /// Use the keys of a new LP generation from now on.
    pub fn rekey(&mut self, keys: &LpKeys) {
        self.tx.set_sealer(Sealer::new(keys.0.clone()));
        self.rx.set_opener(Opener::new(keys.1.clone()));
    }

    /// Take up to `budget` frames out of the LP's ring; `route` gets each
    /// message, its source already stamped with our slot, and whether it is
    /// lone (see [`crate::link::RxLink::next_lone`]: written on at once).
    ///
    /// Garbage in the ring (whatever the LP, or anyone who can write it,
    /// put there) never ends the manager: the ring is reset in place, the
    /// loss counted (one malformed frame for the ring, and the frames it
    /// held as lost by the gap in sequence numbers) and reported; the LP
    /// goes on sending. Never returns an error.
    pub fn pump(
        &mut self,
        slot: u32,
        budget: usize,
        scratch: &mut Vec<u8>,
        mut route: impl FnMut(FrameHeader, &[u8], bool),
    ) -> Result<Pumped, RingError> {
        let mut done = Pumped::default();
        while done.frames < budget {
            // The manager stamps the source: an LP cannot claim to be another.
            let step = self.rx.next_lone(scratch, |mut h, p, lone| {
                h.src = slot;
                route(h, p, lone);
            });
            let step = match step {
                Ok(s) => s,
                Err(e) => {
                    let skipped = self.rx.reset_ring();
                    eprintln!(
                        "shmcollab: ring {} from the LP is corrupt ({e}): reset, {skipped} bytes lost",
                        self.out_name
                    );
                    done.rejected += 1;
                    done.frames += 1;
                    // Once per pump: a ring written with garbage without
                    // end costs a turn each time, not the loop.
                    break;
                }
            };
            match step {
                Step::Empty => break,
                Step::Rejected => done.rejected += 1,
                Step::Opened {
                    malformed, taken, ..
                } => {
                    done.malformed += usize::from(malformed);
                    done.messages += taken;
                }
            }
            done.frames += 1;
        }
        Ok(done)
    }

    /// Write what is queued for the LP (batched), without waiting.
    pub fn flush(&mut self, queue: &mut Outbox) -> Drained {
        let d = if queue.is_empty() {
            Drained::default()
        } else {
            self.tx.drain(queue)
        };
        self.tx.flush();
        d
    }

    /// Tell the LP how to wait: the load mode, in its inbound ring's wait
    /// hint, which it reads at every wait (it maps nothing else of ours).
    pub fn set_wait_hint(&self, mode: LoadMode) {
        self.tx.set_wait_hint(mode.as_u32());
    }

    /// Publish what was written.
    pub fn publish(&mut self) {
        self.tx.flush();
    }

    /// Whether the LP sent something not read yet.
    pub fn has_input(&self) -> bool {
        self.rx.has_data()
    }

    /// The LP died: frames it never took out of its inbound ring go back to
    /// the front of the queue, in order, to be sealed anew for its
    /// successor; control frames were for the dead LP only, and go.
    pub fn reclaim(&mut self, keys: &LpKeys, scratch: &mut Vec<u8>, queue: &mut Outbox) {
        self.tx.flush();
        queue.retain(|h| h.kind != kind::CONTROL);
        let Ok(c) = Consumer::attach(&self.in_seg) else {
            return;
        };
        let mut back = Outbox::new();
        // The dead LP held this key: only frames we sealed come back (the
        // window is taken from an authentic frame, never from a header,
        // and nothing above what we sealed is ours).
        let mut opener = Opener::mid_stream(keys.0.clone());
        opener.set_ceiling(self.tx.next_seq());
        let mut link = RxLink::new(c, opener, Resync::Always);
        loop {
            let step = link.next(scratch, |h, p| {
                if h.kind != kind::CONTROL {
                    back.push(&h, p)
                }
            });
            if !matches!(step, Ok(Step::Opened { .. } | Step::Rejected)) {
                break;
            }
        }
        queue.prepend(back);
    }

    /// What the LP's ring accepted and lost, as `lp`.
    pub fn link_stats(&self) -> (String, shmcollab_shm::auth::RxStats) {
        ("lp".to_owned(), *self.rx.stats())
    }

    /// Counts of what the LP's ring rejected.
    pub fn rx_stats(&self) -> &shmcollab_shm::auth::RxStats {
        self.rx.stats()
    }

    /// Bytes in the two rings: (to the LP, from the LP).
    pub fn depths(&self) -> (u64, u64) {
        (self.tx.depth(), self.rx.depth())
    }
}
