//! `cargo bench --bench e2e`: end-to-end numbers of real collaborations,
//! launched with the real `shmcollab` binary, real managers and real LPs
//! (the example programs), over real shared memory.
//!
//! In one run:
//! 1. Round trips at every load: 64 B request/reply LP -> manager -> LP ->
//!    manager -> LP (the direct path), tags on (pingpong, `ping paced N
//!    INTERVAL_US`), back to back (`lp_rtt_64`, 20,000) and paced at one
//!    request per 100 µs (10,000), 1 ms (2,000) and 10 ms (300):
//!    `lp_rtt_64_paced_100us`, `_1ms`, `_10ms`. Each row: p50, p99, p99.9,
//!    max, and `cpu_ns_per_rtt`, the CPU time of ALL the collaboration's
//!    processes (supervisor, both managers, both LPs) over the measured
//!    window per round trip, summed by ping itself from their CPU clocks
//!    (utime + stime to the ns) just before its first measured request and
//!    after its last reply. Next to each, at the same pace, with the same
//!    pacing code (`examples/pingpong/pace.rs`), a Unix stream socket
//!    between two processes of this bench: both on one CPU
//!    (`unix_socket_1cpu`) and on two (`unix_socket_2cpu`), pinned with
//!    sched_setaffinity; the better of the two (lower p50) is
//!    `unix_socket`, the baseline of every ratio. 3 alternating rounds,
//!    medians; ratios are the medians of the rounds' ratios. Targets: back
//!    to back p50 <= 0.5 x socket; paced at 1 ms p50 <= 2 x and p99 <= 3 x
//!    the socket at that pace; 100 µs and 10 ms reported. Also the back to
//!    back round trip with `SHMCOLAB_DIRECT=0` (6 hops), for comparison.
//!    iceoryx2 with its blocking wait is in `benches/compare` (`-- lat`).
//! 2. `lp_oneway_64`: one-way 64 B messages through both managers, tags on
//!    (`ping flood`); target >= 2 M msgs/s.
//! 3. `launch_32_ready`: wall time from spawning `shmcollab launch` of 32
//!    idle LPs until the supervisor prints `all 32 LPs ready after X ms`
//!    (X is reported too, as `supervisor_ms`); median of 5; target <= 300 ms.
//! 4. `idle_8_cpu`: CPU time (utime + stime from `/proc/<pid>/stat`) of the
//!    supervisor, the 8 managers and the 8 idle LPs over 10 s, as % of one
//!    core; target <= 2 %.
//! 5. `sandbox_cost`: the back-to-back round trip and the launch of 32 LPs
//!    with `sandbox = false` and `true`, alternating in the same run
//!    (`e2e/sandbox.rs`); target on <= 1.05 x off.
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
#[path = "e2e/sandbox.rs"]
mod sandbox;

use common::{LatRow, Placement, Row};
use harness::{build_and_locate, fail, median, quick, shm_entries, shm_root, Bins, TempDir};
use std::path::Path;

/// How much one run measures (`SHMC_BENCH_QUICK=1`: a smoke run).
struct Counts {
    /// Round trips back to back per run (LP, 6 hops, sockets).
    rtt_iters: u64,
    /// (interval in µs, round trips) of the paced runs.
    paced: Vec<(u64, u64)>,
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
            paced: if q {
                vec![(100, 300), (1_000, 50), (10_000, 10)]
            } else {
                vec![(100, 10_000), (1_000, 2_000), (10_000, 300)]
            },
            rounds: if q { 1 } else { 3 },
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
    let sandbox = sandbox::measure(
        &bins,
        &dir.0,
        counts.rtt_iters,
        counts.rounds,
        counts.launches,
    );
    drop(dir);
    report(&counts, rtt, oneway, &launch, &idle);
    sandbox.report();
    remove_what_we_left(&shm_before);
}

// ---- 1. round trips --------------------------------------------------------

/// One pace of figure 1: the medians of the LP pair and of both socket
/// placements, the better socket as `unix_socket`, and the ratios.
struct PaceFig {
    lp: LatRow,
    one: LatRow,
    two: LatRow,
    /// The better of `one` and `two` (lower median p50), as `unix_socket`.
    sock: LatRow,
    /// Per round: LP p50 / p50 of that round's better socket, and the same
    /// for p99 (against the same socket row).
    p50_ratios: Vec<f64>,
    p99_ratios: Vec<f64>,
    p50_ratio: f64,
    p99_ratio: f64,
}

