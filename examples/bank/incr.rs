//! bank, a crash-test LP: `bank-incr N` increments the counter `n` of the
//! sub-function it hosts, one transaction per increment, until it is N.
//! With `INCR_LOG` set it appends `start V` (the value it found) when it
//! starts and `ack V` after each commit of value V was acknowledged, so a
//! test can check that no acknowledged commit was lost across a kill -9.
use shmcollab::runtime::{Lp, TxnError};
use std::io::Write;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1000);
    let mut lp = Lp::connect()?;
    let subfn = lp
        .subfunctions()
        .first()
        .cloned()
        .ok_or("hosts no sub-function")?;
    let mut log = match std::env::var_os("INCR_LOG") {
        Some(p) => Some(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)?,
        ),
        None => None,
    };
    lp.ready()?;
    let read = |lp: &mut Lp| -> Result<u64, TxnError> {
        lp.transaction(|t| {
            let v = t.get(&subfn, b"n")?;
            Ok(v.and_then(|b| b.try_into().ok())
                .map_or(0, u64::from_le_bytes))
        })
    };
    let mut v = read(&mut lp)?;
    if let Some(f) = log.as_mut() {
        writeln!(f, "start {v}")?;
    }
    while v < n {
        v = lp.transaction(|t| {
            let cur = t.get(&subfn, b"n")?;
            let cur = cur
                .and_then(|b| b.try_into().ok())
                .map_or(0, u64::from_le_bytes);
            t.put(&subfn, b"n", &(cur + 1).to_le_bytes())?;
            Ok(cur + 1)
        })?;
        if let Some(f) = log.as_mut() {
            writeln!(f, "ack {v}")?;
        }
    }
    println!("counter {v}");
    Ok(())
}
