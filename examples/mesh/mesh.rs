//! Every LP sends a small numbered message to every other LP's
//! sub-function every millisecond, counts what arrives from each, and
//! reports the counts (custom value `rx`: `slot:count,...`) every 100 ms:
//! the workload of the hostile-memory harness (`tests/e2e_hostile.rs`),
//! which checks that every link carries traffic again after an attack.
//! Runs until stopped (`shmcollab stop`, or the broadcast "stop").
use shmcollab::runtime::{Lp, LpError, MessageKind};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

fn main() -> Result<(), LpError> {
    let mut lp = Lp::connect()?;
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
