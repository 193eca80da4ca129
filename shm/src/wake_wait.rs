//! Wake one, sleep on another, in one system call: a requester's FUTEX_WAKE
//! of its peer and its FUTEX_WAIT for the reply, submitted together to an
//! io_uring (`IORING_OP_FUTEX_WAKE`, `IORING_OP_FUTEX_WAIT`, Linux 6.7).
//!
//! Why: while compact (every process on one CPU, every wait a futex
//! sleep), the peer woken by a plain FUTEX_WAKE often takes the CPU when
//! that system call returns, and the requester is later switched back in
//! only to go to sleep (benches/hops.md: a switch in, its leftover, a switch
//! out; 3-4 µs in about half the round trips). Submitted with the wait, the
//! wake leaves nothing of the requester to run: the kernel issues the wake,
//! queues the wait and sleeps in the same `io_uring_enter`, and the woken
//! peer runs then.
//!
//! How: [`crate::Doorbell::publish_then_wait`] runs its `publish` inside
//! [`deferring`]; every [`crate::Doorbell::notify`] made there bumps its
//! word as usual but leaves the FUTEX_WAKE to the returned [`Wakes`]
//! (the doorbell's handshake is unchanged: the sleeper registered before
//! the publish). [`WakeWait::wake_then_wait`] then issues them with the
//! sleep: one io_uring submission (the wakes, the wait linked to a timeout)
//! or, where that is unavailable, plain FUTEX_WAKEs and the usual wait.
//! A wait inside the deferring scope (a ring full) issues the deferred
//! wakes first ([`flush_deferred`]): the peer it waits for may be the one
//! not woken yet. Dropping a [`Wakes`] issues what it holds: no wake is
//! ever lost, only delayed to the sleep.
//!
//! The io_uring is one per [`WakeWait`] (one per LP), 8 entries, created
//! at its first use. Unavailable (no io_uring: ENOSYS, `io_uring_disabled`,
//! EPERM from a seccomp filter; a kernel without the futex opcodes), or
//! failing later, it is given up for good and the plain path is taken.
//! The LP sandbox (Landlock) does not restrict io_uring (it has no seccomp
//! filter; an LP can make the same calls itself), and these opcodes touch
//! no file: only futex words the LP already maps.
//!
//! Nothing in flight survives a call: it returns once every completion of
//! its submission has been reaped. The kernel only ever sees addresses:
//! a word unmapped meanwhile costs an EFAULT, never memory unsafety.

use crate::sync::AtomicU32;
use std::cell::Cell;
use std::time::Duration;

/// Wakes deferred at most per scope; more are issued at once.
const MAX_DEFERRED: usize = 4;

/// Submission queue entries: the wakes, the wait and its timeout.
const ENTRIES: u32 = 8;

/// How many sleepers a deferred wake wakes: all (`i32::MAX`, the futex
/// calls' "every waiter"; the count is an `int` in the kernel).
const WAKE_ALL: u32 = i32::MAX as u32;

/// The words whose wake is deferred, in this thread's scope.
#[derive(Clone, Copy)]
struct Pending {
    /// Inside [`deferring`].
    on: bool,
    n: usize,
    /// Addresses of futex words (never dereferenced here: the kernel checks).
    words: [usize; MAX_DEFERRED],
}

const IDLE: Pending = Pending {
    on: false,
    n: 0,
    words: [0; MAX_DEFERRED],
};

thread_local! {
    static PENDING: Cell<Pending> = const { Cell::new(IDLE) };
}

/// Called by [`crate::Doorbell::notify`] after it bumped `word`: inside
/// [`deferring`], records the wake and returns true (the caller makes no
/// system call); otherwise false.
#[inline]
pub(crate) fn defer_wake(word: &AtomicU32) -> bool {
    PENDING.with(|c| {
        let mut p = c.get();
        if !p.on {
            return false;
        }
        let addr = word as *const AtomicU32 as usize;
        if p.words[..p.n].contains(&addr) {
            return true;
        }
        if p.n == MAX_DEFERRED {
            return false;
        }
        p.words[p.n] = addr;
        p.n += 1;
        c.set(p);
        true
    })
}

/// Issue the wakes deferred so far in this thread's scope (the scope goes
/// on): for a wait inside it, whose input may come from a peer not woken
/// yet.
#[inline]
pub(crate) fn flush_deferred() {
    let taken = PENDING.with(|c| {
        let p = c.get();
        if p.n == 0 {
            return None;
        }
        c.set(Pending { n: 0, ..p });
        Some(p)
    });
    if let Some(p) = taken {
        drop(Wakes {
            n: p.n,
            words: p.words,
        });
    }
}

