//! `shmcollab stop NAME`: SIGTERM to the collaboration's supervisor, then
//! wait for it to go.
//!
//! The pid comes from the session's owner record, which names a process
//! by pid *and* start time. The supervisor is signalled through a pidfd
//! opened first and checked second: once the pidfd is open it names one
//! process for good, and if the pid's start time still is the recorded one
//! after that, the pidfd names the supervisor and not a process that got
//! its pid since. A record without a start time is refused before (see
//! `shmcollab_shm::segment::parse_owner`), so `stop` signals nothing it
//! cannot tie to the session.
//!
//! How long to wait comes from the plan in the session, read with a size
//! cap and bounded by the config's own limits, in checked arithmetic.

use crate::launch::{lookup, LiveSession};
use rustix::event::{poll, PollFd, PollFlags};
use rustix::process::{pidfd_open, pidfd_send_signal, Pid, PidfdFlags, Signal};
use rustix::time::Timespec;
use shmcollab_shm::segment::{process_start_time, Owner};
use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long `stop` waits when the plan cannot tell.
pub const DEFAULT_BUDGET: Duration = Duration::from_secs(60);
/// Largest plan file read.
const PLAN_MAX_LEN: u64 = 4 << 20;

/// Why `stop` failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StopError {
    /// No session of ours runs under the name.
    #[error("no running collaboration named {name:?}{ignored}")]
    NotRunning {
        /// The name.
        name: String,
        /// Entries under the name that were passed over, and why.
        ignored: String,
    },
    /// The supervisor ended before it could be signalled.
    #[error("the supervisor (pid {pid}) is gone")]
    Gone {
        /// Its pid.
        pid: u32,
    },
    /// The pid now belongs to another process: nothing was signalled.
    #[error("pid {pid} is no longer the supervisor of {dir} (start time {found:?}, recorded {recorded}); nothing signalled")]
    NotTheOwner {
        /// The pid.
        pid: u32,
        /// The session directory.
        dir: PathBuf,
        /// The start time the pid has now.
        found: Option<u64>,
        /// The start time recorded.
        recorded: u64,
    },
    /// Opening a pidfd or signalling failed.
    #[error("cannot signal the supervisor (pid {pid}): {source}")]
    Signal {
        /// Its pid.
        pid: u32,
        /// The OS error.
        source: rustix::io::Errno,
    },
    /// The supervisor still runs after the budget.
    #[error("{name} did not stop within {} s", budget.as_secs())]
    Timeout {
        /// The collaboration.
        name: String,
        /// How long was waited.
        budget: Duration,
    },
    /// The supervisor ended but its session is still there.
    #[error("the supervisor (pid {pid}) ended but left {}; `shmcollab clean` removes it", dir.display())]
    LeftBehind {
        /// Its pid.
        pid: u32,
        /// The session directory.
        dir: PathBuf,
    },
}

/// `shmcollab stop NAME`; returns the exit code.
pub fn stop(name: &str) -> i32 {
    match stop_session(name) {
        Ok(()) => {
            println!("stopped {name}");
            0
        }
        Err(e) => {
            eprintln!("shmcollab: {e}");
            1
        }
    }
}

/// Stop the running collaboration `name` and wait until it is gone.
pub fn stop_session(name: &str) -> Result<(), StopError> {
    let found = lookup(name);
    let Some(LiveSession { dir, owner }) = found.live.first().cloned() else {
        return Err(StopError::NotRunning {
            name: name.to_owned(),
            ignored: found.ignored_note(),
        });
    };
    let pidfd = owner_pidfd(&owner, &dir)?;
    pidfd_send_signal(&pidfd, Signal::TERM).map_err(|source| match source {
        rustix::io::Errno::SRCH => StopError::Gone { pid: owner.pid },
        source => StopError::Signal {
            pid: owner.pid,
            source,
        },
    })?;
    let budget = stop_budget(&dir);
    if !wait_exit(&pidfd, budget) {
        return Err(StopError::Timeout {
            name: name.to_owned(),
            budget,
        });
    }
    // The supervisor removes the session before it exits.
    if std::fs::symlink_metadata(&dir).is_ok() {
        return Err(StopError::LeftBehind {
            pid: owner.pid,
            dir,
        });
    }
    Ok(())
}

