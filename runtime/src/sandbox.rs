//! The LP sandbox (issue 11): with `sandbox = true` an LP reaches only
//! what its manager handed it by descriptor ([`crate::handover`]).
//!
//! The supervisor builds a Landlock ruleset once for the whole launch
//! ([`ruleset_for_children`]) and its managers inherit the descriptor
//! ([`LANDLOCK_FD_ENV`]; building it walks the ancestors of the session
//! root, which cost every manager's start-up some 0.2 ms when each built
//! its own: launch of 32 sandboxed LPs 1.089x unsandboxed); a manager
//! started without it builds its own ([`Sandbox::prepare`]). Each LP child
//! restricts itself with it between fork and exec
//! ([`crate::child`]). Landlock is an allow-list: a rule grants access to
//! everything beneath a directory. To deny one directory, the session root
//! (`/dev/shm` or `SHMCOLAB_SHM_ROOT`), the ruleset allows every entry of
//! each of its ancestors except the one on the way down to it: for
//! `/dev/shm`, everything in `/` but `dev`, everything in `/dev` but `shm`.
//! So the LP can open no session directory, registry, ring or plan, of its
//! collaboration or another, while the rest of the file system works as
//! before (except listing the ancestors themselves, and files created in
//! them later). Entries that resolve to the root or one of its ancestors
//! (a symlink `/shm -> /dev/shm`) are left out. Rules are on inodes, not
//! names: another path to the root (`/run/shm -> /dev/shm`) is not under
//! any allowed directory and stays closed; a bind mount of the root
//! elsewhere would not (see the README).
//!
//! With Landlock ABI 6 or later the ruleset also scopes signals and
//! abstract unix sockets: the LP cannot signal its manager (or any process
//! outside its sandbox) nor connect to an abstract socket made outside it.
//!
//! Where the kernel lacks Landlock (or has ABI < 6) the sandbox is
//! *degraded*, stated in a warning and in `status` (`sandbox: "degraded"`):
//! the LP still gets everything by descriptor and never maps the registry,
//! but the kernel does not stop it opening files by path.

use landlock::{
    path_beneath_rules, Access, AccessFs, Ruleset, RulesetAttr, RulesetCreatedAttr, Scope, ABI,
};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

/// The Landlock ABI whose rights and scopes the ruleset handles.
const TARGET_ABI: ABI = ABI::V6;

/// How sandboxed an LP is, as `status` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Level {
    /// `sandbox = false`.
    Off,
    /// Landlock with file-system rules and IPC scopes.
    On,
    /// Asked for, but the kernel cannot do all of it: why.
    Degraded(String),
}

impl Level {
    /// The word in `status`.
    pub fn word(&self) -> &'static str {
        match self {
            Level::Off => "off",
            Level::On => "on",
            Level::Degraded(_) => "degraded",
        }
    }
}

/// A ruleset ready to be applied to children, and how complete it is.
#[derive(Debug)]
pub struct Sandbox {
    ruleset: Option<OwnedFd>,
    level: Level,
}

/// The Landlock ABI of the running kernel (0: none).
pub fn kernel_abi() -> i64 {
    const LANDLOCK_CREATE_RULESET_VERSION: u32 = 1;
    // SAFETY: landlock_create_ruleset(NULL, 0, VERSION) reads no memory and
    // returns the ABI version or -1.
    let v = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<u8>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    v.max(0)
}

impl Sandbox {
    /// Build the ruleset that closes `root` (the session root). `landlock`
    /// false: act as on a kernel without Landlock (the stated fallback,
    /// for tests and for kernels that misbehave).
    pub fn prepare(root: &Path, landlock: bool) -> Sandbox {
        let abi = if landlock { kernel_abi() } else { 0 };
        if abi <= 0 {
            return Sandbox::degraded("the kernel has no Landlock".into());
        }
        let ruleset = match build(root) {
            Ok(fd) => fd,
            Err(e) => return Sandbox::degraded(format!("the Landlock ruleset failed: {e}")),
        };
        let level = if abi >= 6 {
            Level::On
        } else {
            Level::Degraded(format!(
                "Landlock ABI {abi} < 6: files are closed but signals are not scoped"
            ))
        };
        Sandbox {
            ruleset: Some(ruleset),
            level,
        }
    }

    fn degraded(why: String) -> Sandbox {
        Sandbox {
            ruleset: None,
            level: Level::Degraded(why),
        }
    }

    /// How complete it is.
    pub fn level(&self) -> &Level {
        &self.level
    }

    /// The ruleset descriptor for [`crate::child::ChildSetup::landlock`].
    pub fn ruleset_fd(&self) -> Option<RawFd> {
        self.ruleset.as_ref().map(|f| f.as_raw_fd())
    }
}

/// The environment variable naming the ruleset descriptor a manager
/// inherits from the supervisor.
pub const LANDLOCK_FD_ENV: &str = "SHMCOLAB_LANDLOCK_FD";

/// For the supervisor: the ruleset closing `root`, its descriptor
/// inheritable (not close-on-exec), for managers to find through
/// [`LANDLOCK_FD_ENV`]; `None` without Landlock.
pub fn ruleset_for_children(root: &Path) -> Option<OwnedFd> {
    if kernel_abi() <= 0 {
        return None;
    }
    let fd = build(root).ok()?;
    rustix::io::fcntl_setfd(&fd, rustix::io::FdFlags::empty()).ok()?;
    Some(fd)
}

