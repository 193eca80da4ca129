//! Helpers of the end-to-end tests (`tests/e2e_*.rs`): real collaborations
//! launched with the real binary, real managers and LPs (the example
//! programs), real shared memory.
//!
//! The LP programs are the examples, which `cargo test --workspace` builds;
//! `cargo test --test 'e2e_*'` (or `--test e2e_messages`, one file) alone
//! does not rebuild them (run `cargo build --examples` first in that case).
//!
//! Each test file is its own crate and uses only some of these helpers.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_shmcollab"))
}

/// An example program built next to the binary by `cargo test`.
pub fn example(name: &str) -> PathBuf {
    let p = bin().parent().unwrap().join("examples").join(name);
    assert!(p.exists(), "{} is not built", p.display());
    p
}

/// A temporary directory removed on drop, even when the test fails.
pub struct TempDir(pub PathBuf);
impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let d = std::env::temp_dir().join(format!("shmc-e2e-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        TempDir(d)
    }
}
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A launched collaboration; killed (with its process group's managers)
/// if the test ends without it having exited.
pub struct Launched {
    child: Option<Child>,
    name: String,
    /// Readers of stdout and stderr, started at once: a collaboration that
    /// writes a lot must not block on a full pipe while the test runs.
    out: Option<(
        std::thread::JoinHandle<String>,
        std::thread::JoinHandle<String>,
    )>,
}
impl Launched {
    pub fn start(config: &Path, name: &str) -> Launched {
        let mut cmd = Command::new(bin());
        cmd.arg("launch").arg(config);
        Launched::spawn(cmd, name)
    }

    /// The supervisor's pid.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, |c| c.id())
    }

    /// Run `cmd` (which runs `shmcollab launch` for collaboration `name`)
    /// with its output piped.
    pub fn spawn(mut cmd: Command, name: &str) -> Launched {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {cmd:?}: {e}"));
        let read = |mut r: Box<dyn Read + Send>| {
            std::thread::spawn(move || {
                let mut s = String::new();
                let _ = r.read_to_string(&mut s);
                s
            })
        };
        let out = read(Box::new(child.stdout.take().unwrap()));
        let err = read(Box::new(child.stderr.take().unwrap()));
        Launched {
            child: Some(child),
            name: name.to_owned(),
            out: Some((out, err)),
        }
    }

    /// Wait for the end with a watchdog; returns (exit code, stdout, stderr).
    pub fn wait(mut self, limit: Duration) -> (i32, String, String) {
        let mut child = self.child.take().unwrap();
        let (t_out, t_err) = self.out.take().unwrap();
        let deadline = Instant::now() + limit;
        let status = loop {
            if let Some(st) = child.try_wait().unwrap() {
                break st;
            }
            if Instant::now() > deadline {
                let _ = Command::new(bin()).args(["stop", &self.name]).output();
                let _ = child.kill();
                let _ = child.wait();
                let (o, e) = (t_out.join().unwrap(), t_err.join().unwrap());
                panic!(
                    "watchdog: {} did not finish in {limit:?}\nstdout:\n{o}\nstderr:\n{e}",
                    self.name
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        (
            status.code().unwrap_or(-1),
            t_out.join().unwrap(),
            t_err.join().unwrap(),
        )
    }
}
impl Drop for Launched {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new(bin()).args(["stop", &self.name]).output();
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub fn status_json(name: &str) -> Option<serde_json::Value> {
    let out: Output = Command::new(bin())
        .args(["status", name, "--json"])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    serde_json::from_slice(&out.stdout).ok()
}

pub fn lp_entry<'a>(v: &'a serde_json::Value, name: &str) -> Option<&'a serde_json::Value> {
    v["lps"].as_array()?.iter().find(|l| l["name"] == name)
}

/// Poll the coordinator's view until `pred` holds (watchdog: 30 s).
pub fn wait_status(
    name: &str,
    what: &str,
    pred: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(v) = status_json(name) {
            if pred(&v) {
                return v;
            }
        }
        assert!(
            Instant::now() < deadline,
            "watchdog: status of {name} never showed {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn unique(tag: &str) -> String {
    format!("{tag}{}", std::process::id())
}

/// Write `text` as `dir/config.toml`.
pub fn write_config(dir: &Path, text: &str) -> PathBuf {
    let p = dir.join("config.toml");
    std::fs::write(&p, text).unwrap();
    p
}

/// A pingpong collaboration: `ping` runs with `ping_args`, `pong` gets the
/// TOML line `pong_extra`; `pong_first` puts pong in slot 0 and ping in 1.
pub fn pingpong_config(
    dir: &Path,
    name: &str,
    ping_args: &[&str],
    pong_extra: &str,
    pong_first: bool,
) -> PathBuf {
    let ping = format!(
        "[[process]]\nname = \"ping\"\ncommand = {:?}\nhosts = [\"ping\"]\n",
        std::iter::once(example("pingpong-ping").display().to_string())
            .chain(ping_args.iter().map(|a| a.to_string()))
            .collect::<Vec<_>>()
    );
    let pong = format!(
        "[[process]]\nname = \"pong\"\ncommand = [{:?}]\nhosts = [\"pong\"]\n{pong_extra}\n",
        example("pingpong-pong").display().to_string()
    );
    let (first, second) = if pong_first {
        (pong, ping)
    } else {
        (ping, pong)
    };
    write_config(
        dir,
        &format!(
            "name = \"{name}\"\nreport_interval_ms = 20\n[[subfunction]]\nname = \"ping\"\n[[subfunction]]\nname = \"pong\"\n{first}{second}"
        ),
    )
}

pub fn lines(r: impl Read) -> Vec<String> {
    BufReader::new(r).lines().map_while(Result::ok).collect()
}

pub fn idle_config(dir: &Path, name: &str, n: usize) -> PathBuf {
    let cfg = format!(
        r#"
name = "{name}"
report_interval_ms = 20
grace_ms = 2000
[[subfunction]]
name = "w"
partitions = {n}
[[process]]
name = "worker"
instances = {n}
command = ["{idle}"]
hosts = ["w"]
restart = "permanent"
"#,
        idle = example("idle").display(),
    );
    write_config(dir, &cfg)
}

pub fn session_dirs(name: &str) -> Vec<PathBuf> {
    let shm = std::env::var_os("SHMCOLAB_SHM_ROOT")
        .map(PathBuf::from)
        .unwrap_or("/dev/shm".into());
    std::fs::read_dir(shm)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with(&format!("shmc.{name}."))
        })
        .collect()
}

pub fn all_ready(v: &serde_json::Value, n: usize) -> bool {
    v["lps"].as_array().is_some_and(|a| {
        a.len() == n && a.iter().all(|l| l["state"] == "ready" && l["pid"].is_u64())
    })
}

// ---- the C ABI and the languages over it -------------------------------------

/// The repository (the root package's directory).
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Whether `cmd --version` runs (a tool the test needs is there).
pub fn have(cmd: &str) -> bool {
    Command::new(cmd)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// `cargo build --release -q -p shmcollab-c` (what the README tells a C
/// user to run): `target/release/libshmcollab.{a,so}` are current after it.
pub fn build_capi_release() {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let st = Command::new(cargo)
        .args(["build", "--release", "-q", "-p", "shmcollab-c"])
        .current_dir(repo())
        .status()
        .expect("running cargo build -p shmcollab-c");
    assert!(st.success(), "cargo build --release -p shmcollab-c failed");
}

/// Compiles the C program `src` to `out` against the C ABI the way the
/// README says: `cc src $(PKG_CONFIG_PATH=<repo>/include pkg-config
/// --cflags --libs shmcollab)`; without pkg-config, with the flags of
/// `include/shmcollab.pc` spelled out. Warnings are errors.
pub fn cc_against_capi(src: &Path, out: &Path, extra: &[&str]) {
    let flags: Vec<String> = if have("pkg-config") {
        let o = Command::new("pkg-config")
            .args(["--cflags", "--libs", "shmcollab"])
            .env("PKG_CONFIG_PATH", repo().join("include"))
            .output()
            .expect("running pkg-config");
        assert!(
            o.status.success(),
            "pkg-config shmcollab: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout)
            .unwrap()
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    } else {
        eprintln!("pkg-config is missing: using the flags of include/shmcollab.pc");
        let r = repo();
        vec![
            format!("-I{}", r.join("include").display()),
            r.join("target/release/libshmcollab.a")
                .display()
                .to_string(),
            "-lgcc_s -lutil -lrt -lpthread -lm -ldl".into(),
        ]
        .into_iter()
        .flat_map(|s| s.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
        .collect()
    };
    let o = Command::new("cc")
        .args(["-std=c11", "-O2", "-Wall", "-Wextra", "-Werror", "-o"])
        .arg(out)
        .arg(src)
        .args(extra)
        .args(&flags)
        .output()
        .expect("running cc");
    assert!(
        o.status.success(),
        "cc {} failed:\n{}",
        src.display(),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// `start V` / `ack V` / `torn A B` lines of the `bank-incr` LP's log
/// (`INCR_LOG`), as (word, first number).
pub fn incr_log(log: &Path) -> Vec<(String, u64)> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            let v = v.split(' ').next()?;
            Some((k.to_owned(), v.parse().ok()?))
        })
        .collect()
}

/// The crash tests' collaboration: `incr` (`bank-incr n`, its log at
/// `log`) increments the counter of the sub-function it hosts, up to `n`.
/// Alone (`pair` false: `e2e_txn`) it hosts `c`; as a pair (`e2e_txn_crash`,
/// `e2e_txn_relaunch`) it hosts `c/0` and each transaction also increments
/// `c/1`, hosted by `peer`'s manager (a two-phase commit).
pub fn incr_config(dir: &Path, name: &str, n: u64, log: &Path, pair: bool) -> PathBuf {
    let p = example("bank-incr").display().to_string();
    let log = log.display().to_string();
    let (partitions, hosts, also, peer) = if pair {
        let idle = example("idle").display().to_string();
        (
            "partitions = 2\n",
            "c/0",
            ", INCR_ALSO = \"c/1\"",
            format!(
                "\n[[process]]\nname = \"peer\"\ncommand = [{idle:?}]\nhosts = [\"c/1\"]\nrestart = \"transient\"\n"
            ),
        )
    } else {
        ("", "c", "", String::new())
    };
    write_config(
        dir,
        &format!(
            r#"name = "{name}"
report_interval_ms = 100

[[subfunction]]
name = "c"
{partitions}
[[process]]
name = "incr"
command = [{p:?}, "{n}"]
hosts = ["{hosts}"]
restart = "transient"
max_restarts = 5
env = {{ INCR_LOG = {log:?}{also} }}
{peer}"#
        ),
    )
}

/// After a collaboration was killed whole (nothing stopped cleanly), run
/// `shmcollab clean` until its session directories are gone (at most 30 s).
pub fn clean_killed(name: &str) {
    let gone = Instant::now() + Duration::from_secs(30);
    while !session_dirs(name).is_empty() && Instant::now() < gone {
        let _ = Command::new(bin()).arg("clean").output();
        std::thread::sleep(Duration::from_millis(100));
    }
}
