//! `cargo bench --bench scale`: issue 13's figures, hundreds of LPs on one
//! host, each printed as a table row and one JSON line:
//!
//! | bench | what |
//! | --- | --- |
//! | `launch_256`, `launch_1024` | `launch` of N idle LPs until the supervisor says all are ready: wall time seen here, the supervisor's own figure, and when it had spawned every manager (medians of the rounds) |
//! | `idle_256` | 256 idle LPs, 3 s after all are ready: segments in the session directory, the unnamed ones its processes hold (the LPs' views), and the bytes of both (allocated, per LP), then the CPU of every process of the collaboration (supervisor, managers, LPs) over 10 s, in % of one core |
//! | `mesh_256x4` vs `pair` | `mesh flood K M`: 256 LPs each sending M messages of 64 B to each of the 4 after it (and taking in what the 4 before it send), against 2 LPs sending to each other (K = 1) in the same run: the aggregate (all messages received / time from the go to the last one) and per pair (each LP's receive rate / K, median); from a cold start: the pairs first talk after the go, so the mesh's window holds the setup of 1,024 pairs' rings (the pair's, of one) |
//! | `mesh_256x4_warm` vs `pair_warm` | the same after `mesh flood ... warm`'s warm-up (every pair has talked, its rings made, before the go): the steady state, the figure the target is about |
//! | `first_message` | `mesh first`: 32 pairs of LPs that never talked, one pair at a time; each pair's first message, sent to received (p50, p99) |
//!
//! Then one verdict line per target of the issue. The LPs are
//! `examples/idle` and `examples/mesh`; the plumbing (binaries, watchdog,
//! configs) is the e2e bench's (`e2e/harness.rs`). `SHMC_BENCH_QUICK=1`
//! shrinks the counts and sizes (a smoke run).

#[allow(dead_code)]
#[path = "e2e/harness.rs"]
mod harness;

use harness::{
    build_and_locate, fail, idle_config, median, quick, sessions_of, shm_entries, shm_root, slurp,
    write_config, Bins, Launched, TempDir,
};
use serde_json::Value;
use shmcollab_shm::registry::monotonic_us;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How much one run measures.
struct Counts {
    /// LPs of the small and the large launch, and rounds of the small one.
    launch: (usize, usize, usize),
    /// LPs of the idle figure and seconds sampled.
    idle: (usize, u64),
    /// LPs of the mesh, peers each, messages per peer; messages of the pair.
    mesh: (usize, usize, u64, u64),
    /// Rounds of the throughput figure (pair, mesh, alternating).
    mesh_rounds: usize,
    /// LPs of the first-message figure (pairs: half).
    first: usize,
}

impl Counts {
    fn new(q: bool) -> Counts {
        Counts {
            launch: if q { (64, 128, 1) } else { (256, 1024, 3) },
            idle: if q { (64, 2) } else { (256, 10) },
            mesh: if q {
                (16, 4, 2_000, 50_000)
            } else {
                (256, 4, 5_000, 1_000_000)
            },
            mesh_rounds: if q { 1 } else { 3 },
            first: if q { 8 } else { 64 },
        }
    }
}

fn mesh_bin(bins: &Bins) -> PathBuf {
    bins.idle.with_file_name("mesh")
}

/// A config of `n` LPs running `args` (the program first), one
/// sub-function each, ending for good when they exit 0.
fn config(name: &str, n: usize, args: &[String]) -> String {
    let cmd: Vec<String> = args.iter().map(|a| format!("{a:?}")).collect();
    format!(
        "name = \"{name}\"\n[[subfunction]]\nname = \"w\"\npartitions = {n}\n\
         [[process]]\nname = \"lp\"\ninstances = {n}\ncommand = [{}]\nhosts = [\"w\"]\n\
         restart = \"transient\"\n",
        cmd.join(", ")
    )
}

/// A launch whose LPs are all ready, its stderr drained on a thread.
struct Up {
    run: Launched,
    /// (wall ms here, the supervisor's ms, ms until every manager was spawned).
    ms: (f64, f64, f64),
    err: std::thread::JoinHandle<String>,
}

