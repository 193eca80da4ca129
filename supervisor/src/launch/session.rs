//! Finding running collaborations: their session directories under the
//! shm root, and the supervisor that owns one.
//!
//! `launch` refuses a name that is already running, and `status` and
//! `stop` find a collaboration by name. A session is live while its owner
//! (the supervisor) lives; what a crashed one left behind is stale and is
//! not a running collaboration. Directory names are read with
//! `shmcollab_shm::segment::parse_session_dir_name`, the counterpart of the
//! one function that makes them.

use shmcollab_shm::segment::{parse_session_dir_name, shm_root, stale_sessions};
use std::path::{Path, PathBuf};

/// The live sessions under the shm root: (collaboration name, directory),
/// in directory order.
fn live_sessions() -> Vec<(String, PathBuf)> {
    let root = shm_root();
    let stale = stale_sessions(&root).unwrap_or_default();
    let Ok(entries) = std::fs::read_dir(&root) else {
        return Vec::new();
    };
    entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| !stale.contains(p))
        .filter_map(|p| {
            let (name, _) = parse_session_dir_name(p.file_name()?.to_str()?)?;
            Some((name.to_owned(), p))
        })
        .collect()
}

/// The directory of a running collaboration called `name`, if any.
pub fn find_live_session(name: &str) -> Option<PathBuf> {
    live_sessions()
        .into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, dir)| dir)
}

/// The names of the running collaborations, sorted, each once.
pub fn live_names() -> Vec<String> {
    let mut v: Vec<String> = live_sessions().into_iter().map(|(n, _)| n).collect();
    v.sort();
    v.dedup();
    v
}

/// Owner pid of a session directory.
pub fn session_owner(dir: &Path) -> Option<u32> {
    std::fs::read_to_string(dir.join("owner"))
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}
