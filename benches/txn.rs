//! `cargo bench --bench txn`: durable transactions of real collaborations
//! (the real `shmcollab` binary, managers, LPs: `examples/txnbench/lp.rs`),
//! next to the floor of this disk, in one run:
//!
//! 1. `commit_1lp`: one LP, increments of one key (get + put + commit),
//!    each commit durable (`sync = "always"`), one in flight; p50, p99 and
//!    commits/s; beside it `fdatasync_floor`: this process appending a
//!    128-byte record and calling fdatasync in a loop, on the same file
//!    system, into a preallocated file (what the log does).
//! 2. `commit_8lp`: 8 LPs, each incrementing a key of its own sub-function
//!    (8 managers, 8 logs), one commit in flight each; aggregate commits/s
//!    (the sum of the LPs' rates; they run for the same seconds) and the
//!    median of their p50/p99. `commit_8lp_one_host`: the same 8 LPs
//!    incrementing keys of one sub-function (one manager, one log: group
//!    commit). `commit_8lp_paired`: `commit_8lp` with `placement =
//!    "paired"` (each LP on its manager's CPU, every wait a sleep; the
//!    default `auto` spreads them: LPs on one CPU, managers on the other).
//!    The disk's floor under them, 8 writers on 8 files against
//!    one shared file with a cross-process group commit, is
//!    `benches/floor/shared_log.c` (why the logs are one per manager:
//!    benches/README.md, "Transactions: one log per manager, not per host").
//! 3. `commit_8lp_pipelined`: 8 LPs, up to 64 commits in flight each, each
//!    commit writing a key of the LP's sub-function (no read: the stream of
//!    state updates that pipelining is for). `commit_8lp_pipelined_rmw`:
//!    the same with increments (get + put); each counter's read comes
//!    from the LP's memory of its own last committed write (no round
//!    trip: `runtime/src/lp/txn_memory.rs`), as in `commit_8lp`.
//! 4. `commit_2pc`: one LP's transactions increment a key of its own
//!    sub-function and one of a sub-function another manager hosts.
//! 5. `recovery_100mb`: this process writes a 100 MB log of commit records
//!    with the runtime's own log and records, then times opening it and
//!    replaying it into a store (what a manager does when it starts).
//!
//! SQLite's figures (`sqlite_wal_full`) come from the compare crate:
//! `cd benches/compare && cargo run --release --bin sqlite`. The state of
//! every collaboration goes to a temporary directory under `target/`
//! (removed at the end). `SHMC_BENCH_QUICK=1` shrinks everything.

#[path = "../shm/benches/common.rs"]
mod common;
#[path = "e2e/harness.rs"]
#[allow(dead_code)]
mod harness;

