//! `cargo bench --bench e2e`: end-to-end numbers of real collaborations,
//! launched with the real `shmcollab` binary, real managers and real LPs
//! (the example programs), over real shared memory.
//!
//! In one run:
//! 1. `lp_rtt_64`: 64 B request/reply round trips LP -> manager -> manager
//!    -> LP and back, tags on (pingpong, `ping rtt 20000`), next to the same
//!    round trip over a Unix socket between two processes (`rtt_64`,
//!    `unix_socket`); prints p50(shmcollab) / p50(socket) (target <= 0.5).
//! 2. `lp_oneway_64`: one-way 64 B messages through both managers, tags on
//!    (`ping flood`); target >= 2 M msgs/s.
//! 3. `launch_32_ready`: wall time from spawning `shmcollab launch` of 32
//!    idle LPs until the supervisor prints `all 32 LPs ready after X ms`
//!    (X is reported too, as `supervisor_ms`); median of 5; target <= 300 ms.
//! 4. `idle_8_cpu`: CPU time (utime + stime from `/proc/<pid>/stat`) of the
//!    supervisor, the 8 managers and the 8 idle LPs over 10 s, as % of one
//!    core; target <= 2 %.
//!
//! Before measuring, the bench runs `cargo build --release --examples --bins
//! -q` (with the `cargo` that runs the bench, `$CARGO`) so that the example
//! programs and `shmcollab` in `target/release` are current; without `$CARGO`
//! (the bench binary run by hand) it uses what is there and says so if
//! something is missing.
//!
//! The socket echo child is this binary re-executed with `SHMC_BENCH_CHILD`.
//! Every collaboration has a unique name (with this process's pid), its
//! config lives in a temporary directory removed at the end, and a watchdog
//! stops (then kills) any collaboration still running after 120 s.
//! `SHMC_BENCH_QUICK=1` shrinks the counts (smoke test).

#[path = "../shm/benches/common.rs"]
mod common;

use common::Row;
use serde_json::Value;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long any one collaboration may run before the watchdog ends it.
const WATCHDOG: Duration = Duration::from_secs(120);

fn quick() -> bool {
    std::env::var_os("SHMC_BENCH_QUICK").is_some()
}

fn fail(msg: &str) -> ! {
    eprintln!("e2e bench: {msg}");
    // exit() runs no destructors: remove the temporary directory here.
    let _ = std::fs::remove_dir_all(temp_path());
    std::process::exit(1);
}

fn temp_path() -> PathBuf {
    std::env::temp_dir().join(format!("shmc-bench-e2e-{}", std::process::id()))
}

// ---- where things are ----------------------------------------------------

struct Bins {
    shmcollab: PathBuf,
    ping: PathBuf,
    pong: PathBuf,
    idle: PathBuf,
}

/// `target/release`: the bench binary lives in `target/release/deps/`.
fn target_release() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_else(|e| fail(&format!("current_exe: {e}")));
    exe.parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| fail(&format!("no target dir above {}", exe.display())))
}

