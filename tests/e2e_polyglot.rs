//! `examples/polyglot`: a Rust, a C and a Python LP in one collaboration,
//! launched from its config as a user would (`shmcollab launch
//! examples/polyglot/config.toml`, whose build line compiles the Rust LP,
//! the C ABI and the C LP). The Rust LP checks the invariant and the
//! others' answers; the collaboration's exit code says whether it held.

mod common;
use common::*;
use std::process::Command;
use std::time::Duration;

#[test]
fn rust_c_and_python_lps_collaborate() {
    for tool in ["cc", "python3"] {
        if !have(tool) {
            eprintln!("SKIPPED: {tool} is missing (the polyglot example needs it)");
            return;
        }
    }
    let cfg = repo().join("examples/polyglot/config.toml");
    let mut cmd = Command::new(bin());
    cmd.arg("launch").arg(&cfg);
    // The build line runs cargo: the same one as this test's.
    if let Some(cargo) = std::env::var_os("CARGO") {
        let dir = std::path::Path::new(&cargo).parent().unwrap().to_owned();
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut dirs = vec![dir];
        dirs.extend(std::env::split_paths(&path));
        cmd.env("PATH", std::env::join_paths(dirs).unwrap());
    }
    let (code, out, err) = Launched::spawn(cmd, "polyglot").wait(Duration::from_secs(600));
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    for want in [
        "polyglot: invariant holds",
        "c: requests to rust and python answered",
        "python: requests to rust and c answered",
        "c: got finish ok; 40 greetings received",
        "python: got finish ok; 40 greetings received",
        "python: the coordinator sees 3 LPs",
    ] {
        assert!(out.contains(want), "no {want:?} in\n{out}\nstderr:\n{err}");
    }
    assert!(session_dirs("polyglot").is_empty(), "session left behind");
}
