//! bank, the auditor: `bank-auditor K` sums every account in one (read-only,
//! serializable) transaction, now and then while the transfers run and once
//! all K transfer LPs said they are done; prints the totals, tells the
//! transfer LPs to finish, and exits non-zero if a total was ever wrong.
use shmcollab::runtime::{Lp, MessageKind, TxnError};
use std::time::Duration;

const ACCOUNTS: u64 = 8;
const START: u64 = 1000;

/// The sum of every account, read in one serializable transaction; under
/// a heavy transfer load it may conflict many times: it keeps trying.
fn total(lp: &mut Lp) -> Result<u64, TxnError> {
    loop {
        let sum = lp.transaction(|t| {
            let mut sum = 0;
            for a in 0..ACCOUNTS {
                let v = t.get(&format!("account/{a}"), b"balance")?;
                sum += v
                    .and_then(|b| b.try_into().ok())
                    .map_or(START, u64::from_le_bytes);
            }
            Ok(sum)
        });
        match sum {
            Err(TxnError::Conflict(_)) => continue,
            other => return other,
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let writers: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1);
    let expected = ACCOUNTS * START;
    let mut lp = Lp::connect()?;
    lp.ready()?;
    let (mut done, mut audits, mut wrong) = (0, 0u64, 0u64);
    while done < writers {
        match lp.recv_timeout(Duration::from_millis(50))? {
            Some(m) if m.kind == MessageKind::Data && m.payload == b"done" => done += 1,
            Some(_) => {}
            None => {
                let t = total(&mut lp)?;
                audits += 1;
                if t != expected {
                    wrong += 1;
                    eprintln!("audit {audits}: total {t}, expected {expected}");
                }
            }
        }
    }
    let t = total(&mut lp)?;
    println!(
        "{audits} audits while transfers ran, {wrong} wrong; final total {t} (expected {expected})"
    );
    lp.broadcast(b"finish")?;
    if t != expected || wrong > 0 {
        return Err("the total changed".into());
    }
    println!("total ok");
    Ok(())
}