/// FUTEX_WAKEs deferred by [`deferring`]: issued by
/// [`WakeWait::wake_then_wait`] with a sleep, or when dropped.
#[must_use = "dropping it wakes at once"]
pub struct Wakes {
    n: usize,
    words: [usize; MAX_DEFERRED],
}

impl Wakes {
    /// None.
    pub const NONE: Wakes = Wakes {
        n: 0,
        words: [0; MAX_DEFERRED],
    };

    fn words(&self) -> &[usize] {
        &self.words[..self.n]
    }

    /// How many words are to be woken.
    pub fn len(&self) -> usize {
        self.n
    }

    /// No word to wake.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }
}

impl Drop for Wakes {
    fn drop(&mut self) {
        for &w in self.words() {
            futex_wake_addr(w);
        }
    }
}

/// Restores the thread's idle state when `deferring` ends, unwinding
/// included (the wakes recorded then are issued).
struct Scope;

impl Drop for Scope {
    fn drop(&mut self) {
        let p = PENDING.with(|c| c.replace(IDLE));
        drop(Wakes {
            n: p.n,
            words: p.words,
        });
    }
}

/// Run `f` with this thread's doorbell wakes deferred: they are returned,
/// not issued. Not nested (an inner scope's wakes are issued when it ends).
pub fn deferring<R>(f: impl FnOnce() -> R) -> (R, Wakes) {
    let scope = Scope;
    PENDING.with(|c| c.set(Pending { on: true, ..IDLE }));
    let r = f();
    let p = PENDING.with(|c| c.replace(IDLE));
    std::mem::forget(scope);
    (
        r,
        Wakes {
            n: p.n,
            words: p.words,
        },
    )
}

/// FUTEX_WAKE of every sleeper on the shared futex word at `addr`.
fn futex_wake_addr(addr: usize) {
    // SAFETY: a futex system call only reads the word at `addr` in the
    // kernel, which checks the address (EFAULT if unmapped); nothing is
    // dereferenced in user space. A word reused for something else since
    // gets a spurious wake-up, which every sleeper tolerates.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            addr as *const u32,
            libc::FUTEX_WAKE,
            WAKE_ALL,
        );
    }
}

/// Which way [`WakeWait::wake_then_wait`] sleeps.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Path {
    /// Not tried yet (the io_uring is made at the first use).
    Untried,
    /// One io_uring submission: the wakes and the sleep.
    IoUring,
    /// Plain FUTEX_WAKEs, then the sleep: why.
    Plain(String),
}

/// The per-LP means of waking and sleeping in one system call.
pub struct WakeWait {
    state: State,
    /// Sleeps made through the io_uring.
    combined: u64,
}

enum State {
    Untried,
    Ready(Box<ring::Ring>),
    Plain(String),
}

impl WakeWait {
    /// `enabled`: whether to try io_uring at all (the plain path otherwise;
    /// decided by the caller, `SHMCOLAB_IO_URING=0` for an LP).
    pub fn new(enabled: bool) -> WakeWait {
        WakeWait {
            state: if enabled {
                State::Untried
            } else {
                State::Plain("disabled".into())
            },
            combined: 0,
        }
    }

    /// Which way it sleeps (so far).
    pub fn path(&self) -> Path {
        match &self.state {
            State::Untried => Path::Untried,
            State::Ready(_) => Path::IoUring,
            State::Plain(why) => Path::Plain(why.clone()),
        }
    }

    /// Sleeps made through the io_uring so far.
    pub fn combined(&self) -> u64 {
        self.combined
    }

    /// Whether wakes are worth deferring: the io_uring is there, or not
    /// tried yet (made now).
    pub fn usable(&mut self) -> bool {
        if let State::Untried = self.state {
            self.state = match ring::Ring::new() {
                Ok(r) => State::Ready(Box::new(r)),
                Err(why) => State::Plain(why),
            };
        }
        matches!(self.state, State::Ready(_))
    }

