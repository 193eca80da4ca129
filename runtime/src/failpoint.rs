//! Crash points for the crash tests: with `SHMCOLAB_CRASH_AT=<point>` (or
//! `<point>:<n>`) in its environment, a process kills itself with SIGKILL
//! the n-th time (default: the first) it passes [`hit`]`("<point>")`: a
//! kill -9 at an exact step of a protocol, from a real process. With
//! `SHMCOLAB_CRASH_ONCE=<path>` as well, only the process that creates that
//! file dies (the others, and the restarted one, pass on). Without the
//! variables a crash point costs one load of a cached value.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// The armed point and how many passes are left before the kill.
struct Armed {
    point: String,
    left: AtomicU64,
}

fn armed() -> Option<&'static Armed> {
    static ARMED: OnceLock<Option<Armed>> = OnceLock::new();
    ARMED
        .get_or_init(|| {
            let v = std::env::var("SHMCOLAB_CRASH_AT").ok()?;
            let (point, n) = match v.split_once(':') {
                Some((p, n)) => (p.to_owned(), n.parse().ok()?),
                None => (v, 1),
            };
            Some(Armed {
                point,
                left: AtomicU64::new(n),
            })
        })
        .as_ref()
}

/// Passes crash point `point`: dies here with SIGKILL if it is the armed
/// one and its count is up.
pub fn hit(point: &str) {
    let Some(a) = armed() else {
        return;
    };
    if a.point != point {
        return;
    }
    // Relaxed: a count, no data published with it.
    if a.left.fetch_sub(1, Ordering::Relaxed) == 1 {
        if let Some(once) = std::env::var_os("SHMCOLAB_CRASH_ONCE") {
            let first = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(once);
            if first.is_err() {
                return;
            }
        }
        eprintln!("shmcollab: crash point {point}: kill -9");
        let me = rustix::process::getpid();
        let _ = rustix::process::kill_process(me, rustix::process::Signal::KILL);
        // SIGKILL cannot be caught; if sending it failed, die anyway.
        std::process::abort();
    }
}
