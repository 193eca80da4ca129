//! `cd benches/compare && cargo run --release --bin sqlite`
//!
//! The SQLite baseline for shmcollab's transaction benchmark
//! (`cargo bench --bench txn`): durable single-key increments, SQLite in WAL
//! mode with `synchronous=FULL` (one fsync of the WAL per commit), done the
//! way its LP does them (`examples/txnbench/lp.rs`, mode `one`): read the
//! key's 8-byte little-endian value, write it back plus one, commit; one
//! commit in flight per process.
//!
//! * `commit_1lp`: one process, one database;
//! * `commit_8lp` / `sqlite_wal_full`: 8 processes on ONE database file, each
//!   incrementing its own key, so SQLite's single-writer lock is the only
//!   contention;
//! * `commit_8lp` / `sqlite_wal_full_8files`: 8 processes, each on its own
//!   database file (sharding: the best a SQLite user can get from 8 writers).
//!
//! The best of SQLite: prepared statements cached, `BEGIN IMMEDIATE` (takes
//! the write lock up front, so a transaction never has to be retried because
//! a read lock could not be upgraded), a busy handler that waits and retries
//! rather than fails. That handler is SQLite's own `busy_timeout` schedule
//! (sleep 1, 2, 5, 10, 15, 20, 25, 25, 25, 50, 50, then 100 ms, up to the
//! timeout) written out so that it can count its waits; a transaction that
//! still gets `SQLITE_BUSY` is rolled back, counted and retried.
//!
//! The children are this binary re-executed with `SHMC_COMPARE_CHILD`; they
//! open their connection, say "ready", and all start on the parent's "go".
//! The databases live in a temporary directory on the file system of the
//! repository (where `state_dir` defaults to), removed at the end. A watchdog
//! kills the children and exits 2 if a measurement takes more than 120 s.
//! `SHMC_BENCH_QUICK=1` shrinks the counts (smoke test).

use rusqlite::{params, Connection, OptionalExtension};
use std::error::Error;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

type Res<T> = Result<T, Box<dyn Error>>;

const ROLE_ENV: &str = "SHMC_COMPARE_CHILD";
const ARG_ENV: &str = "SHMC_COMPARE_ARG";
const RUN_LIMIT: Duration = Duration::from_secs(120);
/// How long one lock wait may take before the transaction gets SQLITE_BUSY.
const BUSY_TIMEOUT_MS: i64 = 10_000;
const PROCS: usize = 8;

fn quick() -> bool {
    std::env::var_os("SHMC_BENCH_QUICK").is_some()
}

mod report;
mod watchdog;

use report::{pick, print_table, Row};
use watchdog::{die_with_parent, watch, watch_end, watch_start, Children};

// ---- SQLite --------------------------------------------------------------

/// Create a database file in WAL mode with the `kv` table and `keys` zeroed.
fn create_db(path: &Path, keys: &[String]) -> Res<()> {
    let c = Connection::open(path)?;
    let mode: String = c.pragma_update_and_check(None, "journal_mode", "wal", |r| r.get(0))?;
    if mode != "wal" {
        return Err(format!("journal_mode is {mode}, not wal").into());
    }
    c.execute_batch("CREATE TABLE kv (k BLOB PRIMARY KEY, v BLOB NOT NULL) WITHOUT ROWID")?;
    for k in keys {
        c.execute(
            "INSERT INTO kv (k, v) VALUES (?1, ?2)",
            params![k.as_bytes(), 0u64.to_le_bytes()],
        )?;
    }
    Ok(())
}

/// How a connection waits for the write lock.
#[derive(Clone, Copy, PartialEq)]
enum Busy {
    /// SQLite's `busy_timeout` backoff (1 ms up to 100 ms sleeps).
    Timeout,
    /// Poll every 100 µs: what a user who knows commits take ~200 µs can
    /// install with `sqlite3_busy_handler`, to keep the lock busy.
    Poll,
}

