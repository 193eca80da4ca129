//! `shmcollab launch`: the supervisor.
//!
//! One event loop (epoll) over a signalfd, one pidfd per manager and the
//! output pipes of the managers (their LPs inherit them), with an explicit
//! state per child: Running -> (Exited | Restarting) -> ..., and for the
//! whole collaboration Running -> Stopping(slot, deadline) -> Done.

use crate::config::Config;
use crate::placement::Governor;
use anyhow::{anyhow, Context};
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use rustix::event::epoll;
use shmcollab_runtime::manager::EXIT_LP_FAILED;
use shmcollab_runtime::plan::{process_cpus, CpuSplit, Placement, Plan, RestartIntensity};
use shmcollab_runtime::wire;
use shmcollab_shm::auth::MasterKey;
use shmcollab_shm::registry::{LpState, Registry, DEFAULT_STATUS_CAP};
use shmcollab_shm::segment::Session;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::process::{Child, Command, Stdio};
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

struct Mgr {
    name: String,
    child: Option<Child>,
    pidfd: Option<OwnedFd>,
    restarts: RestartIntensity,
    restart_at: Option<Instant>,
    done: bool,
}

const TAG_SIGNAL: u64 = u64::MAX;
const OUT_BASE: u64 = 1 << 32;
const ERR_BASE: u64 = 2 << 32;

struct Out {
    prefix: String,
    buf: Vec<u8>,
    fd: OwnedFd,
    is_err: bool,
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
    match run(&cfg) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("shmcollab: {e:#}");
            code::FAILED
        }
    }
}

/// Environment for managers and LPs when there are more of them than CPUs
/// (`2 x lps > cpus`); each variable the user set by hand wins on its own.
fn crowded_env(lps: usize, cpus: usize) -> Vec<(&'static str, String)> {
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

fn block_signals() -> anyhow::Result<SignalFd> {
    let mut set = SigSet::empty();
    for s in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        set.add(s);
    }
    nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&set), None)?;
    Ok(SignalFd::with_flags(
        &set,
        SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK,
    )?)
}

