//! Tests of writing to peers (`peers.rs`): a lone message written straight
//! into the direct ring into the peer's LP, and everything else still
//! queued behind what waits, batched, never dropped for a full ring.
//! Real rings in a real session; manager 0 writes, the test reads as LP 1.

use super::context::Ctx;
use super::peers::Peers;
use crate::link::{Resync, RxLink, Step};
use crate::manager::testctx;
use crate::wire;
use shmcollab_shm::auth::Opener;
use shmcollab_shm::frame::{kind, FrameHeader};
use shmcollab_shm::ring::{create_ring, Consumer};

const LP_GEN: u32 = 1;

/// Manager 0's peers, writing the direct ring into LP 1 (offered, opened),
/// and LP 1's reading end of it.
struct Fx {
    a: Ctx,
    peers: Peers,
    rx: RxLink,
    /// Keeps the session (and the rings in it) alive.
    _b: Ctx,
}

fn setup() -> Fx {
    let a = testctx::ctx(0, 2);
    let b = testctx::peer_of(&a, 1);
    let mut peers = Peers::default();
    // Slot 1 is one we talk with: looked at, up.
    peers.entry(1);
    peers.discover(&a);
    let cap = a.plan.ring_capacity;
    // LP 1's main ring (its doorbell is the one the writer rings) and the
    // direct ring, as manager 1 makes them.
    create_ring(&b.session, &wire::lp_in_ring(1, b.generation), cap).unwrap();
    let name = wire::direct_ring(0, a.generation, 1, b.generation, LP_GEN);
    let seg = create_ring(&b.session, &name, cap).unwrap();
    peers.on_offer(&a, 1, LP_GEN, b.generation);
    assert!(peers.map[&1].direct.is_some(), "the offer was taken");
    let key = b.direct_key((0, a.generation), (1, b.generation), LP_GEN);
    let rx = RxLink::new(
        Consumer::attach(&seg).unwrap(),
        Opener::new(key),
        Resync::Never,
    );
    Fx {
        a,
        peers,
        rx,
        _b: b,
    }
}

fn h(dst: u32) -> FrameHeader {
    FrameHeader {
        kind: kind::DATA,
        dst,
        ..Default::default()
    }
}

impl Fx {
    /// Messages queued for the direct ring (the SWITCH, queued for the
    /// peer's ring, is not among them).
    fn waiting(&self) -> usize {
        self.peers.map[&1].direct_pending.len()
    }

    /// Every message in the direct ring (its dst), and the frames.
    fn read(&mut self) -> (Vec<u32>, usize) {
        let (mut got, mut frames) = (Vec::new(), 0);
        let mut scratch = Vec::new();
        loop {
            match self.rx.next(&mut scratch, |h, _| got.push(h.dst)).unwrap() {
                Step::Empty => break,
                Step::Opened { .. } => frames += 1,
                Step::Rejected => panic!("a frame did not open"),
            }
        }
        (got, frames)
    }
}

#[test]
fn a_lone_message_is_published_at_once_and_one_behind_queued_ones_waits() {
    let mut fx = setup();
    assert!(fx.peers.send_lone(1, &h(0), b"lone"));
    assert_eq!(fx.waiting(), 0);
    assert_eq!(fx.read(), (vec![0], 1), "in the ring, without a pump");
    // Two queued (a pump's frames in a stream), then a lone one: it goes
    // behind them, all three in one batch at the pump.
    assert!(fx.peers.send(1, &h(1), b"m"));
    assert!(fx.peers.send(1, &h(2), b"m"));
    assert!(fx.peers.send_lone(1, &h(3), b"m"));
    assert_eq!(fx.read(), (vec![], 0), "order: the queued ones go first");
    fx.peers.pump_linked(&fx.a);
    assert_eq!(fx.read(), (vec![1, 2, 3], 1));
    assert!(fx.peers.send_lone(1, &h(4), b"again"));
    assert_eq!(fx.read(), (vec![4], 1));
    assert_eq!(fx.rx.stats().rejected(), 0);
    assert_eq!(fx.rx.stats().lost, 0);
}

#[test]
fn a_lone_message_for_a_full_ring_is_queued_in_order_never_dropped() {
    let mut fx = setup();
    let payload = [7u8; 200];
    let mut sent = 0;
    // Until one found the ring full, and a few more behind it.
    let mut after_full = 0;
    while after_full < 5 {
        assert!(fx.peers.send_lone(1, &h(sent), &payload));
        sent += 1;
        if fx.waiting() > 0 {
            after_full += 1;
        }
        assert!(sent < 1000, "the ring never filled");
    }
    assert_eq!(fx.waiting(), 5, "queued from the first that did not fit");
    let (mut got, _) = fx.read();
    // The reader made room: the queue goes out at the pump.
    fx.peers.pump_linked(&fx.a);
    got.extend(fx.read().0);
    assert_eq!(got, (0..sent).collect::<Vec<_>>(), "all of them, in order");
    assert_eq!(fx.waiting(), 0);
    assert_eq!(fx.rx.stats().rejected(), 0);
}

#[test]
fn a_lone_message_that_can_never_fit_is_dropped_not_queued() {
    let mut fx = setup();
    let huge = vec![0u8; fx.a.plan.ring_capacity];
    assert!(
        !fx.peers.send_lone(1, &h(0), &huge),
        "dropped: the caller counts it"
    );
    assert_eq!(fx.waiting(), 0);
    assert!(fx.peers.send_lone(1, &h(1), b"next"));
    assert_eq!(fx.read(), (vec![1], 1));
}
