//! A segment cut short by another process kills nobody: pages past the new
//! end read as zeros in the processes that map it, the segment says it is
//! lost, and the event is counted. A fault outside every segment still
//! kills, as it would have.

use shmcollab_shm::segment::{sigbus, Segment, SegmentKind, Session};
use std::process::Command;

fn truncate(path: &std::path::Path, len: u64) {
    // Another process, as a hostile user of the same uid would do it.
    let st = Command::new("truncate")
        .arg("-s")
        .arg(len.to_string())
        .arg(path)
        .status()
        .expect("run truncate(1)");
    assert!(st.success());
}

#[test]
fn a_segment_truncated_by_another_process_reads_zeros_and_is_lost() {
    let s = Session::create(&format!("sigbus-{}", std::process::id())).unwrap();
    let len = 64 * 1024;
    let seg = Segment::create(&s, "victim", SegmentKind::Blob, len, |p, n| {
        // SAFETY: the body is `n` writable bytes.
        unsafe { std::ptr::write_bytes(p, 0xab, n) }
    })
    .unwrap();
    let before = sigbus::recovered();
    assert!(!seg.is_lost());
    truncate(seg.path(), 0);
    let body = seg.body_ptr();
    // Every page of the body, read and written: no SIGBUS kills us.
    let mut sum = 0u64;
    for off in (0..len).step_by(4096) {
        // SAFETY: `off` is inside the mapping of `seg`, which lives; the
        // page is either the file's or the zero page put over it.
        unsafe {
            sum += u64::from(std::ptr::read_volatile(body.add(off)));
            std::ptr::write_volatile(body.add(off), 1);
        }
    }
    assert_eq!(sum, 0, "pages past the end read as zeros");
    assert!(seg.is_lost());
    assert!(sigbus::recovered() - before >= (len / 4096) as u64);
    // Opening it again is refused with an error, not a signal.
    assert!(Segment::open(&s, "victim", SegmentKind::Blob).is_err());
}

#[test]
fn a_fault_outside_every_segment_still_kills() {
    // Make sure the handler is installed in this process first.
    let s = Session::create(&format!("sigbus2-{}", std::process::id())).unwrap();
    let _seg = Segment::create(&s, "x", SegmentKind::Blob, 4096, |_, _| {}).unwrap();
    let path = std::env::temp_dir().join(format!("shmc-sigbus-{}", std::process::id()));
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .unwrap();
    f.set_len(8192).unwrap();
    // SAFETY: fork in a test; the child only makes system calls (mmap,
    // ftruncate, a read) and exits.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        use std::os::fd::AsRawFd;
        // SAFETY: mapping 8 KiB of our own file, cutting it, touching the
        // lost page: a plain SIGBUS outside any segment.
        unsafe {
            let p = libc::mmap(
                std::ptr::null_mut(),
                8192,
                libc::PROT_READ,
                libc::MAP_SHARED,
                f.as_raw_fd(),
                0,
            ) as *const u8;
            libc::ftruncate(f.as_raw_fd(), 0);
            let _ = std::ptr::read_volatile(p.add(4096));
            libc::_exit(0);
        }
    }
    let mut status = 0;
    // SAFETY: waiting for our own child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    let _ = std::fs::remove_file(&path);
    assert!(libc::WIFSIGNALED(status), "status {status:#x}");
    assert_eq!(libc::WTERMSIG(status), libc::SIGBUS);
}
