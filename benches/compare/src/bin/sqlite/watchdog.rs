//! The watchdog: a measurement that takes longer than `RUN_LIMIT` has its
//! children killed and the run exits 2; children die with the parent.

use super::*;

#[derive(Default)]
pub(crate) struct Watch {
    /// What is running and until when.
    run: Option<(String, Instant)>,
    pub(crate) children: Vec<i32>,
    pub(crate) dir: Option<PathBuf>,
}

pub(crate) fn watch() -> &'static Mutex<Watch> {
    static W: OnceLock<Mutex<Watch>> = OnceLock::new();
    W.get_or_init(|| {
        std::thread::spawn(watchdog);
        Mutex::new(Watch::default())
    })
}

pub(crate) fn watch_start(what: &str) {
    watch().lock().unwrap().run = Some((what.into(), Instant::now() + RUN_LIMIT));
}

pub(crate) fn watch_end() {
    watch().lock().unwrap().run = None;
}

pub(crate) fn watchdog() {
    loop {
        std::thread::sleep(Duration::from_millis(100));
        let w = watch().lock().unwrap();
        let Some((what, deadline)) = &w.run else {
            continue;
        };
        if Instant::now() < *deadline {
            continue;
        }
        eprintln!(
            "sqlite: watchdog: {what} took more than {} s; killing {} children",
            RUN_LIMIT.as_secs(),
            w.children.len()
        );
        for &pid in &w.children {
            // SAFETY: signalling and reaping our own child process.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, std::ptr::null_mut(), 0);
            }
        }
        if let Some(d) = &w.dir {
            let _ = std::fs::remove_dir_all(d);
        }
        std::process::exit(2);
    }
}

/// The children of one measurement: killed and reaped on drop unless they
/// exited on their own.
pub(crate) struct Children(pub(crate) Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
        watch().lock().unwrap().children.clear();
    }
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
