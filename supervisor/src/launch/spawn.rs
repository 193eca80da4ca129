//! Spawning a manager: this same binary re-executed as
//! `shmcollab manager --session DIR --slot N`, with the session master key
//! on an inherited pipe (never argv, env or disk), stdout and stderr piped
//! to the supervisor, and a pidfd to watch it by.
//!
//! At launch, while the supervisor has a single thread, managers are
//! forked without exec instead ([`super::fork`]); else large collaborations
//! are spawned by a few threads at once ([`spawn_all`]): each spawn waits
//! for the child's exec, about 0.8 ms on an idle machine and several under
//! load, which made spawning most of the launch of 256 LPs.
//!
//! Also the environment every manager (and so its LP) gets when there are
//! more processes than CPUs: decided once per launch, at the top, and
//! passed down.

use shmcollab_runtime::plan::Plan;
use shmcollab_runtime::wire;
use shmcollab_shm::auth::MasterKey;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{mpsc, Arc};

/// Collaborations of at least this many managers are spawned by
/// [`SPAWN_THREADS`] threads.
const PARALLEL_FROM: usize = 32;
/// Threads that spawn managers at launch.
const SPAWN_THREADS: usize = 4;

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
    /// Its pid.
    pub(super) pid: u32,
    /// Its pidfd, to watch, signal and reap it without pid reuse races.
    pub(super) pidfd: OwnedFd,
    /// Its stdout and stderr pipes, for [`super::output::Outputs::attach`].
    pub(super) stdout: Option<OwnedFd>,
    /// See `stdout`.
    pub(super) stderr: Option<OwnedFd>,
}

/// What every manager of one launch is spawned with.
#[derive(Clone)]
pub(super) struct Spawner {
    /// The session directory.
    pub(super) session: PathBuf,
    pub(super) master: Arc<MasterKey>,
    /// Whether frames are sealed (else no key is handed down).
    pub(super) secure: bool,
    /// Extra environment ([`crowded_env`], the Landlock ruleset's
    /// descriptor).
    pub(super) env: Arc<Vec<(&'static str, String)>>,
    /// The Landlock ruleset managers inherit (open while we spawn them).
    pub(super) ruleset: Option<Arc<std::os::fd::OwnedFd>>,
}

impl Spawner {
    /// Spawn the manager of `slot`.
    pub(super) fn spawn(&self, slot: u32) -> Result<Manager, SpawnError> {
        let exe = std::env::current_exe().map_err(SpawnError::Exe)?;
        let mut cmd = Command::new(exe);
        cmd.arg("manager")
            .arg("--session")
            .arg(&self.session)
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
        // Reaped through the pidfd (`Manager::reap`), as a forked one is;
        // dropping a `Child` neither waits nor kills.
        Ok(Manager {
            stdout: child.stdout.take().map(OwnedFd::from),
            stderr: child.stderr.take().map(OwnedFd::from),
            pid: child.id(),
            pidfd,
        })
    }
}

impl Manager {
    /// Reap it (it has ended: its pidfd was readable).
    pub(super) fn reap(&self) -> std::io::Result<std::process::ExitStatus> {
        use rustix::process::{waitid, WaitId, WaitIdOptions};
        use std::os::fd::AsFd;
        use std::os::unix::process::ExitStatusExt;
        let st = waitid(WaitId::PidFd(self.pidfd.as_fd()), WaitIdOptions::EXITED)?
            .ok_or_else(|| std::io::Error::other("no exit status"))?;
        // The wait status as waitpid gives it, which ExitStatus holds.
        let raw = match (st.exit_status(), st.terminating_signal()) {
            (Some(code), _) => (code & 0xff) << 8,
            (None, Some(sig)) => sig | if st.dumped() { 0x80 } else { 0 },
            (None, None) => return Err(std::io::Error::other("not an exit")),
        };
        Ok(std::process::ExitStatus::from_raw(raw))
    }
}

/// Spawn the managers of slots `0..n` of `plan`: forked without exec
/// while this process has a single thread, else in parallel for large
/// collaborations; the results in slot order.
///
/// The threads that spawned a manager never end: a manager's parent-death
/// signal (`PR_SET_PDEATHSIG`) fires when the *thread* that forked it exits,
/// so they park for the supervisor's life once done.
pub(super) fn spawn_all(
    spawner: &Spawner,
    plan: &Plan,
    n: usize,
) -> Vec<Result<Manager, SpawnError>> {
    if fork_enabled() && super::fork::single_threaded() {
        super::fork::probe_cpu_once();
        // SAFETY: single-threaded, checked just above; nothing here starts
        // a thread before the loop ends.
        return (0..n as u32)
            .map(|s| unsafe { spawner.fork_manager(plan, s) })
            .collect();
    }
    if n < PARALLEL_FROM {
        return (0..n as u32).map(|s| spawner.spawn(s)).collect();
    }
    let (done_tx, done_rx) = mpsc::channel();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut started = 0;
    for t in 0..SPAWN_THREADS {
        let (spawner, next, done) = (spawner.clone(), next.clone(), done_tx.clone());
        let work = move || {
            use std::sync::atomic::Ordering::Relaxed;
            loop {
                let slot = next.fetch_add(1, Relaxed);
                if slot >= n {
                    break;
                }
                if done.send((slot, spawner.spawn(slot as u32))).is_err() {
                    break;
                }
            }
            drop((done, spawner));
            loop {
                std::thread::park();
            }
        };
        let named = std::thread::Builder::new().name(format!("spawn-{t}"));
        if named.spawn(work).is_ok() {
            started += 1;
        }
    }
    drop(done_tx);
    if started == 0 {
        return (0..n as u32).map(|s| spawner.spawn(s)).collect();
    }
    let mut out: Vec<Option<Result<Manager, SpawnError>>> = (0..n).map(|_| None).collect();
    for (slot, r) in done_rx {
        out[slot] = Some(r);
    }
    out.into_iter()
        .map(|r| r.unwrap_or_else(|| Err(SpawnError::Spawn(std::io::Error::other("not spawned")))))
        .collect()
}

/// Whether managers may be forked without exec: unless `SHMCOLAB_FORK=0`
/// in `launch`'s environment (for measuring the difference).
fn fork_enabled() -> bool {
    std::env::var("SHMCOLAB_FORK").map_or(true, |v| v != "0")
}

/// Forked managers keep the glibc tunables this process was started with
/// (glibc reads them at exec): when [`crowded_env`] gives managers a
/// `GLIBC_TUNABLES` other than ours, run this binary again with it, before
/// anything is set up. Goes on as it is if the exec fails.
pub(super) fn exec_with_managers_tunables(lps: usize, cpus: usize) {
    use std::os::unix::process::CommandExt;
    let env = crowded_env(lps, cpus);
    let Some((_, want)) = env.iter().find(|(k, _)| *k == "GLIBC_TUNABLES") else {
        return;
    };
    // After the exec ours holds the rseq tunable, and crowded_env gives
    // none: this runs once.
    if !fork_enabled() || std::env::var("GLIBC_TUNABLES").as_deref() == Ok(want.as_str()) {
        return;
    }
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let err = Command::new(exe)
        .args(std::env::args_os().skip(1))
        .env("GLIBC_TUNABLES", want)
        .exec();
    eprintln!("shmcollab: running again with GLIBC_TUNABLES={want}: {err}");
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
