//! Between fork and exec: what a child of the runtime (a manager or an LP)
//! gets done to it, in one `pre_exec` closure, in this order:
//!
//! 1. descriptors put at their numbers: the key pipe's read end on
//!    [`crate::wire::KEY_FD`], and (for an LP) its rings, view and socket
//!    ([`crate::handover`]); all are first moved above 100, so that no
//!    placement overwrites a descriptor another one still comes from;
//! 2. a process group of its own (managers);
//! 3. another user (`user = "..."`): setgroups to the user's group only,
//!    setgid, setuid, before the parent-death signal, which a change of
//!    credentials clears;
//! 4. SIGKILL when the parent dies, checked against a parent that died
//!    before the request took effect;
//! 5. the signal mask cleared (the parent blocks signals for its thread);
//! 6. the Landlock sandbox (LPs with `sandbox = true`): no new privileges,
//!    then the ruleset the parent built ([`crate::sandbox`]) restricts the
//!    child. Last, so that nothing above is refused by it.
//!
//! Everything in the closure is a plain system call that allocates
//! nothing: the parent may have other threads, one of which could hold
//! the allocator's lock at the fork.

use std::os::fd::RawFd;
use std::os::unix::process::CommandExt;

/// Most descriptors a child gets placed (the key pipe and four of an LP's).
pub const MAX_FDS: usize = 5;

/// What to do to a child.
#[derive(Debug, Default, Clone, Copy)]
pub struct ChildSetup {
    /// (descriptor in the parent, number in the child); up to
    /// five in all, the key pipe included.
    pub fds: [Option<(RawFd, RawFd)>; MAX_FDS - 1],
    /// Lead a process group of its own.
    pub own_group: bool,
    /// Become this (uid, gid).
    pub creds: Option<(u32, u32)>,
    /// Restrict itself with this Landlock ruleset descriptor.
    pub landlock: Option<RawFd>,
}

/// Register `setup` (and the key pipe `key_fd`, if any) on `cmd`.
pub fn apply(cmd: &mut std::process::Command, key_fd: Option<RawFd>, setup: ChildSetup) {
    let mut fds = [None; MAX_FDS];
    fds[0] = key_fd.map(|k| (k, crate::wire::KEY_FD));
    fds[1..].copy_from_slice(&setup.fds);
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: the closure runs in the forked child before exec and calls
    // only async-signal-safe system calls (fcntl, dup2, setpgid, setgroups,
    // setgid, setuid, prctl, getppid, sigemptyset, sigprocmask, syscall,
    // _exit); it allocates nothing (its captures are plain copies).
    unsafe {
        cmd.pre_exec(move || {
            place_fds(&fds)?;
            if setup.own_group {
                libc::setpgid(0, 0);
            }
            if let Some((uid, gid)) = setup.creds {
                become_user(uid, gid)?;
            }
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            // The parent may have died before prctl took effect.
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
            if let Some(rs) = setup.landlock {
                restrict(rs)?;
            }
            Ok(())
        });
    }
}

/// Step 1 (in the child).
fn place_fds(fds: &[Option<(RawFd, RawFd)>; MAX_FDS]) -> std::io::Result<()> {
    let mut high = [-1; MAX_FDS];
    for (h, f) in high.iter_mut().zip(fds) {
        if let Some((from, _)) = f {
            // SAFETY: fcntl on a descriptor of ours; no memory involved.
            *h = unsafe { libc::fcntl(*from, libc::F_DUPFD_CLOEXEC, 100) };
            if *h < 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
    }
    for (h, f) in high.iter().zip(fds) {
        if let Some((_, to)) = f {
            // SAFETY: as above; dup2 leaves the new descriptor without
            // FD_CLOEXEC, so it survives the exec (the copies above 100
            // close there).
            if unsafe { libc::dup2(*h, *to) } < 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
    }
    Ok(())
}

/// Step 3 (in the child).
fn become_user(uid: u32, gid: u32) -> std::io::Result<()> {
    let groups = [gid as libc::gid_t];
    // SAFETY: plain system calls; `groups` lives on our stack.
    unsafe {
        if libc::setgroups(1, groups.as_ptr()) != 0
            || libc::setgid(gid as libc::gid_t) != 0
            || libc::setuid(uid as libc::uid_t) != 0
        {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Step 6 (in the child).
fn restrict(ruleset: RawFd) -> std::io::Result<()> {
    // SAFETY: plain system calls on integers.
    unsafe {
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
            || libc::syscall(libc::SYS_landlock_restrict_self, ruleset, 0u32) != 0
        {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}
