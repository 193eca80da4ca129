//! The measured rows: the table and the JSON lines.

/// One measured row: `{"bench","system","p50_ns","p99_ns","max_ns","commits_per_s",
/// "procs","commits","busy_waits","busy_errors"}`.
pub(crate) struct Row {
    pub(crate) bench: String,
    pub(crate) system: String,
    pub(crate) p50_ns: u64,
    pub(crate) p99_ns: u64,
    /// The slowest commit: a writer that lost the lock race sleeps in the
    /// busy handler's backoff, and that shows here before it shows in p99.
    pub(crate) max_ns: u64,
    pub(crate) commits_per_s: f64,
    pub(crate) procs: usize,
    /// Commits timed (warm-up left out of the percentiles, not of the rate).
    pub(crate) commits: u64,
    /// Calls of the busy handler: each is one wait for the write lock.
    pub(crate) busy_waits: u64,
    /// Transactions that still failed with SQLITE_BUSY (and were retried).
    pub(crate) busy_errors: u64,
}

impl Row {
    fn json(&self) -> String {
        format!(
            "{{\"bench\":\"{}\",\"system\":\"{}\",\"p50_ns\":{},\"p99_ns\":{},\"max_ns\":{},\
             \"commits_per_s\":{:.0},\"procs\":{},\"commits\":{},\"busy_waits\":{},\
             \"busy_errors\":{}}}",
            self.bench,
            self.system,
            self.p50_ns,
            self.p99_ns,
            self.max_ns,
            self.commits_per_s,
            self.procs,
            self.commits,
            self.busy_waits,
            self.busy_errors
        )
    }
}

pub(crate) fn pick(sorted: &[u64], q: f64) -> u64 {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

pub(crate) fn print_table(rows: &[Row]) {
    println!();
    println!(
        "{:<12} {:<24} {:>10} {:>10} {:>10} {:>10} {:>11} {:>11}",
        "bench", "system", "p50", "p99", "max", "commits/s", "busy waits", "busy errors"
    );
    let us = |v: u64| format!("{:.0} µs", v as f64 / 1000.0);
    for r in rows {
        println!(
            "{:<12} {:<24} {:>10} {:>10} {:>10} {:>10.0} {:>11} {:>11}",
            r.bench,
            r.system,
            us(r.p50_ns),
            us(r.p99_ns),
            us(r.max_ns),
            r.commits_per_s,
            r.busy_waits,
            r.busy_errors
        );
    }
    println!();
    for r in rows {
        println!("{}", r.json());
    }
}