impl Busy {
    fn name(self) -> &'static str {
        match self {
            Busy::Timeout => "timeout",
            Busy::Poll => "poll",
        }
    }

    fn parse(s: &str) -> Option<Busy> {
        [Busy::Timeout, Busy::Poll]
            .into_iter()
            .find(|b| b.name() == s)
    }

    fn handler(self, waits: Arc<AtomicU64>) -> Box<dyn FnMut(i32) -> bool + Send> {
        match self {
            Busy::Timeout => Box::new(counting_busy_timeout(waits)),
            Busy::Poll => Box::new(move |count| {
                waits.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(Duration::from_micros(100));
                (count as i64) < BUSY_TIMEOUT_MS * 10
            }),
        }
    }
}

/// SQLite's default busy handler (`sqliteDefaultBusyCallback`, what
/// `busy_timeout` installs), counting its calls in `waits`.
fn counting_busy_timeout(waits: Arc<AtomicU64>) -> impl FnMut(i32) -> bool + Send + 'static {
    const DELAYS: [i64; 12] = [1, 2, 5, 10, 15, 20, 25, 25, 25, 50, 50, 100];
    const TOTALS: [i64; 12] = [0, 1, 3, 8, 18, 33, 53, 78, 103, 128, 178, 228];
    move |count| {
        waits.fetch_add(1, Ordering::Relaxed);
        let n = count as usize;
        let (mut delay, prior) = if n < DELAYS.len() {
            (DELAYS[n], TOTALS[n])
        } else {
            let last = DELAYS.len() - 1;
            (
                DELAYS[last],
                TOTALS[last] + DELAYS[last] * (n - last) as i64,
            )
        };
        if prior + delay > BUSY_TIMEOUT_MS {
            delay = BUSY_TIMEOUT_MS - prior;
            if delay <= 0 {
                return false;
            }
        }
        std::thread::sleep(Duration::from_millis(delay as u64));
        true
    }
}

/// One connection incrementing one key.
struct Incr {
    conn: Connection,
    key: Vec<u8>,
    waits: Arc<AtomicU64>,
    busy_errors: u64,
}

impl Incr {
    fn open(path: &Path, key: &str, busy: Busy) -> Res<Incr> {
        let mut conn = Connection::open(path)?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        let sync: i64 = conn.pragma_query_value(None, "synchronous", |r| r.get(0))?;
        let mode: String = conn.pragma_query_value(None, "journal_mode", |r| r.get(0))?;
        if sync != 2 || mode != "wal" {
            return Err(format!("synchronous={sync} journal_mode={mode}").into());
        }
        let waits = Arc::new(AtomicU64::new(0));
        conn.busy_handler(Some(busy.handler(waits.clone())))?;
        conn.set_prepared_statement_cache_capacity(16);
        Ok(Incr {
            conn,
            key: key.as_bytes().to_vec(),
            waits,
            busy_errors: 0,
        })
    }

