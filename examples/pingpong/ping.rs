//! pingpong, the "ping" LP.
//!
//! `ping rtt N [SIZE]`: N request/reply round trips of SIZE bytes (64) to the
//! sub-function "pong"; prints p50 and p99.
//! `ping paced N INTERVAL_US [SIZE]`: N round trips, one every INTERVAL_US
//! on an absolute schedule (0: back to back), after N / 10 warm-up ones;
//! prints p50, p99, p99.9 and the CPU time of all the collaboration's
//! processes per round trip (see [`paced`]).
//! `ping stream N`: N numbered one-way messages to "pong" (8-byte sequence
//! numbers, paced), then an "end" request; prints what pong counted.
//! `ping flood N [SIZE]`: N one-way messages as fast as they go; prints msgs/s.
//! `ping wait FILE`: says ready, waits until FILE exists, then does 100
//! round trips (used by a test that tampers with the rings meanwhile).
//! `ping warm-wait N FILE`: N round trips first (the pair has talked: the
//! direct ring into pong exists, rings are made when a pair first talks),
//! then as `wait`.
//! `ping afterlife N FILE`: ends pong, then sends N messages to the
//! sub-function it hosted (they cannot be delivered: they must neither
//! block nor vanish uncounted), then waits until FILE exists.
use shmcollab::runtime::{Lp, LpError, Message};
use std::time::{Duration, Instant};

#[path = "pace.rs"]
mod pace;

fn main() -> Result<(), LpError> {
    let args: Vec<String> = std::env::args().collect();
    let mode = args.get(1).map(String::as_str).unwrap_or("rtt");
    let n: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(10_000);
    let size = || -> usize { args.get(3).and_then(|s| s.parse().ok()).unwrap_or(64) };
    let mut lp = Lp::connect()?;
    lp.ready()?;
    match mode {
        "wait" => {
            wait_for(args.get(2).expect("ping wait FILE"));
            rtt(&mut lp, 100, size())
        }
        "warm-wait" => {
            for _ in 0..n {
                lp.request("pong", &[0u8; 64], Duration::from_secs(60))?;
            }
            wait_for(args.get(3).expect("ping warm-wait N FILE"));
            rtt(&mut lp, 100, 64)
        }
        "afterlife" => afterlife(&mut lp, n, args.get(3).expect("ping afterlife N FILE")),
        "flood" => flood(&mut lp, n, size()),
        "stream" => stream(&mut lp, n),
        "paced" => {
            let us: u64 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(1000);
            let size: usize = args.get(4).and_then(|s| s.parse().ok()).unwrap_or(64);
            paced(&mut lp, n, us, size)
        }
        _ => rtt(&mut lp, n, size()),
    }
}

