//! Test LP for requests across real processes (`tests/e2e_requests.rs`),
//! two roles:
//!
//! - `slow`: hosts `slow`; answers every request after 300 ms (longer than
//!   the first sleep of a compact requester, which ends within 100 ms:
//!   `Doorbell::publish_then_wait`), except those whose payload is
//!   `silent`; exits 0 on the broadcast `done`.
//! - `asker`: five times, asks `slow` with a 20 s timeout (the late reply
//!   must come), then with `silent` and a 500 ms timeout (it must time out,
//!   not before 500 ms); prints `asker: ok`, broadcasts `done` and exits 0,
//!   or prints what went wrong and exits 1.
use shmcollab::runtime::{Lp, LpError, MessageKind};
use std::time::{Duration, Instant};

fn main() {
    let role = std::env::args().nth(1).unwrap_or_default();
    let mut lp = Lp::connect().expect("connect");
    lp.ready().expect("ready");
    let code = match role.as_str() {
        "slow" => slow(&mut lp),
        "asker" => asker(&mut lp),
        other => {
            eprintln!("requests: unknown role {other:?}");
            2
        }
    };
    std::process::exit(code);
}

fn slow(lp: &mut Lp) -> i32 {
    loop {
        // A hang guard: the asker is done within seconds.
        let Ok(Some(m)) = lp.recv_timeout(Duration::from_secs(120)) else {
            return 1;
        };
        match m.kind {
            MessageKind::Request if m.payload == b"silent" => {}
            MessageKind::Request => {
                std::thread::sleep(Duration::from_millis(300));
                lp.reply(&m, &m.payload).expect("reply");
            }
            MessageKind::Broadcast if m.payload == b"done" => return 0,
            _ => {}
        }
    }
}

fn asker(lp: &mut Lp) -> i32 {
    for round in 0..5 {
        match lp.request("slow", b"late", Duration::from_secs(20)) {
            Ok(r) if r.payload == b"late" => {}
            other => {
                println!("asker: round {round}: the late reply: {other:?}");
                return 1;
            }
        }
        let t = Instant::now();
        match lp.request("slow", b"silent", Duration::from_millis(500)) {
            Err(LpError::Timeout) if t.elapsed() >= Duration::from_millis(500) => {}
            other => {
                let took = t.elapsed();
                println!("asker: round {round}: the unanswered request: {other:?} after {took:?}");
                return 1;
            }
        }
    }
    lp.broadcast(b"done").expect("broadcast");
    println!("asker: ok");
    0
}
