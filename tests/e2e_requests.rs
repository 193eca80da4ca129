//! Requests across real processes under `placement = "auto"` (two LPs on
//! two CPUs: compact, where a request and the sleep for its reply are one
//! step, `Doorbell::publish_then_wait`): a reply that comes long after the
//! requester's first sleep still arrives, and a request nobody answers
//! times out, neither early nor never. Both ways of that step: the wake
//! of the manager and the sleep as one io_uring submission (where the
//! kernel has it: the LP then counts them), and as two system calls
//! (`SHMCOLAB_IO_URING=0`). The LP program is `tests/lps/requests.rs`
//! (`cargo build --examples`).

mod common;

use common::*;
use std::process::Command;
use std::time::Duration;

#[test]
fn a_late_reply_arrives_and_an_unanswered_request_times_out() {
    let sleeps = requests("requests", &[]);
    if shmcollab::shm::WakeWait::new(true).usable() {
        assert!(sleeps > 0, "no request slept through the io_uring");
    } else {
        assert_eq!(sleeps, 0, "io_uring is unavailable here");
    }
}

#[test]
fn the_same_without_io_uring() {
    let sleeps = requests("requests_plain", &[("SHMCOLAB_IO_URING", "0")]);
    assert_eq!(sleeps, 0, "SHMCOLAB_IO_URING=0: every sleep the plain way");
}

/// Runs the asker and the slow LP with `env` set for the launch (the LPs
/// inherit it); the asker's one-call sleeps.
fn requests(tag: &str, env: &[(&str, &str)]) -> u64 {
    let dir = TempDir::new(tag);
    let name = unique(tag);
    let lp = |n: &str| {
        format!(
            "[[process]]\nname = \"{n}\"\ncommand = [{:?}, \"{n}\"]\nhosts = [\"{n}\"]\nrestart = \"temporary\"\n",
            example("test-requests").display().to_string()
        )
    };
    let body = format!(
        "name = \"{name}\"\n[[subfunction]]\nname = \"slow\"\n[[subfunction]]\nname = \"asker\"\n{}{}",
        lp("slow"),
        lp("asker")
    );
    let cfg = write_config(&dir.0, &body);
    let mut cmd = Command::new(bin());
    cmd.arg("launch").arg(&cfg).envs(env.iter().copied());
    let (code, out, err) = Launched::spawn(cmd, &name).wait(Duration::from_secs(180));
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    let sleeps = out
        .lines()
        .find_map(|l| {
            l.split_once("asker: ok, ")?
                .1
                .strip_suffix(" one-call sleeps")
        })
        .and_then(|n| n.trim().parse().ok());
    sleeps.unwrap_or_else(|| panic!("no \"asker: ok\" line\nstdout:\n{out}\nstderr:\n{err}"))
}
