//! wordcount, the splitter LP: reads the text file named by its first
//! argument, sends each word to the partition `count/<fnv1a(word) % N>`,
//! then asks every partition for its totals, prints the 10 most frequent
//! words, and broadcasts "done" so that the counters exit.
//!
//! If `WC_OUT` names a file, every word and its count are written there too
//! (one `word count` per line, sorted by word): the end-to-end test reads it.
//! If `WC_WAIT` names a file, it waits for that file before sending (for
//! the tampering tests).
//!
//! It never prints a wrong answer with exit code 0: if fewer or more words
//! were counted than sent, or any frame of the collaboration was lost to
//! tampering or corruption (`Lp::collaboration_frames_lost`), it says so on
//! stderr and exits 3.
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
    if let Some(f) = std::env::var_os("WC_WAIT") {
        while !std::path::Path::new(&f).exists() {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
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
    let lost = frames_lost(&lp);
    if counted != words || lost > 0 {
        eprintln!(
            "wordcount: WRONG RESULT: {words} words sent, {counted} counted, \
             {lost} frames lost to tampering or corruption; the counts above cannot be trusted"
        );
        std::process::exit(3);
    }
    Ok(())
}

/// Frames lost anywhere in the collaboration, once the coordinator's view
/// has caught up (it publishes at least every report interval; a loss is
/// reported within one).
fn frames_lost(lp: &Lp) -> u64 {
    let mut lost = lp.frames_lost();
    for _ in 0..10 {
        match lp.collaboration_frames_lost() {
            Ok(n) => lost = lost.max(n),
            Err(LpError::State(_)) => {}
            Err(e) => eprintln!("wordcount: cannot read the collaboration state: {e}"),
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    lost
}
