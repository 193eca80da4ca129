//! Placement of the collaboration's processes, four times a second.
//!
//! With more processes than CPUs, the [`Governor`] first chooses the
//! collaboration's load mode (`mode.rs`): compact, every LP and manager
//! on one CPU and every wait a sleep, while the load is light (this
//! supervisor beside them, on the other CPUs: it must not queue behind the
//! load it watches); spread, LPs on one half of the CPUs and managers on the other
//! (see [`CpuSplit`]), once it grows. With `placement = "paired"` the mode is
//! fixed to paired: each manager and its LP on one CPU, the pairs dealt
//! over every CPU ([`CpuSplit::for_slot`]). It writes the mode in the registry
//! (managers follow it and hand it to their LPs) and moves every process
//! whose CPUs differ from what the mode says.
//!
//! Spread, every hop of a round trip crosses CPUs to a process that is
//! already running. That costs an LP that computes rather than talks half
//! of the machine: the governor watches every LP's scheduler statistics
//! and lets an LP that is CPU-bound run on every CPU, and puts it back once
//! it waits again.
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

mod look;
pub mod mode;

use look::{Seen, Window};
use mode::{Hysteresis, Sample};
use shmcollab_runtime::plan::{process_cpus, set_process_cpus, CpuSplit, Placement, Plan};
use shmcollab_shm::registry::Registry;
use shmcollab_shm::LoadMode;
// The start time of a pid (clock ticks since boot): with the pid, it names
// one process. One parser of /proc/<pid>/stat, in shm, for the session
// owner and for the LPs here.
use shmcollab_shm::segment::process_start_time as start_time;
use std::collections::hash_map::{Entry, HashMap};
use std::time::{Duration, Instant};

/// How often the LPs are looked at.
pub const PERIOD: Duration = Duration::from_millis(250);
/// How often the collaboration is looked at while it starts and while it is
/// compact (its message counts only: a few loads from the registry): a
/// run that sends back to back spreads within this long instead of a
/// period.
pub const FAST: Duration = Duration::from_millis(20);
/// Longest wait for every LP to be ready before the mode is chosen.
pub const START_WAIT: Duration = Duration::from_secs(2);
/// Compact, processes are placed again at least every this many periods
/// (else only when the mode moves or the processes placed changed).
const REPLACE_PERIODS: u32 = 8;
/// Periods in a row an LP must be CPU-bound before it may use every CPU.
const HOT_PERIODS: u32 = 1;
/// Periods in a row an LP must not be CPU-bound before it goes back.
const COOL_PERIODS: u32 = 8;
/// Wanting a CPU outside the LP API's waits for more than this share of a
/// period is CPU-bound.
const BUSY_SHARE: f64 = 0.5;

/// What the governor reads of an LP at one time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reading {
    /// Nanoseconds its threads were on a CPU or runnable and waiting for
    /// one (the first two numbers of `schedstat`), summed.
    pub cpu_ns: u64,
    /// Nanoseconds the LP said it waited in the LP API.
    pub wait_ns: u64,
}

/// Parses one `schedstat` line ("run_ns delay_ns slices") into run_ns +
/// delay_ns; `None` for anything else.
pub fn parse_schedstat(line: &str) -> Option<u64> {
    let v: Vec<u64> = line
        .split_ascii_whitespace()
        .map(|w| w.parse().ok())
        .collect::<Option<_>>()?;
    match v[..] {
        [run, delay, _slices] => Some(run.saturating_add(delay)),
        _ => None,
    }
}

/// Nanoseconds the threads of `pid` were on a CPU or waiting for one,
/// summed; `None` if it is gone or the kernel keeps no schedstat.
fn cpu_wanted(pid: u32) -> Option<u64> {
    let mut sum = None;
    for t in std::fs::read_dir(format!("/proc/{pid}/task"))
        .ok()?
        .flatten()
    {
        let text = std::fs::read_to_string(t.path().join("schedstat")).ok();
        if let Some(ns) = text.as_deref().and_then(|t| parse_schedstat(t.trim())) {
            sum = Some(sum.unwrap_or(0u64).saturating_add(ns));
        }
    }
    sum
}

/// Whether an LP was CPU-bound between two readings `dt` apart.
pub fn cpu_bound(before: Reading, after: Reading, dt: Duration) -> bool {
    let waited = after.wait_ns.saturating_sub(before.wait_ns);
    let wanted = after
        .cpu_ns
        .saturating_sub(before.cpu_ns)
        .saturating_sub(waited);
    wanted as f64 > BUSY_SHARE * dt.as_nanos().max(1) as f64
}

