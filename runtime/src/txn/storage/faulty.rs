//! [`FaultyStorage`]: an in-memory file system for fault and crash tests.
//!
//! It keeps, for every file, the bytes as the process sees them (the page
//! cache) and the bytes as of its last `sync_data` (the disk); and, for the
//! namespace, the names as the process sees them and the names as of the last
//! `sync_dir` of each directory. [`FaultyStorage::crash`] builds a new file
//! system from the durable side (optionally keeping some or all of what was
//! not synced), which is what a power loss may leave; a kill -9 keeps the
//! page cache, i.e. [`CrashImage::KILL`].
//!
//! Faults: ENOSPC once the total size of the named files would pass a limit,
//! EIO on `sync_data` or `sync_dir` (once, always, or once after n calls), a
//! failed write (any errno, nothing written), a torn write (the next write
//! stores only a prefix, then fails), and a halt after N more mutating
//! operations (every later operation fails: the process died there; take a
//! crash image next).

use super::{LogFile, Storage};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

/// When an injected failure fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fail {
    /// Never.
    #[default]
    Never,
    /// On the next call only.
    Once,
    /// On every call from now on.
    Always,
    /// Once, after this many calls succeed.
    OnceAfter(u32),
}

impl Fail {
    /// Whether this call fails; a `Once` is used up.
    fn fire(&mut self) -> bool {
        match *self {
            Fail::Never => false,
            Fail::Once => {
                *self = Fail::Never;
                true
            }
            Fail::Always => true,
            Fail::OnceAfter(0) => {
                *self = Fail::Never;
                true
            }
            Fail::OnceAfter(n) => {
                *self = Fail::OnceAfter(n - 1);
                false
            }
        }
    }
}

/// What a crash keeps of the file data that was written but not synced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unsynced {
    /// Nothing: every file is as of its last `sync_data` (power loss).
    Drop,
    /// All of it (kill -9: the page cache survives).
    Keep,
    /// Each 512-byte sector that differs from the synced image is kept or
    /// dropped at random (seeded), and so is the new length: a power loss
    /// with the disk writing back in any order.
    Mix(u64),
}

/// The image a crash leaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CrashImage {
    /// File data not synced.
    pub data: Unsynced,
    /// Whether directory changes (creations, renames, removals) not followed
    /// by `sync_dir` survive.
    pub dir_changes: bool,
}

impl CrashImage {
    /// A kill -9: the kernel keeps everything.
    pub const KILL: CrashImage = CrashImage {
        data: Unsynced::Keep,
        dir_changes: true,
    };
    /// A power loss that keeps exactly what was synced.
    pub const POWER_LOSS: CrashImage = CrashImage {
        data: Unsynced::Drop,
        dir_changes: false,
    };
}

const SECTOR: usize = 512;

#[derive(Debug, Default, Clone)]
struct Inode {
    data: Vec<u8>,
    synced: Vec<u8>,
}

#[derive(Debug, Default)]
struct Fs {
    inodes: HashMap<u64, Inode>,
    names: BTreeMap<PathBuf, u64>,
    durable: BTreeMap<PathBuf, u64>,
    dirs: BTreeSet<PathBuf>,
    next_ino: u64,
    space_limit: Option<u64>,
    sync_fail: Fail,
    dir_sync_fail: Fail,
    tear_next_write: Option<usize>,
    write_fail: Fail,
    write_errno: i32,
    halt_after: Option<u64>,
    ops: u64,
}

fn errno(code: i32) -> io::Error {
    io::Error::from_raw_os_error(code)
}

impl Fs {
    /// Count one mutating operation; fail if the process has halted.
    fn op(&mut self) -> io::Result<()> {
        if let Some(left) = self.halt_after.as_mut() {
            if *left == 0 {
                return Err(io::Error::other("FaultyStorage: halted (simulated crash)"));
            }
            *left -= 1;
        }
        self.ops += 1;
        Ok(())
    }

    fn total_size(&self) -> u64 {
        let named: BTreeSet<u64> = self.names.values().copied().collect();
        named.iter().map(|i| self.inodes[i].data.len() as u64).sum()
    }

