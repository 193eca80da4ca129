//! Our LP pair: `examples/pingpong` launched with the workspace's release
//! `shmcollab` (`ping paced`), its figures read from its JSON lines.

use super::*;

// ---- our LP pair -------------------------------------------------------------

/// The workspace's release binaries that run `examples/pingpong`.
pub(crate) struct LpBins {
    pub(crate) shmcollab: PathBuf,
    pub(crate) ping: PathBuf,
    pub(crate) pong: PathBuf,
}

/// Builds (when run by cargo) and finds `shmcollab` and the pingpong LPs in
/// the workspace's `target/release`; `None`, said why, if they are missing.
pub(crate) fn lp_bins() -> Option<LpBins> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    if let Some(cargo) = std::env::var_os("CARGO") {
        eprintln!("compare: cargo build --release of shmcollab and pingpong in the workspace ...");
        let ok = Command::new(cargo)
            .args(["build", "--release", "-q", "--bin", "shmcollab"])
            .args(["--example", "pingpong-ping", "--example", "pingpong-pong"])
            .current_dir(&root)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("compare: that build failed: no shmcollab rows");
            return None;
        }
    }
    let rel = root.join("target/release");
    let bins = LpBins {
        shmcollab: rel.join("shmcollab"),
        ping: rel.join("examples/pingpong-ping"),
        pong: rel.join("examples/pingpong-pong"),
    };
    for p in [&bins.shmcollab, &bins.ping, &bins.pong] {
        if !p.is_file() {
            eprintln!("compare: {} is missing: no shmcollab rows", p.display());
            return None;
        }
    }
    Some(bins)
}

/// The number after `"key":` in a JSON line.
pub(crate) fn json_num(line: &str, key: &str) -> Option<f64> {
    let k = format!("\"{key}\":");
    let rest = &line[line.find(&k)? + k.len()..];
    let end = rest.find([',', '}'])?;
    rest[..end].trim().parse().ok()
}

/// One pingpong collaboration running `ping paced ITERS INTERVAL_US 64`,
/// as the e2e bench runs it; the row from ping's JSON line (ping sums the
/// CPU time of the supervisor, the managers and the LPs itself).
pub(crate) fn lp_pair_rtt(
    bins: &LpBins,
    dir: &Path,
    iters: usize,
    interval_us: u64,
) -> Res<LatRow> {
    static RUN: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let k = RUN.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let name = format!("cmp{}lp{k}", std::process::id());
    let bench = pace::bench_name(64, interval_us);
    let cfg = dir.join(format!("{name}.toml"));
    std::fs::write(
        &cfg,
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
command = [{ping:?}, "paced", "{iters}", "{interval_us}", "64"]
hosts = ["ping"]
restart = "temporary"
"#,
            pong = bins.pong.display().to_string(),
            ping = bins.ping.display().to_string(),
        ),
    )?;
    let mut child = Command::new(&bins.shmcollab)
        .arg("launch")
        .arg(&cfg)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    // The watchdog minds the deadline only: the supervisor ends on its own.
    watch_start(&format!("{bench} shmcollab"), child.id() as i32);
    watch_stopping();
    let err = child.stderr.take().map(|mut e| {
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = std::io::Read::read_to_string(&mut e, &mut s);
            s
        })
    });
    let mut out = String::new();
    if let Some(mut o) = child.stdout.take() {
        std::io::Read::read_to_string(&mut o, &mut out)?;
    }
    let status = child.wait()?;
    watch_end();
    let err = err.and_then(|h| h.join().ok()).unwrap_or_default();
    let key = format!("\"bench\":\"{bench}\"");
    let line = out
        .lines()
        .find(|l| l.contains(&key))
        .filter(|_| status.success())
        .ok_or_else(|| format!("{name} exited {status} without the {bench} line\n{out}\n{err}"))?;
    let get = |k: &str| json_num(line, k).ok_or_else(|| format!("no {k} in {line}"));
    Ok(LatRow {
        bench: bench.clone(),
        system: "shmcollab".into(),
        p50_ns: get("p50_ns")?,
        p99_ns: get("p99_ns")?,
        p999_ns: get("p999_ns")?,
        max_ns: get("max_ns")?,
        cpu_ns_per_rtt: json_num(line, "cpu_ns_per_rtt"),
        rtts: iters as u64,
        interval_us,
        late: json_num(line, "late").unwrap_or(0.0) as u64,
    })
}
