//! Shared by the benchmark harnesses: percentiles, the table and the JSON
//! lines, the Unix socket baseline (back to back or paced, free or pinned)
//! and the ring round trip. Pacing, percentiles of latency rows and CPU time
//! come from `examples/pingpong/pace.rs`, the code `ping paced` uses.
#![allow(dead_code)]

use std::time::Duration;

#[path = "../../examples/pingpong/pace.rs"]
pub mod pace;

/// One measured row.
pub struct Row {
    pub bench: String,
    pub system: String,
    pub p50_ns: Option<f64>,
    pub p99_ns: Option<f64>,
    pub msgs_per_s: Option<f64>,
}

impl Row {
    pub fn latency(bench: &str, system: &str, samples: &mut [u64]) -> Row {
        samples.sort_unstable();
        let pick = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize] as f64;
        Row {
            bench: bench.into(),
            system: system.into(),
            p50_ns: Some(pick(0.50)),
            p99_ns: Some(pick(0.99)),
            msgs_per_s: None,
        }
    }

    pub fn throughput(bench: &str, system: &str, msgs: u64, took: Duration) -> Row {
        Row {
            bench: bench.into(),
            system: system.into(),
            p50_ns: None,
            p99_ns: None,
            msgs_per_s: Some(msgs as f64 / took.as_secs_f64()),
        }
    }

    /// `{"bench":..,"system":..,"p50_ns":..,"p99_ns":..,"msgs_per_s":..}`,
    /// fields that do not apply left out.
    pub fn json(&self) -> String {
        let mut s = format!(
            "{{\"bench\":\"{}\",\"system\":\"{}\"",
            self.bench, self.system
        );
        if let Some(v) = self.p50_ns {
            s += &format!(",\"p50_ns\":{v:.0}");
        }
        if let Some(v) = self.p99_ns {
            s += &format!(",\"p99_ns\":{v:.0}");
        }
        if let Some(v) = self.msgs_per_s {
            s += &format!(",\"msgs_per_s\":{v:.0}");
        }
        s + "}"
    }
}

pub fn print_table(rows: &[Row]) {
    println!();
    println!(
        "{:<22} {:<22} {:>12} {:>12} {:>14}",
        "bench", "system", "p50", "p99", "msgs/s"
    );
    for r in rows {
        let ns = |v: Option<f64>| match v {
            Some(v) if v >= 1000.0 => format!("{:.2} µs", v / 1000.0),
            Some(v) => format!("{v:.0} ns"),
            None => "-".into(),
        };
        let rate = match r.msgs_per_s {
            Some(v) => format!("{:.2} M", v / 1e6),
            None => "-".into(),
        };
        println!(
            "{:<22} {:<22} {:>12} {:>12} {:>14}",
            r.bench,
            r.system,
            ns(r.p50_ns),
            ns(r.p99_ns),
            rate
        );
    }
    println!();
    for r in rows {
        println!("{}", r.json());
    }
}

/// The child side of the Unix socket baseline: echo length-prefixed
/// messages until the socket closes.
pub fn child_sock_echo(path: &std::path::Path) {
    use std::io::{Read, Write};
    let mut s = std::os::unix::net::UnixStream::connect(path).expect("connect to the bench");
    let mut len = [0u8; 4];
    let mut buf = vec![0u8; 4 + (1 << 16)];
    loop {
        if s.read_exact(&mut len).is_err() {
            return;
        }
        let n = u32::from_le_bytes(len) as usize;
        buf[..4].copy_from_slice(&len);
        s.read_exact(&mut buf[4..4 + n]).unwrap();
        // One write per message, as any sane framing does: two would let
        // the reader wake up twice and make the baseline look slower.
        s.write_all(&buf[..4 + n]).unwrap();
    }
}

/// The baseline: `size`-byte round trips between two processes over a Unix
/// stream socket, back to back, the two processes where the kernel puts
/// them. The echo child is the calling binary re-executed with
/// `SHMC_BENCH_CHILD=sock_echo` and `SHMC_BENCH_ARG=<socket path>`; it must
/// call [`child_sock_echo`].
pub fn sock_rtt(bench: &str, size: usize, iters: usize) -> Row {
    let mut run = sock_run(size, iters, 0, Placement::Free);
    Row::latency(bench, Placement::Free.system(), &mut run.samples)
}