    /// `BEGIN IMMEDIATE; SELECT; UPDATE; COMMIT`, retried (and counted) while
    /// it fails with SQLITE_BUSY.
    fn commit_one(&mut self) -> Res<()> {
        loop {
            match self.try_once() {
                Ok(()) => return Ok(()),
                Err(e) if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy) => {
                    self.busy_errors += 1;
                    if !self.conn.is_autocommit() {
                        self.conn.prepare_cached("ROLLBACK")?.execute([])?;
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    fn try_once(&mut self) -> rusqlite::Result<()> {
        let c = &self.conn;
        c.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
        let v: Option<Vec<u8>> = c
            .prepare_cached("SELECT v FROM kv WHERE k = ?1")?
            .query_row([&self.key], |r| r.get(0))
            .optional()?;
        let v = v
            .and_then(|b| <[u8; 8]>::try_from(b).ok())
            .map_or(0, u64::from_le_bytes);
        c.prepare_cached("UPDATE kv SET v = ?1 WHERE k = ?2")?
            .execute(params![(v + 1).to_le_bytes(), self.key])?;
        c.prepare_cached("COMMIT")?.execute([])?;
        Ok(())
    }

    fn value(&self) -> Res<u64> {
        let b: Vec<u8> =
            self.conn
                .query_row("SELECT v FROM kv WHERE k = ?1", [&self.key], |r| r.get(0))?;
        Ok(u64::from_le_bytes(b.as_slice().try_into()?))
    }
}

/// What one process measured: latency of each timed commit.
struct Run {
    samples: Vec<u64>,
    busy_waits: u64,
    busy_errors: u64,
}

/// `warm` untimed then `n` timed increments; checks the final value.
fn run_incr(inc: &mut Incr, warm: usize, n: usize) -> Res<Run> {
    let before = inc.value()?;
    let mut samples = Vec::with_capacity(n);
    for i in 0..warm + n {
        let t = Instant::now();
        inc.commit_one()?;
        if i >= warm {
            samples.push(t.elapsed().as_nanos() as u64);
        }
    }
    let after = inc.value()?;
    if after != before + (warm + n) as u64 {
        return Err(format!(
            "key ends at {after}, expected {}",
            before + (warm + n) as u64
        )
        .into());
    }
    Ok(Run {
        samples,
        busy_waits: inc.waits.load(Ordering::Relaxed),
        busy_errors: inc.busy_errors,
    })
}

fn row(bench: &str, system: &str, procs: usize, runs: Vec<Run>, all: u64, took: Duration) -> Row {
    let mut s: Vec<u64> = runs
        .iter()
        .flat_map(|r| r.samples.iter().copied())
        .collect();
    s.sort_unstable();
    Row {
        bench: bench.into(),
        system: system.into(),
        p50_ns: pick(&s, 0.50),
        p99_ns: pick(&s, 0.99),
        max_ns: s[s.len() - 1],
        commits_per_s: all as f64 / took.as_secs_f64(),
        procs,
        commits: s.len() as u64,
        busy_waits: runs.iter().map(|r| r.busy_waits).sum(),
        busy_errors: runs.iter().map(|r| r.busy_errors).sum(),
    }
}

// ---- measurements --------------------------------------------------------

fn commit_1lp(dir: &Path, warm: usize, n: usize) -> Res<Row> {
    watch_start("commit_1lp");
    let db = dir.join("one.db");
    create_db(&db, &["n/lp0".into()])?;
    let mut inc = Incr::open(&db, "n/lp0", Busy::Timeout)?;
    let t = Instant::now();
    let run = run_incr(&mut inc, warm, n)?;
    let took = t.elapsed();
    watch_end();
    Ok(row(
        "commit_1lp",
        "sqlite_wal_full",
        1,
        vec![run],
        (warm + n) as u64,
        took,
    ))
}

/// `PROCS` child processes, child `i` incrementing key `n/lp<i>` of
/// `dbs[i % dbs.len()]`; all start together on "go".
fn commit_8lp(system: &str, dbs: &[PathBuf], busy: Busy, warm: usize, n: usize) -> Res<Row> {
    watch_start(&format!("commit_8lp {system}"));
    let mut kids = Children(Vec::new());
    let mut outs: Vec<BufReader<ChildStdout>> = Vec::new();
    for i in 0..PROCS {
        let db = &dbs[i % dbs.len()];
        let mut c = Command::new(std::env::current_exe()?)
            .env(ROLE_ENV, "sqlite_incr")
            .env(
                ARG_ENV,
                format!("{}|n/lp{i}|{}|{warm}|{n}", db.display(), busy.name()),
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        watch().lock().unwrap().children.push(c.id() as i32);
        outs.push(BufReader::new(c.stdout.take().unwrap()));
        kids.0.push(c);
    }
    let mut line = String::new();
    for (i, o) in outs.iter_mut().enumerate() {
        line.clear();
        o.read_line(&mut line)?;
        if line.trim() != "ready" {
            return Err(format!("child {i} did not get ready: {line:?}").into());
        }
    }
    let t = Instant::now();
    for c in &mut kids.0 {
        c.stdin.as_mut().unwrap().write_all(b"go\n")?;
    }
    let mut runs = Vec::new();
    for (i, o) in outs.iter_mut().enumerate() {
        line.clear();
        o.read_line(&mut line)?;
        runs.push(parse_run(&line).ok_or_else(|| format!("child {i} failed: {line:?}"))?);
    }
    let took = t.elapsed();
    for (i, c) in kids.0.iter_mut().enumerate() {
        let st = c.wait()?;
        if !st.success() {
            return Err(format!("child {i} exited with {st}").into());
        }
    }
    drop(kids);
    watch_end();
    let all = (PROCS * (warm + n)) as u64;
    Ok(row("commit_8lp", system, PROCS, runs, all, took))
}

/// `done <busy_waits> <busy_errors> <sample> <sample> ...`
fn parse_run(line: &str) -> Option<Run> {
    let mut it = line.split_ascii_whitespace();
    (it.next()? == "done").then_some(())?;
    let busy_waits = it.next()?.parse().ok()?;
    let busy_errors = it.next()?.parse().ok()?;
    let samples = it.map(|s| s.parse().ok()).collect::<Option<Vec<u64>>>()?;
    (!samples.is_empty()).then_some(Run {
        samples,
        busy_waits,
        busy_errors,
    })
}

fn child_incr(arg: &str) -> Res<()> {
    let mut it = arg.split('|');
    let (db, key) = (it.next().ok_or("db")?, it.next().ok_or("key")?);
    let busy = Busy::parse(it.next().ok_or("busy")?).ok_or("busy policy")?;
    let warm: usize = it.next().ok_or("warm")?.parse()?;
    let n: usize = it.next().ok_or("n")?.parse()?;
    let mut inc = Incr::open(Path::new(db), key, busy)?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "ready")?;
    out.flush()?;
    let mut go = String::new();
    std::io::stdin().read_line(&mut go)?;
    if go.trim() != "go" {
        return Err("no go".into());
    }
    let run = run_incr(&mut inc, warm, n)?;
    let mut line = format!("done {} {}", run.busy_waits, run.busy_errors);
    for s in &run.samples {
        line += &format!(" {s}");
    }
    writeln!(out, "{line}")?;
    out.flush()?;
    Ok(())
}

// ---- main ----------------------------------------------------------------

/// A fresh directory for the databases, on the file system of the
/// repository (where `state_dir` defaults to): the system's temp dir if it
/// is on that file system, else under this crate's `target/`.
fn bench_dir() -> Res<PathBuf> {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let tmp = std::env::temp_dir();
    let base = if std::fs::metadata(&tmp)?.dev() == std::fs::metadata(&repo)?.dev() {
        tmp
    } else {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("target")
    };
    let dir = base.join(format!("shmc-compare-sqlite-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

fn measure(dir: &Path, warm: usize, n: usize) -> Res<Vec<Row>> {
    let mut rows = vec![commit_1lp(dir, warm, n)?];
    let keys: Vec<String> = (0..PROCS).map(|i| format!("n/lp{i}")).collect();
    let shared = dir.join("shared.db");
    create_db(&shared, &keys)?;
    rows.push(commit_8lp(
        "sqlite_wal_full",
        std::slice::from_ref(&shared),
        Busy::Timeout,
        warm,
        n,
    )?);
    rows.push(commit_8lp(
        "sqlite_wal_full_poll",
        &[shared],
        Busy::Poll,
        warm,
        n,
    )?);
    let mut files = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        let db = dir.join(format!("shard{i}.db"));
        create_db(&db, std::slice::from_ref(k))?;
        files.push(db);
    }
    rows.push(commit_8lp(
        "sqlite_wal_full_8files",
        &files,
        Busy::Timeout,
        warm,
        n,
    )?);
    Ok(rows)
}

fn main() {
    if let Ok(role) = std::env::var(ROLE_ENV) {
        die_with_parent();
        assert_eq!(role, "sqlite_incr", "unknown role {role}");
        if let Err(e) = child_incr(&std::env::var(ARG_ENV).unwrap()) {
            eprintln!("sqlite: child: {e}");
            std::process::exit(1);
        }
        return;
    }
    let n = if quick() { 200 } else { 3_000 };
    let warm = n / 10;
    let dir = match bench_dir() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("sqlite: cannot make the bench directory: {e}");
            std::process::exit(1);
        }
    };
    watch().lock().unwrap().dir = Some(dir.clone());
    eprintln!(
        "sqlite {} (bundled), databases in {}, {n} timed commits per process (+{warm} warm-up)",
        rusqlite::version(),
        dir.display()
    );
    let rows = measure(&dir, warm, n);
    let _ = std::fs::remove_dir_all(&dir);
    match rows {
        Ok(rows) => print_table(&rows),
        Err(e) => {
            eprintln!("sqlite: {e}");
            std::process::exit(1);
        }
    }
}
