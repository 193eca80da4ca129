//! Doorbell: a futex word that many producers ring and sleepers wait on.
//!
//! Layout (8 bytes, little-endian, inside some segment):
//!
//! ```text
//! offset size field
//!      0    4 seq      bumped by a ring when someone sleeps; the futex word
//!      4    4 sleepers bits 0-30: number of processes between "I am going to
//!                      sleep" and waking; bit 31 (`WOKEN`): woken since the
//!                      last of them registered
//! ```
//!
//! Protocol (a Dekker-style handshake, so no wakeup is ever lost):
//!
//! * the waker first publishes its data (e.g. a ring's tail, Release), then
//!   issues a SeqCst fence, then loads `sleepers`; only if it is non-zero does
//!   it bump `seq` and call FUTEX_WAKE. A busy pipeline therefore makes no
//!   system call at all.
//! * the sleeper increments `sleepers` (SeqCst), loads `seq`, re-checks its
//!   condition, and only then calls FUTEX_WAIT on `seq` with the value it
//!   loaded. Either the waker sees `sleepers != 0`, or the sleeper's re-check
//!   sees the published data.
//! * one FUTEX_WAKE per registration: the waker that finds sleepers sets
//!   `WOKEN` (an RMW) and calls FUTEX_WAKE only if the bit was clear; a
//!   sleeper clears it when it registers and when it leaves. A woken
//!   process may wait a long time for a CPU (a manager behind 255 others on
//!   its CPU in a mesh flood); until it runs and leaves, every publish of
//!   its producer found `sleepers != 0` and made a system call that woke
//!   nobody: 99.9% of the LPs' 1.2 M FUTEX_WAKEs in a flood of 5.12 M
//!   messages (benches/README.md, "Scale: one wake-up per sleep"). A waker
//!   that finds `WOKEN` set skips: the one that set it bumps `seq` after its
//!   RMW, so the sleeper wakes (or never sleeps), and its next registration
//!   (an RMW later in the word's order) synchronises with the skipped
//!   waker's RMW, so its re-check sees that waker's data.
//!
//! Every field is untrusted: garbage here costs at most a spurious wakeup or
//! a sleep that ends at its timeout, never memory unsafety. A waker that
//! sees `sleepers` zeroed by someone else skips its FUTEX_WAKE, so no sleep
//! trusts the handshake alone: each futex wait lasts at most
//! [`MAX_SLEEP`], after which the sleeper re-checks its condition (a wait
//! "forever" is a loop of such sleeps); each sleep of one wait that ends
//! with nothing to do doubles that, up to [`MAX_IDLE_SLEEP`]. A lost
//! wake-up costs latency, never a hang.

