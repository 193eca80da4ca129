//! The collaboration's load mode (see `shmcollab_shm::load`): compact (every
//! process on one CPU, every wait a sleep) while its CPU use is light, spread
//! (LPs and managers on separate CPUs, waits that spin and yield first) once
//! it grows, with hysteresis; paired instead of spread (each LP on its own
//! manager's CPU, every wait a sleep) while at least [`PAIR_SHARE`] of the
//! LPs' messages are transactions their own managers serve (each manager
//! counts them in its registry slot beside its LP's messages), back to
//! spread below [`UNPAIR_SHARE`] or when an LP computes, each after
//! [`PAIR_PERIODS`] periods.
//!
//! The two modes are judged by different measures, because in spread mode
//! spinning waiters use CPU whatever the load:
//! * compact -> spread: the CPU time of every process of the collaboration
//!   (supervisor, managers, LPs) in one period, from their CPU clocks. While
//!   compact every wait sleeps, so this is the work done. More than
//!   [`SPREAD_AT`] of one core in [`HOT_PERIODS`] periods in a row spreads;
//!   so does a short look between periods that finds the CPU full or a
//!   burst of messages ([`Hysteresis::burst`]). (Time spent waiting for the
//!   CPU behind other programs does not count: it made a light
//!   collaboration spread on a busy machine; one starved that way stays
//!   compact.)
//! * spread -> compact: the messages the LPs sent in the period (each manager
//!   counts its LP's in its registry slot) times what a message cost while
//!   compact (learned there; [`DEFAULT_MSG_NS`] until then): the CPU the
//!   same traffic would take compact. Below [`COMPACT_AT`] of one core for
//!   [`COOL_PERIODS`] periods in a row, with no LP computing on every CPU,
//!   goes back.
//!
//! A collaboration that spreads again by CPU soon after going back (busy
//! without messages: LPs polling, or computing inside their waits) would
//! flap every few periods; each such flap doubles the quiet periods needed
//! to go back next time (up to [`MAX_COOL_PERIODS`]), and a long compact
//! stay resets it.
//!
//! The gap between the two thresholds and the longer wait before going back
//! are the hysteresis: a back-to-back run spreads within a short look or two
//! and stays spread; a paced one whose compact CPU stays below half a core stays
//! compact.

use shmcollab_shm::LoadMode;
use std::time::Duration;

/// Compact CPU use, as a share of one core, above which the collaboration
/// spreads.
pub const SPREAD_AT: f64 = 0.5;
/// Estimated compact CPU use below which a spread collaboration goes back.
pub const COMPACT_AT: f64 = 0.25;
/// Periods in a row above [`SPREAD_AT`] before spreading.
pub const HOT_PERIODS: u32 = 1;
/// Periods in a row below [`COMPACT_AT`] before going back.
pub const COOL_PERIODS: u32 = 8;
/// The most quiet periods a flapping collaboration must wait to go back
/// (64 s at 250 ms).
pub const MAX_COOL_PERIODS: u32 = 256;
/// Compact periods after going back within which spreading again by CPU
/// counts as a flap.
const FLAP_WITHIN: u32 = 16;

/// Share of the LPs' messages that are transactions their own manager
/// serves at or above which a busy collaboration is paired rather than
/// spread (each LP and its manager on one CPU, every wait a sleep: the
/// commits of `commit_8lp` went 1.3-2.2 x faster, a hop between two LPs
/// about 15 x slower; benches/README.md, "Transactions: CPU per commit").
pub const PAIR_SHARE: f64 = 0.9;
/// Share below which a paired collaboration spreads again.
pub const UNPAIR_SHARE: f64 = 0.5;
/// Periods in a row on the other side of a share before changing.
pub const PAIR_PERIODS: u32 = 2;

/// CPU per message assumed before one was measured compact: about what a
/// paced LP round trip (two messages) costs on the development VM.
pub const DEFAULT_MSG_NS: f64 = 35_000.0;
/// Messages in a period below which the cost per message is not learned from
/// it (timers and the pacing sleeps would dominate).
const LEARN_MIN_MSGS: u64 = 50;

