//! Finding running collaborations: their session directories under the
//! shm root, and the supervisor that owns one.
//!
//! `launch` refuses a name that is already running, and `status` and
//! `stop` find a collaboration by name. A session is live while its owner
//! (the supervisor) lives; what a crashed one left behind is stale and is
//! not a running collaboration. The shm root is shared with every user, so
//! entries are classified by `shmcollab_shm::segment::scan_sessions`, which
//! opens nothing it does not own, follows no link, never blocks and reads
//! a bounded owner record: another user's entry named like ours is
//! ignored (and named in messages), never read, never signalled.

use shmcollab_shm::segment::{
    open_session_dir, parse_session_dir_name, read_owner, scan_sessions, shm_root, EntryError,
    EntryState, Owner,
};
use std::path::{Path, PathBuf};

/// A running collaboration of ours.
#[derive(Debug, Clone)]
pub struct LiveSession {
    /// Its session directory.
    pub dir: PathBuf,
    /// Its supervisor, as its owner record says (alive when looked up).
    pub owner: Owner,
}

/// What the shm root holds under one collaboration name.
#[derive(Debug, Default)]
pub struct Lookup {
    /// Running sessions of ours (normally at most one).
    pub live: Vec<LiveSession>,
    /// Entries with the name that are not sessions of ours, with why.
    pub ignored: Vec<(PathBuf, EntryError)>,
}

impl Lookup {
    /// `; ignored <path>: <why>` for each ignored entry, to append to a
    /// message that says nothing runs under the name.
    pub fn ignored_note(&self) -> String {
        self.ignored
            .iter()
            .map(|(p, why)| format!("; ignored {}: {why}", p.display()))
            .collect()
    }
}

/// What runs, or squats, under collaboration name `name`.
pub fn lookup(name: &str) -> Lookup {
    let mut out = Lookup::default();
    let Ok(entries) = scan_sessions(&shm_root()) else {
        return out;
    };
    for e in entries.into_iter().filter(|e| e.name == name) {
        match e.state {
            EntryState::Live(owner) => out.live.push(LiveSession { dir: e.path, owner }),
            EntryState::Refused(why) => out.ignored.push((e.path, why)),
            _ => {}
        }
    }
    out
}

/// The running collaboration of ours called `name`, if any.
pub fn find_live_session(name: &str) -> Option<LiveSession> {
    lookup(name).live.into_iter().next()
}

/// The names of our running collaborations, sorted, each once.
pub fn live_names() -> Vec<String> {
    let Ok(entries) = scan_sessions(&shm_root()) else {
        return Vec::new();
    };
    let mut v: Vec<String> = entries
        .into_iter()
        .filter(|e| matches!(e.state, EntryState::Live(_)))
        .map(|e| e.name)
        .collect();
    v.sort();
    v.dedup();
    v
}

/// The owner record of session directory `dir`, checked (ours, mode,
/// file type, size, the id in the directory's name).
pub fn session_owner(dir: &Path) -> Result<Owner, EntryError> {
    let id = dir
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(parse_session_dir_name)
        .map(|(_, id)| id)
        .ok_or_else(|| EntryError::BadRecord(format!("{} is not a session name", dir.display())))?;
    read_owner(&open_session_dir(dir)?, id)
}
