//! `cd benches/compare && cargo run --release`
//!
//! Two-process round trip of one message (64 B and 1 KiB), side by side:
//! * shmcollab: a pair of rings, default adaptive wait (mirrors
//!   `shm/benches/ring.rs`, `ring_rtt` / `child_ring_echo`);
//! * iceoryx2 0.10: two publish-subscribe services (`ping` parent→child,
//!   `pong` child→parent) with a fixed-size payload, both sides busy-polling
//!   `receive()`.
//!
//! `cargo run --release -- lat`: the round trip at every load, 64 B, back to
//! back and paced at one request per 100 µs, 1 ms and 10 ms (the pacing code
//! of `ping paced`, `examples/pingpong/pace.rs`), 3 alternating rounds,
//! medians, with p50 / p99 / p99.9 and the CPU time of all the processes
//! involved per round trip:
//! * `iceoryx2_blocking`: iceoryx2 0.10 publish-subscribe (`[u8; 64]`) plus
//!   an event service each way; the sender publishes, then notifies; the
//!   receiver sleeps in `Listener::blocking_wait` until notified;
//! * `shmcollab`: the LP pair of `examples/pingpong` through its managers,
//!   launched with the workspace's release `shmcollab` (`ping paced`), its
//!   CPU that of the supervisor, both managers and both LPs;
//! * `unix_socket_1cpu` / `unix_socket_2cpu`: the e2e bench's socket
//!   baseline pinned to one CPU / two, the better one (lower p50) as
//!   `unix_socket`.
//!
//! No argument runs both parts; `poll` only the first.
//!
//! The child side is this binary re-executed with `SHMC_COMPARE_CHILD`
//! (`SHMC_BENCH_CHILD=sock_echo` for the socket's echo child).
//! `SHMC_BENCH_QUICK=1` shrinks the counts (smoke test).
//!
//! iceoryx2 gets its own root directory and file prefix for this run (both
//! carry the pid), and whatever it leaves there or in `/dev/shm` under that
//! prefix is removed at the end. A watchdog kills the child and exits
//! non-zero if one measurement takes more than 60 s or the child dies early.

#[path = "../../../shm/benches/common.rs"]
mod common;
mod iox;
mod lp_pair;
mod watchdog;

use iox::*;
use lp_pair::*;
use watchdog::*;

use common::pace::{self, Pacer, Summary};
use common::{LatRow, Placement, Row};
use iceoryx2::port::listener::Listener;
use iceoryx2::port::notifier::Notifier;
use iceoryx2::port::publisher::Publisher;
use iceoryx2::port::subscriber::Subscriber;
use iceoryx2::prelude::{
    ipc, set_log_level, Config, FileName, LogLevel, Node, NodeBuilder, Path as IoxPath,
    SemanticString, SignalHandlingMode,
};
use iceoryx2::service::port_factory::event::PortFactory as EventFactory;
use iceoryx2::service::port_factory::publish_subscribe::PortFactory;
use shmcollab_shm::ring::{create_ring, Consumer, Producer};
use shmcollab_shm::segment::Session;
use std::error::Error;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

type Res<T> = Result<T, Box<dyn Error>>;

const ROLE_ENV: &str = "SHMC_COMPARE_CHILD";
const ARG_ENV: &str = "SHMC_COMPARE_ARG";
const RUN_LIMIT: Duration = Duration::from_secs(60);

fn quick() -> bool {
    std::env::var_os("SHMC_BENCH_QUICK").is_some()
}

fn label(size: usize) -> String {
    if size >= 1024 {
        format!("{}k", size / 1024)
    } else {
        size.to_string()
    }
}

// ---- shmcollab -----------------------------------------------------------

