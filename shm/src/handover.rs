//! Hand-over: when a process gives its CPU away on purpose, so that the
//! next hop of a round trip runs before the rest of its own work.
//!
//! A round trip (LP a -> manager a -> LP b -> manager b -> LP a) is a chain
//! of processes that each publish a frame and then still have work of their
//! own before they wait again (a manager's rest of the turn, an LP's way
//! back into `recv`). Where two hops of the chain share a CPU, that leftover
//! competes with the next hop. The load mode says which CPU a process shares
//! with whom, so it chooses the policy ([`crate::load::follow`]):
//!
//! * [`HandOver::AfterWake`] (compact: every process on one CPU): a process
//!   woken by a FUTEX_WAKE often preempts its waker at once, and the
//!   scheduler may then resume the waker before the process that the woken
//!   one wakes in turn. A `sched_yield` right after a wake that woke
//!   someone moves the waker behind the chain: it finishes when the chain
//!   has nothing to run.
//! * [`HandOver::AfterPublish`] (spread: LPs on one half of the CPUs,
//!   managers on the other): nobody sleeps (waits spin and yield), so no
//!   wake tells who is next. On a CPU shared by two LPs (or two managers)
//!   that exchange round trips back to back, the process that just
//!   published a frame is done with this round trip, and the one beside it
//!   is the next hop on this CPU: LP a's request is followed by LP b's
//!   turn, manager a's forward by manager b's. A `sched_yield` right after
//!   the publish lets it run at once; without it, it ran only when the
//!   publisher's rest of the turn ended in its wait's yield. Only in a
//!   stream ([`STREAM_WAIT`]): paced, it measured worse. Measured in
//!   benches/README.md, "The hand-over after a publish". When the yield
//!   comes back, the process beside us has had its turn and handed the CPU
//!   back: what we wait for next comes from the other half of the CPUs, and
//!   nothing on ours needs the CPU for it. So the next wait spins
//!   [`HANDED_BACK_SPIN`] before its first yield (`take_handed_back`):
//!   back to back the input usually comes within it, and the two switches
//!   of a yield there and back (the other process's leftover between) are
//!   off the path. Measured in benches/hops.md, "lat9".
//! * [`HandOver::Off`]: no mode, or a garbage mode word: wait as before.
//!
//! Process-wide: the load mode is the collaboration's. A yield with nobody
//! else runnable on the CPU returns at once.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// When this process gives its CPU away after handing work on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HandOver {
    /// Never.
    #[default]
    Off,
    /// After a FUTEX_WAKE that woke someone (compact).
    AfterWake,
    /// After publishing frames into a ring, whether its reader slept or
    /// not (spread).
    AfterPublish,
}

impl HandOver {
    const fn as_u8(self) -> u8 {
        match self {
            HandOver::Off => 0,
            HandOver::AfterWake => 1,
            HandOver::AfterPublish => 2,
        }
    }

    const fn from_u8(v: u8) -> HandOver {
        match v {
            1 => HandOver::AfterWake,
            2 => HandOver::AfterPublish,
            _ => HandOver::Off,
        }
    }
}

/// This process's policy (a [`HandOver`] as `u8`).
static POLICY: AtomicU8 = AtomicU8::new(0);

/// Set this process's hand-over policy.
pub fn set(policy: HandOver) {
    POLICY.store(policy.as_u8(), Relaxed);
}

/// This process's hand-over policy.
pub fn get() -> HandOver {
    HandOver::from_u8(POLICY.load(Relaxed))
}

/// Nanoseconds this process spent in hand-over yields, not taken yet.
static YIELDED_NS: AtomicU64 = AtomicU64::new(0);

/// Yields the CPU and counts the time (runnable, not running: waiting, for
/// whoever judges the process by its scheduler statistics).
fn hand_over() {
    let t = Instant::now();
    crate::sync::yield_now();
    let ns = u64::try_from(t.elapsed().as_nanos()).unwrap_or(u64::MAX);
    YIELDED_NS.fetch_add(ns, Ordering::Relaxed);
}

/// The time this process spent handing the CPU over since the last call.
/// An LP adds it to the time it says it waited: the supervisor judges an
/// LP CPU-bound by the CPU it wanted outside its waits, and a yield after
/// every publish of a back-to-back pingpong made the pingpong look
/// CPU-bound (runnable while the process beside it ran).
pub fn take_yielded() -> Duration {
    Duration::from_nanos(YIELDED_NS.swap(0, Ordering::Relaxed))
}

/// Called after a FUTEX_WAKE that woke `woken` processes.
#[inline]
pub(crate) fn after_wake(woken: usize) {
    if woken > 0 && get() == HandOver::AfterWake {
        hand_over();
    }
}

/// A wait for input that took at most this long, and ended at most this
/// long before a publish, makes the publish part of a stream (back to back
/// round trips): the process beside us on the CPU is the next hop. After a
/// longer wait, or a pause since (a paced load: every process spent the
/// gap yielding or sleeping, the requester in its pacing sleep), the yield
/// measured worse: paced at 100 µs, p50 5.8 -> 8.4 µs with a yield after
/// every publish.
pub const STREAM_WAIT: Duration = Duration::from_micros(20);