impl Sandbox {
    /// The ruleset the supervisor built and this manager inherited, if any
    /// (and `landlock`). Its descriptor becomes close-on-exec here: the LP
    /// applies it before exec and does not keep it.
    pub fn inherited(landlock: bool) -> Option<Sandbox> {
        use std::os::fd::FromRawFd;
        if !landlock {
            return None;
        }
        let fd: RawFd = std::env::var(LANDLOCK_FD_ENV).ok()?.parse().ok()?;
        if fd < 3 {
            return None;
        }
        // SAFETY: `fd` is a valid descriptor number of this process
        // (fcntl succeeds on it only then); it was inherited for this use
        // and nothing else in the manager owns it; this runs once per
        // manager (the caller keeps the result).
        let borrowed = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
        rustix::io::fcntl_getfd(borrowed).ok()?;
        // Moved above the numbers an LP child's descriptors are placed on
        // (the supervisor's number may be one of them), close-on-exec.
        let owned = rustix::io::fcntl_dupfd_cloexec(borrowed, 64).ok()?;
        // SAFETY: as above; ownership is taken once, to close it.
        drop(unsafe { OwnedFd::from_raw_fd(fd) });
        let abi = kernel_abi();
        let level = if abi >= 6 {
            Level::On
        } else {
            Level::Degraded(format!(
                "Landlock ABI {abi} < 6: files are closed but signals are not scoped"
            ))
        };
        Some(Sandbox {
            ruleset: Some(owned),
            level,
        })
    }
}

fn build(root: &Path) -> Result<OwnedFd, Box<dyn std::error::Error>> {
    let root = root.canonicalize()?;
    let allowed = allowed_around(&root)?;
    let mut created = Ruleset::default()
        .handle_access(AccessFs::from_all(TARGET_ABI))?
        .scope(Scope::from_all(TARGET_ABI))?
        .create()?;
    for rule in path_beneath_rules(&allowed, AccessFs::from_all(TARGET_ABI)).flatten() {
        // A rule the kernel refuses (an entry on an internal file system)
        // leaves that entry closed, which is the safe side.
        let _ = (&mut created).add_rule(rule);
    }
    Option::<OwnedFd>::from(created).ok_or_else(|| "Landlock is not enforced".into())
}

/// Every entry of each ancestor of `root` but the one leading to it, less
/// entries that resolve to `root` or an ancestor of it.
fn allowed_around(root: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut dir = PathBuf::from("/");
    for comp in root.components().skip(1) {
        let next = dir.join(comp);
        for e in std::fs::read_dir(&dir)?.flatten() {
            let p = e.path();
            // Symlinks are skipped: their targets are allowed or not on
            // their own (rules hold for inodes), and one to a pipe
            // (`/dev/stdin`) cannot take a rule.
            if p == next || e.file_type().is_ok_and(|t| t.is_symlink()) {
                continue;
            }
            let leads_in = p
                .canonicalize()
                .is_ok_and(|c| c.starts_with(root) || root.starts_with(&c));
            if !leads_in {
                out.push(p);
            }
        }
        dir = next;
    }
    Ok(out)
}

/// The (uid, gid) of user `name`, for `user = "..."`.
pub fn lookup_user(name: &str) -> Result<(u32, u32), String> {
    match nix::unistd::User::from_name(name) {
        Ok(Some(u)) => Ok((u.uid.as_raw(), u.gid.as_raw())),
        Ok(None) => Err(format!("no user named {name:?}")),
        Err(e) => Err(format!("looking up user {name:?}: {e}")),
    }
}

/// Whether this process may switch to another user (root or CAP_SETUID and
/// CAP_SETGID in its effective set).
pub fn may_switch_user() -> bool {
    if rustix::process::geteuid().is_root() {
        return true;
    }
    // CapEff in /proc/self/status: bits 6 (SETGID) and 7 (SETUID).
    let Ok(s) = std::fs::read_to_string("/proc/self/status") else {
        return false;
    };
    s.lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .is_some_and(|caps| caps & 0xc0 == 0xc0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_root_and_its_ancestors_are_never_allowed() {
        let base = std::env::temp_dir().join(format!("sbx{}", std::process::id()));
        let root = base.join("root");
        std::fs::create_dir_all(root.join("inside")).unwrap();
        std::fs::create_dir_all(base.join("sibling")).unwrap();
        std::os::unix::fs::symlink(&root, base.join("link")).unwrap();
        let root = root.canonicalize().unwrap();
        let allowed = allowed_around(&root).unwrap();
        let _ = std::fs::remove_dir_all(&base);
        let base = base.canonicalize().unwrap_or(base);
        assert!(
            allowed.iter().any(|p| p.ends_with("sibling")),
            "{allowed:?}"
        );
        for p in &allowed {
            assert!(!root.starts_with(p), "{p:?} is the root or above it");
            assert!(!p.starts_with(&root), "{p:?} is inside the root");
            assert!(!p.ends_with("link"), "{p:?} leads into the root");
        }
        assert!(allowed.iter().any(|p| p.parent() == Some(&base)));
    }

    #[test]
    fn without_landlock_the_sandbox_says_it_is_degraded() {
        let s = Sandbox::prepare(Path::new("/dev/shm"), false);
        assert_eq!(s.level().word(), "degraded");
        assert!(s.ruleset_fd().is_none());
    }
}
