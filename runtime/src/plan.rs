//! The plan: what the supervisor decided from the config, handed to every
//! manager as `plan.json` (mode 0600) in the session directory.

use serde::{Deserialize, Serialize};
use shmcollab_shm::LoadMode;
use std::path::PathBuf;

/// Restart type of a process group, as in OTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum RestartType {
    /// Always restarted when it ends.
    Permanent,
    /// Restarted only when it ends abnormally (non-zero exit or signal).
    #[default]
    Transient,
    /// Never restarted.
    Temporary,
}

/// Which manager is the coordinator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CoordinatorChoice {
    /// The lowest live slot.
    Auto,
    /// The manager of this slot (a process named in the config).
    Slot(u32),
}

/// Where managers and LPs run and how they wait (`placement` in the
/// config). Every choice but `None` applies only with more processes than
/// CPUs (see [`CpuSplit`]); else they run anywhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Placement {
    /// The load mode follows the load ([`LoadMode`]): compact while it is
    /// light, spread when it grows.
    #[default]
    Auto,
    /// Always spread: LPs on one half of the CPUs `launch` may use and
    /// managers on the other, waits that spin and yield first (the lowest
    /// latency at any load, the most CPU at a low one).
    Spread,
    /// Always compact: every process on one CPU, every wait a sleep (the
    /// least CPU; a saturating load gets one CPU).
    Compact,
    /// Always paired ([`LoadMode::Paired`]): each LP on the CPU of its own
    /// manager, the pairs dealt over the CPUs, every wait a sleep. For LPs
    /// that talk mostly to their own manager and wait for fdatasyncs
    /// (durable commits, one in flight each): `commit_8lp` ran 1.3-2.2x
    /// `auto`'s rate (benches/README.md, "Transactions: CPU per commit, and
    /// the paired placement").
    Paired,
    /// Anywhere the kernel puts them, no load mode.
    None,
}

/// The CPUs of LPs and of managers when `launch` split them. Each manager
/// applies it to itself and its LP when the LP is ready (or sends its first
/// frame), so that starting up, which is work, still spreads over every CPU.
///
/// With more processes than CPUs, processes wait by yielding. A hop between
/// two processes that share a CPU then costs a context switch, and the
/// kernel often puts an LP on the CPU of its own manager, a hop every round
/// trip takes. With LPs on one set and managers on the other, every hop of
/// LP a -> manager a -> LP b -> manager b -> LP a crosses CPUs, to a process
/// that is already running.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuSplit {
    /// CPUs of the LPs.
    pub lps: Vec<usize>,
    /// CPUs of the managers.
    pub managers: Vec<usize>,
}

/// Processes per CPU above which spread mixes them: LPs and managers each
/// on every CPU (`CpuSplit::for_cpus`). In a mesh flood of 256 LPs on 2
/// CPUs an LP cost more CPU per message than a manager, so the LPs' CPU
/// was the bottleneck while the managers' yielded its slack away: mixed,
/// 8% more messages a second (10 of 10 alternating rounds), 128 LPs
/// 4 of 4; at 32 and 64 LPs no difference showed (benches/README.md,
/// "Scale: one wake-up per sleep; LPs and managers mixed").
pub const MIX_ABOVE_PER_CPU: usize = 64;

impl CpuSplit {
    /// The split for `procs` processes over the CPUs in `allowed`: the first
    /// half (rounded up) for LPs, the rest for managers; with more than
    /// [`MIX_ABOVE_PER_CPU`] processes a CPU, every CPU for both (spread
    /// then mixes them; compact and paired deal as before). `None` when
    /// every process can have a CPU of its own or there is only one CPU.
    pub fn for_cpus(allowed: &[usize], procs: usize) -> Option<CpuSplit> {
        let n = allowed.len();
        if n < 2 || procs <= n {
            return None;
        }
        if procs > MIX_ABOVE_PER_CPU * n {
            return Some(CpuSplit {
                lps: allowed.to_vec(),
                managers: allowed.to_vec(),
            });
        }
        let half = n.div_ceil(2);
        Some(CpuSplit {
            lps: allowed[..half].to_vec(),
            managers: allowed[half..].to_vec(),
        })
    }

    /// Whether spread mixes LPs and managers on every CPU (many processes
    /// a CPU) rather than keeping them apart.
    pub fn mixed(&self) -> bool {
        self.lps == self.managers
    }

    /// Every CPU of the split, ascending, once each.
    pub fn all(&self) -> Vec<usize> {
        let mut all: Vec<usize> = self.lps.iter().chain(&self.managers).copied().collect();
        all.sort_unstable();
        all.dedup();
        all
    }

    /// The one CPU of every process of the collaboration (the supervisor
    /// too) in [`LoadMode::Compact`]: the first CPU of the LPs.
    pub fn compact(&self) -> &[usize] {
        &self.lps[..self.lps.len().min(1)]
    }

