//! Registry tests: round trips, refusal of bad segments, and races between
//! real processes (the test binary re-executes itself as the children).

use shmcollab_shm::registry::{
    monotonic_ms, LpState, Registry, RegistryError, SlotState, DEFAULT_STATUS_CAP, REGISTRY_INIT,
    REGISTRY_MAGIC, REGISTRY_VERSION,
};
use shmcollab_shm::{OpenError, Segment, SegmentKind, Session};
use std::collections::HashMap;
use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Set in children to the session directory they should open.
const CHILD_ENV: &str = "SHMC_REG_CHILD";
/// Set in children to the CLOCK_MONOTONIC ms at which they all start.
const START_ENV: &str = "SHMC_REG_START_MS";
const WATCHDOG: Duration = Duration::from_secs(30);

static COUNTER: AtomicUsize = AtomicUsize::new(0);

fn unique(prefix: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}-{}-{n}", std::process::id())
}

/// A session under the temp dir; removed on drop (also when a test panics).
fn temp_session(prefix: &str) -> Session {
    Session::create_in(&std::env::temp_dir(), &unique(prefix)).expect("create session")
}

#[test]
fn registry_create_open_roundtrip() {
    let s = temp_session("reg-rt");
    let subfns = ["ingest", "count/0", "count/1", "sink"];
    let r = Registry::create(&s, "wordcount", 8, &subfns, DEFAULT_STATUS_CAP).unwrap();
    let o = Registry::open(&s).unwrap();
    assert_eq!(o.collab_name(), "wordcount");
    assert_eq!(o.max_slots(), 8);
    assert_eq!(o.status_cap(), DEFAULT_STATUS_CAP);
    assert_eq!(o.subfn_count(), 4);
    assert_eq!(o.coordinator(), None);
    assert_eq!(o.coordinator_epoch(), 0);
    assert!(!o.is_secure());
    r.set_secure(true);
    assert!(o.is_secure());

    let before = o.changes().seq();
    let (slot, generation) = r.claim_any("mgr-a", 4242).unwrap();
    assert_eq!((slot, generation), (0, 1));
    assert_ne!(o.changes().seq(), before, "claim notifies changes");
    let v = o.slot(0).unwrap();
    assert_eq!(v.state, SlotState::Active);
    assert_eq!(v.name, "mgr-a");
    assert_eq!(v.pid, 4242);
    assert_eq!(v.lp_state, LpState::Starting);
    assert!(v.heartbeat_ms <= monotonic_ms());
    assert_eq!(o.slot(1).unwrap().state, SlotState::Free);

    r.set_lp(0, 999, LpState::Ready).unwrap();
    r.set_restarts(0, 3).unwrap();
    std::thread::sleep(Duration::from_millis(2));
    r.heartbeat(0).unwrap();
    let w = o.slot(0).unwrap();
    assert_eq!((w.lp_pid, w.lp_state, w.restarts), (999, LpState::Ready, 3));
    assert!(w.heartbeat_ms > v.heartbeat_ms);
    assert_eq!(o.active_slots().len(), 1);

    // The slot's doorbell is shared between handles.
    let seen = o.doorbell(0).unwrap().seq();
    r.doorbell(0).unwrap().notify();
    assert!(o
        .doorbell(0)
        .unwrap()
        .wait_change(seen, Some(Duration::from_secs(5)))
        .is_some());
    assert!(matches!(
        o.doorbell(8),
        Err(RegistryError::NoSuchSlot { .. })
    ));

    o.release_slot(0, generation).unwrap();
    assert!(r.active_slots().is_empty());
    assert_eq!(r.slot(0).unwrap().state, SlotState::Dead);
    r.claim_slot(5, "mgr-b", 1).unwrap();
    r.mark_dead(5).unwrap();
    assert_eq!(o.slot(5).unwrap().state, SlotState::Dead);
}