struct Watched {
    start: u64,
    last: Reading,
    at: Instant,
    hot: u32,
    cool: u32,
}

/// Chooses the load mode, places every process by it, and widens and
/// narrows the CPUs of LPs by how they use them.
pub struct Governor {
    split: CpuSplit,
    all: Vec<usize>,
    lps: HashMap<u32, Watched>,
    mode: Hysteresis,
    /// Whether the mode was chosen yet (once every LP is ready, or
    /// [`START_WAIT`] after the start: starting up is not load).
    started: bool,
    born: Instant,
    /// The short window of the fast look and the period's.
    fast: Window,
    slow: Window,
    /// When the next full look is due.
    full_due: Instant,
    /// The processes placed last ([`Seen::placed`]) and the full looks
    /// since.
    placed: Vec<u32>,
    since_placed: u32,
    /// When to look next.
    pub due: Instant,
}

impl Governor {
    /// A governor for LPs that their managers place on `split.lps`, which
    /// may widen them to `split.lps` and `split.managers` together, with
    /// the mode following the load (`placement = "auto"`) or fixed.
    pub fn new(split: CpuSplit, placement: Placement) -> Governor {
        let all = split.all();
        let now = Instant::now();
        Governor {
            split,
            all,
            lps: HashMap::new(),
            mode: match placement {
                Placement::Spread => Hysteresis::fixed(LoadMode::Spread),
                Placement::Compact => Hysteresis::fixed(LoadMode::Compact),
                Placement::Paired => Hysteresis::fixed(LoadMode::Paired),
                Placement::Auto | Placement::None => Hysteresis::default(),
            },
            started: false,
            born: now,
            fast: Window::new(),
            slow: Window::new(),
            full_due: now + PERIOD,
            placed: Vec::new(),
            since_placed: 0,
            due: now + FAST,
        }
    }

    /// Looks at the collaboration of `plan` in `registry`, whose managers
    /// are `managers` (slot, pid): chooses the mode, writes it, places
    /// every process by it, and (spread) widens or narrows LPs.
    ///
    /// Called when [`Governor::due`]: every [`PERIOD`] for a full look;
    /// while starting and while compact every [`FAST`] too, for a short
    /// look (a burst spreads at once, the rest waits for the period).
    pub fn tick(&mut self, registry: &Registry, plan: &Plan, managers: &[(u32, u32)]) {
        let now = Instant::now();
        let full = now >= self.full_due;
        if self.started && !full {
            // The short look reads the message counts only; the rest is
            // read when a burst moves the mode.
            if self.burst_look(now, &Seen::read_msgs(registry, plan)) {
                let seen = Seen::read(registry, plan, managers);
                self.slow.advance(now, &seen, true);
                self.place(registry, managers, &seen);
            }
            self.due = self.next_due(now);
            return;
        }
        let seen = Seen::read(registry, plan, managers);
        if full {
            self.full_due = now + PERIOD;
        }
        let moved = if self.started {
            self.decide(now, full, &seen)
        } else {
            self.start(now, plan, &seen)
        };
        self.due = self.next_due(now);
        if moved || (full && self.started && self.place_due(&seen, managers)) {
            self.place(registry, managers, &seen);
        }
    }

    /// When to look next: every [`FAST`] while starting and while compact,
    /// else at the next period.
    fn next_due(&self, now: Instant) -> Instant {
        match (self.started, self.mode.mode()) {
            (false, _) | (true, LoadMode::Compact) => self.full_due.min(now + FAST),
            _ => self.full_due,
        }
    }

    /// Whether a full look that did not move the mode places the
    /// processes again: spread, every period (LPs are widened and
    /// narrowed); compact, when the processes placed changed (an LP
    /// started or restarted) and every [`REPLACE_PERIODS`] periods (a
    /// process that moved itself is put back), not at every period: that
    /// is two system calls per process, four times a second, which showed
    /// in the idle CPU of hundreds of LPs.
    fn place_due(&mut self, seen: &Seen, managers: &[(u32, u32)]) -> bool {
        if !matches!(self.mode.mode(), LoadMode::Compact | LoadMode::Paired) {
            return true;
        }
        self.since_placed += 1;
        let placed = seen.placed(managers);
        placed != self.placed || self.since_placed >= REPLACE_PERIODS
    }

