//! The one read loop of a link: peek a frame in place, open it (check its
//! tag and sequence number), release it, unpack its messages. Every reader
//! of a ring (the manager's LP ring, its peers' rings, the direct rings it
//! drains, the reclaim of a dead LP's ring, and the LP's own rings) goes
//! through [`RxLink::next`].

use shmcollab_shm::auth::{Opener, RxStats};
use shmcollab_shm::doorbell::Doorbell;
use shmcollab_shm::frame::FrameHeader;
use shmcollab_shm::ring::{Consumer, RingError};

/// Where the reader starts in the link's stream of sequence numbers. The
/// window is only ever set from a frame that authenticated, never from an
/// unchecked header (a forged head frame cannot push it past the real ones).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resync {
    /// At the start: the frames before the first one that opens are counted
    /// as lost.
    Never,
    /// In the middle (reading a ring another reader released part of): the
    /// first frame that opens sets the window, nothing before it is lost.
    UntilAuthentic,
    /// As `UntilAuthentic` (reclaiming frames this side sealed itself).
    Always,
}

/// What one call to [`RxLink::next`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The ring is empty.
    Empty,
    /// A frame that did not open: counted in the opener's stats, released,
    /// never delivered.
    Rejected,
    /// A frame that opened; its messages went to the callback.
    Opened {
        /// Messages the callback took (it returned true for them).
        taken: usize,
        /// The frame was a batch with a malformed entry (the rest of the
        /// batch was dropped).
        malformed: bool,
        /// The frame is still in the ring (see [`RxLink::next_held`]).
        held: bool,
    },
}

/// The reading end of a link: a consumer and the opener of its key.
pub struct RxLink {
    c: Consumer,
    opener: Opener,
}

impl RxLink {
    /// A link read from its first frame.
    pub fn new(c: Consumer, mut opener: Opener, resync: Resync) -> RxLink {
        if resync != Resync::Never {
            opener.start_mid_stream();
        }
        RxLink { c, opener }
    }

    /// Open frames with `opener` from now on (a new key).
    pub fn set_opener(&mut self, opener: Opener) {
        self.opener = opener;
    }

    /// The next frame's messages go to `f`; the frame is released.
    pub fn next(
        &mut self,
        scratch: &mut Vec<u8>,
        mut f: impl FnMut(FrameHeader, &[u8]),
    ) -> Result<Step, RingError> {
        self.read(scratch, false, |h, p, _| {
            f(h, p);
            true
        })
    }

    /// As [`RxLink::next`], telling `f` whether the message is lone: the
    /// frame is one message (not a batch) and nothing was published after
    /// it when the ring's tail was last read (see
    /// [`shmcollab_shm::ring::ReadFrame::last_known`]). A forwarder writes a
    /// lone message on at once and queues the others, to batch them.
    pub fn next_lone(
        &mut self,
        scratch: &mut Vec<u8>,
        mut f: impl FnMut(FrameHeader, &[u8], bool),
    ) -> Result<Step, RingError> {
        self.read(scratch, false, |h, p, lone| {
            f(h, p, lone);
            true
        })
    }

    /// As [`RxLink::next`], but a frame from which `f` took a message (`f`
    /// returned true) stays in the ring until [`RxLink::release_held`]:
    /// a reader that dies while handling it leaves it for its successor.
    pub fn next_held(
        &mut self,
        scratch: &mut Vec<u8>,
        mut f: impl FnMut(FrameHeader, &[u8]) -> bool,
    ) -> Result<Step, RingError> {
        self.read(scratch, true, |h, p, _| f(h, p))
    }

