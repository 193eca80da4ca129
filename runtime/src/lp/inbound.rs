//! An LP's inbound side: its main ring from its manager and the direct
//! rings other managers write straight into it (frames sealed with keys
//! derived from its own inbound link key), read through the one read loop
//! ([`RxLink`]) into the inbox. The main ring goes first: its control
//! frames (ATTACH, DETACH) say when a direct ring may be read.
//!
//! The last frame a message came from is released only when the next one
//! is asked for: if the LP dies while handling a message, its manager
//! delivers that message again to the restarted LP (at least once).

use super::{Lp, LpError, Message};
use crate::ctl::LpCtl;
use crate::link::{Resync, RxLink, Step, Wait};
use crate::wire::{self, DirectStats};
use shmcollab_shm::auth::{LinkKey, Opener, RxStats};
use shmcollab_shm::frame::{kind, FrameHeader};
use shmcollab_shm::ring::{open_ring_fd, Consumer};
use shmcollab_shm::{handover, Doorbell, LoadMode};
use std::time::{Duration, Instant};

/// How often at most an LP tells its manager what it took from direct rings.
const STATS_EVERY: Duration = Duration::from_millis(100);

/// Which ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RingRef {
    /// The ring from our manager.
    Main,
    /// Direct ring `i` of [`Inbound::direct`].
    Direct(usize),
}

/// A direct ring.
struct DirectRx {
    link: RxLink,
    name: String,
    /// Its producer is gone: drop it once empty.
    closing: bool,
}

/// The LP's inbound rings and what it counts on them.
pub(super) struct Inbound {
    main: RxLink,
    /// The key of the main ring, from which direct rings' keys derive.
    key: Option<LinkKey>,
    direct: Vec<DirectRx>,
    /// Where the next search of the direct rings starts (fairness).
    next_direct: usize,
    /// The ring whose head frame is still held (see the module doc).
    unreleased: Option<RingRef>,
    /// Messages and bytes taken from direct rings, and what removed rings
    /// rejected: reported to the manager, which cannot see them.
    taken: DirectStats,
    gone: RxStats,
    /// What the manager was told last, and when.
    told: DirectStats,
    told_at: Instant,
}

/// What the direct rings' counts call for (see [`Lp::send_stats`]).
enum Tell {
    /// Our manager has them.
    Nothing,
    /// Something to tell, but we told recently.
    Later,
    /// These, now.
    Now(DirectStats),
}

/// What reading one frame did.
enum Took {
    /// The ring was empty.
    Empty,
    /// A frame without messages for the inbox (rejected, control only).
    Nothing,
    /// Messages went into the inbox.
    Messages,
}

impl Inbound {
    pub fn new(main: RxLink, key: Option<LinkKey>) -> Inbound {
        Inbound {
            main,
            key,
            direct: Vec::new(),
            next_direct: 0,
            unreleased: None,
            taken: DirectStats::default(),
            gone: RxStats::default(),
            told: DirectStats::default(),
            told_at: Instant::now(),
        }
    }

    /// Frames rejected on every inbound ring.
    pub fn rejected(&self) -> u64 {
        let d = self.direct_rejects().rejected();
        self.main.stats().rejected().saturating_add(d)
    }

    /// Frames lost on the way to this LP on every inbound ring: rejected,
    /// skipped by a gap, or in a ring reset after garbage.
    pub fn lost(&self) -> u64 {
        let d = self.direct_rejects().lost_total();
        self.main.stats().lost_total().saturating_add(d)
    }

    /// What the direct rings rejected, removed ones included.
    fn direct_rejects(&self) -> RxStats {
        let mut all = self.gone;
        for d in &self.direct {
            all.add(d.link.stats());
        }
        all
    }

    fn link(&mut self, r: RingRef) -> Option<&mut RxLink> {
        match r {
            RingRef::Main => Some(&mut self.main),
            RingRef::Direct(i) => self.direct.get_mut(i).map(|d| &mut d.link),
        }
    }
}