    /// ENOSPC if growing inode `ino` to `new_len` would pass the limit.
    fn check_space(&self, ino: u64, new_len: usize) -> io::Result<()> {
        let Some(limit) = self.space_limit else {
            return Ok(());
        };
        let cur = self.inodes[&ino].data.len();
        if new_len > cur && self.total_size() + (new_len - cur) as u64 > limit {
            return Err(errno(libc::ENOSPC));
        }
        Ok(())
    }

    fn new_inode(&mut self, data: Inode) -> u64 {
        self.next_ino += 1;
        self.inodes.insert(self.next_ino, data);
        self.next_ino
    }

    fn parent_exists(&self, path: &Path) -> bool {
        match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => self.dirs.contains(p),
            _ => true,
        }
    }
}

/// A fault-injecting in-memory file system; clones share it (keep one in
/// the test to inject faults while the log holds another).
#[derive(Debug, Clone, Default)]
pub struct FaultyStorage {
    fs: Arc<Mutex<Fs>>,
}

fn lock(fs: &Mutex<Fs>) -> MutexGuard<'_, Fs> {
    // A panic in a test thread must not hide the state from the others.
    fs.lock().unwrap_or_else(|e| e.into_inner())
}

impl FaultyStorage {
    /// An empty file system without faults.
    pub fn new() -> Self {
        Self::default()
    }

    /// ENOSPC once the named files would total more than `limit` bytes.
    pub fn set_space_limit(&self, limit: Option<u64>) {
        lock(&self.fs).space_limit = limit;
    }

    /// EIO from `sync_data` (the data stays unsynced).
    pub fn fail_sync(&self, when: Fail) {
        lock(&self.fs).sync_fail = when;
    }

    /// EIO from `sync_dir` (the directory changes stay unsynced).
    pub fn fail_sync_dir(&self, when: Fail) {
        lock(&self.fs).dir_sync_fail = when;
    }

    /// The next `write_at` stores only its first `n` bytes, then fails (EIO).
    pub fn tear_next_write(&self, n: usize) {
        lock(&self.fs).tear_next_write = Some(n);
    }

    /// `write_at` fails with `errno` and writes nothing (ENOSPC on a file
    /// system that allocates at write time, EIO from a failing disk).
    pub fn fail_write(&self, when: Fail, errno: i32) {
        let mut fs = lock(&self.fs);
        fs.write_fail = when;
        fs.write_errno = errno;
    }

    /// After `n` more mutating operations, every operation fails: the
    /// process died there. `None` lifts it.
    pub fn halt_after(&self, n: Option<u64>) {
        lock(&self.fs).halt_after = n;
    }

    /// Mutating operations done so far (to enumerate crash points).
    pub fn ops(&self) -> u64 {
        lock(&self.fs).ops
    }

    /// Total size of the named files.
    pub fn total_size(&self) -> u64 {
        lock(&self.fs).total_size()
    }

    /// The current bytes of `path` (as the process sees them).
    pub fn file_bytes(&self, path: &Path) -> Option<Vec<u8>> {
        let fs = lock(&self.fs);
        let ino = fs.names.get(path)?;
        Some(fs.inodes[ino].data.clone())
    }

    /// Replace the bytes of `path`, durably (to corrupt a file in a test).
    /// Returns false if there is no such file.
    pub fn set_file_bytes(&self, path: &Path, bytes: &[u8]) -> bool {
        let mut fs = lock(&self.fs);
        let Some(&ino) = fs.names.get(path) else {
            return false;
        };
        let inode = fs.inodes.get_mut(&ino).expect("named inode exists");
        inode.data = bytes.to_vec();
        inode.synced = bytes.to_vec();
        true
    }