#[test]
fn registry_subfn_table() {
    let s = temp_session("reg-subfn");
    let names: Vec<String> = (0..10).map(|i| format!("part/{i}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let r = Registry::create(&s, "c", 4, &refs, 128).unwrap();
    let o = Registry::open(&s).unwrap();
    for (i, n) in names.iter().enumerate() {
        assert_eq!(o.subfn_name(i as u32).unwrap(), *n);
        assert_eq!(o.subfn_index(n), Some(i as u32));
        assert_eq!(o.subfn_owner(i as u32), None);
    }
    assert_eq!(o.subfn_index("nope"), None);
    assert!(matches!(
        o.subfn_name(10),
        Err(RegistryError::NoSuchSubfn {
            index: 10,
            count: 10
        })
    ));
    for i in 0..10 {
        r.set_subfn_owner(i, Some(i % 3)).unwrap();
    }
    assert_eq!(o.subfns_of(0), vec![0, 3, 6, 9]);
    assert_eq!(o.subfns_of(1), vec![1, 4, 7]);
    assert_eq!(o.subfns_of(3), Vec::<u32>::new());
    let v = o.subfn_version(4).unwrap();
    r.set_subfn_owner(4, Some(2)).unwrap();
    assert_eq!(o.subfn_owner(4), Some(2));
    assert_eq!(o.subfn_version(4).unwrap(), v + 1);
    r.set_subfn_owner(4, Some(2)).unwrap();
    assert_eq!(o.subfn_version(4).unwrap(), v + 1, "no change, no bump");
    r.set_subfn_owner(4, None).unwrap();
    assert_eq!(o.subfn_owner(4), None);
    assert!(r.set_subfn_owner(4, Some(4)).is_err(), "slot out of range");
    assert!(
        r.set_subfn_owner(10, Some(0)).is_err(),
        "index out of range"
    );

    // Bad names and counts are refused at create.
    let s2 = temp_session("reg-subfn-bad");
    let long = "x".repeat(56);
    for bad in [vec!["a", "a"], vec![""], vec![long.as_str()]] {
        assert!(matches!(
            Registry::create(&s2, "c", 4, &bad, 0),
            Err(RegistryError::BadName { .. })
        ));
    }
    assert!(matches!(
        Registry::create(&s2, &"n".repeat(64), 4, &[], 0),
        Err(RegistryError::BadName { .. })
    ));
    assert!(matches!(
        Registry::create(&s2, "c", 0, &[], 0),
        Err(RegistryError::BadConfig(_))
    ));
    assert!(matches!(
        Registry::create(&s2, "c", 1025, &[], 0),
        Err(RegistryError::BadConfig(_))
    ));
}

#[test]
fn registry_status_publish_and_read() {
    let s = temp_session("reg-status");
    let cap = 1000; // not a multiple of 8
    let r = Registry::create(&s, "c", 2, &[], cap).unwrap();
    let o = Registry::open(&s).unwrap();
    assert_eq!(o.read_status().unwrap(), Vec::<u8>::new());
    r.publish_status(b"hello").unwrap();
    assert_eq!(o.read_status().unwrap(), b"hello");
    let full: Vec<u8> = (0..cap).map(|i| (i * 7 % 251) as u8).collect();
    r.publish_status(&full).unwrap();
    assert_eq!(o.read_status().unwrap(), full);
    let too_long = vec![1u8; cap + 1];
    assert!(matches!(
        r.publish_status(&too_long),
        Err(RegistryError::StatusTooLong { len, cap: c }) if len == cap + 1 && c == cap
    ));
    assert_eq!(
        o.read_status().unwrap(),
        full,
        "a refused write changes nothing"
    );
    r.publish_status(b"").unwrap();
    assert_eq!(o.read_status().unwrap(), b"");
}

#[test]
fn registry_status_reader_never_sees_a_torn_write() {
    let s = temp_session("reg-status-torn");
    let r = Registry::create(&s, "c", 2, &[], 4096).unwrap();
    let o = Registry::open(&s).unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut i = 0u32;
            while !stop.load(Ordering::Relaxed) {
                let b = (i % 251) as u8;
                let len = 1 + (i as usize * 37) % 4096;
                r.publish_status(&vec![b; len]).unwrap();
                i = i.wrapping_add(1);
            }
        })
    };
    // At least 300 ms of races and 100 complete reads (a loaded machine
    // may starve the reader for a while); the watchdog turns a reader that
    // never gets through into a failure with a message.
    let deadline = Instant::now() + Duration::from_millis(300);
    let watchdog = Instant::now() + Duration::from_secs(60);
    let mut good = 0;
    while (Instant::now() < deadline || good < 100) && Instant::now() < watchdog {
        match o.read_status() {
            Ok(v) => {
                if let Some(&b0) = v.first() {
                    assert!(v.iter().all(|&b| b == b0), "torn status read");
                }
                good += 1;
            }
            Err(RegistryError::Busy(_)) => {}
            Err(e) => panic!("{e}"),
        }
    }
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    assert!(
        good >= 100,
        "watchdog: only {good} complete status reads in 60 s"
    );
}

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