/// What the governor saw of the whole collaboration over one period.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// CPU time of all its processes, summed.
    pub cpu_ns: u64,
    /// Messages its LPs sent.
    pub msgs: u64,
    /// Of those, transaction frames the LPs' own managers served.
    pub own_txn: u64,
    /// Length of the period.
    pub dt: Duration,
    /// An LP computes on every CPU (the per-LP governor widened it).
    pub lp_wide: bool,
}

/// The mode and what decides the next one.
#[derive(Debug, Clone, PartialEq)]
pub struct Hysteresis {
    mode: LoadMode,
    /// The mode never changes (`placement = "spread"` or `"compact"`).
    fixed: bool,
    hot: u32,
    cool: u32,
    msg_ns: f64,
    /// Quiet periods needed to go back now (doubles at each flap).
    cool_needed: u32,
    /// Periods since the last change of mode.
    since: u32,
    /// Periods in a row whose traffic said "pair" (spread) or "unpair"
    /// (paired).
    pair: u32,
}

impl Default for Hysteresis {
    /// Starts compact: a typical service is light.
    fn default() -> Self {
        Hysteresis {
            mode: LoadMode::Compact,
            fixed: false,
            hot: 0,
            cool: 0,
            msg_ns: DEFAULT_MSG_NS,
            cool_needed: COOL_PERIODS,
            // Starting is not a change of mode: the first spread is no flap.
            since: u32::MAX / 2,
            pair: 0,
        }
    }
}

impl Hysteresis {
    /// A mode that never changes.
    pub fn fixed(mode: LoadMode) -> Hysteresis {
        Hysteresis {
            mode,
            fixed: true,
            ..Hysteresis::default()
        }
    }

    /// The current mode.
    pub fn mode(&self) -> LoadMode {
        self.mode
    }

    /// While compact, a short look between periods: `msgs` sent in `dt`,
    /// `own_txn` of them transactions with the LPs' own managers. Spreads
    /// (pairs, if at least [`PAIR_SHARE`] of them are those) now if they
    /// would take more than [`SPREAD_AT`] of a core at the cost per message
    /// learned compact. A back-to-back, flooding or committing run then
    /// moves within a short look instead of a period.
    pub fn burst(&mut self, msgs: u64, own_txn: u64, dt: Duration) -> bool {
        let period_ns = dt.as_nanos().max(1) as f64;
        let busy = msgs >= LEARN_MIN_MSGS && msgs as f64 * self.msg_ns > SPREAD_AT * period_ns;
        if self.fixed || self.mode != LoadMode::Compact || !busy {
            return false;
        }
        self.hot = 0;
        self.pair = 0;
        self.mode = Self::busy_mode(msgs, own_txn);
        true
    }

    /// Where a compact collaboration that got busy goes: paired if at
    /// least [`PAIR_SHARE`] of its `msgs` are transactions with the LPs' own
    /// managers, else spread.
    fn busy_mode(msgs: u64, own_txn: u64) -> LoadMode {
        if Self::txn_share(msgs, own_txn).is_some_and(|x| x >= PAIR_SHARE) {
            LoadMode::Paired
        } else {
            LoadMode::Spread
        }
    }

    /// The share of `msgs` that are transactions served by the LPs' own
    /// managers (`own_txn` of them), or `None` with too few messages to
    /// tell. Counts are untrusted: `own_txn` above `msgs` reads as all.
    fn txn_share(msgs: u64, own_txn: u64) -> Option<f64> {
        (msgs >= LEARN_MIN_MSGS).then(|| own_txn.min(msgs) as f64 / msgs as f64)
    }

    /// Busy and not compact: spread, or paired when the traffic is
    /// transactions with the LPs' own managers for [`PAIR_PERIODS`]
    /// periods in a row (and back when it is not).
    fn pair_or_spread(&mut self, s: &Sample) {
        let share = Self::txn_share(s.msgs, s.own_txn);
        let other = match self.mode {
            LoadMode::Paired => s.lp_wide || share.is_some_and(|x| x < UNPAIR_SHARE),
            _ => !s.lp_wide && share.is_some_and(|x| x >= PAIR_SHARE),
        };
        self.pair = if other { self.pair + 1 } else { 0 };
        if self.pair >= PAIR_PERIODS {
            self.pair = 0;
            self.mode = match self.mode {
                LoadMode::Paired => LoadMode::Spread,
                _ => LoadMode::Paired,
            };
            self.since = 0;
        }
    }