    /// The file system a crash would leave: a new, fault-free storage.
    pub fn crash(&self, image: CrashImage) -> FaultyStorage {
        let fs = lock(&self.fs);
        let names = if image.dir_changes {
            fs.names.clone()
        } else {
            fs.durable.clone()
        };
        let mut rng = match image.data {
            Unsynced::Mix(seed) => seed | 1,
            _ => 1,
        };
        let mut inodes = HashMap::new();
        for &ino in names.values() {
            let inode = &fs.inodes[&ino];
            let data = match image.data {
                Unsynced::Drop => inode.synced.clone(),
                Unsynced::Keep => inode.data.clone(),
                Unsynced::Mix(_) => mix(&inode.synced, &inode.data, &mut rng),
            };
            let synced = data.clone();
            inodes.insert(ino, Inode { data, synced });
        }
        let new = Fs {
            inodes,
            durable: names.clone(),
            names,
            dirs: fs.dirs.clone(),
            next_ino: fs.next_ino,
            ..Fs::default()
        };
        FaultyStorage {
            fs: Arc::new(Mutex::new(new)),
        }
    }
}

/// xorshift64: a reproducible coin for [`Unsynced::Mix`].
fn coin(state: &mut u64) -> bool {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state & 1 == 1
}

/// A random mix of two images of a file, sector by sector.
fn mix(synced: &[u8], data: &[u8], rng: &mut u64) -> Vec<u8> {
    let len = if coin(rng) { data.len() } else { synced.len() };
    let mut out = vec![0u8; len];
    for start in (0..len).step_by(SECTOR) {
        let end = (start + SECTOR).min(len);
        let old = synced.get(start..end.min(synced.len())).unwrap_or(&[]);
        let new = data.get(start..end.min(data.len())).unwrap_or(&[]);
        let pick = if old == new || coin(rng) { new } else { old };
        out[start..start + pick.len()].copy_from_slice(pick);
    }
    out
}

/// An open file of [`FaultyStorage`].
#[derive(Debug)]
pub struct FaultyFile {
    fs: Arc<Mutex<Fs>>,
    ino: u64,
}

/// The syncer of a file of [`FaultyStorage`]: the same in-memory file.
#[derive(Debug)]
pub struct FaultySyncer(FaultyFile);

impl super::SyncData for FaultySyncer {
    fn sync_data(&mut self) -> io::Result<()> {
        self.0.sync_data()
    }
}

impl LogFile for FaultyFile {
    type Syncer = FaultySyncer;

    fn syncer(&self) -> FaultySyncer {
        FaultySyncer(FaultyFile {
            fs: Arc::clone(&self.fs),
            ino: self.ino,
        })
    }

    fn read_at(&self, off: u64, buf: &mut [u8]) -> io::Result<usize> {
        let fs = lock(&self.fs);
        let data = &fs.inodes[&self.ino].data;
        let start = usize::try_from(off).unwrap_or(usize::MAX).min(data.len());
        let n = buf.len().min(data.len() - start);
        buf[..n].copy_from_slice(&data[start..start + n]);
        Ok(n)
    }

    fn write_at(&mut self, off: u64, buf: &[u8]) -> io::Result<()> {
        let mut fs = lock(&self.fs);
        fs.op()?;
        if fs.write_fail.fire() {
            return Err(errno(fs.write_errno));
        }
        let off = usize::try_from(off).map_err(|_| errno(libc::EFBIG))?;
        let (n, torn) = match fs.tear_next_write.take() {
            Some(n) => (n.min(buf.len()), true),
            None => (buf.len(), false),
        };
        fs.check_space(self.ino, off + buf.len())?;
        let data = &mut fs.inodes.get_mut(&self.ino).expect("open inode").data;
        if data.len() < off + n {
            data.resize(off + n, 0);
        }
        data[off..off + n].copy_from_slice(&buf[..n]);
        if torn {
            return Err(errno(libc::EIO));
        }
        Ok(())
    }

    fn sync_data(&mut self) -> io::Result<()> {
        let mut fs = lock(&self.fs);
        fs.op()?;
        if fs.sync_fail.fire() {
            return Err(errno(libc::EIO));
        }
        let inode = fs.inodes.get_mut(&self.ino).expect("open inode");
        inode.synced = inode.data.clone();
        Ok(())
    }

