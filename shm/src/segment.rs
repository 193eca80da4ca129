//! Sessions and segments.
//!
//! A *session* is a directory `<root>/shmc.<name>.<id>` (root is `/dev/shm`
//! unless `SHMCOLAB_SHM_ROOT` says otherwise), mode 0700, holding:
//!
//! * `owner`: `"<pid> <start time in clock ticks> <session id hex>\n"`, written
//!   by the creator, used by [`clean_stale_sessions`] to tell a live owner from
//!   a dead one (the start time defeats pid reuse);
//! * one file per segment, mode 0600, created with `O_EXCL`.
//!
//! Every segment starts with this 128-byte header (little-endian):
//!
//! ```text
//! offset size field
//!      0    8 magic            b"SHMCOLAB"
//!      8    4 layout_version   LAYOUT_VERSION
//!     12    4 kind             SegmentKind as u32
//!     16    8 session_id
//!     24    8 total_len        length of the whole file in bytes
//!     32    4 ready            0 while being created, READY once the body is initialised
//!     36    4 creator_pid
//!     40   88 reserved (zero)
//!    128    - body
//! ```
//!
//! The header is untrusted on open: magic, version, kind, session and length
//! are checked against the file before anything in the body is touched.

use crate::sync::{AtomicU32, Ordering};
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// `b"SHMCOLAB"` read as a little-endian u64.
pub const SEGMENT_MAGIC: u64 = u64::from_le_bytes(*b"SHMCOLAB");
/// Version of every layout in this crate; bump on any change.
pub const LAYOUT_VERSION: u32 = 1;
/// Size of [`SegmentHeader`]; the body starts here.
pub const HEADER_LEN: usize = 128;
const READY: u32 = 0x5245_4459; // "READY"

/// What a segment holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum SegmentKind {
    /// A frame ring ([`crate::ring`]).
    Ring = 1,
    /// The registry ([`crate::registry`]).
    Registry = 2,
    /// Anything else (tests, user data).
    Blob = 3,
}

/// The header at offset 0 of every segment.
#[repr(C, align(128))]
pub struct SegmentHeader {
    magic: u64,
    layout_version: u32,
    kind: u32,
    session_id: u64,
    total_len: u64,
    /// 0 while the creator initialises the body; READY after.
    /// SYNC: stored with Release by the creator after the body is written;
    /// loaded with Acquire by `Segment::open`.
    ready: AtomicU32,
    creator_pid: u32,
    _reserved: [u8; 88],
}
const _: () = assert!(std::mem::size_of::<SegmentHeader>() == HEADER_LEN);
const _: () = assert!(std::mem::align_of::<SegmentHeader>() == 128);

/// Errors of [`Session::create`] and [`Session::open`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// The name is empty, too long or has characters other than `[A-Za-z0-9_-]`.
    #[error("invalid session name {0:?}: use 1-64 characters from [A-Za-z0-9_-]")]
    BadName(String),
    /// The directory is not a session directory.
    #[error("{0} is not a shmcollab session directory")]
    NotASession(PathBuf),
    /// A filesystem call failed.
    #[error("session directory {path}: {source}")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
}

/// Errors of [`Segment::create`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CreateError {
    /// The segment name is not acceptable.
    #[error("invalid segment name {0:?}: use 1-100 characters from [A-Za-z0-9._-]")]
    BadName(String),
    /// A segment of this name already exists in the session.
    #[error("segment {0} already exists")]
    Exists(PathBuf),
    /// A filesystem or mapping call failed.
    #[error("segment {path}: {source}")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
}

