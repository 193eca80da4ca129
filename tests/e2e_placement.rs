//! End-to-end test of placement: a light collaboration on one CPU
//! (compact), a busy one spread with LPs and managers on separate CPUs
//! (mixed on every CPU when there are over 64 processes a CPU),
//! CPU-bound LPs let onto every CPU (how the LP programs get built:
//! `tests/common/mod.rs`).

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// One test at a time: each judges CPU use and placement, and another
/// test's load on the same two CPUs (a flood, durable commits) made a
/// paced LP look CPU-bound (it waited for a CPU) and widened it.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

/// The first two CPUs this test may use; `None` (the test is skipped) with
/// fewer: launch needs two to have a choice.
fn two_cpus() -> Option<Vec<usize>> {
    let mine = cpus_of("self").unwrap();
    if mine.len() < 2 {
        eprintln!("skipped: launch needs two CPUs to have a choice");
        return None;
    }
    Some(mine[..2].to_vec())
}

/// The CPUs a process may run on, from `/proc/<pid>/status`
/// (`Cpus_allowed_list`, e.g. "0-1,4").
fn cpus_of(pid: &str) -> Option<Vec<usize>> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let list = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))?
        .trim();
    let mut out = Vec::new();
    for part in list.split(',') {
        match part.split_once('-') {
            Some((a, b)) => out.extend(a.parse::<usize>().ok()?..=b.parse::<usize>().ok()?),
            None => out.push(part.parse().ok()?),
        }
    }
    Some(out)
}

/// With more processes than CPUs, LPs go to one half of the CPUs and
/// managers to the other once ready; an LP that computes without pause is
/// then let onto every CPU, and one that sleeps stays where it was put.
#[test]
fn cpu_bound_lps_are_let_onto_every_cpu() {
    let _serial = one_at_a_time();
    let dir = TempDir::new("place");
    let name = unique("pl");
    let cfg = burners_and_calm_config(&dir.0, &name);
    // Launched on (at most) two CPUs, so that 4 LPs and 4 managers are more
    // processes than CPUs on any machine with two or more.
    let mine = cpus_of("self").unwrap();
    let all: Vec<usize> = mine.iter().copied().take(2).collect();
    let split = all.len() == 2;
    let (lp_cpus, mgr_cpus) = all.split_at(all.len().div_ceil(2));
    let run = launch_on(&all, &cfg, &name);
    // Placed once ready: from here the burners are on the LPs' CPUs until
    // the governor lets them out (which it prints).
    let v = wait_status(&name, "4 ready LPs", |v| all_ready(v, 4));
    let lps = lps_and_managers(&v);
    wait_until_burners_are_wide(&lps, &all, split);
    for (n, pid, mpid) in &lps {
        let (want_mgr, want_calm) = if split {
            (mgr_cpus, lp_cpus)
        } else {
            (&all[..], &all[..])
        };
        assert_eq!(cpus_of(mpid).as_deref(), Some(want_mgr), "manager of {n}");
        if n == "calm" {
            assert_eq!(
                cpus_of(pid).as_deref(),
                Some(want_calm),
                "calm, an LP that sleeps"
            );
        }
    }
    let stop = Command::new(bin()).args(["stop", &name]).output().unwrap();
    assert!(stop.status.success());
    let (_code, _out, err) = run.wait(Duration::from_secs(60));
    if split {
        assert!(err.contains("burner.0 is CPU-bound"), "{err}");
        assert!(!err.contains("calm is CPU-bound"), "{err}");
    }
}

/// Three LPs that compute without pause ("burner") and one that sleeps
/// ("calm"), none restarted.
fn burners_and_calm_config(dir: &Path, name: &str) -> PathBuf {
    write_config(
        dir,
        &format!(
            r#"
name = "{name}"
report_interval_ms = 20
grace_ms = 500
[[subfunction]]
name = "burn"
partitions = 3
[[subfunction]]
name = "calm"
[[process]]
name = "burner"
instances = 3
command = ["{idle}", "burn"]
hosts = ["burn/*"]
restart = "temporary"
[[process]]
name = "calm"
command = ["{idle}"]
hosts = ["calm"]
restart = "temporary"
"#,
            idle = example("idle").display(),
        ),
    )
}

