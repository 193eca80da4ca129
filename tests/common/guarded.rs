//! Helpers of the tests that put hostile entries into a shm root and run
//! the real binary against them (`e2e_other_user.rs`, `e2e_sessions.rs`):
//! a private sticky shm root, the binary under a watchdog and a memory
//! limit, a bystander process that must never be signalled.
#![allow(dead_code)]

use super::common::{all_ready, bin};
use shmcollab::shm::segment::process_start_time;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A shm root for one test: sticky and world-writable like /dev/shm;
/// removed (with whatever any user left in it) on drop.
pub struct ShmRoot(pub PathBuf);
impl ShmRoot {
    pub fn new(tag: &str) -> ShmRoot {
        let base = if Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        let p = base.join(format!("shmc-test-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir(&p).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o1777)).unwrap();
        ShmRoot(p)
    }
}
impl Drop for ShmRoot {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// What a command did.
#[derive(Debug)]
pub struct Ran {
    pub code: Option<i32>,
    pub out: String,
    pub err: String,
}

/// Run the binary with `args` against shm root `root`, with a watchdog
/// (20 s: a hang is a failure) and a 2 GiB address-space limit (reading
/// /dev/zero without a bound is a failure, not a machine out of memory).
pub fn shmc(root: &Path, args: &[&str]) -> Ran {
    let mut cmd = Command::new("sh");
    cmd.args(["-c", "ulimit -v 2097152; exec \"$0\" \"$@\""])
        .arg(bin())
        .args(args)
        .env("SHMCOLAB_SHM_ROOT", root);
    finish(cmd, &format!("shmcollab {}", args.join(" ")))
}

pub fn finish(mut cmd: Command, what: &str) -> Ran {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let read = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = r.read_to_string(&mut s);
            s
        })
    };
    let out = read(Box::new(child.stdout.take().unwrap()));
    let err = read(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "watchdog: `{what}` hung (killed after 20 s); stderr: {}",
                err.join().unwrap()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let ran = Ran {
        code: status.code(),
        out: out.join().unwrap(),
        err: err.join().unwrap(),
    };
    assert!(
        ran.code.is_some(),
        "`{what}` was killed by a signal ({status}): {ran:?}"
    );
    assert_ne!(ran.code, Some(101), "`{what}` panicked: {ran:?}");
    ran
}

/// A process of ours that has nothing to do with any collaboration; killed
/// on drop.
pub struct Bystander(Child);
impl Bystander {
    pub fn start() -> Bystander {
        Bystander(Command::new("sleep").arg("600").spawn().unwrap())
    }
    pub fn pid(&self) -> u32 {
        self.0.id()
    }
    pub fn start_time(&self) -> u64 {
        process_start_time(self.pid()).unwrap()
    }
    /// Whether it still runs (no signal reached it).
    pub fn untouched(&mut self) -> bool {
        self.0.try_wait().unwrap().is_none()
    }
}
impl Drop for Bystander {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `name`'s session directory name with id `id`.
pub fn sdir(root: &Path, name: &str, id: u64) -> PathBuf {
    root.join(format!("shmc.{name}.{id:016x}"))
}

/// Poll `status NAME --json` until `n` LPs are ready (watchdog 30 s).
pub fn wait_ready(root: &Path, name: &str, n: usize) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let st = shmc(root, &["status", name, "--json"]);
        if st.code == Some(0) {
            let v: serde_json::Value = serde_json::from_str(&st.out).unwrap();
            if all_ready(&v, n) {
                return v;
            }
        }
        assert!(
            Instant::now() < deadline,
            "watchdog: {name} never showed {n} ready LPs: {st:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
