//! Segment files: [`Segment::create`] writes the header, lets the caller
//! initialise the body and then publishes it; [`Segment::open`] maps a file
//! that anyone with access to the session may have written, so its header
//! is copied out and checked before the body is touched.
//!
//! Opening is a sequence of named steps (open and size the file, map it and
//! copy the header out, check the copy), each returning the same
//! [`OpenError`] it always did, in the same order.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{
    valid_name, CreateError, OpenError, SegmentHeader, SegmentKind, Session, HEADER_LEN,
    LAYOUT_VERSION, READY, SEGMENT_MAGIC,
};
use crate::sync::Ordering;

/// A mapped segment. Cloning is cheap (`Arc`); the mapping lives as long as
/// any clone.
#[derive(Clone)]
pub struct Segment {
    inner: Arc<Mapped>,
}

struct Mapped {
    /// Dropped before the map: the range is unregistered, then unmapped.
    guard: super::sigbus::Registered,
    map: memmap2::MmapRaw,
    path: PathBuf,
    file: File,
    /// (device, inode) of `file`, read at the first [`Segment::replaced`]
    /// (an open file keeps them: the check then costs one `stat`, not two;
    /// a manager runs it for each of its rings ten times a second).
    id: std::sync::OnceLock<(u64, u64)>,
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
        Self::create_with(session, name, kind, body_len, (true, true), init)
    }

    /// As [`Segment::create`], but only the pages written take memory: for
    /// a segment sized for the worst case that is mostly unused (an LP's
    /// view of a large collaboration). A full /dev/shm then shows at a
    /// write, as a SIGBUS the handler turns into a lost segment
    /// ([`Segment::is_lost`]), not at creation.
    pub fn create_sparse(
        session: &Session,
        name: &str,
        kind: SegmentKind,
        body_len: usize,
        init: impl FnOnce(*mut u8, usize),
    ) -> Result<Segment, CreateError> {
        Self::create_with(session, name, kind, body_len, (false, true), init)
    }

    /// As [`Segment::create_sparse`], but the file never has a name: it
    /// is made with `O_TMPFILE` in the session's directory (the same file
    /// system, so its pages count against /dev/shm as a named segment's
    /// would) and reaches another process only by descriptor. It goes with
    /// the last descriptor and mapping, so a crash leaves nothing behind,
    /// and nobody can open it by name. `name` labels it in errors and in
    /// [`Segment::path`] (which names no file: [`Segment::replaced`] is
    /// true).
    pub fn create_unnamed_sparse(
        session: &Session,
        name: &str,
        kind: SegmentKind,
        body_len: usize,
        init: impl FnOnce(*mut u8, usize),
    ) -> Result<Segment, CreateError> {
        Self::create_with(session, name, kind, body_len, (false, false), init)
    }

    /// `(full, named)`: allocate every block; give the file `name`.
    fn create_with(
        session: &Session,
        name: &str,
        kind: SegmentKind,
        body_len: usize,
        (full, named): (bool, bool),
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
        let mut opts = OpenOptions::new();
        opts.read(true).write(true).mode(0o600);
        let file = if named {
            opts.create_new(true).open(&path)
        } else {
            opts.custom_flags(libc::O_TMPFILE).open(session.dir())
        }
        .map_err(io)?;
        let total = (HEADER_LEN + body_len) as u64;
        let sized = if full {
            preallocate(&file, total)
        } else {
            file.set_len(total)
        };
        if let Err(source) = sized {
            // Leave no half-made segment behind to refuse the next try.
            if named {
                let _ = std::fs::remove_file(&path);
            }
            return Err(no_space_or(session, &path, total, source));
        }
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
        Ok(Segment::from_parts(map, path, file))
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
        let (file, len) = open_file(path)?;
        let map = memmap2::MmapOptions::new()
            .map_raw(&file)
            .map_err(|source| io_error(path, source))?;
        // The file may have shrunk between fstat and mmap.
        let header = HeaderCopy::read(&map)
            .ok_or_else(|| truncated(path, map.len() as u64, HEADER_LEN as u64))?;
        header.check(path, session_id, kind, len)?;
        Ok(Segment::from_parts(map, path.to_owned(), file))
    }

    /// Map the segment behind `file`, an open descriptor handed over by
    /// the segment's creator (inherited or passed over a unix socket),
    /// expecting `session_id` and `kind`: the same checks as
    /// [`Segment::open_path`], without a path to open (`label` names it in
    /// errors). A sandboxed LP opens its rings this way.
    pub fn from_fd(
        file: File,
        label: &Path,
        session_id: u64,
        kind: SegmentKind,
    ) -> Result<Segment, OpenError> {
        let len = checked_len(&file, label)?;
        let map = memmap2::MmapOptions::new()
            .map_raw(&file)
            .map_err(|source| io_error(label, source))?;
        let header = HeaderCopy::read(&map)
            .ok_or_else(|| truncated(label, map.len() as u64, HEADER_LEN as u64))?;
        header.check(label, session_id, kind, len)?;
        Ok(Segment::from_parts(map, label.to_owned(), file))
    }

    fn from_parts(map: memmap2::MmapRaw, path: PathBuf, file: File) -> Segment {
        Segment {
            inner: Arc::new(Mapped {
                guard: super::sigbus::register(map.as_ptr(), map.len()),
                map,
                path,
                file,
                id: std::sync::OnceLock::new(),
            }),
        }
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

    /// Map every page of the segment into this process now, writable, in
    /// one call (`MADV_POPULATE_WRITE`), instead of a page fault at the
    /// first write to each page: for a ring's producer, whose writes go
    /// round the whole ring (64 faults for a 256 KiB ring, on the hot path
    /// of a pair's first flood). A hint: a kernel without it, or a file cut
    /// short since it was mapped, leaves the faults to come as before. Only
    /// up to [`PREFAULT_MAX`] bytes: a larger segment (a ring sized so in
    /// the config, or a file made so by a hostile writer) is left alone.
    pub fn prefault(&self) {
        if self.inner.map.len() <= PREFAULT_MAX {
            let _ = self.inner.map.advise(memmap2::Advice::PopulateWrite);
        }
    }

    /// For the creator of the segment: write back the header fields if
    /// another process changed them (so that the next process to open the
    /// segment is not refused for good). Returns whether anything changed.
    pub fn heal_header(&self, kind: SegmentKind, session_id: u64) -> bool {
        let want = [
            SEGMENT_MAGIC.to_le(),
            u64::from(LAYOUT_VERSION.to_le()) | (u64::from((kind as u32).to_le()) << 32),
            session_id.to_le(),
            (self.inner.map.len() as u64).to_le(),
        ];
        let p = self.inner.map.as_mut_ptr().cast::<u64>();
        let mut changed = false;
        for (i, w) in want.iter().enumerate() {
            // SAFETY: the first 32 bytes of the mapping (at least 128 long,
            // page aligned) are the header's first four 8-byte words; other
            // processes may write them too: volatile, word-sized accesses.
            unsafe {
                if p.add(i).read_volatile() != *w {
                    p.add(i).write_volatile(*w);
                    changed = true;
                }
            }
        }
        let hdr = self.inner.map.as_mut_ptr().cast::<SegmentHeader>();
        // SAFETY: `hdr` points to the aligned header inside the mapping.
        let ready = unsafe { &(*hdr).ready };
        if ready.load(Ordering::Acquire) != READY {
            ready.store(READY, Ordering::Release);
            changed = true;
        }
        changed
    }

    /// Whether the file was cut short under the mapping (by another
    /// process): the pages past its end now read as zeros in this process
    /// (see [`super::sigbus`]), so the segment is garbage and its owner
    /// should make it again.
    pub fn is_lost(&self) -> bool {
        self.inner.guard.is_lost()
    }

    /// The file behind the segment.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Whether the segment's name no longer names the file we mapped: it
    /// was unlinked, or another file took its name (a reader that made its
    /// ring again, or another process). A writer of a replaced ring writes
    /// where nobody reads. An error other than "not found" (a permission
    /// taken away, say) is not taken as proof: false.
    pub fn replaced(&self) -> bool {
        use std::os::unix::fs::MetadataExt;
        let (dev, ino) = match self.inner.id.get() {
            Some(&id) => id,
            None => {
                let Ok(m) = self.inner.file.metadata() else {
                    return false;
                };
                *self.inner.id.get_or_init(|| (m.dev(), m.ino()))
            }
        };
        match std::fs::symlink_metadata(&self.inner.path) {
            Ok(now) => now.dev() != dev || now.ino() != ino,
            Err(e) => e.kind() == io::ErrorKind::NotFound,
        }
    }
}