fn build_and_locate() -> Bins {
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
struct TempDir(PathBuf);
impl TempDir {
    fn new() -> TempDir {
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

fn shm_root() -> PathBuf {
    std::env::var_os("SHMCOLAB_SHM_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| "/dev/shm".into())
}

fn shm_entries() -> Vec<String> {
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
fn sessions_of(name: &str) -> Vec<PathBuf> {
    let prefix = format!("shmc.{name}.");
    shm_entries()
        .into_iter()
        .filter(|n| n.starts_with(&prefix))
        .map(|n| shm_root().join(n))
        .collect()
}

// ---- a launched collaboration ----------------------------------------------

struct Launched {
    child: Child,
    name: String,
    shmcollab: PathBuf,
    /// Dropping it tells the watchdog the collaboration is over.
    _watch: mpsc::Sender<()>,
}

impl Launched {
    /// `shmcollab launch CONFIG` with stdout and stderr piped, guarded by a
    /// watchdog thread.
    fn start(bins: &Bins, config: &Path, name: &str) -> Launched {
        Launched::start_env(bins, config, name, &[])
    }

    fn start_env(bins: &Bins, config: &Path, name: &str, env: &[(&str, &str)]) -> Launched {
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

    fn stop(&self) {
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
    fn finish(mut self) -> (i32, String, String) {
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
fn slurp(mut r: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut s = String::new();
        let _ = r.read_to_string(&mut s);
        s
    })
}

fn status_json(bins: &Bins, name: &str) -> Option<Value> {
    let out = Command::new(&bins.shmcollab)
        .args(["status", name, "--json"])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    serde_json::from_slice(&out.stdout).ok()
}

fn write_config(dir: &Path, file: &str, text: &str) -> PathBuf {
    let p = dir.join(file);
    std::fs::write(&p, text).unwrap_or_else(|e| fail(&format!("{}: {e}", p.display())));
    p
}

/// The JSON line ping printed (`ping | {"bench":"<bench>",...}`).
fn ping_json(stdout: &str, bench: &str) -> Option<Value> {
    let key = format!("\"bench\":\"{bench}\"");
    stdout
        .lines()
        .filter(|l| l.contains(&key))
        .find_map(|l| serde_json::from_str(&l[l.find('{')?..]).ok())
}

fn pingpong_config(bins: &Bins, name: &str, ping_args: &[&str]) -> String {
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

fn idle_config(bins: &Bins, name: &str, n: usize) -> String {
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

/// Run a pingpong collaboration to its end; ping's JSON line for `bench`.
fn run_pingpong(
    bins: &Bins,
    dir: &Path,
    tag: &str,
    ping_args: &[&str],
    bench: &str,
    env: &[(&str, &str)],
) -> Value {
    let name = format!("b{}{tag}", std::process::id());
    let cfg = write_config(
        dir,
        &format!("{tag}.toml"),
        &pingpong_config(bins, &name, ping_args),
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

// ---- 1. round trips --------------------------------------------------------

/// One pingpong round trip run; `six_hops` turns the direct path off.
fn lp_rtt(bins: &Bins, dir: &Path, iters: u64, six_hops: bool) -> Row {
    let n = iters.to_string();
    let env: &[(&str, &str)] = if six_hops {
        &[("SHMCOLAB_DIRECT", "0")]
    } else {
        &[]
    };
    let v = run_pingpong(bins, dir, "rtt", &["rtt", &n, "64"], "lp_rtt_64", env);
    let get = |k: &str| {
        v[k].as_f64()
            .unwrap_or_else(|| fail(&format!("no {k} in {v}")))
    };
    Row {
        bench: "lp_rtt_64".into(),
        system: if six_hops {
            "shmcollab_6_hops".into()
        } else {
            "shmcollab".into()
        },
        p50_ns: Some(get("p50_ns")),
        p99_ns: Some(get("p99_ns")),
        msgs_per_s: None,
    }
}

/// The median of the rows' field `f`.
fn median_of(rows: &[Row], f: impl Fn(&Row) -> Option<f64>) -> f64 {
    let mut v: Vec<f64> = rows.iter().filter_map(f).collect();
    median(&mut v)
}

// ---- 2. one-way ------------------------------------------------------------

fn lp_oneway(bins: &Bins, dir: &Path, n: u64) -> Row {
    let ns = n.to_string();
    let v = run_pingpong(
        bins,
        dir,
        "flood",
        &["flood", &ns, "64"],
        "lp_oneway_64",
        &[],
    );
    Row {
        bench: "lp_oneway_64".into(),
        system: "shmcollab".into(),
        p50_ns: None,
        p99_ns: None,
        msgs_per_s: Some(
            v["msgs_per_s"]
                .as_f64()
                .unwrap_or_else(|| fail(&format!("no msgs_per_s in {v}"))),
        ),
    }
}

// ---- 3. launch to ready ----------------------------------------------------

/// One launch of `n` idle LPs: (wall ms until the ready line, the ms it says).
fn launch_ready_once(bins: &Bins, dir: &Path, n: usize, round: usize) -> (f64, f64) {
    let name = format!("b{}up{round}", std::process::id());
    let cfg = write_config(
        dir,
        &format!("up{round}.toml"),
        &idle_config(bins, &name, n),
    );
    let want = format!("shmcollab: all {n} LPs ready after ");
    let t = Instant::now();
    let mut run = Launched::start(bins, &cfg, &name);
    let mut err = BufReader::new(run.child.stderr.take().unwrap());
    let mut seen = String::new();
    let mut line = String::new();
    let (wall, said) = loop {
        line.clear();
        match err.read_line(&mut line) {
            Ok(0) | Err(_) => {
                drop(err);
                let (code, out, rest) = run.finish();
                fail(&format!(
                    "{name} ended (exit {code}) before all {n} LPs were ready\nstdout:\n{out}\nstderr:\n{seen}{rest}"
                ));
            }
            Ok(_) => {}
        }
        if let Some(i) = line.find(&want) {
            let wall = t.elapsed().as_secs_f64() * 1e3;
            let said = line[i + want.len()..]
                .trim()
                .trim_end_matches("ms")
                .trim()
                .parse::<f64>()
                .unwrap_or(f64::NAN);
            break (wall, said);
        }
        seen.push_str(&line);
    };
    // Keep draining stderr so the supervisor never blocks on it.
    let rest = slurp(err.into_inner());
    run.stop();
    let (code, _out, _) = run.finish();
    let rest = rest.join().unwrap_or_default();
    if code != 0 {
        eprintln!("e2e bench: {name} exited {code} after stop\n{seen}{rest}");
    }
    (wall, said)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

// ---- 4. idle CPU -----------------------------------------------------------

/// CPU time (user + system) of `pid` in clock ticks, from /proc/<pid>/stat
/// (fields 14 and 15, counted after the last ')').
fn cpu_ticks(pid: u64) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let i = stat.rfind(')')?;
    let f: Vec<&str> = stat[i + 1..].split_whitespace().collect();
    // After the ')' field 3 (state) is at index 0, so 14 and 15 are 11, 12.
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

fn clock_ticks_per_second() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|&v| v > 0.0)
        .unwrap_or(100.0)
}

/// (JSON line, total cpu %, % of supervisor / managers / LPs, processes).
fn idle_cpu(bins: &Bins, dir: &Path, n: usize, secs: u64) -> (String, f64, [f64; 3], usize) {
    let name = format!("b{}idle", std::process::id());
    let cfg = write_config(dir, "idle.toml", &idle_config(bins, &name, n));
    let mut run = Launched::start(bins, &cfg, &name);
    let out = slurp(run.child.stdout.take().unwrap());
    let err = slurp(run.child.stderr.take().unwrap());
    let deadline = Instant::now() + Duration::from_secs(60);
    let v = loop {
        if let Some(v) = status_json(bins, &name) {
            let lps = v["lps"].as_array().map(Vec::as_slice).unwrap_or_default();
            if lps.len() == n
                && lps.iter().all(|l| {
                    l["state"] == "ready" && l["pid"].is_u64() && l["manager_pid"].is_u64()
                })
            {
                break v;
            }
        }
        if Instant::now() > deadline {
            run.stop();
            let (code, ..) = run.finish();
            let (o, e) = (
                out.join().unwrap_or_default(),
                err.join().unwrap_or_default(),
            );
            fail(&format!(
                "{name}: not all {n} LPs ready after 60 s (exit {code})\nstdout:\n{o}\nstderr:\n{e}"
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    std::thread::sleep(Duration::from_secs(1));
    // Three groups: the supervisor, the managers, the LPs.
    let mut groups: [Vec<u64>; 3] = [vec![u64::from(run.child.id())], vec![], vec![]];
    for l in v["lps"].as_array().into_iter().flatten() {
        groups[1].extend(l["manager_pid"].as_u64());
        groups[2].extend(l["pid"].as_u64());
    }
    let procs: usize = groups.iter().map(Vec::len).sum();
    let sample = || {
        groups
            .clone()
            .map(|g| g.iter().filter_map(|&p| cpu_ticks(p)).sum::<u64>())
    };
    let t0 = sample();
    let w = Instant::now();
    std::thread::sleep(Duration::from_secs(secs));
    let t1 = sample();
    let wall = w.elapsed().as_secs_f64();
    // Everything still there? (A restarted process would skew the sum.)
    let alive = groups.iter().flatten().all(|&p| cpu_ticks(p).is_some());
    run.stop();
    let (code, ..) = run.finish();
    let (_, e) = (
        out.join().unwrap_or_default(),
        err.join().unwrap_or_default(),
    );
    if code != 0 || !alive {
        eprintln!(
            "e2e bench: {name} exited {code} (all processes alive while sampled: {alive})\n{e}"
        );
    }
    let hz = clock_ticks_per_second();
    let pct: [f64; 3] =
        std::array::from_fn(|i| t1[i].saturating_sub(t0[i]) as f64 / hz / wall * 100.0);
    let total: f64 = pct.iter().sum();
    let json = format!(
        "{{\"bench\":\"idle_{n}_cpu\",\"system\":\"shmcollab\",\"cpu_percent\":{total:.3},\
         \"supervisor_percent\":{:.3},\"managers_percent\":{:.3},\"lps_percent\":{:.3},\
         \"seconds\":{wall:.1},\"processes\":{procs}}}",
        pct[0], pct[1], pct[2]
    );
    (json, total, pct, procs)
}

// ---- main ------------------------------------------------------------------

fn verdict(ok: bool) -> &'static str {
    if ok {
        "ok"
    } else {
        "MISSED"
    }
}

fn main() {
    if let Ok(role) = std::env::var("SHMC_BENCH_CHILD") {
        let arg = std::env::var("SHMC_BENCH_ARG").unwrap_or_default();
        match role.as_str() {
            "sock_echo" => common::child_sock_echo(Path::new(&arg)),
            _ => fail(&format!("unknown child role {role}")),
        }
        return;
    }
    // cargo bench passes --bench; nothing else to parse.
    let q = quick();
    let rtt_iters: u64 = if q { 2_000 } else { 20_000 };
    let rounds = if q { 1 } else { 5 };
    let flood: u64 = if q { 100_000 } else { 4_000_000 };
    let launches = if q { 2 } else { 5 };
    let idle_secs = if q { 2 } else { 10 };

    let shm_before = shm_entries();
    let bins = build_and_locate();
    let dir = TempDir::new();

    // 1. Round trips and the socket baseline, in alternating rounds (this
    // machine's noise comes and goes within seconds): the ratio is the
    // median of the rounds' ratios, the rows the medians of their p50/p99.
    let mut rtts = Vec::new();
    let mut socks = Vec::new();
    let mut ratios = Vec::new();
    let mut six = Vec::new();
    for round in 0..rounds {
        let r = lp_rtt(&bins, &dir.0, rtt_iters, false);
        let so = common::sock_rtt("rtt_64", 64, rtt_iters as usize);
        let r6 = lp_rtt(&bins, &dir.0, rtt_iters, true);
        let ratio = r.p50_ns.unwrap_or(f64::NAN) / so.p50_ns.unwrap_or(f64::NAN);
        eprintln!(
            "e2e bench: round {round}: lp_rtt_64 p50 {:.2} µs (6 hops: {:.2} µs), unix socket p50 {:.2} µs, ratio {ratio:.3}",
            r.p50_ns.unwrap_or(f64::NAN) / 1e3,
            r6.p50_ns.unwrap_or(f64::NAN) / 1e3,
            so.p50_ns.unwrap_or(f64::NAN) / 1e3,
        );
        ratios.push(ratio);
        rtts.push(r);
        socks.push(so);
        six.push(r6);
    }
    let ratio = median(&mut ratios.clone());
    let med_row = |rows: &[Row]| Row {
        bench: rows[0].bench.clone(),
        system: rows[0].system.clone(),
        p50_ns: Some(median_of(rows, |r| r.p50_ns)),
        p99_ns: Some(median_of(rows, |r| r.p99_ns)),
        msgs_per_s: None,
    };
    let (rtt, sock, rtt6) = (med_row(&rtts), med_row(&socks), med_row(&six));
    // 2. One-way.
    let oneway = lp_oneway(&bins, &dir.0, flood);
    // 3. Launch to ready.
    let mut walls = Vec::new();
    let mut saids = Vec::new();
    for round in 0..launches {
        let (w, s) = launch_ready_once(&bins, &dir.0, 32, round);
        eprintln!(
            "e2e bench: launch {round}: 32 LPs ready after {w:.1} ms (supervisor: {s:.1} ms)"
        );
        walls.push(w);
        saids.push(s);
    }
    let launch_ms = median(&mut walls.clone());
    let launch_said = median(&mut saids.clone());
    // 4. Idle CPU.
    let (idle_json, idle_pct, idle_parts, procs) = idle_cpu(&bins, &dir.0, 8, idle_secs);
    drop(dir);

    let rate = oneway.msgs_per_s.unwrap_or(0.0);
    let rows = [rtt, rtt6, sock, oneway];
    common::print_table(&rows);
    let fmt3 = |v: &[f64]| {
        v.iter()
            .map(|x| format!("{x:.3}"))
            .collect::<Vec<_>>()
            .join(",")
    };
    println!(
        "{{\"bench\":\"lp_rtt_64_vs_socket\",\"system\":\"shmcollab\",\"p50_ratio\":{ratio:.3},\"rounds\":[{}]}}",
        fmt3(&ratios)
    );
    println!(
        "{{\"bench\":\"launch_32_ready\",\"system\":\"shmcollab\",\"ms\":{launch_ms:.1},\"supervisor_ms\":{launch_said:.1}}}"
    );
    println!("{idle_json}");
    println!();
    println!(
        "lp_rtt_64 p50 / unix socket rtt_64 p50 = {ratio:.3}, median of {rounds} rounds ({})   (target <= 0.5: {})",
        fmt3(&ratios),
        verdict(ratio <= 0.5)
    );
    println!(
        "lp_oneway_64: {:.2} M msgs/s                    (target >= 2 M: {})",
        rate / 1e6,
        verdict(rate >= 2e6)
    );
    let fmt = |v: &[f64]| {
        v.iter()
            .map(|x| format!("{x:.1}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!(
        "launch_32_ready: median {launch_ms:.1} ms wall, {launch_said:.1} ms by the supervisor over {launches} launches \
         (wall: {}; supervisor: {})   (target <= 300 ms: {})",
        fmt(&walls),
        fmt(&saids),
        verdict(launch_ms <= 300.0)
    );
    println!(
        "idle_8_cpu: {idle_pct:.3}% of one core over {idle_secs} s, {procs} processes \
         (supervisor {:.3}%, 8 managers {:.3}%, 8 LPs {:.3}%)   (target <= 2%: {})",
        idle_parts[0],
        idle_parts[1],
        idle_parts[2],
        verdict(idle_pct <= 2.0)
    );

    // Nothing of ours left in shared memory.
    let ours = format!("shmc.b{}", std::process::id());
    let left: Vec<String> = shm_entries()
        .into_iter()
        .filter(|e| !shm_before.contains(e))
        .collect();
    if left.is_empty() {
        println!("{}: nothing new left behind", shm_root().display());
    } else {
        println!(
            "{}: new entries after the run: {}",
            shm_root().display(),
            left.join(", ")
        );
        for e in left.iter().filter(|e| e.starts_with(&ours)) {
            let _ = std::fs::remove_dir_all(shm_root().join(e));
            println!("removed {e} (ours)");
        }
    }
}