    /// Issue `wakes`, then sleep until any of `words` differs from its
    /// expected value or is woken, at most `timeout` (spurious returns
    /// allowed: the caller re-checks). One system call where the io_uring
    /// serves (one word); otherwise the wakes, then the usual sleep.
    pub fn wake_then_wait(&mut self, wakes: Wakes, words: &[(&AtomicU32, u32)], timeout: Duration) {
        #[cfg(not(loom))]
        if let State::Ready(r) = &self.state {
            if !r.owned_here() {
                // The LP moved to another thread: a ring of its own there.
                self.state = State::Untried;
                self.usable();
            }
        }
        #[cfg(not(loom))]
        if let (State::Ready(r), [(w, v)]) = (&mut self.state, words) {
            match r.wake_then_wait(wakes.words(), w, *v, timeout) {
                Ok(()) => {
                    std::mem::forget(wakes);
                    self.combined += 1;
                    return;
                }
                Err(e) => {
                    // Given up for good; `wakes` is issued below (a wake
                    // the ring made already is repeated: spurious, harmless).
                    self.state = State::Plain(format!("io_uring failed: {e}"));
                }
            }
        }
        drop(wakes);
        crate::sync::futex_wait_any(words, Some(timeout));
    }
}

#[cfg(not(loom))]
mod ring {
    //! The io_uring itself: made for one thread (`SINGLE_ISSUER`), its
    //! completions run in that thread's wait (`DEFER_TASKRUN`: no task
    //! work signalled to it, the cheapest setup measured), the sleep's
    //! bound given to `io_uring_enter` itself (a linked timeout cost
    //! 0.5 µs more per sleep).
    use super::{ENTRIES, MAX_DEFERRED, WAKE_ALL};
    use io_uring::{opcode, types, types::SubmitArgs, IoUring, Probe};
    use std::sync::atomic::AtomicU32;
    use std::thread::ThreadId;
    use std::time::{Duration, Instant};

    /// futex2 flags: a 32-bit word, shared (no FUTEX2_PRIVATE): the words
    /// live in memory several processes map.
    const FUTEX2_SIZE_U32: u32 = 0x02;
    /// Any waiter (FUTEX_BITSET_MATCH_ANY).
    const MATCH_ANY: u64 = u32::MAX as u64;
    /// User data of the completions.
    const WAKE: u64 = 1;
    const WAIT: u64 = 2;
    const CANCEL: u64 = 3;
    const _: () = assert!(ENTRIES as usize >= MAX_DEFERRED + 2);

    pub(super) struct Ring {
        uring: IoUring,
        /// The thread it was made for: only that one may submit.
        owner: ThreadId,
        /// `io_uring_enter` flags of the wait: not counted as I/O wait
        /// where the kernel can (6.15); it is a futex sleep.
        enter: io_uring::EnterFlags,
    }

    impl Ring {
        /// An io_uring with the futex opcodes, or why not.
        pub(super) fn new() -> Result<Ring, String> {
            let uring = IoUring::builder()
                .setup_single_issuer()
                .setup_defer_taskrun()
                .build(ENTRIES)
                .or_else(|_| IoUring::builder().build(ENTRIES))
                .map_err(|e| format!("io_uring_setup: {e}"))?;
            let mut probe = Probe::new();
            uring
                .submitter()
                .register_probe(&mut probe)
                .map_err(|e| format!("io_uring probe: {e}"))?;
            for (code, name) in [
                (opcode::FutexWake::CODE, "FUTEX_WAKE"),
                (opcode::FutexWait::CODE, "FUTEX_WAIT"),
                (opcode::AsyncCancel::CODE, "ASYNC_CANCEL"),
            ] {
                if !probe.is_supported(code) {
                    return Err(format!("io_uring without {name}"));
                }
            }
            if !uring.params().is_feature_ext_arg() {
                return Err("io_uring without EXT_ARG".into());
            }
            let enter = if uring.params().is_feature_no_iowait() {
                io_uring::EnterFlags::NO_IOWAIT
            } else {
                io_uring::EnterFlags::empty()
            };
            let owner = std::thread::current().id();
            Ok(Ring {
                uring,
                owner,
                enter,
            })
        }

        /// Whether the calling thread may use it.
        pub(super) fn owned_here(&self) -> bool {
            self.owner == std::thread::current().id()
        }