/// The number in `line` after `key`, up to " ms".
fn ms_after(line: &str, key: &str) -> Option<f64> {
    let rest = &line[line.find(key)? + key.len()..];
    rest.trim().trim_end_matches("ms").trim().parse().ok()
}

/// Launch `cfg` and read its stderr until all `n` LPs are ready.
fn launch_ready(bins: &Bins, cfg: &Path, name: &str, n: usize) -> Up {
    let t = Instant::now();
    let mut run = Launched::start(bins, cfg, name);
    let mut err = BufReader::new(run.child.stderr.take().unwrap());
    let want = format!("shmcollab: all {n} LPs ready after ");
    let spawned_key = format!("shmcollab: {n} managers spawned after ");
    let (mut seen, mut line, mut spawned) = (String::new(), String::new(), f64::NAN);
    loop {
        line.clear();
        if matches!(err.read_line(&mut line), Ok(0) | Err(_)) {
            drop(err);
            let (code, out, rest) = run.finish();
            fail(&format!(
                "{name} ended (exit {code}) before all {n} LPs were ready\nstdout:\n{out}\nstderr:\n{seen}{rest}"
            ));
        }
        if let Some(v) = ms_after(&line, &spawned_key) {
            spawned = v;
        }
        if let Some(said) = ms_after(&line, &want) {
            let wall = t.elapsed().as_secs_f64() * 1e3;
            let err = slurp(err.into_inner());
            return Up {
                run,
                ms: (wall, said, spawned),
                err,
            };
        }
        seen.push_str(&line);
    }
}

impl Up {
    /// Stop it (or let it end) and wait: (exit code, stdout, stderr).
    fn end(self, stop: bool) -> (i32, String, String) {
        if stop {
            self.run.stop();
        }
        let (code, out, _) = self.run.finish();
        (code, out, self.err.join().unwrap_or_default())
    }
}

// ---- 1. launch -------------------------------------------------------------

fn launch(bins: &Bins, dir: &Path, n: usize, rounds: usize) -> Vec<(f64, f64, f64)> {
    (0..rounds)
        .map(|r| {
            let name = format!("b{}l{n}r{r}", std::process::id());
            let cfg = write_config(dir, &format!("{name}.toml"), &idle_config(bins, &name, n));
            let up = launch_ready(bins, &cfg, &name, n);
            let ms = up.ms;
            let (code, _, err) = up.end(true);
            if code != 0 {
                eprintln!("scale bench: {name} exited {code} after stop\n{err}");
            }
            eprintln!(
                "scale bench: launch of {n}: ready after {:.1} ms (supervisor {:.1}, spawned {:.1})",
                ms.0, ms.1, ms.2
            );
            ms
        })
        .collect()
}

// ---- 2. idle ---------------------------------------------------------------

/// (segments, allocated bytes) in session directory `dir`.
fn segments(dir: &Path) -> (usize, u64) {
    use std::os::unix::fs::MetadataExt;
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| fail(&format!("{dir:?}: {e}")));
    let metas: Vec<_> = entries
        .flatten()
        .filter_map(|e| e.metadata().ok())
        .collect();
    let files = metas.iter().filter(|m| m.is_file());
    let bytes = files.clone().map(|m| m.blocks() * 512).sum();
    (files.count(), bytes)
}

/// (count, allocated bytes) of the unnamed segments (`O_TMPFILE` files of
/// session directory `dir`: the LPs' views) that processes `pids` hold open:
/// they are not in the directory, but their memory is the collaboration's.
fn unnamed_segments(dir: &Path, pids: &[u32]) -> (usize, u64) {
    use std::os::unix::fs::MetadataExt;
    let mut seen = std::collections::HashMap::new();
    for pid in pids {
        let fds = std::fs::read_dir(format!("/proc/{pid}/fd"));
        for e in fds.into_iter().flatten().flatten() {
            let Ok(target) = std::fs::read_link(e.path()) else {
                continue;
            };
            let deleted = target.to_string_lossy().ends_with(" (deleted)");
            if deleted && target.starts_with(dir) {
                if let Ok(m) = std::fs::metadata(e.path()) {
                    seen.insert((m.dev(), m.ino()), m.blocks() * 512);
                }
            }
        }
    }
    (seen.len(), seen.values().sum())
}

