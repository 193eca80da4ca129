//! wordcount, a counter LP: counts the words sent to the partitions it
//! hosts (`count/N`), answers "totals" requests with `word count` lines for
//! the partition asked, and exits 0 on the broadcast "done".
use shmcollab::runtime::{Lp, LpError, MessageKind};
use std::collections::HashMap;

fn main() -> Result<(), LpError> {
    let mut lp = Lp::connect()?;
    let mut counts: HashMap<String, HashMap<String, u64>> = HashMap::new();
    lp.ready()?;
    loop {
        let m = lp.recv()?;
        match m.kind {
            MessageKind::Broadcast if m.payload == b"done" => {
                let n: u64 = counts.values().flat_map(|c| c.values()).sum();
                lp.report("words_counted", &n.to_string())?;
                // The splitter decides whether the run is good; what this
                // LP lost on its way in is in its state report too.
                lp.report("frames_lost", &lp.frames_lost().to_string())?;
                return Ok(());
            }
            MessageKind::Data => {
                let part = m.to.unwrap_or_default();
                let w = String::from_utf8_lossy(&m.payload).into_owned();
                *counts.entry(part).or_default().entry(w).or_default() += 1;
            }
            MessageKind::Request => {
                let part = m.to.clone().unwrap_or_default();
                let body: String = counts
                    .get(&part)
                    .map(|c| c.iter().map(|(w, n)| format!("{w} {n}\n")).collect())
                    .unwrap_or_default();
                lp.reply(&m, body.as_bytes())?;
            }
            _ => {}
        }
    }
}