        /// One submission: a FUTEX_WAKE of each of `wakes`, then a
        /// FUTEX_WAIT on `word` for `expected`, sleeping at most `timeout`
        /// (then the wait is cancelled); returns once every entry
        /// completed. An error leaves the ring unusable.
        pub(super) fn wake_then_wait(
            &mut self,
            wakes: &[usize],
            word: &AtomicU32,
            expected: u32,
            timeout: Duration,
        ) -> std::io::Result<()> {
            let wait = opcode::FutexWait::new(
                word.as_ptr(),
                u64::from(expected),
                MATCH_ANY,
                FUTEX2_SIZE_U32,
            );
            let wakes = wakes.iter().map(|&w| {
                let e = opcode::FutexWake::new(
                    w as *const u32,
                    u64::from(WAKE_ALL),
                    MATCH_ANY,
                    FUTEX2_SIZE_U32,
                );
                e.build().user_data(WAKE)
            });
            let mut left = 0;
            for e in wakes.chain([wait.build().user_data(WAIT)]) {
                self.push(&e)?;
                left += 1;
            }
            let deadline = Instant::now() + timeout;
            let mut cancelled = false;
            while left > 0 {
                let now = Instant::now();
                if now >= deadline && !cancelled {
                    // The bound passed: cancel the wait, then reap both.
                    self.push(&opcode::AsyncCancel::new(WAIT).build().user_data(CANCEL))?;
                    left += 1;
                    cancelled = true;
                }
                let ts = types::Timespec::from(deadline.saturating_duration_since(now));
                let args = SubmitArgs::new().timespec(&ts);
                // With entries to submit, the kernel returns their count
                // even when the wait timed out: the deadline above says.
                match self
                    .uring
                    .submitter()
                    .submit_with_args_and_flags(left, &args, self.enter)
                {
                    Ok(_) => {}
                    Err(e) if matches!(e.raw_os_error(), Some(libc::EINTR | libc::ETIME)) => {}
                    Err(e) => return Err(e),
                }
                left -= self.uring.completion().count().min(left);
            }
            Ok(())
        }

        /// Queue `e` for the next submission.
        fn push(&mut self, e: &io_uring::squeue::Entry) -> std::io::Result<()> {
            // SAFETY: our entries carry no buffer, only futex addresses
            // (read by the kernel, which checks them: `word` is borrowed by
            // the caller until every entry completed) and user data; the
            // queue holds ENTRIES: the MAX_DEFERRED wakes, the wait and a
            // cancel (every call drains it).
            unsafe { self.uring.submission().push(e) }
                .map_err(|_| std::io::Error::other("submission queue full"))
        }
    }
}

#[cfg(loom)]
mod ring {
    //! No io_uring under loom.
    pub(super) struct Ring;
    impl Ring {
        pub(super) fn new() -> Result<Ring, String> {
            Err("loom".into())
        }
        pub(super) fn owned_here(&self) -> bool {
            true
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::{Doorbell, WaitStrategy};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::Instant;

    /// Inside the scope a ring that finds a sleeper bumps the word but
    /// leaves the wake to the returned `Wakes` (once per word, at most
    /// MAX_DEFERRED words, then at once); outside it nothing is deferred;
    /// a wait inside the scope takes the deferred wakes first.
    #[test]
    fn a_scope_defers_the_wakes_of_its_rings() {
        let bells: Vec<Doorbell> = (0..6).map(|_| Doorbell::new()).collect();
        for b in &bells {
            b.sleepers.store(1, Ordering::SeqCst);
        }
        let ((), wakes) = deferring(|| {
            for b in &bells {
                b.ring();
            }
            bells[0].ring();
        });
        assert_eq!(wakes.len(), MAX_DEFERRED, "the first four, once each");
        assert_eq!(bells[0].seq(), 2, "every ring bumps its word");
        assert!(bells[1..].iter().all(|b| b.seq() == 1));
        drop(wakes);
        assert!(!defer_wake(&bells[0].seq), "no scope, no deferral");
        let ((), wakes) = deferring(|| {
            bells[0].ring();
            let got = bells[1].wait_until(WaitStrategy::SLEEP, Some(Duration::ZERO), || None::<()>);
            assert_eq!(got, None);
        });
        assert!(wakes.is_empty(), "the wait issued the deferred wake");
    }

    /// The thread id of the caller.
    fn tid() -> i32 {
        // SAFETY: gettid takes no argument and cannot fail.
        unsafe { libc::syscall(libc::SYS_gettid) as i32 }
    }

    /// Whether thread `tid` of this process is asleep (state S).
    fn asleep(tid: i32) -> bool {
        let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat"));
        let stat = stat.unwrap_or_default();
        stat.rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('S'))
    }