    /// Before the mode is chosen: chooses it once every LP of `plan` is
    /// ready (or [`START_WAIT`] passed). True when it did.
    fn start(&mut self, now: Instant, plan: &Plan, seen: &Seen) -> bool {
        if seen.ready.len() < plan.lps.len() && now < self.born + START_WAIT {
            return false;
        }
        self.started = true;
        self.fast.advance(now, seen, false);
        self.slow.advance(now, seen, true);
        say_mode(self.mode.mode(), &self.split, None);
        true
    }

    /// Once started: the short look while compact, the period's look when
    /// `full`. True if the mode changed.
    fn decide(&mut self, now: Instant, full: bool, seen: &Seen) -> bool {
        let was = self.mode.mode();
        if self.burst_look(now, seen) {
            self.slow.advance(now, seen, true);
            return true;
        }
        if !full {
            return false;
        }
        let a = self.slow.advance(now, seen, true);
        // An LP that computes keeps the collaboration spread. (Mixed,
        // every LP is on every CPU: only its CPU use says so.)
        let lp_wide = self.lps.values().any(|w| w.hot > 0)
            || !self.split.mixed()
                && seen
                    .ready
                    .iter()
                    .any(|r| process_cpus(Some(r.1)) == self.all);
        let s = Sample {
            cpu_ns: a.cpu_ns,
            msgs: a.msgs,
            own_txn: a.own_txn,
            dt: a.dt,
            lp_wide,
        };
        let mode = self.mode.next(s);
        if mode != was {
            say_mode(mode, &self.split, Some(s));
        }
        mode != was
    }

    /// Compact, the short look: spreads (or pairs) on a burst of messages
    /// since the last look (`seen`'s message counts only are read). True if
    /// it did.
    fn burst_look(&mut self, now: Instant, seen: &Seen) -> bool {
        if self.mode.mode() != LoadMode::Compact {
            return false;
        }
        // CPU is not read in the short look: it reads as 0 below.
        let a = self.fast.advance(now, seen, false);
        if !self.mode.burst(a.msgs, a.own_txn, a.dt) {
            return false;
        }
        let s = Sample {
            cpu_ns: a.cpu_ns,
            msgs: a.msgs,
            own_txn: a.own_txn,
            dt: a.dt,
            lp_wide: false,
        };
        say_mode(self.mode.mode(), &self.split, Some(s));
        true
    }

    /// Writes the mode and moves every process whose CPUs differ from
    /// what it says: this supervisor, the managers whose LP is ready (they
    /// placed themselves then), the ready LPs; spread, widens or narrows
    /// the LPs by their CPU use.
    fn place(&mut self, registry: &Registry, managers: &[(u32, u32)], seen: &Seen) {
        let mode = self.mode.mode();
        self.placed = seen.placed(managers);
        self.since_placed = 0;
        registry.set_load_mode(mode);
        let me_cpus = match mode {
            LoadMode::Compact => self.beside_compact(),
            _ => self.all.clone(),
        };
        move_to(std::process::id(), &me_cpus);
        for (slot, pid) in managers.iter().filter(|(s, _)| seen.ready_slot(*s)) {
            move_to(*pid, self.split.for_slot(mode, *slot).0);
        }
        // Compact and paired, every process has its one CPU; spread, an
        // LP's CPUs are the LPs' or all of them (widened).
        let one_cpu = matches!(mode, LoadMode::Compact | LoadMode::Paired);
        for (slot, pid) in &seen.ready_at {
            let lp_cpus = self.split.for_slot(mode, *slot).1;
            let on = process_cpus(Some(*pid));
            if on != lp_cpus && (one_cpu || on != self.all) {
                set_process_cpus(*pid, lp_cpus);
            }
        }
        if one_cpu {
            // Widening is for spread: forget what was seen.
            self.lps.clear();
        } else {
            self.look_at(&seen.ready);
        }
    }

    /// This supervisor's CPUs while compact: every CPU but the compact one
    /// (all of them if there is no other). On the compact CPU it was one
    /// runnable process among the collaboration's: once a flood saturated
    /// that CPU (256 LPs and their managers), it got its share, 1/513, and
    /// its 20 ms look came seconds late, so the collaboration stayed
    /// compact for seconds (2.7-7.3 s of `mesh flood`, by hand).
    fn beside_compact(&self) -> Vec<usize> {
        let compact = self.split.compact();
        let rest: Vec<usize> = (self.all.iter().copied())
            .filter(|c| !compact.contains(c))
            .collect();
        if rest.is_empty() {
            self.all.clone()
        } else {
            rest
        }
    }