/// Where the two processes of a socket round trip run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placement {
    /// Where the kernel puts them.
    Free,
    /// Both on the first CPU this process may use (`sched_setaffinity`).
    OneCpu,
    /// The measuring thread on the first CPU it may use, the echo child on
    /// the second.
    TwoCpus,
}

impl Placement {
    /// The `system` of the row.
    pub fn system(self) -> &'static str {
        match self {
            Placement::Free => "unix_socket",
            Placement::OneCpu => "unix_socket_1cpu",
            Placement::TwoCpus => "unix_socket_2cpu",
        }
    }
}

/// One latency row: percentiles of round trips (ns), CPU per round trip.
#[derive(Clone, Debug)]
pub struct LatRow {
    pub bench: String,
    pub system: String,
    pub p50_ns: f64,
    pub p99_ns: f64,
    pub p999_ns: f64,
    pub max_ns: f64,
    /// CPU time (user + system) of all the processes of the system under
    /// test over the measured window, divided by the round trips.
    pub cpu_ns_per_rtt: Option<f64>,
    pub rtts: u64,
    pub interval_us: u64,
    /// Requests sent more than a tenth of an interval after their slot.
    pub late: u64,
}

impl LatRow {
    pub fn new(
        bench: &str,
        system: &str,
        s: &pace::Summary,
        cpu_ns_per_rtt: Option<f64>,
        interval_us: u64,
        late: u64,
    ) -> LatRow {
        LatRow {
            bench: bench.into(),
            system: system.into(),
            p50_ns: s.p50 as f64,
            p99_ns: s.p99 as f64,
            p999_ns: s.p999 as f64,
            max_ns: s.max as f64,
            cpu_ns_per_rtt,
            rtts: s.n as u64,
            interval_us,
            late,
        }
    }

    /// `{"bench":..,"system":..,"p50_ns":..,"p99_ns":..,"p999_ns":..,
    /// "max_ns":..,"cpu_ns_per_rtt":..,"rtts":..,"interval_us":..,"late":..}`
    /// (`cpu_ns_per_rtt` left out where not measured).
    pub fn json(&self) -> String {
        let cpu = self
            .cpu_ns_per_rtt
            .map_or(String::new(), |c| format!(",\"cpu_ns_per_rtt\":{c:.0}"));
        format!(
            "{{\"bench\":\"{}\",\"system\":\"{}\",\"p50_ns\":{:.0},\"p99_ns\":{:.0},\"p999_ns\":{:.0},\"max_ns\":{:.0}{cpu},\"rtts\":{},\"interval_us\":{},\"late\":{}}}",
            self.bench,
            self.system,
            self.p50_ns,
            self.p99_ns,
            self.p999_ns,
            self.max_ns,
            self.rtts,
            self.interval_us,
            self.late
        )
    }

    /// A row of `system` with the medians, field by field, of `rows` (all
    /// of one bench; `late` is the largest); the bench and counts of the
    /// first.
    pub fn median(rows: &[LatRow], system: &str) -> LatRow {
        let med = |f: &dyn Fn(&LatRow) -> Option<f64>| -> Option<f64> {
            let mut v: Vec<f64> = rows.iter().filter_map(f).collect();
            if v.is_empty() {
                return None;
            }
            v.sort_by(f64::total_cmp);
            let m = v.len() / 2;
            Some(if v.len() % 2 == 1 {
                v[m]
            } else {
                (v[m - 1] + v[m]) / 2.0
            })
        };
        LatRow {
            bench: rows[0].bench.clone(),
            system: system.into(),
            p50_ns: med(&|r| Some(r.p50_ns)).unwrap_or(f64::NAN),
            p99_ns: med(&|r| Some(r.p99_ns)).unwrap_or(f64::NAN),
            p999_ns: med(&|r| Some(r.p999_ns)).unwrap_or(f64::NAN),
            max_ns: med(&|r| Some(r.max_ns)).unwrap_or(f64::NAN),
            cpu_ns_per_rtt: med(&|r| r.cpu_ns_per_rtt),
            rtts: rows[0].rtts,
            interval_us: rows[0].interval_us,
            late: rows.iter().map(|r| r.late).max().unwrap_or(0),
        }
    }
}

