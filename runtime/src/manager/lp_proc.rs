//! The LP as an OS process: started with its link keys on an inherited
//! pipe (never argv, env or disk), watched through a pidfd by a small
//! thread that rings our doorbell when it ends, signalled through the
//! pidfd (no pid-reuse race), and placed on the plan's CPUs.

use super::context::{Ctx, Flags};
use super::lp_access::Spawn;
use crate::plan::{process_cpus, resolve_program, set_process_cpus};
use crate::wire;
use shmcollab_shm::auth::LinkKey;
use shmcollab_shm::LoadMode;
use std::os::fd::{AsFd, OwnedFd};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Why the LP could not be started.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SpawnError {
    /// The program could not be executed.
    #[error("starting {name} ({program}): {source}")]
    Exec {
        /// The LP's name.
        name: String,
        /// The resolved program.
        program: String,
        /// Why.
        source: std::io::Error,
    },
    /// `user = "..."` cannot be applied.
    #[error("{name}: {why}")]
    User {
        /// The LP's name.
        name: String,
        /// Why.
        why: String,
    },
    /// A system call around the start failed (pipe, pidfd, thread).
    #[error("{what}: {source}")]
    Os {
        /// What was being done.
        what: &'static str,
        /// Why.
        source: std::io::Error,
    },
}

fn os(what: &'static str) -> impl FnOnce(std::io::Error) -> SpawnError {
    move |source| SpawnError::Os { what, source }
}

/// A running LP process.
pub(super) struct LpProc {
    child: Child,
    pidfd: Arc<OwnedFd>,
}

/// The LP's two link keys: (manager -> LP, LP -> manager).
pub(super) type LpKeys = (Option<LinkKey>, Option<LinkKey>);

impl LpProc {
    /// Start our LP with the link keys `keys` and what `access` handed it
    /// (descriptors, handover, sandbox, user).
    pub fn spawn(ctx: &Ctx, keys: &LpKeys, access: Spawn) -> Result<LpProc, SpawnError> {
        let p = ctx.lp_plan();
        let program = resolve_program(&p.command[0], &p.cwd);
        let mut cmd = Command::new(&program);
        cmd.args(&p.command[1..])
            .current_dir(&p.cwd)
            .envs(p.env.iter().map(|(k, v)| (k, v)))
            .env(wire::env::SESSION, ctx.session.dir())
            .env(wire::env::SLOT, ctx.slot.to_string())
            .env(wire::env::NAME, &p.name)
            .env(crate::handover::env::HANDOVER, &access.handover)
            .stdin(Stdio::null());
        let mut key_bytes = match keys {
            (Some(to_lp), Some(from_lp)) => {
                cmd.env(wire::env::KEY_FD, wire::KEY_FD.to_string());
                let mut b = [0u8; 32];
                b[..16].copy_from_slice(from_lp.as_bytes());
                b[16..].copy_from_slice(to_lp.as_bytes());
                Some(b)
            }
            _ => {
                cmd.env_remove(wire::env::KEY_FD);
                None
            }
        };
        // The LP dies with its manager; it stays in the manager's group.
        let key = key_bytes.as_ref().map(|b| &b[..]);
        let key_pipe = wire::prepare_child_with(&mut cmd, key, access.setup);
        if let Some(b) = key_bytes.as_mut() {
            shmcollab_shm::auth::wipe(b);
        }
        let key_pipe = key_pipe.map_err(os("passing the link keys"))?;
        let child = cmd.spawn().map_err(|source| SpawnError::Exec {
            name: p.name.clone(),
            program: program.display().to_string(),
            source,
        })?;
        drop(key_pipe);
        drop(access);
        let pid = child.id();
        if let Some(split) = &ctx.plan.cpus {
            // Forked from us, it would run on the managers' CPUs (once we
            // placed ourselves) until it is ready: let it start anywhere.
            // Not before we placed ourselves (its first start): it has our
            // CPUs then, these already, and moving it anyway cost 4% of a
            // manager's CPU at launch (perf, 1,024 LPs).
            let all = split.all();
            if process_cpus(None) != all {
                set_process_cpus(pid, &all);
            }
        }
        let raw = rustix::process::Pid::from_raw(pid as i32)
            .ok_or_else(|| os("pidfd_open")(std::io::Error::other("bad pid")))?;
        let pidfd = rustix::process::pidfd_open(raw, rustix::process::PidfdFlags::empty())
            .map_err(|e| os("pidfd_open")(e.into()))?;
        let pidfd = Arc::new(pidfd);
        ctx.flags.lp_exited.store(false, Ordering::SeqCst);
        watch(ctx, pidfd.clone(), ctx.flags.clone()).map_err(os("starting the LP watch thread"))?;
        Ok(LpProc { child, pidfd })
    }

    /// The LP's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Reap it (it has ended: its pidfd was readable).
    pub fn wait(mut self) -> std::io::Result<ExitStatus> {
        self.child.wait()
    }

    /// Signal it through its pidfd.
    pub fn signal(&self, sig: rustix::process::Signal) {
        let _ = rustix::process::pidfd_send_signal(self.pidfd.as_fd(), sig);
    }

    /// Place this manager and the LP as the load mode says: both on the
    /// compact CPU while the load is light, both on our slot's CPU while
    /// paired, else the plan's CPU split. (The supervisor's governor moves
    /// every process when the mode changes.)
    pub fn place(&self, ctx: &Ctx, mode: LoadMode) {
        if let Some(split) = &ctx.plan.cpus {
            let (me, lp) = split.for_slot(mode, ctx.slot);
            set_process_cpus(std::process::id(), me);
            set_process_cpus(self.pid(), lp);
        }
    }
}

/// A thread that waits for the pidfd to become readable (the LP ended),
/// sets the flag and rings our doorbell.
fn watch(ctx: &Ctx, pidfd: Arc<OwnedFd>, flags: Arc<Flags>) -> std::io::Result<()> {
    let reg = ctx.registry.clone();
    let slot = ctx.slot;
    std::thread::Builder::new()
        .name("lp-watch".into())
        .spawn(move || {
            let mut fds = [rustix::event::PollFd::new(
                &*pidfd,
                rustix::event::PollFlags::IN,
            )];
            while rustix::event::poll(&mut fds, None).is_err() {}
            flags.lp_exited.store(true, Ordering::SeqCst);
            Ctx::wake(&reg, slot);
        })
        .map(drop)
}
