//! Issue 13: a collaboration of a few hundred LPs (how the LP programs get
//! built: `tests/common/mod.rs`). How fast it starts is the scale bench's
//! business (`cargo bench --bench scale`); here: that it starts at all, that
//! an idle one costs segments in proportion to its LPs (rings between
//! managers are made when a pair first talks: before, every manager made a
//! ring to every other and a direct ring into every other LP, n^2 segments),
//! that `status` shows every LP, and that it stops cleanly.

mod common;

use common::*;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const LPS: usize = 300;

#[test]
fn three_hundred_idle_lps_start_cost_segments_per_lp_and_stop() {
    let dir = TempDir::new("scale");
    let name = unique("sc");
    // The default report interval: 300 managers reporting every 20 ms (the
    // tests' usual) is a load test of the coordinator, not of the launch.
    let cfg = write_config(
        &dir.0,
        &format!(
            "name = \"{name}\"\n[[subfunction]]\nname = \"w\"\npartitions = {LPS}\n\
             [[process]]\nname = \"worker\"\ninstances = {LPS}\ncommand = [{:?}]\n\
             hosts = [\"w\"]\n",
            example("idle").display().to_string()
        ),
    );
    let run = Launched::start(&cfg, &name);
    // Watchdog only: a debug build of 600 processes on a loaded 2-core
    // machine takes a while.
    let deadline = Instant::now() + Duration::from_secs(150);
    let v = loop {
        if let Some(v) = status_json(&name).filter(|v| all_ready(v, LPS)) {
            break v;
        }
        assert!(
            Instant::now() < deadline,
            "watchdog: {LPS} LPs never all ready"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let lps = v["lps"].as_array().unwrap();
    let mut pids: Vec<u64> = lps.iter().filter_map(|l| l["pid"].as_u64()).collect();
    pids.extend(lps.iter().filter_map(|l| l["manager_pid"].as_u64()));
    pids.sort_unstable();
    pids.dedup();
    assert_eq!(pids.len(), 2 * LPS, "a pid per LP and per manager");

    // Let every manager report (the rings to the coordinator are made by
    // then), then count the segments of the LPs: each LP's two rings and
    // its manager's ring to the coordinator (the LP's view has no name;
    // the session's own files, registry, plan and owner, aside).
    std::thread::sleep(Duration::from_millis(500));
    let sdir = session_dirs(&name).pop().expect("session directory");
    let fixed = ["registry", "plan.json", "owner"];
    let files = std::fs::read_dir(&sdir)
        .unwrap()
        .flatten()
        .filter(|e| !fixed.iter().any(|f| e.file_name() == *f))
        .count();
    // A few more when some pairs talked (the coordinator's answers,
    // a stop broadcast): linear, where every pair's rings were n^2.
    assert!(
        files <= 3 * LPS + 16,
        "{files} files in the session directory for {LPS} idle LPs"
    );
    assert!(files >= 2 * LPS, "{files} files: the LPs' rings missing?");

    let stop = Command::new(bin()).args(["stop", &name]).output().unwrap();
    assert!(
        stop.status.success(),
        "{}",
        String::from_utf8_lossy(&stop.stderr)
    );
    let (code, _out, err) = run.wait(Duration::from_secs(120));
    assert_eq!(code, 0, "{}", tail(&err));
    assert!(session_dirs(&name).is_empty(), "session left behind");
    for pid in pids {
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "process {pid} survived the stop"
        );
    }
}

/// The last lines of a long output.
fn tail(s: &str) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}
