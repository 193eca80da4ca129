//! Finding sessions in the shm root, and removing what dead owners left.
//!
//! Every entry whose name reads as a session directory
//! ([`parse_session_dir_name`]) is classified without trusting it (see
//! `owner.rs` for how it is opened): a session of ours whose owner lives, a
//! session of ours whose owner is gone, one of ours still being created,
//! or an entry refused with the reason (another user's, not a directory,
//! wrong mode). Commands act only on the first three; `clean` reports the
//! refused ones and goes on, whatever one entry holds.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::owner::{open_session_dir, process_alive, read_owner, Owner};
use super::{parse_session_dir_name, shm_root, EntryError};

/// A directory of ours without a valid owner record is taken for one
/// being created (`mkdir`, then the record renamed in) until it is this old.
pub const CREATION_GRACE: Duration = Duration::from_secs(5);

/// An entry of the shm root named like a session.
#[derive(Debug)]
pub struct SessionEntry {
    /// Its path.
    pub path: PathBuf,
    /// The collaboration name in it.
    pub name: String,
    /// The session id in it.
    pub id: u64,
    /// What it is.
    pub state: EntryState,
}

/// What a [`SessionEntry`] turned out to be.
#[derive(Debug)]
#[non_exhaustive]
pub enum EntryState {
    /// A session of ours whose owner process lives.
    Live(Owner),
    /// A session of ours that no live process owns: `clean` removes it.
    Stale(StaleReason),
    /// A directory of ours without its owner record yet, younger than
    /// [`CREATION_GRACE`]: being created; left alone.
    Starting,
    /// Not a session of ours (another user's, not a directory, a mode we
    /// never make, unreadable): never read further, never removed.
    Refused(EntryError),
}

/// Why a session of ours is stale.
#[derive(Debug)]
#[non_exhaustive]
pub enum StaleReason {
    /// The owner process is gone (or its pid now names another process).
    OwnerGone(Owner),
    /// No valid owner record, and older than [`CREATION_GRACE`].
    NoValidOwner(EntryError),
}

impl std::fmt::Display for StaleReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StaleReason::OwnerGone(o) => write!(f, "owner pid {} is gone", o.pid),
            StaleReason::NoValidOwner(e) => write!(f, "{e}"),
        }
    }
}

/// Every entry of `root` named like a session, classified. Fails only
/// when `root` itself cannot be listed.
pub fn scan_sessions(root: &Path) -> io::Result<Vec<SessionEntry>> {
    let mut out = Vec::new();
    // An error in the middle of the listing ends it (std stops there).
    for entry in std::fs::read_dir(root)?.flatten() {
        let Some(fname) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        let Some((name, id)) = parse_session_dir_name(&fname) else {
            continue;
        };
        let path = entry.path();
        let state = classify(&path, id);
        out.push(SessionEntry {
            name: name.to_owned(),
            id,
            path,
            state,
        });
    }
    Ok(out)
}

/// What the entry at `path`, named with session id `id`, is.
pub fn classify(path: &Path, id: u64) -> EntryState {
    let dir = match open_session_dir(path) {
        Ok(d) => d,
        Err(e) => return EntryState::Refused(e),
    };
    match read_owner(&dir, id) {
        Ok(owner) if process_alive(owner.pid, owner.start) => EntryState::Live(owner),
        Ok(owner) => EntryState::Stale(StaleReason::OwnerGone(owner)),
        Err(EntryError::Io(e)) => EntryState::Refused(EntryError::Io(e)),
        Err(_) if is_young(&dir) => EntryState::Starting,
        Err(e) => EntryState::Stale(StaleReason::NoValidOwner(e)),
    }
}

/// Whether the directory was changed less than [`CREATION_GRACE`] ago (or
/// its time is unknown, or in the future).
fn is_young(dir: &File) -> bool {
    dir.metadata()
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .is_none_or(|age| age < CREATION_GRACE)
}

/// Sessions of ours under `root` that no live process owns.
pub fn stale_sessions(root: &Path) -> io::Result<Vec<PathBuf>> {
    Ok(scan_sessions(root)?
        .into_iter()
        .filter(|e| matches!(e.state, EntryState::Stale(_)))
        .map(|e| e.path)
        .collect())
}

/// What [`clean_stale_sessions`] did, entry by entry.
#[derive(Debug, Default)]
pub struct CleanReport {
    /// Stale sessions of ours removed, with why they were stale.
    pub removed: Vec<(PathBuf, StaleReason)>,
    /// Entries named like sessions that are not ours to remove.
    pub refused: Vec<(PathBuf, EntryError)>,
    /// Stale sessions of ours that could not be removed.
    pub failed: Vec<(PathBuf, io::Error)>,
}

/// Remove the sessions of ours under `root` (default [`shm_root`]) that no
/// live process owns. Goes on past every entry it cannot or may not
/// remove and reports each; fails only if `root` cannot be listed.
pub fn clean_stale_sessions(root: Option<&Path>) -> io::Result<CleanReport> {
    let root = root.map(Path::to_owned).unwrap_or_else(shm_root);
    let mut report = CleanReport::default();
    for entry in scan_sessions(&root)? {
        match entry.state {
            EntryState::Stale(why) => match std::fs::remove_dir_all(&entry.path) {
                Ok(()) => report.removed.push((entry.path, why)),
                Err(e) => report.failed.push((entry.path, e)),
            },
            EntryState::Refused(e) => report.refused.push((entry.path, e)),
            EntryState::Live(_) | EntryState::Starting => {}
        }
    }
    Ok(report)
}
