//! Two-phase commits across launches on the same `state_dir` (issue 9): the
//! state outlives a collaboration, so the decisions a manager remembers (a
//! participant's applied commits, a leader's decisions, refusals) come back
//! at the next launch, while its LPs commit new transactions. A transaction
//! id that a later launch hands out again would be answered from an earlier
//! launch's decision: a participant restarted before its Prepare was durable
//! told the leader "prepared" from the old commit of the same id, and the
//! leader committed its own part alone (an increment of the LP's counter
//! without the shared total: `polyglot`'s "the invariant does NOT hold").
//!
//! Real processes: `shmcollab launch` again and again on one state
//! directory, managers killed with SIGKILL (at an exact protocol step with
//! `SHMCOLAB_CRASH_AT`, or at random moments from here), collaborations
//! stopped (SIGTERM through `shmcollab stop`) or killed whole, then relaunched.

mod common;

use common::*;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn launch(cfg: &Path, name: &str, env: &[(&str, &Path)]) -> Launched {
    let mut cmd = Command::new(bin());
    cmd.arg("launch").arg(cfg);
    for (k, v) in env {
        cmd.env(k, v);
    }
    Launched::spawn(cmd, name)
}

#[test]
fn a_host_restarted_in_a_later_launch_does_not_answer_a_probe_with_an_earlier_launchs_commit() {
    let dir = TempDir::new("txnrelaunch-probe");
    let log = dir.0.join("incr.log");
    let name = unique("trprobe");
    // Launch 1: 40 two-phase increments, all applied at the peer's manager.
    let cfg = incr_config(&dir.0, &name, 40, &log, true);
    let (code, out, err) = launch(&cfg, &name, &[]).wait(Duration::from_secs(120));
    assert_eq!(code, 0, "launch 1:\n{out}\n{err}");
    // Launch 2, same state: the peer's manager is killed after appending
    // its 20th Prepare (not durable); restarted, it is probed for it.
    let cfg = incr_config(&dir.0, &name, 100, &log, true);
    let marker = dir.0.join("crashed");
    let point = Path::new("host-prepared:20");
    let env = [
        ("SHMCOLAB_CRASH_AT", point),
        ("SHMCOLAB_CRASH_ONCE", &*marker),
    ];
    let (code, out, err) = launch(&cfg, &name, &env).wait(Duration::from_secs(180));
    assert_eq!(code, 0, "launch 2:\n{out}\n{err}");
    assert!(
        marker.exists() && err.contains("died (signal: 9"),
        "launch 2: the crash point was not reached:\n{err}"
    );
    // Launch 3: bank-incr checks at its start that both counters are equal.
    let (code, out, err) = launch(&cfg, &name, &[]).wait(Duration::from_secs(120));
    let all = incr_log(&log);
    assert!(
        all.iter().all(|(k, _)| k != "torn"),
        "half-applied commit across launches: {all:?}\n{out}\n{err}"
    );
    assert_eq!(code, 0, "launch 3:\n{out}\n{err}\nlog: {all:?}");
    check_acks(&all, "incr");
}

/// Each start finds at least the last acknowledged value, at most one more.
fn check_acks(all: &[(String, u64)], who: &str) {
    let mut last_ack = 0;
    for (k, v) in all {
        match k.as_str() {
            "ack" => last_ack = *v,
            "start" => assert!(
                (last_ack..=last_ack + 1).contains(v),
                "{who}: a start found {v}, the last acknowledged was {last_ack}: {all:?}"
            ),
            _ => {}
        }
    }
}

/// `a` and `b` each add 1 to their own counter and to `tally/total` (hosted
/// by `t`'s manager) in each transaction: two leaders, one participant,
/// contention on the total (refused prepares, aborts).
fn tally_config(dir: &Path, name: &str, n: u64) -> std::path::PathBuf {
    let incr = |who: &str| {
        format!(
            r#"[[process]]
name = "{who}"
command = [{p:?}, "{n}"]
hosts = ["{who}"]
restart = "transient"
max_restarts = 20
env = {{ INCR_LOG = {log:?}, INCR_TOTAL = "tally" }}
"#,
            p = example("bank-incr").display().to_string(),
            log = dir.join(format!("{who}.log")).display().to_string(),
        )
    };
    write_config(
        dir,
        &format!(
            r#"name = "{name}"
report_interval_ms = 100

[[subfunction]]
name = "a"

[[subfunction]]
name = "b"

[[subfunction]]
name = "tally"

{a}
{b}
[[process]]
name = "t"
command = [{idle:?}]
hosts = ["tally"]
restart = "transient"
max_restarts = 20
"#,
            a = incr("a"),
            b = incr("b"),
            idle = example("idle").display().to_string(),
        ),
    )
}

/// The crash points of the two-phase commit (`runtime/src/failpoint.rs`).
const POINTS: [&str; 9] = [
    "leader-staged",
    "leader-committed",
    "leader-acknowledged",
    "leader-finished",
    "host-prepared",
    "host-durable",
    "host-voted",
    "host-deciding",
    "host-forgetting",
];

/// A small deterministic generator (xorshift64*), seeded by the caller.
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

/// The pids of the managers (and LPs) of collaboration `name`.
fn pids(name: &str, key: &str) -> Vec<i32> {
    let Some(v) = status_json(name) else {
        return Vec::new();
    };
    let lps = v["lps"].as_array().cloned().unwrap_or_default();
    lps.iter()
        .filter_map(|l| l[key].as_u64())
        .map(|p| p as i32)
        .collect()
}

