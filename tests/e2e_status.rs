//! End-to-end tests of the command line around a collaboration: `status`,
//! `stop`, and a bad config (how the LP programs get built:
//! `tests/common/mod.rs`).

mod common;

use common::*;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// `shmcollab status` shows every LP, its sub-functions and the coordinator;
/// `shmcollab stop` ends the collaboration with exit code 0, stops every
/// process and removes the session.
#[test]
fn status_then_stop_removes_everything() {
    let dir = TempDir::new("stop");
    let name = unique("st");
    let cfg = idle_config(&dir.0, &name, 3);
    let run = Launched::start(&cfg, &name);
    let v = wait_status(&name, "3 ready LPs, worker.0 coordinating", |v| {
        all_ready(v, 3) && v["coordinator"]["name"] == "worker.0"
    });
    let pids: Vec<u64> = v["lps"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|l| {
            [
                l["pid"].as_u64().unwrap(),
                l["manager_pid"].as_u64().unwrap(),
            ]
        })
        .collect();
    assert_eq!(v["coordinator"]["name"], "worker.0");
    let table = Command::new(bin())
        .args(["status", &name])
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&table.stdout);
    for lp in [
        "worker.0",
        "worker.1",
        "worker.2",
        "w/0",
        "w/2",
        "coordinator: worker.0",
    ] {
        assert!(table.contains(lp), "{lp} missing from:\n{table}");
    }
    let stop = Command::new(bin()).args(["stop", &name]).output().unwrap();
    assert!(
        stop.status.success(),
        "{}",
        String::from_utf8_lossy(&stop.stderr)
    );
    let (code, _out, err) = run.wait(Duration::from_secs(60));
    assert_eq!(code, 0, "{err}");
    assert!(session_dirs(&name).is_empty(), "session left behind");
    for pid in pids {
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "process {pid} survived the stop"
        );
    }
}

#[test]
fn bad_config_exits_2_and_names_the_line() {
    let dir = TempDir::new("badcfg");
    let cfg_path = write_config(
        &dir.0,
        "name = \"bad\"\n[[subfunction]]\nname = \"a\"\n[[process]]\nname = \"p\"\ncommand = [\"true\"]\nhosts = [\"a\"]\ninstances = \"many\"\n",
    );
    let out = Command::new(bin())
        .arg("launch")
        .arg(&cfg_path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("config.toml:8:"), "no line 8 in: {err}");
    assert!(err.contains("instances"), "field not named: {err}");
}
