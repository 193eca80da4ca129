//! Configs that are refused, and their messages: each names its line,
//! column and field.

mod common;

use common::{error_at, parse, small};
use shmcollab_runtime::plan::{CoordinatorChoice, Placement, SyncMode};
use shmcollab_supervisor::config::{line_col, Config, ConfigError};
use std::path::Path;

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
