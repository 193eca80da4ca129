//! The binary's basic contract.
use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_shmcollab"))
}

#[test]
fn help_and_version() {
    let out = bin().arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for sub in ["launch", "status", "stop", "clean"] {
        assert!(text.contains(sub), "--help lacks {sub}: {text}");
    }
    let out = bin().arg("--version").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains(env!("CARGO_PKG_VERSION")));
}

#[test]
fn clean_runs() {
    let root = std::env::temp_dir().join(format!("shmc-cli-clean-{}", std::process::id()));
    std::fs::create_dir_all(&root).unwrap();
    let out = bin()
        .arg("clean")
        .env("SHMCOLAB_SHM_ROOT", &root)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&root);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("0 stale session(s) removed"));
}
