//! Unit tests of the doorbell (`doorbell.rs`).
use super::*;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

/// The strategy `launch` gives oversubscribed processes.
const RESPIN: WaitStrategy = WaitStrategy {
    spin: Duration::ZERO,
    yields: 1000,
    yield_for: Duration::from_micros(200),
    respin: Duration::from_micros(5),
};

#[test]
fn respin_sees_a_condition_that_turns_true_while_spinning() {
    let bell = Doorbell::new();
    // Yielding and spinning for up to 10 s: a preempted test thread
    // cannot fall through to the sleep before probe 20.
    let strategy = WaitStrategy {
        yield_for: Duration::from_secs(10),
        ..RESPIN
    };
    let mut probes = 0u32;
    // False on the first probes (the one before yielding included),
    // true during the spin that follows a yield; it reports whether a
    // sleeper was registered at that moment (the sleep phase re-checks
    // with `sleepers` raised).
    let got = bell.wait_until(strategy, Some(Duration::from_secs(30)), || {
        probes += 1;
        (probes == 20).then(|| bell.sleepers.load(Ordering::SeqCst))
    });
    assert_eq!(
        got,
        Some(0),
        "seen while spinning, not from the sleep phase"
    );
}

#[test]
fn respin_ends_in_a_sleep_that_a_ring_wakes() {
    let bell = Arc::new(Doorbell::new());
    let flag = Arc::new(AtomicBool::new(false));
    let (b, f) = (bell.clone(), flag.clone());
    let t = std::thread::spawn(move || {
        // Long past the 200 µs of yielding and spinning: the waiter is
        // asleep on the futex by then (or about to be).
        std::thread::sleep(Duration::from_millis(50));
        f.store(true, Ordering::SeqCst);
        b.ring();
    });
    let start = Instant::now();
    let got = bell.wait_until(RESPIN, Some(Duration::from_secs(30)), || {
        flag.load(Ordering::SeqCst).then_some(())
    });
    t.join().unwrap();
    assert_eq!(got, Some(()));
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "woken by the ring, not the timeout"
    );
}

/// Issue 11 item 10: a waiter whose `sleepers` count is zeroed (by a
/// process that should not write there) gets no FUTEX_WAKE; it used to
/// sleep for ever in a wait without a timeout. Now it re-checks.
#[test]
fn a_wait_for_ever_survives_a_zeroed_sleepers_word() {
    let bell = Arc::new(Doorbell::new());
    let flag = Arc::new(AtomicBool::new(false));
    let (b, f) = (bell.clone(), flag.clone());
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        b.wait_until(WaitStrategy::SLEEP, None, || {
            f.load(Ordering::SeqCst).then_some(())
        });
        let _ = done_tx.send(());
    });
    while bell.sleepers.load(Ordering::SeqCst) == 0 {
        std::thread::sleep(Duration::from_millis(1));
    }
    bell.sleepers.store(0, Ordering::SeqCst);
    flag.store(true, Ordering::SeqCst);
    bell.ring(); // sees no sleeper: no wake-up
                 // Hang guard only (a lost waiter never returns).
    assert!(
        done_rx.recv_timeout(Duration::from_secs(60)).is_ok(),
        "the waiter slept for ever after its wake-up was lost"
    );
}

/// A compact requester is a sleeper before its request leaves: a reply
/// published between its last check and its sleep rings it (the
/// registration is what makes the replier's `ring` see it). Spread, it
/// publishes first and waits as usual. A failed publish leaves no
/// sleeper behind (every ring would then make a system call).
#[test]
fn publish_then_wait_registers_before_publishing() {
    let bell = Doorbell::new();
    let flag = AtomicBool::new(false);
    let mut checks = 0;
    let got = Doorbell::publish_then_wait(
        &[&bell],
        WaitStrategy::SLEEP,
        Some(Duration::from_secs(30)),
        || Ok::<_, ()>(bell.sleepers.load(Ordering::SeqCst)),
        || {
            checks += 1;
            let seen = flag.load(Ordering::SeqCst);
            if checks == 1 {
                // The reply lands right after this check said no.
                flag.store(true, Ordering::SeqCst);
                bell.ring();
            }
            seen.then_some(checks)
        },
    );
    let (sleepers_at_publish, checks_at_return) = (got.unwrap().0, got.unwrap().1);
    assert_eq!(sleepers_at_publish, 1, "registered before publishing");
    assert_eq!(checks_at_return, Some(2), "found after the one sleep");
    assert_eq!(
        bell.seq(),
        1,
        "the reply's ring saw the sleeper and woke it"
    );
    assert_eq!(bell.sleepers.load(Ordering::SeqCst), 0);

    let spread = Doorbell::publish_then_wait(
        &[&bell],
        RESPIN,
        Some(Duration::from_secs(30)),
        || Ok::<_, ()>(bell.sleepers.load(Ordering::SeqCst)),
        || Some(()),
    );
    assert_eq!(
        spread,
        Ok((0, Some(()))),
        "spread: no sleeper while publishing"
    );

    let failed: Result<((), Option<()>), &str> = Doorbell::publish_then_wait(
        &[&bell],
        WaitStrategy::SLEEP,
        Some(Duration::from_secs(30)),
        || Err("ring full"),
        || None,
    );
    assert_eq!(failed, Err("ring full"));
    assert_eq!(bell.sleepers.load(Ordering::SeqCst), 0, "no sleeper left");
}