    /// Takes one period's sample; returns the mode from now on.
    pub fn next(&mut self, s: Sample) -> LoadMode {
        let period_ns = s.dt.as_nanos().max(1) as f64;
        if self.fixed {
            return self.mode;
        }
        self.since = self.since.saturating_add(1);
        match self.mode {
            LoadMode::Compact => {
                if s.msgs >= LEARN_MIN_MSGS {
                    let ns = (s.cpu_ns as f64 / s.msgs as f64).clamp(100.0, 1e7);
                    self.msg_ns = 0.5 * self.msg_ns + 0.5 * ns;
                }
                if s.cpu_ns as f64 > SPREAD_AT * period_ns {
                    self.hot += 1;
                } else {
                    self.hot = 0;
                }
                if self.since > 4 * FLAP_WITHIN {
                    self.cool_needed = COOL_PERIODS;
                }
                if self.hot >= HOT_PERIODS {
                    self.hot = 0;
                    if self.since <= FLAP_WITHIN {
                        self.cool_needed = (self.cool_needed * 2).min(MAX_COOL_PERIODS);
                    }
                    self.mode = Self::busy_mode(s.msgs, s.own_txn);
                    self.since = 0;
                    self.pair = 0;
                }
            }
            LoadMode::Spread | LoadMode::Paired | LoadMode::Unset => {
                let compact_ns = s.msgs as f64 * self.msg_ns;
                if !s.lp_wide && compact_ns < COMPACT_AT * period_ns {
                    self.cool += 1;
                } else {
                    self.cool = 0;
                }
                if self.cool >= self.cool_needed {
                    self.cool = 0;
                    self.pair = 0;
                    self.mode = LoadMode::Compact;
                    self.since = 0;
                } else {
                    self.pair_or_spread(&s);
                }
            }
        }
        self.mode
    }
}