impl std::os::fd::AsFd for Segment {
    /// The open file behind the mapping (to hand the segment to another
    /// process by descriptor).
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        std::os::fd::AsFd::as_fd(&self.inner.file)
    }
}

/// The largest segment [`Segment::prefault`] maps at once: 4 MiB.
pub const PREFAULT_MAX: usize = 4 << 20;

/// Give the new, empty `file` its `len` bytes as allocated blocks, not a
/// hole: on a full tmpfs a hole maps fine and then kills with SIGBUS the
/// first process to touch a page, so the space is claimed now, where
/// ENOSPC is an error. Falls back to a hole on filesystems without
/// `fallocate`.
fn preallocate(file: &File, len: u64) -> io::Result<()> {
    use rustix::fs::{fallocate, FallocateFlags};
    match fallocate(file, FallocateFlags::empty(), 0, len) {
        Ok(()) => Ok(()),
        Err(rustix::io::Errno::OPNOTSUPP | rustix::io::Errno::NOSYS) => file.set_len(len),
        Err(e) => Err(e.into()),
    }
}

/// A failed preallocation as [`CreateError::NoSpace`] when the shm root is
/// full, else as [`CreateError::Io`].
fn no_space_or(session: &Session, path: &Path, wanted: u64, source: io::Error) -> CreateError {
    if source.raw_os_error() == Some(rustix::io::Errno::NOSPC.raw_os_error()) {
        let dir = session.dir();
        CreateError::NoSpace {
            root: dir.parent().unwrap_or(dir).to_owned(),
            path: path.to_owned(),
            wanted,
        }
    } else {
        CreateError::Io {
            path: path.to_owned(),
            source,
        }
    }
}