    /// The CPUs of (managers, LPs) in `mode`; paired, of the manager of
    /// `slot` and its LP: one CPU for both, the slots dealt in turn over
    /// the LPs' CPUs and then the managers'.
    pub fn for_slot(&self, mode: LoadMode, slot: u32) -> (&[usize], &[usize]) {
        match mode {
            LoadMode::Compact => (self.compact(), self.compact()),
            LoadMode::Paired => {
                // A split read from the plan file may be empty: no CPU
                // then (setting none fails, the kernel's choice stands).
                let n = (self.lps.len() + self.managers.len()).max(1);
                let i = slot as usize % n;
                let one = match i.checked_sub(self.lps.len()) {
                    None => self.lps.get(i..=i),
                    Some(j) => self.managers.get(j..=j),
                };
                (one.unwrap_or(&[]), one.unwrap_or(&[]))
            }
            LoadMode::Spread | LoadMode::Unset => (&self.managers, &self.lps),
        }
    }
}

/// The CPUs process `pid` (this one if `None`) may run on, ascending (its
/// affinity mask: a `taskset` or a cgroup's cpuset shows here); empty if
/// it cannot be read.
pub fn process_cpus(pid: Option<u32>) -> Vec<usize> {
    let pid = match pid {
        None => None,
        Some(p) => match rustix::process::Pid::from_raw(p as i32) {
            Some(p) => Some(p),
            None => return Vec::new(),
        },
    };
    match rustix::thread::sched_getaffinity(pid) {
        Ok(set) => (0..rustix::thread::CpuSet::MAX_CPU)
            .filter(|&c| set.is_set(c))
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// Sets the CPUs of every thread of process `pid`; false if none could be
/// set (the process is gone, or a CPU was taken away: the kernel's choice
/// stands then).
pub fn set_process_cpus(pid: u32, cpus: &[usize]) -> bool {
    let mut set = rustix::thread::CpuSet::new();
    for &c in cpus
        .iter()
        .filter(|&&c| c < rustix::thread::CpuSet::MAX_CPU)
    {
        set.set(c);
    }
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    let mut any = false;
    for t in dir.flatten() {
        let tid = t.file_name().to_str().and_then(|s| s.parse::<i32>().ok());
        if let Some(tid) = tid.and_then(rustix::process::Pid::from_raw) {
            any |= rustix::thread::sched_setaffinity(Some(tid), &set).is_ok();
        }
    }
    any
}

/// The program to run for `prog` (a command's first element): with a '/'
/// it is relative to `cwd` (the config directory; an absolute path stays
/// as it is), else it is looked up in `PATH` when spawned. The one rule,
/// for the config (which stores the resolved path) and the manager (which
/// spawns it).
pub fn resolve_program(prog: &str, cwd: &std::path::Path) -> PathBuf {
    if prog.contains('/') {
        cwd.join(prog)
    } else {
        PathBuf::from(prog)
    }
}

/// One logical process: an instance of a process group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LpPlan {
    /// Unique name: the group's name, or `group.N` when it has several instances.
    pub name: String,
    /// The process group it belongs to.
    pub group: String,
    /// Program and arguments; relative program paths are resolved against `cwd`.
    pub command: Vec<String>,
    /// Working directory (the config file's directory).
    pub cwd: PathBuf,
    /// Extra environment.
    pub env: Vec<(String, String)>,
    /// Names of the sub-functions it hosts (at least one).
    pub subfns: Vec<String>,
    /// Restart type.
    pub restart: RestartType,
    /// Restart intensity: at most this many restarts ...
    pub max_restarts: u32,
    /// ... within this many seconds.
    pub within_secs: u64,
    /// Run it in the sandbox (`sandbox = true`, see `sandbox.rs`).
    #[serde(default)]
    pub sandbox: bool,
    /// Run it as this user (`user = "..."`): the manager switches before
    /// exec (needs root or CAP_SETUID and CAP_SETGID).
    #[serde(default)]
    pub user: Option<String>,
}

/// Everything a manager needs to know about the collaboration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// Collaboration name.
    pub name: String,
    /// Frame tags on (default) or off.
    pub secure: bool,
    /// State reports go to the coordinator at least this often.
    pub report_interval_ms: u64,
    /// Coordinator choice.
    pub coordinator: CoordinatorChoice,
    /// Directory of the sub-functions' state.
    pub state_dir: PathBuf,
    /// All sub-functions, in table order (index = id in frames).
    pub subfns: Vec<String>,
    /// Logical processes; the index is the registry slot.
    pub lps: Vec<LpPlan>,
    /// Data bytes of each ring (a power of two).
    pub ring_capacity: usize,
    /// Grace period between SIGTERM and SIGKILL, in milliseconds.
    pub grace_ms: u64,
    /// Placement choice from the config.
    #[serde(default)]
    pub placement: Placement,
    /// The CPU split `launch` chose (`placement = "auto"` with more
    /// processes than CPUs); each manager applies it to itself and its LP
    /// once the LP is ready.
    #[serde(default)]
    pub cpus: Option<CpuSplit>,
    /// When commits are made durable.
    #[serde(default)]
    pub sync: SyncMode,
}

