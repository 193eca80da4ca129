//! Registry tests with hostile bytes: segments that must not open as a
//! registry, and garbage written over a live registry that its owners put
//! back.

mod common;

use common::temp_session;
use shmcollab_shm::registry::{
    LpState, Registry, RegistryError, SlotState, DEFAULT_STATUS_CAP, REGISTRY_INIT, REGISTRY_MAGIC,
    REGISTRY_VERSION,
};
use shmcollab_shm::{OpenError, Segment, SegmentKind, Session};

/// Segments that must not open as a registry, one test per kind of damage
/// (run them all with `cargo test registry_bad_segments_are_refused`).
mod registry_bad_segments_are_refused {
    use super::*;

    /// Right header, wrong session: copy a registry into another session.
    #[test]
    fn from_another_session() {
        let a = temp_session("reg-bad-a");
        let b = temp_session("reg-bad-b");
        Registry::create(&a, "c", 4, &["x"], 64).unwrap();
        std::fs::copy(a.segment_path("registry"), b.segment_path("registry")).unwrap();
        assert!(matches!(
            Registry::open(&b),
            Err(RegistryError::Open(OpenError::Session { .. }))
        ));
    }

    /// Truncated file.
    #[test]
    fn truncated() {
        let c = temp_session("reg-bad-c");
        Registry::create(&c, "c", 4, &["x"], 64).unwrap();
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(c.segment_path("registry"))
            .unwrap();
        f.set_len(1000).unwrap();
        assert!(Registry::open(&c).is_err());
        f.set_len(10).unwrap();
        assert!(matches!(
            Registry::open(&c),
            Err(RegistryError::Open(OpenError::Truncated { .. }))
        ));
    }

    /// No registry at all.
    #[test]
    fn missing() {
        let d = temp_session("reg-bad-d");
        assert!(matches!(
            Registry::open(&d),
            Err(RegistryError::Open(OpenError::Io { .. }))
        ));
    }

    /// Valid segment header, random body (with and without a valid registry
    /// magic/version/init, so that the counts are garbage).
    #[test]
    fn random_bodies() {
        let mut rng = 0x9e37_79b9_7f4a_7c15u64 ^ u64::from(std::process::id());
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        for round in 0..200 {
            let s = temp_session("reg-rand");
            let body_len = 128 + (next() % 20_000) as usize;
            let words: Vec<u64> = (0..body_len / 8 + 1).map(|_| next()).collect();
            random_registry(&s, body_len, &words, round % 2 == 0, round % 4 == 0);
            match Registry::open(&s) {
                Err(RegistryError::Open(OpenError::Corrupt { .. })) => {}
                // A random body could in principle decode; then it must be usable.
                Ok(r) => {
                    for i in 0..r.max_slots() {
                        let _ = r.slot(i);
                    }
                    let _ = r.read_status();
                }
                Err(e) => panic!("unexpected error for a random body: {e}"),
            }
        }
    }

    /// Creates segment `registry` in `s` whose body is `words` (little-endian
    /// bytes); `with_magic` writes a valid registry magic, version and init
    /// flag over it, `small_counts` makes the counts after them small.
    fn random_registry(
        s: &Session,
        body_len: usize,
        words: &[u64],
        with_magic: bool,
        small_counts: bool,
    ) {
        Segment::create(s, "registry", SegmentKind::Registry, body_len, |p, n| {
            // SAFETY: `p` points to `n` writable bytes of the fresh body.
            let body = unsafe { std::slice::from_raw_parts_mut(p, n) };
            for (i, b) in body.iter_mut().enumerate() {
                *b = (words[i / 8] >> ((i % 8) * 8)) as u8;
            }
            if with_magic {
                body[0..8].copy_from_slice(&REGISTRY_MAGIC.to_le_bytes());
                body[8..12].copy_from_slice(&REGISTRY_VERSION.to_le_bytes());
                body[12..16].copy_from_slice(&REGISTRY_INIT.to_le_bytes());
            }
            if small_counts {
                let (a, b, c) = (body[16] as u32, body[20] as u32, body[24] as u32);
                body[16..20].copy_from_slice(&(1 + a % 80).to_le_bytes());
                body[20..24].copy_from_slice(&(b % 300).to_le_bytes());
                body[24..28].copy_from_slice(&(c * 16).to_le_bytes());
            }
        })
        .unwrap();
    }

