//! `shmcollab launch`: the supervisor.
//!
//! Setting up (here): the build command, the session and its registry, the
//! placement of LPs and managers on CPUs, the plan written into the
//! session, the master key. Then one event loop (`event_loop`) over a
//! signalfd, one pidfd per manager and the output pipes of the managers
//! (their LPs inherit them), which hands each manager's events to its state
//! machine (`machine`: Starting -> Running -> Backoff -> ... -> Stopping
//! -> Exited) and stops the collaboration in reverse start order. The
//! parts: spawning a manager (`spawn`), printing what the processes say
//! (`output`), finding running sessions ([`session`]).
//!
//! Errors are typed ([`LaunchError`], [`SpawnError`]) and printed with their
//! causes only at the top ([`launch`]).

mod event_loop;
mod fork;
mod machine;
mod output;
pub mod session;
mod spawn;

pub use session::{find_live_session, lookup, session_owner, LiveSession, Lookup};
pub use spawn::SpawnError;

use crate::config::Config;
use event_loop::{block_signals, Outcome, Supervisor};
use shmcollab_runtime::plan::{process_cpus, CpuSplit, Placement, Plan};
use shmcollab_shm::auth::MasterKey;
use shmcollab_shm::registry::{LpState, Registry, RegistryError, DEFAULT_STATUS_CAP};
use shmcollab_shm::segment::{Session, SessionError};
use spawn::{crowded_env, exec_with_managers_tunables, Spawner};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

/// Exit codes of `launch`.
pub mod code {
    /// Every LP ended successfully, or the collaboration was stopped on request.
    pub const OK: i32 = 0;
    /// The collaboration failed (a reason is printed).
    pub const FAILED: i32 = 1;
    /// The config was refused; nothing was started.
    pub const CONFIG: i32 = 2;
}

