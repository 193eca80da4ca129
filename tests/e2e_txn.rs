//! End-to-end tests of transactions: the bank's total holds across
//! managers (two-phase commits) and across a manager killed mid-run; no
//! acknowledged commit is lost to a kill -9; state outlives the
//! collaboration (how the LP programs get built: `tests/common/mod.rs`).

mod common;

use common::*;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn bank_config(dir: &Path, name: &str, transfers: u32) -> std::path::PathBuf {
    write_config(
        dir,
        &format!(
            r#"name = "{name}"
report_interval_ms = 100

[[subfunction]]
name = "account"
partitions = 8

[[subfunction]]
name = "audit"

[[process]]
name = "transfer"
instances = 3
command = [{t:?}, "{transfers}"]
hosts = ["account/*"]
restart = "transient"

[[process]]
name = "auditor"
command = [{a:?}, "3"]
hosts = ["audit"]
restart = "transient"
"#,
            t = example("bank-transfer").display().to_string(),
            a = example("bank-auditor").display().to_string(),
        ),
    )
}

#[test]
fn bank_total_holds_across_managers() {
    let dir = TempDir::new("bank");
    let name = unique("bank");
    let run = Launched::start(&bank_config(&dir.0, &name, 300), &name);
    let (code, stdout, stderr) = run.wait(Duration::from_secs(180));
    assert_eq!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(
        stdout.contains("final total 8000 (expected 8000)"),
        "{stdout}"
    );
    assert!(stdout.contains("total ok"), "{stdout}");
    assert_eq!(stdout.matches("made 300 transfers").count(), 3, "{stdout}");
}

#[test]
fn bank_total_holds_when_a_manager_is_killed() {
    let dir = TempDir::new("bankkill");
    let name = unique("bk");
    let run = Launched::start(&bank_config(&dir.0, &name, 1500), &name);
    // Once transfers commit, kill -9 the manager of transfer.1.
    let v = wait_status(&name, "transfers committing", |v| {
        lp_entry(v, "transfer.0")
            .and_then(|l| l["txn"]["commits"].as_u64())
            .is_some_and(|c| c >= 50)
    });
    let mgr = lp_entry(&v, "transfer.1").unwrap()["manager_pid"]
        .as_u64()
        .unwrap();
    let killed = Command::new("kill")
        .args(["-9", &mgr.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let (code, stdout, stderr) = run.wait(Duration::from_secs(300));
    assert_eq!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(
        stdout.contains("final total 8000 (expected 8000)"),
        "{stdout}\n{stderr}"
    );
    assert!(
        stderr.contains("restarting") || stderr.contains("restart"),
        "{stderr}"
    );
}

#[test]
fn acknowledged_commits_survive_kill_9_of_the_manager_and_the_collaboration() {
    let dir = TempDir::new("incr");
    let log = dir.0.join("incr.log");
    let name = unique("incr");
    const N: u64 = 3000;
    let cfg = incr_config(&dir.0, &name, N, &log, false);
    let run = Launched::start(&cfg, &name);
    // Kill the manager twice while commits go on.
    for round in 1..=2u64 {
        let deadline = Instant::now() + Duration::from_secs(60);
        while incr_log(&log).iter().filter(|(k, _)| k == "ack").count() < (round * 300) as usize {
            assert!(
                Instant::now() < deadline,
                "watchdog: no commits after kill {round}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        let v = wait_status(&name, "incr's manager", |v| {
            lp_entry(v, "incr").is_some_and(|l| l["manager_pid"].is_u64())
        });
        let mgr = lp_entry(&v, "incr").unwrap()["manager_pid"]
            .as_u64()
            .unwrap();
        Command::new("kill")
            .args(["-9", &mgr.to_string()])
            .status()
            .unwrap();
        std::thread::sleep(Duration::from_millis(300));
    }
    let (code, stdout, stderr) = run.wait(Duration::from_secs(180));
    assert_eq!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.contains(&format!("counter {N}")), "{stdout}");
    // After every restart the value found is at least the last
    // acknowledged one (nothing acknowledged lost) and at most one more
    // (the one commit in flight may or may not have made it).
    let entries = incr_log(&log);
    let starts = entries.iter().filter(|(k, _)| k == "start").count();
    assert!(starts >= 3, "expected 2 restarts: {entries:?}");
    let mut last_ack = 0;
    for (k, v) in &entries {
        match k.as_str() {
            "ack" => {
                assert!(
                    *v > last_ack || *v == last_ack + 1,
                    "acks go up: {v} after {last_ack}"
                );
                last_ack = *v;
            }
            _ => assert!(
                (last_ack..=last_ack + 1).contains(v),
                "a restart found {v}, the last acknowledged was {last_ack}"
            ),
        }
    }
    // A new collaboration from the same config finds the state.
    let name2 = name.clone();
    let run = Launched::start(&cfg, &name2);
    let (code, _, stderr) = run.wait(Duration::from_secs(60));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        incr_log(&log).last(),
        Some(&("start".to_owned(), N)),
        "state lost across launches"
    );
}

#[test]
fn a_second_owner_of_the_state_is_refused() {
    let dir = TempDir::new("owner");
    let log = dir.0.join("incr.log");
    let name = unique("own");
    // Two launches of one config (one name, one state_dir) at once: the
    // second finds the first's state locked.
    let cfg = incr_config(&dir.0, &name, 1_000_000, &log, false);
    let first = Launched::start(&cfg, &name);
    wait_status(&name, "the first one running", |v| {
        lp_entry(v, "incr").is_some_and(|l| l["txn"]["commits"].as_u64() >= Some(1))
    });
    let second = Command::new(bin())
        .args(["launch"])
        .arg(&cfg)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&second.stderr);
    assert_ne!(second.status.code(), Some(0), "{err}");
    assert!(
        err.contains("locked") || err.contains("already running"),
        "{err}"
    );
    drop(first);
}

#[test]
fn acknowledged_commits_survive_kill_9_of_the_supervisor() {
    let dir = TempDir::new("incrsup");
    let log = dir.0.join("incr.log");
    let name = unique("isup");
    const N: u64 = 2000;
    let cfg = incr_config(&dir.0, &name, N, &log, false);
    let run = Launched::start(&cfg, &name);
    let deadline = Instant::now() + Duration::from_secs(60);
    while incr_log(&log).iter().filter(|(k, _)| k == "ack").count() < 300 {
        assert!(Instant::now() < deadline, "watchdog: no commits");
        std::thread::sleep(Duration::from_millis(10));
    }
    // The supervisor dies; its managers and their LPs die with it.
    let sup = run.pid();
    Command::new("kill")
        .args(["-9", &sup.to_string()])
        .status()
        .unwrap();
    let _ = run.wait(Duration::from_secs(30));
    let acked = incr_log(&log)
        .iter()
        .filter(|(k, _)| k == "ack")
        .map(|(_, v)| *v)
        .max()
        .unwrap();
    // Once nothing of the old run is left, launch the same config again.
    clean_killed(&name);
    let (code, stdout, stderr) = Launched::start(&cfg, &name).wait(Duration::from_secs(120));
    assert_eq!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    let entries = incr_log(&log);
    let first_start_after = entries
        .iter()
        .filter(|(k, _)| k == "start")
        .nth(1)
        .map(|(_, v)| *v)
        .expect("a second start");
    assert!(
        (acked..=acked + 1).contains(&first_start_after),
        "the relaunch found {first_start_after}, the last acknowledged was {acked}"
    );
    assert!(stdout.contains(&format!("counter {N}")), "{stdout}");
}
