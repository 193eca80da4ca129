//! Bad input: a segment that is truncated, of another layout version or
//! session, of another kind, not yet initialised, or full of random bytes is
//! refused with an error (never a panic, a hang or a read out of bounds).

use shmcollab_shm::ring::{create_ring, open_ring, Consumer, Producer};
use shmcollab_shm::segment::{OpenError, Segment, SegmentKind, Session};
use std::fs::OpenOptions;
use std::io::{Seek, SeekFrom, Write};

fn session(tag: &str) -> Session {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    Session::create(&format!("seg{tag}-{}-{n}", std::process::id())).unwrap()
}

fn poke(s: &Session, name: &str, off: u64, bytes: &[u8]) {
    let mut f = OpenOptions::new()
        .write(true)
        .open(s.segment_path(name))
        .unwrap();
    f.seek(SeekFrom::Start(off)).unwrap();
    f.write_all(bytes).unwrap();
}

#[test]
fn a_good_segment_opens() {
    let s = session("ok");
    let seg = Segment::create(&s, "blob", SegmentKind::Blob, 1000, |p, n| {
        // SAFETY: `p` points at `n` writable bytes of the new body.
        unsafe { std::ptr::write_bytes(p, 7, n) }
    })
    .unwrap();
    let again = Segment::open(&s, "blob", SegmentKind::Blob).unwrap();
    assert_eq!(again.body_len(), 1000);
    // SAFETY: the body is 1000 bytes long.
    assert_eq!(unsafe { *again.body_ptr().add(999) }, 7);
    drop(seg);
}

#[test]
fn another_layout_version_is_refused() {
    let s = session("ver");
    Segment::create(&s, "x", SegmentKind::Blob, 64, |_, _| {}).unwrap();
    poke(&s, "x", 8, &99u32.to_le_bytes());
    match Segment::open(&s, "x", SegmentKind::Blob) {
        Err(OpenError::Version { found: 99, .. }) => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn another_session_is_refused() {
    let s = session("sid");
    let other = session("sid2");
    Segment::create(&s, "x", SegmentKind::Blob, 64, |_, _| {}).unwrap();
    let e = Segment::open_path(&s.segment_path("x"), other.id(), SegmentKind::Blob).unwrap_err();
    assert!(matches!(e, OpenError::Session { .. }), "{e}");
    assert!(e.to_string().contains("belongs to session"));
}

#[test]
fn another_kind_is_refused() {
    let s = session("kind");
    create_ring(&s, "r", 4096).unwrap();
    let e = Segment::open(&s, "r", SegmentKind::Registry).unwrap_err();
    assert!(matches!(e, OpenError::Kind { .. }), "{e}");
}

#[test]
fn truncated_segments_are_refused() {
    let s = session("trunc");
    create_ring(&s, "r", 4096).unwrap();
    let path = s.segment_path("r");
    // Shrinking only: each cut keeps a valid header up to its length.
    for len in [4000u64, 700, 128, 127, 10, 0] {
        OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(len)
            .unwrap();
        let e = open_ring(&s, "r").unwrap_err();
        assert!(
            matches!(e, OpenError::Truncated { .. } | OpenError::Length { .. }),
            "len {len}: {e}"
        );
    }
}

#[test]
fn not_yet_initialised_is_refused() {
    let s = session("init");
    Segment::create(&s, "x", SegmentKind::Blob, 64, |_, _| {}).unwrap();
    poke(&s, "x", 32, &[0, 0, 0, 0]);
    assert!(matches!(
        Segment::open(&s, "x", SegmentKind::Blob),
        Err(OpenError::NotReady(_))
    ));
}

#[test]
fn random_bytes_are_refused_or_harmless() {
    let s = session("rand");
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut rnd = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for i in 0..200 {
        let name = format!("r{i}");
        create_ring(&s, &name, 4096).unwrap();
        let len = 128 + 640 + 4096;
        let bytes: Vec<u8> = (0..len).map(|_| rnd() as u8).collect();
        // Half keep a valid segment header so that the ring's own checks
        // are exercised too.
        let from = if i % 2 == 0 { 0 } else { 128 };
        poke(&s, &name, from, &bytes[from as usize..]);
        let Ok(seg) = open_ring(&s, &name) else {
            continue;
        };
        // If it passes the checks, reading and writing it still never
        // panics or runs out of bounds.
        if let Ok(mut c) = Consumer::attach(&seg) {
            for _ in 0..32 {
                match c.peek() {
                    Ok(Some(f)) => f.release(),
                    _ => break,
                }
            }
        }
        if let Ok(mut p) = Producer::attach(&seg, None) {
            let _ = p.try_send(b"hello");
        }
    }
}

/// A writer must notice when the name of its segment no longer names the
/// file it mapped (unlinked, or made again by its reader): what it writes
/// there nobody reads.
#[test]
fn a_segment_knows_when_its_name_was_given_to_another_file() {
    let s = session("replaced");
    let ours = create_ring(&s, "r", 4096).unwrap();
    let opened = open_ring(&s, "r").unwrap();
    assert!(!ours.replaced() && !opened.replaced());
    std::fs::remove_file(s.segment_path("r")).unwrap();
    assert!(ours.replaced() && opened.replaced(), "unlinked");
    let again = create_ring(&s, "r", 4096).unwrap();
    assert!(!again.replaced());
    assert!(opened.replaced(), "made again: another file");
}

/// An unnamed segment (an LP's view) is in no directory: nobody opens it
/// by name, another process maps it from its descriptor with the usual
/// checks, and its name stays free.
#[test]
fn an_unnamed_segment_reaches_others_only_by_descriptor() {
    use std::os::fd::AsFd;
    let s = session("unnamed");
    let files = || std::fs::read_dir(s.dir()).unwrap().count();
    let before = files();
    let seg = Segment::create_unnamed_sparse(&s, "v", SegmentKind::Blob, 1 << 20, |p, _| {
        // SAFETY: the body is 1 MiB, writable, not yet visible to anyone.
        unsafe { p.write(42) }
    })
    .unwrap();
    assert_eq!(
        files(),
        before,
        "an unnamed segment left a file in the directory"
    );
    assert!(matches!(
        Segment::open(&s, "v", SegmentKind::Blob),
        Err(OpenError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound
    ));
    let fd = seg.as_fd().try_clone_to_owned().unwrap();
    let label = std::path::Path::new("<view>");
    let other = Segment::from_fd(fd.into(), label, s.id(), SegmentKind::Blob).unwrap();
    // SAFETY: the body is 1 MiB long.
    assert_eq!(unsafe { *other.body_ptr() }, 42);
    let wrong = seg.as_fd().try_clone_to_owned().unwrap();
    assert!(Segment::from_fd(wrong.into(), label, s.id() ^ 1, SegmentKind::Blob).is_err());
    // The name is free for a named segment.
    Segment::create(&s, "v", SegmentKind::Blob, 64, |_, _| {}).unwrap();
}