fn ring_rtt(size: usize, iters: usize) -> Row {
    let bench = format!("rtt_{}", label(size));
    let s = Session::create(&format!("compare-rtt-{}", std::process::id())).unwrap();
    watch()
        .lock()
        .unwrap()
        .cleanup_dirs
        .push(s.dir().to_path_buf());
    let mut tx = Producer::attach(&create_ring(&s, "ping", 1 << 16).unwrap(), None).unwrap();
    let mut rx = Consumer::attach(&create_ring(&s, "pong", 1 << 16).unwrap()).unwrap();
    let mut child = spawn_child(
        &format!("{bench} shmcollab"),
        "ring_echo",
        s.dir().to_str().unwrap(),
    );
    let mut samples = common::ring_rtt_samples(&mut tx, &mut rx, size, iters);
    watch_stopping();
    tx.send(&[]).unwrap();
    let status = child.finish().unwrap();
    assert!(status.success(), "shmcollab echo child failed: {status}");
    drop(child);
    let dir = s.dir().to_path_buf();
    drop((tx, rx, s));
    watch().lock().unwrap().cleanup_dirs.retain(|d| *d != dir);
    Row::latency(&bench, "shmcollab", &mut samples)
}

// ---- latency at every load -------------------------------------------------

/// The median of `v`.
fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

