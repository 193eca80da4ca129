//! End-to-end tests of failures: an LP killed mid-stream, a manager
//! killed, an LP failing for good (how the LP programs get built:
//! `tests/common/mod.rs`).

mod common;

use common::*;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

#[test]
fn pong_killed_mid_stream_loses_nothing() {
    let dir = TempDir::new("kill");
    let log = dir.0.join("pong.log");
    let name = unique("pk");
    const N: u64 = 30_000;
    let n = N.to_string();
    // pong in slot 0, ping in slot 1: a reply reaches ping only because its
    // manager stamped the request with ping's slot.
    let cfg_path = pingpong_config(
        &dir.0,
        &name,
        &["stream", &n],
        &format!("env = {{ PONG_LOG = {:?} }}", log.display().to_string()),
        true,
    );
    let run = Launched::start(&cfg_path, &name);
    let before = kill_pong_once_traffic_flows(&name, &log);
    let (code, stdout, stderr) = run.wait(Duration::from_secs(120));
    assert_eq!(
        code, 0,
        "launch failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        before < N,
        "the kill came after the stream ended; make N larger"
    );
    assert!(
        stderr.contains("pong exited (signal: 9"),
        "no restart seen:\n{stderr}"
    );
    assert_all_logged_in_order(&std::fs::read(&log).unwrap(), N);
}

/// Once messages flow (pong has logged 2000), kills the receiving LP with
/// SIGKILL; returns how many messages pong had logged just before.
fn kill_pong_once_traffic_flows(name: &str, log: &Path) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::fs::metadata(log).map(|m| m.len()).unwrap_or(0) < 8 * 2000 {
        assert!(
            Instant::now() < deadline,
            "watchdog: no traffic reached pong"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    let v = wait_status(name, "pong's pid", |v| {
        lp_entry(v, "pong").is_some_and(|p| p["pid"].as_u64().is_some())
    });
    let pid = lp_entry(&v, "pong").unwrap()["pid"].as_u64().unwrap();
    let before = std::fs::metadata(log).unwrap().len() / 8;
    let killed = Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    before
}

/// pong's log (one u64 LE per message received, in arrival order) holds
/// every one of `0..n`, nothing else, and in order.
fn assert_all_logged_in_order(bytes: &[u8], n: u64) {
    let mut seen = vec![false; n as usize];
    for c in bytes.chunks_exact(8) {
        let i = u64::from_le_bytes(c.try_into().unwrap());
        assert!(i < n, "pong logged {i}, never sent");
        seen[i as usize] = true;
    }
    let missing: Vec<usize> = seen
        .iter()
        .enumerate()
        .filter(|(_, s)| !**s)
        .map(|(i, _)| i)
        .collect();
    // And in order: one step back at most, where the restarted pong got
    // again what its predecessor had not released; +1 everywhere else.
    let logged: Vec<u64> = bytes
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
        .collect();
    let odd: Vec<(usize, u64, u64)> = logged
        .windows(2)
        .enumerate()
        .filter(|(_, w)| w[1] != w[0] + 1)
        .map(|(i, w)| (i, w[0], w[1]))
        .collect();
    assert!(
        odd.len() <= 1 && odd.iter().all(|&(_, a, b)| b <= a),
        "out of order (position, previous, next): {:?}",
        &odd[..odd.len().min(10)]
    );
    assert!(
        missing.is_empty(),
        "{} messages lost, first {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
}

/// A manager killed with SIGKILL is restarted by the supervisor; the new one
/// starts its LP again, the others rediscover it, and when the coordinator's
/// manager was the one killed, the role moves on with a new epoch.
#[test]
fn killed_manager_is_restarted_and_rediscovered() {
    let dir = TempDir::new("mgr");
    let name = unique("mk");
    let cfg = idle_config(&dir.0, &name, 2);
    let run = Launched::start(&cfg, &name);
    // "auto": the lowest live slot coordinates, whichever registered first.
    let v = wait_status(&name, "2 ready LPs, worker.0 coordinating", |v| {
        all_ready(v, 2) && v["coordinator"]["name"] == "worker.0"
    });
    let epoch = v["coordinator"]["epoch"].as_u64().unwrap();
    let w0 = lp_entry(&v, "worker.0").unwrap().clone();
    let old_mgr = w0["manager_pid"].as_u64().unwrap();
    let old_lp = w0["pid"].as_u64().unwrap();
    assert!(Command::new("kill")
        .args(["-9", &old_mgr.to_string()])
        .status()
        .unwrap()
        .success());
    let v = wait_status(
        &name,
        "worker.0 back with a new manager, coordinating again",
        |v| {
            all_ready(v, 2)
                && v["coordinator"]["name"] == "worker.0"
                && lp_entry(v, "worker.0").is_some_and(|l| {
                    l["manager_pid"].as_u64().is_some_and(|p| p != old_mgr)
                        && l["generation"].as_u64() >= Some(2)
                })
        },
    );
    assert!(v["coordinator"]["epoch"].as_u64().unwrap() > epoch, "{v}");
    // Its LP died with it (PR_SET_PDEATHSIG) and was started anew.
    let new_lp = lp_entry(&v, "worker.0").unwrap()["pid"].as_u64().unwrap();
    assert_ne!(new_lp, old_lp);
    let _ = Command::new(bin()).args(["stop", &name]).output();
    let (code, _out, err) = run.wait(Duration::from_secs(60));
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("manager of worker.0 died"), "{err}");
}

/// An LP that keeps failing exhausts its restarts: launch stops everything
/// and exits non-zero with a one-line reason.
#[test]
fn lp_failing_for_good_fails_the_launch() {
    let dir = TempDir::new("fail");
    let name = unique("fl");
    let cfg = format!(
        r#"
name = "{name}"
[[subfunction]]
name = "a"
[[subfunction]]
name = "b"
[[process]]
name = "steady"
command = ["{idle}"]
hosts = ["a"]
[[process]]
name = "crashy"
command = ["false"]
hosts = ["b"]
restart = "permanent"
max_restarts = 2
within_secs = 30
"#,
        idle = example("idle").display(),
    );
    let p = write_config(&dir.0, &cfg);
    let (code, _out, err) = Launched::start(&p, &name).wait(Duration::from_secs(60));
    assert_eq!(code, 1, "{err}");
    let last = err.lines().last().unwrap_or("");
    assert!(
        last.contains("crashy failed for good"),
        "last line: {last:?}\n{err}"
    );
    assert!(session_dirs(&name).is_empty(), "session left behind");
}
