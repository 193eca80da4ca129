//! pingpong, the "ping" LP.
//!
//! `ping rtt N [SIZE]`: N request/reply round trips of SIZE bytes (64) to the
//! sub-function "pong"; prints p50 and p99.
//! `ping stream N`: N numbered one-way messages to "pong" (8-byte sequence
//! numbers, paced), then an "end" request; prints what pong counted.
//! `ping flood N [SIZE]`: N one-way messages as fast as they go; prints msgs/s.
//! `ping wait FILE`: says ready, waits until FILE exists, then does 100
//! round trips (used by a test that tampers with the rings meanwhile).
//! `ping afterlife N FILE`: ends pong, then sends N messages to the
//! sub-function it hosted (they cannot be delivered: they must neither
//! block nor vanish uncounted), then waits until FILE exists.
use shmcollab::runtime::{Lp, LpError};
use std::time::{Duration, Instant};

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
        "afterlife" => afterlife(&mut lp, n, args.get(3).expect("ping afterlife N FILE")),
        "flood" => flood(&mut lp, n, size()),
        "stream" => stream(&mut lp, n),
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
    for i in 0..warm + n {
        let t = Instant::now();
        let r = lp.request("pong", &msg, Duration::from_secs(10))?;
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
