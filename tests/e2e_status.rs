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

/// While two LPs exchange requests back to back (spread within 40 ms), a
/// manager forwards its LP's frames and goes back to sleep without a turn
/// while no part wants one (`manager/event_loop.rs`, `only_forwarded`);
/// its reports must still come at their interval (20 ms here): `status`
/// shows ping's count of messages growing, from one poll to the next, for
/// as long as the stream runs. (A manager that skipped its turns while
/// frames kept coming would report once and never again.) Then `stop`
/// ends the stream.
#[test]
fn reports_keep_coming_during_a_stream() {
    let dir = TempDir::new("stream");
    let name = unique("sts");
    let cfg = pingpong_config(&dir.0, &name, &["rtt", "1000000000"], "", false);
    let run = Launched::start(&cfg, &name);
    let sent = |v: &serde_json::Value| lp_entry(v, "ping").and_then(|l| l["msgs_out"].as_u64());
    let mut last = 0;
    for round in 0..5 {
        let v = wait_status(&name, "ping's count of messages growing", |v| {
            sent(v).is_some_and(|n| n > last)
        });
        last = sent(&v).unwrap_or(last);
        assert!(last > 0, "round {round}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let stop = Command::new(bin()).args(["stop", &name]).output().unwrap();
    assert!(
        stop.status.success(),
        "{}",
        String::from_utf8_lossy(&stop.stderr)
    );
    let (_, _, err) = run.wait(Duration::from_secs(60));
    assert!(session_dirs(&name).is_empty(), "session left behind: {err}");
}
