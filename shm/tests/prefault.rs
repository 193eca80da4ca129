//! Prefaulting: a ring's producer maps every page of the ring when it
//! attaches, so its writes round the ring take no page fault each (the
//! faults of 1,024 rings first written during a 256-LP flood were a fifth
//! of the managers' CPU); a segment larger than `PREFAULT_MAX` (a file a
//! hostile writer made huge) is left alone.
//!
//! Faults are counted with `getrusage(RUSAGE_THREAD)`: this thread's own,
//! whatever the other tests' threads do meanwhile.

use shmcollab_shm::ring::{create_ring, open_ring, Producer};
use shmcollab_shm::segment::{Segment, SegmentKind, Session, PREFAULT_MAX};

fn session(tag: &str) -> Session {
    Session::create(&format!("pf{tag}-{}", std::process::id())).unwrap()
}

/// Minor page faults of this thread so far.
fn faults() -> i64 {
    // SAFETY: getrusage writes one rusage into the zeroed value we own.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: RUSAGE_THREAD is valid on Linux; `ru` is a valid pointer.
    assert_eq!(unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut ru) }, 0);
    ru.ru_minflt
}

/// Write one byte into every page of `seg`'s body; the faults it took.
fn touch_every_page(seg: &Segment) -> i64 {
    let before = faults();
    for off in (0..seg.body_len()).step_by(4096) {
        // SAFETY: `off` is inside the body; nobody else maps this segment
        // for reading in this test.
        unsafe { seg.body_ptr().add(off).write_volatile(1) };
    }
    faults() - before
}

#[test]
fn a_producer_fills_its_ring_without_page_faults() {
    let s = session("ring");
    let cap = 256 * 1024;
    // The reader makes the ring; the writer maps it on its own, as another
    // process would.
    let _made = create_ring(&s, "r", cap).unwrap();
    let seg = open_ring(&s, "r").unwrap();
    let mut p = Producer::attach(&seg, None).unwrap();
    let frame = [7u8; 1000];
    let before = faults();
    let mut sent = 0;
    while p.try_send(&frame).is_ok() {
        sent += frame.len();
    }
    let took = faults() - before;
    assert!(sent > cap * 9 / 10, "the ring took {sent} of {cap} bytes");
    // Unprefaulted, this is one fault per 4 KiB page written: 64.
    assert!(took < 8, "{took} page faults writing a full 256 KiB ring");
}

#[test]
fn a_segment_over_the_bound_is_not_prefaulted() {
    let s = session("big");
    let len = PREFAULT_MAX + (1 << 20);
    let seg = Segment::create(&s, "big", SegmentKind::Blob, len, |_, _| {}).unwrap();
    let again = Segment::open(&s, "big", SegmentKind::Blob).unwrap();
    again.prefault();
    let pages = len as i64 / 4096;
    // Every page of the second mapping still faults once at its first
    // write (the kernel maps up to 16 pages at a fault, around the one).
    assert!(touch_every_page(&again) > pages / 32, "it was prefaulted");
    drop(seg);
}

#[test]
fn a_prefaulted_segment_is_written_without_faults() {
    let s = session("small");
    let seg = Segment::create(&s, "small", SegmentKind::Blob, 1 << 20, |_, _| {}).unwrap();
    let again = Segment::open(&s, "small", SegmentKind::Blob).unwrap();
    again.prefault();
    assert!(touch_every_page(&again) < 8, "faults after a prefault");
    drop(seg);
}