/// Figure 1: one [`PaceFig`] per pace (back to back first), and the 6-hop
/// round trip back to back.
struct RoundTrips {
    paces: Vec<PaceFig>,
    rtt6: LatRow,
}

/// Round trips and the socket baselines at every pace, in alternating
/// rounds (this machine's noise comes and goes within seconds): within a
/// round, each pace runs the LP pair, then the socket on one CPU, then on
/// two. Rows are the medians over the rounds, field by field; ratios the
/// medians of the rounds' ratios.
fn round_trips(bins: &Bins, dir: &Path, c: &Counts) -> RoundTrips {
    let paces: Vec<(u64, u64)> = std::iter::once((0, c.rtt_iters))
        .chain(c.paced.iter().copied())
        .collect();
    let mut got: Vec<[Vec<LatRow>; 3]> = paces.iter().map(|_| Default::default()).collect();
    let mut six = Vec::new();
    let us = |v: f64| v / 1e3;
    for round in 0..c.rounds {
        for (i, &(interval, n)) in paces.iter().enumerate() {
            let lp = runs::lp_paced(bins, dir, n, interval, false, None);
            let one = common::sock_rtt_lat(64, n as usize, interval, Placement::OneCpu);
            let two = common::sock_rtt_lat(64, n as usize, interval, Placement::TwoCpus);
            eprintln!(
                "e2e bench: round {round}: {}: shmcollab p50 {:.2} µs p99 {:.2} µs cpu {:.2} µs; \
                 socket 1 CPU p50 {:.2} µs p99 {:.2} µs; 2 CPUs p50 {:.2} µs p99 {:.2} µs",
                lp.bench,
                us(lp.p50_ns),
                us(lp.p99_ns),
                us(lp.cpu_ns_per_rtt.unwrap_or(f64::NAN)),
                us(one.p50_ns),
                us(one.p99_ns),
                us(two.p50_ns),
                us(two.p99_ns),
            );
            for (k, r) in [lp, one, two].into_iter().enumerate() {
                got[i][k].push(r);
            }
        }
        let r6 = runs::lp_paced(bins, dir, c.rtt_iters, 0, true, None);
        eprintln!(
            "e2e bench: round {round}: lp_rtt_64, 6 hops: p50 {:.2} µs",
            us(r6.p50_ns)
        );
        six.push(r6);
    }
    RoundTrips {
        paces: got
            .iter()
            .map(|[lp, one, two]| pace_fig(lp, one, two))
            .collect(),
        rtt6: LatRow::median(&six, "shmcollab_6_hops"),
    }
}