    fn len(&self) -> io::Result<u64> {
        Ok(lock(&self.fs).inodes[&self.ino].data.len() as u64)
    }

    fn set_len(&mut self, len: u64) -> io::Result<()> {
        let mut fs = lock(&self.fs);
        fs.op()?;
        let len = usize::try_from(len).map_err(|_| errno(libc::EFBIG))?;
        fs.check_space(self.ino, len)?;
        let inode = fs.inodes.get_mut(&self.ino).expect("open inode");
        inode.data.resize(len, 0);
        Ok(())
    }

    fn allocate(&mut self, len: u64) -> io::Result<()> {
        let cur = self.len()?;
        if len <= cur {
            return Ok(());
        }
        self.set_len(len)
    }
}

impl Storage for FaultyStorage {
    type File = FaultyFile;

    fn open(&self, path: &Path, create: bool) -> io::Result<FaultyFile> {
        let mut fs = lock(&self.fs);
        let ino = match fs.names.get(path) {
            Some(&ino) => ino,
            None if create && fs.parent_exists(path) => {
                fs.op()?;
                let ino = fs.new_inode(Inode::default());
                fs.names.insert(path.to_path_buf(), ino);
                ino
            }
            None => return Err(errno(libc::ENOENT)),
        };
        Ok(FaultyFile {
            fs: Arc::clone(&self.fs),
            ino,
        })
    }

    fn read_all(&self, path: &Path) -> io::Result<Vec<u8>> {
        self.file_bytes(path).ok_or_else(|| errno(libc::ENOENT))
    }

    fn write_new(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        let mut fs = lock(&self.fs);
        fs.op()?;
        if !fs.parent_exists(path) {
            return Err(errno(libc::ENOENT));
        }
        let ino = match fs.names.get(path) {
            Some(&ino) => ino,
            None => {
                let ino = fs.new_inode(Inode::default());
                fs.names.insert(path.to_path_buf(), ino);
                ino
            }
        };
        // Truncation happens first, as O_TRUNC does, even if the write fails.
        fs.inodes.get_mut(&ino).expect("named inode").data.clear();
        fs.check_space(ino, bytes.len())?;
        let inode = fs.inodes.get_mut(&ino).expect("named inode");
        inode.data = bytes.to_vec();
        if fs.sync_fail.fire() {
            return Err(errno(libc::EIO));
        }
        let inode = fs.inodes.get_mut(&ino).expect("named inode");
        inode.synced = inode.data.clone();
        Ok(())
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut fs = lock(&self.fs);
        fs.op()?;
        if !fs.parent_exists(to) {
            return Err(errno(libc::ENOENT));
        }
        let ino = fs.names.remove(from).ok_or_else(|| errno(libc::ENOENT))?;
        fs.names.insert(to.to_path_buf(), ino);
        Ok(())
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        let mut fs = lock(&self.fs);
        fs.op()?;
        fs.names.remove(path).ok_or_else(|| errno(libc::ENOENT))?;
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut fs = lock(&self.fs);
        fs.op()?;
        if !fs.dirs.contains(dir) {
            return Err(errno(libc::ENOENT));
        }
        if fs.dir_sync_fail.fire() {
            return Err(errno(libc::EIO));
        }
        let in_dir = |p: &Path| p.parent() == Some(dir);
        fs.durable.retain(|p, _| !in_dir(p));
        let now: Vec<(PathBuf, u64)> = fs
            .names
            .iter()
            .filter(|(p, _)| in_dir(p))
            .map(|(p, &i)| (p.clone(), i))
            .collect();
        fs.durable.extend(now);
        Ok(())
    }

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        let mut fs = lock(&self.fs);
        fs.op()?;
        for d in dir.ancestors().filter(|d| !d.as_os_str().is_empty()) {
            fs.dirs.insert(d.to_path_buf());
        }
        Ok(())
    }

    fn exists(&self, path: &Path) -> bool {
        let fs = lock(&self.fs);
        fs.names.contains_key(path) || fs.dirs.contains(path)
    }
}