/// The pids of `root` and its descendants.
fn tree(root: u32) -> Vec<u32> {
    let mut parent: Vec<(u32, u32)> = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let after = stat.rfind(')').map_or("", |i| &stat[i + 1..]);
        if let Some(pp) = after.split_whitespace().nth(1).and_then(|v| v.parse().ok()) {
            parent.push((pid, pp));
        }
    }
    let mut out = vec![root];
    let mut i = 0;
    while i < out.len() {
        let p = out[i];
        out.extend(parent.iter().filter(|&&(_, pp)| pp == p).map(|&(c, _)| c));
        i += 1;
    }
    out
}

/// CPU ticks (user + system) of `pids`.
fn ticks(pids: &[u32]) -> u64 {
    let one = |pid: &u32| -> Option<u64> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let f: Vec<&str> = stat[stat.rfind(')')? + 1..].split_whitespace().collect();
        Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
    };
    pids.iter().filter_map(one).sum()
}

struct Idle {
    n: usize,
    /// Files in the session directory.
    segments: usize,
    /// Segments without a name that its processes hold (the LPs' views).
    unnamed: usize,
    /// Allocated bytes of both.
    bytes: u64,
    cpu_pct: f64,
    procs: usize,
}

fn idle(bins: &Bins, dir: &Path, n: usize, secs: u64) -> Idle {
    let name = format!("b{}idle{n}", std::process::id());
    let cfg = write_config(dir, &format!("{name}.toml"), &idle_config(bins, &name, n));
    let up = launch_ready(bins, &cfg, &name, n);
    std::thread::sleep(Duration::from_secs(3));
    let sdir = sessions_of(&name)
        .pop()
        .unwrap_or_else(|| fail(&format!("no session of {name}")));
    let (segs, bytes) = segments(&sdir);
    let pids = tree(up.run.child.id());
    let (unnamed, unnamed_bytes) = unnamed_segments(&sdir, &pids);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let (t0, w) = (ticks(&pids), Instant::now());
    std::thread::sleep(Duration::from_secs(secs));
    let (t1, wall) = (ticks(&pids), w.elapsed().as_secs_f64());
    let (code, _, err) = up.end(true);
    if code != 0 {
        eprintln!("scale bench: {name} exited {code} after stop\n{err}");
    }
    Idle {
        n,
        segments: segs,
        unnamed,
        bytes: bytes + unnamed_bytes,
        cpu_pct: t1.saturating_sub(t0) as f64 / hz / wall * 100.0,
        procs: pids.len(),
    }
}

// ---- 3. throughput ---------------------------------------------------------

/// (aggregate msgs/s, median per-pair msgs/s) of `n` LPs flooding `k` each;
/// `warm`: after the warm-up of `mesh flood ... warm` (every pair has
/// talked before the go, so the window holds no ring setup).
fn flood(
    bins: &Bins,
    dir: &Path,
    tag: &str,
    (n, k, m): (usize, usize, u64),
    warm: bool,
) -> (f64, f64) {
    let name = format!("b{}{tag}", std::process::id());
    let go = dir.join(format!("{name}.go"));
    let mut args = vec![mesh_bin(bins).display().to_string(), "flood".into()];
    args.extend([k.to_string(), m.to_string(), go.display().to_string()]);
    if warm {
        args.push("warm".into());
    }
    let cfg = write_config(dir, &format!("{name}.toml"), &config(&name, n, &args));
    let mut up = launch_ready(bins, &cfg, &name, n);
    let out = if warm {
        Some(read_warm(&mut up, &name, n))
    } else {
        None
    };
    let t0 = monotonic_us();
    std::fs::write(&go, b"go").unwrap_or_else(|e| fail(&format!("{go:?}: {e}")));
    let (code, rest, err) = up.end(false);
    let out = out.unwrap_or_default() + &rest;
    let lines: Vec<Value> = json_lines(&out, "flood_lp");
    if code != 0 || lines.len() != n {
        fail(&format!(
            "{name}: exit {code}, {} of {n} LPs finished\nstdout:\n{out}\nstderr:\n{err}",
            lines.len()
        ));
    }
    let num = |v: &Value, k: &str| v[k].as_u64().unwrap_or(0);
    let total: u64 = lines.iter().map(|v| num(v, "received")).sum();
    let end = lines.iter().map(|v| num(v, "last_us")).max().unwrap_or(t0);
    let aggregate = total as f64 / (end.saturating_sub(t0).max(1) as f64 / 1e6);
    let mut per_pair: Vec<f64> = lines
        .iter()
        .map(|v| {
            let span = num(v, "last_us").saturating_sub(num(v, "first_us")).max(1);
            num(v, "received") as f64 / (span as f64 / 1e6) / k as f64
        })
        .collect();
    (aggregate, median(&mut per_pair))
}

