//! Config parsing, partitioning and assignment of valid configs. Refused
//! configs and their messages are in `config_errors.rs`.

mod common;

use common::{parse, small};
use shmcollab_runtime::plan::{CoordinatorChoice, Placement, Plan, RestartType};
use shmcollab_supervisor::config::Config;
use std::path::{Path, PathBuf};

const FULL: &str = r#"name = "wordcount"
coordinator = "counter.2"
secure = false
state_dir = "/var/tmp/wc-state"
report_interval_ms = 250
ring_capacity = 65536
grace_ms = 500
build = ["cargo", "build", "--release", "--examples"]

[[subfunction]]
name = "split"

[[subfunction]]
name = "count"
partitions = 8

[[subfunction]]
name = "sink"

[[process]]
name = "splitter"
command = ["../../target/release/examples/wc", "split"]
hosts = ["split"]

[[process]]
name = "counter"
command = ["./wc", "count", "--fast"]
instances = 4
hosts = ["count/*"]
env = { RUST_LOG = "info", A_FIRST = "1" }
restart = "permanent"
max_restarts = 5
within_secs = 30

[[process]]
name = "sink"
command = ["python3", "sink.py"]
hosts = ["sink"]
restart = "temporary"
"#;

/// A temporary directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "shmcollab-config-test-{tag}-{}-{:?}",
            std::process::id(),
            std::time::SystemTime::now()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir.canonicalize().unwrap())
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn full_config_gives_the_exact_plan() {
    let tmp = TempDir::new("full");
    let path = tmp.0.join("config.toml");
    std::fs::write(&path, FULL).unwrap();
    let cfg = Config::load(&path).unwrap();
    let dir = tmp.0.clone();
    full_collaboration_settings(&cfg, &dir);
    full_lps_and_their_subfunctions(cfg.plan());
    full_process_settings(cfg.plan(), &dir);
}

/// `FULL`'s collaboration-wide settings and sub-functions, in order.
fn full_collaboration_settings(cfg: &Config, dir: &Path) {
    assert_eq!(cfg.name(), "wordcount");
    assert_eq!(cfg.dir(), dir);
    assert_eq!(
        cfg.build_command().unwrap(),
        ["cargo", "build", "--release", "--examples"]
    );
    let plan = cfg.plan();
    assert_eq!(plan.name, "wordcount");
    assert!(!plan.secure);
    assert_eq!(plan.report_interval_ms, 250);
    assert_eq!(plan.ring_capacity, 65536);
    assert_eq!(plan.grace_ms, 500);
    assert_eq!(plan.state_dir, PathBuf::from("/var/tmp/wc-state"));
    let mut subfns = vec!["split".to_string()];
    subfns.extend((0..8).map(|i| format!("count/{i}")));
    subfns.push("sink".into());
    assert_eq!(plan.subfns, subfns);
}

/// `FULL`'s LPs in slot order, the coordinator's slot, and the round-robin
/// assignment of the partitions.
fn full_lps_and_their_subfunctions(plan: &Plan) {
    let names: Vec<&str> = plan.lps.iter().map(|lp| lp.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "splitter",
            "counter.0",
            "counter.1",
            "counter.2",
            "counter.3",
            "sink"
        ]
    );
    // counter.2 is slot 3.
    assert_eq!(plan.coordinator, CoordinatorChoice::Slot(3));
    let hosted: Vec<Vec<&str>> = plan
        .lps
        .iter()
        .map(|lp| lp.subfns.iter().map(String::as_str).collect())
        .collect();
    assert_eq!(
        hosted,
        [
            vec!["split"],
            vec!["count/0", "count/4"],
            vec!["count/1", "count/5"],
            vec!["count/2", "count/6"],
            vec!["count/3", "count/7"],
            vec!["sink"],
        ]
    );
}