/// The latency table (p50, p99, p99.9, CPU per round trip), then one JSON
/// line per row.
pub fn print_lat_table(rows: &[LatRow]) {
    let us = |v: f64| {
        if v.is_nan() {
            "-".to_string()
        } else {
            format!("{:.2} µs", v / 1000.0)
        }
    };
    println!();
    println!(
        "{:<24} {:<22} {:>11} {:>11} {:>11} {:>13} {:>7}",
        "bench", "system", "p50", "p99", "p99.9", "cpu/rtt", "late"
    );
    for r in rows {
        println!(
            "{:<24} {:<22} {:>11} {:>11} {:>11} {:>13} {:>7}",
            r.bench,
            r.system,
            us(r.p50_ns),
            us(r.p99_ns),
            us(r.p999_ns),
            r.cpu_ns_per_rtt.map_or("-".into(), us),
            r.late
        );
    }
    println!();
    for r in rows {
        println!("{}", r.json());
    }
}

/// The CPUs the calling thread may run on.
pub fn allowed_cpus() -> Vec<usize> {
    // SAFETY: a zeroed cpu_set_t is an empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid out-buffer of the size passed.
    let r = unsafe { libc::sched_getaffinity(0, std::mem::size_of_val(&set), &mut set) };
    if r != 0 {
        return Vec::new();
    }
    (0..libc::CPU_SETSIZE as usize)
        // SAFETY: `i` is below CPU_SETSIZE.
        .filter(|&i| unsafe { libc::CPU_ISSET(i, &set) })
        .collect()
}

/// Pins `pid` (0: the calling thread) to `cpus`; false if the kernel
/// refused.
pub fn pin(pid: u32, cpus: &[usize]) -> bool {
    // SAFETY: a zeroed cpu_set_t is an empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for &c in cpus {
        // SAFETY: CPU_SET bounds-checks `c` against the set's size.
        unsafe { libc::CPU_SET(c, &mut set) };
    }
    // SAFETY: `set` is a valid cpu_set_t of the size passed.
    unsafe { libc::sched_setaffinity(pid as libc::pid_t, std::mem::size_of_val(&set), &set) == 0 }
}

/// The Unix socket baseline as a [`LatRow`]: `iters` round trips of `size`
/// bytes (after `iters / 10` warm-up ones), one per `interval_us` on the
/// schedule of [`pace::Pacer`] (0: back to back), the two processes placed
/// as `placement` says; the CPU time of both processes over the measured
/// window per round trip. The bench name is that of the LP round trip at
/// the same pace (`lp_rtt_64_paced_1ms`), the system that of the placement.
pub fn sock_rtt_lat(size: usize, iters: usize, interval_us: u64, placement: Placement) -> LatRow {
    let mut run = sock_run(size, iters, interval_us, placement);
    let s = pace::Summary::of(&mut run.samples);
    LatRow::new(
        &pace::bench_name(size, interval_us),
        placement.system(),
        &s,
        run.cpu_ns_per_rtt,
        interval_us,
        run.late,
    )
}

/// What one socket run measured.
struct SockRun {
    samples: Vec<u64>,
    cpu_ns_per_rtt: Option<f64>,
    late: u64,
}

