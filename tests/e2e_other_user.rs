//! Another Unix user against our commands (issue 11, items 2 and 13).
//!
//! The shm root is shared with every user. Here a real second uid
//! (`nobody`, 65534, through `setpriv`) puts things in it: an owner file
//! that is a FIFO, one that is a symlink to `/dev/zero`, a FIFO and a
//! symlink named like session directories, a session directory of its own
//! whose owner record names an unrelated process of ours, and a whole
//! running collaboration under our collaboration's name. Then the real
//! binary's `status`, `stop`, `clean` and `launch` run as root against it,
//! each under a watchdog (a hang fails the test) and an address-space limit
//! (reading `/dev/zero` without a bound fails it too), and must neither
//! hang, read, remove, signal nor show what is not ours, nor refuse to run.
//!
//! Each test has its own shm root: a sticky, world-writable directory in
//! /dev/shm (what /dev/shm itself is), passed as `SHMCOLAB_SHM_ROOT`, so
//! that `status` without a name and `clean` see only this test's entries.
//! The tests that need a second uid skip with a message when not run as
//! root or without `nobody` and `setpriv`.

mod common;
#[path = "common/guarded.rs"]
mod guarded;

use common::*;
use guarded::*;
use shmcollab::shm::segment::euid;
use std::os::unix::fs::{chown, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const NOBODY: u32 = 65534;

/// Whether we can act as `nobody`; prints why not.
fn can_switch_user(test: &str) -> bool {
    let why = if euid() != 0 {
        "not running as root"
    } else if !Path::new("/usr/bin/setpriv").exists() && !Path::new("/bin/setpriv").exists() {
        "no setpriv"
    } else if !Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "true"])
        .status()
        .is_ok_and(|s| s.success())
    {
        "cannot switch to uid 65534"
    } else {
        return true;
    };
    eprintln!("SKIPPED {test}: {why} (it needs a second uid, `nobody`)");
    false
}

/// Run `script` with `sh` as uid/gid 65534; panics if it fails.
fn as_nobody(script: &str) {
    let out = nobody_cmd("sh").args(["-c", script]).output().unwrap();
    assert!(
        out.status.success(),
        "as nobody: {script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn nobody_cmd(program: &str) -> Command {
    let mut c = Command::new("setpriv");
    c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(program);
    c
}

/// A FIFO as the owner file, a symlink to /dev/zero as the owner file, a
/// FIFO and a symlink as session entries: nothing hangs, nothing is read
/// without a bound, nothing is removed, and `launch` is not blocked.
#[test]
fn hostile_entries_hang_nothing_and_block_nothing() {
    if !can_switch_user("hostile_entries_hang_nothing_and_block_nothing") {
        return;
    }
    let root = ShmRoot::new("hostile");
    let r = root.0.display().to_string();
    let name = unique("hostile");
    let entries: Vec<PathBuf> = (1..=4).map(|i| sdir(&root.0, &name, i)).collect();
    let e: Vec<String> = entries.iter().map(|p| p.display().to_string()).collect();
    as_nobody(&format!(
        "mkdir -m 755 {0} && mkfifo -m 666 {0}/owner && \
         mkdir -m 755 {1} && ln -s /dev/zero {1}/owner && \
         mkfifo -m 666 {2} && ln -s /dev/zero {3} && ls -l {r} >/dev/null",
        e[0], e[1], e[2], e[3]
    ));

    let st = shmc(&root.0, &["status", &name]);
    assert_eq!(st.code, Some(1), "{st:?}");
    assert!(st.err.contains("no running collaboration"), "{st:?}");
    assert!(
        st.err.contains("uid 65534"),
        "foreign entries not named: {st:?}"
    );
    let st = shmc(&root.0, &["status"]);
    assert_eq!(st.code, Some(1), "{st:?}");
    assert!(st.err.contains("no collaboration is running"), "{st:?}");
    let sp = shmc(&root.0, &["stop", &name]);
    assert_eq!(sp.code, Some(1), "{sp:?}");
    assert!(sp.err.contains("no running collaboration"), "{sp:?}");
    let cl = shmc(&root.0, &["clean"]);
    assert_eq!(cl.code, Some(0), "{cl:?}");
    for p in &e {
        assert!(
            cl.out.contains(&format!("skipped {p}")),
            "{p} not reported: {cl:?}"
        );
    }
    assert!(cl.out.contains("0 stale session(s) removed"), "{cl:?}");
    for p in &entries {
        assert!(p.symlink_metadata().is_ok(), "{} was removed", p.display());
    }

    // Our own collaboration of that name runs regardless, and is the one
    // `status` and `stop` act on.
    let dir = TempDir::new("hostile");
    let cfg = idle_config(&dir.0, &name, 2);
    let mut cmd = Command::new(bin());
    cmd.arg("launch")
        .arg(&cfg)
        .env("SHMCOLAB_SHM_ROOT", &root.0);
    let run = Launched::spawn(cmd, &name);
    wait_ready(&root.0, &name, 2);
    nobody_cannot_touch_ours(&root.0, &name);
    wait_ready(&root.0, &name, 2); // still running, still ours
    let sp = shmc(&root.0, &["stop", &name]);
    assert_eq!(sp.code, Some(0), "{sp:?}");
    let (code, _, err) = run.wait(Duration::from_secs(60));
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("ignoring"),
        "launch did not name what it passed over: {err}"
    );
    for p in &entries {
        assert!(p.symlink_metadata().is_ok(), "{} was removed", p.display());
    }
}

