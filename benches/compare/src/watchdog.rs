//! The watchdog: a child that takes longer than `RUN_LIMIT` or dies early is
//! killed and the run exits non-zero; children die with the parent.

use super::*;

// ---- watchdog ------------------------------------------------------------

/// What the watchdog looks after while one measurement runs.
pub(crate) struct Guarded {
    what: String,
    pid: i32,
    deadline: Instant,
    /// Set just before the parent tells the child to stop: from then on the
    /// child exiting is expected.
    stopping: bool,
}

#[derive(Default)]
pub(crate) struct Watch {
    run: Option<Guarded>,
    /// Left-overs to remove if the watchdog has to end the process.
    pub(crate) cleanup_dirs: Vec<PathBuf>,
    /// Prefixes of entries in /dev/shm to remove then (iceoryx2's files,
    /// the launched collaborations' session directories).
    pub(crate) shm_prefixes: Vec<String>,
}

pub(crate) fn watch() -> &'static Mutex<Watch> {
    static W: OnceLock<Mutex<Watch>> = OnceLock::new();
    W.get_or_init(|| {
        std::thread::spawn(watchdog);
        Mutex::new(Watch::default())
    })
}

pub(crate) fn watch_start(what: &str, pid: i32) {
    watch().lock().unwrap().run = Some(Guarded {
        what: what.into(),
        pid,
        deadline: Instant::now() + RUN_LIMIT,
        stopping: false,
    });
}

pub(crate) fn watch_stopping() {
    if let Some(g) = watch().lock().unwrap().run.as_mut() {
        g.stopping = true;
    }
}

pub(crate) fn watch_end() {
    watch().lock().unwrap().run = None;
}

/// True if `pid` has exited (without reaping it: the main thread does that).
pub(crate) fn exited(pid: i32) -> bool {
    // SAFETY: a zeroed siginfo_t is a valid out-buffer for waitid.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: plain syscall on our own child; WNOWAIT leaves it unreaped.
    let r = unsafe {
        libc::waitid(
            libc::P_PID,
            pid as libc::id_t,
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        )
    };
    // SAFETY: waitid filled `info` (or left it zeroed, giving pid 0).
    r == 0 && unsafe { info.si_pid() } == pid
}

pub(crate) fn watchdog() {
    loop {
        std::thread::sleep(Duration::from_millis(100));
        let w = watch().lock().unwrap();
        let Some(g) = &w.run else { continue };
        let why = if Instant::now() > g.deadline {
            format!("took more than {} s", RUN_LIMIT.as_secs())
        } else if !g.stopping && exited(g.pid) {
            "child exited early".to_string()
        } else {
            continue;
        };
        eprintln!(
            "compare: watchdog: {}: {why}; killing child {}",
            g.what, g.pid
        );
        // SAFETY: signalling and reaping our own child process.
        unsafe {
            libc::kill(g.pid, libc::SIGKILL);
            libc::waitpid(g.pid, std::ptr::null_mut(), 0);
        }
        for d in &w.cleanup_dirs {
            let _ = std::fs::remove_dir_all(d);
        }
        for p in &w.shm_prefixes {
            remove_shm_prefixed(p);
        }
        std::process::exit(2);
    }
}

/// The echo child; killed and reaped on drop unless `finish` reaped it.
pub(crate) struct ChildGuard(Option<Child>);

impl ChildGuard {
    pub(crate) fn pid(&self) -> i32 {
        self.0.as_ref().map_or(0, |c| c.id() as i32)
    }

    /// Wait for the child to exit on its own (after it was told to stop).
    pub(crate) fn finish(&mut self) -> std::io::Result<std::process::ExitStatus> {
        let status = self.0.as_mut().expect("child").wait();
        self.0 = None;
        status
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        watch_end();
    }
}

pub(crate) fn spawn_child(what: &str, role: &str, arg: &str) -> ChildGuard {
    let child = Command::new(std::env::current_exe().unwrap())
        .env(ROLE_ENV, role)
        .env(ARG_ENV, arg)
        .spawn()
        .unwrap();
    let g = ChildGuard(Some(child));
    watch_start(what, g.pid());
    g
}

/// In the child: die with the parent.
pub(crate) fn die_with_parent() {
    // SAFETY: prctl(PR_SET_PDEATHSIG) only sets a flag on this process.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
    }
    // SAFETY: getppid cannot fail.
    if unsafe { libc::getppid() } == 1 {
        std::process::exit(3);
    }
}
