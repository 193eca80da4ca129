//! Surviving a segment pulled away: any process of the same user can
//! `ftruncate` a segment file, and every process that then touches a page
//! past the new end gets SIGBUS, which kills it. A segment is untrusted
//! memory, so that must not kill anyone.
//!
//! Every mapping of a segment is registered here (a fixed table of address
//! ranges, read without locks). A process-wide SIGBUS handler, installed
//! with the first mapping, looks the faulting address up: inside a segment,
//! it maps a private zero page over the faulting page (`mmap` with
//! `MAP_FIXED` is async-signal-safe) and returns, so the access is retried
//! and reads zeros (or writes into a page nobody else sees); the segment is
//! marked lost and the event counted. Code that reads the segment then sees
//! garbage (zeros), which every reader of shared memory already rejects,
//! and its owner can ask [`super::Segment::is_lost`] to recreate it. A fault
//! anywhere else is handed to the handler that was there before (or the
//! default action: the process dies as it would have).
//!
//! A full /dev/shm cannot cause it: segments are allocated in full when
//! they are created.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Once;

/// Mappings registered at once (a process maps its rings, its peers' and
/// the registry: a few per LP of the collaboration).
const SLOTS: usize = 8192;

/// A registered range: `start == 0` is a free slot.
struct Range {
    start: AtomicUsize,
    len: AtomicUsize,
    lost: AtomicBool,
}

#[allow(clippy::declare_interior_mutable_const)]
const FREE: Range = Range {
    start: AtomicUsize::new(0),
    len: AtomicUsize::new(0),
    lost: AtomicBool::new(false),
};

static RANGES: [Range; SLOTS] = [FREE; SLOTS];
/// Faults inside segments survived by this process.
static RECOVERED: AtomicU64 = AtomicU64::new(0);
static INSTALL: Once = Once::new();
/// The handler before ours, to chain to for faults outside segments.
static mut PREVIOUS: Option<libc::sigaction> = None;

/// Faults inside segments this process survived (each page once).
pub fn recovered() -> u64 {
    RECOVERED.load(Ordering::Relaxed)
}

/// A registration; dropping it (before the unmap) removes it.
#[derive(Debug)]
pub(super) struct Registered(Option<usize>);

impl Registered {
    /// Whether a page of this range faulted (its file was cut short).
    pub fn is_lost(&self) -> bool {
        self.0
            .is_some_and(|i| RANGES[i].lost.load(Ordering::Relaxed))
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        if let Some(i) = self.0 {
            RANGES[i].len.store(0, Ordering::Release);
            RANGES[i].lost.store(false, Ordering::Relaxed);
            RANGES[i].start.store(0, Ordering::Release);
        }
    }
}

/// Register the mapping `start..start + len`; installs the handler first.
/// With the table full the mapping is left unprotected (and that is said
/// once on stderr).
pub(super) fn register(start: *const u8, len: usize) -> Registered {
    INSTALL.call_once(install);
    let start = start as usize;
    for (i, r) in RANGES.iter().enumerate() {
        // SYNC: the length is stored before the start is published with
        // Release below; the handler loads the start with Acquire.
        if r.start.load(Ordering::Relaxed) == 0
            && r.start
                .compare_exchange(0, usize::MAX, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        {
            r.lost.store(false, Ordering::Relaxed);
            r.len.store(len, Ordering::Relaxed);
            r.start.store(start, Ordering::Release);
            return Registered(Some(i));
        }
    }
    static FULL: Once = Once::new();
    FULL.call_once(|| eprintln!("shmcollab: more than {SLOTS} segments mapped: the rest are not protected from truncation"));
    Registered(None)
}

fn install() {
    page_size();
    // SAFETY: a zeroed sigaction is a valid value to fill in; sigaction(2)
    // with a handler that only uses atomics and mmap (async-signal-safe);
    // PREVIOUS is written once here, inside `Once`, before the handler that
    // reads it can run.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_sigbus as *const () as usize;
        sa.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
        libc::sigemptyset(&mut sa.sa_mask);
        let mut old: libc::sigaction = std::mem::zeroed();
        if libc::sigaction(libc::SIGBUS, &sa, &mut old) == 0 {
            PREVIOUS = Some(old);
        }
    }
}

/// The range holding `addr`, if any.
fn find(addr: usize) -> Option<&'static Range> {
    RANGES.iter().find(|r| {
        let start = r.start.load(Ordering::Acquire);
        start != 0
            && start != usize::MAX
            && addr >= start
            && addr - start < r.len.load(Ordering::Relaxed)
    })
}

extern "C" fn on_sigbus(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: the kernel hands a valid siginfo to an SA_SIGINFO handler.
    let addr = unsafe { (*info).si_addr() } as usize;
    if let Some(r) = find(addr) {
        let page = addr & !(page_size() - 1);
        // SAFETY: `page` lies in a segment mapping this process owns;
        // replacing that page with a private zero page changes only what
        // this process sees there (the file is gone under it anyway).
        let p = unsafe {
            libc::mmap(
                page as *mut libc::c_void,
                page_size(),
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
                -1,
                0,
            )
        };
        if p != libc::MAP_FAILED {
            r.lost.store(true, Ordering::Relaxed);
            RECOVERED.fetch_add(1, Ordering::Relaxed);
            return;
        }
    }
    chain(sig, info, ctx);
}

/// Not ours: what the previous handler would have done.
fn chain(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: PREVIOUS was set before this handler was installed and never
    // changes after; calling the previous handler with the arguments the
    // kernel gave us is what it expects; resetting to the default action
    // and returning re-runs the faulting access, which then kills the
    // process as it would have without us.
    unsafe {
        let prev = *std::ptr::addr_of!(PREVIOUS);
        match prev {
            Some(p) if p.sa_sigaction != libc::SIG_DFL && p.sa_sigaction != libc::SIG_IGN => {
                if p.sa_flags & libc::SA_SIGINFO != 0 {
                    let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                        std::mem::transmute(p.sa_sigaction);
                    f(sig, info, ctx);
                } else {
                    let f: extern "C" fn(libc::c_int) = std::mem::transmute(p.sa_sigaction);
                    f(sig);
                }
            }
            _ => {
                libc::signal(libc::SIGBUS, libc::SIG_DFL);
            }
        }
    }
}

fn page_size() -> usize {
    static SIZE: AtomicUsize = AtomicUsize::new(0);
    match SIZE.load(Ordering::Relaxed) {
        0 => {
            // SAFETY: sysconf is async-signal-safe and has no preconditions.
            let s = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as usize;
            SIZE.store(s, Ordering::Relaxed);
            s
        }
        s => s,
    }
}
