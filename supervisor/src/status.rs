//! `shmcollab status`: the coordinator's view of one of our running
//! collaborations. Only sessions of ours are read (see
//! `launch::session`): another user's entry under the name is passed
//! over and named, never shown as ours.

use crate::launch::lookup;
use shmcollab_runtime::report::CollaborationState;
use shmcollab_shm::registry::Registry;
use shmcollab_shm::segment::Session;

fn live_names() -> Vec<String> {
    crate::launch::session::live_names()
}

/// The coordinator's published view of collaboration `name`.
pub fn read_state(name: &str) -> Result<CollaborationState, String> {
    let found = lookup(name);
    let Some(live) = found.live.first() else {
        return Err(format!(
            "no running collaboration named {name:?}{}",
            found.ignored_note()
        ));
    };
    let session = Session::open(&live.dir).map_err(|e| e.to_string())?;
    let reg = Registry::open(&session).map_err(|e| e.to_string())?;
    let bytes = reg.read_status().map_err(|e| e.to_string())?;
    if bytes.is_empty() {
        return Err(format!(
            "{name}: the coordinator has not published a state yet"
        ));
    }
    CollaborationState::decode(&bytes).map_err(|e| format!("{name}: bad state document: {e}"))
}

/// `shmcollab status [NAME] [--json]`.
pub fn status(name: Option<&str>, json: bool) -> i32 {
    let name = match name {
        Some(n) => n.to_owned(),
        None => {
            let names = live_names();
            match names.as_slice() {
                [one] => one.clone(),
                [] => {
                    eprintln!("shmcollab: no collaboration is running");
                    return 1;
                }
                many => {
                    eprintln!(
                        "shmcollab: several collaborations are running, name one: {}",
                        many.join(", ")
                    );
                    return 2;
                }
            }
        }
    };
    let v = match read_state(&name) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("shmcollab: {e}");
            return 1;
        }
    };
    if json {
        println!("{}", String::from_utf8_lossy(&v.encode()));
        return 0;
    }
    print_table(&v);
    0
}

/// The state as a table, a line per LP; `-` where the LP's manager has
/// not reported yet.
fn print_table(v: &CollaborationState) {
    let c = &v.coordinator;
    println!(
        "collaboration {}   coordinator: {} (slot {}, epoch {})",
        v.name, c.name, c.slot, c.epoch
    );
    println!(
        "{:<16} {:>4} {:>8} {:>8} {:<10} {:>8} {:>10} {:>10} {:>6} {:>6}  sub-functions",
        "LP", "slot", "pid", "manager", "state", "restarts", "msgs in", "msgs out", "auth!", "lost"
    );
    let dash = |n: Option<u64>| n.map_or_else(|| "-".into(), |n| n.to_string());
    for lp in &v.lps {
        let r = lp.report.as_ref();
        println!(
            "{:<16} {:>4} {:>8} {:>8} {:<10} {:>8} {:>10} {:>10} {:>6} {:>6}  {}",
            lp.name,
            lp.slot,
            dash(lp.pid.map(u64::from)),
            dash(r.map(|r| u64::from(r.manager_pid))),
            lp.state,
            lp.restarts,
            dash(r.map(|r| r.msgs_in)),
            dash(r.map(|r| r.msgs_out)),
            dash(r.map(|r| r.auth_failures)),
            dash(r.map(|r| r.lost)),
            lp.subfunctions.join(",")
        );
    }
    print_loss_table(v);
    print_txn_table(v);
}

/// The links that lost frames to tampering or corruption, a line each.
fn print_loss_table(v: &CollaborationState) {
    let rows: Vec<_> = v
        .lps
        .iter()
        .filter_map(|lp| lp.report.as_ref().map(|r| (lp, r)))
        .flat_map(|(lp, r)| r.links.iter().map(move |l| (lp, l)))
        .collect();
    if rows.is_empty() {
        return;
    }
    println!();
    println!(
        "{:<16} {:<14} {:>10} {:>10}",
        "frames lost at", "link", "rejected", "skipped"
    );
    for (lp, l) in rows {
        println!(
            "{:<16} {:<14} {:>10} {:>10}",
            lp.name, l.link, l.rejected, l.skipped
        );
    }
}

/// The transaction servers, a line per manager that has served any.
fn print_txn_table(v: &CollaborationState) {
    let served = |r: &shmcollab_runtime::report::TxnReport| r.commits + r.aborts + r.log_bytes > 0;
    let rows: Vec<_> = v
        .lps
        .iter()
        .filter_map(|lp| lp.report.as_ref().map(|r| (lp, r.txn)))
        .filter(|(_, t)| served(t))
        .collect();
    if rows.is_empty() {
        return;
    }
    println!();
    println!(
        "{:<16} {:>10} {:>8} {:>10} {:>12} {:>8} {:>12}",
        "transactions", "commits", "aborts", "conflicts", "log KiB", "fsyncs", "last fsync"
    );
    for (lp, t) in rows {
        println!(
            "{:<16} {:>10} {:>8} {:>10} {:>12} {:>8} {:>9} µs",
            lp.name,
            t.commits,
            t.aborts,
            t.conflicts,
            t.log_bytes / 1024,
            t.fsyncs,
            t.last_fsync_us
        );
    }
}
