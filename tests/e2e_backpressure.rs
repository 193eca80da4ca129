//! Back-pressure across real processes (issue 11 item 6): one LP flooding a
//! slow LP holds back itself, not another LP's transactions served by the
//! slow LP's manager; messages an LP sends to itself are bounded. The LP
//! program is `tests/lps/backpressure.rs` (`cargo build --examples`).

mod common;

use common::*;
use std::process::Command;
use std::time::Duration;

fn config(dir: &std::path::Path, name: &str, body: &str) -> std::path::PathBuf {
    write_config(
        dir,
        &format!(
            "name = \"{name}\"\nreport_interval_ms = 50\nstate_dir = \"state\"\nsync = \"off\"\n{body}"
        ),
    )
}

/// A process running `role`, never restarted (a restarted teller would
/// find the flood drained and pass).
fn process(name: &str, role: &str) -> String {
    format!(
        "[[process]]\nname = \"{name}\"\ncommand = [{:?}, \"{role}\"]\nhosts = [\"{name}\"]\nrestart = \"temporary\"\n",
        example("test-backpressure").display().to_string()
    )
}

/// A flood into an LP that reads nothing fills every queue on its way; a
/// third LP's transactions on the flooded LP's sub-function (served by its
/// manager, which then stopped reading every peer ring) must still commit.
/// The 6-hop path (`SHMCOLAB_DIRECT=0`) puts the flood in the slow LP's
/// manager's queue.
#[test]
fn a_flood_into_a_slow_lp_does_not_hold_back_other_lps() {
    let dir = TempDir::new("bp-flood");
    let name = unique("bpflood");
    let subfns = "[[subfunction]]\nname = \"sink\"\n[[subfunction]]\nname = \"flood\"\n[[subfunction]]\nname = \"teller\"\n";
    let body = format!(
        "{subfns}{}{}{}",
        process("sink", "sink"),
        process("flood", "flood"),
        process("teller", "teller")
    );
    let cfg = config(&dir.0, &name, &body);
    let mut cmd = Command::new(bin());
    cmd.arg("launch").arg(&cfg).env("SHMCOLAB_DIRECT", "0");
    let (code, out, err) = Launched::spawn(cmd, &name).wait(Duration::from_secs(180));
    assert!(
        out.contains("teller: 20 transactions"),
        "the teller's transactions waited behind the flood\nstdout:\n{out}\nstderr:\n{err}"
    );
    assert!(out.contains("flood: "), "{out}\n{err}");
    assert!(
        !out.contains("failed") && !err.contains("failed"),
        "{out}\n{err}"
    );
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
}

/// An LP that sends to itself without reading is held back once its
/// manager has queued a bounded amount (it used to queue without limit).
#[test]
fn messages_an_lp_sends_to_itself_are_bounded() {
    let dir = TempDir::new("bp-self");
    let name = unique("bpself");
    let body = format!(
        "[[subfunction]]\nname = \"selfish\"\n{}",
        process("selfish", "selfish")
    );
    let cfg = config(&dir.0, &name, &body);
    let (code, out, err) = Launched::start(&cfg, &name).wait(Duration::from_secs(180));
    assert!(
        out.contains("selfish: held back after"),
        "stdout:\n{out}\nstderr:\n{err}"
    );
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
}