fn kill9(pid: i32) {
    // SAFETY: kill(2) with a pid read from the collaboration's status.
    unsafe { libc::kill(pid, libc::SIGKILL) };
}

/// The last `done V T` of a log: (counter, total).
fn done(dir: &Path, who: &str) -> Option<(u64, u64)> {
    let text = std::fs::read_to_string(dir.join(format!("{who}.log"))).unwrap_or_default();
    let line = text.lines().rev().find(|l| l.starts_with("done "))?;
    let mut w = line.split(' ').skip(1).map(|x| x.parse().ok());
    Some((w.next()??, w.next()??))
}

/// How many `done` lines `who` logged.
fn dones(dir: &Path, who: &str) -> usize {
    let t = std::fs::read_to_string(dir.join(format!("{who}.log"))).unwrap_or_default();
    t.lines().filter(|l| l.starts_with("done ")).count()
}

/// Wait until both incrementers logged `done` once more than `before` (or
/// the watchdog); then stop.
fn finish(l: Launched, dir: &Path, name: &str, before: (usize, usize)) -> (String, String) {
    let deadline = Instant::now() + Duration::from_secs(240);
    while dones(dir, "a") <= before.0 || dones(dir, "b") <= before.1 {
        assert!(Instant::now() < deadline, "watchdog: {name} did not finish");
        std::thread::sleep(Duration::from_millis(50));
    }
    stop(name);
    let (_, out, err) = l.wait(Duration::from_secs(60));
    (out, err)
}

/// `shmcollab stop`, again until it is taken (the session may not be
/// there yet).
fn stop(name: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        let o = Command::new(bin()).args(["stop", name]).output();
        if o.is_ok_and(|o| o.status.success()) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_shared_total_stays_the_sum_of_the_counters_across_stops_kills_and_relaunches() {
    let dir = TempDir::new("txnrelaunch-tally");
    let name = unique("trtally");
    let seed = std::env::var("TALLY_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
            t.map_or(1, |d| d.as_nanos() as u64) | 1
        });
    eprintln!("seed {seed} (TALLY_SEED reruns it)");
    let mut rng = Rng(seed);
    const ROUNDS: u64 = 8;
    const PER_ROUND: u64 = 60;
    for round in 0..ROUNDS {
        let cfg = tally_config(&dir.0, &name, PER_ROUND * (round + 1));
        // Half the rounds, a manager also kills itself at one exact step of
        // the protocol (the first to pass it the nth time; restarted).
        let point = format!(
            "{}:{}",
            POINTS[rng.below(POINTS.len() as u64) as usize],
            1 + rng.below(40)
        );
        let marker = dir.0.join(format!("crashed{round}"));
        let armed = rng.below(2) == 0;
        let l = if armed {
            let env = [
                ("SHMCOLAB_CRASH_AT", Path::new(&point)),
                ("SHMCOLAB_CRASH_ONCE", &*marker),
            ];
            launch(&cfg, &name, &env)
        } else {
            launch(&cfg, &name, &[])
        };
        std::thread::sleep(Duration::from_millis(300 + rng.below(1500)));
        let action = rng.below(3);
        eprintln!("round {round}: crash point {armed} ({point}), action {action}");
        match action {
            // The collaboration stopped: SIGTERM to the managers.
            0 => {
                stop(&name);
                let _ = l.wait(Duration::from_secs(60));
            }
            // One manager killed (restarted by the supervisor), then a
            // second moment, then everything killed.
            1 => {
                let m = pids(&name, "manager_pid");
                if !m.is_empty() {
                    kill9(m[rng.below(m.len() as u64) as usize]);
                }
                std::thread::sleep(Duration::from_millis(rng.below(800)));
                kill_all(l, &name);
            }
            // Everything killed at once: managers, LPs, supervisor.
            _ => kill_all(l, &name),
        }
    }
    // A last launch that finishes, and one that only reads.
    let n = PER_ROUND * (ROUNDS + 1);
    let cfg = tally_config(&dir.0, &name, n);
    let before = (dones(&dir.0, "a"), dones(&dir.0, "b"));
    let (out, err) = finish(launch(&cfg, &name, &[]), &dir.0, &name, before);
    let before = (dones(&dir.0, "a"), dones(&dir.0, "b"));
    let (out2, err2) = finish(launch(&cfg, &name, &[]), &dir.0, &name, before);
    let (a, b) = (done(&dir.0, "a"), done(&dir.0, "b"));
    let ((ca, ta), (cb, tb)) = (a.expect("a done"), b.expect("b done"));
    assert_eq!((ca, cb), (n, n), "{out}\n{err}\n{out2}\n{err2}");
    assert_eq!(ta, tb, "nobody wrote between the two reads");
    assert_eq!(
        ta,
        ca + cb,
        "seed {seed}: total {ta} is not a + b = {ca} + {cb}: a transaction was half applied"
    );
    for who in ["a", "b"] {
        check_acks(&incr_log(&dir.0.join(format!("{who}.log"))), who);
    }
}

/// kill -9 of every manager of the collaboration and of its supervisor
/// (their children die with them: `PR_SET_PDEATHSIG`); nothing stops
/// cleanly.
fn kill_all(l: Launched, name: &str) {
    for p in pids(name, "manager_pid") {
        kill9(p);
    }
    kill9(l.pid() as i32);
    let _ = l.wait(Duration::from_secs(60));
    // Its session directory stays in /dev/shm: `shmcollab clean` removes it.
    clean_killed(name);
}
