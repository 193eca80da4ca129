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
//! "CPU-bound" uses `/proc/<pid>/task/*/schedstat` (time on a CPU and time
//! waiting for one, summed over the LP's threads) and the time the LP says
//! it spent waiting for messages in the LP API (`lp_wait_ns` in its registry
//! slot). Over one period an LP is CPU-bound when it wanted a CPU for more
//! than half of the period *outside* those waits. An LP that waits for
//! messages by spinning and yielding wants a CPU all the time, but while it
//! waits; one that sleeps wants none. A program that never uses the LP API
//! is judged by its CPU use alone.
//!
//! Only LPs that said they are ready are looked at (their managers placed
//! them then), and an LP is known by its pid and its start time, so that a
//! pid the kernel gave to another process since is left alone.

use shmcollab_runtime::plan::{set_process_cpus as set_affinity, CpuSplit};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How often the LPs are looked at.
pub const PERIOD: Duration = Duration::from_millis(250);
/// Periods in a row an LP must be CPU-bound before it may use every CPU.
const HOT_PERIODS: u32 = 1;
/// Periods in a row an LP must not be CPU-bound before it goes back.
const COOL_PERIODS: u32 = 8;
/// Wanting a CPU outside the LP API's waits for more than this share of a
/// period is CPU-bound.
const BUSY_SHARE: f64 = 0.5;

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

/// What the governor reads of an LP at one time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reading {
    /// The scheduler's statistics.
    pub sched: Sched,
    /// Nanoseconds the LP said it waited in the LP API.
    pub wait_ns: u64,
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
pub fn cpu_bound(before: Reading, after: Reading, dt: Duration) -> bool {
    let run = after.sched.run_ns.saturating_sub(before.sched.run_ns);
    let delay = after.sched.delay_ns.saturating_sub(before.sched.delay_ns);
    let waited = after.wait_ns.saturating_sub(before.wait_ns);
    let wanted = run.saturating_add(delay).saturating_sub(waited);
    wanted as f64 > BUSY_SHARE * dt.as_nanos().max(1) as f64
}

/// The start time of `pid` (field 22 of `/proc/<pid>/stat`, clock ticks
/// since boot): with the pid, it names one process.
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: count
    // from the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_ascii_whitespace().nth(19)?.parse().ok()
}

/// Whether every thread of `pid` may run on all of `cpus` and no other.
fn runs_on(pid: u32, cpus: &[usize]) -> bool {
    let Some(p) = rustix::process::Pid::from_raw(pid as i32) else {
        return false;
    };
    match rustix::thread::sched_getaffinity(Some(p)) {
        Ok(set) => set.count() as usize == cpus.len() && cpus.iter().all(|&c| set.is_set(c)),
        Err(_) => false,
    }
}

struct Watched {
    start: u64,
    last: Reading,
    at: Instant,
    hot: u32,
    cool: u32,
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
    /// A governor for LPs that their managers place on `split.lps`, which
    /// may widen them to `split.lps` and `split.managers` together.
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

    /// Looks at the ready LPs (`(name, pid, wait_ns)`): widens the ones
    /// CPU-bound for [`HOT_PERIODS`] periods that are still on the LPs'
    /// CPUs, narrows the widened ones that were not for [`COOL_PERIODS`].
    /// Forgets LPs that are gone.
    pub fn tick(&mut self, ready: &[(String, u32, u64)]) {
        let now = Instant::now();
        self.due = now + PERIOD;
        self.lps
            .retain(|pid, _| ready.iter().any(|(_, p, _)| p == pid));
        for (name, pid, wait_ns) in ready {
            let (Some(sched), Some(start)) = (Sched::of(*pid), start_time(*pid)) else {
                continue;
            };
            let r = Reading {
                sched,
                wait_ns: *wait_ns,
            };
            let fresh = || Watched {
                start,
                last: r,
                at: now,
                hot: 0,
                cool: 0,
            };
            let w = self.lps.entry(*pid).or_insert_with(fresh);
            if w.start != start {
                // Another process with the same pid: start over.
                *w = fresh();
                continue;
            }
            if w.at == now {
                continue;
            }
            if cpu_bound(w.last, r, now.duration_since(w.at)) {
                w.hot += 1;
                w.cool = 0;
            } else {
                w.cool += 1;
                w.hot = 0;
            }
            w.last = r;
            w.at = now;
            // The actual CPUs decide, not what was done last: the LP's
            // manager placed it when it became ready, and places a
            // restarted one anew.
            if w.hot >= HOT_PERIODS && runs_on(*pid, &self.split.lps) {
                if set_affinity(*pid, &self.all) {
                    eprintln!("shmcollab: {name} is CPU-bound: it may run on every CPU now");
                }
            } else if w.cool >= COOL_PERIODS
                && runs_on(*pid, &self.all)
                && set_affinity(*pid, &self.split.lps)
            {
                eprintln!(
                    "shmcollab: {name} waits again: back on CPUs {:?}",
                    self.split.lps
                );
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
        let r = |run_ms: u64, delay_ms: u64, wait_ms: u64| Reading {
            sched: Sched {
                run_ns: run_ms * 1_000_000,
                delay_ns: delay_ms * 1_000_000,
                slices: 0,
            },
            wait_ns: wait_ms * 1_000_000,
        };
        let dt = Duration::from_millis(250);
        let zero = Reading::default();
        // Waits by yielding on a CPU of its own: on a CPU all the time,
        // 90% of it waiting in the LP API.
        assert!(!cpu_bound(zero, r(250, 0, 225), dt));
        // The same, sharing a CPU: half on it, half waiting for it.
        assert!(!cpu_bound(zero, r(125, 125, 225), dt));
        // Sleeps in the LP API: wants no CPU, waited the whole period.
        assert!(!cpu_bound(zero, r(1, 0, 250), dt));
        // Sleeps elsewhere (not in the LP API).
        assert!(!cpu_bound(zero, r(1, 0, 0), dt));
        // Computes beside three others on one CPU.
        assert!(cpu_bound(zero, r(62, 188, 0), dt));
        // Computes alone.
        assert!(cpu_bound(zero, r(250, 0, 0), dt));
        // Counters that went backwards (garbage from the LP): no panic.
        assert!(!cpu_bound(r(10, 10, 10), zero, dt));
    }

    #[test]
    fn own_start_time_and_cpus() {
        let me = std::process::id();
        assert!(start_time(me).is_some_and(|t| t > 0));
        assert_eq!(start_time(me), start_time(me));
        let mine = rustix::thread::sched_getaffinity(None).unwrap();
        let cpus: Vec<usize> = (0..rustix::thread::CpuSet::MAX_CPU)
            .filter(|&c| mine.is_set(c))
            .collect();
        assert!(runs_on(me, &cpus));
        assert!(!runs_on(me, &[]));
    }
}
