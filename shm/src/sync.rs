//! The one place where atomics, fences and the futex come from.
//!
//! Under `--cfg loom` the atomics are loom's and the futex is replaced by a
//! yield, so the ring's index protocol can be model-checked
//! (`RUSTFLAGS="--cfg loom" cargo test -p shmcollab-shm --release --test loom`).
//! Everything else uses `std` atomics, which have the same size and alignment
//! as the integers they wrap and are therefore valid inside shared memory.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};

use std::time::Duration;

/// Hint to the CPU that we are in a spin loop.
#[inline]
pub(crate) fn spin_hint() {
    #[cfg(loom)]
    loom::thread::yield_now();
    #[cfg(not(loom))]
    std::hint::spin_loop();
}

/// Give the core to another runnable thread.
#[inline]
pub(crate) fn yield_now() {
    #[cfg(loom)]
    loom::thread::yield_now();
    #[cfg(not(loom))]
    rustix::thread::sched_yield();
}

/// Sleep on `word` while it equals `expected`, at most `timeout`.
///
/// A shared (not process-private) futex: it works across processes that map
/// the same page. Spurious returns are allowed; callers re-check their
/// condition.
#[cfg(not(loom))]
pub(crate) fn futex_wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) {
    use rustix::thread::futex;
    let ts = timeout.map(|d| rustix::time::Timespec {
        tv_sec: d.as_secs().min(i64::MAX as u64) as i64,
        tv_nsec: i64::from(d.subsec_nanos()),
    });
    // EAGAIN (value changed), EINTR and ETIMEDOUT are all "go and look again".
    let _ = futex::wait(word, futex::Flags::empty(), expected, ts.as_ref());
}

/// Sleep until any of `words` differs from its expected value (each a
/// shared futex word), at most `timeout`. One word is a plain futex wait;
/// several are one `futex_waitv` (Linux 5.16). Where the kernel lacks
/// `futex_waitv`, the first word is waited on for at most
/// [`WAITV_FALLBACK_SLICE`] at a time: a ring of the others is then seen
/// that late, never lost (callers re-check their condition).
#[cfg(not(loom))]
pub(crate) fn futex_wait_any(words: &[(&AtomicU32, u32)], timeout: Option<Duration>) {
    use std::sync::atomic::AtomicBool;
    static NO_WAITV: AtomicBool = AtomicBool::new(false);
    match words {
        [] => {}
        [(w, v)] => futex_wait(w, *v, timeout),
        _ if NO_WAITV.load(Ordering::Relaxed) => {
            let slice = timeout.map_or(WAITV_FALLBACK_SLICE, |t| t.min(WAITV_FALLBACK_SLICE));
            futex_wait(words[0].0, words[0].1, Some(slice));
        }
        _ => {
            if futex_waitv(words, timeout) == Err(rustix::io::Errno::NOSYS) {
                NO_WAITV.store(true, Ordering::Relaxed);
            }
        }
    }
}

/// How long a sleeper on several doorbells waits on the first alone when
/// the kernel has no `futex_waitv`.
#[cfg(not(loom))]
pub const WAITV_FALLBACK_SLICE: Duration = Duration::from_millis(1);

/// `futex_waitv(2)` on shared 32-bit words with a relative `timeout`.
#[cfg(not(loom))]
fn futex_waitv(
    words: &[(&AtomicU32, u32)],
    timeout: Option<Duration>,
) -> Result<(), rustix::io::Errno> {
    /// `struct futex_waitv` of the kernel's uapi.
    #[repr(C)]
    struct FutexWaitv {
        val: u64,
        uaddr: u64,
        flags: u32,
        reserved: u32,
    }
    /// FUTEX2_SIZE_U32; without FUTEX2_PRIVATE: the words are shared.
    const FUTEX2_SIZE_U32: u32 = 0x02;
    let mut v: [FutexWaitv; 4] = std::array::from_fn(|_| FutexWaitv {
        val: 0,
        uaddr: 0,
        flags: 0,
        reserved: 0,
    });
    let n = words.len().min(v.len());
    for (slot, (w, val)) in v.iter_mut().zip(words) {
        *slot = FutexWaitv {
            val: u64::from(*val),
            uaddr: w.as_ptr() as u64,
            flags: FUTEX2_SIZE_U32,
            reserved: 0,
        };
    }
    // futex_waitv takes an absolute CLOCK_MONOTONIC deadline.
    let deadline = timeout.map(|t| {
        let now = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
        let nanos = now.tv_nsec as u64 + u64::from(t.subsec_nanos());
        libc::timespec {
            tv_sec: (now.tv_sec as u64)
                .saturating_add(t.as_secs())
                .saturating_add(nanos / 1_000_000_000)
                .min(i64::MAX as u64) as libc::time_t,
            tv_nsec: (nanos % 1_000_000_000) as libc::c_long,
        }
    });
    let ts = deadline
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: `v` holds `n` initialised futex_waitv entries pointing at
    // live, aligned u32 atomics (borrowed for the call); `ts` is null or
    // points at a timespec on our stack; the kernel only reads both.
    let r = unsafe {
        libc::syscall(
            libc::SYS_futex_waitv,
            v.as_ptr(),
            n as libc::c_uint,
            0 as libc::c_uint,
            ts,
            libc::CLOCK_MONOTONIC,
        )
    };
    if r < 0 {
        // EAGAIN (a value changed), EINTR and ETIMEDOUT: look again.
        let e = rustix::io::Errno::from_raw_os_error(
            std::io::Error::last_os_error().raw_os_error().unwrap_or(0),
        );
        if e == rustix::io::Errno::NOSYS {
            return Err(e);
        }
    }
    Ok(())
}