/// Why a collaboration could not be set up (once it runs, a failure ends it
/// with [`code::FAILED`] and a printed reason instead).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LaunchError {
    /// The build command could not be run.
    #[error("running the build command {command:?}")]
    Build {
        /// The command.
        command: Vec<String>,
        /// Why.
        #[source]
        error: std::io::Error,
    },
    /// The build command failed.
    #[error("the build command {command:?} failed: {status}")]
    BuildFailed {
        /// The command.
        command: Vec<String>,
        /// How it ended.
        status: ExitStatus,
    },
    /// A collaboration of that name runs already.
    #[error("collaboration {name:?} is already running ({}, supervisor pid {pid})", dir.display())]
    AlreadyRunning {
        /// Its name.
        name: String,
        /// Its session directory.
        dir: PathBuf,
        /// Its supervisor.
        pid: u32,
    },
    /// The stop signals cannot be blocked or read from a signalfd.
    #[error(transparent)]
    Signals(#[from] nix::Error),
    /// The session directory cannot be made.
    #[error("creating the session")]
    Session(#[source] SessionError),
    /// The registry cannot be made or filled.
    #[error("creating the registry")]
    CreateRegistry(#[source] RegistryError),
    /// A sub-function of the plan is not in the registry.
    #[error("sub-function {0} missing from the registry")]
    MissingSubfn(String),
    /// Assigning a sub-function in the registry failed.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The plan cannot be encoded.
    #[error(transparent)]
    Plan(#[from] serde_json::Error),
    /// The plan cannot be written into the session.
    #[error(transparent)]
    WritePlan(#[from] std::io::Error),
    /// The event loop cannot be set up.
    #[error(transparent)]
    Os(#[from] rustix::io::Errno),
    /// A manager could not be spawned at launch.
    #[error(transparent)]
    Spawn(#[from] SpawnError),
}

/// `error: cause: cause ...`, the way the binary prints errors.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        s.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    s
}

/// Run `config` in the foreground; returns the process exit code.
pub fn launch(config_path: &Path) -> i32 {
    let cfg = match Config::load(config_path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("shmcollab: {e}");
            return code::CONFIG;
        }
    };
    exec_with_managers_tunables(cfg.plan().lps.len(), usable_cpus().1);
    match run(&cfg) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("shmcollab: {}", error_chain(&e));
            code::FAILED
        }
    }
}

fn run(cfg: &Config) -> Result<i32, LaunchError> {
    let mut plan = cfg.plan().clone();
    if let Some(build) = cfg.build_command() {
        run_build(build, &plan)?;
    }
    let found = lookup(&plan.name);
    if let Some(live) = found.live.first() {
        return Err(LaunchError::AlreadyRunning {
            name: plan.name.clone(),
            dir: live.dir.clone(),
            pid: live.owner.pid,
        });
    }
    // Another user's entry (or junk) under our name does not block us: our
    // session gets a fresh random id; say what was passed over.
    for (path, why) in &found.ignored {
        eprintln!("shmcollab: ignoring {}: {why}", path.display());
    }
    let sigfd = block_signals()?;
    let started = Instant::now();
    let session = Session::create(&plan.name).map_err(LaunchError::Session)?;
    let registry = create_registry(&session, &plan)?;
    let mut env = place(&mut plan);
    // One Landlock ruleset for every manager (each building its own was a
    // measurable part of launch); kept open as long as the supervisor runs.
    let landlock = std::env::var("SHMCOLAB_LANDLOCK").map_or(true, |v| v != "0");
    let ruleset = (landlock && plan.lps.iter().any(|l| l.sandbox))
        .then(|| {
            shmcollab_runtime::sandbox::ruleset_for_children(
                session.dir().parent().unwrap_or(session.dir()),
            )
        })
        .flatten();
    if let Some(fd) = &ruleset {
        use std::os::fd::AsRawFd;
        env.push((
            shmcollab_runtime::sandbox::LANDLOCK_FD_ENV,
            fd.as_raw_fd().to_string(),
        ));
    }
    write_private(
        &session.dir().join(Plan::FILE),
        // Compact: every manager parses all of it at start.
        &serde_json::to_vec(&plan)?,
    )?;
    let master = MasterKey::generate();
    let spawner = Spawner {
        session: session.dir().to_path_buf(),
        master: std::sync::Arc::new(master),
        secure: plan.secure,
        env: std::sync::Arc::new(env),
        ruleset: ruleset.map(std::sync::Arc::new),
    };
    let mut supervisor = Supervisor::new(&plan, &registry, spawner, sigfd)?;
    supervisor.start_all()?;
    if plan.lps.len() >= PROGRESS_FROM {
        eprintln!(
            "shmcollab: {} managers spawned after {:.1} ms",
            plan.lps.len(),
            started.elapsed().as_secs_f64() * 1e3
        );
    }
    spawn_ready_watch(registry.clone(), plan.lps.len(), started);
    let Outcome {
        failure,
        stop_requested,
    } = supervisor.run();
    drop(session);
    match failure {
        Some(reason) => {
            eprintln!("shmcollab: {} failed: {reason}", plan.name);
            Ok(code::FAILED)
        }
        None => {
            if stop_requested {
                eprintln!("shmcollab: {} stopped", plan.name);
            }
            Ok(code::OK)
        }
    }
}

/// Run the config's build command in the LPs' directory.
fn run_build(build: &[String], plan: &Plan) -> Result<(), LaunchError> {
    let status = Command::new(&build[0])
        .args(&build[1..])
        .current_dir(&plan.lps[0].cwd)
        .status()
        .map_err(|error| LaunchError::Build {
            command: build.to_vec(),
            error,
        })?;
    if !status.success() {
        return Err(LaunchError::BuildFailed {
            command: build.to_vec(),
            status,
        });
    }
    Ok(())
}

/// The registry of `plan`, every sub-function assigned to its LP's slot.
fn create_registry(session: &Session, plan: &Plan) -> Result<Registry, LaunchError> {
    let subfns: Vec<&str> = plan.subfns.iter().map(String::as_str).collect();
    let registry = Registry::create(
        session,
        &plan.name,
        plan.lps.len() as u32,
        &subfns,
        status_cap(plan.lps.len()),
    )
    .map_err(LaunchError::CreateRegistry)?;
    registry.set_secure(plan.secure);
    for (slot, lp) in plan.lps.iter().enumerate() {
        for sf in &lp.subfns {
            let i = registry
                .subfn_index(sf)
                .ok_or_else(|| LaunchError::MissingSubfn(sf.clone()))?;
            registry.set_subfn_owner(i, Some(slot as u32))?;
        }
    }
    Ok(registry)
}

/// Bytes of status area for `lps` LPs: the coordinator's aggregate is a
/// few hundred bytes an LP (more with custom values and many links); the
/// area is fully allocated in /dev/shm like every segment, so it grows with
/// the LPs instead of being the largest for all.
fn status_cap(lps: usize) -> usize {
    const PER_LP: usize = 4096;
    lps.saturating_mul(PER_LP)
        .clamp(DEFAULT_STATUS_CAP, shmcollab_shm::registry::MAX_STATUS_CAP)
}

/// The CPUs launch may use, and what follows from there being more
/// managers and LPs than those: the CPU split in the plan (with
/// `placement = "auto"`) and the environment of every manager.
fn place(plan: &mut Plan) -> Vec<(&'static str, String)> {
    let (allowed, cpus) = usable_cpus();
    let env = crowded_env(plan.lps.len(), cpus);
    if plan.placement != Placement::None {
        plan.cpus = CpuSplit::for_cpus(&allowed, 2 * plan.lps.len());
        if let Some(c) = plan.cpus.as_ref().filter(|c| c.mixed()) {
            eprintln!(
                "shmcollab: {} LPs and managers on {} CPUs: mixed on CPUs {:?} once ready \
                 (over {} a CPU; placement = \"none\" in the config turns this off)",
                2 * plan.lps.len(),
                c.lps.len(),
                c.lps,
                shmcollab_runtime::plan::MIX_ABOVE_PER_CPU
            );
        } else if let Some(c) = &plan.cpus {
            eprintln!(
                "shmcollab: {} LPs and managers on {} CPUs: LPs on CPUs {:?}, managers on \
                 CPUs {:?} once ready (placement = \"none\" in the config turns this off)",
                2 * plan.lps.len(),
                c.lps.len() + c.managers.len(),
                c.lps,
                c.managers
            );
        }
    }
    env
}

/// The CPUs this process may run on, and how many.
fn usable_cpus() -> (Vec<usize>, usize) {
    let allowed = process_cpus(None);
    let cpus = match allowed.len() {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    (allowed, cpus)
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)?;
    Ok(())
}

/// Collaborations of at least this many LPs get progress lines while they
/// start.
const PROGRESS_FROM: usize = 64;
/// Progress lines are this far apart.
const PROGRESS_EVERY: Duration = Duration::from_millis(500);
/// The ready count is taken at most this often (it reads every slot; the
/// change counter moves twice per LP while they start).
const COUNT_EVERY: Duration = Duration::from_millis(5);

/// Print once when every LP has said ready, and for large collaborations
/// how many are ready every [`PROGRESS_EVERY`] until then.
fn spawn_ready_watch(reg: Registry, n: usize, started: Instant) {
    let _ = std::thread::Builder::new()
        .name("ready".into())
        .spawn(move || {
            let mut seen = reg.changes().seq();
            let mut said = Instant::now();
            loop {
                let ready = (0..n as u32)
                    .filter(|&s| reg.slot(s).is_ok_and(|v| v.lp_state == LpState::Ready))
                    .count();
                let ms = started.elapsed().as_secs_f64() * 1e3;
                if ready == n {
                    eprintln!("shmcollab: all {n} LPs ready after {ms:.1} ms");
                    return;
                }
                if n >= PROGRESS_FROM && said.elapsed() >= PROGRESS_EVERY {
                    said = Instant::now();
                    eprintln!("shmcollab: {ready} of {n} LPs ready after {ms:.0} ms");
                }
                std::thread::sleep(COUNT_EVERY);
                // `seen` was read before the check: a change in between
                // makes this return at once. Sleeps until the next change,
                // or the next progress line.
                let wait = (n >= PROGRESS_FROM).then_some(PROGRESS_EVERY);
                if let Some(s) = reg.changes().wait_change(seen, wait) {
                    seen = s;
                }
            }
        });
}