    /// `f` gets each message and whether it is lone (see
    /// [`RxLink::next_lone`]).
    fn read(
        &mut self,
        scratch: &mut Vec<u8>,
        hold: bool,
        mut f: impl FnMut(FrameHeader, &[u8], bool) -> bool,
    ) -> Result<Step, RingError> {
        let Some(frame) = self.c.peek()? else {
            return Ok(Step::Empty);
        };
        let last = frame.last_known();
        // Copied out of shared memory first: only the copy is checked.
        frame.copy_to(scratch);
        let opened = self.opener.open_copied(scratch);
        let Ok(h) = opened else {
            frame.release();
            return Ok(Step::Rejected);
        };
        let lone = last && h.kind != shmcollab_shm::frame::kind::BATCH;
        let mut taken = 0;
        let ok = super::unpack(&h, scratch, |h, p| taken += usize::from(f(h, p, lone)));
        let held = hold && taken > 0;
        if !held {
            frame.release();
        }
        Ok(Step::Opened {
            taken,
            malformed: !ok,
            held,
        })
    }

    /// Release the frame [`RxLink::next_held`] left in the ring.
    pub fn release_held(&mut self) -> Result<(), RingError> {
        if let Some(f) = self.c.peek()? {
            f.release();
        }
        Ok(())
    }

    /// Put our shared field back if another process changed it (see
    /// [`Consumer::heal`]); true if it had changed.
    pub fn heal(&mut self) -> bool {
        self.c.heal()
    }

    /// Start again on a ring found corrupt ([`RingError`] from
    /// [`RxLink::next`]): what is in it is skipped (see
    /// [`Consumer::reset`]); the ring counts as one malformed frame, and
    /// the frames skipped are counted as lost when the next frame opens.
    /// Returns the bytes skipped.
    pub fn reset_ring(&mut self) -> u64 {
        self.opener.note(shmcollab_shm::auth::Reject::Malformed);
        self.c.reset()
    }

    /// Whether a frame waits.
    pub fn has_data(&self) -> bool {
        self.c.has_data()
    }

    /// Bytes waiting.
    pub fn depth(&self) -> u64 {
        self.c.depth()
    }

    /// What the opener accepted and rejected.
    pub fn stats(&self) -> &RxStats {
        self.opener.stats()
    }

    /// Say that this reader is about to sleep (see [`Consumer::prepare_wait`]).
    pub fn prepare_wait(&mut self) {
        self.c.prepare_wait()
    }

    /// How the writer's side says this reader had best wait (untrusted; see
    /// [`Consumer::wait_hint`]).
    pub fn wait_hint(&self) -> u32 {
        self.c.wait_hint()
    }