/// Sleeps until `file` exists.
fn wait_for(file: &str) {
    while !std::path::Path::new(file).exists() {
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// `ping afterlife N FILE`: ends pong, sends it `n` messages it can no
/// longer get, reports how many, and waits for `file`.
fn afterlife(lp: &mut Lp, n: u64, file: &str) -> Result<(), LpError> {
    lp.request("pong", b"end", Duration::from_secs(60))?;
    // Let pong's manager leave the registry.
    std::thread::sleep(Duration::from_millis(300));
    for i in 0..n {
        lp.send("pong", &i.to_le_bytes())?;
    }
    lp.report("sent_after_pong", &n.to_string())?;
    wait_for(file);
    Ok(())
}

/// `ping flood N [SIZE]`: `n` one-way messages of `size` bytes as fast as
/// they go; prints msgs/s (a line and a JSON line the e2e bench reads).
fn flood(lp: &mut Lp, n: u64, size: usize) -> Result<(), LpError> {
    let msg = vec![0x17u8; size];
    let t = Instant::now();
    for _ in 0..n {
        lp.send_buffered("pong", &msg)?;
    }
    let r = lp.request("pong", b"end", Duration::from_secs(120))?;
    let took = t.elapsed().as_secs_f64();
    let got: u64 = String::from_utf8_lossy(&r.payload).parse().unwrap_or(0);
    assert_eq!(got, n, "pong counted {got} of {n}");
    println!(
        "{n} one-way messages of {size} B through both managers: {:.2} M msgs/s",
        n as f64 / took / 1e6
    );
    println!(
        "{{\"bench\":\"lp_oneway_{size}\",\"system\":\"shmcollab\",\"msgs_per_s\":{:.0}}}",
        n as f64 / took
    );
    Ok(())
}

/// `ping stream N`: `n` numbered, paced one-way messages, then "end";
/// prints what pong counted.
fn stream(lp: &mut Lp, n: u64) -> Result<(), LpError> {
    for i in 0..n {
        lp.send("pong", &i.to_le_bytes())?;
        if i % 100 == 99 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    let r = lp.request("pong", b"end", Duration::from_secs(60))?;
    println!(
        "sent {n}, pong says: {}",
        String::from_utf8_lossy(&r.payload)
    );
    Ok(())
}

/// `ping rtt N [SIZE]`: `n` round trips of `size` bytes after `n / 10`
/// warm-up ones; prints p50 and p99 (a line and a JSON line the e2e bench
/// reads), then ends pong.
fn rtt(lp: &mut Lp, n: u64, size: usize) -> Result<(), LpError> {
    let msg = vec![0x42u8; size];
    let warm = (n / 10).max(1);
    let mut samples = Vec::with_capacity(n as usize);
    let mut r = Message::default();
    for i in 0..warm + n {
        let t = Instant::now();
        lp.request_into("pong", &msg, Duration::from_secs(10), &mut r)?;
        assert_eq!(r.payload.len(), size);
        if i >= warm {
            samples.push(t.elapsed().as_nanos() as u64);
        }
    }
    samples.sort_unstable();
    let p = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize] as f64 / 1000.0;
    println!(
        "{n} round trips of {size} B through both managers: p50 {:.1} µs, p99 {:.1} µs",
        p(0.5),
        p(0.99)
    );
    println!(
        "{{\"bench\":\"lp_rtt_{size}\",\"system\":\"shmcollab\",\"p50_ns\":{:.0},\"p99_ns\":{:.0}}}",
        p(0.5) * 1000.0,
        p(0.99) * 1000.0
    );
    let _ = lp.request("pong", b"end", Duration::from_secs(10))?;
    Ok(())
}

/// `ping paced N INTERVAL_US [SIZE]`: `n` round trips of `size` bytes, one
/// per `interval_us` on an absolute schedule ([`pace::Pacer`]: sleep until
/// the next slot; a late one goes at once, without a burst), after `n / 10`
/// warm-up ones on the same schedule; 0 is back to back. Each round trip is
/// timed from just before the request to the reply.
///
/// CPU: the collaboration is the supervisor (the parent of this LP's
/// manager) and every process below it (the managers and the LPs, found in
/// /proc). Their CPU time ([`pace::cpu_ns`]: utime + stime, to the ns) is
/// summed just before the first measured slot and after the last reply;
/// the difference over `n` is `cpu_ns_per_rtt`: everything the
/// collaboration spent, waiting between requests included.
///
/// Prints a line and a JSON line the e2e bench reads
/// (`{"bench":"lp_rtt_64_paced_1ms","system":"shmcollab",...}`), then ends
/// pong.
fn paced(lp: &mut Lp, n: u64, interval_us: u64, size: usize) -> Result<(), LpError> {
    let n = n.max(1);
    let msg = vec![0x42u8; size];
    let mut pacer = pace::Pacer::new(Duration::from_micros(interval_us));
    // The reply's buffer is reused (no allocation per round trip).
    let mut r = Message::default();
    let mut once = |lp: &mut Lp| -> Result<u64, LpError> {
        pacer.wait();
        let t = Instant::now();
        lp.request_into("pong", &msg, Duration::from_secs(10), &mut r)?;
        let ns = t.elapsed().as_nanos() as u64;
        assert_eq!(r.payload.len(), size);
        Ok(ns)
    };
    for _ in 0..(n / 10).max(1) {
        once(lp)?;
    }
    let pids = collaboration_pids();
    let cpu0 = pace::cpu_ns_sum(&pids);
    let wall = Instant::now();
    let mut samples = Vec::with_capacity(n as usize);
    for _ in 0..n {
        samples.push(once(lp)?);
    }
    let cpu1 = pace::cpu_ns_sum(&pids);
    let wall_s = wall.elapsed().as_secs_f64();
    let late = pacer.late();
    let s = pace::Summary::of(&mut samples);
    let bench = pace::bench_name(size, interval_us);
    let cpu = match (cpu0, cpu1) {
        (Some(a), Some(b)) if !pids.is_empty() => Some(b.saturating_sub(a) as f64 / n as f64),
        _ => None,
    };
    let us = |v: u64| v as f64 / 1000.0;
    println!(
        "{bench}: {n} round trips of {size} B, interval {interval_us} µs ({late} late): \
         p50 {:.1} µs, p99 {:.1} µs, p99.9 {:.1} µs, max {:.1} µs; CPU of {} processes {} per round trip",
        us(s.p50),
        us(s.p99),
        us(s.p999),
        us(s.max),
        pids.len(),
        cpu.map_or("unknown".into(), |c| format!("{:.1} µs", c / 1000.0)),
    );
    let cpu_field = cpu.map_or(String::new(), |c| format!(",\"cpu_ns_per_rtt\":{c:.0}"));
    println!(
        "{{\"bench\":\"{bench}\",\"system\":\"shmcollab\",\"p50_ns\":{},\"p99_ns\":{},\"p999_ns\":{},\"max_ns\":{}{cpu_field},\
         \"rtts\":{n},\"interval_us\":{interval_us},\"late\":{late},\"processes\":{},\"wall_s\":{wall_s:.3}}}",
        s.p50,
        s.p99,
        s.p999,
        s.max,
        pids.len()
    );
    let _ = lp.request("pong", b"end", Duration::from_secs(10))?;
    Ok(())
}

/// The pids of the collaboration this LP runs in: the supervisor (the
/// parent of our parent, the manager, if it is `shmcollab`) and all its
/// descendants, from /proc. Empty (so no CPU figure) if the tree is not
/// the expected one.
fn collaboration_pids() -> Vec<u32> {
    let stat = |pid: u32| -> Option<(String, u32)> {
        let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let (open, close) = (s.find('(')?, s.rfind(')')?);
        // After ")": state, then ppid.
        let ppid = s[close + 1..].split_whitespace().nth(1)?.parse().ok()?;
        Some((s[open + 1..close].to_owned(), ppid))
    };
    let Some(sup) = stat(std::process::id())
        .and_then(|(_, mgr)| stat(mgr))
        .map(|(_, sup)| sup)
    else {
        return Vec::new();
    };
    if !stat(sup).is_some_and(|(comm, _)| comm.starts_with("shmcollab")) {
        eprintln!("ping: the parent of my manager is not shmcollab: no CPU figure");
        return Vec::new();
    }
    let all: Vec<(u32, u32)> = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|p| Some((p, stat(p)?.1)))
        .collect();
    let mut pids = vec![sup];
    let mut i = 0;
    while i < pids.len() {
        let parent = pids[i];
        pids.extend(all.iter().filter(|&&(_, pp)| pp == parent).map(|&(p, _)| p));
        i += 1;
    }
    pids
}
