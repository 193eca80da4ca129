//! Config parsing, partitioning and assignment, and the error messages.

use shmcollab_runtime::plan::{CoordinatorChoice, Placement, Plan, RestartType, SyncMode};
use shmcollab_supervisor::config::{line_col, Config, ConfigError};
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

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, Path::new("/nonexistent/cfg/config.toml"))
}

/// The error for `text`, checked to be at `line:col` and to name `field`.
/// Returns the displayed message.
fn error_at(text: &str, line: usize, col: usize, field: &str) -> String {
    let e = match parse(text) {
        Ok(_) => panic!("config accepted:\n{text}"),
        Err(e) => e,
    };
    let shown = e.to_string();
    assert_eq!(e.location(), Some((line, col)), "{shown}");
    let prefix = format!("/nonexistent/cfg/config.toml:{line}:{col}: ");
    assert!(shown.starts_with(&prefix), "{shown}");
    assert!(shown.contains(field), "{shown} does not name {field}");
    shown
}

/// A small valid config plus `extra` lines appended.
fn small(extra: &str) -> String {
    format!(
        "name = \"t\"\n\n[[subfunction]]\nname = \"a\"\n\n[[process]]\nname = \"p\"\n\
         command = [\"prog\"]\nhosts = [\"a\"]\n{extra}"
    )
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

#[test]
fn unreadable_file() {
    let path = Path::new("/nonexistent/shmcollab/config.toml");
    let e = Config::load(path).unwrap_err();
    assert!(matches!(e, ConfigError::Read { .. }));
    assert_eq!(
        e.to_string(),
        "/nonexistent/shmcollab/config.toml: cannot read the config file: \
         No such file or directory (os error 2)"
    );
}

#[test]
fn toml_syntax_error() {
    let text = small("").replace("hosts = [\"a\"]", "hosts = [\"a\"");
    let shown = error_at(&text, 9, 13, "syntax");
    assert!(shown.contains("TOML syntax error"), "{shown}");
    let text = small("restart = permanent\n");
    let shown = error_at(&text, 10, 11, "`restart`");
    assert!(shown.contains("TOML syntax error"), "{shown}");
    assert!(shown.contains("string values must be quoted"), "{shown}");
}

#[test]
fn unknown_field() {
    let text = small("colour = \"blue\"\n");
    let shown = error_at(&text, 10, 1, "`colour`");
    assert!(shown.contains("process \"p\""), "{shown}");
    assert!(
        shown.contains("unknown field `colour`, expected one of"),
        "{shown}"
    );

    let text = format!("secure = true\nfoo = 1\n{}", small(""));
    let shown = error_at(&text, 2, 1, "field `foo`");
    assert!(shown.contains("unknown field `foo`"), "{shown}");

    let text = small("").replace("name = \"a\"\n", "name = \"a\"\nparts = 3\n");
    error_at(&text, 5, 1, "subfunction \"a\", field `parts`");
}

#[test]
fn wrong_type() {
    let text = small("instances = \"four\"\n");
    let shown = error_at(&text, 10, 13, "process \"p\", field `instances`");
    assert!(shown.contains("invalid type: string \"four\""), "{shown}");
    assert!(shown.contains("an integer between 1 and 1024"), "{shown}");

    let text = small("").replace("hosts = [\"a\"]", "hosts = [\"a\", 3]");
    error_at(&text, 9, 15, "process \"p\", field `hosts` (item 2)");

    let text = small("").replace("name = \"t\"", "name = \"t\"\nsecure = \"yes\"");
    let shown = error_at(&text, 2, 10, "field `secure`");
    assert!(shown.contains("true or false"), "{shown}");

    let text = small("restart = \"sometimes\"\n");
    let shown = error_at(&text, 10, 11, "field `restart`");
    assert!(shown.contains("unknown variant `sometimes`"), "{shown}");
}

#[test]
fn missing_field() {
    let text = small("").replace("command = [\"prog\"]\n", "");
    let shown = error_at(&text, 6, 1, "process \"p\"");
    assert!(shown.contains("missing field `command`"), "{shown}");
}

#[test]
fn instances_zero() {
    let text = small("instances = 0\n");
    let shown = error_at(&text, 10, 13, "field `instances`");
    assert_eq!(
        shown,
        "/nonexistent/cfg/config.toml:10:13: process \"p\", field `instances`: \
         expected an integer between 1 and 1024, found 0"
    );
}

#[test]
fn sync_values() {
    assert_eq!(parse(&small("")).unwrap().plan().sync, SyncMode::Always);
    for (v, mode) in [
        ("always", SyncMode::Always),
        ("batch", SyncMode::Batch),
        ("off", SyncMode::Off),
    ] {
        let text = small("").replace("name = \"t\"\n", &format!("name = \"t\"\nsync = \"{v}\"\n"));
        assert_eq!(parse(&text).unwrap().plan().sync, mode);
    }
    let text = small("").replace("name = \"t\"\n", "name = \"t\"\nsync = \"sometimes\"\n");
    let shown = error_at(&text, 2, 8, "field `sync`");
    assert!(
        shown.ends_with("expected \"always\", \"batch\" or \"off\", found \"sometimes\""),
        "{shown}"
    );
}

#[test]
fn placement_values() {
    for (word, want) in [
        ("none", Placement::None),
        ("auto", Placement::Auto),
        ("spread", Placement::Spread),
        ("compact", Placement::Compact),
        ("paired", Placement::Paired),
    ] {
        let line = format!("name = \"t\"\nplacement = \"{word}\"\n");
        let text = small("").replace("name = \"t\"\n", &line);
        assert_eq!(parse(&text).unwrap().plan().placement, want);
    }
    let text = small("").replace("name = \"t\"\n", "name = \"t\"\nplacement = \"fast\"\n");
    let shown = error_at(&text, 2, 13, "field `placement`");
    assert!(
        shown.ends_with(
            "expected \"auto\", \"spread\", \"compact\", \"paired\" or \"none\", found \"fast\""
        ),
        "{shown}"
    );
}

#[test]
fn partitions_too_big() {
    let text = small("").replace("name = \"a\"\n", "name = \"a\"\npartitions = 5000\n");
    let shown = error_at(&text, 5, 14, "subfunction \"a\", field `partitions`");
    assert!(
        shown.ends_with("expected an integer between 1 and 4096, found 5000"),
        "{shown}"
    );
}

#[test]
fn duplicate_subfunction() {
    let text = small("").replace(
        "name = \"a\"\n",
        "name = \"a\"\n\n[[subfunction]]\nname = \"a\"\npartitions = 2\n",
    );
    let shown = error_at(&text, 7, 8, "subfunction \"a\", field `name`");
    assert!(shown.contains("first declared on line 4"), "{shown}");
}

#[test]
fn duplicate_process() {
    let text = small("\n[[process]]\nname = \"p\"\ncommand = [\"x\"]\nhosts = [\"a\"]\n");
    let shown = error_at(&text, 12, 8, "process \"p\", field `name`");
    assert!(shown.contains("first declared on line 7"), "{shown}");
}

#[test]
fn pattern_matching_nothing() {
    let text = small("").replace("hosts = [\"a\"]", "hosts = [\"a\", \"nope/*\"]");
    let shown = error_at(&text, 9, 15, "process \"p\", field `hosts`");
    assert!(
        shown.contains("pattern \"nope/*\" matches no sub-function"),
        "{shown}"
    );

    let text = small("").replace("hosts = [\"a\"]", "hosts = [\"a*b\"]");
    let shown = error_at(&text, 9, 10, "field `hosts`");
    assert!(shown.contains("found \"a*b\""), "{shown}");

    let text = small("").replace("hosts = [\"a\"]", "hosts = []");
    error_at(&text, 9, 9, "field `hosts`");
}

#[test]
fn subfunction_hosted_by_nobody() {
    let text = small("").replace(
        "name = \"a\"\n",
        "name = \"a\"\n\n[[subfunction]]\n  name = \"lonely\"\n",
    );
    let shown = error_at(&text, 7, 10, "subfunction \"lonely\", field `name`");
    assert!(
        shown.contains("sub-function \"lonely\" is not hosted by any process"),
        "{shown}"
    );

    // One partition of a family left out.
    let text = small("").replace(
        "name = \"a\"\n",
        "name = \"a\"\n[[subfunction]]\nname = \"f\"\npartitions = 3\n",
    );
    let text = text.replace("hosts = [\"a\"]", "hosts = [\"a\", \"f/0\", \"f/2\"]");
    let shown = error_at(&text, 6, 8, "subfunction \"f\", field `name`");
    assert!(shown.contains("\"f/1\" (partition of \"f\")"), "{shown}");
}

#[test]
fn subfunction_hosted_twice() {
    let text = small("\n[[process]]\nname = \"q\"\ncommand = [\"x\"]\nhosts = [\"*\"]\n");
    let shown = error_at(&text, 14, 10, "process \"q\", field `hosts`");
    assert!(
        shown.contains("selects sub-function \"a\", which process \"p\" (line 7) already hosts"),
        "{shown}"
    );
}

#[test]
fn more_instances_than_subfunctions() {
    let text = small("").replace("name = \"a\"\n", "name = \"a\"\npartitions = 3\n");
    let text = text.replace("hosts = [\"a\"]", "instances = 4\nhosts = [\"a\"]");
    let shown = error_at(&text, 10, 13, "process \"p\", field `instances`");
    assert!(
        shown.ends_with(
            "expected at most 3 instances, since `hosts` selects only 3 sub-functions \
             (a/0, a/1, a/2), found 4"
        ),
        "{shown}"
    );
}

#[test]
fn coordinator() {
    let text = small("").replace("name = \"t\"\n", "name = \"t\"\ncoordinator = \"boss\"\n");
    let shown = error_at(&text, 2, 15, "field `coordinator`");
    assert!(
        shown.ends_with("expected \"auto\" or the name of a logical process (p), found \"boss\""),
        "{shown}"
    );

    let text = small("").replace("name = \"t\"\n", "name = \"t\"\ncoordinator = \"p\"\n");
    assert_eq!(
        parse(&text).unwrap().plan().coordinator,
        CoordinatorChoice::Slot(0)
    );

    // A group with several instances must be named by instance.
    let text = small("instances = 2\n")
        .replace("name = \"a\"\n", "name = \"a\"\npartitions = 2\n")
        .replace("name = \"t\"\n", "name = \"t\"\ncoordinator = \"p\"\n");
    let shown = error_at(&text, 2, 15, "field `coordinator`");
    assert!(shown.contains("name one of p.0 .. p.1"), "{shown}");
    let text = text.replace("coordinator = \"p\"", "coordinator = \"p.1\"");
    assert_eq!(
        parse(&text).unwrap().plan().coordinator,
        CoordinatorChoice::Slot(1)
    );
}

#[test]
fn bad_ring_capacity() {
    for bad in ["5000", "2048", "2147483648", "-4096"] {
        let text = small("").replace(
            "name = \"t\"\n",
            &format!("name = \"t\"\nring_capacity = {bad}\n"),
        );
        let shown = error_at(&text, 2, 17, "field `ring_capacity`");
        assert!(
            shown.ends_with(&format!(
                "expected a power of two between 4096 and 1073741824, found {bad}"
            )),
            "{shown}"
        );
    }
}

#[test]
fn empty_command() {
    let text = small("").replace("command = [\"prog\"]", "command = []");
    let shown = error_at(&text, 8, 11, "process \"p\", field `command`");
    assert!(shown.ends_with("found []"), "{shown}");

    let text = small("").replace("command = [\"prog\"]", "command = [\"\", \"x\"]");
    error_at(&text, 8, 12, "field `command`");

    let text = small("").replace("name = \"t\"\n", "name = \"t\"\nbuild = []\n");
    error_at(&text, 2, 9, "field `build`");
}

#[test]
fn other_ranges_and_names() {
    let text = small("").replace("name = \"t\"", "name = \"has space\"");
    error_at(&text, 1, 8, "field `name`");
    let text = small("").replace("name = \"t\"", &format!("name = \"{}\"", "n".repeat(64)));
    error_at(&text, 1, 8, "field `name`");
    let text = small("").replace("name = \"p\"", "name = \"p.q\"");
    error_at(&text, 7, 8, "process #1, field `name`");
    let text = small("").replace("name = \"p\"", "name = \"auto\"");
    error_at(&text, 7, 8, "field `name`");
    let text = small("").replace("name = \"a\"", "name = \"a/b\"");
    error_at(&text, 4, 8, "subfunction #1, field `name`");
    let text = small("").replace("name = \"t\"\n", "name = \"t\"\nreport_interval_ms = 5\n");
    error_at(&text, 2, 22, "field `report_interval_ms`");
    let text = small("within_secs = 0\n");
    error_at(&text, 10, 15, "field `within_secs`");
    let text = small("max_restarts = -1\n");
    error_at(&text, 10, 16, "field `max_restarts`");
    let text = small("env = { \"A=B\" = \"x\" }\n");
    error_at(&text, 10, 9, "field `env`");
    // A generated name longer than 55 bytes.
    let long = "s".repeat(53);
    let text = small("").replace(
        "name = \"a\"\n",
        &format!("name = \"a\"\n[[subfunction]]\nname = \"{long}\"\npartitions = 11\n"),
    );
    let shown = error_at(&text, 6, 8, "field `name`");
    assert!(shown.contains("at most 55 bytes"), "{shown}");
}

#[test]
fn too_many_lps() {
    let mut text = String::from("name = \"t\"\n[[subfunction]]\nname = \"a\"\npartitions = 300\n");
    text.push_str("[[process]]\nname = \"p\"\ncommand = [\"x\"]\ninstances = 200\nhosts = [\"a/1*\", \"a/2*\"]\n");
    text.push_str(
        "[[process]]\nname = \"q\"\ncommand = [\"x\"]\ninstances = 60\nhosts = [\"a\"]\n",
    );
    // q's "a" also selects what p took: first, that error.
    let shown = parse(&text).unwrap_err().to_string();
    assert!(shown.contains("already hosts"), "{shown}");
    let mut text = String::from("name = \"t\"\n[[subfunction]]\nname = \"a\"\npartitions = 1000\n");
    text.push_str("[[subfunction]]\nname = \"b\"\npartitions = 100\n");
    text.push_str(
        "[[process]]\nname = \"p\"\ncommand = [\"x\"]\ninstances = 1000\nhosts = [\"a\"]\n",
    );
    text.push_str(
        "[[process]]\nname = \"q\"\ncommand = [\"x\"]\ninstances = 30\nhosts = [\"b\"]\n",
    );
    let shown = error_at(&text, 16, 13, "process \"q\", field `instances`");
    assert!(
        shown.contains("expected at most 1024 logical processes in all, found 1030"),
        "{shown}"
    );
}

#[test]
fn missing_tables() {
    let text = "name = \"t\"\n";
    let shown = error_at(text, 1, 11, "field `subfunction`");
    assert!(shown.contains("at least one [[subfunction]]"), "{shown}");
    let text = "name = \"t\"\n[[subfunction]]\nname = \"a\"\n\n";
    let shown = error_at(text, 3, 11, "field `process`");
    assert!(shown.contains("at least one [[process]]"), "{shown}");
}

#[test]
fn line_col_public() {
    assert_eq!(line_col("a\nbc", 3), (2, 2));
}
