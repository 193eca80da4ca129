//! `cargo bench -p shmcollab-shm --bench ring`
//!
//! In one run, side by side:
//! * two-process round trip over a pair of rings (64 B, 1 KiB), default
//!   adaptive wait; the same over a Unix socketpair as baseline;
//! * one-way throughput to another process (64 B, 1 KiB; tags off and on);
//! * tag seal + open of one 64 B frame.
//!
//! The child side is this binary re-executed with `SHMC_BENCH_CHILD`.
//! `SHMC_BENCH_QUICK=1` shrinks the counts (smoke test).

#[path = "common.rs"]
mod common;

use common::Row;
use shmcollab_shm::auth::{link_key, Endpoint, MasterKey, Opener, Sealer};
use shmcollab_shm::frame::{FrameHeader, FRAME_HEADER_LEN};
use shmcollab_shm::ring::{create_ring, open_ring, Consumer, Producer};
use shmcollab_shm::segment::Session;
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

fn quick() -> bool {
    std::env::var_os("SHMC_BENCH_QUICK").is_some()
}

fn spawn_child(role: &str, arg: &str) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .env("SHMC_BENCH_CHILD", role)
        .env("SHMC_BENCH_ARG", arg)
        .spawn()
        .unwrap()
}

// ---- child roles ---------------------------------------------------------

/// Consume frames until an empty one; with tags, open each; answer "done".
fn child_sink(arg: &str) {
    let (dir, secure) = arg.split_once(',').unwrap();
    let s = Session::open(Path::new(dir)).unwrap();
    let mut rx = Consumer::attach(&open_ring(&s, "ping").unwrap()).unwrap();
    let mut tx = Producer::attach(&open_ring(&s, "pong").unwrap(), None).unwrap();
    let mut opener = Opener::new((secure != "0").then(bench_key));
    let mut out = Vec::with_capacity(4096);
    let mut n = 0u64;
    loop {
        let Some(f) = rx.peek().unwrap() else {
            rx.wait(None);
            continue;
        };
        if f.is_empty() {
            f.release();
            break;
        }
        if opener.secure() {
            f.copy_to(&mut out);
            let h = opener.open_copied(&mut out).expect("genuine frame");
            if h.kind == shmcollab_shm::frame::kind::BATCH {
                for e in shmcollab_shm::batch::entries(&out) {
                    std::hint::black_box(e.expect("good batch"));
                    n += 1;
                }
            } else {
                n += 1;
            }
        } else {
            f.copy_to(&mut out);
            std::hint::black_box(&out);
            n += 1;
        }
        f.release();
    }
    tx.send(&n.to_le_bytes()).unwrap();
}

/// A consumer with nothing to read: it must fall asleep.
fn child_idle(dir: &Path) {
    let s = Session::open(dir).unwrap();
    let mut rx = Consumer::attach(&open_ring(&s, "ping").unwrap()).unwrap();
    let f = rx.recv_timeout(None).unwrap();
    assert_eq!(f.as_deref(), Some(&b"bye"[..]));
}

/// CPU time (user + system) of `pid` in clock ticks, from /proc/<pid>/stat.
pub fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let Some(i) = stat.rfind(')') else { return 0 };
    let f: Vec<&str> = stat[i + 1..].split_whitespace().collect();
    // Fields 14 and 15 (utime, stime) are at 11 and 12 after the ')'.
    f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
        + f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
}

fn idle_cpu(secs: u64) -> (String, f64) {
    let s = Session::create(&format!("bench-idle-{}", std::process::id())).unwrap();
    let mut tx = Producer::attach(&create_ring(&s, "ping", 4096).unwrap(), None).unwrap();
    let mut child = spawn_child("idle", s.dir().to_str().unwrap());
    // Let it start and settle (spin phase, then sleep).
    std::thread::sleep(Duration::from_millis(200));
    let t0 = cpu_ticks(child.id());
    let w = Instant::now();
    std::thread::sleep(Duration::from_secs(secs));
    let t1 = cpu_ticks(child.id());
    let wall = w.elapsed().as_secs_f64();
    tx.send(b"bye").unwrap();
    child.wait().unwrap();
    let hz = rustix::param::clock_ticks_per_second() as f64;
    let pct = (t1 - t0) as f64 / hz / wall * 100.0;
    (format!("{{\"bench\":\"idle_consumer_cpu\",\"system\":\"shmcollab\",\"cpu_percent\":{pct:.3},\"seconds\":{wall:.1}}}"), pct)
}

fn bench_key() -> shmcollab_shm::auth::LinkKey {
    let m = MasterKey::from_bytes([7; 32]);
    link_key(
        &m,
        1,
        Endpoint {
            id: 1,
            generation: 0,
        },
        Endpoint {
            id: 2,
            generation: 0,
        },
    )
}

