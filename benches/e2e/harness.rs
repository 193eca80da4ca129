//! The bench's plumbing (see the module doc of `benches/e2e.rs`): where the
//! binaries are, a temporary directory, a launched collaboration guarded by
//! a watchdog, the configs it runs, and medians. Kept apart from the
//! measurements so that `e2e.rs` reads as the list of figures it measures.

use serde_json::Value;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long any one collaboration may run before the watchdog ends it.
pub(crate) const WATCHDOG: Duration = Duration::from_secs(120);

pub(crate) fn quick() -> bool {
    std::env::var_os("SHMC_BENCH_QUICK").is_some()
}

pub(crate) fn fail(msg: &str) -> ! {
    eprintln!("e2e bench: {msg}");
    // exit() runs no destructors: remove the temporary directory here.
    let _ = std::fs::remove_dir_all(temp_path());
    std::process::exit(1);
}

pub(crate) fn temp_path() -> PathBuf {
    std::env::temp_dir().join(format!("shmc-bench-e2e-{}", std::process::id()))
}

// ---- where things are ----------------------------------------------------

pub(crate) struct Bins {
    pub(crate) shmcollab: PathBuf,
    pub(crate) ping: PathBuf,
    pub(crate) pong: PathBuf,
    pub(crate) idle: PathBuf,
}

/// `target/release`: the bench binary lives in `target/release/deps/`.
pub(crate) fn target_release() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_else(|e| fail(&format!("current_exe: {e}")));
    exe.parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| fail(&format!("no target dir above {}", exe.display())))
}

pub(crate) fn build_and_locate() -> Bins {
    match std::env::var_os("CARGO") {
        Some(cargo) => {
            eprintln!("e2e bench: cargo build --release --examples --bins -q ...");
            let t = Instant::now();
            let st = Command::new(cargo)
                .args(["build", "--release", "--examples", "--bins", "-q"])
                .current_dir(env!("CARGO_MANIFEST_DIR"))
                .status()
                .unwrap_or_else(|e| fail(&format!("running cargo: {e}")));
            if !st.success() {
                fail(&format!(
                    "`cargo build --release --examples --bins` failed ({st}); fix the build and retry"
                ));
            }
            eprintln!("e2e bench: built in {:.1} s", t.elapsed().as_secs_f64());
        }
        None => eprintln!(
            "e2e bench: $CARGO not set (not run by cargo); using the binaries already in target/release"
        ),
    }
    let rel = target_release();
    let ex = rel.join("examples");
    let bins = Bins {
        shmcollab: rel.join("shmcollab"),
        ping: ex.join("pingpong-ping"),
        pong: ex.join("pingpong-pong"),
        idle: ex.join("idle"),
    };
    for p in [&bins.shmcollab, &bins.ping, &bins.pong, &bins.idle] {
        if !p.is_file() {
            fail(&format!(
                "{} is missing: run `cargo build --release --examples --bins` first",
                p.display()
            ));
        }
    }
    bins
}

/// A temporary directory removed on drop.
pub(crate) struct TempDir(pub(crate) PathBuf);
impl TempDir {
    pub(crate) fn new() -> TempDir {
        let d = temp_path();
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap_or_else(|e| fail(&format!("{}: {e}", d.display())));
        TempDir(d)
    }
}
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub(crate) fn shm_root() -> PathBuf {
    std::env::var_os("SHMCOLAB_SHM_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| "/dev/shm".into())
}

pub(crate) fn shm_entries() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(shm_root())
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    v.sort();
    v
}

/// The session directories of collaboration `name` left in the shm root.
pub(crate) fn sessions_of(name: &str) -> Vec<PathBuf> {
    let prefix = format!("shmc.{name}.");
    shm_entries()
        .into_iter()
        .filter(|n| n.starts_with(&prefix))
        .map(|n| shm_root().join(n))
        .collect()
}

// ---- a launched collaboration ----------------------------------------------

pub(crate) struct Launched {
    pub(crate) child: Child,
    name: String,
    shmcollab: PathBuf,
    /// Dropping it tells the watchdog the collaboration is over.
    _watch: mpsc::Sender<()>,
}

impl Launched {
    /// `shmcollab launch CONFIG` with stdout and stderr piped, guarded by a
    /// watchdog thread.
    pub(crate) fn start(bins: &Bins, config: &Path, name: &str) -> Launched {
        Launched::start_env(bins, config, name, &[])
    }