use crate::sync::{fence, futex_wait_any, futex_wake, AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The longest single futex sleep: a sleeper whose wake-up was lost (the
/// `sleepers` word overwritten) re-checks its condition this often. Short
/// enough that such a loss is a hiccup, long enough that an idle process
/// costs nothing measurable (ten wake-ups a second).
pub const MAX_SLEEP: Duration = Duration::from_millis(100);

/// The longest futex sleep of a wait that has been idle for a while: ten
/// wake-ups a second per process were most of what 256 idle LPs and their
/// managers cost (5,000 a second). A wake-up lost to an overwritten
/// `sleepers` word then costs up to this much, once a process was idle for
/// over a second.
pub const MAX_IDLE_SLEEP: Duration = Duration::from_secs(1);

/// The shared doorbell word pair. Lives in shared memory; all-zero is a valid
/// initial state.
#[repr(C)]
#[derive(Default)]
pub struct Doorbell {
    /// Futex word. Changed only by `ring`/`notify`.
    /// SYNC: bumped with Release after the waker's data is published; the
    /// sleeper loads it with Acquire before re-checking.
    seq: AtomicU32,
    /// Count of sleepers (bits 0-30) and `WOKEN` (bit 31). SYNC: SeqCst on
    /// both sides (the handshake above); the waker's `WOKEN` RMW is AcqRel
    /// and pairs with the sleeper's registering RMW.
    sleepers: AtomicU32,
}

/// Bit of `sleepers`: a waker has woken the sleepers since the last one
/// registered (further rings skip their FUTEX_WAKE).
const WOKEN: u32 = 1 << 31;
/// Bits of `sleepers` that count the sleepers.
const COUNT: u32 = !WOKEN;
#[cfg(not(loom))]
const _: () = assert!(std::mem::size_of::<Doorbell>() == 8);

/// How long to spin and yield before sleeping in the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitStrategy {
    /// Spin (with the CPU's pause hint) this long first.
    pub spin: Duration,
    /// Then call sched_yield this many times.
    pub yields: u32,
    /// ... but yield for no longer than this: with nothing else runnable a
    /// yield returns at once, and a thousand of them would burn a
    /// millisecond of CPU on every wake-up of an idle process.
    pub yield_for: Duration,
    /// After each yield, spin this long before the next one. With more
    /// processes than cores this turns the yield phase into "hand the core
    /// over once, then stay on it briefly": the process that just passed
    /// work on lets the next one in the chain run at once, and the one
    /// waiting for that work is on a core when it comes instead of a
    /// context switch away.
    pub respin: Duration,
}

impl Default for WaitStrategy {
    /// Spin 20 µs, yield up to 64 times within 200 µs, then sleep: a peer
    /// that answers within a few microseconds is caught without a system
    /// call, an idle one costs nothing. `SHMCOLAB_SPIN_US`,
    /// `SHMCOLAB_YIELDS`, `SHMCOLAB_YIELD_US` and `SHMCOLAB_RESPIN_US`
    /// (0 by default) override the four numbers for the whole process.
    fn default() -> Self {
        static FROM_ENV: std::sync::OnceLock<WaitStrategy> = std::sync::OnceLock::new();
        *FROM_ENV.get_or_init(|| {
            let num = |k: &str, d: u64| {
                std::env::var(k)
                    .ok()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(d)
            };
            WaitStrategy {
                spin: Duration::from_micros(num("SHMCOLAB_SPIN_US", 20)),
                yields: num("SHMCOLAB_YIELDS", 64) as u32,
                yield_for: Duration::from_micros(num("SHMCOLAB_YIELD_US", 200)),
                respin: Duration::from_micros(num("SHMCOLAB_RESPIN_US", 0)),
            }
        })
    }
}

impl WaitStrategy {
    /// Never spin or yield: go to sleep at once (lowest CPU use).
    pub const SLEEP: WaitStrategy = WaitStrategy {
        spin: Duration::ZERO,
        yields: 0,
        yield_for: Duration::ZERO,
        respin: Duration::ZERO,
    };
}

impl Doorbell {
    /// A fresh doorbell (all zero).
    pub fn new() -> Self {
        Self::default()
    }

    /// Wake sleepers, if any, after the caller published its data.
    #[inline]
    pub fn ring(&self) {
        // SYNC: orders the caller's publishing store before the load of
        // `sleepers`; pairs with the SeqCst registration in `register`.
        fence(Ordering::SeqCst);
        if self.sleepers.load(Ordering::Relaxed) & COUNT != 0 {
            self.wake_once();
        }
    }

    /// Cheap check without the fence: wakes only if a sleeper is already
    /// visible. Use where a later full `ring` is guaranteed.
    #[inline]
    pub fn ring_relaxed(&self) {
        if self.sleepers.load(Ordering::Relaxed) & COUNT != 0 {
            self.wake_once();
        }
    }

    /// Wake the registered sleepers unless a waker did since the last of
    /// them registered (module doc).
    #[cold]
    fn wake_once(&self) {
        // SYNC: AcqRel; a sleeper's next registration (an RMW later in this
        // word's order) reads from this RMW's release sequence, so it sees
        // what this waker published even when it skips the wake.
        if self.sleepers.fetch_or(WOKEN, Ordering::AcqRel) & WOKEN == 0 {
            self.notify();
        }
    }

    /// Count the caller as a sleeper and clear `WOKEN` (one RMW); then it
    /// loads `seq` and re-checks its condition before it sleeps.
    fn register(&self) {
        // SYNC: SeqCst; pairs with the fence in `ring` (the handshake) and,
        // as an acquire, with the `WOKEN` RMW of a waker that skipped.
        // Garbage in the word wraps within the count: a lost wake-up at
        // worst, which `MAX_SLEEP` bounds.
        let _ = self
            .sleepers
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| {
                Some((v & COUNT).wrapping_add(1) & COUNT)
            });
    }

    /// Undo [`Doorbell::register`] once awake (clears `WOKEN` too: the
    /// next waker finds either no sleeper or one that registered anew).
    fn leave(&self) {
        let _ = self
            .sleepers
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| {
                Some((v & COUNT).wrapping_sub(1) & COUNT)
            });
    }

    /// Bump the sequence and wake every sleeper, unconditionally. With
    /// [`HandOver::AfterWake`](crate::handover::HandOver::AfterWake), a
    /// wake that woke someone is followed by a `sched_yield`: the CPU goes
    /// to the process woken now.
    pub fn notify(&self) {
        // SYNC: Release so that a sleeper that sees the new seq also sees
        // what was published before it.
        self.seq.fetch_add(1, Ordering::Release);
        crate::handover::after_wake(futex_wake(&self.seq, u32::MAX));
    }

    /// Forget sleepers: for the one consumer of a doorbell when it
    /// (re)attaches, since a predecessor killed while asleep never
    /// decremented the count (every ring would then make a system call).
    pub fn reset_sleepers(&self) {
        self.sleepers.store(0, Ordering::SeqCst);
    }

    /// The current sequence value (a change counter).
    pub fn seq(&self) -> u32 {
        self.seq.load(Ordering::Acquire)
    }

    /// Wait until `ready()` returns `Some`, spinning, yielding and then
    /// sleeping per `strategy`, or until `timeout` passes (`None` then).
    pub fn wait_until<T>(
        &self,
        strategy: WaitStrategy,
        timeout: Option<Duration>,
        ready: impl FnMut() -> Option<T>,
    ) -> Option<T> {
        Self::wait_until_any(&[self], strategy, timeout, ready)
    }

    /// [`Doorbell::wait_until`] on several doorbells at once: a ring of
    /// any of them wakes the sleeper (a manager sleeps on its registry
    /// doorbell and on the one its LP rings, which lives in a segment the
    /// LP can reach without the registry). Up to four bells; the sleep is
    /// one `futex_waitv`, with the protocol of the module doc on each.
    pub fn wait_until_any<T>(
        bells: &[&Doorbell],
        strategy: WaitStrategy,
        timeout: Option<Duration>,
        mut ready: impl FnMut() -> Option<T>,
    ) -> Option<T> {
        let bells = &bells[..bells.len().min(4)];
        // Taken by every wait, whether it waits or not (used below).
        let handed_back = crate::handover::take_handed_back();
        if bells.is_empty() {
            return ready();
        }
        if let Some(v) = ready() {
            crate::handover::waited(None);
            return Some(v);
        }
        let start = Instant::now();
        let strategy = match strategy.yields {
            // Back from a hand-over after a publish: the input comes from
            // another CPU, and nothing on ours needs it meanwhile
            // (`shmcollab_shm::handover`, `HANDED_BACK_SPIN`).
            1.. if handed_back => WaitStrategy {
                spin: strategy.spin.max(crate::handover::HANDED_BACK_SPIN),
                ..strategy
            },
            _ => strategy,
        };
        let got = Self::wait_phases(bells, strategy, start, timeout, ready);
        let end = Instant::now();
        crate::handover::waited(Some((end - start, end)));
        got
    }

    /// Run `publish`, then wait as [`Doorbell::wait_until_any`], for a
    /// caller whose `publish` causes its input (a request, whose reply it
    /// waits for). With [`WaitStrategy::SLEEP`] (compact) it registers as a
    /// sleeper on `bells` before `publish`: on one CPU the peer that
    /// `publish` wakes often takes the CPU at once, and whatever the caller
    /// still had to do before its sleep then runs later, on the round
    /// trip's path; now that is the check and the system call. (The
    /// protocol of the module doc: a waker that publishes after our
    /// registration sees us and rings.) Other strategies publish, then
    /// wait as usual. An error from `publish` ends it at once.
    pub fn publish_then_wait<R, E, T>(
        bells: &[&Doorbell],
        strategy: WaitStrategy,
        timeout: Option<Duration>,
        publish: impl FnOnce() -> Result<R, E>,
        mut ready: impl FnMut() -> Option<T>,
    ) -> Result<(R, Option<T>), E> {
        let bells = &bells[..bells.len().min(4)];
        if strategy != WaitStrategy::SLEEP || bells.is_empty() {
            let r = publish()?;
            return Ok((r, Self::wait_until_any(bells, strategy, timeout, ready)));
        }
        let start = Instant::now();
        // SYNC: SeqCst registration, then (after `publish`) the re-check;
        // pairs with the fence in `ring`, as in `wait_phases`.
        let mut words = [(&bells[0].seq, 0u32); 4];
        for (w, b) in words.iter_mut().zip(bells) {
            b.register();
            *w = (&b.seq, b.seq.load(Ordering::Acquire));
        }
        let awake = || {
            for b in bells {
                b.leave();
            }
        };
        let r = match publish() {
            Ok(r) => r,
            Err(e) => {
                awake();
                return Err(e);
            }
        };
        let mut got = ready();
        if got.is_none() {
            let first = timeout.map_or(MAX_SLEEP, |t| t.min(MAX_SLEEP));
            futex_wait_any(&words[..bells.len()], Some(first));
        }
        awake();
        got = got.or_else(&mut ready);
        if got.is_none() {
            // A spurious wake-up, or the first sleep's cap: the usual wait
            // for the rest of the time.
            let left = timeout.map(|t| t.saturating_sub(start.elapsed()));
            return Ok((r, Self::wait_until_any(bells, strategy, left, ready)));
        }
        let end = Instant::now();
        crate::handover::waited(Some((end - start, end)));
        Ok((r, got))
    }

    /// The spin, yield and sleep phases of [`Doorbell::wait_until_any`],
    /// from `start`, once `ready()` said no.
    fn wait_phases<T>(
        bells: &[&Doorbell],
        strategy: WaitStrategy,
        start: Instant,
        timeout: Option<Duration>,
        mut ready: impl FnMut() -> Option<T>,
    ) -> Option<T> {
        let deadline = timeout.map(|t| start + t);
        // Phase 1: spin.
        if let Some(v) = Self::spin(strategy.spin, deadline, &mut ready) {
            return Some(v);
        }
        // Phase 2: yield (and spin briefly after each yield). Compact waits
        // have none: no clock read then (a requester goes this way between
        // its request and its sleep).
        let yield_start = if strategy.yields > 0 {
            Instant::now()
        } else {
            start
        };
        for i in 0..strategy.yields {
            crate::sync::yield_now();
            if let Some(v) = ready() {
                return Some(v);
            }
            if let Some(v) = Self::spin(strategy.respin, deadline, &mut ready) {
                return Some(v);
            }
            if (i % 8 == 7 || !strategy.respin.is_zero())
                && yield_start.elapsed() >= strategy.yield_for
            {
                break;
            }
        }
        // Phase 3: sleep.
        let mut cap = MAX_SLEEP;
        loop {
            let remaining = match deadline {
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        return ready();
                    }
                    (d - now).min(cap)
                }
                None => cap,
            };
            // SYNC: SeqCst registration, then the re-check below; pairs with the
            // fence in `ring`.
            let mut seen = [0u32; 4];
            for (b, s) in bells.iter().zip(seen.iter_mut()) {
                b.register();
                *s = b.seq.load(Ordering::Acquire);
            }
            let awake = || {
                for b in bells {
                    b.leave();
                }
            };
            if let Some(v) = ready() {
                awake();
                return Some(v);
            }
            let mut words = [(&bells[0].seq, 0u32); 4];
            for ((w, b), s) in words.iter_mut().zip(bells).zip(seen) {
                *w = (&b.seq, s);
            }
            futex_wait_any(&words[..bells.len()], Some(remaining));
            awake();
            if let Some(v) = ready() {
                return Some(v);
            }
            cap = (cap * 2).min(MAX_IDLE_SLEEP);
        }
    }

    /// Spin (with the pause hint) until `ready()` or `span` or the deadline
    /// passes. Reads the clock every 8 probes: a probe can be a scan of
    /// every ring a manager reads.
    fn spin<T>(
        span: Duration,
        deadline: Option<Instant>,
        ready: &mut impl FnMut() -> Option<T>,
    ) -> Option<T> {
        if span.is_zero() {
            return None;
        }
        let end = Instant::now() + span;
        loop {
            for _ in 0..8 {
                crate::sync::spin_hint();
                if let Some(v) = ready() {
                    return Some(v);
                }
            }
            let now = Instant::now();
            if now >= end || deadline.is_some_and(|d| now >= d) {
                return None;
            }
        }
    }

    /// Wait until the sequence differs from `seen` (someone called `notify`),
    /// or `timeout` passes. Returns the new value, or `None` on timeout.
    pub fn wait_change(&self, seen: u32, timeout: Option<Duration>) -> Option<u32> {
        self.wait_until(WaitStrategy::SLEEP, timeout, || {
            let s = self.seq.load(Ordering::Acquire);
            (s != seen).then_some(s)
        })
    }
}

#[cfg(all(test, not(loom)))]
#[path = "doorbell_tests.rs"]
mod tests;