fn io_error(path: &Path, source: io::Error) -> OpenError {
    OpenError::Io {
        path: path.to_owned(),
        source,
    }
}

fn truncated(path: &Path, len: u64, needed: u64) -> OpenError {
    OpenError::Truncated {
        path: path.to_owned(),
        len,
        needed,
    }
}

/// Opening, step 1: opens `path` for reading and writing and returns the
/// file with its length, refused if it cannot even hold a header. No
/// symlink is followed and a FIFO put in a segment's place does not block
/// the open (`O_NOFOLLOW | O_NONBLOCK`); anything but a regular file is
/// refused.
fn open_file(path: &Path) -> Result<(File, u64), OpenError> {
    let flags = rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK;
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(flags.bits() as i32)
        .open(path)
        .map_err(|source| io_error(path, source))?;
    let len = checked_len(&file, path)?;
    Ok((file, len))
}

/// The length of `file`, refused unless it is a regular file that can hold
/// a header.
fn checked_len(file: &File, path: &Path) -> Result<u64, OpenError> {
    let meta = file.metadata().map_err(|source| io_error(path, source))?;
    if !meta.is_file() {
        return Err(OpenError::Corrupt {
            path: path.to_owned(),
            reason: "not a regular file".into(),
        });
    }
    let len = meta.len();
    if len < HEADER_LEN as u64 {
        return Err(truncated(path, len, HEADER_LEN as u64));
    }
    Ok(len)
}

/// The header fields of a mapped segment, copied out of memory that another
/// process may write: only the copy is checked.
struct HeaderCopy {
    magic: u64,
    version: u32,
    kind: u32,
    session_id: u64,
    total_len: u64,
    ready: bool,
}

impl HeaderCopy {
    /// Opening, step 2: copies the header out of `map`; `None` if the
    /// mapping is shorter than a header.
    fn read(map: &memmap2::MmapRaw) -> Option<HeaderCopy> {
        if map.len() < HEADER_LEN {
            return None;
        }
        let base = map.as_mut_ptr();
        // SAFETY: the mapping is at least HEADER_LEN bytes and page aligned;
        // the header fields are plain integers for which any bit pattern is
        // valid, read with volatile loads since another process owns them.
        let (magic, version, kind, session_id, total_len) = unsafe {
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
        let ready = ready.load(Ordering::Acquire) == READY;
        Some(HeaderCopy {
            magic,
            version,
            kind,
            session_id,
            total_len,
            ready,
        })
    }

    /// Opening, step 3: checks the copy against what the caller expects and
    /// against `len`, the file's length: magic, version, session, kind,
    /// length, then readiness.
    fn check(
        &self,
        path: &Path,
        session_id: u64,
        kind: SegmentKind,
        len: u64,
    ) -> Result<(), OpenError> {
        let p = || path.to_owned();
        if self.magic != SEGMENT_MAGIC {
            return Err(OpenError::BadMagic(p()));
        }
        if self.version != LAYOUT_VERSION {
            return Err(OpenError::Version {
                path: p(),
                found: self.version,
                expected: LAYOUT_VERSION,
            });
        }
        if self.session_id != session_id {
            return Err(OpenError::Session {
                path: p(),
                found: self.session_id,
                expected: session_id,
            });
        }
        if self.kind != kind as u32 {
            return Err(OpenError::Kind {
                path: p(),
                found: self.kind,
                expected: kind as u32,
            });
        }
        if self.total_len > len {
            return Err(truncated(path, len, self.total_len));
        }
        if self.total_len != len {
            return Err(OpenError::Length {
                path: p(),
                declared: self.total_len,
                actual: len,
            });
        }
        if !self.ready {
            return Err(OpenError::NotReady(p()));
        }
        Ok(())
    }
}