/// When the write-ahead log is synced to disk (`sync` in the config).
pub use crate::txn::wal::SyncMode;

impl Plan {
    /// File name of the plan in the session directory.
    pub const FILE: &'static str = "plan.json";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_only_when_oversubscribed() {
        // 2 LPs + 2 managers on 2 CPUs: LPs on the first, managers on the second.
        let s = CpuSplit::for_cpus(&[0, 1], 4).unwrap();
        assert_eq!((s.lps, s.managers), (vec![0], vec![1]));
        // A process per CPU: no split.
        assert_eq!(CpuSplit::for_cpus(&[0, 1, 2, 3], 4), None);
        assert_eq!(CpuSplit::for_cpus(&[5], 4), None);
        // The allowed CPUs are used as given (a taskset of 2, 5, 7).
        let s = CpuSplit::for_cpus(&[2, 5, 7], 8).unwrap();
        assert_eq!(s.compact(), &[2]);
        assert_eq!(s.for_slot(LoadMode::Compact, 4), (&[2][..], &[2][..]));
        assert_eq!(s.for_slot(LoadMode::Spread, 4), (&[7][..], &[2, 5][..]));
        // Paired: each slot's manager and LP on one CPU, slots in turn.
        let paired: Vec<_> = (0..7).map(|i| s.for_slot(LoadMode::Paired, i)).collect();
        for (i, cpu) in [2, 5, 7, 2, 5, 7, 2].into_iter().enumerate() {
            assert_eq!(paired[i], (&[cpu][..], &[cpu][..]), "slot {i}");
        }
        let empty = CpuSplit {
            lps: Vec::new(),
            managers: Vec::new(),
        };
        assert_eq!(empty.for_slot(LoadMode::Paired, 3), (&[][..], &[][..]));
        assert!(!s.mixed());
        assert_eq!(s.all(), [2, 5, 7]);
        assert_eq!((s.lps, s.managers), (vec![2, 5], vec![7]));
    }

    /// Over 64 processes a CPU, spread mixes LPs and managers on every
    /// CPU; compact keeps its one CPU and paired deals the slots over
    /// every CPU in turn as before. At 64 a CPU (32 LPs on 2) it splits.
    #[test]
    fn many_processes_a_cpu_mix_when_spread() {
        let at = |procs| CpuSplit::for_cpus(&[0, 1], procs).unwrap();
        let apart = at(2 * MIX_ABOVE_PER_CPU);
        assert!(!apart.mixed());
        assert_eq!((&apart.lps[..], &apart.managers[..]), (&[0][..], &[1][..]));
        let s = at(2 * MIX_ABOVE_PER_CPU + 1);
        assert!(s.mixed());
        assert_eq!(s.for_slot(LoadMode::Spread, 7), (&[0, 1][..], &[0, 1][..]));
        assert_eq!(s.for_slot(LoadMode::Compact, 7), (&[0][..], &[0][..]));
        let paired: Vec<_> = (0..4).map(|i| s.for_slot(LoadMode::Paired, i).0).collect();
        assert_eq!(paired, [&[0][..], &[1], &[0], &[1]]);
        assert_eq!(s.all(), [0, 1]);
        let s = CpuSplit::for_cpus(&[2, 5, 7], 512).unwrap();
        assert_eq!(s.for_slot(LoadMode::Spread, 0).1, &[2, 5, 7]);
        assert_eq!(s.compact(), &[2]);
    }
}

/// Restart intensity, as in OTP: at most `max_restarts` within
/// `within_secs`, with a back-off that doubles with each recent restart.
#[derive(Debug, Default)]
pub struct RestartIntensity {
    times: std::collections::VecDeque<std::time::Instant>,
}

impl RestartIntensity {
    /// Record a restart at `now` if the limit allows one: `Some(back-off)`
    /// (10 ms doubling per recent restart, at most 1 s), or `None` when the
    /// limit is spent.
    pub fn record(&mut self, now: std::time::Instant, lp: &LpPlan) -> Option<std::time::Duration> {
        let window = std::time::Duration::from_secs(lp.within_secs);
        while self
            .times
            .front()
            .is_some_and(|t| now.duration_since(*t) > window)
        {
            self.times.pop_front();
        }
        if self.times.len() as u32 >= lp.max_restarts {
            return None;
        }
        self.times.push_back(now);
        let backoff = std::time::Duration::from_millis(10u64 << self.times.len().min(7));
        Some(backoff.min(std::time::Duration::from_secs(1)))
    }
}
