//! End-to-end test of the forget of two-phase-commit outcomes
//! (`runtime/src/manager/txn_forget.rs`) with real processes: `bank-incr`
//! commits thousands of two-phase increments (its own counter and one the
//! `peer` LP's manager hosts), and the managers' reported memory of
//! outcomes (`txn.outcomes_kept` at the participant, `txn.decisions_open`
//! at the leader, in `shmcollab status --json`) stays bounded while it
//! runs, and in a second launch on the same state (which replays the
//! first's log) too. (How the LP programs get built: `tests/common/mod.rs`.)

mod common;

use common::*;
use std::process::Command;
use std::time::Duration;

/// Two-phase commits of the first launch; the second does `MORE` more
/// (enough to be sampled a few times on a fast machine: 500 took 4 samples
/// of 50 ms in a quiet CI run).
const N: u64 = 3000;
const MORE: u64 = 2000;

/// The most either manager may remember at a time: the commits in flight
/// (one LP commits one at a time) and the last ones until the next
/// watermark reaches the participant.
const BOUND: u64 = 8;

/// What the status showed over one launch.
#[derive(Debug, Default)]
struct Seen {
    samples: u32,
    /// Samples taken with the participant's manager reporting commits
    /// served (its log not empty).
    busy_samples: u32,
    max_kept: u64,
    max_open: u64,
}

/// Launch `cfg` and sample the status every 50 ms until it ends.
fn run_and_watch(cfg: &std::path::Path, name: &str) -> (i32, String, String, Seen) {
    let mut cmd = Command::new(bin());
    cmd.arg("launch").arg(cfg);
    let l = Launched::spawn(cmd, name);
    let waiter = std::thread::spawn(move || l.wait(Duration::from_secs(600)));
    let mut seen = Seen::default();
    let field = |v: &serde_json::Value, lp: &str, f: &str| {
        lp_entry(v, lp).and_then(|l| l["txn"][f].as_u64())
    };
    while !waiter.is_finished() {
        if let Some(v) = status_json(name) {
            if let (Some(kept), Some(open)) = (
                field(&v, "peer", "outcomes_kept"),
                field(&v, "incr", "decisions_open"),
            ) {
                seen.samples += 1;
                if field(&v, "peer", "log_bytes").unwrap_or(0) > 0 {
                    seen.busy_samples += 1;
                }
                seen.max_kept = seen.max_kept.max(kept);
                seen.max_open = seen.max_open.max(open);
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let (code, out, err) = waiter.join().unwrap();
    (code, out, err, seen)
}

#[test]
fn thousands_of_two_phase_commits_leave_the_managers_a_bounded_memory_across_launches() {
    let dir = TempDir::new("txnforget");
    let log = dir.0.join("incr.log");
    let name = unique("tforget");
    for (launch, n) in [(1, N), (2, N + MORE)] {
        let cfg = incr_config(&dir.0, &name, n, &log, true);
        let (code, out, err, seen) = run_and_watch(&cfg, &name);
        eprintln!("launch {launch}: {seen:?}");
        assert_eq!(code, 0, "launch {launch}:\n{out}\n{err}");
        assert!(
            out.contains(&format!("counter {n}")),
            "launch {launch}: {out}"
        );
        assert!(
            seen.busy_samples >= 3,
            "launch {launch}: too few status samples while it ran: {seen:?}"
        );
        assert!(
            seen.max_kept <= BOUND && seen.max_open <= BOUND,
            "launch {launch}: the managers remembered up to {} answers and {} decisions \
             after {n} two-phase commits: {seen:?}",
            seen.max_kept,
            seen.max_open
        );
    }
    let all = incr_log(&log);
    assert!(all.iter().all(|(k, _)| k != "torn"), "{all:?}");
}