fn run(cfg: &Config) -> anyhow::Result<i32> {
    let mut plan = cfg.plan().clone();
    if let Some(build) = cfg.build_command() {
        let st = Command::new(&build[0])
            .args(&build[1..])
            .current_dir(&plan.lps[0].cwd)
            .status()
            .with_context(|| format!("running the build command {build:?}"))?;
        if !st.success() {
            return Err(anyhow!("the build command {build:?} failed: {st}"));
        }
    }
    if let Some(dir) = find_live_session(&plan.name) {
        return Err(anyhow!(
            "collaboration {:?} is already running ({})",
            plan.name,
            dir.display()
        ));
    }
    let sigfd = block_signals()?;
    let started = Instant::now();
    let session = Session::create(&plan.name).context("creating the session")?;
    let subfns: Vec<&str> = plan.subfns.iter().map(String::as_str).collect();
    let registry = Registry::create(
        &session,
        &plan.name,
        plan.lps.len() as u32,
        &subfns,
        DEFAULT_STATUS_CAP,
    )
    .context("creating the registry")?;
    registry.set_secure(plan.secure);
    for (slot, lp) in plan.lps.iter().enumerate() {
        for sf in &lp.subfns {
            let i = registry
                .subfn_index(sf)
                .ok_or_else(|| anyhow!("sub-function {sf} missing from the registry"))?;
            registry.set_subfn_owner(i, Some(slot as u32))?;
        }
    }
    // The CPUs launch may use, and what follows from there being more
    // managers and LPs than those.
    let allowed = process_cpus(None);
    let cpus = match allowed.len() {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let env = crowded_env(plan.lps.len(), cpus);
    if plan.placement == Placement::Auto {
        plan.cpus = CpuSplit::for_cpus(&allowed, 2 * plan.lps.len());
        if let Some(c) = &plan.cpus {
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
    write_private(
        &session.dir().join(Plan::FILE),
        &serde_json::to_vec_pretty(&plan)?,
    )?;
    let master = MasterKey::generate();

    let ep = epoll::create(epoll::CreateFlags::CLOEXEC)?;
    epoll::add(
        &ep,
        &sigfd,
        epoll::EventData::new_u64(TAG_SIGNAL),
        epoll::EventFlags::IN,
    )?;
    let width = plan.lps.iter().map(|l| l.name.len()).max().unwrap_or(4);
    let mut outs: std::collections::HashMap<u64, Out> = Default::default();
    let mut mgrs: Vec<Mgr> = Vec::new();
    for (slot, lp) in plan.lps.iter().enumerate() {
        mgrs.push(Mgr {
            name: lp.name.clone(),
            child: None,
            pidfd: None,
            restarts: RestartIntensity::default(),
            restart_at: None,
            done: false,
        });
        spawn_manager(
            &session,
            slot as u32,
            &master,
            plan.secure,
            &env,
            &ep,
            &mut mgrs[slot],
            &mut outs,
            width,
        )?;
    }
    spawn_ready_watch(registry.clone(), plan.lps.len(), started);

    let mut failure: Option<String> = None;
    let mut stop_requested = false;
    // Shutdown: slots left to stop, in reverse start order, and the deadline
    // of the one being stopped.
    let mut stopping: Option<(Vec<usize>, Option<Instant>)> = None;
    let grace = Duration::from_millis(plan.grace_ms);
    let mut events: Vec<epoll::Event> = Vec::with_capacity(64);
    let mut governor = plan.cpus.clone().map(Governor::new);
    loop {
        // Next timer: a restart or a shutdown deadline.
        let now = Instant::now();
        // Asleep until a child, a signal or output, unless a timer is due.
        let mut timeout = Duration::from_secs(3600);
        for m in &mgrs {
            if let Some(t) = m.restart_at {
                timeout = timeout.min(t.saturating_duration_since(now));
            }
        }
        if let Some((_, Some(d))) = &stopping {
            timeout = timeout.min(d.saturating_duration_since(now));
        }
        if let Some(g) = &mut governor {
            if now >= g.due {
                g.tick(&registry, &plan);
            }
            timeout = timeout.min(g.due.saturating_duration_since(now));
        }
        let ts = rustix::time::Timespec {
            tv_sec: timeout.as_secs() as i64,
            tv_nsec: i64::from(timeout.subsec_nanos()),
        };
        events.clear();
        match epoll::wait(&ep, rustix::buffer::spare_capacity(&mut events), Some(&ts)) {
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(e) => {
                // Still stop the children in order rather than leave them
                // to the parent-death signal.
                failure.get_or_insert_with(|| format!("supervisor event loop: {e}"));
            }
        }
        for ev in events.iter().copied() {
            let data = ev.data;
            let tag = data.u64();
            if tag == TAG_SIGNAL {
                while let Ok(Some(si)) = sigfd.read_signal() {
                    let sig = Signal::try_from(si.ssi_signo as i32)
                        .map(|s| s.as_str())
                        .unwrap_or("signal");
                    if !stop_requested {
                        eprintln!("shmcollab: {sig}: stopping {}", plan.name);
                    }
                    stop_requested = true;
                }
            } else if tag >= OUT_BASE {
                pump_output(&ep, &mut outs, tag);
            } else {
                let slot = tag as usize;
                let mgrs_len = mgrs.len();
                let m = &mut mgrs[slot];
                let Some(mut child) = m.child.take() else {
                    continue;
                };
                let st = match child.wait() {
                    Ok(st) => st,
                    Err(e) => {
                        failure.get_or_insert_with(|| {
                            format!("cannot reap the manager of {}: {e}", m.name)
                        });
                        m.done = true;
                        continue;
                    }
                };
                if let Some(fd) = m.pidfd.take() {
                    let _ = epoll::delete(&ep, &fd);
                }
                let _ = registry.mark_dead(slot as u32);
                registry.changes().notify();
                // Managers sleep on their own doorbells: wake them to see it.
                for s in 0..mgrs_len as u32 {
                    if let Ok(b) = registry.doorbell(s) {
                        b.notify();
                    }
                }
                let in_shutdown = stop_requested || stopping.is_some() || failure.is_some();
                match st.code() {
                    Some(0) => m.done = true,
                    Some(EXIT_LP_FAILED) => {
                        m.done = true;
                        failure.get_or_insert_with(|| format!("{} failed for good", m.name));
                    }
                    _ if in_shutdown => m.done = true,
                    _ => {
                        // The manager itself died: one_for_one restart.
                        let lp = &plan.lps[slot];
                        let now = Instant::now();
                        match m.restarts.record(now, lp) {
                            None => {
                                m.done = true;
                                failure.get_or_insert_with(|| {
                                    format!(
                                        "manager of {} died ({st}) more than {} times within {} s",
                                        m.name, lp.max_restarts, lp.within_secs
                                    )
                                });
                            }
                            Some(backoff) => {
                                eprintln!(
                                    "shmcollab: manager of {} died ({st}); restarting",
                                    m.name
                                );
                                m.restart_at = Some(now + backoff);
                            }
                        }
                    }
                }
            }
        }
        // Restarts due.
        let now = Instant::now();
        for (slot, m) in mgrs.iter_mut().enumerate() {
            if m.restart_at.is_some_and(|t| now >= t) {
                m.restart_at = None;
                if stop_requested || failure.is_some() {
                    m.done = true;
                    continue;
                }
                let restarted = spawn_manager(
                    &session,
                    slot as u32,
                    &master,
                    plan.secure,
                    &env,
                    &ep,
                    m,
                    &mut outs,
                    width,
                );
                if let Err(e) = restarted {
                    m.done = true;
                    failure.get_or_insert_with(|| {
                        format!("cannot restart the manager of {}: {e:#}", m.name)
                    });
                }
            }
        }
        // Begin a shutdown on request or failure.
        if stopping.is_none() && (stop_requested || failure.is_some()) {
            let order: Vec<usize> = (0..mgrs.len()).collect(); // popped from the back
            stopping = Some((order, None));
        }
        if let Some((order, deadline)) = &mut stopping {
            while let Some(&slot) = order.last() {
                let m = &mut mgrs[slot];
                if m.child.is_none() {
                    m.restart_at = None;
                    order.pop();
                    *deadline = None;
                    continue;
                }
                match deadline {
                    None => {
                        signal(m, rustix::process::Signal::TERM);
                        *deadline = Some(Instant::now() + grace + Duration::from_millis(500));
                    }
                    Some(d) if Instant::now() >= *d => {
                        signal(m, rustix::process::Signal::KILL);
                        *deadline = Some(Instant::now() + Duration::from_secs(5));
                    }
                    Some(_) => {}
                }
                break;
            }
        }
        if mgrs
            .iter()
            .all(|m| m.child.is_none() && m.restart_at.is_none())
        {
            break;
        }
    }
    // Drain what is left in the pipes.
    let tags: Vec<u64> = outs.keys().copied().collect();
    for t in tags {
        pump_output(&ep, &mut outs, t);
    }
    for o in outs.values_mut() {
        flush_partial(o);
    }
    drop(session);
    let _ = registry;
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

fn signal(m: &Mgr, sig: rustix::process::Signal) {
    if let Some(fd) = &m.pidfd {
        let _ = rustix::process::pidfd_send_signal(fd, sig);
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)?;
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn spawn_manager(
    session: &Session,
    slot: u32,
    master: &MasterKey,
    secure: bool,
    env: &[(&str, String)],
    ep: &OwnedFd,
    m: &mut Mgr,
    outs: &mut std::collections::HashMap<u64, Out>,
    width: usize,
) -> anyhow::Result<()> {
    let exe = std::env::current_exe()?;
    let mut cmd = Command::new(exe);
    cmd.arg("manager")
        .arg("--session")
        .arg(session.dir())
        .arg("--slot")
        .arg(slot.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd.envs(env.iter().map(|(k, v)| (k, v)));
    let key_read = wire::prepare_child(&mut cmd, secure.then_some(&master.as_bytes()[..]), true)?;
    let mut child = cmd.spawn().context("spawning a manager")?;
    drop(key_read);
    let pid =
        rustix::process::Pid::from_raw(child.id() as i32).ok_or_else(|| anyhow!("bad pid"))?;
    let pidfd = rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty())?;
    epoll::add(
        ep,
        &pidfd,
        epoll::EventData::new_u64(slot as u64),
        epoll::EventFlags::IN,
    )?;
    for (is_err, fd) in [
        (false, child.stdout.take().map(OwnedFd::from)),
        (true, child.stderr.take().map(OwnedFd::from)),
    ] {
        let Some(fd) = fd else { continue };
        rustix::fs::fcntl_setfl(&fd, rustix::fs::OFlags::NONBLOCK)?;
        let tag = if is_err { ERR_BASE } else { OUT_BASE } + slot as u64;
        if outs.contains_key(&tag) {
            // What the dead manager (or its LP) still had to say, first.
            pump_output(ep, outs, tag);
            if let Some(mut old) = outs.remove(&tag) {
                flush_partial(&mut old);
                let _ = epoll::delete(ep, &old.fd);
            }
        }
        epoll::add(
            ep,
            &fd,
            epoll::EventData::new_u64(tag),
            epoll::EventFlags::IN,
        )?;
        outs.insert(
            tag,
            Out {
                prefix: format!("{:<width$} | ", m.name),
                buf: Vec::new(),
                fd,
                is_err,
            },
        );
    }
    m.child = Some(child);
    m.pidfd = Some(pidfd);
    Ok(())
}

fn pump_output(ep: &OwnedFd, outs: &mut std::collections::HashMap<u64, Out>, tag: u64) {
    let Some(o) = outs.get_mut(&tag) else { return };
    let mut chunk = [0u8; 8192];
    loop {
        match rustix::io::read(&o.fd, &mut chunk) {
            Ok(0) => {
                flush_partial(o);
                let _ = epoll::delete(ep, &o.fd);
                outs.remove(&tag);
                return;
            }
            Ok(n) => {
                o.buf.extend_from_slice(&chunk[..n]);
                while let Some(i) = o.buf.iter().position(|&b| b == b'\n') {
                    let line: Vec<u8> = o.buf.drain(..=i).collect();
                    emit(o, &line);
                }
                if o.buf.len() > 64 * 1024 {
                    let line: Vec<u8> = std::mem::take(&mut o.buf);
                    emit(o, &line);
                }
            }
            Err(rustix::io::Errno::AGAIN) => return,
            Err(rustix::io::Errno::INTR) => continue,
            Err(_) => {
                let _ = epoll::delete(ep, &o.fd);
                outs.remove(&tag);
                return;
            }
        }
    }
}

fn flush_partial(o: &mut Out) {
    if !o.buf.is_empty() {
        let mut line = std::mem::take(&mut o.buf);
        line.push(b'\n');
        emit(o, &line);
    }
}

fn emit(o: &Out, line: &[u8]) {
    let mut v = Vec::with_capacity(o.prefix.len() + line.len() + 1);
    v.extend_from_slice(o.prefix.as_bytes());
    v.extend_from_slice(line);
    if !v.ends_with(b"\n") {
        v.push(b'\n');
    }
    let _ = if o.is_err {
        std::io::stderr().lock().write_all(&v)
    } else {
        std::io::stdout().lock().write_all(&v)
    };
}

/// Print once when every LP has said ready.
fn spawn_ready_watch(reg: Registry, n: usize, started: Instant) {
    let _ = std::thread::Builder::new()
        .name("ready".into())
        .spawn(move || {
            let mut seen = reg.changes().seq();
            loop {
                let ready = (0..n as u32)
                    .filter(|&s| reg.slot(s).is_ok_and(|v| v.lp_state == LpState::Ready))
                    .count();
                if ready == n {
                    eprintln!(
                        "shmcollab: all {n} LPs ready after {:.1} ms",
                        started.elapsed().as_secs_f64() * 1e3
                    );
                    return;
                }
                // `seen` was read before the check: a change in between
                // makes this return at once. Sleeps until the next change.
                if let Some(s) = reg.changes().wait_change(seen, None) {
                    seen = s;
                }
            }
        });
}

/// The directory of a running collaboration called `name`, if any.
pub fn find_live_session(name: &str) -> Option<std::path::PathBuf> {
    let root = shmcollab_shm::segment::shm_root();
    let stale = shmcollab_shm::segment::stale_sessions(&root).unwrap_or_default();
    let prefix = format!("shmc.{name}.");
    std::fs::read_dir(&root)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&prefix) && n.len() == prefix.len() + 16)
                && !stale.contains(p)
        })
}

/// Owner pid of a session directory.
pub fn session_owner(dir: &Path) -> Option<u32> {
    std::fs::read_to_string(dir.join("owner"))
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}
