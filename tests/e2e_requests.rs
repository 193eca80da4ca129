//! Requests across real processes under `placement = "auto"` (two LPs on
//! two CPUs: compact, where a request and the sleep for its reply are one
//! step, `Doorbell::publish_then_wait`): a reply that comes long after the
//! requester's first sleep still arrives, and a request nobody answers
//! times out, neither early nor never. The LP program is
//! `tests/lps/requests.rs` (`cargo build --examples`).

mod common;

use common::*;
use std::process::Command;
use std::time::Duration;

#[test]
fn a_late_reply_arrives_and_an_unanswered_request_times_out() {
    let dir = TempDir::new("requests");
    let name = unique("requests");
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
    cmd.arg("launch").arg(&cfg);
    let (code, out, err) = Launched::spawn(cmd, &name).wait(Duration::from_secs(180));
    assert!(out.contains("asker: ok"), "stdout:\n{out}\nstderr:\n{err}");
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
}
