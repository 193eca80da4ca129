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
//!
//! This file is the list of figures, one function each, and the report;
//! `e2e/runs.rs` holds one run of each kind and `e2e/harness.rs` the
//! plumbing (binaries, launched collaborations, watchdog, configs). They are
//! included with `#[path]` because a file directly under `benches/` would
//! be taken by cargo for a bench target of its own.

#[path = "../shm/benches/common.rs"]
mod common;
#[path = "e2e/harness.rs"]
mod harness;
#[path = "e2e/runs.rs"]
mod runs;

use common::Row;
use harness::{
    build_and_locate, fail, median, median_of, quick, shm_entries, shm_root, Bins, TempDir,
};
use std::path::Path;

/// How much one run measures (`SHMC_BENCH_QUICK=1`: a smoke run).
struct Counts {
    /// Round trips per pingpong run.
    rtt_iters: u64,
    /// Alternating rounds of the round-trip figure.
    rounds: usize,
    /// One-way messages.
    flood: u64,
    /// Launches of 32 LPs.
    launches: usize,
    /// Seconds the idle collaboration is sampled.
    idle_secs: u64,
}

impl Counts {
    fn new(q: bool) -> Counts {
        Counts {
            rtt_iters: if q { 2_000 } else { 20_000 },
            rounds: if q { 1 } else { 5 },
            flood: if q { 100_000 } else { 4_000_000 },
            launches: if q { 2 } else { 5 },
            idle_secs: if q { 2 } else { 10 },
        }
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
    let counts = Counts::new(quick());
    let shm_before = shm_entries();
    let bins = build_and_locate();
    let dir = TempDir::new();
    let rtt = round_trips(&bins, &dir.0, &counts);
    let oneway = one_way(&bins, &dir.0, &counts);
    let launch = launch_to_ready(&bins, &dir.0, &counts);
    let idle = idle_cpu(&bins, &dir.0, &counts);
    drop(dir);
    report(&counts, rtt, oneway, &launch, &idle);
    remove_what_we_left(&shm_before);
}

// ---- 1. round trips --------------------------------------------------------

/// Figure 1: medians of the LP round trip (4 and 6 hops) and of the socket
/// baseline, and of the rounds' ratios.
struct RoundTrips {
    rtt: Row,
    rtt6: Row,
    sock: Row,
    ratios: Vec<f64>,
    ratio: f64,
}

/// Round trips and the socket baseline, in alternating rounds (this
/// machine's noise comes and goes within seconds): the ratio is the
/// median of the rounds' ratios, the rows the medians of their p50/p99.
fn round_trips(bins: &Bins, dir: &Path, c: &Counts) -> RoundTrips {
    let mut rtts = Vec::new();
    let mut socks = Vec::new();
    let mut ratios = Vec::new();
    let mut six = Vec::new();
    for round in 0..c.rounds {
        let r = runs::lp_rtt(bins, dir, c.rtt_iters, false);
        let so = common::sock_rtt("rtt_64", 64, c.rtt_iters as usize);
        let r6 = runs::lp_rtt(bins, dir, c.rtt_iters, true);
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
    RoundTrips {
        rtt: median_row(&rtts),
        rtt6: median_row(&six),
        sock: median_row(&socks),
        ratios,
        ratio,
    }
}

/// A row with the medians of the rows' p50 and p99.
fn median_row(rows: &[Row]) -> Row {
    Row {
        bench: rows[0].bench.clone(),
        system: rows[0].system.clone(),
        p50_ns: Some(median_of(rows, |r| r.p50_ns)),
        p99_ns: Some(median_of(rows, |r| r.p99_ns)),
        msgs_per_s: None,
    }
}

// ---- 2. one-way ------------------------------------------------------------

/// Figure 2: one-way messages through both managers, one run.
fn one_way(bins: &Bins, dir: &Path, c: &Counts) -> Row {
    runs::lp_oneway(bins, dir, c.flood)
}

// ---- 3. launch to ready ----------------------------------------------------

/// Figure 3: each launch's wall time and the supervisor's own figure, and
/// their medians (ms).
struct LaunchTimes {
    walls: Vec<f64>,
    saids: Vec<f64>,
    wall_ms: f64,
    said_ms: f64,
}

fn launch_to_ready(bins: &Bins, dir: &Path, c: &Counts) -> LaunchTimes {
    let mut walls = Vec::new();
    let mut saids = Vec::new();
    for round in 0..c.launches {
        let (w, s) = runs::launch_ready_once(bins, dir, 32, round);
        eprintln!(
            "e2e bench: launch {round}: 32 LPs ready after {w:.1} ms (supervisor: {s:.1} ms)"
        );
        walls.push(w);
        saids.push(s);
    }
    LaunchTimes {
        wall_ms: median(&mut walls.clone()),
        said_ms: median(&mut saids.clone()),
        walls,
        saids,
    }
}

// ---- 4. idle CPU -----------------------------------------------------------

/// Figure 4: the JSON line, the total % of one core, the % of supervisor /
/// managers / LPs, and how many processes were sampled.
struct IdleCpu {
    json: String,
    pct: f64,
    parts: [f64; 3],
    procs: usize,
}

fn idle_cpu(bins: &Bins, dir: &Path, c: &Counts) -> IdleCpu {
    let (json, pct, parts, procs) = runs::idle_cpu(bins, dir, 8, c.idle_secs);
    IdleCpu {
        json,
        pct,
        parts,
        procs,
    }
}

// ---- the report ------------------------------------------------------------

fn verdict(ok: bool) -> &'static str {
    if ok {
        "ok"
    } else {
        "MISSED"
    }
}

/// The table, the JSON lines, then one verdict line per figure.
fn report(c: &Counts, rt: RoundTrips, oneway: Row, launch: &LaunchTimes, idle: &IdleCpu) {
    let rate = oneway.msgs_per_s.unwrap_or(0.0);
    let RoundTrips {
        rtt,
        rtt6,
        sock,
        ratios,
        ratio,
    } = rt;
    let rows = [rtt, rtt6, sock, oneway];
    common::print_table(&rows);
    print_json_lines(ratio, &ratios, launch, idle);
    println!();
    print_verdicts(c, ratio, &ratios, rate, launch, idle);
}

/// The figures' JSON lines that are not rows of the table.
fn print_json_lines(ratio: f64, ratios: &[f64], launch: &LaunchTimes, idle: &IdleCpu) {
    let (launch_ms, launch_said) = (launch.wall_ms, launch.said_ms);
    println!(
        "{{\"bench\":\"lp_rtt_64_vs_socket\",\"system\":\"shmcollab\",\"p50_ratio\":{ratio:.3},\"rounds\":[{}]}}",
        join_fixed(ratios, 3, ",")
    );
    println!(
        "{{\"bench\":\"launch_32_ready\",\"system\":\"shmcollab\",\"ms\":{launch_ms:.1},\"supervisor_ms\":{launch_said:.1}}}"
    );
    println!("{}", idle.json);
}

/// One line per figure: its value and whether it met its target.
fn print_verdicts(
    c: &Counts,
    ratio: f64,
    ratios: &[f64],
    rate: f64,
    launch: &LaunchTimes,
    idle: &IdleCpu,
) {
    let (rounds, launches, idle_secs) = (c.rounds, c.launches, c.idle_secs);
    let (launch_ms, launch_said) = (launch.wall_ms, launch.said_ms);
    let (idle_pct, idle_parts, procs) = (idle.pct, idle.parts, idle.procs);
    println!(
        "lp_rtt_64 p50 / unix socket rtt_64 p50 = {ratio:.3}, median of {rounds} rounds ({})   (target <= 0.5: {})",
        join_fixed(ratios, 3, ","),
        verdict(ratio <= 0.5)
    );
    println!(
        "lp_oneway_64: {:.2} M msgs/s                    (target >= 2 M: {})",
        rate / 1e6,
        verdict(rate >= 2e6)
    );
    println!(
        "launch_32_ready: median {launch_ms:.1} ms wall, {launch_said:.1} ms by the supervisor over {launches} launches \
         (wall: {}; supervisor: {})   (target <= 300 ms: {})",
        join_fixed(&launch.walls, 1, ", "),
        join_fixed(&launch.saids, 1, ", "),
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
}

/// `v` with `decimals` digits after the point, joined by `sep`.
fn join_fixed(v: &[f64], decimals: usize, sep: &str) -> String {
    v.iter()
        .map(|x| format!("{x:.decimals$}"))
        .collect::<Vec<_>>()
        .join(sep)
}

/// Says whether the run left anything new in shared memory, and removes
/// what is ours (sessions named after this process).
fn remove_what_we_left(shm_before: &[String]) {
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
