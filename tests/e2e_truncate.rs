//! End to end: every segment of a running collaboration (the registry and
//! every ring) cut to 0 bytes by another process kills nobody by a signal:
//! no manager, LP or supervisor dies of SIGBUS, and the collaboration still
//! ends, by `stop` or with a clear error. (What the processes make of the zeros they then read is
//! the business of the ring and registry readers, tested on their own.)

mod common;

use common::*;
use std::process::Command;
use std::time::Duration;

#[test]
fn truncating_every_segment_of_a_live_collaboration_kills_nothing() {
    let dir = TempDir::new("trunc");
    let name = unique("tr");
    let cfg = idle_config(&dir.0, &name, 4);
    let run = Launched::start(&cfg, &name);
    wait_status(&name, "4 LPs ready", |v| all_ready(v, 4));
    let sdir = session_dirs(&name).pop().expect("session directory");
    let mut cut = 0;
    for e in std::fs::read_dir(&sdir).unwrap().flatten() {
        let n = e.file_name().into_string().unwrap();
        if !(n == "registry" || n.contains(".in") || n.contains(".out") || n.starts_with("peer")) {
            continue;
        }
        let st = Command::new("truncate")
            .args(["-s", "0"])
            .arg(e.path())
            .status()
            .unwrap();
        assert!(st.success());
        cut += 1;
    }
    assert!(cut >= 9, "the registry and 8 rings, got {cut}");
    // Managers poll their rings and the registry all the time; LPs wake
    // on doorbells in the registry: give every one of them time to touch
    // the lost pages.
    std::thread::sleep(Duration::from_millis(500));
    let stop = Command::new(bin()).args(["stop", &name]).output().unwrap();
    let (_, stdout, stderr) = run.wait(Duration::from_secs(30));
    let all = format!("{stdout}\n{stderr}");
    // Without its registry the collaboration cannot go on: it ends, by
    // `stop` or by giving up on managers that cannot restart, with words.
    assert!(
        stop.status.success() || all.contains("registry is truncated"),
        "{stop:?}\n{all}"
    );
    assert!(
        !all.contains("SIGBUS") && !all.contains("signal: 7"),
        "{all}"
    );
}