// ---- measurements --------------------------------------------------------

fn ring_rtt(size: usize, iters: usize) -> Row {
    let s = Session::create(&format!("bench-rtt-{}", std::process::id())).unwrap();
    let mut tx = Producer::attach(&create_ring(&s, "ping", 1 << 16).unwrap(), None).unwrap();
    let mut rx = Consumer::attach(&create_ring(&s, "pong", 1 << 16).unwrap()).unwrap();
    let mut child = spawn_child("ring_echo", s.dir().to_str().unwrap());
    let mut samples = common::ring_rtt_samples(&mut tx, &mut rx, size, iters);
    tx.send(&[]).unwrap();
    child.wait().unwrap();
    Row::latency(&format!("rtt_{}", label(size)), "shmcollab", &mut samples)
}

/// One-way with tags where each frame carries a batch of `per` messages
/// under one tag (how the runtime's links send when messages queue up).
fn one_way_batched(size: usize, per: usize, n: u64) -> Row {
    use shmcollab_shm::batch::{self, Entry};
    let s = Session::create(&format!("bench-owb-{}", std::process::id())).unwrap();
    let mut tx = Producer::attach(&create_ring(&s, "ping", 1 << 20).unwrap(), None).unwrap();
    let mut rx = Consumer::attach(&create_ring(&s, "pong", 4096).unwrap()).unwrap();
    let mut child = spawn_child("sink", &format!("{},2", s.dir().display()));
    let mut sealer = Sealer::new(Some(bench_key()));
    let payload = vec![0x5au8; size];
    let entry = Entry {
        kind: 1,
        ..Default::default()
    };
    let mut body = Vec::with_capacity(per * (size + batch::ENTRY_HEADER_LEN));
    let t = Instant::now();
    let mut sent = 0u64;
    while sent < n {
        body.clear();
        let k = (per as u64).min(n - sent);
        for _ in 0..k {
            batch::push(&mut body, &entry, &payload);
        }
        let hdr = FrameHeader {
            kind: shmcollab_shm::frame::kind::BATCH,
            payload_len: body.len() as u32,
            ..Default::default()
        };
        let mut slot = tx.reserve_wait(sealer.frame_len(body.len()), None).unwrap();
        let buf = slot.as_mut_slice();
        buf[FRAME_HEADER_LEN..FRAME_HEADER_LEN + body.len()].copy_from_slice(&body);
        sealer.seal_in_place(hdr, buf).unwrap();
        slot.commit();
        tx.flush();
        sent += k;
    }
    tx.send(&[]).unwrap();
    let got = rx.recv_timeout(None).unwrap().unwrap();
    let took = t.elapsed();
    assert_eq!(u64::from_le_bytes(got[..8].try_into().unwrap()), n);
    child.wait().unwrap();
    Row::throughput(
        &format!("oneway_{}_tags_batch{per}", label(size)),
        "shmcollab",
        n,
        took,
    )
}

fn one_way(size: usize, secure: bool, n: u64) -> Row {
    let s = Session::create(&format!("bench-ow-{}", std::process::id())).unwrap();
    let mut tx = Producer::attach(&create_ring(&s, "ping", 1 << 20).unwrap(), None).unwrap();
    let mut rx = Consumer::attach(&create_ring(&s, "pong", 4096).unwrap()).unwrap();
    let arg = format!("{},{}", s.dir().display(), if secure { 1 } else { 0 });
    let mut child = spawn_child("sink", &arg);
    let mut sealer = Sealer::new(secure.then(bench_key));
    let payload = vec![0x5au8; size];
    let flen = if secure { sealer.frame_len(size) } else { size };
    let hdr = FrameHeader {
        kind: 1,
        payload_len: size as u32,
        ..Default::default()
    };
    const BATCH: u64 = 64;
    let t = Instant::now();
    let mut sent = 0u64;
    while sent < n {
        let mut slot = tx.reserve_wait(flen, None).unwrap();
        if secure {
            let buf = slot.as_mut_slice();
            buf[FRAME_HEADER_LEN..FRAME_HEADER_LEN + size].copy_from_slice(&payload);
            sealer.seal_in_place(hdr, buf).unwrap();
        } else {
            slot.copy_from(&payload);
        }
        slot.commit();
        sent += 1;
        if sent.is_multiple_of(BATCH) {
            tx.flush();
        }
    }
    tx.send(&[]).unwrap();
    let got = rx.recv_timeout(None).unwrap().unwrap();
    let took = t.elapsed();
    assert_eq!(u64::from_le_bytes(got[..8].try_into().unwrap()), n);
    child.wait().unwrap();
    let name = format!(
        "oneway_{}_{}",
        label(size),
        if secure { "tags" } else { "notags" }
    );
    Row::throughput(&name, "shmcollab", n, took)
}

