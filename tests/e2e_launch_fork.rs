//! Issue 13: at launch the supervisor forks its managers without exec
//! (`supervisor/src/launch/fork.rs`). A forked manager is a copy of the
//! supervisor: these tests check that it keeps none of the supervisor's
//! descriptors (the other managers' pipes and pidfds, the signalfd, the
//! epoll), leads its own process group, runs its LP, and dies with the
//! supervisor as an exec'd one does.

mod common;

use common::*;
use std::collections::BTreeSet;
use std::process::Command;
use std::time::{Duration, Instant};

const LPS: usize = 4;

/// (manager pid, LP pid) of every slot once all are ready.
fn pids(name: &str) -> Vec<(u32, u32)> {
    let v = wait_status(name, "every LP ready", |v| all_ready(v, LPS));
    let lps = v["lps"].as_array().unwrap();
    lps.iter()
        .map(|l| {
            let m = l["manager_pid"].as_u64().expect("manager pid") as u32;
            (m, l["pid"].as_u64().expect("LP pid") as u32)
        })
        .collect()
}

/// Where each of `pid`'s descriptors leads (`pipe:[N]`, `anon_inode:[pidfd]`, ...).
fn fds(pid: u32) -> Vec<(u32, String)> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let n = e.file_name().to_str()?.parse().ok()?;
            Some((n, std::fs::read_link(e.path()).ok()?.display().to_string()))
        })
        .collect()
}

/// Field `i` (1-based, as in proc(5)) of /proc/PID/stat; None once it is gone.
fn stat_field(pid: u32, i: usize) -> Option<String> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 2..];
    rest.split(' ').nth(i - 3).map(str::to_owned)
}

fn cmdline(pid: u32) -> Vec<String> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    raw.split(|&b| b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect()
}

#[test]
fn forked_managers_hold_only_their_own_descriptors() {
    let dir = TempDir::new("fork-fds");
    let name = unique("ff");
    let cfg = idle_config(&dir.0, &name, LPS);
    let run = Launched::start(&cfg, &name);
    let slots = pids(&name);
    let supervisor = run.pid();
    let mut outputs = BTreeSet::new();
    for &(m, lp) in &slots {
        // Forked, not exec'd: it still has the supervisor's command line
        // (an exec'd one is `shmcollab manager --session .. --slot ..`).
        assert_eq!(
            cmdline(m),
            cmdline(supervisor),
            "manager {m} was not forked"
        );
        assert_eq!(
            stat_field(m, 4),
            Some(supervisor.to_string()),
            "parent of {m}"
        );
        assert_eq!(stat_field(m, 5), Some(m.to_string()), "{m} leads its group");
        assert_eq!(stat_field(lp, 4), Some(m.to_string()), "LP {lp} is {m}'s");
        let fds = fds(m);
        let to = |n: u32| fds.iter().find(|(f, _)| *f == n).map(|(_, t)| t.clone());
        assert_eq!(to(0).as_deref(), Some("/dev/null"), "stdin of {m}");
        let (out, err) = (to(1).unwrap(), to(2).unwrap());
        assert!(
            out.starts_with("pipe:") && err.starts_with("pipe:"),
            "{out} {err}"
        );
        assert!(outputs.insert(out.clone()) && outputs.insert(err.clone()));
        let pipes: Vec<_> = fds.iter().filter(|(_, t)| t.starts_with("pipe:")).collect();
        let count = |what: &str| fds.iter().filter(|(_, t)| t.contains(what)).count();
        // Its own stdout and stderr only; one pidfd, its LP's; none of the
        // supervisor's signalfd and epoll.
        assert!(
            pipes.iter().all(|(_, t)| *t == out || *t == err),
            "manager {m} holds others' pipes: {fds:?}"
        );
        assert_eq!(count("[pidfd]"), 1, "manager {m}: {fds:?}");
        assert_eq!(
            count("[signalfd]") + count("[eventpoll]"),
            0,
            "{m}: {fds:?}"
        );
    }
    let stop = Command::new(bin()).args(["stop", &name]).output().unwrap();
    assert!(stop.status.success());
    let (code, out, err) = run.wait(Duration::from_secs(60));
    assert_eq!(code, 0, "{err}");
    // Each manager ended on its own: none died (a forked manager that
    // closed its old descriptors a second time at exit aborted here).
    assert!(
        !err.contains("died") && !out.contains("fatal"),
        "{out}\n{err}"
    );
}

#[test]
fn killed_supervisor_takes_forked_managers_and_lps_with_it() {
    let dir = TempDir::new("fork-kill");
    let name = unique("fk");
    let cfg = idle_config(&dir.0, &name, LPS);
    let run = Launched::start(&cfg, &name);
    let slots = pids(&name);
    let supervisor = run.pid();
    let _ = Command::new("kill")
        .args(["-KILL", &supervisor.to_string()])
        .status();
    // Gone, or a zombie its new parent has not reaped yet.
    let alive = |p: u32| stat_field(p, 3).is_some_and(|s| s != "Z");
    let deadline = Instant::now() + Duration::from_secs(30);
    let all = || slots.iter().flat_map(|&(m, lp)| [m, lp]);
    while all().any(alive) {
        assert!(
            Instant::now() < deadline,
            "watchdog: still alive 30 s after the supervisor's kill: {:?}",
            all().filter(|&p| alive(p)).collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(run);
    clean_killed(&name);
}
