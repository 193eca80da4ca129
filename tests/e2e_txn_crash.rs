//! Crash tests of the parallel two-phase commit with real processes: a
//! manager kills itself with SIGKILL at one exact step of the protocol
//! (`SHMCOLAB_CRASH_AT`, `runtime/src/failpoint.rs`), the leader's at its
//! steps, the participant's at its steps, while an LP increments a counter
//! of its own sub-function and one of a sub-function another manager hosts
//! in each transaction (`bank-incr` with `INCR_ALSO`). After recovery the
//! two counters are equal (atomic), and no acknowledged increment is lost.
//! (Every step with every interleaving, in process: `txn_2pc_tests.rs`.)

mod common;

use common::*;
use std::process::Command;
use std::time::Duration;

const N: u64 = 120;

/// One run with the manager that first reaches `point` for the `nth` time
/// killed there.
fn crash_at(point: &str, nth: u32) {
    let tag: String = point.split('-').map(|w| &w[..2]).collect();
    let dir = TempDir::new(&format!("txncrash-{tag}"));
    let log = dir.0.join("incr.log");
    let marker = dir.0.join("crashed");
    let name = unique(&format!("tc{tag}"));
    let cfg = incr_config(&dir.0, &name, N, &log, true);
    let mut cmd = Command::new(bin());
    cmd.arg("launch")
        .arg(&cfg)
        .env("SHMCOLAB_CRASH_AT", format!("{point}:{nth}"))
        .env("SHMCOLAB_CRASH_ONCE", &marker);
    let (code, stdout, stderr) = Launched::spawn(cmd, &name).wait(Duration::from_secs(240));
    let all = incr_log(&log);
    assert_eq!(
        code, 0,
        "{point}: stdout:\n{stdout}\nstderr:\n{stderr}\nlog: {all:?}"
    );
    assert!(
        marker.exists() && stderr.contains(&format!("crash point {point}")),
        "{point}: the crash point was not reached:\n{stderr}"
    );
    assert!(
        stderr.contains("died (signal: 9"),
        "{point}: no manager died:\n{stderr}"
    );
    assert!(
        all.iter().all(|(k, _)| k != "torn"),
        "{point}: half-applied commit: {all:?}"
    );
    assert!(
        stdout.contains(&format!("counter {N}")),
        "{point}: {stdout}"
    );
    // Each start finds at least the last acknowledged value, and at most
    // one more (the commit in flight may or may not have made it).
    let mut last_ack = 0;
    for (k, v) in &all {
        match k.as_str() {
            "ack" => last_ack = *v,
            _ => assert!(
                (last_ack..=last_ack + 1).contains(v),
                "{point}: a restart found {v}, the last acknowledged was {last_ack}"
            ),
        }
    }
}

#[test]
fn leader_killed_after_staging_before_its_fdatasync() {
    crash_at("leader-staged", 40);
}

#[test]
fn leader_killed_at_the_commit_point_before_answering() {
    crash_at("leader-committed", 40);
}

#[test]
fn leader_killed_after_answering_before_its_decision_is_durable() {
    crash_at("leader-acknowledged", 40);
}

#[test]
fn host_killed_after_appending_its_prepare() {
    crash_at("host-prepared", 40);
}

#[test]
fn host_killed_with_its_prepare_durable_before_voting() {
    crash_at("host-durable", 40);
}

#[test]
fn host_killed_after_voting() {
    crash_at("host-voted", 40);
}

#[test]
fn host_killed_when_the_decision_comes() {
    crash_at("host-deciding", 40);
}

/// The leader killed right after its decision was acknowledged by the
/// participant and it logged that (not durable yet): the participant still
/// holds its answer; the restarted leader sends the decision again.
#[test]
fn leader_killed_after_logging_a_decision_finished() {
    crash_at("leader-finished", 40);
}

/// The participant killed right after dropping its answers below the
/// leader's watermark (its Forget record not durable yet).
#[test]
fn host_killed_while_forgetting_below_the_watermark() {
    crash_at("host-forgetting", 40);
}