/// The socket round trip (see [`sock_rtt_lat`]). The CPU time is that of
/// this whole process (all its threads; the other threads of a bench are
/// idle then) and of the echo child.
fn sock_run(size: usize, iters: usize, interval_us: u64, placement: Placement) -> SockRun {
    use std::io::{Read, Write};
    let path = std::env::temp_dir().join(format!("shmc-bench-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let l = std::os::unix::net::UnixListener::bind(&path).expect("bind the bench socket");
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .env("SHMC_BENCH_CHILD", "sock_echo")
        .env("SHMC_BENCH_ARG", &path)
        .spawn()
        .expect("spawn the echo child");
    let (mut s, _) = l.accept().unwrap();
    let _ = std::fs::remove_file(&path);
    let mine = allowed_cpus();
    let pinned = match (placement, mine.as_slice()) {
        (Placement::Free, _) => true,
        (Placement::OneCpu, [a, ..]) => pin(0, &[*a]) && pin(child.id(), &[*a]),
        (Placement::TwoCpus, [a, b, ..]) => pin(0, &[*a]) && pin(child.id(), &[*b]),
        _ => false,
    };
    if !pinned {
        eprintln!(
            "socket baseline: could not place the processes as {placement:?} (CPUs {mine:?}); measured where they are"
        );
    }
    // Length prefix and payload in one buffer, sent with one write.
    let mut msg = vec![0xabu8; 4 + size];
    msg[..4].copy_from_slice(&(size as u32).to_le_bytes());
    let mut back = vec![0u8; size];
    let mut len = [0u8; 4];
    let mut pacer = pace::Pacer::new(Duration::from_micros(interval_us));
    let mut once = |s: &mut std::os::unix::net::UnixStream| -> u64 {
        pacer.wait();
        let t = std::time::Instant::now();
        s.write_all(&msg).unwrap();
        s.read_exact(&mut len).unwrap();
        s.read_exact(&mut back).unwrap();
        t.elapsed().as_nanos() as u64
    };
    for _ in 0..(iters / 10).max(1) {
        once(&mut s);
    }
    let pids = [std::process::id(), child.id()];
    let cpu0 = pace::cpu_ns_sum(&pids);
    let samples: Vec<u64> = (0..iters.max(1)).map(|_| once(&mut s)).collect();
    let cpu1 = pace::cpu_ns_sum(&pids);
    let late = pacer.late();
    drop(s);
    let _ = child.wait();
    if !mine.is_empty() {
        pin(0, &mine);
    }
    let cpu_ns_per_rtt = match (cpu0, cpu1) {
        (Some(a), Some(b)) => Some(b.saturating_sub(a) as f64 / samples.len() as f64),
        _ => None,
    };
    SockRun {
        samples,
        cpu_ns_per_rtt,
        late,
    }
}

/// The child side of the ring round trip: attach to rings "ping" (in) and
/// "pong" (out) of the session in `dir` and echo every frame until an
/// empty one.
pub fn child_ring_echo(dir: &std::path::Path) {
    use shmcollab_shm::ring::{open_ring, Consumer, Producer};
    let s = shmcollab_shm::segment::Session::open(dir).unwrap();
    let mut rx = Consumer::attach(&open_ring(&s, "ping").unwrap()).unwrap();
    let mut tx = Producer::attach(&open_ring(&s, "pong").unwrap(), None).unwrap();
    let mut buf = Vec::new();
    loop {
        rx.wait(None);
        let Some(f) = rx.peek().unwrap() else {
            continue;
        };
        if f.is_empty() {
            return;
        }
        f.copy_to(&mut buf);
        let mut slot = tx.reserve_wait(f.len(), None).unwrap();
        slot.copy_from(&buf);
        slot.commit();
        f.release();
        tx.flush();
    }
}

/// Time `iters` round trips of `size` bytes (after a 10% warm-up) through a
/// pair of rings whose other ends run [`child_ring_echo`]; nanoseconds each.
pub fn ring_rtt_samples(
    tx: &mut shmcollab_shm::ring::Producer,
    rx: &mut shmcollab_shm::ring::Consumer,
    size: usize,
    iters: usize,
) -> Vec<u64> {
    let msg = vec![0xabu8; size];
    let warm = iters / 10;
    let mut samples = Vec::with_capacity(iters);
    for i in 0..warm + iters {
        let t = std::time::Instant::now();
        tx.send(&msg).unwrap();
        loop {
            if let Some(f) = rx.peek().unwrap() {
                assert_eq!(f.len(), size);
                f.release();
                break;
            }
            rx.wait(None);
        }
        if i >= warm {
            samples.push(t.elapsed().as_nanos() as u64);
        }
    }
    samples
}