    /// Looks at the ready LPs (`(name, pid, wait_ns)`): widens the ones
    /// CPU-bound for [`HOT_PERIODS`] periods that are still on the LPs'
    /// CPUs, narrows the widened ones that were not for [`COOL_PERIODS`].
    /// Forgets LPs that are gone.
    fn look_at(&mut self, ready: &[(String, u32, u64)]) {
        let now = Instant::now();
        self.lps
            .retain(|pid, _| ready.iter().any(|(_, p, _)| p == pid));
        for (name, pid, wait_ns) in ready {
            let (Some(cpu_ns), Some(start)) = (cpu_wanted(*pid), start_time(*pid)) else {
                continue;
            };
            let r = Reading {
                cpu_ns,
                wait_ns: *wait_ns,
            };
            let fresh = Watched {
                start,
                last: r,
                at: now,
                hot: 0,
                cool: 0,
            };
            let w = match self.lps.entry(*pid) {
                Entry::Vacant(v) => {
                    v.insert(fresh);
                    continue;
                }
                Entry::Occupied(o) if o.get().start != start => {
                    // Another process with the same pid: start over.
                    *o.into_mut() = fresh;
                    continue;
                }
                Entry::Occupied(o) => o.into_mut(),
            };
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
            if self.split.mixed() {
                // Spread, every LP is on every CPU already.
                continue;
            }
            let on = process_cpus(Some(*pid));
            if w.hot >= HOT_PERIODS && on == self.split.lps {
                if set_process_cpus(*pid, &self.all) {
                    eprintln!("shmcollab: {name} is CPU-bound: it may run on every CPU now");
                }
            } else if w.cool >= COOL_PERIODS
                && on == self.all
                && set_process_cpus(*pid, &self.split.lps)
            {
                eprintln!(
                    "shmcollab: {name} waits again: back on CPUs {:?}",
                    self.split.lps
                );
            }
        }
    }
}

/// Prints the mode chosen, and why (`s`: the look that chose it).
fn say_mode(mode: LoadMode, split: &CpuSplit, s: Option<Sample>) {
    // The short look (CPU not read) pairs too: say why in both.
    let txn = |s: &Sample| {
        if s.own_txn > 0 {
            format!(" ({} transactions with the LPs' own managers)", s.own_txn)
        } else {
            String::new()
        }
    };
    let why = match s {
        None => "started".to_owned(),
        Some(s) if s.cpu_ns == 0 => {
            format!("{} messages{} in {} ms", s.msgs, txn(&s), s.dt.as_millis())
        }
        Some(s) => format!(
            "{:.0}% of a core, {} messages{} in {} ms",
            s.cpu_ns as f64 / s.dt.as_nanos().max(1) as f64 * 100.0,
            s.msgs,
            txn(&s),
            s.dt.as_millis()
        ),
    };
    match mode {
        LoadMode::Compact => eprintln!(
            "shmcollab: load light ({why}): LPs and managers on CPU {:?}, waits sleep",
            split.compact()
        ),
        LoadMode::Paired => eprintln!(
            "shmcollab: paired ({why}): each LP on its manager's CPU, pairs over CPUs {:?} \
             and {:?}, waits sleep",
            split.lps, split.managers
        ),
        _ if split.mixed() => eprintln!(
            "shmcollab: load heavy ({why}): LPs and managers mixed on CPUs {:?}, waits spin \
             first",
            split.lps
        ),
        _ => eprintln!(
            "shmcollab: load heavy ({why}): LPs on CPUs {:?}, managers on CPUs {:?}, waits \
             spin first",
            split.lps, split.managers
        ),
    }
}

/// Sets the CPUs of `pid` to `cpus` unless they are those already.
fn move_to(pid: u32, cpus: &[usize]) {
    if process_cpus(Some(pid)) != cpus {
        set_process_cpus(pid, cpus);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedstat_lines() {
        assert_eq!(parse_schedstat("552965 10 2"), Some(552975));
        assert_eq!(parse_schedstat("1 2"), None);
        assert_eq!(parse_schedstat("1 2 x"), None);
        assert_eq!(parse_schedstat("1 2 3 4"), None);
    }

    #[test]
    fn yielding_waiter_sleeper_and_cruncher() {
        let r = |run_ms: u64, delay_ms: u64, wait_ms: u64| Reading {
            cpu_ns: (run_ms + delay_ms) * 1_000_000,
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
        assert!(cpu_wanted(me).is_some_and(|ns| ns > 0));
        assert_eq!(process_cpus(Some(me)), process_cpus(None));
        assert!(!process_cpus(None).is_empty());
    }
}