/// Read `up`'s stdout until all `n` LPs said they are warm; what was read.
fn read_warm(up: &mut Up, name: &str, n: usize) -> String {
    let Some(pipe) = up.run.child.stdout.take() else {
        fail(&format!("{name}: no stdout"));
    };
    let mut out = BufReader::new(pipe);
    let (mut seen, mut line, mut warm) = (String::new(), String::new(), 0);
    while warm < n {
        line.clear();
        if matches!(out.read_line(&mut line), Ok(0) | Err(_)) {
            fail(&format!(
                "{name}: {warm} of {n} LPs warm, then stdout ended\n{seen}"
            ));
        }
        warm += usize::from(line.contains("\"flood_warm\""));
        seen.push_str(&line);
    }
    // Nothing more comes before the go; keep what was read ahead anyway.
    seen.push_str(&String::from_utf8_lossy(out.buffer()));
    up.run.child.stdout = Some(out.into_inner());
    seen
}

/// One variant of the throughput figure: the pair's and the mesh's rounds.
struct Floods {
    /// After the warm-up (`mesh flood ... warm`), or from a cold start.
    warm: bool,
    /// (LPs, peers each, messages per peer) of the mesh; messages of the pair.
    mesh: (usize, usize, u64),
    pair_m: u64,
    /// (aggregate, per pair) msgs/s of each round.
    pair: Vec<(f64, f64)>,
    mesh_runs: Vec<(f64, f64)>,
}

impl Floods {
    fn new(warm: bool, (n, k, m, pair_m): (usize, usize, u64, u64)) -> Floods {
        let (pair, mesh_runs) = (Vec::new(), Vec::new());
        Floods {
            warm,
            mesh: (n, k, m),
            pair_m,
            pair,
            mesh_runs,
        }
    }

