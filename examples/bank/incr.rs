//! bank, a crash-test LP: `bank-incr N` increments the counter `n` of the
//! sub-function it hosts, one transaction per increment, until it is N.
//! With `INCR_LOG` set it appends `start V` (the value it found) when it
//! starts and `ack V` after each commit of value V was acknowledged, so a
//! test can check that no acknowledged commit was lost across a kill -9.
//! With `INCR_ALSO=<sub-function>` (hosted by another LP) each transaction
//! increments the counter there too (a two-phase commit); the two must
//! always be equal: it logs `torn A B` and fails if they are not, and
//! broadcasts "stop" when it is done (an `idle` LP hosting the other one
//! then exits). With `INCR_TOTAL=<sub-function>` each transaction also adds
//! 1 to the key `total` there, which several LPs share (so it is the sum of
//! their counters); at the end it logs `done V T`, its counter and the
//! total read in one transaction.
use shmcollab::runtime::{Lp, Txn, TxnError};
use std::io::Write;

fn counter(t: &mut Txn<'_>, subfn: &str) -> Result<u64, TxnError> {
    number(t, subfn, b"n")
}

fn number(t: &mut Txn<'_>, subfn: &str, key: &[u8]) -> Result<u64, TxnError> {
    let v = t.get(subfn, key)?;
    Ok(v.and_then(|b| b.try_into().ok())
        .map_or(0, u64::from_le_bytes))
}

/// Append `text` and a newline to the log in one `write` (the file is
/// opened with O_APPEND, so the line lands whole even if this process is
/// killed right after or another one appends too). `writeln!` on a `File`
/// makes one `write` per piece of the format: a kill between them left
/// "ack 334" without its newline, and the next process's "start 334"
/// glued to it, so a test read neither line.
fn line(f: &mut std::fs::File, text: String) -> std::io::Result<()> {
    f.write_all(format!("{text}\n").as_bytes())
}

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
    let also: Option<String> = std::env::var("INCR_ALSO").ok();
    let total: Option<String> = std::env::var("INCR_TOTAL").ok();
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
    let (mut v, other) = lp.transaction(|t| {
        let other = match &also {
            Some(s) => Some(counter(t, s)?),
            None => None,
        };
        Ok((counter(t, &subfn)?, other))
    })?;
    if let Some(f) = log.as_mut() {
        line(f, format!("start {v}"))?;
        if other.is_some_and(|o| o != v) {
            line(f, format!("torn {v} {}", other.unwrap_or(0)))?;
        }
    }
    if other.is_some_and(|o| o != v) {
        return Err(format!("torn: {v} here, {other:?} there").into());
    }
    while v < n {
        v = lp.transaction(|t| {
            let cur = counter(t, &subfn)?;
            t.put(&subfn, b"n", &(cur + 1).to_le_bytes())?;
            if let Some(s) = &also {
                let o = counter(t, s)?;
                t.put(s, b"n", &(o + 1).to_le_bytes())?;
            }
            if let Some(s) = &total {
                let o = number(t, s, b"total")?;
                t.put(s, b"total", &(o + 1).to_le_bytes())?;
            }
            Ok(cur + 1)
        })?;
        if let Some(f) = log.as_mut() {
            line(f, format!("ack {v}"))?;
        }
    }
    println!("counter {v}");
    if let Some(s) = &total {
        let (v, sum) = lp.transaction(|t| Ok((counter(t, &subfn)?, number(t, s, b"total")?)))?;
        if let Some(f) = log.as_mut() {
            line(f, format!("done {v} {sum}"))?;
        }
    }
    if also.is_some() {
        lp.broadcast(b"stop")?;
    }
    Ok(())
}