impl Lp {
    /// Read the next frame's messages onto the back of the inbox, waiting
    /// until `deadline` (`None`: for ever); false if nothing came. One clock
    /// read per wait: a requester runs this between its request and its
    /// sleep, on the round trip's path.
    pub(super) fn fill_inbox(&mut self, deadline: Option<Instant>) -> Result<bool, LpError> {
        if !self.out.is_empty() {
            self.flush()?;
        }
        self.release_held();
        loop {
            match self.take_next()? {
                Took::Messages => return Ok(true),
                Took::Nothing => continue,
                Took::Empty => {}
            }
            // Every ring is empty and nothing is held.
            self.drop_closed_direct();
            let now = Instant::now();
            let mut left = match deadline {
                Some(d) if now >= d => {
                    self.send_stats(true, now);
                    return Ok(false);
                }
                Some(d) => Some(d - now),
                None => None,
            };
            if !self.send_stats(false, now) {
                // Counts to report but reported recently: wake up in time.
                left = Some(left.map_or(STATS_EVERY, |l| l.min(STATS_EVERY)));
            }
            self.wait_input(left, now);
        }
    }

    /// Release the frame the last message came from (see the module doc).
    fn release_held(&mut self) {
        if let Some(r) = self.rx.unreleased.take() {
            if let Some(l) = self.rx.link(r) {
                if l.release_held().is_err() {
                    // Garbage since the frame was read: start again (lost
                    // frames are counted, see `take_from`).
                    l.reset_ring();
                }
            }
        }
    }

    /// While compact, send a request and sleep for its reply in one go
    /// ([`Doorbell::publish_then_wait`]): what [`Lp::fill_inbox`] does
    /// before it sleeps (release the frame held, drop closed direct rings,
    /// tell the direct rings' counts when due) is done before the request
    /// leaves, so that once it has woken our manager (which on the one CPU
    /// often takes the CPU at once) only the sleep is left. The reply is
    /// then taken by `fill_inbox`. Returns when the request had left
    /// (the reply's deadline counts from there); `None`, with nothing
    /// sent, where this does not apply: not compact, or messages buffered
    /// before it.
    pub(super) fn send_then_wait(
        &mut self,
        hdr: FrameHeader,
        payload: &[u8],
        timeout: Duration,
    ) -> Result<Option<Instant>, LpError> {
        let mode = LoadMode::from_u32(self.rx.main.wait_hint());
        if mode != LoadMode::Compact
            || !self.out.is_empty()
            || payload.len() > self.tx.max_payload()
        {
            return Ok(None);
        }
        self.release_held();
        self.drop_closed_direct();
        let waited = Instant::now();
        let left = match self.stats_to_tell(false, waited) {
            Tell::Nothing => timeout,
            // Counts to report but reported recently: wake up in time.
            Tell::Later => timeout.min(STATS_EVERY),
            // Due: the usual way, which tells them after the request. Told
            // before it, they woke our manager for a turn of their own
            // first (every 100 ms: paced at 1 ms, p99 70 -> 100-160 µs).
            Tell::Now(_) => return Ok(None),
        };
        self.rx.main.prepare_wait();
        for d in &mut self.rx.direct {
            d.link.prepare_wait();
        }
        shmcollab_shm::load::follow(mode);
        let (tx, rx) = (&mut self.tx, &self.rx);
        let sent = Doorbell::publish_then_wait(
            &[rx.main.data_bell()],
            mode.strategy(),
            Some(left),
            // No hand-over after this wake-up (see `Lp::request`).
            || {
                handover::without_wake_hand_over(|| tx.send(hdr, payload, Wait::For(timeout)))
                    .map(|()| Instant::now())
            },
            || (rx.main.has_data() || rx.direct.iter().any(|d| d.link.has_data())).then_some(()),
        );
        // As in `wait_input` (the send's own time included: a µs or so).
        self.view
            .add_wait(waited.elapsed() + handover::take_yielded());
        let (left_at, _) = sent.map_err(super::send_error)?;
        Ok(Some(left_at))
    }

