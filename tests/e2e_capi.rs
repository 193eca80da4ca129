//! The C ABI from C: a program compiled with the flags of
//! `include/shmcollab.pc` runs as an LP and calls every entry point with
//! bad arguments (null pointers, bad strings and lengths, ids not open, a
//! handle from the wrong thread, a closed handle): each returns its error
//! code, nothing crashes (`capi/tests/c/badargs.c`).

mod common;
use common::*;
use std::time::Duration;

#[test]
fn every_entry_point_refuses_bad_arguments() {
    if !have("cc") {
        eprintln!("SKIPPED: no C compiler (cc)");
        return;
    }
    build_capi_release();
    let dir = TempDir::new("capi-badargs");
    let exe = dir.0.join("badargs");
    cc_against_capi(&repo().join("capi/tests/c/badargs.c"), &exe, &["-pthread"]);
    let name = unique("badargs");
    let cfg = write_config(
        &dir.0,
        &format!(
            "name = \"{name}\"\nstate_dir = {state:?}\n[[subfunction]]\nname = \"badargs\"\n\
             [[process]]\nname = \"badargs\"\ncommand = [{exe:?}]\nhosts = [\"badargs\"]\nrestart = \"temporary\"\n",
            state = dir.0.join("state").display().to_string(),
            exe = exe.display().to_string(),
        ),
    );
    let (code, out, err) = Launched::start(&cfg, &name).wait(Duration::from_secs(60));
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    assert!(
        out.contains("checks passed"),
        "stdout:\n{out}\nstderr:\n{err}"
    );
    assert!(session_dirs(&name).is_empty(), "session left behind");
}