/// `cargo run --release -- lat`: see the module doc. Prints the table, the
/// JSON lines and the ratios.
fn lat_figures(env: &IoxEnv) -> Res<()> {
    let paces: [(u64, usize); 4] = if quick() {
        [(0, 2_000), (100, 300), (1_000, 50), (10_000, 10)]
    } else {
        [(0, 20_000), (100, 10_000), (1_000, 2_000), (10_000, 300)]
    };
    let rounds = if quick() { 1 } else { 3 };
    let lp = lp_bins();
    let dir = std::env::temp_dir().join(format!("shmc-compare-lp-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    {
        let mut w = watch().lock().unwrap();
        w.cleanup_dirs.push(dir.clone());
        w.shm_prefixes
            .push(format!("shmc.cmp{}lp", std::process::id()));
    }
    // got[pace] = [iceoryx2, shmcollab, socket 1 CPU, socket 2 CPUs] over rounds.
    let mut got: Vec<[Vec<LatRow>; 4]> = paces.iter().map(|_| Default::default()).collect();
    let us = |v: f64| v / 1e3;
    for round in 0..rounds {
        for (i, &(interval, n)) in paces.iter().enumerate() {
            let iox = iox_blocking_rtt::<64>(env, n, interval)?;
            let ours = match &lp {
                Some(b) => Some(lp_pair_rtt(b, &dir, n, interval)?),
                None => None,
            };
            let one = common::sock_rtt_lat(64, n, interval, Placement::OneCpu);
            let two = common::sock_rtt_lat(64, n, interval, Placement::TwoCpus);
            eprintln!(
                "compare: round {round}: {}: iceoryx2_blocking p50 {:.2} µs; shmcollab p50 {:.2} µs; socket 1 CPU {:.2} µs, 2 CPUs {:.2} µs",
                iox.bench,
                us(iox.p50_ns),
                ours.as_ref().map_or(f64::NAN, |r| us(r.p50_ns)),
                us(one.p50_ns),
                us(two.p50_ns)
            );
            got[i][0].push(iox);
            got[i][1].extend(ours);
            got[i][2].push(one);
            got[i][3].push(two);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    let mut rows = Vec::new();
    let mut verdicts = Vec::new();
    for [iox, ours, one, two] in &got {
        let iox_m = LatRow::median(iox, "iceoryx2_blocking");
        let (one_m, two_m) = (
            LatRow::median(one, Placement::OneCpu.system()),
            LatRow::median(two, Placement::TwoCpus.system()),
        );
        let mut sock = if one_m.p50_ns <= two_m.p50_ns {
            one_m.clone()
        } else {
            two_m.clone()
        };
        sock.system = "unix_socket".into();
        rows.push(iox_m.clone());
        if !ours.is_empty() {
            let ours_m = LatRow::median(ours, "shmcollab");
            // Ratios per round, then their median.
            let r50 = median(
                ours.iter()
                    .zip(iox)
                    .map(|(o, i)| o.p50_ns / i.p50_ns)
                    .collect(),
            );
            let r99 = median(
                ours.iter()
                    .zip(iox)
                    .map(|(o, i)| o.p99_ns / i.p99_ns)
                    .collect(),
            );
            let target = if iox_m.interval_us == 1_000 {
                format!(
                    "target <= 1.0: {}",
                    if r50 <= 1.0 { "ok" } else { "MISSED" }
                )
            } else {
                "reported".into()
            };
            verdicts.push(format!(
                "{} shmcollab / iceoryx2_blocking: p50 {r50:.3} ({target}), p99 {r99:.3}; \
                 p50 shmcollab {:.2} µs, iceoryx2_blocking {:.2} µs, unix_socket ({}) {:.2} µs; \
                 CPU per round trip {:.2} / {:.2} / {:.2} µs",
                iox_m.bench,
                us(ours_m.p50_ns),
                us(iox_m.p50_ns),
                if sock.p50_ns == one_m.p50_ns {
                    "1 CPU"
                } else {
                    "2 CPUs"
                },
                us(sock.p50_ns),
                us(ours_m.cpu_ns_per_rtt.unwrap_or(f64::NAN)),
                us(iox_m.cpu_ns_per_rtt.unwrap_or(f64::NAN)),
                us(sock.cpu_ns_per_rtt.unwrap_or(f64::NAN)),
            ));
            rows.push(ours_m);
        }
        rows.extend([sock, one_m, two_m]);
    }
    common::print_lat_table(&rows);
    println!();
    for v in verdicts {
        println!("{v}");
    }
    Ok(())
}

// ---- main ----------------------------------------------------------------

fn child_main(role: &str) {
    die_with_parent();
    let arg = std::env::var(ARG_ENV).unwrap();
    match role {
        "ring_echo" => common::child_ring_echo(Path::new(&arg)),
        "iox_echo" | "iox_blocking_echo" => {
            let (env, size) = IoxEnv::from_arg(&arg);
            let r = match (role, size) {
                ("iox_echo", 64) => child_iox_echo::<64>(&env),
                ("iox_echo", 1024) => child_iox_echo::<1024>(&env),
                (_, 64) => child_iox_blocking_echo::<64>(&env),
                _ => Err(format!("unsupported size {size}").into()),
            };
            if let Err(e) = r {
                eprintln!("compare: iceoryx2 echo child: {e}");
                std::process::exit(1);
            }
        }
        _ => panic!("unknown role {role}"),
    }
}

fn main() {
    if std::env::var("SHMC_BENCH_CHILD").as_deref() == Ok("sock_echo") {
        // The socket baseline's echo child (`common::sock_rtt_lat`).
        die_with_parent();
        let arg = std::env::var("SHMC_BENCH_ARG").unwrap();
        common::child_sock_echo(Path::new(&arg));
        return;
    }
    if let Ok(role) = std::env::var(ROLE_ENV) {
        child_main(&role);
        return;
    }
    let (poll, lat) = match std::env::args().nth(1).as_deref() {
        None => (true, true),
        Some("poll") => (true, false),
        Some("lat") => (false, true),
        Some(other) => {
            eprintln!("compare: unknown argument {other:?}; usage: shmcollab-compare [poll|lat]");
            std::process::exit(2);
        }
    };
    set_log_level(LogLevel::Warn);
    let iters = if quick() { 2_000 } else { 100_000 };
    let env = IoxEnv::new();
    {
        let mut w = watch().lock().unwrap();
        w.cleanup_dirs.push(PathBuf::from(&env.root));
        w.shm_prefixes.push(env.prefix.clone());
    }
    let run = || -> Res<()> {
        if poll {
            common::print_table(&[
                ring_rtt(64, iters),
                iox_rtt::<64>(&env, iters)?,
                ring_rtt(1024, iters),
                iox_rtt::<1024>(&env, iters)?,
            ]);
        }
        if lat {
            lat_figures(&env)?;
        }
        Ok(())
    };
    let r = run();
    env.cleanup();
    if let Err(e) = r {
        eprintln!("compare: {e}");
        std::process::exit(1);
    }
}