/// The medians and ratios of one pace's rounds.
fn pace_fig(lp: &[LatRow], one: &[LatRow], two: &[LatRow]) -> PaceFig {
    let better = |a: &LatRow, b: &LatRow| {
        if a.p50_ns <= b.p50_ns {
            a.clone()
        } else {
            b.clone()
        }
    };
    let round_socks: Vec<LatRow> = one.iter().zip(two).map(|(a, b)| better(a, b)).collect();
    let p50_ratios: Vec<f64> = lp
        .iter()
        .zip(&round_socks)
        .map(|(l, s)| l.p50_ns / s.p50_ns)
        .collect();
    let p99_ratios: Vec<f64> = lp
        .iter()
        .zip(&round_socks)
        .map(|(l, s)| l.p99_ns / s.p99_ns)
        .collect();
    let (one, two) = (
        LatRow::median(one, Placement::OneCpu.system()),
        LatRow::median(two, Placement::TwoCpus.system()),
    );
    let mut sock = better(&one, &two);
    sock.system = "unix_socket".into();
    PaceFig {
        lp: LatRow::median(lp, "shmcollab"),
        p50_ratio: median(&mut p50_ratios.clone()),
        p99_ratio: median(&mut p99_ratios.clone()),
        p50_ratios,
        p99_ratios,
        one,
        two,
        sock,
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
        let (w, s) = runs::launch_ready_once(bins, dir, 32, round, None);
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

/// The tables, the JSON lines, then one verdict line per figure.
fn report(c: &Counts, rt: RoundTrips, oneway: Row, launch: &LaunchTimes, idle: &IdleCpu) {
    let rate = oneway.msgs_per_s.unwrap_or(0.0);
    let mut lat = Vec::new();
    for f in &rt.paces {
        lat.extend([&f.lp, &f.sock, &f.one, &f.two].map(Clone::clone));
    }
    lat.push(rt.rtt6.clone());
    common::print_lat_table(&lat);
    common::print_table(&[oneway]);
    print_json_lines(&rt.paces, launch, idle);
    println!();
    print_verdicts(c, &rt.paces, rate, launch, idle);
}

/// The figures' JSON lines that are not rows of the tables.
fn print_json_lines(paces: &[PaceFig], launch: &LaunchTimes, idle: &IdleCpu) {
    for f in paces {
        println!(
            "{{\"bench\":\"{}_vs_socket\",\"system\":\"shmcollab\",\"p50_ratio\":{:.3},\"p99_ratio\":{:.3},\"rounds\":[{}],\"rounds_p99\":[{}],\"socket\":\"{}\"}}",
            f.lp.bench,
            f.p50_ratio,
            f.p99_ratio,
            join_fixed(&f.p50_ratios, 3, ","),
            join_fixed(&f.p99_ratios, 3, ","),
            f.sock_placement(),
        );
    }
    let (launch_ms, launch_said) = (launch.wall_ms, launch.said_ms);
    println!(
        "{{\"bench\":\"launch_32_ready\",\"system\":\"shmcollab\",\"ms\":{launch_ms:.1},\"supervisor_ms\":{launch_said:.1}}}"
    );
    println!("{}", idle.json);
}

impl PaceFig {
    /// Which placement the `unix_socket` row is.
    fn sock_placement(&self) -> &'static str {
        if self.one.p50_ns <= self.two.p50_ns {
            Placement::OneCpu.system()
        } else {
            Placement::TwoCpus.system()
        }
    }
}

/// One line per figure: its value and whether it met its target.
fn print_verdicts(c: &Counts, paces: &[PaceFig], rate: f64, launch: &LaunchTimes, idle: &IdleCpu) {
    let (rounds, launches, idle_secs) = (c.rounds, c.launches, c.idle_secs);
    let (launch_ms, launch_said) = (launch.wall_ms, launch.said_ms);
    let (idle_pct, idle_parts, procs) = (idle.pct, idle.parts, idle.procs);
    let us = |v: f64| v / 1e3;
    for f in paces {
        let (p50_target, p99_target) = match f.lp.interval_us {
            0 => (Some(0.5), None),
            1_000 => (Some(2.0), Some(3.0)),
            _ => (None, None),
        };
        let target = |t: Option<f64>, r: f64| match t {
            Some(t) => format!("target <= {t}: {}", verdict(r <= t)),
            None => "reported".into(),
        };
        println!(
            "{} p50 / unix_socket p50 = {:.3}, median of {rounds} rounds ({})   ({}); \
             p99 / unix_socket p99 = {:.3} ({})   ({})",
            f.lp.bench,
            f.p50_ratio,
            join_fixed(&f.p50_ratios, 3, ","),
            target(p50_target, f.p50_ratio),
            f.p99_ratio,
            join_fixed(&f.p99_ratios, 3, ","),
            target(p99_target, f.p99_ratio),
        );
        println!(
            "    shmcollab p50 {:.2} µs, p99 {:.2} µs, p99.9 {:.2} µs, CPU {:.2} µs per round trip (5 processes); \
             unix_socket = {} (1 CPU p50 {:.2} µs, p99 {:.2} µs, CPU {:.2} µs; 2 CPUs p50 {:.2} µs, p99 {:.2} µs, CPU {:.2} µs)",
            us(f.lp.p50_ns),
            us(f.lp.p99_ns),
            us(f.lp.p999_ns),
            us(f.lp.cpu_ns_per_rtt.unwrap_or(f64::NAN)),
            f.sock_placement(),
            us(f.one.p50_ns),
            us(f.one.p99_ns),
            us(f.one.cpu_ns_per_rtt.unwrap_or(f64::NAN)),
            us(f.two.p50_ns),
            us(f.two.p99_ns),
            us(f.two.cpu_ns_per_rtt.unwrap_or(f64::NAN)),
        );
    }
    println!(
        "lp_rtt_64_paced_1ms p50 / iceoryx2_blocking p50: target <= 1.0, measured by `(cd benches/compare && cargo run --release -- lat)`"
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
