//! `cargo bench --bench polyglot`: the LP round trip of `examples/pingpong`
//! from Rust, from C (the C ABI) and from Python (ctypes over it), side by
//! side in one run.
//!
//! Each round runs the three pairs one after the other (Rust, C, Python;
//! alternating rounds, since this machine's noise comes and goes within
//! seconds), each a real collaboration launched by the `shmcollab` binary:
//! ping and pong in the same language, `ping rtt N 64` (N/10 warm-up round
//! trips first), tags on. The rows are the medians of the rounds' p50 and
//! p99 (`system` `shmcollab`, `shmcollab_c`, `shmcollab_python`); the ratio
//! C/Rust is the median of the rounds' ratios (target <= 1.1).
//!
//! Before measuring it builds what it runs: `cargo build --release
//! --examples --bins` (the Rust pair, `shmcollab`), `cargo build --release
//! -p shmcollab-c` (libshmcollab.a/.so), and the C pair with `cc -O2`
//! linked statically (the flags of `include/shmcollab.pc`). Without `cc`
//! the C rows are left out; without `python3` the Python rows. Plumbing
//! (watchdog, configs, cleanup) is the e2e bench's (`benches/e2e/`).
//! `SHMC_BENCH_QUICK=1` shrinks the counts (smoke test).

#[path = "../shm/benches/common.rs"]
mod common;
#[allow(dead_code)]
#[path = "e2e/harness.rs"]
mod harness;

use common::Row;
use harness::{
    build_and_locate, fail, median, ping_json, quick, target_release, write_config, Bins, Launched,
    TempDir,
};
use std::path::{Path, PathBuf};
use std::process::Command;

const SIZE: usize = 64;

/// A ping/pong pair: the commands of pong and of ping (without its
/// arguments).
struct Pair {
    system: &'static str,
    /// In the collaboration's name.
    tag: &'static str,
    pong: Vec<String>,
    ping: Vec<String>,
}