    /// A peer asleep on doorbell `a` (60 s: only a wake ends it early) is
    /// rung by the caller inside a deferring scope; the caller then issues
    /// that wake with its own sleep on `b`, which the peer rings when it
    /// runs. Returns how long the caller took and what `ww` did.
    fn ring_then_sleep(mut ww: WakeWait) -> (Duration, WakeWait) {
        let (a, b) = (Arc::new(Doorbell::new()), Arc::new(Doorbell::new()));
        let (asked, answered) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicBool::new(false)),
        );
        let (pa, pb, pq, pr) = (a.clone(), b.clone(), asked.clone(), answered.clone());
        let (tid_tx, tid_rx) = std::sync::mpsc::channel();
        let peer = std::thread::spawn(move || {
            tid_tx.send(tid()).unwrap();
            let got = pa.wait_until(WaitStrategy::SLEEP, Some(Duration::from_secs(60)), || {
                pq.load(Ordering::SeqCst).then_some(())
            });
            pr.store(true, Ordering::SeqCst);
            pb.ring();
            got
        });
        let peer_tid = tid_rx.recv().unwrap();
        // Registered and in the kernel: only a FUTEX_WAKE ends its sleep
        // before 60 s (a hang guard of 1,000 tries of 10 ms).
        for _ in 0..1000 {
            if a.sleepers.load(Ordering::SeqCst) == 1 && asleep(peer_tid) {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(asleep(peer_tid), "the peer never went to sleep");
        let start = Instant::now();
        b.sleepers.fetch_add(1, Ordering::SeqCst);
        let seen = b.seq();
        let usable = ww.usable();
        let ((), wakes) = if usable {
            deferring(|| {
                asked.store(true, Ordering::SeqCst);
                a.ring();
            })
        } else {
            asked.store(true, Ordering::SeqCst);
            a.ring();
            ((), Wakes::NONE)
        };
        assert_eq!(
            wakes.len(),
            usize::from(usable),
            "deferred only with the io_uring"
        );
        assert!(
            asleep(peer_tid) || !usable,
            "a deferred wake is not issued yet"
        );
        // Spurious returns are allowed: sleep again until answered (each
        // sleep up to 60 s: only the peer's ring ends it early).
        ww.wake_then_wait(wakes, &[(&b.seq, seen)], Duration::from_secs(60));
        while !answered.load(Ordering::SeqCst) && start.elapsed() < Duration::from_secs(60) {
            b.wait_until(WaitStrategy::SLEEP, Some(Duration::from_secs(1)), || {
                answered.load(Ordering::SeqCst).then_some(())
            });
        }
        b.sleepers.fetch_sub(1, Ordering::SeqCst);
        let took = start.elapsed();
        assert_eq!(
            peer.join().unwrap(),
            Some(()),
            "the peer was woken, not timed out"
        );
        assert!(answered.load(Ordering::SeqCst));
        (took, ww)
    }

    /// The brief's unit test: the caller's wake of a sleeping peer and its
    /// own sleep are one io_uring submission; the peer wakes, answers, and
    /// the answer ends the caller's sleep (60 s otherwise). Where this
    /// kernel has no io_uring with the futex opcodes the path says why,
    /// and the plain path is what runs.
    #[test]
    fn one_call_wakes_the_peer_and_sleeps_until_it_rings() {
        let (took, ww) = ring_then_sleep(WakeWait::new(true));
        assert!(
            took < Duration::from_secs(30),
            "{took:?}: ended by the timeout"
        );
        match ww.path() {
            Path::IoUring => assert_eq!(ww.combined(), 1, "the sleep went through the io_uring"),
            Path::Plain(why) => {
                eprintln!("io_uring unavailable here ({why}): the plain path ran");
                assert_eq!(ww.combined(), 0);
            }
            Path::Untried => panic!("never tried"),
        }
    }

    /// Disabled (or unavailable), the wake is issued at once and the sleep
    /// is the plain futex wait: the same handshake, no io_uring.
    #[test]
    fn disabled_it_wakes_at_once_and_sleeps_on_the_futex() {
        let (took, ww) = ring_then_sleep(WakeWait::new(false));
        assert!(
            took < Duration::from_secs(30),
            "{took:?}: ended by the timeout"
        );
        assert_eq!(ww.path(), Path::Plain("disabled".into()));
        assert_eq!(ww.combined(), 0);
    }

    /// Nothing in flight after a call: a sleep that ends at its timeout
    /// (nobody rings) returns, and the ring serves the next call.
    #[test]
    fn a_sleep_that_times_out_leaves_the_ring_usable() {
        let mut ww = WakeWait::new(true);
        if !ww.usable() {
            eprintln!("io_uring unavailable here: {:?}", ww.path());
            return;
        }
        let word = AtomicU32::new(7);
        for _ in 0..3 {
            let start = Instant::now();
            ww.wake_then_wait(Wakes::NONE, &[(&word, 7)], Duration::from_millis(20));
            assert!(
                start.elapsed() >= Duration::from_millis(20),
                "slept until the timeout"
            );
        }
        // A changed value returns at once (EAGAIN inside the ring).
        ww.wake_then_wait(Wakes::NONE, &[(&word, 8)], Duration::from_secs(60));
        assert_eq!(ww.path(), Path::IoUring);
        assert_eq!(ww.combined(), 4);
    }
}