/// The other direction: while our collaboration `name` runs, nobody can
/// neither list, read nor write its session, and its `status`, `stop` and
/// `clean` neither show, stop nor remove it.
fn nobody_cannot_touch_ours(root: &Path, name: &str) {
    let ours: Vec<PathBuf> = std::fs::read_dir(root)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let ours = p
                .symlink_metadata()
                .is_ok_and(|m| m.is_dir() && m.uid() == 0);
            ours && p
                .file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(&format!("shmc.{name}."))
        })
        .collect();
    let [dir] = ours.as_slice() else {
        panic!("expected one session of ours, found {ours:?}")
    };
    let d = dir.display();
    for attempt in [
        format!("ls {d}"),
        format!("cat {d}/owner"),
        format!("cat {d}/registry"),
        format!("echo x >> {d}/registry"),
        format!("touch {d}/intruder"),
        format!("rm -rf {d}"),
    ] {
        let out = nobody_cmd("sh").args(["-c", &attempt]).output().unwrap();
        assert!(!out.status.success(), "as nobody, `{attempt}` succeeded");
    }
    let as_nobody_run = |args: &[&str]| {
        let mut c = nobody_cmd(&bin().display().to_string());
        c.args(args).env("SHMCOLAB_SHM_ROOT", root);
        finish(c, &format!("{args:?} as nobody"))
    };
    let st = as_nobody_run(&["status", name, "--json"]);
    assert_eq!(st.code, Some(1), "nobody sees our collaboration: {st:?}");
    let sp = as_nobody_run(&["stop", name]);
    assert_eq!(sp.code, Some(1), "{sp:?}");
    let cl = as_nobody_run(&["clean"]);
    assert_eq!(cl.code, Some(0), "{cl:?}");
    assert!(
        cl.out.contains(&format!("skipped {d}: owned by uid 0")),
        "{cl:?}"
    );
    assert!(dir.join("owner").exists());
}

