//! `sandbox` and `user` in a process (issue 11, the LP sandbox): they
//! reach the plan, and a bad one is refused naming its line.

mod common;

use common::{error_at, parse, small};

#[test]
fn sandbox_and_user_reach_the_plan() {
    let default = parse(&small("")).unwrap();
    let lp = &default.plan().lps[0];
    assert_eq!(lp.sandbox, shmcollab_supervisor::config::DEFAULT_SANDBOX);
    assert_eq!(lp.user, None);
    let on = parse(&small("sandbox = true")).unwrap();
    assert!(on.plan().lps[0].sandbox);
    let off = parse(&small("sandbox = false")).unwrap();
    assert!(!off.plan().lps[0].sandbox);
}

#[test]
fn a_bad_sandbox_or_user_names_its_line() {
    error_at(&small("sandbox = \"yes\""), 10, 11, "sandbox");
    let shown = error_at(&small("user = \"no-such-user-zq\""), 10, 8, "user");
    assert!(shown.contains("existing user"), "{shown}");
    let shown = error_at(&small("user = \"a b\""), 10, 8, "user");
    assert!(shown.contains("user name"), "{shown}");
}

#[test]
fn user_needs_the_right_to_switch() {
    let text = small("user = \"nobody\"");
    if shmcollab_runtime::sandbox::lookup_user("nobody").is_err() {
        eprintln!("SKIPPED user_needs_the_right_to_switch: no user nobody");
        return;
    }
    if shmcollab_runtime::sandbox::may_switch_user() {
        let cfg = parse(&text).unwrap();
        assert_eq!(cfg.plan().lps[0].user.as_deref(), Some("nobody"));
    } else {
        let shown = error_at(&text, 10, 8, "user");
        assert!(shown.contains("needs root"), "{shown}");
    }
}
