//! Every LP sends a small numbered message to every other LP's
//! sub-function every millisecond, counts what arrives from each, and
//! reports the counts (custom value `rx`: `slot:count,...`) every 100 ms:
//! the workload of the hostile-memory harness (`tests/e2e_hostile.rs`),
//! which checks that every link carries traffic again after an attack.
//! Runs until stopped (`shmcollab stop`, or the broadcast "stop").
//!
//! `mesh flood K M GO`: the workload of `cargo bench --bench scale`. Once
//! the file GO exists, sends M messages of 64 B to each of the K LPs after
//! this one (in sub-function order, wrapping), without blocking, while
//! taking in what the K before it send; exits 0 once all is sent and
//! received, after printing a JSON line: what it received, and when the
//! first and the last arrived (CLOCK_MONOTONIC µs).
//!
//! `mesh flood K M GO warm`: the same after a warm-up before GO: each LP
//! sends one 1-byte message to each of its K peers and waits for one from
//! each of the K before it, then prints `{"flood_warm":I}`. Once every LP
//! printed it, each pair has talked, so its rings are made and its direct
//! path is set up: the flood after GO is the steady state, without the
//! setup of 4 x 256 pairs at once inside the measured window.
//!
//! `mesh first GO`: the LPs pair up (sub-functions 2p and 2p+1); once GO
//! exists, and 20 ms more per pair before it (one pair at a time), the
//! first of each pair sends the second one message carrying the time it
//! was sent; the second prints how long it took as a JSON line. Nothing
//! went between them before: this is a pair's first message.
use shmcollab::runtime::{Lp, LpError, MessageKind};
use shmcollab::shm::registry::monotonic_us;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

fn main() -> Result<(), LpError> {
    let mut lp = Lp::connect()?;
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("flood") {
        let num = |i: usize| args.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(1);
        let go = args.get(4).cloned().unwrap_or_default();
        let warm = args.get(5).map(String::as_str) == Some("warm");
        let go = std::path::Path::new(&go);
        return flood(&mut lp, (num(2) as usize, num(3)), go, warm);
    }
    if args.get(1).map(String::as_str) == Some("first") {
        let go = args.get(2).cloned().unwrap_or_default();
        return first(&mut lp, std::path::Path::new(&go));
    }
    let me = lp.subfunctions().first().cloned().unwrap_or_default();
    let peers: Vec<String> = lp
        .all_subfunctions()
        .into_iter()
        .filter(|s| *s != me)
        .collect();
    lp.ready()?;
    let mut rx: BTreeMap<u32, u64> = BTreeMap::new();
    let mut n = 0u64;
    let (mut next_send, mut next_report) = (Instant::now(), Instant::now());
    loop {
        let now = Instant::now();
        if now >= next_send {
            n += 1;
            for p in &peers {
                // A full ring (a peer under attack) is not our failure.
                match lp.try_send(p, &n.to_le_bytes()) {
                    Ok(()) | Err(LpError::WouldBlock) => {}
                    Err(e) => eprintln!("mesh: send to {p}: {e}"),
                }
            }
            next_send = now + Duration::from_millis(1);
        }
        if now >= next_report {
            let counts: Vec<String> = rx.iter().map(|(s, c)| format!("{s}:{c}")).collect();
            if let Err(e) = lp.report("rx", &counts.join(",")) {
                eprintln!("mesh: report: {e}");
            }
            next_report = now + Duration::from_millis(100);
        }
        let wait = next_send
            .min(next_report)
            .saturating_duration_since(Instant::now());
        match lp.recv_timeout(wait) {
            Ok(Some(m)) if m.kind == MessageKind::Broadcast && m.payload == b"stop" => {
                return Ok(())
            }
            Ok(Some(m)) => *rx.entry(m.from).or_default() += 1,
            Ok(None) => {}
            // A ring the attack wrecked is reset by the library; what it
            // cannot mend is an error worth seeing, not an exit.
            Err(e) => eprintln!("mesh: receive: {e}"),
        }
    }
}

/// `mesh flood K M GO [warm]` (see the module doc).
fn flood(
    lp: &mut Lp,
    (k, m): (usize, u64),
    go: &std::path::Path,
    warm: bool,
) -> Result<(), LpError> {
    let all = lp.all_subfunctions();
    let me = lp.subfunctions().first().cloned().unwrap_or_default();
    let i = all.iter().position(|s| *s == me).unwrap_or(0);
    let k = k.min(all.len().saturating_sub(1));
    let to: Vec<String> = (1..=k).map(|j| all[(i + j) % all.len()].clone()).collect();
    lp.ready()?;
    if warm {
        warm_up(lp, &to)?;
        println!("{{\"flood_warm\":{i}}}");
    }
    while !go.exists() {
        std::thread::sleep(Duration::from_millis(1));
    }
    let want = k as u64 * m;
    let msg = [0x5au8; 64];
    let (mut sent, mut got) = (vec![0u64; k], 0u64);
    let (mut first, mut last) = (0u64, 0u64);
    while sent.iter().any(|&n| n < m) || got < want {
        let mut moved = false;
        for (n, dst) in sent.iter_mut().zip(&to) {
            while *n < m {
                match lp.try_send(dst, &msg) {
                    Ok(()) => *n += 1,
                    Err(LpError::WouldBlock) => break,
                    Err(e) => return Err(e),
                }
                moved = true;
                if *n % 64 == 0 {
                    break;
                }
            }
        }
        loop {
            let r = if moved {
                lp.try_recv()?
            } else {
                lp.recv_timeout(Duration::from_millis(1))?
            };
            let Some(msg) = r else { break };
            if msg.kind == MessageKind::Broadcast {
                continue;
            }
            let now = monotonic_us();
            if got == 0 {
                first = now;
            }
            last = now;
            got += 1;
            moved = true;
        }
    }
    println!("{{\"flood_lp\":{i},\"received\":{got},\"first_us\":{first},\"last_us\":{last}}}");
    Ok(())
}

/// One 1-byte message to each of `to`, then wait for one from each of as
/// many senders (the LPs before this one).
fn warm_up(lp: &mut Lp, to: &[String]) -> Result<(), LpError> {
    for dst in to {
        lp.send(dst, b"w")?;
    }
    let mut got = 0;
    while got < to.len() {
        if lp.recv()?.kind != MessageKind::Broadcast {
            got += 1;
        }
    }
    Ok(())
}

/// `mesh first GO` (see the module doc).
fn first(lp: &mut Lp, go: &std::path::Path) -> Result<(), LpError> {
    let all = lp.all_subfunctions();
    let me = lp.subfunctions().first().cloned().unwrap_or_default();
    let i = all.iter().position(|s| *s == me).unwrap_or(0);
    lp.ready()?;
    while !go.exists() {
        std::thread::sleep(Duration::from_millis(1));
    }
    if i % 2 == 0 {
        let Some(to) = all.get(i + 1) else {
            return Ok(());
        };
        std::thread::sleep(Duration::from_millis(20 * (i as u64 / 2)));
        lp.send(to, &monotonic_us().to_le_bytes())?;
        return Ok(());
    }
    loop {
        let m = lp.recv()?;
        if m.kind == MessageKind::Broadcast {
            continue;
        }
        let now = monotonic_us();
        let sent = m
            .payload
            .get(..8)
            .and_then(|b| b.try_into().ok())
            .map_or(now, u64::from_le_bytes);
        println!(
            "{{\"first_lp\":{i},\"first_message_us\":{}}}",
            now.saturating_sub(sent)
        );
        return Ok(());
    }
}