/// CPU time of process `pid` so far (all its threads), in ns, from its CPU
/// clock; `None` if it is gone.
pub fn process_cpu_ns(pid: u32) -> Option<u64> {
    if pid == 0 {
        // Would be the calling process.
        return None;
    }
    let pid = i32::try_from(pid).ok()?;
    // The process's CPU clock, as the kernel's ABI spells it
    // (`MAKE_PROCESS_CPUCLOCK(pid, CPUCLOCK_SCHED)` in
    // include/linux/posix-timers.h): what clock_getcpuclockid(3) returns,
    // without its clock_getres check (a system call per process per look,
    // a fifth of the governor's CPU at 256 LPs). A pid that is gone makes
    // clock_gettime fail: None.
    let clock = nix::time::ClockId::from_raw((!pid << 3) | 2);
    let t = nix::time::clock_gettime(clock).ok()?;
    let ns = i128::from(t.tv_sec()) * 1_000_000_000 + i128::from(t.tv_nsec());
    u64::try_from(ns).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: Duration = Duration::from_millis(250);

    fn sample(cpu_ms: u64, msgs: u64) -> Sample {
        Sample {
            cpu_ns: cpu_ms * 1_000_000,
            msgs,
            own_txn: 0,
            dt: P,
            lp_wide: false,
        }
    }

    /// `msgs` of which `txn` are transactions with the LPs' own managers.
    fn txn_sample(cpu_ms: u64, msgs: u64, txn: u64) -> Sample {
        Sample {
            own_txn: txn,
            ..sample(cpu_ms, msgs)
        }
    }

    /// LPs that commit to their own managers are paired when busy, from
    /// compact at once and from spread after PAIR_PERIODS; talk between
    /// LPs spreads them again; quiet, they go compact as from spread.
    #[test]
    fn transactions_with_the_own_manager_pair_and_other_traffic_spreads() {
        let mut h = Hysteresis::default();
        assert_eq!(h.next(txn_sample(300, 5_000, 4_900)), LoadMode::Paired);
        for _ in 0..20 {
            assert_eq!(h.next(txn_sample(400, 5_000, 5_000)), LoadMode::Paired);
        }
        // Mostly messages between LPs now (one period is not enough).
        assert_eq!(h.next(txn_sample(400, 50_000, 5_000)), LoadMode::Paired);
        assert_eq!(h.next(txn_sample(400, 50_000, 5_000)), LoadMode::Spread);
        // Commits again: after PAIR_PERIODS periods.
        assert_eq!(h.next(txn_sample(400, 5_000, 5_000)), LoadMode::Spread);
        assert_eq!(h.next(txn_sample(400, 5_000, 5_000)), LoadMode::Paired);
        // Too few messages to tell: stays.
        assert_eq!(h.next(txn_sample(400, 10, 0)), LoadMode::Paired);
        // A computing LP spreads it.
        let wide = Sample {
            lp_wide: true,
            ..txn_sample(400, 5_000, 5_000)
        };
        assert_eq!(h.next(wide), LoadMode::Paired);
        assert_eq!(h.next(wide), LoadMode::Spread);
        // A busy compact collaboration of messages spreads, as before.
        let mut h = Hysteresis::default();
        assert_eq!(h.next(txn_sample(300, 5_000, 100)), LoadMode::Spread);
        // Garbage: more transactions than messages reads as all.
        assert_eq!(h.next(txn_sample(300, 5_000, u64::MAX)), LoadMode::Spread);
        assert_eq!(h.next(txn_sample(300, 5_000, u64::MAX)), LoadMode::Paired);
        // Quiet: compact after the cool periods.
        let mut mode = LoadMode::Paired;
        for _ in 0..COOL_PERIODS {
            mode = h.next(txn_sample(300, 0, 0));
        }
        assert_eq!(mode, LoadMode::Compact);
    }

    #[test]
    fn a_paced_load_stays_compact_and_a_saturating_one_spreads_and_stays() {
        let mut h = Hysteresis::default();
        assert_eq!(h.mode(), LoadMode::Compact);
        // 1,000 round trips a second (500 messages a period) at 66 µs each:
        // 16.5 ms of CPU per 250 ms.
        for _ in 0..20 {
            assert_eq!(h.next(sample(16, 500)), LoadMode::Compact);
        }
        // Learned: about 32 µs a message.
        assert!((h.msg_ns - 32_000.0).abs() < 2_000.0, "{}", h.msg_ns);
        // Back to back: one CPU saturated.
        assert_eq!(h.next(sample(250, 60_000)), LoadMode::Spread);
        // Spinning now: two cores busy, and the traffic stays high.
        for _ in 0..20 {
            assert_eq!(h.next(sample(500, 200_000)), LoadMode::Spread);
        }
        // The run ends: it takes COOL_PERIODS quiet periods to go back.
        for _ in 0..COOL_PERIODS - 1 {
            assert_eq!(h.next(sample(400, 0)), LoadMode::Spread);
        }
        assert_eq!(h.next(sample(400, 0)), LoadMode::Compact);
    }

    #[test]
    fn a_computing_lp_keeps_it_spread_and_one_idle_period_does_not_bring_it_back() {
        let mut h = Hysteresis::default();
        // A burner: CPU without messages.
        assert_eq!(h.next(sample(240, 0)), LoadMode::Spread);
        let wide = Sample {
            lp_wide: true,
            ..sample(500, 0)
        };
        for _ in 0..3 * COOL_PERIODS {
            assert_eq!(h.next(wide), LoadMode::Spread);
        }
        // Traffic that would need 40% of a core compact, then a gap.
        for _ in 0..COOL_PERIODS - 1 {
            assert_eq!(h.next(sample(300, 0)), LoadMode::Spread);
        }
        assert_eq!(h.next(sample(300, 3_000)), LoadMode::Spread);
        for _ in 0..COOL_PERIODS - 1 {
            assert_eq!(h.next(sample(300, 100)), LoadMode::Spread);
        }
        assert_eq!(h.next(sample(300, 100)), LoadMode::Compact);
    }

    #[test]
    fn a_burst_spreads_between_periods_and_a_trickle_does_not() {
        let mut h = Hysteresis::default();
        let fast = Duration::from_millis(20);
        // 1,000 round trips a second: 40 messages in 20 ms.
        assert!(!h.burst(40, 0, fast));
        // Back to back at 15 µs a round trip: some 2,600 messages.
        assert!(h.burst(2_600, 0, fast));
        assert_eq!(h.mode(), LoadMode::Spread);
        // Only compact bursts.
        assert!(!h.burst(2_600, 0, fast));
        assert!(!h.burst(u64::MAX, 0, Duration::ZERO));
        // A burst of commits to the LPs' own managers pairs at once.
        let mut h = Hysteresis::default();
        assert!(h.burst(2_600, 2_500, fast));
        assert_eq!(h.mode(), LoadMode::Paired);
    }

    /// Busy without messages (LPs polling): compact finds the CPU full,
    /// spread sees no messages; each flap doubles the wait to go back.
    #[test]
    fn a_collaboration_busy_without_messages_flaps_ever_more_slowly() {
        let mut h = Hysteresis::default();
        let mut switches = Vec::new();
        let mut last = h.mode();
        for i in 0..400 {
            let m = h.next(sample(200, 0));
            if m != last {
                switches.push(i);
                last = m;
            }
        }
        let gaps: Vec<u32> = switches.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(switches.len() >= 4, "{switches:?}");
        // The gaps alternate: periods spread (waiting to go back), compact.
        let back: Vec<u32> = gaps.iter().step_by(2).copied().collect();
        assert!(back.windows(2).all(|w| w[1] >= w[0]), "{gaps:?}");
        assert!(
            back.last().copied().unwrap_or(0) >= 4 * COOL_PERIODS,
            "{gaps:?}"
        );
    }

    #[test]
    fn a_fixed_mode_stays() {
        let mut h = Hysteresis::fixed(LoadMode::Compact);
        assert!(!h.burst(u64::MAX, 0, P));
        assert_eq!(h.next(sample(250, 100_000)), LoadMode::Compact);
        let mut h = Hysteresis::fixed(LoadMode::Spread);
        for _ in 0..2 * COOL_PERIODS {
            assert_eq!(h.next(sample(0, 0)), LoadMode::Spread);
        }
    }

    #[test]
    fn a_garbage_message_count_does_not_panic() {
        let mut h = Hysteresis::default();
        let huge = |cpu_ns| Sample {
            cpu_ns,
            msgs: u64::MAX,
            own_txn: 0,
            dt: P,
            lp_wide: false,
        };
        assert_eq!(h.next(huge(0)), LoadMode::Compact);
        assert_eq!(h.next(huge(u64::MAX)), LoadMode::Spread);
        assert_eq!(h.next(huge(0)), LoadMode::Spread);
        assert!(h.msg_ns.is_finite() && h.msg_ns > 0.0);
    }

    #[test]
    fn own_cpu_clock() {
        let a = process_cpu_ns(std::process::id()).unwrap();
        let mut x = 0u64;
        for i in 0..1_000_000u64 {
            x = x.wrapping_add(std::hint::black_box(i));
        }
        std::hint::black_box(x);
        let b = process_cpu_ns(std::process::id()).unwrap();
        assert!(b > a, "{a} {b}");
        assert_eq!(process_cpu_ns(0), None);
    }

    #[test]
    fn another_process_s_cpu_clock_until_it_is_gone() {
        // A child that burns CPU for a moment, then sleeps.
        let mut child = std::process::Command::new("sh")
            .args([
                "-c",
                "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; sleep 30",
            ])
            .spawn()
            .unwrap();
        let pid = child.id();
        std::thread::sleep(Duration::from_millis(300));
        let ns = process_cpu_ns(pid);
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(ns.is_some_and(|ns| ns > 0), "{ns:?}");
        assert_eq!(process_cpu_ns(pid), None, "a reaped pid has no clock");
    }
}