    pub(crate) fn start_env(
        bins: &Bins,
        config: &Path,
        name: &str,
        env: &[(&str, &str)],
    ) -> Launched {
        let child = Command::new(&bins.shmcollab)
            .arg("launch")
            .envs(env.iter().copied())
            .arg(config)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| fail(&format!("spawning shmcollab launch: {e}")));
        let (tx, rx) = mpsc::channel::<()>();
        let pid = child.id();
        let (n, exe) = (name.to_owned(), bins.shmcollab.clone());
        std::thread::spawn(move || {
            if rx.recv_timeout(WATCHDOG) != Err(mpsc::RecvTimeoutError::Timeout) {
                return;
            }
            eprintln!("e2e bench: watchdog: {n} still running after {WATCHDOG:?}; stopping it");
            let _ = Command::new(&exe).args(["stop", &n]).output();
            if rx.recv_timeout(Duration::from_secs(10)) == Err(mpsc::RecvTimeoutError::Timeout) {
                // Its managers (and their LPs) die with it (PDEATHSIG).
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
                std::thread::sleep(Duration::from_millis(500));
                for d in sessions_of(&n) {
                    let _ = std::fs::remove_dir_all(d);
                }
            }
        });
        Launched {
            child,
            name: name.to_owned(),
            shmcollab: bins.shmcollab.clone(),
            _watch: tx,
        }
    }

    pub(crate) fn stop(&self) {
        let out = Command::new(&self.shmcollab)
            .args(["stop", &self.name])
            .output();
        if let Ok(o) = out {
            if !o.status.success() {
                eprintln!(
                    "e2e bench: shmcollab stop {}: {}{}",
                    self.name,
                    String::from_utf8_lossy(&o.stdout),
                    String::from_utf8_lossy(&o.stderr)
                );
            }
        }
    }

    /// Read stdout and stderr to the end and wait; (exit code, stdout, stderr).
    pub(crate) fn finish(mut self) -> (i32, String, String) {
        let out = self.child.stdout.take().map(slurp);
        let err = self.child.stderr.take().map(slurp);
        let st = self.child.wait().ok().and_then(|s| s.code()).unwrap_or(-1);
        let join = |h: Option<std::thread::JoinHandle<String>>| {
            h.and_then(|h| h.join().ok()).unwrap_or_default()
        };
        (st, join(out), join(err))
    }
}

/// Read a pipe to the end on a thread.
pub(crate) fn slurp(mut r: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut s = String::new();
        let _ = r.read_to_string(&mut s);
        s
    })
}

pub(crate) fn status_json(bins: &Bins, name: &str) -> Option<Value> {
    let out = Command::new(&bins.shmcollab)
        .args(["status", name, "--json"])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    serde_json::from_slice(&out.stdout).ok()
}

pub(crate) fn write_config(dir: &Path, file: &str, text: &str) -> PathBuf {
    let p = dir.join(file);
    std::fs::write(&p, text).unwrap_or_else(|e| fail(&format!("{}: {e}", p.display())));
    p
}

/// The JSON line ping printed (`ping | {"bench":"<bench>",...}`).
pub(crate) fn ping_json(stdout: &str, bench: &str) -> Option<Value> {
    let key = format!("\"bench\":\"{bench}\"");
    stdout
        .lines()
        .filter(|l| l.contains(&key))
        .find_map(|l| serde_json::from_str(&l[l.find('{')?..]).ok())
}

pub(crate) fn pingpong_config(bins: &Bins, name: &str, ping_args: &[&str]) -> String {
    let args: Vec<String> = ping_args.iter().map(|a| format!("{a:?}")).collect();
    format!(
        r#"name = "{name}"
secure = true

[[subfunction]]
name = "ping"

[[subfunction]]
name = "pong"

[[process]]
name = "pong"
command = [{pong:?}]
hosts = ["pong"]
restart = "transient"

[[process]]
name = "ping"
command = [{ping:?}, {args}]
hosts = ["ping"]
restart = "temporary"
"#,
        pong = bins.pong.display().to_string(),
        ping = bins.ping.display().to_string(),
        args = args.join(", "),
    )
}

pub(crate) fn idle_config(bins: &Bins, name: &str, n: usize) -> String {
    format!(
        r#"name = "{name}"

[[subfunction]]
name = "w"
partitions = {n}

[[process]]
name = "idle"
instances = {n}
command = [{idle:?}]
hosts = ["w"]
"#,
        idle = bins.idle.display().to_string(),
    )
}

/// `text` (a config) with `sandbox = on` in every process when `on` is
/// given; as it is (the default) when not.
pub(crate) fn with_sandbox(text: &str, on: Option<bool>) -> String {
    match on {
        Some(on) => text.replace("[[process]]\n", &format!("[[process]]\nsandbox = {on}\n")),
        None => text.to_owned(),
    }
}

/// Run a pingpong collaboration to its end; ping's JSON line for `bench`.
/// `sandbox`: see [`with_sandbox`].
pub(crate) fn run_pingpong(
    bins: &Bins,
    dir: &Path,
    tag: &str,
    ping_args: &[&str],
    bench: &str,
    env: &[(&str, &str)],
    sandbox: Option<bool>,
) -> Value {
    let name = format!("b{}{tag}", std::process::id());
    let cfg = write_config(
        dir,
        &format!("{tag}.toml"),
        &with_sandbox(&pingpong_config(bins, &name, ping_args), sandbox),
    );
    let (code, out, err) = Launched::start_env(bins, &cfg, &name, env).finish();
    match ping_json(&out, bench) {
        Some(v) if code == 0 => v,
        _ => fail(&format!(
            "{name} (ping {}) exited {code} without the {bench} line\nstdout:\n{out}\nstderr:\n{err}",
            ping_args.join(" ")
        )),
    }
}

pub(crate) fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}