#[test]
fn respin_honours_the_timeout() {
    let bell = Doorbell::new();
    let start = Instant::now();
    let got: Option<()> = bell.wait_until(RESPIN, Some(Duration::from_millis(20)), || None);
    assert_eq!(got, None);
    let took = start.elapsed();
    assert!(took >= Duration::from_millis(20), "{took:?}");
    assert!(
        took < Duration::from_secs(10),
        "{took:?}: the timeout was not honoured"
    );
}

/// One FUTEX_WAKE per registration: once a ring has woken the sleepers,
/// further rings make no system call until one registers again (each wake
/// bumps `seq`, so `seq` counts them). Before, every ring while a woken
/// sleeper had not yet run made one: 99.9% of a mesh flood's LPs' system
/// calls, each waking nobody.
#[test]
fn a_sleeper_is_woken_once_until_it_registers_again() {
    let bell = Doorbell::new();
    bell.ring();
    assert_eq!(bell.seq(), 0, "no sleeper: no wake");
    bell.register();
    bell.ring();
    assert_eq!(bell.seq(), 1, "the registered sleeper is woken");
    for _ in 0..100 {
        bell.ring();
        bell.ring_relaxed();
    }
    assert_eq!(bell.seq(), 1, "woken already: no more wakes");
    bell.register(); // a second sleeper registers before the first left
    bell.ring();
    assert_eq!(bell.seq(), 2, "a new registration is woken");
    bell.leave();
    bell.ring();
    assert_eq!(bell.seq(), 3, "a sleeper left, the other is still counted");
    bell.leave();
    assert_eq!(
        bell.sleepers.load(Ordering::SeqCst),
        0,
        "no sleeper, no bit"
    );
    bell.ring();
    assert_eq!(bell.seq(), 3, "nobody left to wake");
}

/// No publish is lost to a skipped wake: a consumer that sleeps by the
/// protocol with no cap on its sleep (so a lost wake-up is a hang, which the
/// watchdog turns into a failure) and a producer that publishes 20,000
/// items in bursts, ringing after each. Most rings find `WOKEN` set and
/// skip; the consumer still sees the last item.
#[test]
fn skipped_wakes_lose_no_publish() {
    use std::sync::atomic::AtomicU64;
    const N: u64 = 20_000;
    let bell = Arc::new(Doorbell::new());
    let published = Arc::new(AtomicU64::new(0));
    let (b, p) = (bell.clone(), published.clone());
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let seen = Arc::new(AtomicU64::new(0));
    let seen2 = seen.clone();
    std::thread::spawn(move || {
        while seen2.load(Ordering::Relaxed) < N {
            if p.load(Ordering::Acquire) > seen2.load(Ordering::Relaxed) {
                seen2.store(p.load(Ordering::Acquire), Ordering::Relaxed);
                continue;
            }
            b.register();
            let s = b.seq.load(Ordering::Acquire);
            if p.load(Ordering::Acquire) == seen2.load(Ordering::Relaxed) {
                crate::sync::futex_wait(&b.seq, s, None);
            }
            b.leave();
        }
        let _ = done_tx.send(());
    });
    for i in 1..=N {
        published.store(i, Ordering::Release);
        bell.ring();
        if i % 16 == 0 {
            std::thread::yield_now();
        }
    }
    // Hang guard only: a lost wake-up leaves the consumer asleep for ever.
    assert!(
        done_rx.recv_timeout(Duration::from_secs(60)).is_ok(),
        "a wake-up was lost: the consumer sleeps with {} of {N} seen",
        seen.load(Ordering::Relaxed)
    );
}

/// Back from a hand-over after a publish (spread, in a stream), a wait
/// spins before its first yield (`handover::HANDED_BACK_SPIN`): a
/// condition that turns true on the third probe is seen while
/// spinning, with no sleeper registered. Without the hand-over, and in
/// the next wait (the first one took it), the same wait yields once and
/// then sleeps (no spin after its yield), and the third probe is the
/// sleep phase's re-check, with the sleeper registered. A wait that
/// sleeps at once (compact) never spins: its second probe is that
/// re-check.
#[test]
fn a_wait_spins_first_only_after_a_hand_over_came_back() {
    const ONE_YIELD: WaitStrategy = WaitStrategy {
        spin: Duration::ZERO,
        yields: 1,
        yield_for: Duration::from_secs(10),
        respin: Duration::ZERO,
    };
    let bell = Doorbell::new();
    let probe = |strategy: WaitStrategy, n: u32| {
        let mut probes = 0u32;
        bell.wait_until(strategy, Some(Duration::from_secs(30)), || {
            probes += 1;
            (probes == n).then(|| bell.sleepers.load(Ordering::SeqCst))
        })
    };
    crate::handover::pretend_handed_back();
    assert_eq!(probe(ONE_YIELD, 3), Some(0), "seen while spinning");
    assert_eq!(probe(ONE_YIELD, 3), Some(1), "taken by the first wait");
    crate::handover::pretend_handed_back();
    assert_eq!(
        probe(WaitStrategy::SLEEP, 2),
        Some(1),
        "compact: asleep at once"
    );
    assert_eq!(probe(ONE_YIELD, 3), Some(1), "and taken by it");
}
