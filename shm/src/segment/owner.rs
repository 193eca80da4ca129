//! The owner record of a session, and opening a session directory without
//! trusting what is in the shm root.
//!
//! `/dev/shm` is writable by every user: any name there may be a FIFO, a
//! symlink to `/dev/zero`, or a directory of another user laid out like a
//! session. So a session directory is opened with `O_NOFOLLOW |
//! O_DIRECTORY | O_NONBLOCK`, and accepted only when `fstat` says it is a
//! directory owned by our effective uid with mode exactly 0700; its `owner`
//! file only when it is a regular file (opened with `O_NOFOLLOW |
//! O_NONBLOCK`, relative to the directory's descriptor), owned by us, mode
//! exactly 0600 and at most [`OWNER_MAX_LEN`] bytes, of which no more are
//! read. Nothing here blocks, follows a link or reads without a bound.
//!
//! The record, one line of ASCII:
//!
//! ```text
//! <pid> <start time in clock ticks since boot> <session id: 16 hex digits>\n
//! ```
//!
//! pid in 1..=i32::MAX, start time > 0 (a start time of 0 or one missing
//! would turn the pid-reuse check off, so it is refused), the id equal to
//! the directory's. It is written to a temporary file and renamed into
//! place, so a reader sees all of it or nothing.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use rustix::fs::{openat, Mode, OFlags, CWD};

use super::{EntryError, Refusal};

/// Longest owner record accepted, in bytes (a real one is at most 49).
pub const OWNER_MAX_LEN: u64 = 128;
/// Mode bits a session directory must have, exactly.
pub const DIR_MODE: u32 = 0o700;
/// Mode bits the owner file must have, exactly.
pub const OWNER_MODE: u32 = 0o600;
const OWNER_FILE: &str = "owner";
const OWNER_TMP: &str = ".owner.tmp";

/// Who created a session: the process that owns it while it lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    /// The owner's pid.
    pub pid: u32,
    /// Its start time in clock ticks since boot (never 0).
    pub start: u64,
    /// The session id (equal to the directory name's).
    pub id: u64,
}

/// Our effective uid.
pub fn euid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// Open `path` (an entry of the shm root) as a session directory of ours:
/// no link followed, nothing blocks; refused unless it is a directory we
/// own with mode 0700.
pub fn open_session_dir(path: &Path) -> Result<File, EntryError> {
    let flags =
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
    let fd = match openat(CWD, path, flags, Mode::empty()) {
        Ok(fd) => fd,
        // ELOOP: a symlink; ENOTDIR: a FIFO, socket, file, device.
        Err(rustix::io::Errno::LOOP | rustix::io::Errno::NOTDIR) => {
            return Err(EntryError::NotADirectory)
        }
        // Another user's 0700 directory: say whose rather than EACCES.
        Err(e @ rustix::io::Errno::ACCESS) => {
            let ours = euid();
            return Err(match std::fs::symlink_metadata(path) {
                Ok(m) if m.uid() != ours => EntryError::NotOurs { uid: m.uid(), ours },
                _ => EntryError::Io(e.into()),
            });
        }
        Err(e) => return Err(EntryError::Io(e.into())),
    };
    let file = File::from(fd);
    check_meta(&file, true, DIR_MODE).map_err(|r| match r {
        Refusal::WrongType => EntryError::NotADirectory,
        Refusal::NotOurs { uid, ours } => EntryError::NotOurs { uid, ours },
        Refusal::BadMode { found, expected } => EntryError::BadMode { found, expected },
        Refusal::Io(e) => EntryError::Io(e),
    })?;
    Ok(file)
}

/// Checks that `file` is a directory (`dir`) or a regular file, owned by
/// our effective uid, with mode bits exactly `mode`; returns its size.
fn check_meta(file: &File, dir: bool, mode: u32) -> Result<u64, Refusal> {
    let m = file.metadata().map_err(Refusal::Io)?;
    let right_type = if dir { m.is_dir() } else { m.is_file() };
    if !right_type {
        return Err(Refusal::WrongType);
    }
    let ours = euid();
    if m.uid() != ours {
        return Err(Refusal::NotOurs { uid: m.uid(), ours });
    }
    let found = m.permissions().mode() & 0o7777;
    if found != mode {
        return Err(Refusal::BadMode {
            found,
            expected: mode,
        });
    }
    Ok(m.len())
}

/// Read and check the owner record in the session directory `dir` (opened
/// with [`open_session_dir`]) whose name carries session id `id`.
pub fn read_owner(dir: &File, id: u64) -> Result<Owner, EntryError> {
    // NOCTTY: a terminal device in its place must not become ours.
    let flags =
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY;
    let fd: OwnedFd = match openat(dir.as_fd(), OWNER_FILE, flags, Mode::empty()) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOENT) => return Err(EntryError::NoOwner),
        Err(rustix::io::Errno::LOOP) => return Err(EntryError::OwnerFile(Refusal::WrongType)),
        Err(e) => return Err(EntryError::Io(e.into())),
    };
    let file = File::from(fd);
    let len = check_meta(&file, false, OWNER_MODE).map_err(EntryError::OwnerFile)?;
    if len > OWNER_MAX_LEN {
        return Err(EntryError::OwnerTooLong(len));
    }
    let mut text = Vec::with_capacity(OWNER_MAX_LEN as usize);
    // The file may grow after the fstat: never read past the cap.
    file.take(OWNER_MAX_LEN + 1).read_to_end(&mut text)?;
    if text.len() as u64 > OWNER_MAX_LEN {
        return Err(EntryError::OwnerTooLong(text.len() as u64));
    }
    parse_owner(&text, id)
}