/// A pidfd of the process `owner` names, or why there is none: opened,
/// then its start time checked, so that it cannot name a later process
/// with the same pid.
fn owner_pidfd(owner: &Owner, dir: &Path) -> Result<OwnedFd, StopError> {
    let pid = owner.pid;
    let raw = i32::try_from(pid).ok().and_then(Pid::from_raw);
    let Some(raw) = raw else {
        return Err(StopError::Gone { pid });
    };
    let fd = pidfd_open(raw, PidfdFlags::empty()).map_err(|source| match source {
        rustix::io::Errno::SRCH => StopError::Gone { pid },
        source => StopError::Signal { pid, source },
    })?;
    let found = process_start_time(pid);
    if found != Some(owner.start) {
        return Err(StopError::NotTheOwner {
            pid,
            dir: dir.to_owned(),
            found,
            recorded: owner.start,
        });
    }
    Ok(fd)
}

/// Wait until the process of `pidfd` exits, at most `budget`; whether it did.
fn wait_exit(pidfd: &OwnedFd, budget: Duration) -> bool {
    let deadline = Instant::now() + budget;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let ts = Timespec {
            tv_sec: left.as_secs().min(i64::MAX as u64) as i64,
            tv_nsec: i64::from(left.subsec_nanos()),
        };
        let mut fds = [PollFd::new(pidfd, PollFlags::IN)];
        match poll(&mut fds, Some(&ts)) {
            Ok(n) if n > 0 => return true,
            Ok(_) if left.is_zero() => return false,
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(_) => return false,
        }
    }
}

/// The plan's values that set how long a stop may take.
#[derive(serde::Deserialize)]
struct StopPlan {
    grace_ms: u64,
    lps: Vec<serde::de::IgnoredAny>,
}

/// How long the stop may take: LP by LP, each with its grace period, plus
/// a margin; [`DEFAULT_BUDGET`] when the plan cannot be read or holds
/// values the config could never have produced.
fn stop_budget(dir: &Path) -> Duration {
    let Some(plan) = read_plan(dir) else {
        return DEFAULT_BUDGET;
    };
    match budget_for(plan.grace_ms, plan.lps.len()) {
        Some(b) => b,
        None => {
            eprintln!(
                "shmcollab: {}: implausible plan (grace_ms {}, {} LPs); waiting {} s",
                dir.display(),
                plan.grace_ms,
                plan.lps.len(),
                DEFAULT_BUDGET.as_secs()
            );
            DEFAULT_BUDGET
        }
    }
}

/// `(grace_ms + 1500 ms) * lps + 10 s`, or `None` when a value is out of
/// the config's range.
fn budget_for(grace_ms: u64, lps: usize) -> Option<Duration> {
    let max_grace = u64::try_from(crate::config::GRACE.1).ok()?;
    let max_lps = shmcollab_shm::registry::MAX_SLOTS as usize;
    if grace_ms > max_grace || lps == 0 || lps > max_lps {
        return None;
    }
    let per_lp = grace_ms.checked_add(1500)?;
    let ms = per_lp.checked_mul(lps as u64)?.checked_add(10_000)?;
    Some(Duration::from_millis(ms))
}

/// The plan in session `dir`, if it is a regular file of a sane size.
fn read_plan(dir: &Path) -> Option<StopPlan> {
    use std::os::unix::fs::OpenOptionsExt;
    let flags = (rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK).bits();
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags as i32)
        .open(dir.join(shmcollab_runtime::plan::Plan::FILE))
        .ok()?;
    let meta = file.metadata().ok()?;
    if !meta.is_file() || meta.len() > PLAN_MAX_LEN {
        return None;
    }
    let mut bytes = Vec::new();
    file.take(PLAN_MAX_LEN).read_to_end(&mut bytes).ok()?;
    serde_json::from_slice(&bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_is_bounded_and_checked() {
        assert_eq!(budget_for(0, 1), Some(Duration::from_millis(11_500)));
        assert_eq!(
            budget_for(600_000, 256),
            Some(Duration::from_millis(601_500 * 256 + 10_000))
        );
        assert_eq!(budget_for(u64::MAX, 1), None);
        assert_eq!(budget_for(600_001, 1), None);
        assert_eq!(budget_for(3000, 1025), None);
        assert_eq!(budget_for(3000, usize::MAX), None);
        assert_eq!(budget_for(3000, 0), None);
    }
}