    /// The doorbell producers ring after publishing.
    pub fn data_bell(&self) -> &Doorbell {
        self.c.data_bell()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::link::{Outbox, TxLink};
    use shmcollab_shm::auth::{LinkKey, Sealer};
    use shmcollab_shm::frame::kind;
    use shmcollab_shm::ring::{Consumer, Producer};
    use shmcollab_shm::segment::Session;

    struct Fixture {
        _session: Session,
        tx: TxLink,
        rx: RxLink,
    }

    fn fixture(resync: Resync) -> Fixture {
        let name = format!("rxtest-{}-{}", std::process::id(), rand_tag());
        let session = Session::create(&name).unwrap();
        let seg = shmcollab_shm::ring::create_ring(&session, "r", 1 << 14).unwrap();
        let key = LinkKey::from_bytes([7; 16]);
        let tx = TxLink::new(
            Producer::attach(&seg, None).unwrap(),
            Sealer::new(Some(key.clone())),
        );
        let rx = RxLink::new(
            Consumer::attach(&seg).unwrap(),
            Opener::new(Some(key)),
            resync,
        );
        Fixture {
            _session: session,
            tx,
            rx,
        }
    }

    fn rand_tag() -> u64 {
        use std::sync::atomic::{AtomicU64, Ordering};
        static N: AtomicU64 = AtomicU64::new(0);
        N.fetch_add(1, Ordering::Relaxed)
    }

    fn data(dst: u32) -> FrameHeader {
        FrameHeader {
            kind: kind::DATA,
            dst,
            ..Default::default()
        }
    }

    #[test]
    fn batches_and_lone_frames_read_back_in_order() {
        let mut f = fixture(Resync::Never);
        let mut q = Outbox::new();
        for i in 0..5u32 {
            q.push(&data(i), &i.to_le_bytes());
        }
        assert_eq!(f.tx.drain(&mut q).msgs, 5);
        f.tx.write_one(&data(9), b"lone").unwrap();
        f.tx.flush();
        let mut got = Vec::new();
        let mut scratch = Vec::new();
        while let Step::Opened { malformed, .. } =
            f.rx.next(&mut scratch, |h, _| got.push(h.dst)).unwrap()
        {
            assert!(!malformed);
        }
        assert_eq!(got, [0, 1, 2, 3, 4, 9]);
        assert_eq!(f.rx.stats().accepted, 2);
    }

    /// Lone: a frame of one message with nothing published after it; a
    /// batch's messages and a frame with others behind it are not.
    #[test]
    fn only_the_last_single_frame_is_lone() {
        let mut f = fixture(Resync::Never);
        let mut q = Outbox::new();
        for i in 0..3u32 {
            q.push(&data(i), b"m");
        }
        f.tx.drain(&mut q);
        f.tx.write_one(&data(3), b"m").unwrap();
        f.tx.write_one(&data(4), b"m").unwrap();
        f.tx.flush();
        let mut got = Vec::new();
        let mut scratch = Vec::new();
        let mut read = |rx: &mut RxLink, got: &mut Vec<(u32, bool)>| {
            while let Step::Opened { .. } = rx
                .next_lone(&mut scratch, |h, _, lone| got.push((h.dst, lone)))
                .unwrap()
            {}
        };
        read(&mut f.rx, &mut got);
        let want = [(0, false), (1, false), (2, false), (3, false), (4, true)];
        assert_eq!(got, want);
        // A lone batch is still a batch: its messages are not lone.
        for i in 5..7u32 {
            q.push(&data(i), b"m");
        }
        f.tx.drain(&mut q);
        f.tx.flush();
        got.clear();
        read(&mut f.rx, &mut got);
        assert_eq!(got, [(5, false), (6, false)]);
    }

    #[test]
    fn a_held_frame_stays_until_released() {
        let mut f = fixture(Resync::Never);
        f.tx.write_one(&data(1), b"a").unwrap();
        f.tx.flush();
        let mut scratch = Vec::new();
        let step = f.rx.next_held(&mut scratch, |_, _| true).unwrap();
        assert!(matches!(
            step,
            Step::Opened {
                held: true,
                taken: 1,
                ..
            }
        ));
        assert!(f.rx.has_data());
        f.rx.release_held().unwrap();
        assert!(!f.rx.has_data());
        // A frame nothing was taken from is released at once.
        f.tx.write_one(&data(2), b"b").unwrap();
        f.tx.flush();
        let step = f.rx.next_held(&mut scratch, |_, _| false).unwrap();
        assert!(matches!(
            step,
            Step::Opened {
                held: false,
                taken: 0,
                ..
            }
        ));
        assert!(!f.rx.has_data());
    }

    #[test]
    fn resync_picks_up_mid_stream_only_when_asked() {
        // Either way the frame is delivered (the window accepts what is
        // above it); only a reader that starts at the beginning counts the
        // frame another reader took as lost.
        for (resync, lost) in [(Resync::Never, 1), (Resync::UntilAuthentic, 0)] {
            let mut f = fixture(resync);
            let mut scratch = Vec::new();
            f.tx.write_one(&data(1), b"a").unwrap();
            f.tx.write_one(&data(2), b"b").unwrap();
            f.tx.flush();
            // Another reader (a dead LP, say) took the first frame.
            let _ = f.rx.next(&mut scratch, |_, _| {}).unwrap();
            let seg = shmcollab_shm::ring::open_ring(&f._session, "r").unwrap();
            let key = LinkKey::from_bytes([7; 16]);
            let mut late = RxLink::new(
                Consumer::attach(&seg).unwrap(),
                Opener::new(Some(key)),
                resync,
            );
            let mut n = 0;
            let _ = late.next(&mut scratch, |_, _| n += 1).unwrap();
            assert_eq!(n, 1, "{resync:?}");
            assert_eq!(late.stats().lost, lost, "{resync:?}");
        }
    }
}
