//! Test LP for back-pressure (issue 11 item 6), one program in four roles:
//!
//! - `sink`: hosts `sink`, reads nothing until `teller.done` or
//!   `teller.failed` appears in its working directory, then reads what came
//!   and exits 0.
//! - `flood`: sends 16 KiB messages to `sink` until a send has waited 2 s
//!   (every queue on the way is full), writes `flood.full` (a message would
//!   wait behind the flood in its own ring), then waits for the teller's
//!   file and exits 0.
//! - `teller`: once `flood.full` appears, runs 20 transactions on `sink`'s state (served by
//!   the sink's manager, behind whose LP the flood waits); writes
//!   `teller.done` and prints `teller: 20 transactions` if they all
//!   committed, else `teller.failed` and exits 1.
//! - `selfish`: sends 16 KiB messages to the sub-function it hosts itself
//!   without reading them; prints how much went before a send waited 2 s
//!   and exits 0, or exits 1 if 256 MiB went without one (its manager
//!   queued them all: no bound).
//! - `lastwords`: once `go` appears, sends [`LAST`] 16 KiB messages to
//!   `late`, prints `lastwords: N messages sent`, writes `lastwords.sent`
//!   and exits 0 (its last words wait in its manager's queues).
//! - `late`: reads until it has [`LAST`] messages (a hang guard of 20 s
//!   without one), prints `late: got N of LAST`, exits 0 if it got all.
use shmcollab::runtime::{Lp, LpError};
use std::path::Path;
use std::time::{Duration, Instant};

const MSG: usize = 16 << 10;
const WAIT: Duration = Duration::from_secs(2);

fn main() {
    let role = std::env::args().nth(1).unwrap_or_default();
    let mut lp = Lp::connect().expect("connect");
    lp.ready().expect("ready");
    let code = match role.as_str() {
        "sink" => sink(&mut lp),
        "flood" => flood(&mut lp),
        "teller" => teller(&mut lp),
        "selfish" => selfish(&mut lp),
        "lastwords" => lastwords(&mut lp),
        "late" => late(&mut lp),
        other => {
            eprintln!("backpressure: unknown role {other:?}");
            2
        }
    };
    std::process::exit(code);
}

/// Wait (a hang guard of 120 s) until one of `files` exists.
fn appears(files: &[&str]) -> bool {
    let until = Instant::now() + Duration::from_secs(120);
    while Instant::now() < until {
        if files.iter().any(|f| Path::new(f).exists()) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

fn teller_finished() -> bool {
    appears(&["teller.done", "teller.failed"])
}

fn sink(lp: &mut Lp) -> i32 {
    if !teller_finished() {
        eprintln!("sink: the teller never finished");
        return 1;
    }
    let mut n = 0u64;
    while let Ok(Some(_)) = lp.recv_timeout(Duration::from_millis(500)) {
        n += 1;
    }
    println!("sink: read {n} messages at the end");
    0
}

fn flood(lp: &mut Lp) -> i32 {
    let msg = vec![7u8; MSG];
    let mut sent = 0usize;
    loop {
        match lp.send_timeout("sink", &msg, WAIT) {
            Ok(()) => sent += MSG,
            Err(LpError::WouldBlock) => break,
            Err(e) => {
                eprintln!("flood: {e}");
                return 1;
            }
        }
    }
    println!(
        "flood: {} KiB sent before a send waited {WAIT:?}",
        sent >> 10
    );
    std::fs::write("flood.full", b"").expect("file");
    i32::from(!teller_finished())
}

fn teller(lp: &mut Lp) -> i32 {
    if !appears(&["flood.full"]) {
        eprintln!("teller: the flood never filled its queues");
        return 1;
    }
    let mut done = 0;
    for i in 0..20u32 {
        let r = lp.transaction(|t| {
            let v = t.get("sink", b"n")?.map_or(0, |v| v.len());
            t.put("sink", b"n", &vec![1u8; v + 1])?;
            t.put("sink", format!("k{i}").as_bytes(), b"v")
        });
        match r {
            Ok(()) => done += 1,
            Err(e) => {
                eprintln!("teller: transaction {i} failed: {e}");
                break;
            }
        }
    }
    let ok = done == 20;
    std::fs::write(if ok { "teller.done" } else { "teller.failed" }, b"").expect("file");
    println!("teller: {done} transactions");
    i32::from(!ok)
}

fn selfish(lp: &mut Lp) -> i32 {
    let me = lp.subfunctions()[0].clone();
    let msg = vec![3u8; MSG];
    let mut sent = 0usize;
    while sent < 256 << 20 {
        match lp.send_timeout(&me, &msg, WAIT) {
            Ok(()) => sent += MSG,
            Err(LpError::WouldBlock) => {
                println!("selfish: held back after {} KiB", sent >> 10);
                return 0;
            }
            Err(e) => {
                eprintln!("selfish: {e}");
                return 1;
            }
        }
    }
    println!("selfish: 256 MiB sent to itself and never held back");
    1
}

/// Messages `lastwords` sends `late`: 2 MiB, more than the rings on the way
/// hold, less than `lastwords`'s manager queues before it holds it back.
const LAST: usize = 128;

fn lastwords(lp: &mut Lp) -> i32 {
    if !appears(&["go"]) {
        eprintln!("lastwords: no go");
        return 1;
    }
    let msg = vec![5u8; MSG];
    for i in 0..LAST {
        // A hang guard: every message fits in the queues on the way.
        if let Err(e) = lp.send_timeout("late", &msg, Duration::from_secs(60)) {
            eprintln!("lastwords: message {i}: {e}");
            return 1;
        }
    }
    println!("lastwords: {LAST} messages sent");
    std::fs::write("lastwords.sent", b"").expect("file");
    0
}

fn late(lp: &mut Lp) -> i32 {
    let mut n = 0;
    while n < LAST {
        match lp.recv_timeout(Duration::from_secs(20)) {
            Ok(Some(_)) => n += 1,
            Ok(None) => break,
            Err(e) => {
                eprintln!("late: {e}");
                break;
            }
        }
    }
    println!("late: got {n} of {LAST}");
    i32::from(n != LAST)
}
