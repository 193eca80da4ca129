//! Shared by the benchmark harnesses: percentiles, the table and the JSON lines.
#![allow(dead_code)]

use std::time::Duration;

/// One measured row.
pub struct Row {
    pub bench: String,
    pub system: String,
    pub p50_ns: Option<f64>,
    pub p99_ns: Option<f64>,
    pub msgs_per_s: Option<f64>,
}

impl Row {
    pub fn latency(bench: &str, system: &str, samples: &mut [u64]) -> Row {
        samples.sort_unstable();
        let pick = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize] as f64;
        Row {
            bench: bench.into(),
            system: system.into(),
            p50_ns: Some(pick(0.50)),
            p99_ns: Some(pick(0.99)),
            msgs_per_s: None,
        }
    }

    pub fn throughput(bench: &str, system: &str, msgs: u64, took: Duration) -> Row {
        Row {
            bench: bench.into(),
            system: system.into(),
            p50_ns: None,
            p99_ns: None,
            msgs_per_s: Some(msgs as f64 / took.as_secs_f64()),
        }
    }

    /// `{"bench":..,"system":..,"p50_ns":..,"p99_ns":..,"msgs_per_s":..}`,
    /// fields that do not apply left out.
    pub fn json(&self) -> String {
        let mut s = format!(
            "{{\"bench\":\"{}\",\"system\":\"{}\"",
            self.bench, self.system
        );
        if let Some(v) = self.p50_ns {
            s += &format!(",\"p50_ns\":{v:.0}");
        }
        if let Some(v) = self.p99_ns {
            s += &format!(",\"p99_ns\":{v:.0}");
        }
        if let Some(v) = self.msgs_per_s {
            s += &format!(",\"msgs_per_s\":{v:.0}");
        }
        s + "}"
    }
}

pub fn print_table(rows: &[Row]) {
    println!();
    println!(
        "{:<22} {:<22} {:>12} {:>12} {:>14}",
        "bench", "system", "p50", "p99", "msgs/s"
    );
    for r in rows {
        let ns = |v: Option<f64>| match v {
            Some(v) if v >= 1000.0 => format!("{:.2} µs", v / 1000.0),
            Some(v) => format!("{v:.0} ns"),
            None => "-".into(),
        };
        let rate = match r.msgs_per_s {
            Some(v) => format!("{:.2} M", v / 1e6),
            None => "-".into(),
        };
        println!(
            "{:<22} {:<22} {:>12} {:>12} {:>14}",
            r.bench,
            r.system,
            ns(r.p50_ns),
            ns(r.p99_ns),
            rate
        );
    }
    println!();
    for r in rows {
        println!("{}", r.json());
    }
}