fn have(cmd: &str) -> bool {
    Command::new(cmd)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn path(p: &Path) -> String {
    p.display().to_string()
}

/// Builds the C ABI and the C pair; their paths.
fn build_c(rel: &Path) -> (PathBuf, PathBuf) {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let st = Command::new(cargo)
        .args(["build", "--release", "-q", "-p", "shmcollab-c"])
        .current_dir(repo())
        .status()
        .unwrap_or_else(|e| fail(&format!("running cargo: {e}")));
    if !st.success() {
        fail("cargo build --release -p shmcollab-c failed");
    }
    let out = |p: &str| rel.join("examples").join(format!("pingpong-c-{p}"));
    for p in ["ping", "pong"] {
        let st = Command::new("cc")
            .args(["-O2", "-o"])
            .arg(out(p))
            .arg(repo().join(format!("examples/pingpong/{p}.c")))
            .arg(format!("-I{}", path(&repo().join("include"))))
            .arg(rel.join("libshmcollab.a"))
            .args(["-lgcc_s", "-lutil", "-lrt", "-lpthread", "-lm", "-ldl"])
            .status()
            .unwrap_or_else(|e| fail(&format!("running cc: {e}")));
        if !st.success() {
            fail(&format!("cc examples/pingpong/{p}.c failed"));
        }
    }
    (out("ping"), out("pong"))
}

fn pairs(bins: &Bins) -> Vec<Pair> {
    let mut v = vec![Pair {
        system: "shmcollab",
        tag: "rs",
        pong: vec![path(&bins.pong)],
        ping: vec![path(&bins.ping)],
    }];
    if have("cc") {
        let (ping, pong) = build_c(&target_release());
        v.push(Pair {
            system: "shmcollab_c",
            tag: "c",
            pong: vec![path(&pong)],
            ping: vec![path(&ping)],
        });
    } else {
        eprintln!("polyglot bench: no cc: the C pair is left out");
    }
    if have("python3") {
        let py = |f: &str| path(&repo().join("examples/pingpong").join(f));
        v.push(Pair {
            system: "shmcollab_python",
            tag: "py",
            pong: vec!["python3".into(), py("pong.py")],
            ping: vec!["python3".into(), py("ping.py")],
        });
    } else {
        eprintln!("polyglot bench: no python3: the Python pair is left out");
    }
    v
}

fn config(name: &str, pair: &Pair, iters: u64) -> String {
    let mut ping = pair.ping.clone();
    ping.extend(["rtt".into(), iters.to_string(), SIZE.to_string()]);
    format!(
        "name = \"{name}\"\n\n[[subfunction]]\nname = \"ping\"\n\n[[subfunction]]\nname = \"pong\"\n\n\
         [[process]]\nname = \"pong\"\ncommand = {pong:?}\nhosts = [\"pong\"]\nrestart = \"transient\"\n\n\
         [[process]]\nname = \"ping\"\ncommand = {ping:?}\nhosts = [\"ping\"]\nrestart = \"temporary\"\n",
        pong = pair.pong,
    )
}

/// One run of a pair: (p50, p99) in ns.
fn run(bins: &Bins, dir: &Path, pair: &Pair, iters: u64, round: usize) -> (f64, f64) {
    let name = format!("b{}{}{round}", std::process::id(), pair.tag);
    let cfg = write_config(
        dir,
        &format!("{}{round}.toml", pair.system),
        &config(&name, pair, iters),
    );
    let (code, out, err) = Launched::start(bins, &cfg, &name).finish();
    let bench = format!("lp_rtt_{SIZE}");
    let v = match ping_json(&out, &bench) {
        Some(v) if code == 0 && v["system"] == pair.system => v,
        _ => fail(&format!(
            "{name} ({}) exited {code} without its {bench} line\nstdout:\n{out}\nstderr:\n{err}",
            pair.system
        )),
    };
    let get = |k: &str| {
        v[k].as_f64()
            .unwrap_or_else(|| fail(&format!("no {k} in {v}")))
    };
    (get("p50_ns"), get("p99_ns"))
}

fn main() {
    let (iters, rounds) = if quick() { (2_000, 1) } else { (20_000, 5) };
    let bins = build_and_locate();
    let pairs = pairs(&bins);
    let dir = TempDir::new();
    // results[pair] = [(p50, p99) per round]
    let mut results: Vec<Vec<(f64, f64)>> = vec![Vec::new(); pairs.len()];
    for round in 0..rounds {
        let mut line = format!("polyglot bench: round {round}:");
        for (i, p) in pairs.iter().enumerate() {
            let (p50, p99) = run(&bins, &dir.0, p, iters, round);
            line += &format!(
                " {} p50 {:.2} µs p99 {:.2} µs;",
                p.system,
                p50 / 1e3,
                p99 / 1e3
            );
            results[i].push((p50, p99));
        }
        eprintln!("{line}");
    }
    drop(dir);
    let rows: Vec<Row> = pairs
        .iter()
        .zip(&results)
        .map(|(p, r)| Row {
            bench: format!("lp_rtt_{SIZE}"),
            system: p.system.into(),
            p50_ns: Some(median(&mut r.iter().map(|x| x.0).collect::<Vec<_>>())),
            p99_ns: Some(median(&mut r.iter().map(|x| x.1).collect::<Vec<_>>())),
            msgs_per_s: None,
        })
        .collect();
    common::print_table(&rows);
    let c = pairs.iter().position(|p| p.system == "shmcollab_c");
    if let Some(c) = c {
        let mut ratios: Vec<f64> = results[c]
            .iter()
            .zip(&results[0])
            .map(|(c, r)| c.0 / r.0)
            .collect();
        let all = ratios
            .iter()
            .map(|r| format!("{r:.3}"))
            .collect::<Vec<_>>()
            .join(",");
        let ratio = median(&mut ratios);
        println!(
            "{{\"bench\":\"lp_rtt_{SIZE}_c_vs_rust\",\"system\":\"shmcollab_c\",\"p50_ratio\":{ratio:.3},\"rounds\":[{all}]}}"
        );
        println!();
        println!(
            "lp_rtt_{SIZE} p50 C / Rust = {ratio:.3}, median of {rounds} rounds ({all})   (target <= 1.1: {})",
            if ratio <= 1.1 { "ok" } else { "MISSED" }
        );
    }
    if let Some(py) = pairs.iter().position(|p| p.system == "shmcollab_python") {
        let mut ratios: Vec<f64> = results[py]
            .iter()
            .zip(&results[0])
            .map(|(p, r)| p.0 / r.0)
            .collect();
        println!(
            "lp_rtt_{SIZE} p50 Python / Rust = {:.2} (reported, no target)",
            median(&mut ratios)
        );
    }
}