/// Errors of [`Segment::open`]: the file is refused, never trusted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The segment name is not acceptable.
    #[error("invalid segment name {0:?}")]
    BadName(String),
    /// Opening or mapping failed (including: no such segment).
    #[error("segment {path}: {source}")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// Shorter than its header or than the length it declares.
    #[error("segment {path} is truncated: {len} bytes, needs {needed}")]
    Truncated {
        /// The path involved.
        path: PathBuf,
        /// Its length on disk.
        len: u64,
        /// What it should be at least.
        needed: u64,
    },
    /// Not a shmcollab segment.
    #[error("segment {0} has a bad magic: not a shmcollab segment")]
    BadMagic(PathBuf),
    /// Made by another layout version.
    #[error("segment {path} has layout version {found}, this build reads {expected}")]
    Version {
        /// The path involved.
        path: PathBuf,
        /// Version in the file.
        found: u32,
        /// Version of this build.
        expected: u32,
    },
    /// Belongs to another session.
    #[error("segment {path} belongs to session {found:016x}, expected {expected:016x}")]
    Session {
        /// The path involved.
        path: PathBuf,
        /// Session id in the file.
        found: u64,
        /// Session id asked for.
        expected: u64,
    },
    /// Holds another kind of structure.
    #[error("segment {path} is of kind {found}, expected {expected}")]
    Kind {
        /// The path involved.
        path: PathBuf,
        /// Kind in the file.
        found: u32,
        /// Kind asked for.
        expected: u32,
    },
    /// Header and file disagree on the length.
    #[error("segment {path} declares {declared} bytes but the file has {actual}")]
    Length {
        /// The path involved.
        path: PathBuf,
        /// Length in the header.
        declared: u64,
        /// Length of the file.
        actual: u64,
    },
    /// The creator has not finished initialising it (or died doing so).
    #[error("segment {0} is not initialised yet")]
    NotReady(PathBuf),
    /// The body fails the checks of its kind.
    #[error("segment {path}: {reason}")]
    Corrupt {
        /// The path involved.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// Root directory for sessions: `$SHMCOLAB_SHM_ROOT` or `/dev/shm`.
pub fn shm_root() -> PathBuf {
    std::env::var_os("SHMCOLAB_SHM_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/dev/shm"))
}

fn valid_name(name: &str, max: usize, dot: bool) -> bool {
    !name.is_empty()
        && name.len() <= max
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || (dot && b == b'.'))
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

/// A mapped segment. Cloning is cheap (`Arc`); the mapping lives as long as
/// any clone.
#[derive(Clone)]
pub struct Segment {
    inner: Arc<Mapped>,
}

struct Mapped {
    map: memmap2::MmapRaw,
    path: PathBuf,
    _file: File,
}

impl std::fmt::Debug for Segment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Segment")
            .field("path", &self.inner.path)
            .field("len", &self.inner.map.len())
            .finish()
    }
}

impl Segment {
    /// Create segment `name` in `session` with a body of `body_len` bytes
    /// (zeroed), and call `init` on the body before marking it ready.
    pub fn create(
        session: &Session,
        name: &str,
        kind: SegmentKind,
        body_len: usize,
        init: impl FnOnce(*mut u8, usize),
    ) -> Result<Segment, CreateError> {
        if !valid_name(name, 100, true) {
            return Err(CreateError::BadName(name.to_owned()));
        }
        let path = session.segment_path(name);
        let io = |source: io::Error| {
            if source.kind() == io::ErrorKind::AlreadyExists {
                CreateError::Exists(path.clone())
            } else {
                CreateError::Io {
                    path: path.clone(),
                    source,
                }
            }
        };
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(io)?;
        let total = (HEADER_LEN + body_len) as u64;
        file.set_len(total).map_err(io)?;
        let map = memmap2::MmapOptions::new().map_raw(&file).map_err(io)?;
        let hdr = map.as_mut_ptr().cast::<SegmentHeader>();
        // SAFETY: the mapping is `total` >= 128 bytes, page aligned, freshly
        // zeroed by ftruncate, and nobody else can have it mapped yet except
        // through `open`, which refuses it until `ready` is set below.
        unsafe {
            std::ptr::addr_of_mut!((*hdr).magic).write(SEGMENT_MAGIC.to_le());
            std::ptr::addr_of_mut!((*hdr).layout_version).write(LAYOUT_VERSION.to_le());
            std::ptr::addr_of_mut!((*hdr).kind).write((kind as u32).to_le());
            std::ptr::addr_of_mut!((*hdr).session_id).write(session.id().to_le());
            std::ptr::addr_of_mut!((*hdr).total_len).write(total.to_le());
            std::ptr::addr_of_mut!((*hdr).creator_pid).write(std::process::id().to_le());
        }
        // SAFETY: the body lies within the mapping (HEADER_LEN + body_len == total).
        init(unsafe { map.as_mut_ptr().add(HEADER_LEN) }, body_len);
        // SAFETY: `hdr` points to a live, aligned SegmentHeader in the mapping.
        let ready = unsafe { &(*hdr).ready };
        // SYNC: publishes header and body; pairs with the Acquire in `open`.
        ready.store(READY, Ordering::Release);
        Ok(Segment {
            inner: Arc::new(Mapped {
                map,
                path,
                _file: file,
            }),
        })
    }