    /// The bench names' suffix.
    fn suffix(&self) -> &'static str {
        if self.warm {
            "_warm"
        } else {
            ""
        }
    }

    /// One round: the pair, then the mesh.
    fn round(&mut self, bins: &Bins, dir: &Path, r: usize) {
        let tag = |what: &str| format!("{what}{}{r}", self.suffix().trim_start_matches('_'));
        let pair = flood(bins, dir, &tag("pair"), (2, 1, self.pair_m), self.warm);
        let mesh = flood(bins, dir, &tag("mesh"), self.mesh, self.warm);
        eprintln!(
            "scale bench: round {r}{}: pair {pair:?}, mesh {mesh:?} (msgs/s)",
            self.suffix()
        );
        self.pair.push(pair);
        self.mesh_runs.push(mesh);
    }

    /// Print the table rows, push the JSON lines; the mesh's aggregate over
    /// the pair's (medians of the rounds).
    fn print(&self, lines: &mut Vec<String>) -> f64 {
        let agg = |v: &[(f64, f64)], f: fn(&(f64, f64)) -> f64| {
            median(&mut v.iter().map(f).collect::<Vec<_>>())
        };
        let (pair_agg, pair_pp) = (agg(&self.pair, |x| x.0), agg(&self.pair, |x| x.1));
        let (mesh_agg, mesh_pp) = (agg(&self.mesh_runs, |x| x.0), agg(&self.mesh_runs, |x| x.1));
        let ((mn, mk, _), sfx) = (self.mesh, self.suffix());
        let how = if self.warm {
            "after the warm-up"
        } else {
            "from a cold start"
        };
        println!(
            "pair (2 LPs, each to the other), {how}: aggregate {:.2} M msgs/s, per pair {:.2} M msgs/s",
            pair_agg / 1e6,
            pair_pp / 1e6
        );
        println!(
            "mesh ({mn} LPs x {mk} peers), {how}: aggregate {:.2} M msgs/s, per pair {:.4} M msgs/s",
            mesh_agg / 1e6,
            mesh_pp / 1e6
        );
        lines.push(format!("{{\"bench\":\"pair{sfx}\",\"system\":\"shmcollab\",\"aggregate_msgs_per_s\":{pair_agg:.0},\"per_pair_msgs_per_s\":{pair_pp:.0}}}"));
        lines.push(format!(
            "{{\"bench\":\"mesh_{mn}x{mk}{sfx}\",\"system\":\"shmcollab\",\"aggregate_msgs_per_s\":{mesh_agg:.0},\"per_pair_msgs_per_s\":{mesh_pp:.0},\"aggregate_vs_pair\":{:.3}}}",
            mesh_agg / pair_agg
        ));
        mesh_agg / pair_agg
    }
}

/// The rounds of every variant, alternating (a round of each, then the
/// next), so that the machine's load falls on all alike.
fn throughput(bins: &Bins, dir: &Path, mut floods: [Floods; 2], rounds: usize) -> [Floods; 2] {
    for r in 0..rounds {
        for f in &mut floods {
            f.round(bins, dir, r);
        }
    }
    floods
}

/// The JSON objects LPs printed (`lp.N | {...}`) that have `key`.
fn json_lines(out: &str, key: &str) -> Vec<Value> {
    let parsed = out
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(&l[l.find('{')?..]).ok());
    parsed.filter(|v| v.get(key).is_some()).collect()
}

// ---- 4. first message ------------------------------------------------------

/// First-message latencies (µs) of `n / 2` pairs.
fn first_message(bins: &Bins, dir: &Path, n: usize) -> Vec<f64> {
    let name = format!("b{}first", std::process::id());
    let go = dir.join(format!("{name}.go"));
    let args = [
        mesh_bin(bins).display().to_string(),
        "first".into(),
        go.display().to_string(),
    ];
    let cfg = write_config(dir, &format!("{name}.toml"), &config(&name, n, &args));
    let up = launch_ready(bins, &cfg, &name, n);
    std::fs::write(&go, b"go").unwrap_or_else(|e| fail(&format!("{go:?}: {e}")));
    let (code, out, err) = up.end(false);
    let lat: Vec<f64> = json_lines(&out, "first_message_us")
        .iter()
        .filter_map(|v| v["first_message_us"].as_f64())
        .collect();
    if code != 0 || lat.len() != n / 2 {
        fail(&format!(
            "{name}: exit {code}, {} of {} pairs\nstdout:\n{out}\nstderr:\n{err}",
            lat.len(),
            n / 2
        ));
    }
    lat
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() as f64 * p).ceil() as usize).clamp(1, v.len()) - 1]
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "ok"
    } else {
        "MISSED"
    }
}

