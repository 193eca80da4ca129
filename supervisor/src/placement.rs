//! Placement of LPs while `launch` keeps them apart from the managers.
//!
//! With more processes than CPUs, `launch` puts LPs on one half of the CPUs
//! and managers on the other (see [`CpuSplit`]): every hop of a round trip
//! then crosses CPUs to a process that is already running. That costs an
//! LP that computes rather than talks half of the machine. The [`Governor`]
//! watches every LP's scheduler statistics four times a second and lets an LP
//! that is CPU-bound run on every CPU, and puts it back once it waits
//! again.
//!
//! "CPU-bound" uses `/proc/<pid>/task/*/schedstat` (time on a CPU, time
//! waiting for one, number of times scheduled in), summed over the LP's
//! threads. Over one period (250 ms) an LP is CPU-bound when it wanted a CPU for more
//! than half of the period (on one or waiting for one) and its time slices
//! averaged over 200 µs. An LP that waits for messages by yielding also
//! wants a CPU all the time, but in slices of a few microseconds; one that
//! sleeps wants none.

use shmcollab_runtime::plan::{set_process_cpus as set_affinity, CpuSplit};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How often the LPs are looked at.
pub const PERIOD: Duration = Duration::from_millis(250);
/// Periods in a row an LP must be CPU-bound before it may use every CPU.
const HOT_PERIODS: u32 = 1;
/// Periods in a row an LP must not be CPU-bound before it goes back.
const COOL_PERIODS: u32 = 8;
/// Wanting a CPU for more than this share of a period ...
const BUSY_SHARE: f64 = 0.5;
/// ... in time slices longer than this on average is CPU-bound.
const LONG_SLICE: Duration = Duration::from_micros(200);

/// Scheduler statistics of a process, summed over its threads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sched {
    /// Nanoseconds on a CPU.
    pub run_ns: u64,
    /// Nanoseconds runnable but waiting for a CPU.
    pub delay_ns: u64,
    /// Times scheduled in.
    pub slices: u64,
}

impl Sched {
    /// Parses one `schedstat` line ("run_ns delay_ns slices"); `None` for
    /// anything else.
    pub fn parse(line: &str) -> Option<Sched> {
        let mut it = line.split_ascii_whitespace().map(|w| w.parse::<u64>().ok());
        let s = Sched {
            run_ns: it.next()??,
            delay_ns: it.next()??,
            slices: it.next()??,
        };
        it.next().is_none().then_some(s)
    }

    /// The statistics of `pid`, summed over its threads; `None` if it is
    /// gone or the kernel keeps no schedstat.
    pub fn of(pid: u32) -> Option<Sched> {
        let mut sum = Sched::default();
        let mut any = false;
        for t in std::fs::read_dir(format!("/proc/{pid}/task"))
            .ok()?
            .flatten()
        {
            let Ok(text) = std::fs::read_to_string(t.path().join("schedstat")) else {
                continue;
            };
            if let Some(s) = Sched::parse(text.trim()) {
                sum.run_ns = sum.run_ns.saturating_add(s.run_ns);
                sum.delay_ns = sum.delay_ns.saturating_add(s.delay_ns);
                sum.slices = sum.slices.saturating_add(s.slices);
                any = true;
            }
        }
        any.then_some(sum)
    }
}

/// Whether an LP was CPU-bound between two readings `dt` apart.
pub fn cpu_bound(before: Sched, after: Sched, dt: Duration) -> bool {
    let run = after.run_ns.saturating_sub(before.run_ns);
    let delay = after.delay_ns.saturating_sub(before.delay_ns);
    let slices = after.slices.saturating_sub(before.slices).max(1);
    let wanted = (run + delay) as f64 / dt.as_nanos().max(1) as f64;
    wanted > BUSY_SHARE && run / slices > LONG_SLICE.as_nanos() as u64
}

struct Watched {
    last: Sched,
    at: Instant,
    hot: u32,
    cool: u32,
    wide: bool,
}

/// Widens and narrows the CPUs of LPs by how they use them.
pub struct Governor {
    split: CpuSplit,
    all: Vec<usize>,
    lps: HashMap<u32, Watched>,
    /// When to look next.
    pub due: Instant,
}

impl Governor {
    /// A governor for LPs started on `split.lps`, which may widen them to
    /// `split.lps` and `split.managers` together.
    pub fn new(split: CpuSplit) -> Governor {
        let mut all = split.lps.clone();
        all.extend_from_slice(&split.managers);
        Governor {
            split,
            all,
            lps: HashMap::new(),
            due: Instant::now() + PERIOD,
        }
    }

    /// Looks at the live LPs (`(name, pid)`): widens the ones CPU-bound for
    /// [`HOT_PERIODS`] periods, narrows the widened ones that were not for
    /// [`COOL_PERIODS`]. Forgets LPs that are gone.
    pub fn tick(&mut self, live: &[(String, u32)]) {
        let now = Instant::now();
        self.due = now + PERIOD;
        self.lps.retain(|pid, _| live.iter().any(|(_, p)| p == pid));
        for (name, pid) in live {
            let Some(s) = Sched::of(*pid) else { continue };
            let Some(w) = self.lps.get_mut(pid) else {
                self.lps.insert(
                    *pid,
                    Watched {
                        last: s,
                        at: now,
                        hot: 0,
                        cool: 0,
                        wide: false,
                    },
                );
                continue;
            };
            if cpu_bound(w.last, s, now.duration_since(w.at)) {
                w.hot += 1;
                w.cool = 0;
            } else {
                w.cool += 1;
                w.hot = 0;
            }
            w.last = s;
            w.at = now;
            if !w.wide && w.hot >= HOT_PERIODS {
                if set_affinity(*pid, &self.all) {
                    eprintln!("shmcollab: {name} is CPU-bound: it may run on every CPU now");
                    w.wide = true;
                }
            } else if w.wide && w.cool >= COOL_PERIODS && set_affinity(*pid, &self.split.lps) {
                eprintln!(
                    "shmcollab: {name} waits again: back on CPUs {:?}",
                    self.split.lps
                );
                w.wide = false;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_schedstat() {
        assert_eq!(
            Sched::parse("552965 10 2"),
            Some(Sched {
                run_ns: 552965,
                delay_ns: 10,
                slices: 2
            })
        );
        assert_eq!(Sched::parse("1 2"), None);
        assert_eq!(Sched::parse("1 2 x"), None);
        assert_eq!(Sched::parse("1 2 3 4"), None);
    }

    #[test]
    fn yielding_waiter_sleeper_and_cruncher() {
        let s = |run_ms: u64, delay_ms: u64, slices: u64| Sched {
            run_ns: run_ms * 1_000_000,
            delay_ns: delay_ms * 1_000_000,
            slices,
        };
        let dt = Duration::from_millis(500); // any period: only shares count
        let zero = Sched::default();
        // Waits by yielding: runnable all the time, in 5 µs slices.
        assert!(!cpu_bound(zero, s(250, 250, 50_000), dt));
        // Sleeps: wants no CPU.
        assert!(!cpu_bound(zero, s(1, 0, 10), dt));
        // Computes beside three others on one CPU: a quarter of the time on
        // it, the rest waiting for it, in 3 ms slices.
        assert!(cpu_bound(zero, s(125, 375, 42), dt));
        // Computes alone.
        assert!(cpu_bound(zero, s(500, 0, 125), dt));
    }
}
