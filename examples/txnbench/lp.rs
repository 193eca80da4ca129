//! The transaction benchmark's LP (`cargo bench --bench txn` launches it):
//! `txn-bench MODE SECS NLPS [SUBFN]` measures for SECS seconds, prints one
//! JSON line of what it measured, then waits until all NLPS LPs are done
//! (each broadcasts "fin"), so that every manager keeps serving its state
//! until nobody needs it.
//!
//! Modes (every commit durable; `k/<i>` are the sub-functions):
//! * `one`: increments (get + put + commit) of a key of SUBFN (default: the
//!   first one this LP hosts), one commit in flight;
//! * `pipelinedN`: N counters of its own sub-function, each incremented by
//!   a commit of its own, up to N commits in flight (`commit_async`);
//!   `pipelined-blindN`: the same, each commit setting its counter without
//!   reading it;
//! * `twopc`: each transaction increments a key of its own sub-function and
//!   one of SUBFN, hosted by another manager (a two-phase commit);
//! * `serve`: measures nothing, serves its state.
use shmcollab::runtime::{CommitHandle, Lp, MessageKind, Txn, TxnError};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

fn value(v: Option<Vec<u8>>) -> u64 {
    v.and_then(|b| b.try_into().ok())
        .map_or(0, u64::from_le_bytes)
}

fn incr(t: &mut Txn<'_>, subfn: &str, key: &[u8]) -> Result<(), TxnError> {
    let v = value(t.get(subfn, key)?);
    t.put(subfn, key, &(v + 1).to_le_bytes())
}

fn percentile(sorted: &[u64], q: f64) -> u64 {
    sorted
        .get(((sorted.len().max(1) - 1) as f64 * q).round() as usize)
        .copied()
        .unwrap_or(0)
}

fn report(mode: &str, lp: &Lp, mut lat: Vec<u64>, commits: u64, took: Duration) {
    lat.sort_unstable();
    println!(
        "{{\"mode\":\"{mode}\",\"lp\":\"{}\",\"commits\":{commits},\"secs\":{:.3},\"p50_ns\":{},\"p99_ns\":{}}}",
        lp.name(),
        took.as_secs_f64(),
        percentile(&lat, 0.5),
        percentile(&lat, 0.99)
    );
}

/// One transaction at a time, for `secs`: latency of each.
fn sequential(
    lp: &mut Lp,
    secs: f64,
    mut body: impl FnMut(&mut Txn<'_>) -> Result<(), TxnError>,
) -> Result<(Vec<u64>, u64, Duration), TxnError> {
    let start = Instant::now();
    let mut lat = Vec::new();
    while start.elapsed().as_secs_f64() < secs {
        let t0 = Instant::now();
        lp.transaction(&mut body)?;
        lat.push(t0.elapsed().as_nanos() as u64);
    }
    let n = lat.len() as u64;
    Ok((lat, n, start.elapsed()))
}

/// `n` counters of `subfn`, each incremented by its own commit (or, with
/// `blind`, set to a new value without reading it), all in flight.
fn pipelined(
    lp: &mut Lp,
    secs: f64,
    subfn: &str,
    n: usize,
    blind: bool,
) -> Result<(Vec<u64>, u64, Duration), TxnError> {
    let start = Instant::now();
    let mut flying: VecDeque<(CommitHandle, usize, Instant)> = VecDeque::new();
    let (mut lat, mut commits) = (Vec::new(), 0u64);
    let mut next = 0;
    loop {
        let running = start.elapsed().as_secs_f64() < secs;
        if running && flying.len() < n {
            let key = (next % n).to_le_bytes();
            next += 1;
            let t0 = Instant::now();
            let mut t = lp.begin();
            if blind {
                t.put(subfn, &key, &(next as u64).to_le_bytes())?;
            } else {
                incr(&mut t, subfn, &key)?;
            }
            flying.push_back((t.commit_async()?, next % n, t0));
            continue;
        }
        let Some((h, _, t0)) = flying.pop_front() else {
            break;
        };
        match lp.wait_commit(h, Duration::from_secs(10)) {
            Ok(_) => {
                commits += 1;
                lat.push(t0.elapsed().as_nanos() as u64);
            }
            // Counters are per in-flight slot; a late read may still race.
            Err(TxnError::Conflict(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok((lat, commits, start.elapsed()))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mode = args.first().cloned().unwrap_or_else(|| "one".into());
    let secs: f64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(3.0);
    let nlps: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(1);
    let mut lp = Lp::connect()?;
    let own = lp
        .subfunctions()
        .first()
        .cloned()
        .ok_or("hosts no sub-function")?;
    let other = args.get(3).cloned().unwrap_or_else(|| own.clone());
    lp.ready()?;
    // Everybody up before anybody measures.
    while lp
        .collaboration_state()
        .map_or(true, |s| s.lps.iter().any(|l| l.state != "ready"))
    {
        std::thread::sleep(Duration::from_millis(5));
    }
    let key = format!("n/{}", lp.name());
    let measured = match mode.as_str() {
        "one" => Some(sequential(&mut lp, secs, |t| {
            incr(t, &other, key.as_bytes())
        })?),
        "twopc" => Some(sequential(&mut lp, secs, |t| {
            incr(t, &own, key.as_bytes())?;
            incr(t, &other, key.as_bytes())
        })?),
        m if m.starts_with("pipelined") => {
            let blind = m.starts_with("pipelined-blind");
            let n = m
                .trim_start_matches("pipelined")
                .trim_start_matches("-blind");
            let n = n.parse().unwrap_or(64);
            Some(pipelined(&mut lp, secs, &own, n, blind)?)
        }
        _ => None,
    };
    if let Some((lat, commits, took)) = measured {
        report(&mode, &lp, lat, commits, took);
    }
    lp.broadcast(b"fin")?;
    let mut fins = 1;
    while fins < nlps {
        match lp.recv_timeout(Duration::from_secs(120))? {
            Some(m) if m.kind == MessageKind::Broadcast && m.payload == b"fin" => fins += 1,
            Some(_) => {}
            None => return Err("the other LPs did not finish in 120 s".into()),
        }
    }
    Ok(())
}
