//! Spawning a manager by fork alone, without exec: at launch, while the
//! supervisor still has a single thread.
//!
//! Why: a manager re-executed from this binary paid, before any work of
//! its own, the exec and dynamic loading of a 38 MB binary, glibc's,
//! libgcc's and the crypto crates' CPU feature probes (`cpuid`, which traps
//! to the hypervisor here: 8-16 µs each, about a quarter of a manager's CPU
//! at start), and reading and parsing the plan of every LP (1.4 ms at 1,024
//! LPs, in each of the 1,024 managers). A forked manager has all of that in
//! the memory it was copied from (benches/README.md, "Scale: where the
//! launch of 1,024 LPs spends its CPU").
//!
//! What the child is given is what the exec path gives it
//! ([`super::spawn`], [`shmcollab_runtime::child`]): stdin from /dev/null,
//! stdout and stderr on pipes to the supervisor, every other descriptor
//! closed (but the Landlock ruleset that managers inherit), a process group
//! of its own, SIGKILL when the supervisor dies, an empty signal mask, the
//! launch's extra environment; the master key and the plan come from
//! memory instead of a pipe and the session directory. The child never
//! returns into the supervisor's code: it leaves with `_exit`, so no
//! destructor of the supervisor's objects (the session's, which removes the
//! directory) runs in it.
//!
//! Only while the supervisor has one thread ([`single_threaded`]): in a
//! forked copy of a process with other threads, a lock one of them held
//! stays locked for good. Restarts, later, use the exec path.

use super::spawn::{Manager, SpawnError, Spawner};
use shmcollab_runtime::plan::Plan;
use shmcollab_shm::auth::MasterKey;
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

/// Whether this process has a single thread (the `num_threads` field of
/// /proc/self/stat); false when it cannot tell.
pub(super) fn single_threaded() -> bool {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return false;
    };
    // The fields after the command name, which is in parentheses and may
    // hold spaces: state is the first, num_threads the 18th.
    let threads = stat
        .rfind(')')
        .and_then(|i| stat.get(i + 2..))
        .and_then(|rest| rest.split(' ').nth(17))
        .and_then(|n| n.parse::<u32>().ok());
    threads == Some(1)
}

/// Runs once, before the managers are forked, the CPU feature probes each
/// of them would make again at its first key derivation and checksum
/// (ring's, and std's for the CRC32C): their answers are in the memory the
/// managers are copied from.
pub(super) fn probe_cpu_once() {
    #[cfg(target_arch = "x86_64")]
    let _ = std::is_x86_feature_detected!("sse4.2");
    let e = shmcollab_shm::auth::Endpoint {
        id: 0,
        generation: 0,
    };
    // A throwaway key: nothing derived from the session's.
    let _ = shmcollab_shm::auth::link_key(&MasterKey::from_bytes([0; 32]), 0, e, e);
}

/// The descriptors a child gets as 0, 1 and 2.
struct Stdio {
    null: OwnedFd,
    out: OwnedFd,
    err: OwnedFd,
}

impl Spawner {
    /// Spawn the manager of `slot` by fork alone; `plan` is the plan
    /// written into the session.
    ///
    /// # Safety
    ///
    /// This process must have a single thread ([`single_threaded`]).
    pub(super) unsafe fn fork_manager(
        &self,
        plan: &Plan,
        slot: u32,
    ) -> Result<Manager, SpawnError> {
        use rustix::fs::{open, Mode, OFlags};
        use rustix::pipe::{pipe_with, PipeFlags};
        let (out_r, out) = pipe_with(PipeFlags::CLOEXEC)?;
        let (err_r, err) = pipe_with(PipeFlags::CLOEXEC)?;
        let null = open("/dev/null", OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())?;
        let stdio = Stdio { null, out, err };
        let parent = rustix::process::getpid();
        // SAFETY: the caller guarantees a single thread, so no lock is held
        // by a thread that does not exist in the child, and glibc's fork
        // leaves its allocator usable there; the child never returns.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(SpawnError::Spawn(std::io::Error::last_os_error()));
        }
        if pid == 0 {
            child(self, plan, slot, stdio, parent);
        }
        drop(stdio);
        let pid = rustix::process::Pid::from_raw(pid).ok_or(SpawnError::BadPid)?;
        let pidfd = rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty())?;
        Ok(Manager {
            pid: pid.as_raw_nonzero().get() as u32,
            pidfd,
            stdout: Some(out_r),
            stderr: Some(err_r),
        })
    }
}

