//! `shmcollab clean`: remove the sessions of ours that no live process
//! owns, and say what happened to every entry named like a session: each
//! removed one (and why it was stale), each passed over (another user's,
//! not a directory, a mode we never make), each that could not be removed.
//! One bad entry never stops the rest.

use shmcollab_shm::segment::{clean_stale_sessions, shm_root};

/// `shmcollab clean`; returns the exit code: 0 unless the shm root cannot
/// be listed or a stale session of ours could not be removed.
pub fn clean() -> i32 {
    let root = shm_root();
    let report = match clean_stale_sessions(Some(&root)) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("shmcollab clean: cannot list {}: {e}", root.display());
            return 1;
        }
    };
    for (dir, why) in &report.removed {
        println!("removed {} ({why})", dir.display());
    }
    for (path, why) in &report.refused {
        println!("skipped {}: {why}", path.display());
    }
    for (dir, e) in &report.failed {
        eprintln!("shmcollab clean: cannot remove {}: {e}", dir.display());
    }
    println!("{} stale session(s) removed", report.removed.len());
    if report.failed.is_empty() {
        0
    } else {
        1
    }
}
