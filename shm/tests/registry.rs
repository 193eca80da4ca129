//! Registry tests: round trips and races between real processes (the test
//! binary re-executes itself as the children). Damaged segments are in
//! `registry_garbage.rs`.

mod common;

use common::{temp_session, unique};
use shmcollab_shm::registry::{
    monotonic_ms, LpState, Registry, RegistryError, SlotState, DEFAULT_STATUS_CAP,
};
use shmcollab_shm::Session;
use std::collections::HashMap;
use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Set in children to the session directory they should open.
const CHILD_ENV: &str = "SHMC_REG_CHILD";
/// Set in children to the CLOCK_MONOTONIC ms at which they all start.
const START_ENV: &str = "SHMC_REG_START_MS";
const WATCHDOG: Duration = Duration::from_secs(30);

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
