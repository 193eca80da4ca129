//! End-to-end tests of the LP's memory of its own committed writes
//! (`runtime/src/lp/txn_memory.rs`), with real processes: two LPs
//! (`tests/lps/txn_alternate.rs`) take turns incrementing a counter hosted
//! by LP 0's manager, so each one's memory of it is stale at every turn
//! but its first: no increment may be lost, and every stale read must be
//! caught by the host as a conflict and retried. With a key of its own per
//! LP, the reads come from memory and nothing conflicts. (How the LP
//! programs get built: `tests/common/mod.rs`.)

mod common;

use common::*;
use std::path::Path;
use std::time::Duration;

/// Two alternating LPs, LP i incrementing `keys[i]` of `ctr` (hosted by
/// LP 0) `n` times.
fn config(dir: &Path, name: &str, n: u64, keys: [&str; 2]) -> std::path::PathBuf {
    let p = example("test-txn-alternate").display().to_string();
    write_config(
        dir,
        &format!(
            r#"name = "{name}"
state_dir = {state:?}

[[subfunction]]
name = "ctr"

[[subfunction]]
name = "turn"
partitions = 2

[[process]]
name = "a"
command = [{p:?}, "0", "{n}", "ctr", {k0:?}]
hosts = ["ctr", "turn/0"]
restart = "temporary"

[[process]]
name = "b"
command = [{p:?}, "1", "{n}", "ctr", {k1:?}]
hosts = ["turn/1"]
restart = "temporary"
"#,
            state = dir.join("state").display().to_string(),
            k0 = keys[0],
            k1 = keys[1],
        ),
    )
}

/// The numbers of LP `i`'s line: increments, attempts, recalled, stale,
/// final.
fn line_of(stdout: &str, i: u32) -> [u64; 5] {
    let prefix = format!("lp {i}: increments ");
    let line = stdout
        .lines()
        .find_map(|l| l.split_once(&prefix).map(|(_, rest)| rest))
        .unwrap_or_else(|| panic!("no line of lp {i}:\n{stdout}"));
    let nums: Vec<u64> = line
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    nums.try_into()
        .unwrap_or_else(|n| panic!("lp {i}: {n:?} in {line:?}"))
}

fn run(tag: &str, n: u64, keys: [&str; 2]) -> [[u64; 5]; 2] {
    let dir = TempDir::new(tag);
    let name = unique(tag);
    let run = Launched::start(&config(&dir.0, &name, n, keys), &name);
    let (code, stdout, stderr) = run.wait(Duration::from_secs(120));
    assert_eq!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    [line_of(&stdout, 0), line_of(&stdout, 1)]
}

#[test]
fn alternating_writers_of_one_key_lose_no_increment_and_every_stale_memory_conflicts() {
    const N: u64 = 200;
    let lps = run("memalt", N, ["c", "c"]);
    for (i, [increments, attempts, recalled, stale, _]) in lps.into_iter().enumerate() {
        assert_eq!(increments, N, "lp {i}");
        // Every increment but the first read the LP's own last write from
        // memory, and it was stale each time (the other LP wrote since):
        // refused by the host, retried with a read from the host. LP 0's
        // final read is one more, a read-only transaction: validated by
        // the host too, so its stale value is refused as well.
        let last = u64::from(i == 0);
        assert_eq!(recalled, N - 1 + last, "lp {i}: reads from memory");
        assert_eq!(
            stale,
            N - 1 + last,
            "lp {i}: stale reads caught as conflicts"
        );
        assert_eq!(attempts, 2 * N - 1, "lp {i}: one retry per stale increment");
    }
    assert_eq!(lps[0][4], 2 * N, "lost updates: {lps:?}");
}

#[test]
fn a_writer_of_its_own_key_reads_it_from_memory_without_conflicts() {
    const N: u64 = 200;
    // LP 1's key is hosted by LP 0's manager: its commits go to another
    // manager, whose answer carries the version too.
    let lps = run("memown", N, ["c0", "c1"]);
    for (i, [increments, attempts, recalled, stale, _]) in lps.into_iter().enumerate() {
        assert_eq!(increments, N, "lp {i}");
        // LP 0's final read too.
        let last = u64::from(i == 0);
        assert_eq!(recalled, N - 1 + last, "lp {i}: reads from memory");
        assert_eq!(stale, 0, "lp {i}");
        assert_eq!(attempts, N, "lp {i}");
    }
    assert_eq!(lps[0][4], N);
}