fn main() {
    let c = Counts::new(quick());
    let bins = build_and_locate();
    let shm_before = shm_entries();
    let tmp = TempDir::new();
    let dir = tmp.0.as_path();
    let (small, large, rounds) = c.launch;
    let l_small = launch(&bins, dir, small, rounds);
    let l_large = launch(&bins, dir, large, rounds);
    let idle = idle(&bins, dir, c.idle.0, c.idle.1);
    let floods = [false, true].map(|warm| Floods::new(warm, c.mesh));
    let floods = throughput(&bins, dir, floods, c.mesh_rounds);
    let mut first = first_message(&bins, dir, c.first);

    let med = |v: &[(f64, f64, f64)], f: fn(&(f64, f64, f64)) -> f64| {
        median(&mut v.iter().map(f).collect::<Vec<_>>())
    };
    let mut lines = Vec::new();
    for (n, l) in [(small, &l_small), (large, &l_large)] {
        let (wall, said, spawned) = (med(l, |x| x.0), med(l, |x| x.1), med(l, |x| x.2));
        println!("launch {n:>5} LPs: ready after {said:.1} ms (wall {wall:.1} ms, all spawned after {spawned:.1} ms), {} rounds", l.len());
        lines.push(format!(
            "{{\"bench\":\"launch_{n}\",\"system\":\"shmcollab\",\"ready_ms\":{said:.1},\"wall_ms\":{wall:.1},\"spawned_ms\":{spawned:.1},\"rounds\":{}}}",
            l.len()
        ));
    }
    let per = |x: f64| x / idle.n as f64;
    println!(
        "idle {} LPs: {} segments in the session directory ({:.2} per LP) and {} unnamed, {:.1} MB ({:.3} MB per LP), {:.2}% of one core ({} processes)",
        idle.n, idle.segments, per(idle.segments as f64), idle.unnamed, idle.bytes as f64 / 1e6,
        per(idle.bytes as f64) / 1e6, idle.cpu_pct, idle.procs
    );
    lines.push(format!(
        "{{\"bench\":\"idle_{}\",\"system\":\"shmcollab\",\"segments\":{},\"segments_per_lp\":{:.2},\"unnamed_segments\":{},\"shm_bytes\":{},\"shm_bytes_per_lp\":{:.0},\"cpu_percent\":{:.3},\"processes\":{}}}",
        idle.n, idle.segments, per(idle.segments as f64), idle.unnamed, idle.bytes, per(idle.bytes as f64), idle.cpu_pct, idle.procs
    ));
    let ratios = floods.map(|f| f.print(&mut lines));
    let (p50, p99) = (pct(&mut first, 0.5), pct(&mut first, 0.99));
    println!(
        "first message of a pair ({} pairs): p50 {p50:.0} µs, p99 {p99:.0} µs",
        first.len()
    );
    lines.push(format!("{{\"bench\":\"first_message\",\"system\":\"shmcollab\",\"p50_us\":{p50:.0},\"p99_us\":{p99:.0},\"pairs\":{}}}", first.len()));
    for l in &lines {
        println!("{l}");
    }
    let said = |l: &[(f64, f64, f64)]| med(l, |x| x.1);
    println!(
        "verdict launch_{small} <= 1000 ms: {}",
        verdict(said(&l_small) <= 1000.0)
    );
    println!(
        "verdict launch_{large} <= 5000 ms: {}",
        verdict(said(&l_large) <= 5000.0)
    );
    println!(
        "verdict idle segments <= 4 per LP: {}",
        verdict(per(idle.segments as f64) <= 4.0)
    );
    println!(
        "verdict idle /dev/shm <= 1 MB per LP: {}",
        verdict(per(idle.bytes as f64) <= 1_048_576.0)
    );
    println!(
        "verdict idle cpu <= 2% of one core: {}",
        verdict(idle.cpu_pct <= 2.0)
    );
    println!(
        "verdict mesh aggregate >= 0.8 x pair (steady state: after the warm-up): {} (from a cold start: {:.3})",
        verdict(ratios[1] >= 0.8),
        ratios[0]
    );
    println!(
        "verdict first message p50 <= 1 ms: {}",
        verdict(p50 <= 1000.0)
    );
    let ours = format!("shmc.b{}", std::process::id());
    for e in shm_entries()
        .into_iter()
        .filter(|e| !shm_before.contains(e))
    {
        println!("{}: left behind: {e}", shm_root().display());
        if e.starts_with(&ours) {
            let _ = std::fs::remove_dir_all(shm_root().join(&e));
        }
    }
}
