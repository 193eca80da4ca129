//! Tests of the direct rings into our LP (`direct.rs`).

use super::*;
use crate::link::TxLink;
use crate::manager::testctx;
use shmcollab_shm::auth::Sealer;
use shmcollab_shm::frame::FrameHeader;
use shmcollab_shm::ring::{open_ring, Producer};

const LP_GEN: u32 = 1;

/// We are slot 1; manager 0 writes into the direct ring into our LP.
struct Fx {
    ctx: Ctx,
    direct: DirectIn,
    queue: Outbox,
    scratch: Vec<u8>,
    counters: Counters,
    writer: TxLink,
    name: String,
    peer_gen: u32,
}

fn setup() -> Fx {
    let ctx = testctx::ctx(1, 2);
    let peer_gen = ctx.registry.slot(0).unwrap().generation;
    let mut direct = DirectIn::default();
    let outs = direct.offer(&ctx, 0, peer_gen, LP_GEN);
    let from_gen = ctx.generation;
    assert_eq!(
        outs,
        [Out::Peer(
            0,
            PeerCtl::Offer {
                lp_gen: LP_GEN,
                from_gen
            }
        )]
    );
    // Offered once per peer generation and LP generation.
    assert!(direct.offer(&ctx, 0, peer_gen, LP_GEN).is_empty());
    let name = wire::direct_ring(0, peer_gen, 1, ctx.generation, LP_GEN);
    let key = ctx.direct_key((0, peer_gen), (1, ctx.generation), LP_GEN);
    let seg = open_ring(&ctx.session, &name).unwrap();
    let writer = TxLink::new(Producer::attach(&seg, None).unwrap(), Sealer::new(key));
    Fx {
        ctx,
        direct,
        queue: Outbox::new(),
        scratch: Vec::new(),
        counters: Counters::default(),
        writer,
        name,
        peer_gen,
    }
}

macro_rules! q {
    ($fx:expr) => {
        &mut Queue {
            ctx: &$fx.ctx,
            lp: &mut $fx.queue,
            scratch: &mut $fx.scratch,
            counters: &mut $fx.counters,
        }
    };
}

impl Fx {
    fn write(&mut self, dsts: std::ops::Range<u32>) {
        for dst in dsts {
            let h = FrameHeader {
                kind: kind::DATA,
                dst,
                ..Default::default()
            };
            assert!(self.writer.write_one(&h, b"m").unwrap());
        }
        self.writer.flush();
    }

    fn switch(&self) -> Switch {
        Switch {
            s: 0,
            s_gen: self.peer_gen,
            lp_gen: LP_GEN,
        }
    }

    fn queued(&self) -> Vec<u32> {
        let mut v = Vec::new();
        self.queue.for_each(|h, _| v.push(h.dst));
        v
    }

    fn exists(&self) -> bool {
        self.ctx.session.segment_path(&self.name).exists()
    }
}

#[test]
fn the_lp_is_told_to_read_the_ring_only_at_the_switch() {
    let mut fx = setup();
    fx.write(0..3);
    let (d, outs) = fx.direct.drain(None, true, q!(fx));
    assert!(!d.work && outs.is_empty() && fx.queue.is_empty());
    let sw = fx.switch();
    let outs = fx.direct.on_switch(sw, Some(LP_GEN), q!(fx));
    let attach = LpCtl::Attach {
        writer: 0,
        writer_generation: fx.peer_gen,
        ring: fx.name.clone(),
    };
    assert_eq!(outs, [Out::Lp(attach)]);
    // The LP reads it, not us.
    assert!(fx.queue.is_empty() && !fx.direct.draining());
}

#[test]
fn a_dead_lp_s_ring_is_drained_in_order_then_removed_when_its_writer_is_gone() {
    let mut fx = setup();
    fx.write(0..3);
    let sw = fx.switch();
    fx.direct.on_switch(sw, Some(LP_GEN), q!(fx));
    assert!(fx.direct.lp_died(&fx.ctx, LP_GEN, q!(fx)).is_empty());
    assert_eq!(fx.queued(), [0, 1, 2]);
    // The writer still lives: poll it, keep the ring.
    assert!(fx.direct.needs_poll() && fx.exists());
    fx.write(3..4);
    fx.direct.drain(None, false, q!(fx));
    assert_eq!(fx.queued(), [0, 1, 2, 3]);
    assert!(fx.direct.peer_gone(&fx.ctx, 0, None).is_empty());
    fx.direct.drain(None, false, q!(fx));
    assert!(!fx.exists() && !fx.direct.draining());
    assert_eq!(fx.direct.rejects().rejected(), 0);
}

#[test]
fn frames_of_an_lp_dead_before_the_switch_wait_for_the_switch() {
    let mut fx = setup();
    fx.write(0..2);
    fx.direct.lp_died(&fx.ctx, LP_GEN, q!(fx));
    assert!(fx.queue.is_empty(), "read before the writer's SWITCH");
    let sw = fx.switch();
    // No LP runs: nothing to attach; the frames are ours now.
    assert!(fx.direct.on_switch(sw, None, q!(fx)).is_empty());
    assert_eq!(fx.queued(), [0, 1]);
}

#[test]
fn garbage_in_a_ring_we_read_drops_it_and_revokes_it() {
    use std::os::unix::fs::FileExt;
    let mut fx = setup();
    let sw = fx.switch();
    fx.direct.on_switch(sw, Some(LP_GEN), q!(fx));
    fx.direct.lp_died(&fx.ctx, LP_GEN, q!(fx));
    // The ring's tail index (segment header 128 bytes, then the ring's
    // control block, tail at 256): past the head by less than a record.
    let path = fx.ctx.session.segment_path(&fx.name);
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.write_all_at(&3u64.to_le_bytes(), 128 + 256).unwrap();
    let (_, outs) = fx.direct.drain(None, false, q!(fx));
    let from_gen = fx.ctx.generation;
    let revoke = PeerCtl::Revoke {
        lp_gen: LP_GEN,
        from_gen,
    };
    assert_eq!(outs, [Out::Peer(0, revoke)]);
    assert_eq!(fx.counters.bad_rings, 1);
    assert!(!fx.exists());
}

#[test]
fn an_attached_ring_of_a_gone_writer_is_detached_then_removed() {
    let mut fx = setup();
    let sw = fx.switch();
    fx.direct.on_switch(sw, Some(LP_GEN), q!(fx));
    let outs = fx.direct.peer_gone(&fx.ctx, 0, Some(fx.peer_gen + 1));
    let detach = LpCtl::Detach {
        ring: fx.name.clone(),
    };
    assert_eq!(outs, [Out::Lp(detach)]);
    assert!(fx.exists());
    fx.direct.detached(&fx.ctx, &fx.name);
    assert!(!fx.exists());
}

#[test]
fn a_lost_ring_is_revoked_and_what_is_left_follows_the_unswitch() {
    let mut fx = setup();
    let sw = fx.switch();
    fx.direct.on_switch(sw, Some(LP_GEN), q!(fx));
    let from_gen = fx.ctx.generation;
    let outs = fx.direct.lost(&fx.ctx, &fx.name);
    let revoke = PeerCtl::Revoke {
        lp_gen: LP_GEN,
        from_gen,
    };
    assert_eq!(outs, [Out::Peer(0, revoke)]);
    fx.write(0..2);
    fx.direct.on_unswitch(sw, q!(fx));
    assert_eq!(fx.queued(), [0, 1]);
    // Nothing more will be written: the ring is gone.
    assert!(!fx.exists());
}