/// Decode an owner record (see the module doc); the one decoder of it.
pub fn parse_owner(text: &[u8], id: u64) -> Result<Owner, EntryError> {
    let bad = || EntryError::BadRecord(String::from_utf8_lossy(text).into_owned());
    let line = std::str::from_utf8(text).map_err(|_| bad())?;
    let line = line.strip_suffix('\n').ok_or_else(bad)?;
    let mut fields = line.split(' ');
    let (Some(pid), Some(start), Some(hex), None) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return Err(bad());
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(pid) || !digits(start) || hex.len() != 16 {
        return Err(bad());
    }
    let pid: u32 = pid.parse().map_err(|_| bad())?;
    let start: u64 = start.parse().map_err(|_| bad())?;
    let rid = u64::from_str_radix(hex, 16).map_err(|_| bad())?;
    if pid == 0 || pid > i32::MAX as u32 || start == 0 || rid != id {
        return Err(bad());
    }
    Ok(Owner {
        pid,
        start,
        id: rid,
    })
}

/// Write the owner record of `owner` into the new session directory
/// `dir`: to a temporary file of mode 0600, then renamed to `owner`.
pub fn write_owner(dir: &Path, owner: &Owner) -> io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = dir.join(OWNER_TMP);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(OWNER_MODE)
        .open(&tmp)?;
    // The umask may have masked bits off; readers want the mode exact.
    f.set_permissions(std::fs::Permissions::from_mode(OWNER_MODE))?;
    writeln!(f, "{} {} {:016x}", owner.pid, owner.start, owner.id)?;
    drop(f);
    std::fs::rename(&tmp, dir.join(OWNER_FILE))
}

/// Start time of a process in clock ticks since boot (field 22 of
/// `/proc/<pid>/stat`), or `None` if there is no such process.
pub fn process_start_time(pid: u32) -> Option<u64> {
    // Bounded: a stat line is short; the kernel writes it, but stay sure.
    let mut buf = Vec::with_capacity(1024);
    File::open(format!("/proc/{pid}/stat"))
        .ok()?
        .take(4096)
        .read_to_end(&mut buf)
        .ok()?;
    let stat = String::from_utf8_lossy(&buf);
    // The command name may contain spaces and parentheses: skip past the last ')'.
    let after = &stat[stat.rfind(')')? + 1..];
    // after = " S ppid ..." : state is field 3, start time is field 22.
    after.split_whitespace().nth(19)?.parse().ok()
}

/// Whether the process `pid` that started at `start` (clock ticks) is
/// alive. A start time of 0 is unknown, and unknown is not alive: it
/// would make any process that reuses the pid look like the owner.
pub fn process_alive(pid: u32, start: u64) -> bool {
    start != 0 && process_start_time(pid) == Some(start)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_roundtrip_and_rejects() {
        let ok = parse_owner(b"42 1234 00000000000000ff\n", 255).unwrap();
        assert_eq!(
            ok,
            Owner {
                pid: 42,
                start: 1234,
                id: 255
            }
        );
        for bad in [
            &b"42 0 00000000000000ff\n"[..],     // start 0: pid reuse check off
            b"0 1234 00000000000000ff\n",        // pid 0: the process group
            b"4294967295 1 00000000000000ff\n",  // -1 as i32: every process
            b"42 1234 00000000000000fe\n",       // another session's id
            b"42 1234 00000000000000ff",         // no newline: torn
            b"42 1234\n",                        // short
            b"42 1234 00000000000000ff extra\n", // long
            b"+42 1234 00000000000000ff\n",      // sign
            b"42 99999999999999999999999 00000000000000ff\n", // overflow
            b"\xff\xfe 1 00000000000000ff\n",    // not UTF-8
            b"",
        ] {
            assert!(parse_owner(bad, 255).is_err(), "{bad:?} accepted");
        }
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_decode_or_fail_without_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..160), id: u64) {
            if let Ok(o) = parse_owner(&bytes, id) {
                proptest::prop_assert!(o.pid != 0 && o.start != 0 && o.id == id);
            }
        }

        #[test]
        fn written_records_read_back(pid in 1..=i32::MAX as u32, start in 1..u64::MAX, id: u64) {
            let text = format!("{pid} {start} {id:016x}\n");
            proptest::prop_assert!(text.len() as u64 <= OWNER_MAX_LEN);
            proptest::prop_assert_eq!(parse_owner(text.as_bytes(), id).unwrap(), Owner { pid, start, id });
        }
    }

    #[test]
    fn start_time_of_self_is_known_and_zero_is_not_alive() {
        let me = std::process::id();
        let t = process_start_time(me).expect("own start time");
        assert!(process_alive(me, t));
        assert!(!process_alive(me, t + 1));
        assert!(!process_alive(me, 0));
    }
}