    /// One frame from the ring whose turn it is: a closing direct ring
    /// first (its writer's manager is gone, and the frames it left come
    /// before anything its successor sends, which arrives behind the
    /// DETACH on the main ring), then the main ring, then the direct
    /// rings in turn.
    fn take_next(&mut self) -> Result<Took, LpError> {
        let rx = &self.rx;
        if let Some(i) = rx
            .direct
            .iter()
            .position(|d| d.closing && d.link.has_data())
        {
            let took = self.take_from(RingRef::Direct(i))?;
            if !matches!(took, Took::Empty) {
                return Ok(took);
            }
        }
        let took = self.take_from(RingRef::Main)?;
        if !matches!(took, Took::Empty) {
            return Ok(took);
        }
        let n = self.rx.direct.len();
        for k in 0..n {
            let i = (self.rx.next_direct + k) % n;
            let took = self.take_from(RingRef::Direct(i))?;
            if matches!(took, Took::Empty) {
                continue;
            }
            self.rx.next_direct = (i + 1) % n;
            // Under steady load the rings are never all empty: tell the
            // manager now and then anyway.
            if matches!(took, Took::Messages) && self.rx.taken.msgs.is_multiple_of(256) {
                self.send_stats(false, Instant::now());
            }
            return Ok(took);
        }
        Ok(Took::Empty)
    }

    /// Sleep until a ring has a frame, or `left` passed (from `waited`, now).
    fn wait_input(&mut self, left: Option<Duration>, waited: Instant) {
        self.rx.main.prepare_wait();
        for d in &mut self.rx.direct {
            d.link.prepare_wait();
        }
        let rx = &self.rx;
        // How to wait is the collaboration's load mode, which our manager
        // copies into our inbound ring: sleep at once while it is light.
        let mode = LoadMode::from_u32(rx.main.wait_hint());
        // While compact, a wake-up we make hands the CPU over
        // (`shmcollab_shm::load::follow`; a request does not, for its own).
        shmcollab_shm::load::follow(mode);
        let strategy = mode.strategy();
        rx.main.data_bell().wait_until(strategy, left, || {
            (rx.main.has_data() || rx.direct.iter().any(|d| d.link.has_data())).then_some(())
        });
        // For the supervisor's placement: time spent waiting is not work,
        // nor is time spent handing the CPU over after a publish.
        self.view
            .add_wait(waited.elapsed() + shmcollab_shm::handover::take_yielded());
    }

    /// Take the next frame of ring `r` into the inbox.
    fn take_from(&mut self, r: RingRef) -> Result<Took, LpError> {
        let plan = &self.plan;
        let inbox = &mut self.inbox;
        let txn_replies = &mut self.txn_replies;
        let spares = &mut self.spares;
        let mut ctls = Vec::new();
        let mut taken = DirectStats::default();
        let Some(link) = self.rx.link(r) else {
            return Ok(Took::Empty);
        };
        let step = link.next_held(&mut self.scratch, |h, p| {
            if h.kind == kind::CONTROL {
                // Only the manager's own ring carries control.
                if r == RingRef::Main {
                    ctls.push(LpCtl::decode(p));
                }
                return false;
            }
            if h.kind == kind::TXN_REPLY {
                txn_replies.insert(h.aux, p.to_vec());
                return true;
            }
            let Some(m) = Message::from_frame(plan, spares, &h, p) else {
                return false;
            };
            taken.msgs += 1;
            taken.bytes += m.payload.len() as u64;
            inbox.push_back(m);
            true
        });
        let step = match (step, r) {
            (Ok(s), _) => s,
            (Err(e), RingRef::Main) => {
                // Garbage in the ring from our manager: reset it in place,
                // count the loss (the ring as one malformed frame, the frames
                // in it by the gap at the next frame), and go on.
                let skipped = self.rx.main.reset_ring();
                eprintln!("shmcollab: the ring from the manager is corrupt ({e}): reset, {skipped} bytes lost");
                return Ok(Took::Nothing);
            }
            (Err(_), RingRef::Direct(i)) => {
                self.lose_direct(i);
                return Ok(Took::Nothing);
            }
        };
        for c in ctls.into_iter().flatten() {
            self.control(c);
        }
        if matches!(r, RingRef::Direct(_)) {
            self.rx.taken.add(&taken);
        }
        Ok(match step {
            Step::Empty => Took::Empty,
            Step::Opened { held: true, .. } => {
                self.rx.unreleased = Some(r);
                Took::Messages
            }
            Step::Rejected | Step::Opened { .. } => Took::Nothing,
        })
    }

