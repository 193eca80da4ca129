//! End-to-end tests of the data plane under tampering (issue 11): garbage
//! written into a live ring segment under /dev/shm/<session>/ is reset and
//! counted, and no process exits; forged replies do not answer a request;
//! wordcount that lost words says so and fails (how the LP programs get
//! built: `tests/common/mod.rs`).

mod common;

use common::*;
use shmcollab::runtime::wire::RingName;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Byte offsets in a ring segment file: the segment header (128 bytes),
/// then the ring's meta line (capacity at +16), head line, tail line, two
/// doorbell lines, then the data area.
const CAPACITY_AT: u64 = 128 + 16;
const HEAD_AT: u64 = 128 + 128;
const TAIL_AT: u64 = 128 + 256;
const DATA_AT: u64 = 128 + 640;

/// The ring segment of session `sdir` whose name `pick` accepts.
fn ring_file(sdir: &Path, pick: impl Fn(RingName) -> bool) -> PathBuf {
    let names: Vec<String> = std::fs::read_dir(sdir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().into_string().unwrap())
        .collect();
    let n = names
        .iter()
        .find(|n| RingName::parse(n).is_some_and(&pick))
        .unwrap_or_else(|| panic!("no such ring among {names:?}"));
    sdir.join(n)
}

fn read_u64(f: &std::fs::File, at: u64) -> u64 {
    let mut b = [0u8; 8];
    f.read_exact_at(&mut b, at).unwrap();
    u64::from_le_bytes(b)
}

fn read_u32(f: &std::fs::File, at: u64) -> u32 {
    let mut b = [0u8; 4];
    f.read_exact_at(&mut b, at).unwrap();
    u32::from_le_bytes(b)
}

fn signal(pid: u64, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap();
    assert!(ok.success(), "kill {sig} {pid}");
}

/// A pingpong whose ping (slot 0) waits for the file `go` before 100 round
/// trips, with `extra` TOML appended (more processes), launched and the LPs
/// named in `ready` ready: (launch, go file, session dir, status).
fn pingpong(
    dir: &TempDir,
    name: &str,
    extra: &str,
    ready: &[&str],
) -> (Launched, PathBuf, PathBuf, serde_json::Value) {
    let go = dir.0.join("go");
    let cfg = format!(
        r#"
name = "{name}"
report_interval_ms = 20
[[subfunction]]
name = "ping"
[[subfunction]]
name = "pong"
[[process]]
name = "ping"
command = ["{ping}", "wait", "{go}"]
hosts = ["ping"]
restart = "temporary"
[[process]]
name = "pong"
command = ["{pong}"]
hosts = ["pong"]
{extra}
"#,
        ping = example("pingpong-ping").display(),
        pong = example("pingpong-pong").display(),
        go = go.display(),
    );
    let run = Launched::start(&write_config(&dir.0, &cfg), name);
    let v = wait_status(name, "the LPs ready", |v| {
        ready
            .iter()
            .all(|n| lp_entry(v, n).is_some_and(|l| l["state"] == "ready"))
    });
    let sdir = session_dirs(name).pop().expect("session directory");
    (run, go, sdir, v)
}

/// Let ping go and wait for the collaboration to end with exit code 0;
/// returns (stdout, stderr).
fn go_and_finish(run: Launched, go: &Path) -> (String, String) {
    std::fs::write(go, b"go").unwrap();
    let (code, stdout, stderr) = run.wait(Duration::from_secs(60));
    assert_eq!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    (stdout, stderr)
}

/// Issue 11 item 5 and Build 4: garbage in the indices of an LP's outbound
/// ring used to make its manager exit ("LP ring: ring is corrupt"), to be
/// restarted with its LP. Now the ring is reset in place, the loss is
/// counted for that link in `status --json`, no process exits, and the LP
/// goes on sending through the same ring.
#[test]
fn garbage_in_an_lp_ring_is_reset_counted_and_nothing_exits() {
    let dir = TempDir::new("lpring");
    let name = unique("lr");
    let (run, go, sdir, before) = pingpong(&dir, &name, "", &["ping", "pong"]);
    let ping = lp_entry(&before, "ping").unwrap().clone();
    let ring = ring_file(&sdir, |r| matches!(r, RingName::LpOut { slot: 0, .. }));
    let f = std::fs::OpenOptions::new().write(true).open(&ring).unwrap();
    // A misaligned tail, as anyone who can write the file could put there.
    f.write_all_at(&3u64.to_le_bytes(), TAIL_AT).unwrap();
    drop(f);
    let v = wait_status(&name, "the loss counted on ping's link", |v| {
        lp_entry(v, "ping").is_some_and(|l| l["lost"].as_u64() >= Some(1))
    });
    let l = lp_entry(&v, "ping").unwrap();
    let links = l["links"].as_array().expect("links");
    assert!(
        links
            .iter()
            .any(|k| k["link"] == "lp" && k["rejected"].as_u64() >= Some(1)),
        "{l}"
    );
    // Nobody exited or was restarted.
    assert_eq!(l["restarts"], 0, "{l}");
    assert_eq!(l["pid"], ping["pid"], "{l}");
    assert_eq!(l["manager_pid"], ping["manager_pid"], "{l}");
    assert_eq!(l["generation"], ping["generation"], "{l}");
    // And ping's requests still go out through that ring.
    let (stdout, stderr) = go_and_finish(run, &go);
    assert!(stdout.contains("100 round trips of 64 B"), "{stdout}");
    assert!(stderr.contains("is corrupt"), "{stderr}");
    // Each LP exited once, at the end, and no manager exited early.
    assert_eq!(stderr.matches("ping exited").count(), 1, "{stderr}");
    assert!(!stderr.contains("LP ring:"), "{stderr}");
}

