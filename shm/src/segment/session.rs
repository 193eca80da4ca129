//! Session directories: their name (`shmc.<name>.<id>`), creation with
//! exact modes and the owner file, attaching to one, and the sweep that
//! removes the sessions of dead owners.
//!
//! Liveness is judged by pid *and* start time from `/proc`, so a recycled
//! pid does not keep a dead session alive.

use std::fs::{self, DirBuilder, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::{valid_name, SessionError};

/// Root directory for sessions: `$SHMCOLAB_SHM_ROOT` or `/dev/shm`.
pub fn shm_root() -> PathBuf {
    std::env::var_os("SHMCOLAB_SHM_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/dev/shm"))
}

/// A session directory. The process that created it removes it on drop.
#[derive(Debug)]
pub struct Session {
    dir: PathBuf,
    id: u64,
    name: String,
    owner: bool,
}

impl Session {
    /// Create a new session directory for collaboration `name` with a random id.
    pub fn create(name: &str) -> Result<Session, SessionError> {
        Self::create_in(&shm_root(), name)
    }

    /// Like [`Session::create`] under another root directory.
    pub fn create_in(root: &Path, name: &str) -> Result<Session, SessionError> {
        if !valid_name(name, 64, false) {
            return Err(SessionError::BadName(name.to_owned()));
        }
        let id = crate::auth::random_u64();
        let dir = root.join(session_dir_name(name, id));
        let io = |source| SessionError::Io {
            path: dir.clone(),
            source,
        };
        DirBuilder::new().mode(0o700).create(&dir).map_err(io)?;
        // The umask may have masked bits off; make the mode exact.
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).map_err(io)?;
        let session = Session {
            dir: dir.clone(),
            id,
            name: name.to_owned(),
            owner: true,
        };
        let pid = std::process::id();
        let start = process_start_time(pid).unwrap_or(0);
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(dir.join("owner"))
            .map_err(io)?;
        writeln!(f, "{pid} {start} {id:016x}").map_err(io)?;
        Ok(session)
    }

    /// Attach to an existing session directory (it is not removed on drop).
    pub fn open(dir: &Path) -> Result<Session, SessionError> {
        let fname = dir
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| SessionError::NotASession(dir.to_owned()))?;
        let (name, id) = parse_session_dir_name(fname)
            .ok_or_else(|| SessionError::NotASession(dir.to_owned()))?;
        if !dir.join("owner").is_file() {
            return Err(SessionError::NotASession(dir.to_owned()));
        }
        Ok(Session {
            dir: dir.to_owned(),
            id,
            name: name.to_owned(),
            owner: false,
        })
    }

    /// The session directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The random session id written into every segment.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The collaboration name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether dropping this handle removes the directory.
    pub fn is_owner(&self) -> bool {
        self.owner
    }

    /// Keep the directory when this handle is dropped.
    pub fn disown(&mut self) {
        self.owner = false;
    }

    /// Path of segment `name` in this session.
    pub fn segment_path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if self.owner {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// The name of the session directory of collaboration `name` with session
/// id `id`: `shmc.<name>.<id as 16 hex digits>` (the one place that says
/// so; [`parse_session_dir_name`] reads it back).
pub fn session_dir_name(name: &str, id: u64) -> String {
    format!("shmc.{name}.{id:016x}")
}

/// The collaboration name and session id in a session directory's name, or
/// `None` when `fname` is not one (see [`session_dir_name`]).
pub fn parse_session_dir_name(fname: &str) -> Option<(&str, u64)> {
    let rest = fname.strip_prefix("shmc.")?;
    let (name, id) = rest.rsplit_once('.')?;
    if id.len() != 16 || !valid_name(name, 64, false) {
        return None;
    }
    Some((name, u64::from_str_radix(id, 16).ok()?))
}

/// Start time of a process in clock ticks since boot (field 22 of
/// `/proc/<pid>/stat`), or `None` if there is no such process.
pub fn process_start_time(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and parentheses: skip past the last ')'.
    let after = &stat[stat.rfind(')')? + 1..];
    // after = " S ppid ..." : state is field 3, start time is field 22.
    after.split_whitespace().nth(19)?.parse().ok()
}

/// Whether the process `pid` that started at `start` (clock ticks) is alive.
pub fn process_alive(pid: u32, start: u64) -> bool {
    match process_start_time(pid) {
        Some(s) => start == 0 || s == start,
        None => false,
    }
}

/// Sessions under `root` whose owner process is gone.
pub fn stale_sessions(root: &Path) -> io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(root)? {
        let entry = entry?;
        let path = entry.path();
        let Some(fname) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if parse_session_dir_name(fname).is_none() || !entry.file_type()?.is_dir() {
            continue;
        }
        let alive = match fs::read_to_string(path.join("owner")) {
            Ok(text) => {
                let mut it = text.split_whitespace();
                let pid = it.next().and_then(|p| p.parse::<u32>().ok());
                let start = it.next().and_then(|s| s.parse::<u64>().ok());
                match (pid, start) {
                    (Some(pid), Some(start)) => process_alive(pid, start),
                    _ => false,
                }
            }
            // No owner file: a creator that died between mkdir and writing
            // it, unless it is still being created right now. Leave it unless
            // it is older than a few seconds.
            Err(_) => entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_none_or(|age| age.as_secs() < 5),
        };
        if !alive {
            out.push(path);
        }
    }
    Ok(out)
}

/// Remove the sessions under `root` (default [`shm_root`]) whose owner is
/// gone; returns what was removed.
pub fn clean_stale_sessions(root: Option<&Path>) -> io::Result<Vec<PathBuf>> {
    let root = root.map(Path::to_owned).unwrap_or_else(shm_root);
    let stale = stale_sessions(&root)?;
    let mut removed = Vec::new();
    for dir in stale {
        if fs::remove_dir_all(&dir).is_ok() {
            removed.push(dir);
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dir_name_roundtrip_and_rejects() {
        assert_eq!(
            parse_session_dir_name("shmc.wc.00000000000000ff"),
            Some(("wc", 255))
        );
        assert_eq!(parse_session_dir_name("shmc.wc.ff"), None);
        assert_eq!(parse_session_dir_name("other.wc.00000000000000ff"), None);
        assert_eq!(parse_session_dir_name("shmc.a b.00000000000000ff"), None);
    }

    #[test]
    fn start_time_of_self_is_known() {
        let me = std::process::id();
        let t = process_start_time(me).expect("own start time");
        assert!(process_alive(me, t));
        assert!(!process_alive(me, t + 1));
    }
}
