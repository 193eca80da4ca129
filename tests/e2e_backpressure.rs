//! Back-pressure across real processes (issue 11 item 6): one LP flooding a
//! slow LP holds back itself, not another LP's transactions served by the
//! slow LP's manager; messages an LP sends to itself are bounded; what an
//! LP sent just before it ended reaches a peer that reads late. The LP
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

/// Processes stopped with SIGSTOP, continued when dropped (also when the
/// test fails).
struct Stopped(Vec<i32>);

impl Stopped {
    fn stop(pids: Vec<i32>) -> Stopped {
        for &p in &pids {
            // SAFETY: kill has no memory preconditions; the pids are the
            // late LP's and its manager's, children of our launch.
            assert_eq!(unsafe { libc::kill(p, libc::SIGSTOP) }, 0, "SIGSTOP {p}");
        }
        Stopped(pids)
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        for &p in &self.0 {
            // SAFETY: as in `stop`.
            unsafe { libc::kill(p, libc::SIGCONT) };
        }
    }
}

/// An LP's last messages, still queued in its manager when the LP ends,
/// reach a peer that is not scheduled for a while (its LP and manager
/// stopped for 2 s: under load, 256 LPs flooding each other on 2 CPUs, a
/// receiver went unscheduled that long). The manager of the LP that ended
/// gave its queues 500 ms and then left: the messages were lost and the
/// peer waited for ever (`cargo bench --bench scale`, the mesh flood).
#[test]
fn last_words_of_an_lp_that_ended_reach_a_peer_that_reads_late() {
    let dir = TempDir::new("bp-last");
    let name = unique("bplast");
    let body = format!(
        "[[subfunction]]\nname = \"lastwords\"\n[[subfunction]]\nname = \"late\"\n{}{}",
        process("lastwords", "lastwords"),
        process("late", "late")
    );
    let cfg = config(&dir.0, &name, &body);
    let run = Launched::start(&cfg, &name);
    let v = wait_status(&name, "both LPs ready", |v| all_ready(v, 2));
    let late = lp_entry(&v, "late").expect("late in status");
    let pid = |k: &str| late[k].as_u64().expect("pid") as i32;
    // The manager first: it must not see its LP stop.
    let stopped = Stopped::stop(vec![pid("manager_pid"), pid("pid")]);
    std::fs::write(dir.0.join("go"), b"").unwrap();
    let sent = dir.0.join("lastwords.sent");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !sent.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "watchdog: lastwords never sent"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // lastwords has ended (or is about to): its messages wait in its
    // manager for late's manager to make a ring.
    std::thread::sleep(Duration::from_secs(2));
    drop(stopped);
    let (code, out, err) = run.wait(Duration::from_secs(120));
    assert!(
        out.contains("lastwords: 128 messages sent"),
        "stdout:\n{out}\nstderr:\n{err}"
    );
    assert!(
        out.contains("late: got 128 of 128"),
        "the last words were lost\nstdout:\n{out}\nstderr:\n{err}"
    );
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
}
