//! Session entries of our own uid that are broken or lie (issue 11, items
//! 2 and 13, and Build 2's full /dev/shm), against the real binary:
//! an owner record with start time 0 (which turned the pid-reuse check
//! off), a plan whose values overflow `stop`'s arithmetic, owner files
//! that are a FIFO or a symlink to /dev/zero, a mode we never make, and a
//! shm root without room for a session. Each command runs under a
//! watchdog and a memory limit (`common/guarded.rs`); a process of ours
//! that merely shares a pid with a record must never be signalled.

mod common;
#[path = "common/guarded.rs"]
mod guarded;

use common::*;
use guarded::*;
use shmcollab::shm::segment::{euid, Session};
use std::os::unix::fs::{symlink, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

/// A session directory of ours made by hand: mode 0700, with `owner`
/// (mode 0600) holding `record` if given.
fn own_dir(root: &Path, name: &str, id: u64, record: Option<&str>) -> PathBuf {
    let dir = sdir(root, name, id);
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    if let Some(text) = record {
        write_0600(&dir.join("owner"), text.as_bytes());
    }
    dir
}

fn write_0600(path: &Path, bytes: &[u8]) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .unwrap();
    f.write_all(bytes).unwrap();
}

/// Make `dir` look a minute old: older than the grace given to a session
/// being created.
fn age(dir: &Path) {
    let past = SystemTime::now() - Duration::from_secs(60);
    std::fs::File::open(dir)
        .unwrap()
        .set_modified(past)
        .unwrap();
}

/// An owner record with start time 0 used to mean "any process with this
/// pid": `stop` then sent SIGTERM to whatever process had the pid, and
/// `clean` never removed the session. Now it names no live owner.
#[test]
fn start_time_zero_names_no_owner() {
    let root = ShmRoot::new("start0");
    let name = unique("start0");
    let mut bystander = Bystander::start();
    let record = format!("{} 0 {:016x}\n", bystander.pid(), 0x10);
    let dir = own_dir(&root.0, &name, 0x10, Some(&record));

    let st = shmc(&root.0, &["status", &name]);
    assert_eq!(st.code, Some(1), "{st:?}");
    assert!(st.err.contains("no running collaboration"), "{st:?}");
    let sp = shmc(&root.0, &["stop", &name]);
    assert_eq!(sp.code, Some(1), "{sp:?}");
    assert!(
        bystander.untouched(),
        "stop signalled pid {}",
        bystander.pid()
    );

    age(&dir);
    let cl = shmc(&root.0, &["clean"]);
    assert_eq!(cl.code, Some(0), "{cl:?}");
    assert!(
        cl.out.contains(&format!("removed {}", dir.display())),
        "{cl:?}"
    );
    assert!(!dir.exists());
    assert!(bystander.untouched());
}

/// A plan in the session whose grace period overflows `stop`'s budget
/// arithmetic: `stop` signals the recorded owner (and nothing else), says
/// the plan is implausible, waits a bounded time and reports that the
/// "supervisor" (here a plain process) left its session behind.
#[test]
fn stop_survives_overflowing_plan_values() {
    let root = ShmRoot::new("plan");
    let work = TempDir::new("plan");
    let name = unique("plan");
    let cfg = idle_config(&work.0, &name, 2);
    let mut plan = shmcollab::supervisor::config::Config::load(&cfg)
        .unwrap()
        .plan()
        .clone();
    plan.grace_ms = u64::MAX;
    let mut owner = Bystander::start();
    let record = format!("{} {} {:016x}\n", owner.pid(), owner.start_time(), 0x11);
    let dir = own_dir(&root.0, &name, 0x11, Some(&record));
    write_0600(&dir.join("plan.json"), &serde_json::to_vec(&plan).unwrap());

    let sp = shmc(&root.0, &["stop", &name]);
    assert_eq!(sp.code, Some(1), "{sp:?}");
    assert!(sp.err.contains("implausible plan"), "{sp:?}");
    assert!(sp.err.contains("left"), "{sp:?}");
    assert!(!owner.untouched(), "the recorded owner was not signalled");
}