/// `FULL`'s per-process settings as each LP got them: commands resolved
/// against the config's directory, env sorted, restart policies.
fn full_process_settings(plan: &Plan, dir: &Path) {
    let splitter = &plan.lps[0];
    assert_eq!(splitter.group, "splitter");
    assert_eq!(
        splitter.command,
        [
            dir.join("../../target/release/examples/wc")
                .to_str()
                .unwrap(),
            "split"
        ]
    );
    assert_eq!(splitter.cwd, dir);
    assert!(splitter.env.is_empty());
    assert_eq!(splitter.restart, RestartType::Transient);
    assert_eq!((splitter.max_restarts, splitter.within_secs), (3, 10));

    for lp in &plan.lps[1..5] {
        assert_eq!(lp.group, "counter");
        assert_eq!(
            lp.command,
            [dir.join("./wc").to_str().unwrap(), "count", "--fast"]
        );
        assert_eq!(
            lp.env,
            [
                ("A_FIRST".to_string(), "1".to_string()),
                ("RUST_LOG".to_string(), "info".to_string())
            ]
        );
        assert_eq!(lp.restart, RestartType::Permanent);
        assert_eq!((lp.max_restarts, lp.within_secs), (5, 30));
    }
    let sink = &plan.lps[5];
    assert_eq!(sink.command, ["python3", "sink.py"]);
    assert_eq!(sink.restart, RestartType::Temporary);
}

#[test]
fn defaults() {
    let tmp = TempDir::new("defaults");
    let path = tmp.0.join("config.toml");
    std::fs::write(&path, small("")).unwrap();
    let cfg = Config::load(&path).unwrap();
    assert_eq!(cfg.build_command(), None);
    let plan = cfg.plan();
    assert!(plan.secure);
    assert_eq!(plan.coordinator, CoordinatorChoice::Auto);
    assert_eq!(plan.state_dir, tmp.0.join("state"));
    assert_eq!(plan.report_interval_ms, 1000);
    assert_eq!(plan.ring_capacity, 262_144);
    assert_eq!(plan.grace_ms, 3000);
    assert_eq!(plan.placement, Placement::Auto);
    assert_eq!(plan.cpus, None);
    assert_eq!(plan.subfns, ["a"]);
    assert_eq!(plan.lps.len(), 1);
    let lp = &plan.lps[0];
    assert_eq!(lp.name, "p");
    assert_eq!(lp.group, "p");
    assert_eq!(lp.command, ["prog"]);
    assert_eq!(lp.subfns, ["a"]);
    assert_eq!(lp.restart, RestartType::Transient);
    assert_eq!((lp.max_restarts, lp.within_secs), (3, 10));
    assert!(lp.env.is_empty());
}

#[test]
fn relative_state_dir_and_config_in_current_dir() {
    let cfg = Config::parse(
        &small("").replace("name = \"t\"\n", "name = \"t\"\nstate_dir = \"data/st\"\n"),
        Path::new("config.toml"),
    )
    .unwrap();
    let cwd = std::env::current_dir().unwrap().canonicalize().unwrap();
    assert_eq!(cfg.dir(), cwd);
    assert_eq!(cfg.plan().state_dir, cwd.join("data/st"));
    assert_eq!(cfg.plan().lps[0].cwd, cwd);
}

#[test]
fn hosts_patterns_family_and_exact() {
    let text = r#"name = "t"
[[subfunction]]
name = "a"
[[subfunction]]
name = "b"
partitions = 3
[[subfunction]]
name = "c"
[[process]]
name = "x"
command = ["p"]
instances = 2
hosts = ["b", "c", "b/1"]
[[process]]
name = "y"
command = ["p"]
hosts = ["a"]
"#;
    let plan = parse(text).unwrap().into_plan();
    assert_eq!(plan.subfns, ["a", "b/0", "b/1", "b/2", "c"]);
    // Selection in table order: b/0 b/1 b/2 c, dealt over two instances.
    assert_eq!(plan.lps[0].name, "x.0");
    assert_eq!(plan.lps[0].subfns, ["b/0", "b/2"]);
    assert_eq!(plan.lps[1].subfns, ["b/1", "c"]);
    assert_eq!(plan.lps[2].name, "y");
    assert_eq!(plan.lps[2].subfns, ["a"]);

    let star = text.replace("hosts = [\"b\", \"c\", \"b/1\"]", "hosts = [\"*\"]");
    // "*" takes "a" too, so "y" hosts it a second time.
    let shown = parse(&star).unwrap_err().to_string();
    assert!(shown.contains("already hosts"), "{shown}");
}
