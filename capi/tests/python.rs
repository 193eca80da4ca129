//! Runs the Python module's unit tests (`bindings/python/tests`) with
//! python3's unittest, against the shared library of this build. Skipped,
//! with a message, where python3 is missing.

use std::path::PathBuf;
use std::process::Command;

/// `libshmcollab.so` of this build: the test binary is in
/// `<target>/<profile>/deps/`, beside the library `cargo test` built (`cargo
/// build` also copies it up to `<target>/<profile>/`).
fn library() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let deps = exe.parent()?;
    [deps.to_path_buf(), deps.parent()?.to_path_buf()]
        .into_iter()
        .map(|d| d.join("libshmcollab.so"))
        .find(|l| l.exists())
}

#[test]
fn python_unittests() {
    let have_python = Command::new("python3")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !have_python {
        eprintln!("SKIPPED: python3 is missing; the Python module's tests did not run");
        return;
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut cmd = Command::new("python3");
    cmd.args(["-m", "unittest", "discover", "-v", "-s"])
        .arg(root.join("bindings/python/tests"))
        .current_dir(&root);
    match library() {
        Some(lib) => {
            cmd.env("SHMCOLLAB_LIB", lib);
        }
        None => eprintln!("no libshmcollab.so next to this test: the library tests may skip"),
    }
    // Outside any collaboration, whatever ran this test.
    for v in ["SHMCOLAB_SESSION", "SHMCOLAB_SLOT"] {
        cmd.env_remove(v);
    }
    let out = cmd.output().expect("running python3");
    let err = String::from_utf8_lossy(&out.stderr);
    eprintln!("{err}");
    assert!(out.status.success(), "python3 -m unittest failed:\n{err}");
    assert!(!err.contains("skipped 'no shared library"), "{err}");
}