/// `clean` goes on past every bad entry and reports each: owner files that
/// are a FIFO (reading it used to hang `clean`) or a symlink to /dev/zero
/// (reading it used to take all memory), a start time of 0, a directory
/// with a mode we never make, beside an ordinary stale session and a live
/// one.
#[test]
fn clean_goes_on_past_bad_entries() {
    let root = ShmRoot::new("cleanbad");
    let name = unique("cleanbad");
    let mut bystander = Bystander::start();
    let fifo = own_dir(&root.0, &name, 1, None);
    let made = Command::new("mkfifo")
        .args(["-m", "600"])
        .arg(fifo.join("owner"))
        .status()
        .unwrap();
    assert!(made.success());
    let zero = own_dir(&root.0, &name, 2, None);
    symlink("/dev/zero", zero.join("owner")).unwrap();
    let start0 = own_dir(
        &root.0,
        &name,
        3,
        Some(&format!("{} 0 {:016x}\n", bystander.pid(), 3)),
    );
    let dead = {
        let gone = Bystander::start();
        let rec = format!("{} {} {:016x}\n", gone.pid(), gone.start_time(), 4);
        drop(gone); // killed and reaped
        own_dir(&root.0, &name, 4, Some(&rec))
    };
    let wide = own_dir(&root.0, &name, 5, Some("1 1 0000000000000005\n"));
    std::fs::set_permissions(&wide, std::fs::Permissions::from_mode(0o755)).unwrap();
    let live = Session::create_in(&root.0, &name).unwrap();
    for d in [&fifo, &zero, &start0, &dead, &wide] {
        age(d);
    }

    let cl = shmc(&root.0, &["clean"]);
    assert_eq!(cl.code, Some(0), "{cl:?}");
    for d in [&fifo, &zero, &start0, &dead] {
        let line = format!("removed {}", d.display());
        assert!(cl.out.contains(&line), "no {line:?} in {cl:?}");
        assert!(!d.exists(), "{} left", d.display());
    }
    assert!(
        cl.out
            .contains(&format!("skipped {}: mode 0755", wide.display())),
        "{cl:?}"
    );
    assert!(wide.exists());
    assert!(live.dir().exists(), "clean removed a live session");
    assert!(cl.out.contains("4 stale session(s) removed"), "{cl:?}");
    assert!(bystander.untouched());
}

/// A tmpfs mounted for the test, unmounted on drop.
struct Tmpfs(PathBuf);
impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// A full shm root at launch is one clear error that names the root and
/// the size wanted, with nothing left behind (segments used to be sparse
/// files: the first write into a page the tmpfs had no room for killed the
/// supervisor with SIGBUS).
#[test]
fn launch_on_a_full_shm_root_is_a_clear_error() {
    if euid() != 0 {
        eprintln!(
            "SKIPPED launch_on_a_full_shm_root_is_a_clear_error: mounting a tmpfs needs root"
        );
        return;
    }
    let mnt = std::env::temp_dir().join(format!("shmc-full-{}", std::process::id()));
    std::fs::create_dir_all(&mnt).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=16k,mode=1777", "shmc-full"])
        .arg(&mnt)
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        let _ = std::fs::remove_dir(&mnt);
        eprintln!("SKIPPED launch_on_a_full_shm_root_is_a_clear_error: cannot mount a tmpfs");
        return;
    }
    let mnt = Tmpfs(mnt);
    let work = TempDir::new("full");
    let name = unique("full");
    let cfg = idle_config(&work.0, &name, 1);
    let mut cmd = Command::new(bin());
    cmd.arg("launch").arg(&cfg).env("SHMCOLAB_SHM_ROOT", &mnt.0);
    let ran = finish(cmd, "launch on a full tmpfs");
    assert_eq!(ran.code, Some(1), "{ran:?}");
    let want = format!("no space left in {}", mnt.0.display());
    assert!(ran.err.contains(&want), "{want:?} not in {ran:?}");
    assert!(ran.err.contains("bytes wanted"), "{ran:?}");
    let left: Vec<_> = std::fs::read_dir(&mnt.0).unwrap().flatten().collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// A stale session that cannot be removed (here: a filesystem is mounted
/// inside it, so its removal fails with EBUSY) is reported with the error
/// and makes `clean` exit 1; the stale session beside it is still removed.
#[test]
fn clean_reports_what_it_cannot_remove_and_goes_on() {
    if euid() != 0 {
        eprintln!(
            "SKIPPED clean_reports_what_it_cannot_remove_and_goes_on: mounting a tmpfs needs root"
        );
        return;
    }
    let root = ShmRoot::new("cleanbusy");
    let name = unique("cleanbusy");
    let busy = own_dir(&root.0, &name, 1, None);
    let other = own_dir(&root.0, &name, 2, None);
    let mnt = busy.join("m");
    std::fs::create_dir(&mnt).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=4k", "shmc-busy"])
        .arg(&mnt)
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("SKIPPED clean_reports_what_it_cannot_remove_and_goes_on: cannot mount a tmpfs");
        return;
    }
    let _unmount = Tmpfs(mnt);
    age(&busy);
    age(&other);
    let cl = shmc(&root.0, &["clean"]);
    assert_eq!(cl.code, Some(1), "{cl:?}");
    let line = format!("cannot remove {}", busy.display());
    assert!(cl.err.contains(&line), "no {line:?} in {cl:?}");
    assert!(
        cl.out.contains(&format!("removed {}", other.display())),
        "{cl:?}"
    );
    assert!(!other.exists());
}
