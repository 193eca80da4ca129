//! The LP sandbox (issue 11, build 3), with real processes: the
//! `sandbox-probe` example (examples/sandbox/probe.rs) runs as LPs `a` and
//! `b`; `a` tries to open the session directory, the registry, its own
//! rings and its peer's, and to signal its manager, then sends a request,
//! a message and a transaction over both sub-functions and reads the
//! collaboration state, and checks that a direct ring reached it (its
//! descriptor on the socket, behind ATTACH). It prints one
//! `probe <what> <result>` line each.
//!
//! - sandboxed: every open fails with EACCES, the signal with EPERM, and
//!   everything else works;
//! - the same LP without the sandbox opens all of it and may signal (so
//!   the first test can fail);
//! - the stated fallback (`SHMCOLAB_LANDLOCK=0`, as on a kernel without
//!   Landlock): a warning, `sandbox: "degraded"` in the state, the registry
//!   still not mapped;
//! - `user = "nobody"` as root: the LP runs as uid 65534 and works
//!   through its descriptors (skipped with a message when not root).

mod common;

use common::*;
use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

const CLOSED: [&str; 5] = [
    "session_dir",
    "registry",
    "own_ring",
    "own_ring_proc",
    "peer_ring",
];
const WORKS: [&str; 5] = ["request", "send", "transaction", "state", "direct_ring"];

fn config(dir: &Path, name: &str, extra: &str) -> std::path::PathBuf {
    let probe = example("sandbox-probe");
    let state = dir.join("state");
    let text = format!(
        r#"name = "{name}"
report_interval_ms = 100
state_dir = "{state}"

[[subfunction]]
name = "a"

[[subfunction]]
name = "b"

[[process]]
name = "a"
command = ["{probe}"]
hosts = ["a"]
restart = "temporary"
{extra}

[[process]]
name = "b"
command = ["{probe}"]
hosts = ["b"]
restart = "temporary"
{extra}
"#,
        state = state.display(),
        probe = probe.display(),
    );
    write_config(dir, &text)
}

/// Launch, wait, and return the probe's results by name, and stderr.
fn run(tag: &str, extra: &str, env: &[(&str, &str)]) -> (HashMap<String, String>, String) {
    let dir = TempDir::new(tag);
    let name = unique(tag);
    let cfg = config(&dir.0, &name, extra);
    let mut cmd = std::process::Command::new(bin());
    cmd.arg("launch").arg(&cfg);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let (code, out, err) = Launched::spawn(cmd, &name).wait(Duration::from_secs(120));
    let results: HashMap<String, String> = out
        .lines()
        .filter_map(|l| l.split_once("| probe ").map(|(_, r)| r))
        .map(|l| l.split_once(' ').unwrap_or((l, "")))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    assert!(
        results.contains_key("done"),
        "the probe did not finish (exit {code})\nstdout:\n{out}\nstderr:\n{err}"
    );
    (results, err)
}

fn expect(r: &HashMap<String, String>, what: &str, want: &str, err: &str) {
    assert_eq!(
        r.get(what).map(String::as_str),
        Some(want),
        "{what}: {r:?}\nstderr:\n{err}"
    );
}

fn landlock_abi() -> i64 {
    shmcollab::runtime::sandbox::kernel_abi()
}

#[test]
fn a_sandboxed_lp_reaches_only_its_descriptors_and_still_works() {
    if landlock_abi() < 6 {
        eprintln!(
            "SKIPPED a_sandboxed_lp_reaches_only_its_descriptors_and_still_works: \
             the kernel's Landlock ABI is {} (< 6); the fallback test covers it",
            landlock_abi()
        );
        return;
    }
    let (r, err) = run("sbx-on", "sandbox = true", &[]);
    for what in CLOSED {
        expect(&r, what, "EACCES", &err);
    }
    expect(&r, "signal_manager", "EPERM", &err);
    for what in WORKS {
        expect(&r, what, "ok", &err);
    }
    expect(&r, "sandbox_status", "on", &err);
    expect(&r, "registry_mapped", "no", &err);
}

#[test]
fn the_same_lp_without_the_sandbox_can_open_everything() {
    let (r, err) = run("sbx-off", "sandbox = false", &[]);
    for what in CLOSED {
        expect(&r, what, "ok", &err);
    }
    expect(&r, "signal_manager", "ok", &err);
    for what in WORKS {
        expect(&r, what, "ok", &err);
    }
    expect(&r, "sandbox_status", "off", &err);
    expect(&r, "registry_mapped", "no", &err);
}

#[test]
fn without_landlock_the_sandbox_is_degraded_visibly() {
    let (r, err) = run("sbx-deg", "sandbox = true", &[("SHMCOLAB_LANDLOCK", "0")]);
    assert!(err.contains("degraded sandbox"), "no warning:\n{err}");
    expect(&r, "sandbox_status", "degraded", &err);
    // What the fallback still gives: descriptors only, no registry mapped.
    expect(&r, "registry_mapped", "no", &err);
    for what in WORKS {
        expect(&r, what, "ok", &err);
    }
    // What it does not: the kernel lets the LP open the files.
    expect(&r, "registry", "ok", &err);
}

#[test]
fn an_lp_runs_as_nobody_and_talks_through_its_descriptors() {
    if shmcollab::shm::segment::euid() != 0 {
        eprintln!("SKIPPED an_lp_runs_as_nobody_and_talks_through_its_descriptors: not root");
        return;
    }
    if shmcollab::runtime::sandbox::lookup_user("nobody").is_err() {
        eprintln!("SKIPPED an_lp_runs_as_nobody_and_talks_through_its_descriptors: no user nobody");
        return;
    }
    let (r, err) = run("sbx-user", "user = \"nobody\"", &[]);
    expect(&r, "uid", "65534", &err);
    for what in WORKS {
        expect(&r, what, "ok", &err);
    }
    // As nobody, not sandboxed: the 0600 files of root are closed anyway.
    expect(&r, "registry", "EACCES", &err);
    expect(&r, "own_ring", "EACCES", &err);
}