    /// Open segment `name` of `session`, checking its header.
    pub fn open(session: &Session, name: &str, kind: SegmentKind) -> Result<Segment, OpenError> {
        if !valid_name(name, 100, true) {
            return Err(OpenError::BadName(name.to_owned()));
        }
        Self::open_path(&session.segment_path(name), session.id(), kind)
    }

    /// Open the segment file at `path`, expecting `session_id` and `kind`.
    pub fn open_path(
        path: &Path,
        session_id: u64,
        kind: SegmentKind,
    ) -> Result<Segment, OpenError> {
        let io = |source| OpenError::Io {
            path: path.to_owned(),
            source,
        };
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        if len < HEADER_LEN as u64 {
            return Err(OpenError::Truncated {
                path: path.to_owned(),
                len,
                needed: HEADER_LEN as u64,
            });
        }
        let map = memmap2::MmapOptions::new().map_raw(&file).map_err(io)?;
        // The file may have shrunk between fstat and mmap.
        if map.len() < HEADER_LEN {
            return Err(OpenError::Truncated {
                path: path.to_owned(),
                len: map.len() as u64,
                needed: HEADER_LEN as u64,
            });
        }
        let base = map.as_mut_ptr();
        // SAFETY: the mapping is at least HEADER_LEN bytes and page aligned;
        // the header fields are plain integers for which any bit pattern is
        // valid, read with volatile loads since another process owns them.
        let (magic, version, found_kind, sid, total) = unsafe {
            let h = base.cast::<SegmentHeader>();
            (
                u64::from_le(std::ptr::addr_of!((*h).magic).read_volatile()),
                u32::from_le(std::ptr::addr_of!((*h).layout_version).read_volatile()),
                u32::from_le(std::ptr::addr_of!((*h).kind).read_volatile()),
                u64::from_le(std::ptr::addr_of!((*h).session_id).read_volatile()),
                u64::from_le(std::ptr::addr_of!((*h).total_len).read_volatile()),
            )
        };
        // SAFETY: as above; `ready` is an AtomicU32 at an aligned offset.
        let ready = unsafe { &(*base.cast::<SegmentHeader>()).ready };
        // SYNC: pairs with the Release store in `create`.
        let is_ready = ready.load(Ordering::Acquire) == READY;
        let p = || path.to_owned();
        if magic != SEGMENT_MAGIC {
            return Err(OpenError::BadMagic(p()));
        }
        if version != LAYOUT_VERSION {
            return Err(OpenError::Version {
                path: p(),
                found: version,
                expected: LAYOUT_VERSION,
            });
        }
        if sid != session_id {
            return Err(OpenError::Session {
                path: p(),
                found: sid,
                expected: session_id,
            });
        }
        if found_kind != kind as u32 {
            return Err(OpenError::Kind {
                path: p(),
                found: found_kind,
                expected: kind as u32,
            });
        }
        if total > len {
            return Err(OpenError::Truncated {
                path: p(),
                len,
                needed: total,
            });
        }
        if total != len {
            return Err(OpenError::Length {
                path: p(),
                declared: total,
                actual: len,
            });
        }
        if !is_ready {
            return Err(OpenError::NotReady(p()));
        }
        Ok(Segment {
            inner: Arc::new(Mapped {
                map,
                path: path.to_owned(),
                _file: file,
            }),
        })
    }

    /// Start of the body (right after the header).
    pub fn body_ptr(&self) -> *mut u8 {
        // SAFETY: every Segment's mapping is at least HEADER_LEN long.
        unsafe { self.inner.map.as_mut_ptr().add(HEADER_LEN) }
    }

    /// Length of the body in bytes.
    pub fn body_len(&self) -> usize {
        self.inner.map.len() - HEADER_LEN
    }

    /// The file behind the segment.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }
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
