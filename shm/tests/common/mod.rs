//! What the registry tests share: unique names and throwaway sessions.

use shmcollab_shm::Session;
use std::sync::atomic::{AtomicUsize, Ordering};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

pub fn unique(prefix: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}-{}-{n}", std::process::id())
}

/// A session under the temp dir; removed on drop (also when a test panics).
pub fn temp_session(prefix: &str) -> Session {
    Session::create_in(&std::env::temp_dir(), &unique(prefix)).expect("create session")
}
