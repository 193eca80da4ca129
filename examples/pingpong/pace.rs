//! Pacing and measuring, shared by `ping paced` and the benchmarks'
//! baselines (`shm/benches/common.rs` includes this file with `#[path]`,
//! and through it the e2e bench and `benches/compare`), so that the LP pair,
//! the Unix socket and iceoryx2 are paced and measured by the same code.
//!
//! * [`Pacer`]: one request per interval on an absolute schedule.
//! * [`Summary`]: p50 / p99 / p99.9 / max of round-trip samples.
//! * [`cpu_ns`]: the CPU time (user + system) a process has used so far.
#![allow(dead_code)]

use std::time::{Duration, Instant};

/// Sends on an absolute schedule: slot k is at `start + k * interval`.
/// [`Pacer::wait`] sleeps until the next slot; if that slot has already
/// passed (the previous round trip or the sleep overran it) it returns at
/// once and skips every further slot that has passed too, so a late request
/// is never followed by a burst of catch-up requests. An interval of zero
/// means back to back: `wait` returns at once.
pub struct Pacer {
    interval: Duration,
    next: Instant,
    late: u64,
}

impl Pacer {
    /// The first slot is now.
    pub fn new(interval: Duration) -> Pacer {
        Pacer {
            interval,
            next: Instant::now(),
            late: 0,
        }
    }

    /// Waits for the next slot (see the type's doc).
    pub fn wait(&mut self) {
        if self.interval.is_zero() {
            return;
        }
        let now = Instant::now();
        if self.next > now {
            std::thread::sleep(self.next - now);
        } else if now - self.next > self.interval / 10 {
            // More than a tenth of an interval behind: counted as late.
            self.late += 1;
        }
        self.next += self.interval;
        let now = Instant::now();
        if self.next <= now {
            // Skip the slots that have passed: no burst.
            let behind = (now - self.next).as_nanos() / self.interval.as_nanos();
            self.next += self.interval * (behind as u32 + 1);
        }
    }

    /// How many requests went out more than a tenth of an interval after
    /// their slot.
    pub fn late(&self) -> u64 {
        self.late
    }
}

/// `"lp_rtt_64"` back to back (interval 0), else
/// `"lp_rtt_64_paced_100us"`, `"..._1ms"`, `"..._10ms"`.
pub fn bench_name(size: usize, interval_us: u64) -> String {
    format!("lp_rtt_{size}{}", pace_suffix(interval_us))
}

/// `""` for back to back, else `"_paced_<interval>"` (µs below a
/// millisecond or when not whole, else ms).
pub fn pace_suffix(interval_us: u64) -> String {
    match interval_us {
        0 => String::new(),
        us if us % 1000 == 0 => format!("_paced_{}ms", us / 1000),
        us => format!("_paced_{us}us"),
    }
}

/// Percentiles of round-trip samples (ns), nearest rank.
#[derive(Clone, Copy, Debug)]
pub struct Summary {
    pub p50: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
    pub n: usize,
}

impl Summary {
    /// Sorts `samples` (ns); it must not be empty.
    pub fn of(samples: &mut [u64]) -> Summary {
        assert!(!samples.is_empty(), "no samples");
        samples.sort_unstable();
        let n = samples.len();
        // Nearest rank: the smallest sample with at least q * n samples at
        // or below it. With fewer than 1000 samples p99.9 is the maximum.
        let pick = |q: f64| samples[((q * n as f64).ceil() as usize).clamp(1, n) - 1];
        Summary {
            p50: pick(0.50),
            p99: pick(0.99),
            p999: pick(0.999),
            max: samples[n - 1],
            n,
        }
    }
}

/// CPU time (user + system, all threads) that process `pid` has used so far,
/// in ns: its CPU-time clock (`clock_getcpuclockid` + `clock_gettime`), the
/// same sum as utime + stime in `/proc/<pid>/stat` but to the nanosecond
/// instead of the clock tick (10 ms), which matters over a few hundred
/// round trips. `None` if the process is gone.
pub fn cpu_ns(pid: u32) -> Option<u64> {
    let mut clock: libc::clockid_t = 0;
    // SAFETY: `clock` is a valid out-pointer; the call only reads `pid`.
    if unsafe { libc::clock_getcpuclockid(pid as libc::pid_t, &mut clock) } != 0 {
        return None;
    }
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-pointer.
    if unsafe { libc::clock_gettime(clock, &mut ts) } != 0 {
        return None;
    }
    Some(ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64)
}

/// The summed [`cpu_ns`] of `pids`; `None` if any of them is gone.
pub fn cpu_ns_sum(pids: &[u32]) -> Option<u64> {
    pids.iter().map(|&p| cpu_ns(p)).sum()
}
