//! wordcount, the splitter LP: reads the text file named by its first
//! argument, sends each word to the partition `count/<fnv1a(word) % N>`,
//! then asks every partition for its totals, prints the 10 most frequent
//! words, and broadcasts "done" so that the counters exit.
//!
//! If `WC_OUT` names a file, every word and its count are written there too
//! (one `word count` per line, sorted by word): the end-to-end test reads it.
use shmcollab::runtime::{Lp, LpError};
use std::collections::BTreeMap;
use std::time::Duration;

fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    })
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .ok_or("usage: wordcount-splitter TEXT_FILE")?;
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
    let mut lp = Lp::connect()?;
    let parts: Vec<String> = lp
        .all_subfunctions()
        .into_iter()
        .filter(|s| s.starts_with("count/"))
        .collect();
    if parts.is_empty() {
        return Err("no count/N sub-functions in this collaboration".into());
    }
    lp.ready()?;
    let mut words = 0u64;
    for w in text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        let w = w.to_lowercase();
        let p = &parts[(fnv1a(&w) % parts.len() as u64) as usize];
        lp.send(p, w.as_bytes())?;
        words += 1;
    }
    lp.report("words_sent", &words.to_string())?;
    let mut totals: BTreeMap<String, u64> = BTreeMap::new();
    for p in &parts {
        let r = lp.request(p, b"totals", Duration::from_secs(60))?;
        for line in String::from_utf8_lossy(&r.payload).lines() {
            if let Some((w, n)) = line.rsplit_once(' ') {
                *totals.entry(w.to_owned()).or_default() += n.parse::<u64>().unwrap_or(0);
            }
        }
    }
    let counted: u64 = totals.values().sum();
    let mut top: Vec<(&String, &u64)> = totals.iter().collect();
    top.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    println!(
        "{words} words sent, {counted} counted, {} distinct",
        totals.len()
    );
    for (w, n) in top.iter().take(10) {
        println!("{n:>8} {w}");
    }
    if let Some(out) = std::env::var_os("WC_OUT") {
        let body: String = totals.iter().map(|(w, n)| format!("{w} {n}\n")).collect();
        std::fs::write(out, body)?;
    }
    lp.broadcast(b"done")?;
    // Give the broadcast time to leave before this LP (and its manager) go.
    std::thread::sleep(Duration::from_millis(100));
    let _: Result<(), LpError> = Ok(());
    Ok(())
}