use common::Row;
use harness::{fail, median, quick, target_release, write_config, Bins, Launched};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The run's temporary directory, on the repository's file system (where a
/// default `state_dir` lives), removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Scratch {
        let d = target_release().join(format!("txn-bench-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap_or_else(|e| fail(&format!("{}: {e}", d.display())));
        Scratch(d)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn secs() -> f64 {
    if quick() {
        0.5
    } else {
        3.0
    }
}

/// A collaboration of `lps` bench LPs, one sub-function `k/<i>` each; LP i
/// runs `args(i)`.
fn config(
    bin: &Path,
    dir: &Path,
    name: &str,
    lps: usize,
    args: &dyn Fn(usize) -> Vec<String>,
) -> PathBuf {
    config_with(bin, dir, name, lps, "", args)
}

/// [`config`] with `top` (lines of the config's top level) added.
fn config_with(
    bin: &Path,
    dir: &Path,
    name: &str,
    lps: usize,
    top: &str,
    args: &dyn Fn(usize) -> Vec<String>,
) -> PathBuf {
    let mut text = format!(
        "name = \"{name}\"\nstate_dir = {:?}\n{top}\n[[subfunction]]\nname = \"k\"\npartitions = {lps}\n",
        dir.join("state").display().to_string()
    );
    for i in 0..lps {
        let mut cmd = vec![bin.display().to_string()];
        cmd.extend(args(i));
        text.push_str(&format!(
            "\n[[process]]\nname = \"b{i}\"\ncommand = {cmd:?}\nhosts = [\"k/{i}\"]\nrestart = \"temporary\"\n"
        ));
    }
    write_config(dir, &format!("{name}.toml"), &text)
}

/// Launch, wait, and return the JSON lines the LPs printed.
fn run(bins: &Bins, cfg: &Path, name: &str) -> Vec<Value> {
    let (code, stdout, stderr) = Launched::start(bins, cfg, name).finish();
    if code != 0 {
        fail(&format!("{name} failed ({code}):\n{stdout}\n{stderr}"));
    }
    stdout
        .lines()
        .filter_map(|l| l.split_once("| ").map(|(_, r)| r.trim()))
        .filter(|l| l.starts_with('{'))
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// The row of a measurement by one or several LPs: rates summed, latency
/// percentiles the median over the LPs.
fn row(bench: &str, lines: &[Value]) -> Row {
    let f = |v: &Value, k: &str| v[k].as_f64().unwrap_or(f64::NAN);
    let rate: f64 = lines.iter().map(|v| f(v, "commits") / f(v, "secs")).sum();
    let mut p50: Vec<f64> = lines.iter().map(|v| f(v, "p50_ns")).collect();
    let mut p99: Vec<f64> = lines.iter().map(|v| f(v, "p99_ns")).collect();
    Row {
        bench: bench.into(),
        system: "shmcollab".into(),
        p50_ns: Some(median(&mut p50)),
        p99_ns: Some(median(&mut p99)),
        msgs_per_s: Some(rate),
    }
}

fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// 128-byte records appended with fdatasync after each, into a file
/// preallocated with zeros (as the log is), for `secs`.
fn fdatasync_floor(dir: &Path, secs: f64) -> Row {
    use std::io::Write;
    use std::os::unix::fs::FileExt;
    let path = dir.join("floor.log");
    let mut f = std::fs::File::create(&path).unwrap_or_else(|e| fail(&format!("floor: {e}")));
    f.write_all(&vec![0u8; 16 << 20])
        .unwrap_or_else(|e| fail(&format!("floor: {e}")));
    f.sync_all()
        .unwrap_or_else(|e| fail(&format!("floor: {e}")));
    let rec = [7u8; 128];
    let (mut lat, mut off) = (Vec::new(), 0u64);
    let start = Instant::now();
    while start.elapsed().as_secs_f64() < secs && off + 128 <= 16 << 20 {
        let t0 = Instant::now();
        f.write_all_at(&rec, off)
            .unwrap_or_else(|e| fail(&format!("floor: {e}")));
        f.sync_data()
            .unwrap_or_else(|e| fail(&format!("floor: {e}")));
        lat.push(t0.elapsed().as_nanos() as u64);
        off += 128;
    }
    let took = start.elapsed();
    let n = lat.len() as u64;
    let mut r = Row::latency("commit_1lp", "fdatasync_floor", &mut lat);
    r.msgs_per_s = Some(n as f64 / took.as_secs_f64());
    r
}

/// Write a log of `mb` MB of commit records, then time its recovery.
fn recovery(dir: &Path, mb: u64) -> (f64, u64) {
    use shmcollab::runtime::txn::record::Record;
    use shmcollab::runtime::txn::storage::FsStorage;
    use shmcollab::runtime::txn::store::{Store, WriteItem};
    use shmcollab::runtime::txn::wal::{SyncMode, Wal};
    let logdir = dir.join("recovery");
    let (mut wal, _) = Wal::open(FsStorage::new(), &logdir, SyncMode::Off)
        .unwrap_or_else(|e| fail(&format!("recovery: {e}")));
    let mut version = 0u64;
    while wal.size() < mb << 20 {
        for _ in 0..1000 {
            version += 1;
            let w = WriteItem {
                subfn: 0,
                key: (version % 100_000).to_le_bytes().to_vec(),
                value: Some(vec![1u8; 64]),
            };
            let r = Record::Commit {
                txid: version,
                version,
                writes: vec![w],
            };
            wal.append(&r.encode())
                .unwrap_or_else(|e| fail(&format!("recovery: {e}")));
        }
        wal.sync()
            .unwrap_or_else(|e| fail(&format!("recovery: {e}")));
    }
    drop(wal);
    let t0 = Instant::now();
    let (_wal, rec) = Wal::open(FsStorage::new(), &logdir, SyncMode::Always)
        .unwrap_or_else(|e| fail(&format!("recovery: {e}")));
    let mut store = Store::new();
    store.host(0);
    let n = rec.records.len() as u64;
    for (_, payload) in rec.records {
        if let Ok(Record::Commit {
            version, writes, ..
        }) = Record::decode(&payload)
        {
            store.apply(&writes, version);
        }
    }
    (t0.elapsed().as_secs_f64() * 1e3, n)
}

fn main() {
    let bins = harness::build_and_locate();
    let bench_lp = target_release().join("examples").join("txn-bench");
    if !bench_lp.is_file() {
        fail(&format!(
            "{} is missing: cargo build --release --examples",
            bench_lp.display()
        ));
    }
    let dir = Scratch::new();
    let s = secs().to_string();
    let tag = std::process::id();
    let mut rows = Vec::new();

    let name = format!("txn1-{tag}");
    let cfg = config(&bench_lp, &dir.0, &name, 1, &|_| strs(&["one", &s, "1"]));
    rows.push(row("commit_1lp", &run(&bins, &cfg, &name)));
    rows.push(fdatasync_floor(&dir.0, secs()));

    let name = format!("txn8-{tag}");
    let cfg = config(&bench_lp, &dir.0, &name, 8, &|_| strs(&["one", &s, "8"]));
    rows.push(row("commit_8lp", &run(&bins, &cfg, &name)));

    let name = format!("txn8pa-{tag}");
    let cfg = config_with(
        &bench_lp,
        &dir.0,
        &name,
        8,
        "placement = \"paired\"\n",
        &|_| strs(&["one", &s, "8"]),
    );
    rows.push(row("commit_8lp_paired", &run(&bins, &cfg, &name)));

    let name = format!("txn8h-{tag}");
    let cfg = config(&bench_lp, &dir.0, &name, 8, &|_| {
        strs(&["one", &s, "8", "k/0"])
    });
    rows.push(row("commit_8lp_one_host", &run(&bins, &cfg, &name)));

    let name = format!("txn8p-{tag}");
    let cfg = config(&bench_lp, &dir.0, &name, 8, &|_| {
        strs(&["pipelined-blind64", &s, "8"])
    });
    rows.push(row("commit_8lp_pipelined", &run(&bins, &cfg, &name)));

    let name = format!("txn8pr-{tag}");
    let cfg = config(&bench_lp, &dir.0, &name, 8, &|_| {
        strs(&["pipelined64", &s, "8"])
    });
    rows.push(row("commit_8lp_pipelined_rmw", &run(&bins, &cfg, &name)));

    let name = format!("txn2pc-{tag}");
    let cfg = config(&bench_lp, &dir.0, &name, 2, &|i| {
        if i == 0 {
            strs(&["twopc", &s, "2", "k/1"])
        } else {
            strs(&["serve", &s, "2"])
        }
    });
    rows.push(row("commit_2pc", &run(&bins, &cfg, &name)));

    let mb = if quick() { 10 } else { 100 };
    let (ms, records) = recovery(&dir.0, mb);

    println!(
        "{:<22} {:<18} {:>12} {:>12} {:>12}",
        "bench", "system", "p50", "p99", "commits/s"
    );
    for r in &rows {
        let us = |v: Option<f64>| v.map_or("-".into(), |v| format!("{:.1} µs", v / 1e3));
        let rate = r.msgs_per_s.map_or("-".into(), |v| format!("{v:.0}"));
        println!(
            "{:<22} {:<18} {:>12} {:>12} {:>12}",
            r.bench,
            r.system,
            us(r.p50_ns),
            us(r.p99_ns),
            rate
        );
    }
    println!();
    for r in &rows {
        println!(
            "{}",
            r.json().replace("\"msgs_per_s\"", "\"commits_per_s\"")
        );
    }
    println!(
        "{{\"bench\":\"recovery_{mb}mb\",\"system\":\"shmcollab\",\"ms\":{ms:.1},\"records\":{records}}}"
    );
    verdicts(&rows, ms, mb);
}

fn verdicts(rows: &[Row], recovery_ms: f64, mb: u64) {
    let get = |b: &str, s: &str| rows.iter().find(|r| r.bench == b && r.system == s);
    let p50 = |b: &str, s: &str| get(b, s).and_then(|r| r.p50_ns).unwrap_or(f64::NAN);
    let rate = |b: &str| {
        get(b, "shmcollab")
            .and_then(|r| r.msgs_per_s)
            .unwrap_or(f64::NAN)
    };
    let floor = p50("commit_1lp", "fdatasync_floor");
    println!();
    println!(
        "commit_1lp p50 / fdatasync floor p50 = {:.2}   (target <= 1.3)",
        p50("commit_1lp", "shmcollab") / floor
    );
    println!(
        "commit_2pc p50 / fdatasync floor p50 = {:.2}   (target <= 2.5)",
        p50("commit_2pc", "shmcollab") / floor
    );
    println!(
        "commit_8lp {:.0}/s (paired {:.0}/s), one host {:.0}/s, pipelined {:.0}/s (read-modify-write {:.0}/s)   (targets vs SQLite's commit_8lp: >= 3x, >= 10x; run benches/compare --bin sqlite)",
        rate("commit_8lp"),
        rate("commit_8lp_paired"),
        rate("commit_8lp_one_host"),
        rate("commit_8lp_pipelined"),
        rate("commit_8lp_pipelined_rmw")
    );
    println!("recovery of {mb} MB: {recovery_ms:.0} ms   (target <= 1000 ms for 100 MB)");
}