/// `shmcollab launch cfg` under `taskset -c` with the CPUs `cpus`.
fn launch_on(cpus: &[usize], cfg: &Path, name: &str) -> Launched {
    let list = cpus
        .iter()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let mut taskset = Command::new("taskset");
    taskset
        .args(["-c", &list])
        .arg(bin())
        .arg("launch")
        .arg(cfg);
    Launched::spawn(taskset, name)
}

/// (name, pid, manager pid) of every LP in a status, pids as JSON text.
fn lps_and_managers(v: &serde_json::Value) -> Vec<(String, String, String)> {
    v["lps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["name"].as_str().unwrap().to_owned(),
                l["pid"].to_string(),
                l["manager_pid"].to_string(),
            )
        })
        .collect()
}

/// Waits (watchdog: 30 s) until every burner may run on all of `all`;
/// returns at once when the CPUs were not `split`.
fn wait_until_burners_are_wide(lps: &[(String, String, String)], all: &[usize], split: bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let burners_wide = lps
            .iter()
            .filter(|(n, _, _)| n.starts_with("burner"))
            .all(|(_, pid, _)| cpus_of(pid).as_deref() == Some(all));
        if !split || burners_wide {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "burners never got every CPU: {:?}",
            lps.iter()
                .map(|(n, p, _)| (n, cpus_of(p)))
                .collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A light collaboration (a request every 5 ms) is compact: both managers
/// and both LPs on one CPU, the supervisor on the other (so that a load
/// that fills the compact CPU cannot delay the look that spreads it), and
/// it stays so. A saturating one
/// (requests back to back) spreads: LPs on one CPU, managers on the other,
/// the supervisor on both. Read from the CPU affinity of the real processes.
#[test]
fn a_light_collaboration_is_compact_and_a_saturating_one_spreads() {
    let _serial = one_at_a_time();
    let Some(all) = two_cpus() else {
        return;
    };
    let (lp_cpus, mgr_cpus) = (vec![all[0]], vec![all[1]]);

    let dir = TempDir::new("compact");
    let name = unique("cpt");
    let cfg = pingpong_config(&dir.0, &name, &["paced", "1000000", "5000"], "", false);
    let run = launch_on(&all, &cfg, &name);
    let procs = processes(&name, run.pid());
    let compact = |r: Role| match r {
        Role::Supervisor => mgr_cpus.clone(),
        _ => lp_cpus.clone(),
    };
    wait_placed(&procs, compact, "compact");
    // Six of the governor's periods later, it is still compact.
    std::thread::sleep(Duration::from_millis(1500));
    assert_placed(&procs, compact, "still compact");
    let (_, _, err) = stop(run, &name);
    assert!(!err.contains("load heavy"), "{err}");

    let dir = TempDir::new("spread");
    let name = unique("spr");
    let cfg = pingpong_config(&dir.0, &name, &["rtt", "1000000000"], "", false);
    let run = launch_on(&all, &cfg, &name);
    let procs = processes(&name, run.pid());
    let spread = |r: Role| match r {
        Role::Supervisor => all.clone(),
        Role::Manager => mgr_cpus.clone(),
        Role::Lp => lp_cpus.clone(),
    };
    wait_placed(&procs, spread, "spread");
    std::thread::sleep(Duration::from_millis(1500));
    // Still spread: the managers on theirs. An LP may have been widened to
    // every CPU meanwhile: the governor does that to an LP that wanted a
    // CPU outside its waits for half a period, and on a loaded machine the
    // time it waits on the run queue counts (it then says so, checked
    // below); a fall back to compact would move the managers.
    let (widened, off): (Vec<_>, Vec<_>) = misplaced(&procs, spread)
        .into_iter()
        .partition(|(r, _, on)| *r == Role::Lp && on.as_ref() == Some(&all));
    assert!(off.is_empty(), "not still spread: {off:?}");
    let (_, _, err) = stop(run, &name);
    assert!(err.contains("load heavy"), "{err}");
    assert!(
        widened.is_empty() || err.contains("is CPU-bound"),
        "LPs on every CPU without the governor's word: {widened:?}\n{err}"
    );
}

/// Over 64 processes a CPU (130 LPs and their managers on 2 CPUs), spread
/// mixes LPs and managers on every CPU instead of keeping them apart (a
/// mesh flood's LPs cost more CPU per message than its managers: apart,
/// the LPs' CPU was the bottleneck; benches/README.md). Fixed `placement =
/// "spread"`, so that idle LPs spread; read from the processes' affinity
/// once every LP is ready, and again six governor periods later.
#[test]
fn many_processes_a_cpu_are_mixed_when_spread() {
    let _serial = one_at_a_time();
    let Some(all) = two_cpus() else {
        return;
    };
    const N: usize = 130;
    let dir = TempDir::new("mixed");
    let name = unique("mix");
    let cfg = idle_config(&dir.0, &name, N);
    let text = std::fs::read_to_string(&cfg).unwrap();
    let text = text.replacen(
        "report_interval_ms",
        "placement = \"spread\"\nreport_interval_ms",
        1,
    );
    std::fs::write(&cfg, text).unwrap();
    let run = launch_on(&all, &cfg, &name);
    let v = wait_status(&name, "130 ready LPs", |v| all_ready(v, N));
    let mut procs = vec![(Role::Supervisor, run.pid().to_string())];
    for (_, lp, mgr) in lps_and_managers(&v) {
        procs.push((Role::Manager, mgr));
        procs.push((Role::Lp, lp));
    }
    let mixed = |_: Role| all.clone();
    wait_placed(&procs, mixed, "mixed");
    std::thread::sleep(Duration::from_millis(1500));
    assert_placed(&procs, mixed, "still mixed");
    let (_, _, err) = stop(run, &name);
    assert!(err.contains("LPs and managers mixed on CPUs"), "{err}");
}

/// `placement = "paired"`: each LP on the one CPU of its own manager, the
/// two pairs on different CPUs, the supervisor on both; and it stays so
/// under a saturating load (requests back to back), which would spread
/// `auto`. Read from the CPU affinity of the real processes.
#[test]
fn paired_puts_each_lp_on_its_managers_cpu() {
    let _serial = one_at_a_time();
    let Some(all) = two_cpus() else {
        return;
    };
    let dir = TempDir::new("paired");
    let name = unique("par");
    let cfg = pingpong_config(&dir.0, &name, &["rtt", "1000000000"], "", false);
    let text = std::fs::read_to_string(&cfg).unwrap();
    let text = text.replacen('\n', "\nplacement = \"paired\"\n", 1);
    std::fs::write(&cfg, text).unwrap();
    let run = launch_on(&all, &cfg, &name);
    stays_paired(&run, &name, &all);
    let (_, _, err) = stop(run, &name);
    assert!(err.contains("shmcollab: paired"), "{err}");
    assert!(!err.contains("load heavy"), "{err}");
}

/// Waits until the 2 LPs of `name` are paired (each on the one CPU of its
/// own manager, the two pairs on different CPUs of `all`, the supervisor
/// on `all`), then checks that they still are six governor periods later.
fn stays_paired(run: &Launched, name: &str, all: &[usize]) {
    let v = wait_status(name, "2 ready LPs", |v| all_ready(v, 2));
    let pairs = lps_and_managers(&v);
    let sup = run.pid().to_string();
    let look = || {
        let on: Vec<_> = pairs
            .iter()
            .map(|(_, lp, mgr)| (cpus_of(mgr), cpus_of(lp)))
            .collect();
        let ok = cpus_of(&sup).as_deref() == Some(all)
            && on
                .iter()
                .all(|(m, l)| m == l && m.as_ref().is_some_and(|c| c.len() == 1))
            && on[0].0 != on[1].0;
        (ok, on)
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !look().0 {
        assert!(Instant::now() < deadline, "never paired: {:?}", look().1);
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(1500));
    let (ok, on) = look();
    assert!(ok, "not paired any more: {on:?}");
}

/// `placement = "auto"` (the default) pairs a busy collaboration whose LPs
/// commit transactions to their own managers (each LP and its manager on
/// one CPU, every wait a sleep: commits 1.3-2.2 x faster than spread), as
/// the governor says on stderr.
#[test]
fn auto_pairs_lps_that_commit_to_their_own_managers() {
    let _serial = one_at_a_time();
    let Some(all) = two_cpus() else {
        return;
    };
    let dir = TempDir::new("autopair");
    let name = unique("apr");
    let bench = example("txn-bench").display().to_string();
    let mut text = format!(
        "name = \"{name}\"\nstate_dir = {:?}\n[[subfunction]]\nname = \"k\"\npartitions = 2\n",
        dir.0.join("state").display().to_string()
    );
    for i in 0..2 {
        // Durable increments of a key of its own sub-function, back to
        // back, for 60 s (the stop ends them sooner).
        text.push_str(&format!(
            "\n[[process]]\nname = \"b{i}\"\ncommand = [{bench:?}, \"one\", \"60\", \"2\"]\n\
             hosts = [\"k/{i}\"]\nrestart = \"temporary\"\n"
        ));
    }
    let cfg = write_config(&dir.0, &text);
    let run = launch_on(&all, &cfg, &name);
    stays_paired(&run, &name, &all);
    let (_, _, err) = stop(run, &name);
    assert!(
        err.contains("shmcollab: paired")
            && err.contains("transactions with the LPs' own managers"),
        "{err}"
    );
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Supervisor,
    Manager,
    Lp,
}

/// Every process of the collaboration `name` whose supervisor is `pid`,
/// once its 2 LPs are ready: (role, pid).
fn processes(name: &str, pid: u32) -> Vec<(Role, String)> {
    let v = wait_status(name, "2 ready LPs", |v| all_ready(v, 2));
    let mut out = vec![(Role::Supervisor, pid.to_string())];
    for (_, lp, mgr) in lps_and_managers(&v) {
        out.push((Role::Manager, mgr));
        out.push((Role::Lp, lp));
    }
    out
}

/// The processes of `procs` not on the CPUs `want` gives their role.
fn misplaced(
    procs: &[(Role, String)],
    want: impl Fn(Role) -> Vec<usize>,
) -> Vec<(Role, String, Option<Vec<usize>>)> {
    procs
        .iter()
        .map(|(r, p)| (*r, p.clone(), cpus_of(p)))
        .filter(|(r, _, on)| on.as_ref() != Some(&want(*r)))
        .collect()
}

/// Waits (watchdog: 30 s) until every process is where `want` says.
fn wait_placed(procs: &[(Role, String)], want: impl Fn(Role) -> Vec<usize>, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let off = misplaced(procs, &want);
        if off.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "never {what}: {off:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn assert_placed(procs: &[(Role, String)], want: impl Fn(Role) -> Vec<usize>, what: &str) {
    let off = misplaced(procs, want);
    assert!(off.is_empty(), "not {what}: {off:?}");
}

/// `shmcollab stop name`, then the launch's exit code and output.
fn stop(run: Launched, name: &str) -> (i32, String, String) {
    let stop = Command::new(bin()).args(["stop", name]).output().unwrap();
    assert!(stop.status.success());
    run.wait(Duration::from_secs(60))
}
