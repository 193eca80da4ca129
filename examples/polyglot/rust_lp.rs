//! polyglot, the Rust LP: hosts the sub-function "rust" and checks the end.
//!
//! Like the C and the Python LP (see README.md): N transactions that each
//! add 1 to its own counter ("rust"/"count") and to the shared total
//! ("tally"/"total"); N pipelined commits of log entries; a put and a
//! delete; greetings to the other two. Then it waits for both to say
//! "done", takes the first turn (requests to both), passes the turn to C,
//! which passes it to Python, which passes it back. Last it checks, in one
//! transaction, that every counter is N and the total is their sum, that
//! each language wrote its N log entries and deleted its key, and that
//! every LP got every greeting; it broadcasts "finish" and exits 0 if all
//! holds, 1 if not. The state outlives a run (it is durable), so "N" is
//! what this run added: each LP tells the counter's value before its first
//! increment.
use shmcollab::runtime::{Lp, LpError, MessageKind, TxnError};
use std::time::Duration;

const N: u64 = 50;
const HELLOS: u64 = 20;
const ME: &str = "rust";
const OTHERS: [&str; 2] = ["c", "python"];
const LANGS: [&str; 3] = ["rust", "c", "python"];

fn u64_of(v: Option<Vec<u8>>) -> u64 {
    v.and_then(|b| b.try_into().ok())
        .map_or(0, u64::from_le_bytes)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut lp = Lp::connect()?;
    println!("rust: hosts {:?}", lp.subfunctions());
    lp.ready()?;
    // The state outlives a run: each counter's value before this one.
    let mut before = vec![(ME.to_string(), work(&mut lp)?)];
    let mut hellos = 0u64;
    // Serve until the turn comes back from Python.
    loop {
        let m = lp
            .recv_timeout(Duration::from_secs(60))?
            .ok_or(LpError::Timeout)?;
        match (m.kind, m.payload.as_slice()) {
            (MessageKind::Request, b"ping") => lp.reply(&m, b"pong from rust")?,
            (MessageKind::Data, p) if p.starts_with(b"done ") => {
                let who = lp.name_of(m.from).unwrap_or_default();
                let n = String::from_utf8_lossy(&p[5..]).parse()?;
                before.push((who, n));
                if before.len() == 3 {
                    take_turn(&mut lp)?;
                    lp.send("c", b"turn")?;
                }
            }
            (MessageKind::Data, b"turn") => break,
            (MessageKind::Data, p) if p.starts_with(b"hello ") => hellos += 1,
            _ => return Err(format!("rust: unexpected {m:?}").into()),
        }
    }
    let ok = check(&mut lp, hellos, &before)?;
    lp.report("result", if ok { "ok" } else { "FAILED" })?;
    lp.broadcast(if ok { b"finish ok" } else { b"finish FAILED" })?;
    // Let the broadcast leave before we go.
    std::thread::sleep(Duration::from_millis(50));
    if !ok {
        std::process::exit(1);
    }
    Ok(())
}

/// The counters, the pipelined log, the put and delete, the greetings;
/// returns the counter's value before.
fn work(lp: &mut Lp) -> Result<u64, TxnError> {
    let mut before = None;
    for _ in 0..N {
        // Three LPs add to one total: on a busy machine a transaction can
        // lose `transaction`'s 32 attempts in a row. Like the C and the
        // Python LP, keep going (up to about 1,000 attempts).
        let mut tries = 0;
        let old = loop {
            let r = lp.transaction(|t| {
                let mine = u64_of(t.get(ME, b"count")?);
                let total = u64_of(t.get("tally", b"total")?) + 1;
                t.put(ME, b"count", &(mine + 1).to_le_bytes())?;
                t.put("tally", b"total", &total.to_le_bytes())?;
                Ok(mine)
            });
            tries += 1;
            match r {
                Err(TxnError::Conflict(_)) if tries < 30 => continue,
                other => break other?,
            }
        };
        before.get_or_insert(old);
    }
    let mut pending = Vec::new();
    for i in 0..N {
        let mut t = lp.begin();
        t.put(ME, format!("log/{i:04}").as_bytes(), ME.as_bytes())?;
        pending.push(t.commit_async()?);
    }
    for h in pending {
        lp.wait_commit(h, Duration::from_secs(10))?;
    }
    lp.transaction(|t| t.put(ME, b"tmp", b"x"))?;
    lp.transaction(|t| t.delete(ME, b"tmp"))?;
    for i in 0..HELLOS {
        for other in OTHERS {
            lp.send(other, format!("hello from rust #{i}").as_bytes())?;
        }
    }
    Ok(before.unwrap_or(0))
}

/// Requests "ping" to C and Python.
fn take_turn(lp: &mut Lp) -> Result<(), Box<dyn std::error::Error>> {
    for other in OTHERS {
        let r = lp.request(other, b"ping", Duration::from_secs(30))?;
        let want = format!("pong from {other}");
        if r.payload != want.as_bytes() {
            return Err(
                format!("{other} answered {:?}", String::from_utf8_lossy(&r.payload)).into(),
            );
        }
    }
    println!("rust: requests to c and python answered");
    Ok(())
}

/// The invariant, the logs, the deletes and the greetings.
fn check(
    lp: &mut Lp,
    hellos: u64,
    before: &[(String, u64)],
) -> Result<bool, Box<dyn std::error::Error>> {
    let mut ok = true;
    let mut greeted = vec![("rust".to_string(), hellos)];
    for other in OTHERS {
        let r = lp.request(other, b"stats", Duration::from_secs(30))?;
        greeted.push((other.into(), String::from_utf8_lossy(&r.payload).parse()?));
    }
    for (who, n) in &greeted {
        if *n != 2 * HELLOS {
            println!("rust: {who} received {n} greetings, not {}", 2 * HELLOS);
            ok = false;
        }
    }
    let (counts, total, logs, tmps) = lp.transaction(|t| {
        let mut counts = Vec::new();
        let mut logs = Vec::new();
        let mut tmps = Vec::new();
        for l in LANGS {
            counts.push(u64_of(t.get(l, b"count")?));
            logs.push(t.scan_prefix(l, b"log/", 1000)?.len() as u64);
            tmps.push(t.get(l, b"tmp")?.is_some());
        }
        let total = u64_of(t.get("tally", b"total")?);
        Ok((counts, total, logs, tmps))
    })?;
    let sum: u64 = counts.iter().sum();
    let added: Vec<u64> = LANGS
        .iter()
        .zip(&counts)
        .map(|(l, c)| {
            let b = before.iter().find(|(w, _)| w == l).map_or(0, |(_, b)| *b);
            c.saturating_sub(b)
        })
        .collect();
    println!(
        "rust: counters rust {} c {} python {} (this run added {added:?}), total {total}; log entries {logs:?}; tmp keys left {tmps:?}",
        counts[0], counts[1], counts[2]
    );
    if added.iter().any(|&c| c != N)
        || total != sum
        || logs.iter().any(|&l| l != N)
        || tmps.contains(&true)
    {
        println!("rust: the invariant does NOT hold");
        ok = false;
    } else {
        println!("polyglot: invariant holds: total {total} = rust + c + python, {N} added by each; every greeting and request answered");
    }
    let state = lp.collaboration_state()?;
    println!("rust: the coordinator sees {} LPs", state.lps.len());
    Ok(ok)
}
