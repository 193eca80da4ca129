//! One run of each kind the bench measures (see the module doc of
//! `benches/e2e.rs`): a pingpong round trip or flood, one launch of idle
//! LPs until ready, and the CPU an idle collaboration uses. `e2e.rs` repeats
//! them and makes the figures.

use crate::common::{pace, LatRow, Row};
use crate::harness::{
    fail, idle_config, run_pingpong, slurp, status_json, with_sandbox, write_config, Bins, Launched,
};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

// ---- 1. round trips --------------------------------------------------------

/// One pingpong run of `ping paced ITERS INTERVAL_US 64` (0: back to back);
/// `six_hops` turns the direct path off. The row is ping's JSON line: the
/// percentiles of its round trips and the CPU time of all the
/// collaboration's processes (supervisor, managers, LPs) per round trip,
/// which ping sums itself over its measured window (see `paced` in
/// `examples/pingpong/ping.rs`).
pub(crate) fn lp_paced(
    bins: &Bins,
    dir: &Path,
    iters: u64,
    interval_us: u64,
    six_hops: bool,
    sandbox: Option<bool>,
) -> LatRow {
    let (n, us) = (iters.to_string(), interval_us.to_string());
    let env: &[(&str, &str)] = if six_hops {
        &[("SHMCOLAB_DIRECT", "0")]
    } else {
        &[]
    };
    let bench = pace::bench_name(64, interval_us);
    let v = run_pingpong(
        bins,
        dir,
        "rtt",
        &["paced", &n, &us, "64"],
        &bench,
        env,
        sandbox,
    );
    let get = |k: &str| {
        v[k].as_f64()
            .unwrap_or_else(|| fail(&format!("no {k} in {v}")))
    };
    if v["processes"].as_u64() != Some(5) {
        eprintln!(
            "e2e bench: {bench}: ping summed the CPU of {} processes, not 5",
            v["processes"]
        );
    }
    LatRow {
        bench,
        system: if six_hops {
            "shmcollab_6_hops".into()
        } else {
            "shmcollab".into()
        },
        p50_ns: get("p50_ns"),
        p99_ns: get("p99_ns"),
        p999_ns: get("p999_ns"),
        max_ns: get("max_ns"),
        cpu_ns_per_rtt: v["cpu_ns_per_rtt"].as_f64(),
        rtts: iters,
        interval_us,
        late: v["late"].as_u64().unwrap_or(0),
    }
}

// ---- 2. one-way ------------------------------------------------------------

pub(crate) fn lp_oneway(bins: &Bins, dir: &Path, n: u64) -> Row {
    let ns = n.to_string();
    let v = run_pingpong(
        bins,
        dir,
        "flood",
        &["flood", &ns, "64"],
        "lp_oneway_64",
        &[],
        None,
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
pub(crate) fn launch_ready_once(
    bins: &Bins,
    dir: &Path,
    n: usize,
    round: usize,
    sandbox: Option<bool>,
) -> (f64, f64) {
    let tag = match sandbox {
        None => "",
        Some(true) => "sb",
        Some(false) => "ns",
    };
    let name = format!("b{}up{tag}{round}", std::process::id());
    let cfg = write_config(
        dir,
        &format!("up{tag}{round}.toml"),
        &with_sandbox(&idle_config(bins, &name, n), sandbox),
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
pub(crate) fn idle_cpu(
    bins: &Bins,
    dir: &Path,
    n: usize,
    secs: u64,
) -> (String, f64, [f64; 3], usize) {
    let name = format!("b{}idle", std::process::id());
    let cfg = write_config(dir, "idle.toml", &idle_config(bins, &name, n));
    let mut run = Launched::start(bins, &cfg, &name);
    let out = slurp(run.child.stdout.take().unwrap());
    let err = slurp(run.child.stderr.take().unwrap());
    let Some(v) = wait_all_ready(bins, &name, n, Instant::now() + Duration::from_secs(60)) else {
        run.stop();
        let (code, ..) = run.finish();
        let (o, e) = (
            out.join().unwrap_or_default(),
            err.join().unwrap_or_default(),
        );
        fail(&format!(
            "{name}: not all {n} LPs ready after 60 s (exit {code})\nstdout:\n{o}\nstderr:\n{e}"
        ));
    };
    std::thread::sleep(Duration::from_secs(1));
    // Three groups: the supervisor, the managers, the LPs.
    let mut groups: [Vec<u64>; 3] = [vec![u64::from(run.child.id())], vec![], vec![]];
    for l in v["lps"].as_array().into_iter().flatten() {
        groups[1].extend(l["manager_pid"].as_u64());
        groups[2].extend(l["pid"].as_u64());
    }
    let procs: usize = groups.iter().map(Vec::len).sum();
    let (t0, t1, wall) = sample_ticks(&groups, secs);
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

/// Polls `status` of collaboration `name` until its `n` LPs are ready with
/// their pids and their managers' known: that status, or `None` once
/// `deadline` has passed.
fn wait_all_ready(bins: &Bins, name: &str, n: usize, deadline: Instant) -> Option<Value> {
    loop {
        if let Some(v) = status_json(bins, name) {
            let lps = v["lps"].as_array().map(Vec::as_slice).unwrap_or_default();
            if lps.len() == n
                && lps.iter().all(|l| {
                    l["state"] == "ready" && l["pid"].is_u64() && l["manager_pid"].is_u64()
                })
            {
                return Some(v);
            }
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The CPU ticks of each group of pids, summed per group, before and after
/// sleeping `secs`, and the wall time between the two samples in seconds.
fn sample_ticks(groups: &[Vec<u64>; 3], secs: u64) -> ([u64; 3], [u64; 3], f64) {
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
    (t0, t1, wall)
}