fn tag_cost(iters: usize) -> Row {
    let mut sealer = Sealer::new(Some(bench_key()));
    let mut opener = Opener::new(Some(bench_key()));
    let hdr = FrameHeader {
        kind: 1,
        payload_len: 64,
        ..Default::default()
    };
    let mut buf = vec![0u8; sealer.frame_len(64)];
    let mut out = Vec::with_capacity(256);
    let payload = [0x11u8; 64];
    // Time batches of 100 so the clock's own cost does not dominate.
    let mut samples = Vec::with_capacity(iters / 100);
    for _ in 0..iters / 100 {
        let t = Instant::now();
        for _ in 0..100 {
            sealer.seal(hdr, &payload, &mut buf).unwrap();
            opener.open(&buf, &mut out).unwrap();
        }
        samples.push(t.elapsed().as_nanos() as u64 / 100);
    }
    Row::latency("tag_seal_open_64", "aegis128l", &mut samples)
}

/// Seal + open per message when 32 messages of 64 B share one tag (a
/// batch frame, as the runtime's links send when messages queue up).
fn tag_cost_batched(iters: usize) -> Row {
    use shmcollab_shm::batch::{self, Entry};
    const PER: usize = 32;
    let mut sealer = Sealer::new(Some(bench_key()));
    let mut opener = Opener::new(Some(bench_key()));
    let payload = [0x11u8; 64];
    let entry = Entry {
        kind: 1,
        ..Default::default()
    };
    let mut body = Vec::new();
    for _ in 0..PER {
        batch::push(&mut body, &entry, &payload);
    }
    let hdr = FrameHeader {
        kind: shmcollab_shm::frame::kind::BATCH,
        payload_len: body.len() as u32,
        ..Default::default()
    };
    let mut buf = vec![0u8; sealer.frame_len(body.len())];
    let mut out = Vec::with_capacity(buf.len());
    let mut samples = Vec::with_capacity(iters / PER / 10);
    for _ in 0..iters / PER / 10 {
        let t = Instant::now();
        for _ in 0..10 {
            sealer.seal(hdr, &body, &mut buf).unwrap();
            opener.open(&buf, &mut out).unwrap();
            for e in batch::entries(&out) {
                std::hint::black_box(e.unwrap());
            }
        }
        samples.push(t.elapsed().as_nanos() as u64 / (10 * PER as u64));
    }
    Row::latency("tag_seal_open_64_batch32", "aegis128l", &mut samples)
}

fn label(size: usize) -> String {
    if size >= 1024 {
        format!("{}k", size / 1024)
    } else {
        size.to_string()
    }
}

fn main() {
    if let Ok(role) = std::env::var("SHMC_BENCH_CHILD") {
        let arg = std::env::var("SHMC_BENCH_ARG").unwrap();
        match role.as_str() {
            "ring_echo" => common::child_ring_echo(Path::new(&arg)),
            "sock_echo" => common::child_sock_echo(Path::new(&arg)),
            "sink" => child_sink(&arg),
            "idle" => child_idle(Path::new(&arg)),
            _ => panic!("unknown role {role}"),
        }
        return;
    }
    // cargo bench passes --bench; nothing else to parse.
    let q = quick();
    let rtt_iters = if q { 2_000 } else { 200_000 };
    let sock_iters = if q { 1_000 } else { 50_000 };
    let n64 = if q { 100_000 } else { 20_000_000 };
    let n1k = if q { 20_000 } else { 2_000_000 };
    let mut rows = vec![
        ring_rtt(64, rtt_iters),
        common::sock_rtt("rtt_64", 64, sock_iters),
        ring_rtt(1024, rtt_iters),
        common::sock_rtt("rtt_1k", 1024, sock_iters),
        one_way(64, false, n64),
        one_way(64, true, n64 / 5),
        one_way_batched(64, 32, n64 / 2),
        one_way(1024, false, n1k),
        one_way(1024, true, n1k / 2),
    ];
    rows.push(tag_cost(if q { 10_000 } else { 1_000_000 }));
    rows.push(tag_cost_batched(if q { 32_000 } else { 3_200_000 }));
    common::print_table(&rows);
    let secs = if q { 1 } else { 10 };
    let (json, pct) = idle_cpu(secs);
    println!(
        "idle consumer over {secs} s: {pct:.3}% of one core (utime+stime from /proc/<pid>/stat)"
    );
    println!("{json}");
}
