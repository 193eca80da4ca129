//! Test LP for the LP's memory of its own committed writes
//! (`tests/e2e_txn_memory.rs`): `test-txn-alternate I N SUBFN KEY`.
//!
//! Two of them (I = 0 and 1) take turns, passed by messages to the
//! sub-functions `turn/0` and `turn/1` they host: each in its turn
//! increments KEY of SUBFN once (`Lp::transaction`: get + put), then hands
//! the turn over, N times. So each one's memory of KEY is stale at every
//! increment but its first (the other wrote KEY since): the commit is
//! refused as a conflict and the retry reads from the host. With a KEY of
//! its own per LP instead (`own`), nothing is stale. LP 0 waits for the
//! last turn, reads KEY (expected 2N with a shared key) and prints, like
//! LP 1, one line: `lp I: increments N attempts A recalled R stale S
//! final F`; it exits 0, or 1 with what went wrong.
use shmcollab::runtime::{Lp, Txn, TxnError};
use std::time::Duration;

fn value(v: Option<Vec<u8>>) -> u64 {
    v.and_then(|b| b.try_into().ok())
        .map_or(0, u64::from_le_bytes)
}

fn incr(t: &mut Txn<'_>, subfn: &str, key: &[u8]) -> Result<u64, TxnError> {
    let v = value(t.get(subfn, key)?);
    t.put(subfn, key, &(v + 1).to_le_bytes())?;
    Ok(v + 1)
}

/// Wait for the turn (a hang guard: the other side passes it within
/// seconds).
fn wait_turn(lp: &mut Lp) -> Result<(), String> {
    match lp.recv_timeout(Duration::from_secs(60)) {
        Ok(Some(m)) if m.payload == b"go" => Ok(()),
        other => Err(format!("waiting for the turn: {other:?}")),
    }
}

fn run(lp: &mut Lp, me: u32, n: u64, subfn: &str, key: &[u8]) -> Result<String, String> {
    let other = format!("turn/{}", 1 - me);
    let mut attempts = 0u64;
    for round in 0..n {
        if me == 1 || round > 0 {
            wait_turn(lp)?;
        }
        lp.transaction(|t| {
            attempts += 1;
            incr(t, subfn, key)
        })
        .map_err(|e| format!("increment {round}: {e}"))?;
        lp.send(&other, b"go").map_err(|e| e.to_string())?;
    }
    let final_value = if me == 0 {
        // LP 1's last increment.
        wait_turn(lp)?;
        lp.transaction(|t| t.get(subfn, key).map(value))
            .map_err(|e| format!("final read: {e}"))?
    } else {
        0
    };
    let s = lp.txn_memory_stats();
    Ok(format!(
        "lp {me}: increments {n} attempts {attempts} recalled {} stale {} final {final_value}",
        s.recalled, s.stale
    ))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(me), Some(n), Some(subfn), Some(key)) = (
        args.get(1).and_then(|a| a.parse::<u32>().ok()),
        args.get(2).and_then(|a| a.parse::<u64>().ok()),
        args.get(3),
        args.get(4),
    ) else {
        eprintln!("usage: test-txn-alternate I N SUBFN KEY");
        std::process::exit(2);
    };
    let mut lp = Lp::connect().expect("connect");
    lp.ready().expect("ready");
    match run(&mut lp, me, n, subfn, key.as_bytes()) {
        Ok(line) => {
            println!("{line}");
            std::process::exit(0);
        }
        Err(e) => {
            println!("lp {me}: {e}");
            std::process::exit(1);
        }
    }
}