/// The forked child: set up as the exec path would, run the manager, leave.
/// A panic anywhere in it (an `eprintln!` to a closed stderr included)
/// ends it too, and never unwinds into the supervisor's frames.
fn child(sp: &Spawner, plan: &Plan, slot: u32, stdio: Stdio, parent: rustix::process::Pid) -> ! {
    let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        manager(sp, plan, slot, stdio, parent)
    }));
    // The panic message is out already; 101 as for a panic in main.
    leave(run.unwrap_or(101))
}

fn manager(
    sp: &Spawner,
    plan: &Plan,
    slot: u32,
    stdio: Stdio,
    parent: rustix::process::Pid,
) -> i32 {
    let ruleset = sp.ruleset.as_ref().map(|f| f.as_raw_fd());
    let set = setup(&stdio, ruleset, parent);
    // Its descriptors are 0, 1 and 2 now, and closed under their old
    // numbers (which the manager's own files may reuse): never close them.
    std::mem::forget(stdio);
    if let Err(e) = set {
        eprintln!("shmcollab manager {slot}: setting up the forked manager: {e}");
        return 1;
    }
    // Single-threaded (the caller's contract, and the manager has started
    // no thread yet): nothing reads the environment while it changes. The
    // statics that cache a variable (`WaitStrategy::default`'s,
    // `wire::direct_enabled`) are first read after this: the supervisor
    // reads neither before it forks.
    for (k, v) in sp.env.iter() {
        std::env::set_var(k, v);
    }
    let master = sp
        .secure
        .then(|| MasterKey::take(&mut { *sp.master.as_bytes() }));
    // SAFETY: this process is a private copy of the supervisor that never
    // returns into the supervisor's frames (it leaves with `_exit`), so the
    // copy of `plan` here is never used or dropped again: the bitwise copy
    // owns its allocations alone. (A clone of the plan of 1,024 LPs was 10%
    // of a forked manager's CPU.)
    let plan = unsafe { std::ptr::read(plan) };
    match shmcollab_runtime::manager::run_forked(&sp.session, slot, plan, master) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("shmcollab manager {slot}: {e:#}");
            1
        }
    }
}

/// Descriptors, process group, parent-death signal and signal mask, as
/// [`shmcollab_runtime::child`] does between fork and exec.
fn setup(
    stdio: &Stdio,
    ruleset: Option<RawFd>,
    parent: rustix::process::Pid,
) -> std::io::Result<()> {
    rustix::stdio::dup2_stdin(&stdio.null)?;
    rustix::stdio::dup2_stdout(&stdio.out)?;
    rustix::stdio::dup2_stderr(&stdio.err)?;
    // Every other descriptor of the supervisor (its signalfd, the other
    // managers' pipes and pidfds) closed; the ruleset kept.
    let keep = ruleset.filter(|&r| r > 2).map_or(u32::MAX, |r| r as u32);
    close_range(3, keep.saturating_sub(1))?;
    if keep != u32::MAX {
        close_range(keep + 1, u32::MAX)?;
    }
    rustix::process::setpgid(None, None)?;
    rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))?;
    // The supervisor may have died before the request took effect.
    if rustix::process::getppid() != Some(parent) {
        return Err(std::io::Error::other("the supervisor died"));
    }
    let empty = nix::sys::signal::SigSet::empty();
    nix::sys::signal::pthread_sigmask(
        nix::sys::signal::SigmaskHow::SIG_SETMASK,
        Some(&empty),
        None,
    )
    .map_err(std::io::Error::from)?;
    Ok(())
}

/// Close descriptors `first..=last` (nothing when `first > last`).
fn close_range(first: u32, last: u32) -> std::io::Result<()> {
    if first > last {
        return Ok(());
    }
    // SAFETY: closes descriptors by number; nothing in this process uses
    // them again (the objects that own them are never dropped: the child
    // leaves with `_exit`).
    let r = unsafe { libc::syscall(libc::SYS_close_range, first, last, 0u32) };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// End the child without running anything of the supervisor's.
fn leave(code: i32) -> ! {
    let _ = std::io::stdout().flush();
    // SAFETY: ends the process at once; no destructor of the supervisor's
    // objects may run in this copy of it.
    unsafe { libc::_exit(code) }
}
