//! Shared by the benchmark harnesses: percentiles, the table and the JSON lines.
#![allow(dead_code)]

use std::time::Duration;

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
/// stream socket. The echo child is the calling binary re-executed with
/// `SHMC_BENCH_CHILD=sock_echo` and `SHMC_BENCH_ARG=<socket path>`; it must
/// call [`child_sock_echo`].
pub fn sock_rtt(bench: &str, size: usize, iters: usize) -> Row {
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
    // Length prefix and payload in one buffer, sent with one write.
    let mut msg = vec![0xabu8; 4 + size];
    msg[..4].copy_from_slice(&(size as u32).to_le_bytes());
    let mut back = vec![0u8; size];
    let mut len = [0u8; 4];
    let warm = iters / 10;
    let mut samples = Vec::with_capacity(iters);
    for i in 0..warm + iters {
        let t = std::time::Instant::now();
        s.write_all(&msg).unwrap();
        s.read_exact(&mut len).unwrap();
        s.read_exact(&mut back).unwrap();
        if i >= warm {
            samples.push(t.elapsed().as_nanos() as u64);
        }
    }
    drop(s);
    let _ = child.wait();
    Row::latency(bench, "unix_socket", &mut samples)
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