    /// A direct ring with garbage indices: nothing more can be read from
    /// it here; the main ring still works. The manager is told, so that the
    /// writer's frames are not stranded.
    fn lose_direct(&mut self, i: usize) {
        let d = self.rx.direct.remove(i);
        self.rx.gone.add(d.link.stats());
        // The ring itself counts as one malformed frame.
        self.rx.gone.malformed = self.rx.gone.malformed.saturating_add(1);
        let _ = self.tell(&LpCtl::Lost { ring: d.name }, Wait::Forever);
    }

    /// A control frame from the manager.
    fn control(&mut self, c: LpCtl) {
        match c {
            LpCtl::Attach {
                writer,
                writer_generation,
                ring,
            } => {
                if self.rx.direct.iter().any(|d| d.name == ring) {
                    return;
                }
                let label = wire::direct_label(writer, writer_generation);
                let key = self.rx.key.as_ref().map(|k| k.derive(&label));
                let file = self.sock.take_ring(&ring);
                match attach(file, &ring, self.plan.session_id) {
                    Ok(c) => self.rx.direct.push(DirectRx {
                        link: RxLink::new(c, Opener::new(key), Resync::Never),
                        name: ring,
                        closing: false,
                    }),
                    Err(e) => {
                        eprintln!("shmcollab: cannot attach the direct ring {ring}: {e}");
                        let _ = self.tell(&LpCtl::Lost { ring }, Wait::Forever);
                    }
                }
            }
            LpCtl::Detach { ring } => {
                for d in self.rx.direct.iter_mut().filter(|d| d.name == ring) {
                    d.closing = true;
                }
            }
            _ => {}
        }
    }

    /// Drop direct rings whose producer is gone once they are empty (call
    /// with no frame held).
    fn drop_closed_direct(&mut self) {
        let mut gone = RxStats::default();
        let mut names = Vec::new();
        self.rx.direct.retain(|d| {
            let keep = !d.closing || d.link.has_data();
            if !keep {
                gone.add(d.link.stats());
                names.push(d.name.clone());
            }
            keep
        });
        self.rx.gone.add(&gone);
        // The manager removes the ring once told (best effort: if the ring
        // to it is full, the ring is removed when this LP ends instead).
        for ring in names {
            let _ = self.tell(&LpCtl::Detached { ring }, Wait::No);
        }
        if self.rx.next_direct >= self.rx.direct.len() {
            self.rx.next_direct = 0;
        }
    }

    /// Tell the manager what came through direct rings, if that changed and
    /// was not told within [`STATS_EVERY`] before `at` (or `force`). False
    /// if something is left to tell later.
    fn send_stats(&mut self, force: bool, at: Instant) -> bool {
        let cur = match self.stats_to_tell(force, at) {
            Tell::Nothing => return true,
            Tell::Later => return false,
            Tell::Now(cur) => cur,
        };
        if self.tell(&LpCtl::Stats(cur), Wait::No).is_ok() {
            self.rx.told = cur;
            self.rx.told_at = Instant::now();
            return true;
        }
        false
    }

    /// What [`Lp::send_stats`] would do at `at`.
    fn stats_to_tell(&self, force: bool, at: Instant) -> Tell {
        let (taken, told) = (&self.rx.taken, &self.rx.told);
        let recent = at.saturating_duration_since(self.rx.told_at) < STATS_EVERY;
        // Messages taken since we told: something to tell, known without
        // summing every ring's rejects (a requester passes here between its
        // request and its sleep).
        if !force && recent && (taken.msgs, taken.bytes) != (told.msgs, told.bytes) {
            return Tell::Later;
        }
        let cur = DirectStats {
            rejects: RxStats::from_rejects(self.rx.direct_rejects().rejects()),
            ..self.rx.taken
        };
        if cur == self.rx.told {
            Tell::Nothing
        } else if !force && recent {
            Tell::Later
        } else {
            Tell::Now(cur)
        }
    }
}

/// Attach to direct ring `ring`, whose descriptor came on the socket.
fn attach(
    file: Option<std::fs::File>,
    ring: &str,
    session_id: u64,
) -> Result<Consumer, shmcollab_shm::segment::OpenError> {
    let label = std::path::Path::new(ring);
    let file = file.ok_or_else(|| shmcollab_shm::segment::OpenError::Io {
        path: label.to_owned(),
        source: std::io::Error::other("its descriptor did not come from the manager"),
    })?;
    Consumer::attach(&open_ring_fd(file, label, session_id)?)
}
