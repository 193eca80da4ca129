//! Spawning a manager: this same binary re-executed as
//! `shmcollab manager --session DIR --slot N`, with the session master key
//! on an inherited pipe (never argv, env or disk), stdout and stderr piped
//! to the supervisor, and a pidfd to watch it by.
//!
//! Also the environment every manager (and so its LP) gets when there are
//! more processes than CPUs: decided once per launch, at the top, and
//! passed down.

use shmcollab_runtime::wire;
use shmcollab_shm::auth::MasterKey;
use shmcollab_shm::segment::Session;
use std::os::fd::OwnedFd;
use std::process::{Child, Command, Stdio};

/// Why a manager could not be spawned.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SpawnError {
    /// The supervisor's own executable cannot be found.
    #[error(transparent)]
    Exe(std::io::Error),
    /// The pipe for the master key cannot be made.
    #[error(transparent)]
    KeyPipe(std::io::Error),
    /// fork/exec failed.
    #[error("spawning a manager")]
    Spawn(#[source] std::io::Error),
    /// The child's pid does not fit a pid.
    #[error("bad pid")]
    BadPid,
    /// pidfd_open, or registering the pidfd or a pipe with epoll.
    #[error(transparent)]
    Os(#[from] rustix::io::Errno),
}

/// A spawned manager.
pub(super) struct Manager {
    /// The process, to reap it.
    pub(super) child: Child,
    /// Its pidfd, to watch and signal it without pid reuse races.
    pub(super) pidfd: OwnedFd,
    /// Its stdout and stderr pipes, for [`super::output::Outputs::attach`].
    pub(super) stdout: Option<OwnedFd>,
    /// See `stdout`.
    pub(super) stderr: Option<OwnedFd>,
}

/// What every manager of one launch is spawned with.
pub(super) struct Spawner<'a> {
    pub(super) session: &'a Session,
    pub(super) master: &'a MasterKey,
    /// Whether frames are sealed (else no key is handed down).
    pub(super) secure: bool,
    /// Extra environment ([`crowded_env`]).
    pub(super) env: &'a [(&'static str, String)],
}

impl Spawner<'_> {
    /// Spawn the manager of `slot`.
    pub(super) fn spawn(&self, slot: u32) -> Result<Manager, SpawnError> {
        let exe = std::env::current_exe().map_err(SpawnError::Exe)?;
        let mut cmd = Command::new(exe);
        cmd.arg("manager")
            .arg("--session")
            .arg(self.session.dir())
            .arg("--slot")
            .arg(slot.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        let key = self.secure.then_some(&self.master.as_bytes()[..]);
        let key_read = wire::prepare_child(&mut cmd, key, true).map_err(SpawnError::KeyPipe)?;
        let mut child = cmd.spawn().map_err(SpawnError::Spawn)?;
        drop(key_read);
        let pid = rustix::process::Pid::from_raw(child.id() as i32).ok_or(SpawnError::BadPid)?;
        let pidfd = rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty())?;
        Ok(Manager {
            stdout: child.stdout.take().map(OwnedFd::from),
            stderr: child.stderr.take().map(OwnedFd::from),
            child,
            pidfd,
        })
    }
}

/// Environment for managers and LPs when there are more of them than CPUs
/// (`2 x lps > cpus`); each variable the user set by hand wins on its own.
pub(super) fn crowded_env(lps: usize, cpus: usize) -> Vec<(&'static str, String)> {
    if 2 * lps <= cpus {
        return Vec::new();
    }
    // A spinning waiter keeps the core that the process it waits for
    // needs: wait by yielding (measured: 16 µs instead of 55 µs per LP
    // round trip with 4 processes on 2 cores). A waiter gives its core away
    // once at the start of a wait (the process it just handed work to may
    // be queued behind it), then spins 5 µs after every yield, so that it
    // is on a core when its own work arrives instead of a context switch
    // away (pingpong, alternating runs: p50 7.4 -> 5.2 µs).
    let mut env: Vec<(&'static str, String)> = [
        ("SHMCOLAB_SPIN_US", "0"),
        ("SHMCOLAB_YIELDS", "1000"),
        ("SHMCOLAB_RESPIN_US", "5"),
    ]
    .into_iter()
    .filter(|(k, _)| std::env::var_os(k).is_none())
    .map(|(k, v)| (k, v.to_owned()))
    .collect();
    // Waiting by yielding switches context at every yield, and after each
    // switch the kernel rewrites the restartable-sequences area glibc
    // registered for the thread; nothing here uses it (measured: LP round
    // trip p50 -7 to -10%, medians of 8 and 12 alternating runs, about the
    // size of this machine's noise). A user's own rseq tunable wins; their
    // other tunables are kept.
    match std::env::var("GLIBC_TUNABLES") {
        Err(_) => env.push(("GLIBC_TUNABLES", "glibc.pthread.rseq=0".into())),
        Ok(t) if !t.contains("rseq") => {
            env.push(("GLIBC_TUNABLES", format!("{t}:glibc.pthread.rseq=0")))
        }
        Ok(_) => {}
    }
    env
}