    /// A correct header whose layout does not fit the body.
    #[test]
    fn layout_larger_than_the_body() {
        let e = temp_session("reg-bad-e");
        hand_made_registry(&e, 256);
        match Registry::open(&e) {
            Err(RegistryError::Open(OpenError::Corrupt { reason, .. })) => {
                assert!(reason.contains("needs"), "{reason}")
            }
            other => panic!("expected Corrupt, got {other:?}"),
        }
    }

    /// The same segment with a fitting slot count opens.
    #[test]
    fn but_one_that_fits_opens() {
        let f = temp_session("reg-ok-f");
        hand_made_registry(&f, 2);
        let r = Registry::open(&f).expect("hand-made registry opens");
        assert_eq!((r.collab_name(), r.max_slots()), ("c", 2));
    }

    /// Creates segment `registry` in `s`: a 4096-byte body with a valid
    /// registry header for collaboration "c" with `max_slots` slots.
    fn hand_made_registry(s: &Session, max_slots: u32) {
        Segment::create(s, "registry", SegmentKind::Registry, 4096, |p, n| {
            // SAFETY: `p` points to `n` writable bytes of the fresh body.
            let body = unsafe { std::slice::from_raw_parts_mut(p, n) };
            body[0..8].copy_from_slice(&REGISTRY_MAGIC.to_le_bytes());
            body[8..12].copy_from_slice(&REGISTRY_VERSION.to_le_bytes());
            body[12..16].copy_from_slice(&REGISTRY_INIT.to_le_bytes());
            body[16..20].copy_from_slice(&max_slots.to_le_bytes());
            body[48..52].copy_from_slice(&1u32.to_le_bytes());
            body[52] = b'c';
        })
        .unwrap();
    }
}

/// Write `bytes` at `off` of the file behind `seg` through a second
/// mapping, as another process of the user could.
fn scribble(seg: &Segment, off: usize, bytes: &[u8]) {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(seg.path())
        .unwrap();
    let map = memmap2::MmapOptions::new().map_raw(&f).unwrap();
    for (i, b) in bytes.iter().enumerate() {
        // SAFETY: in bounds of our own fresh mapping of the file.
        unsafe { map.as_mut_ptr().add(off + i).write_volatile(*b) };
    }
}

#[test]
fn garbage_in_the_registry_is_put_back_by_its_owners() {
    let s = temp_session("reg-heal");
    let r = Registry::create(&s, "heal", 4, &["a", "b"], DEFAULT_STATUS_CAP).unwrap();
    r.set_subfn_owner(1, Some(2)).unwrap();
    let golden = r.golden();
    let (slot, generation) = r.claim_any("mgr-0", 77).unwrap();
    r.set_lp(slot, 99, LpState::Ready).unwrap();
    r.set_restarts(slot, 3).unwrap();
    // Garbage over the segment header, the registry header, the
    // sub-function table and slot 0 (its state word, pid, name, LP fields).
    let body = 128;
    scribble(r.segment(), 0, &[0xee; 40]);
    scribble(r.segment(), body, &[0xee; 24]);
    scribble(r.segment(), body + 128, &[0xee; 64]);
    scribble(r.segment(), body + 128 + 4 * 256, &[0xee; 70]);
    assert!(
        Registry::open(&s).is_err(),
        "the garbage makes it unreadable"
    );
    assert!(r.heal_fixed(&golden) > 0);
    assert!(r.heal_slot(slot, generation, 77, "mgr-0"));
    assert!(r.heal_lp(slot, 99, LpState::Ready, 3));
    let o = Registry::open(&s).expect("readable again");
    assert_eq!(o.collab_name(), "heal");
    assert_eq!(o.subfn_name(1).unwrap(), "b");
    assert_eq!(o.subfn_owner(1), Some(2));
    let v = o.slot(slot).unwrap();
    assert_eq!(
        (v.state, v.generation, v.pid),
        (SlotState::Active, generation, 77)
    );
    assert_eq!(v.name, "mgr-0");
    assert_eq!((v.lp_pid, v.lp_state, v.restarts), (99, LpState::Ready, 3));
    // Nothing left to put back.
    assert_eq!(r.heal_fixed(&golden), 0);
    assert!(!r.heal_slot(slot, generation, 77, "mgr-0"));
}
