//! Session directories: their name (`shmc.<name>.<id>`), creation with
//! exact modes and the owner record, and attaching to one (checked the
//! way `owner.rs` says: ours, mode 0700, a valid owner record). Finding
//! sessions and removing stale ones is in `scan.rs`.

use std::fs::{self, DirBuilder};
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::owner::{open_session_dir, process_start_time, read_owner, write_owner, Owner};
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
        if let Err(e) = DirBuilder::new().mode(0o700).create(&dir) {
            return Err(create_error(&dir, e));
        }
        let session = Session {
            dir: dir.clone(),
            id,
            name: name.to_owned(),
            owner: true,
        };
        // The umask may have masked bits off; make the mode exact.
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).map_err(io)?;
        let pid = std::process::id();
        // Without our start time the record could not tell us from a
        // process that reuses our pid: refuse rather than write 0.
        let start = process_start_time(pid)
            .ok_or_else(|| io(io::Error::other("cannot read our own start time in /proc")))?;
        write_owner(&dir, &Owner { pid, start, id }).map_err(|e| create_error(&dir, e))?;
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
        let refused = |reason| SessionError::Refused {
            path: dir.to_owned(),
            reason,
        };
        let fd = open_session_dir(dir).map_err(refused)?;
        read_owner(&fd, id).map_err(refused)?;
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

/// The error of a failed `mkdir` or owner write at creation: a full shm
/// root and a name someone else holds are said plainly.
fn create_error(dir: &Path, source: io::Error) -> SessionError {
    let root = dir.parent().unwrap_or(dir).to_owned();
    if source.raw_os_error() == Some(rustix::io::Errno::NOSPC.raw_os_error()) {
        SessionError::NoSpace { root, source }
    } else if source.kind() == io::ErrorKind::AlreadyExists {
        SessionError::Exists {
            path: dir.to_owned(),
            uid: fs::symlink_metadata(dir).ok().map(|m| m.uid()),
        }
    } else {
        SessionError::Io {
            path: dir.to_owned(),
            source,
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
}