/// Another user runs a collaboration under our collaboration's name, and
/// keeps a session directory whose owner record names an unrelated process
/// of ours (pid and true start time). `status` shows neither, `stop`
/// signals neither, `clean` removes neither, `launch` runs ours.
#[test]
fn another_users_sessions_are_not_shown_signalled_or_blocking() {
    if !can_switch_user("another_users_sessions_are_not_shown_signalled_or_blocking") {
        return;
    }
    let root = ShmRoot::new("foreign");
    let name = unique("foreign");
    let mut bystander = Bystander::start();

    // nobody's own collaboration, one LP, in a directory it owns.
    let theirs_dir = TempDir::new("foreign-theirs");
    chown(&theirs_dir.0, Some(NOBODY), Some(NOBODY)).unwrap();
    let theirs_cfg = idle_config(&theirs_dir.0, &name, 1);
    chown(&theirs_cfg, Some(NOBODY), Some(NOBODY)).unwrap();
    let mut cmd = nobody_cmd(&bin().display().to_string());
    cmd.arg("launch")
        .arg(&theirs_cfg)
        .env("SHMCOLAB_SHM_ROOT", &root.0);
    let theirs = Launched::spawn(cmd, &name);
    wait_ready_as_nobody(&root.0, &name);
    // (Made after nobody's collaboration is ready: for nobody, it is a
    // live session of its own, as good as the real one.)
    let fake = sdir(&root.0, &name, 0xaa);
    as_nobody(&format!(
        "umask 077 && mkdir {0} && printf '%s %s %016x\\n' {1} {2} 170 > {0}/owner",
        fake.display(),
        bystander.pid(),
        bystander.start_time()
    ));

    let st = shmc(&root.0, &["status", &name, "--json"]);
    assert_eq!(
        st.code,
        Some(1),
        "another user's collaboration shown: {st:?}"
    );
    assert!(st.err.contains("no running collaboration"), "{st:?}");
    assert!(st.err.contains(&fake.display().to_string()), "{st:?}");
    let st = shmc(&root.0, &["status"]);
    assert_eq!(st.code, Some(1), "{st:?}");
    let sp = shmc(&root.0, &["stop", &name]);
    assert_eq!(sp.code, Some(1), "{sp:?}");
    assert!(bystander.untouched(), "stop signalled an unrelated process");
    let cl = shmc(&root.0, &["clean"]);
    assert_eq!(cl.code, Some(0), "{cl:?}");
    assert!(fake.exists(), "clean removed another user's directory");
    assert!(cl.out.contains("uid 65534"), "{cl:?}");

    // Ours runs beside theirs; status and stop act on ours only.
    let ours_dir = TempDir::new("foreign-ours");
    let ours_cfg = idle_config(&ours_dir.0, &name, 2);
    let mut cmd = Command::new(bin());
    cmd.arg("launch")
        .arg(&ours_cfg)
        .env("SHMCOLAB_SHM_ROOT", &root.0);
    let ours = Launched::spawn(cmd, &name);
    let v = wait_ready(&root.0, &name, 2);
    assert_eq!(v["lps"].as_array().unwrap().len(), 2, "{v}");
    let sp = shmc(&root.0, &["stop", &name]);
    assert_eq!(sp.code, Some(0), "{sp:?}");
    let (code, _, err) = ours.wait(Duration::from_secs(60));
    assert_eq!(code, 0, "{err}");
    assert!(bystander.untouched(), "stop signalled an unrelated process");
    as_nobody(&format!("rm -r {}", fake.display()));
    wait_ready_as_nobody(&root.0, &name); // theirs still runs

    let sp = finish(
        {
            let mut c = nobody_cmd(&bin().display().to_string());
            c.args(["stop", &name]).env("SHMCOLAB_SHM_ROOT", &root.0);
            c
        },
        "stop as nobody",
    );
    assert_eq!(sp.code, Some(0), "{sp:?}");
    let (code, _, err) = theirs.wait(Duration::from_secs(60));
    assert_eq!(code, 0, "{err}");
}

/// As nobody, poll `status NAME --json` until its one LP is ready.
fn wait_ready_as_nobody(root: &Path, name: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut c = nobody_cmd(&bin().display().to_string());
        c.args(["status", name, "--json"])
            .env("SHMCOLAB_SHM_ROOT", root);
        let st = finish(c, "status as nobody");
        if st.code == Some(0)
            && serde_json::from_str::<serde_json::Value>(&st.out).is_ok_and(|v| all_ready(&v, 1))
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "watchdog: nobody's {name} never got ready: {st:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