/// Issue 11 item 7: another LP ("mallory") sprays replies with correlation
/// ids 1..=2000 at ping before ping asks anything. Ids used to be
/// sequential from 1 and matched without looking at the sender: ping's
/// first request took mallory's "forged" as its answer (and ping, which
/// checks the echo, failed). Now ids are random and a reply counts only
/// from the owner of the sub-function asked.
#[test]
fn forged_replies_do_not_answer_a_request() {
    let dir = TempDir::new("forgerep");
    let name = unique("fr");
    // Mallory stays until ping may go (its report is seen by then).
    let mallory = format!(
        "[[subfunction]]\nname = \"mallory\"\n[[process]]\nname = \"mallory\"\ncommand = [\"{}\"]\nhosts = [\"mallory\"]\nrestart = \"transient\"\nenv = {{ PONG_FORGE_TO = \"0\", PONG_FORGE_UNTIL = \"{}\" }}\n",
        example("pingpong-pong").display(),
        dir.0.join("go").display(),
    );
    let (run, go, _sdir, _) = pingpong(&dir, &name, &mallory, &["ping", "pong"]);
    wait_status(&name, "mallory done forging", |v| {
        lp_entry(v, "mallory").is_some_and(|l| l["custom"]["forged"] == "done")
    });
    let (stdout, stderr) = go_and_finish(run, &go);
    assert!(
        stdout.contains("100 round trips of 64 B"),
        "{stdout}\n{stderr}"
    );
}

/// Build 4: wordcount must never print a wrong answer with exit code 0.
/// The splitter's manager is stopped while the splitter fills its ring;
/// a record in that ring gets a garbage marker; the manager, continued,
/// resets the ring (the words in it are lost, counted), and the splitter,
/// seeing fewer words counted than sent and frames lost, says so and the
/// collaboration fails. (Before: the manager exited on the garbage, was
/// restarted with a new splitter that sent every word again, and the run
/// ended with exit code 0 after printing "N words sent, M counted".)
#[test]
fn wordcount_that_lost_words_says_so_and_fails() {
    let dir = TempDir::new("wclost");
    let text: String = (0..30_000).map(|i| format!("w{} ", i % 300)).collect();
    std::fs::write(dir.0.join("text.txt"), text).unwrap();
    let go = dir.0.join("go");
    let name = unique("wl");
    let cfg = format!(
        r#"
name = "{name}"
report_interval_ms = 50
[[subfunction]]
name = "split"
[[subfunction]]
name = "count"
partitions = 8
[[process]]
name = "splitter"
command = ["{splitter}", "text.txt"]
hosts = ["split"]
restart = "temporary"
env = {{ WC_WAIT = "{go}" }}
[[process]]
name = "counter"
instances = 4
command = ["{counter}"]
hosts = ["count/*"]
restart = "transient"
"#,
        splitter = example("wordcount-splitter").display(),
        counter = example("wordcount-counter").display(),
        go = go.display(),
    );
    let run = Launched::start(&write_config(&dir.0, &cfg), &name);
    let v = wait_status(&name, "all 5 ready", |v| all_ready(v, 5));
    let mgr = lp_entry(&v, "splitter").unwrap()["manager_pid"]
        .as_u64()
        .expect("splitter's manager pid");
    let sdir = session_dirs(&name).pop().expect("session directory");
    let ring = ring_file(&sdir, |r| matches!(r, RingName::LpOut { slot: 0, .. }));
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&ring)
        .unwrap();
    let cap = read_u64(&f, CAPACITY_AT);
    signal(mgr, "-STOP");
    std::fs::write(&go, b"go").unwrap();
    // Watchdog only: the splitter fills the ring its manager does not read.
    let deadline = Instant::now() + Duration::from_secs(30);
    let head = loop {
        let (head, tail) = (read_u64(&f, HEAD_AT), read_u64(&f, TAIL_AT));
        if tail - head >= 4096 {
            break head;
        }
        assert!(Instant::now() < deadline, "watchdog: the ring never filled");
        std::thread::sleep(Duration::from_millis(5));
    };
    // The record after the one at the head (the manager may have that one
    // copied out already): its marker becomes garbage.
    let first = head % cap;
    let len = u64::from(read_u32(&f, DATA_AT + first));
    let next = (first + ((8 + len + 7) & !7)) % cap;
    f.write_all_at(&0xdead_beefu32.to_le_bytes(), DATA_AT + next + 4)
        .unwrap();
    signal(mgr, "-CONT");
    let (code, stdout, stderr) = run.wait(Duration::from_secs(120));
    assert_ne!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(
        stderr.contains("WRONG RESULT"),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stderr.contains("is corrupt"), "{stderr}");
}