// ------------------------------------------------------ real processes --

/// Children that are killed (and reaped) if the test ends early.
struct Children(Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Run `n` copies of this test binary's test `name` with the session `dir`,
/// all starting at the same instant; return each one's stdout. Fails (after
/// killing them) if they take longer than the watchdog.
fn run_children(n: usize, name: &str, dir: &Path) -> Vec<String> {
    let exe = std::env::current_exe().expect("current_exe");
    let start = monotonic_ms() + 300;
    let mut kids = Children(Vec::new());
    for _ in 0..n {
        let child = Command::new(&exe)
            .args(["--exact", name, "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, dir)
            .env(START_ENV, start.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn child");
        kids.0.push(child);
    }
    let readers: Vec<_> = kids
        .0
        .iter_mut()
        .map(|c| {
            let mut out = c.stdout.take().expect("stdout");
            std::thread::spawn(move || {
                let mut s = String::new();
                let _ = out.read_to_string(&mut s);
                s
            })
        })
        .collect();
    let deadline = Instant::now() + WATCHDOG;
    let mut done = vec![false; n];
    while done.iter().any(|d| !d) {
        for (i, c) in kids.0.iter_mut().enumerate() {
            if !done[i] {
                if let Some(status) = c.try_wait().expect("try_wait") {
                    assert!(status.success(), "child {i} of {name} failed: {status}");
                    done[i] = true;
                }
            }
        }
        if Instant::now() > deadline {
            panic!("watchdog: children of {name} still running after {WATCHDOG:?}; killed");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    readers
        .into_iter()
        .map(|r| r.join().expect("reader thread"))
        .collect()
}

/// The part of a child's output line from its `@@` marker on (the test
/// harness prints "test name ... " without a newline before the first one).
fn marker(line: &str) -> Option<&str> {
    line.find("@@").map(|i| &line[i..])
}

/// In a child: open the registry named by the environment and wait for the
/// common start time. `None` in the parent test run.
fn child_registry() -> Option<(Session, Registry)> {
    let dir = std::env::var_os(CHILD_ENV)?;
    let session = Session::open(Path::new(&dir)).expect("child: open session");
    let reg = Registry::open(&session).expect("child: open registry");
    let start: u64 = std::env::var(START_ENV)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    while monotonic_ms() < start {
        std::hint::spin_loop();
    }
    Some((session, reg))
}

#[test]
fn registry_child_claim_any() {
    let Some((_s, reg)) = child_registry() else {
        return;
    };
    let pid = std::process::id();
    for _ in 0..4 {
        match reg.claim_any(&format!("child-{pid}"), pid) {
            Ok((slot, generation)) => println!("@@CLAIM {slot} {generation}"),
            Err(RegistryError::Full) => println!("@@FULL"),
            Err(e) => panic!("child: claim_any: {e}"),
        }
    }
}

#[test]
fn registry_slot_race_between_processes() {
    let s = Session::create(&unique("regrace")).expect("session");
    let reg = Registry::create(&s, "race", 16, &[], 64).unwrap();
    let outs = run_children(8, "registry_child_claim_any", s.dir());
    let mut owner: HashMap<u32, usize> = HashMap::new();
    let (mut claims, mut full) = (0, 0);
    for (child, out) in outs.iter().enumerate() {
        let mut lines = 0;
        for line in out.lines().filter_map(marker) {
            let mut w = line.split_whitespace();
            match w.next() {
                Some("@@CLAIM") => {
                    let slot: u32 = w.next().unwrap().parse().unwrap();
                    let generation: u32 = w.next().unwrap().parse().unwrap();
                    assert_eq!(generation, 1);
                    if let Some(other) = owner.insert(slot, child) {
                        panic!("slot {slot} went to children {other} and {child}");
                    }
                    claims += 1;
                    lines += 1;
                }
                Some("@@FULL") => {
                    full += 1;
                    lines += 1;
                }
                _ => {}
            }
        }
        assert_eq!(lines, 4, "child {child} output: {out}");
    }
    assert_eq!(claims, 16);
    assert_eq!(full, 8 * 4 - 16);
    // The registry agrees: every slot active, named after the child holding it.
    let active = reg.active_slots();
    assert_eq!(active.len(), 16);
    for v in active {
        assert_eq!(v.name, format!("child-{}", v.pid));
    }
}

#[test]
fn registry_child_claim_coordinator() {
    let Some((_s, reg)) = child_registry() else {
        return;
    };
    let pid = std::process::id();
    // Slots are claimed before the common start would matter; the race is
    // on the coordinator word.
    let (slot, _) = reg.claim_any("coord-child", pid).expect("child: claim");
    match reg.claim_coordinator(slot, 0) {
        Ok(epoch) => println!("@@WON {slot} {epoch}"),
        Err(RegistryError::EpochChanged { seen: 0, current }) => println!("@@LOST {current}"),
        Err(e) => panic!("child: claim_coordinator: {e}"),
    }
}

#[test]
fn registry_coordinator_race_between_processes() {
    let s = Session::create(&unique("regcoord")).expect("session");
    let reg = Registry::create(&s, "coord", 16, &[], 64).unwrap();
    let outs = run_children(6, "registry_child_claim_coordinator", s.dir());
    let mut winners = Vec::new();
    let mut losers = 0;
    for out in &outs {
        for line in out.lines().filter_map(marker) {
            let w: Vec<&str> = line.split_whitespace().collect();
            match w.first() {
                Some(&"@@WON") => winners.push((w[1].parse::<u32>().unwrap(), w[2].to_owned())),
                Some(&"@@LOST") => {
                    assert_eq!(w[1], "1");
                    losers += 1;
                }
                _ => {}
            }
        }
    }
    assert_eq!(winners.len(), 1, "outputs: {outs:?}");
    assert_eq!(losers, 5);
    let (slot, epoch) = &winners[0];
    assert_eq!(epoch, "1");
    assert_eq!(reg.coordinator(), Some((1, *slot)));
    // Succession: a new epoch from 1; the old holder cannot resign any more.
    let other = (*slot + 1) % 6;
    assert_eq!(reg.claim_coordinator(other, 1).unwrap(), 2);
    assert!(matches!(
        reg.claim_coordinator(other, 1),
        Err(RegistryError::EpochChanged {
            seen: 1,
            current: 2
        })
    ));
    assert!(reg.resign_coordinator(*slot, 1).is_err());
    reg.resign_coordinator(other, 2).unwrap();
    assert_eq!(reg.coordinator(), None);
    assert_eq!(reg.coordinator_epoch(), 2);
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
