//! Two-phase commits across launches on the same `state_dir` (issue 9): the
//! state outlives a collaboration, so the decisions a manager remembers (a
//! participant's applied commits, a leader's decisions, refusals) come back
//! at the next launch, while its LPs commit new transactions. A transaction
//! id that a later launch hands out again would be answered from an earlier
//! launch's decision: a participant restarted before its Prepare was durable
//! told the leader "prepared" from the old commit of the same id, and the
//! leader committed its own part alone (an increment of the LP's counter
//! without the shared total: `polyglot`'s "the invariant does NOT hold").
//!
//! Real processes: `shmcollab launch` again and again on one state
//! directory, managers killed with SIGKILL (at an exact protocol step with
//! `SHMCOLAB_CRASH_AT`, or at random moments from here), collaborations
//! stopped (SIGTERM through `shmcollab stop`) or killed whole, then relaunched.

mod common;

use common::*;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// The `e2e_txn_crash` collaboration: `incr` increments `c/0` and `c/1`
/// (hosted by `peer`'s manager) in each transaction, up to `n`.
fn pair_config(dir: &Path, name: &str, n: u64, log: &Path) -> std::path::PathBuf {
    write_config(
        dir,
        &format!(
            r#"name = "{name}"
report_interval_ms = 100

[[subfunction]]
name = "c"
partitions = 2

[[process]]
name = "incr"
command = [{p:?}, "{n}"]
hosts = ["c/0"]
restart = "transient"
max_restarts = 5
env = {{ INCR_LOG = {log:?}, INCR_ALSO = "c/1" }}

[[process]]
name = "peer"
command = [{idle:?}]
hosts = ["c/1"]
restart = "transient"
"#,
            p = example("bank-incr").display().to_string(),
            idle = example("idle").display().to_string(),
            log = log.display().to_string(),
        ),
    )
}

fn launch(cfg: &Path, name: &str, env: &[(&str, &Path)]) -> Launched {
    let mut cmd = Command::new(bin());
    cmd.arg("launch").arg(cfg);
    for (k, v) in env {
        cmd.env(k, v);
    }
    Launched::spawn(cmd, name)
}

#[test]
fn a_host_restarted_in_a_later_launch_does_not_answer_a_probe_with_an_earlier_launchs_commit() {
    let dir = TempDir::new("txnrelaunch-probe");
    let log = dir.0.join("incr.log");
    let name = unique("trprobe");
    // Launch 1: 40 two-phase increments, all applied at the peer's manager.
    let cfg = pair_config(&dir.0, &name, 40, &log);
    let (code, out, err) = launch(&cfg, &name, &[]).wait(Duration::from_secs(120));
    assert_eq!(code, 0, "launch 1:\n{out}\n{err}");
    // Launch 2, same state: the peer's manager is killed after appending
    // its 20th Prepare (not durable); restarted, it is probed for it.
    let cfg = pair_config(&dir.0, &name, 100, &log);
    let marker = dir.0.join("crashed");
    let point = Path::new("host-prepared:20");
    let env = [
        ("SHMCOLAB_CRASH_AT", point),
        ("SHMCOLAB_CRASH_ONCE", &*marker),
    ];
    let (code, out, err) = launch(&cfg, &name, &env).wait(Duration::from_secs(180));
    assert_eq!(code, 0, "launch 2:\n{out}\n{err}");
    assert!(
        marker.exists() && err.contains("died (signal: 9"),
        "launch 2: the crash point was not reached:\n{err}"
    );
    // Launch 3: bank-incr checks at its start that both counters are equal.
    let (code, out, err) = launch(&cfg, &name, &[]).wait(Duration::from_secs(120));
    let all = incr_log(&log);
    assert!(
        all.iter().all(|(k, _)| k != "torn"),
        "half-applied commit across launches: {all:?}\n{out}\n{err}"
    );
    assert_eq!(code, 0, "launch 3:\n{out}\n{err}\nlog: {all:?}");
    check_acks(&all, "incr");
}

/// Each start finds at least the last acknowledged value, at most one more.
fn check_acks(all: &[(String, u64)], who: &str) {
    let mut last_ack = 0;
    for (k, v) in all {
        match k.as_str() {
            "ack" => last_ack = *v,
            "start" => assert!(
                (last_ack..=last_ack + 1).contains(v),
                "{who}: a start found {v}, the last acknowledged was {last_ack}: {all:?}"
            ),
            _ => {}
        }
    }
}
