//! bank, a transfer LP: `bank-transfer N` makes N transfers of 1..=10 between
//! random accounts in transactions, tells the auditor it is done, and keeps
//! serving its accounts (its manager holds their state) until the auditor
//! says "finish". A transfer never makes a balance negative.
use shmcollab::runtime::{Lp, MessageKind, Txn, TxnError};
use std::time::Duration;

/// Accounts, and what each holds at the start (an absent balance).
pub const ACCOUNTS: u64 = 8;
pub const START: u64 = 1000;

fn balance(t: &mut Txn<'_>, account: u64) -> Result<u64, TxnError> {
    let v = t.get(&format!("account/{account}"), b"balance")?;
    Ok(v.and_then(|b| b.try_into().ok())
        .map_or(START, u64::from_le_bytes))
}

fn set(t: &mut Txn<'_>, account: u64, v: u64) -> Result<(), TxnError> {
    t.put(&format!("account/{account}"), b"balance", &v.to_le_bytes())
}

/// xorshift64*: enough randomness for picking accounts.
fn next(state: &mut u64) -> u64 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    state.wrapping_mul(0x2545_f491_4f6c_dd1d)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1000);
    let mut lp = Lp::connect()?;
    lp.ready()?;
    let mut seed = u64::from(std::process::id()) | 1;
    let (mut done, mut retries, mut unknown) = (0u64, 0u64, 0u64);
    while done < n {
        let from = next(&mut seed) % ACCOUNTS;
        let to = (from + 1 + next(&mut seed) % (ACCOUNTS - 1)) % ACCOUNTS;
        let amount = 1 + next(&mut seed) % 10;
        let mut attempts = 0;
        let outcome = lp.transaction(|t| {
            attempts += 1;
            let (a, b) = (balance(t, from)?, balance(t, to)?);
            if a >= amount {
                set(t, from, a - amount)?;
                set(t, to, b + amount)?;
            }
            Ok(())
        });
        match outcome {
            Ok(()) => {}
            // A manager died under it (kill one to see), or the accounts
            // stayed locked by its in-doubt transactions through every
            // attempt: the transfer happened whole or not at all; go on.
            Err(TxnError::Timeout | TxnError::Failed(_) | TxnError::Conflict(_)) => unknown += 1,
            Err(e) => return Err(e.into()),
        }
        retries += attempts - 1;
        done += 1;
    }
    println!(
        "{} made {done} transfers ({retries} retries after conflicts, {unknown} failed or unknown)",
        lp.name()
    );
    lp.send("audit", b"done")?;
    // Keep serving the accounts until the auditor has checked them.
    loop {
        match lp.recv_timeout(Duration::from_secs(60))? {
            Some(m) if m.kind == MessageKind::Broadcast && m.payload == b"finish" => return Ok(()),
            Some(_) => {}
            None => return Err("no word from the auditor for 60 s".into()),
        }
    }
}
