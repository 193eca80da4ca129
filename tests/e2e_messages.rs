//! End-to-end tests of message flow: the wordcount example against a count
//! made here, and messages to an LP that ended (how the LP programs get
//! built: `tests/common/mod.rs`).

mod common;

use common::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[test]
fn wordcount_matches_a_count_made_here() {
    let dir = TempDir::new("wc");
    let (text, want) = generated_text();
    std::fs::write(dir.0.join("text.txt"), &text).unwrap();
    let out_file = dir.0.join("counts.txt");
    let name = unique("wc");
    let cfg_path = wordcount_config(&dir.0, &name, &out_file);
    let (code, stdout, stderr) = Launched::start(&cfg_path, &name).wait(Duration::from_secs(120));
    assert_eq!(
        code, 0,
        "launch failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    let got = read_counts(&out_file);
    assert_eq!(got, want, "per-word counts differ");
    assert_top_10_printed(&stdout, &want);
}

/// A generated text of 20,000 words with a known count: the text, and how
/// often each word occurs in it.
fn generated_text() -> (String, BTreeMap<String, u64>) {
    let vocab: Vec<String> = (0..300)
        .map(|i| format!("w{}x{}", i * 7919 % 1000, i % 13))
        .collect();
    let mut text = String::new();
    let mut want = BTreeMap::<String, u64>::new();
    let mut x: u64 = 12345;
    for i in 0..20_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        // Skewed: low indexes far more frequent.
        let k = ((x % 300) * (x % 300) / 300) as usize;
        let w = &vocab[k];
        text.push_str(w);
        text.push(if i % 11 == 10 { '\n' } else { ' ' });
        *want.entry(w.clone()).or_default() += 1;
    }
    (text, want)
}

/// The wordcount collaboration `name` over `dir/text.txt`: one splitter
/// that writes the counts to `out`, 8 count partitions on 4 counters.
fn wordcount_config(dir: &Path, name: &str, out: &Path) -> PathBuf {
    let cfg = format!(
        r#"
name = "{name}"
report_interval_ms = 100
[[subfunction]]
name = "split"
[[subfunction]]
name = "count"
partitions = 8
[[process]]
name = "splitter"
command = ["{splitter}", "text.txt"]
hosts = ["split"]
env = {{ WC_OUT = "{out}" }}
[[process]]
name = "counter"
instances = 4
command = ["{counter}"]
hosts = ["count/*"]
"#,
        splitter = example("wordcount-splitter").display(),
        counter = example("wordcount-counter").display(),
        out = out.display(),
    );
    write_config(dir, &cfg)
}

/// The counts the splitter wrote: one `word count` line per word.
fn read_counts(out_file: &Path) -> BTreeMap<String, u64> {
    std::fs::read_to_string(out_file)
        .unwrap()
        .lines()
        .map(|l| {
            let (w, n) = l.rsplit_once(' ').unwrap();
            (w.to_owned(), n.parse().unwrap())
        })
        .collect()
}

/// The printed top 10, prefixed with the LP's name, and the totals line.
fn assert_top_10_printed(stdout: &str, want: &BTreeMap<String, u64>) {
    let mut top: Vec<(&String, &u64)> = want.iter().collect();
    top.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    let printed: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("splitter"))
        .collect();
    for (w, n) in top.iter().take(10) {
        let line = format!("{n:>8} {w}");
        assert!(
            printed.iter().any(|l| l.ends_with(&line)),
            "top-10 line {line:?} missing from:\n{stdout}"
        );
    }
    assert!(
        printed
            .iter()
            .any(|l| l.contains("20000 words sent, 20000 counted")),
        "{stdout}"
    );
}

/// Messages to an LP that ended for good neither block the sender nor
/// vanish: they are dropped and counted in the sender's state report.
#[test]
fn messages_to_a_finished_lp_are_counted_not_blocking() {
    let dir = TempDir::new("after");
    let go = dir.0.join("go");
    let name = unique("af");
    let go_arg = go.display().to_string();
    let p = pingpong_config(&dir.0, &name, &["afterlife", "50000", &go_arg], "", false);
    let run = Launched::start(&p, &name);
    // 50000 messages are far more than the rings and queues towards pong
    // would hold if they were kept: ping finishing them proves no blocking.
    let v = wait_status(&name, "ping done sending, its drops counted", |v| {
        lp_entry(v, "ping").is_some_and(|l| {
            l["custom"]["sent_after_pong"] == "50000" && l["dropped"].as_u64() >= Some(50000)
        })
    });
    assert_eq!(lp_entry(&v, "pong").unwrap()["state"], "exited", "{v}");
    std::fs::write(&go, b"go").unwrap();
    let (code, _out, err) = run.wait(Duration::from_secs(60));
    assert_eq!(code, 0, "{err}");
}