/// How a thread's last wait for input ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LastWait {
    /// It took longer than [`STREAM_WAIT`] (or there was none yet).
    Long,
    /// The input was there: no wait, no clock read.
    AtOnce,
    /// It took at most [`STREAM_WAIT`] and ended then.
    ShortEndedAt(Instant),
}

thread_local! {
    /// How this thread's last wait for input ended.
    static LAST_WAIT: Cell<LastWait> = const { Cell::new(LastWait::Long) };
}

/// Called at the end of every wait for input: how long it took (`None`:
/// not at all, the input was there), and when it ended.
#[inline]
pub(crate) fn waited(took: Option<(Duration, Instant)>) {
    let last = match took {
        None => LastWait::AtOnce,
        Some((d, end)) if d <= STREAM_WAIT => LastWait::ShortEndedAt(end),
        Some(_) => LastWait::Long,
    };
    LAST_WAIT.with(|c| c.set(last));
}

/// Called after publishing frames into a ring (and ringing its doorbell).
#[inline]
pub(crate) fn after_publish() {
    if get() == HandOver::AfterPublish && streaming(LAST_WAIT.with(Cell::get)) {
        hand_over();
        HANDED_BACK.with(|c| c.set(true));
    }
}

/// How long a wait spins before its first yield when the thread's last
/// hand-over after a publish came back since its previous wait (spread, in
/// a stream; see the module doc). Back to back, the input came within 1-2
/// µs of the hand-over's return in most round trips: p50 4.1 -> 3.7 µs
/// (0.5-1.5 µs all did as well; 2-4 µs cost CPU and p99; benches/hops.md,
/// "lat9"); after a pause there is no hand-over, so no spin: a paced
/// requester that spun instead of yielding kept the CPU from the process
/// beside it, the next hop (paced at 100 µs, p50 4.7 -> 7.8-9.4 µs with a
/// spin of 1-2 µs before every first yield).
pub const HANDED_BACK_SPIN: Duration = Duration::from_micros(1);

thread_local! {
    /// A hand-over after a publish came back since this thread's last wait
    /// began.
    static HANDED_BACK: Cell<bool> = const { Cell::new(false) };
}

/// Whether a hand-over after a publish came back since the last call; each
/// wait for input takes it as it begins, so it says something only about
/// the way from that hand-over to this wait.
#[inline]
pub(crate) fn take_handed_back() -> bool {
    HANDED_BACK.with(|c| c.replace(false))
}

/// For tests elsewhere in the crate: as if a hand-over had just come back.
#[cfg(test)]
pub(crate) fn pretend_handed_back() {
    HANDED_BACK.with(|c| c.set(true));
}

/// Whether a publish now, after a last wait that ended as `last` says, is
/// part of a stream. Reads the clock only after a wait that was short but
/// not instant.
fn streaming(last: LastWait) -> bool {
    match last {
        LastWait::Long => false,
        LastWait::AtOnce => true,
        LastWait::ShortEndedAt(end) => end.elapsed() <= STREAM_WAIT,
    }
}

/// Runs `f` without the hand-over after a wake: for a request's own send,
/// whose sender waits for the reply at once (a yielded sender is a
/// runnable leftover when its reply comes). The hand-over after a publish
/// stays: spread, the sender's reply comes from the other CPU, and the
/// process beside it is the next hop.
pub fn without_wake_hand_over<T>(f: impl FnOnce() -> T) -> T {
    let was = get();
    if was == HandOver::AfterWake {
        set(HandOver::Off);
    }
    let r = f();
    set(was);
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The policy itself is tested in `load.rs` (one test owns the
    /// process-wide word).
    #[test]
    fn words_round_trip_and_garbage_is_off() {
        for p in [HandOver::Off, HandOver::AfterWake, HandOver::AfterPublish] {
            assert_eq!(HandOver::from_u8(p.as_u8()), p);
        }
        assert_eq!(HandOver::from_u8(3), HandOver::Off);
        assert_eq!(HandOver::from_u8(u8::MAX), HandOver::Off);
    }

    /// Spread, a publish yields only in a stream: after a wait that found
    /// its input at once, or took and ended within `STREAM_WAIT`; not after
    /// a long wait (a paced load's gap), nor a pause since a short one (the
    /// requester's pacing sleep).
    #[test]
    fn a_publish_is_in_a_stream_only_after_a_short_recent_wait() {
        let last = || LAST_WAIT.with(Cell::get);
        waited(None);
        assert!(streaming(last()), "input was there at once");
        waited(Some((Duration::from_micros(3), Instant::now())));
        assert!(streaming(last()), "a short wait just ended");
        waited(Some((Duration::from_micros(95), Instant::now())));
        assert!(!streaming(last()), "a long wait");
        let long_ago = Instant::now() - 10 * STREAM_WAIT;
        waited(Some((Duration::from_micros(3), long_ago)));
        assert!(!streaming(last()), "a short wait, then a pause");
    }
}