/// Wake up to `n` sleepers on `word` (`u32::MAX`: all); how many were
/// woken (0 on an error). The kernel reads the count as an `int`, and a
/// negative one wakes a single sleeper: `u32::MAX` (-1) woke one of a
/// doorbell's sleepers, not all; it is clamped to `i32::MAX`.
#[cfg(not(loom))]
pub(crate) fn futex_wake(word: &AtomicU32, n: u32) -> usize {
    use rustix::thread::futex;
    futex::wake(word, futex::Flags::empty(), n.min(i32::MAX as u32)).unwrap_or(0)
}

#[cfg(loom)]
pub(crate) fn futex_wait(word: &AtomicU32, expected: u32, _timeout: Option<Duration>) {
    if word.load(Ordering::SeqCst) == expected {
        loom::thread::yield_now();
    }
}

#[cfg(loom)]
pub(crate) fn futex_wake(_word: &AtomicU32, _n: u32) -> usize {
    0
}

#[cfg(loom)]
pub(crate) fn futex_wait_any(_words: &[(&AtomicU32, u32)], _timeout: Option<Duration>) {
    loom::thread::yield_now();
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// `futex_wake` says how many it woke: the doorbell hands the CPU over
    /// only after a wake that woke someone.
    #[test]
    fn a_wake_counts_the_sleepers_it_woke() {
        let word = Arc::new(AtomicU32::new(0));
        assert_eq!(futex_wake(&word, u32::MAX), 0, "nobody sleeps yet");
        let w = word.clone();
        let t = std::thread::spawn(move || {
            while w.load(Ordering::SeqCst) == 0 {
                futex_wait(&w, 0, Some(Duration::from_secs(120)));
            }
        });
        // The sleeper may not be asleep yet: wake until a wake finds it
        // (10 s of 1 ms tries: a hang guard).
        let mut woke = 0;
        for _ in 0..10_000 {
            woke = futex_wake(&word, u32::MAX);
            if woke > 0 {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(woke, 1, "one sleeper, woken once");
        word.store(1, Ordering::SeqCst);
        futex_wake(&word, u32::MAX);
        t.join().unwrap();
        assert_eq!(futex_wake(&word, u32::MAX), 0, "the sleeper is gone");
    }

    /// `u32::MAX` wakes every sleeper (a registry doorbell has one per
    /// manager): passed through as -1, it woke one.
    #[test]
    fn a_wake_of_all_wakes_every_sleeper() {
        let word = Arc::new(AtomicU32::new(0));
        let sleepers: Vec<_> = (0..3)
            .map(|_| {
                let w = word.clone();
                std::thread::spawn(move || {
                    while w.load(Ordering::SeqCst) == 0 {
                        futex_wait(&w, 0, Some(Duration::from_secs(10)));
                    }
                })
            })
            .collect();
        // Wake (without changing the word) until one wake finds all three
        // asleep: each woken one sleeps again (10 s of 1 ms tries: a hang
        // guard). One wake that reports 3 is what the test asks for.
        let mut most = 0;
        for _ in 0..10_000 {
            std::thread::sleep(Duration::from_millis(1));
            most = most.max(futex_wake(&word, u32::MAX));
            if most == 3 {
                break;
            }
        }
        word.store(1, Ordering::SeqCst);
        futex_wake(&word, u32::MAX);
        for t in sleepers {
            t.join().unwrap();
        }
        assert_eq!(most, 3, "one wake of all woke {most} of 3 sleepers");
    }

    /// A wake on the second of two words ends one `futex_wait_any` (a
    /// manager sleeping on its registry doorbell and its LP's).
    #[test]
    fn a_wake_on_either_word_ends_the_wait() {
        for which in 0..2 {
            let words = Arc::new([AtomicU32::new(0), AtomicU32::new(0)]);
            let (tx, rx) = std::sync::mpsc::channel();
            let w = words.clone();
            std::thread::spawn(move || {
                // One call with a long timeout: only a wake ends it early.
                futex_wait_any(&[(&w[0], 0), (&w[1], 0)], Some(Duration::from_secs(120)));
                let _ = tx.send(());
            });
            // The waiter may not be asleep yet: bump and wake until it ends
            // (a bump before it sleeps makes its wait return at once).
            let mut ended = false;
            for _ in 0..2000 {
                words[which].fetch_add(1, Ordering::SeqCst);
                futex_wake(&words[which], u32::MAX);
                if rx.recv_timeout(Duration::from_millis(5)).is_ok() {
                    ended = true;
                    break;
                }
            }
            // Hang guard: 10 s of wakes on word `which` did not end it.
            assert!(ended, "a wake on word {which} did not end the wait");
        }
    }
}
