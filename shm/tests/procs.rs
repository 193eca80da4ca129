//! Cross-process tests: the ring, the doorbell and session cleanup between
//! real OS processes. Each child is this test binary re-executed with
//! `SHMC_CHILD` naming its role; the child tests do nothing otherwise.

use shmcollab_shm::doorbell::{Doorbell, WaitStrategy};
use shmcollab_shm::ring::{create_ring, open_ring, BellRef, Consumer, Producer};
use shmcollab_shm::segment::{self, Segment, SegmentKind, Session};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const FRAMES: u32 = 50_000;

fn role() -> Option<(String, PathBuf)> {
    let v = std::env::var("SHMC_CHILD").ok()?;
    let (role, dir) = v.split_once('=')?;
    Some((role.to_owned(), PathBuf::from(dir)))
}

fn spawn(test: &str, role: &str, dir: &std::path::Path) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args([test, "--exact", "--nocapture", "--test-threads=1", "-q"])
        .env("SHMC_CHILD", format!("{role}={}", dir.display()))
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn child")
}

/// Wait for a child with a watchdog: a hang becomes a failure with a message.
fn wait(mut c: Child, what: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(st) = c.try_wait().unwrap() {
            let mut out = String::new();
            for line in BufReader::new(c.stdout.take().unwrap()).lines() {
                out.push_str(&line.unwrap());
                out.push('\n');
            }
            assert!(st.success(), "{what} failed: {st}\n{out}");
            return out;
        }
        if Instant::now() > deadline {
            let _ = c.kill();
            panic!("watchdog: {what} did not finish in 60 s");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn session(tag: &str) -> Session {
    Session::create(&format!("t{tag}-{}", std::process::id())).unwrap()
}

fn payload(i: u32) -> Vec<u8> {
    let len = (i as usize * 13) % 300;
    let mut v = i.to_le_bytes().to_vec();
    v.extend((0..len).map(|j| (i as usize ^ j) as u8));
    v
}

#[test]
fn child_producer() {
    let Some((role, dir)) = role() else { return };
    if role != "producer" {
        return;
    }
    let s = Session::open(&dir).unwrap();
    let seg = open_ring(&s, "ring").unwrap();
    let mut p = Producer::attach(&seg, None).unwrap();
    for i in 0..FRAMES {
        p.send(&payload(i)).unwrap();
    }
}

/// A producer process streams frames of many sizes through a small ring (so
/// it blocks often); the consumer in this process checks order and content.
#[test]
fn ring_between_processes() {
    if role().is_some() {
        return;
    }
    let s = session("ring");
    let seg = create_ring(&s, "ring", 4096).unwrap();
    let mut c = Consumer::attach(&seg).unwrap();
    let child = spawn("child_producer", "producer", s.dir());
    for i in 0..FRAMES {
        let f = c
            .recv_timeout(Some(Duration::from_secs(30)))
            .unwrap()
            .unwrap_or_else(|| panic!("frame {i} did not arrive"));
        assert_eq!(f, payload(i), "frame {i}");
    }
    wait(child, "producer");
    assert!(c.peek().unwrap().is_none());
}

#[test]
fn child_consumer() {
    let Some((role, dir)) = role() else { return };
    if role != "consumer" {
        return;
    }
    let s = Session::open(&dir).unwrap();
    let seg = open_ring(&s, "ring").unwrap();
    let mut c = Consumer::attach(&seg).unwrap();
    // Release three frames, look at the fourth without releasing it, then die
    // without any cleanup.
    for _ in 0..3 {
        let f = c.peek().unwrap().unwrap();
        println!(
            "got {}",
            u32::from_le_bytes(f.to_vec()[..4].try_into().unwrap())
        );
        f.release();
    }
    let f = c.peek().unwrap().unwrap();
    println!(
        "peeked {}",
        u32::from_le_bytes(f.to_vec()[..4].try_into().unwrap())
    );
    std::process::abort();
}

/// A consumer that dies resumes, once restarted, at the first frame it had
/// not released.
#[test]
fn restarted_consumer_resumes_at_first_unreleased() {
    if role().is_some() {
        return;
    }
    let s = session("resume");
    let seg = create_ring(&s, "ring", 4096).unwrap();
    let mut p = Producer::attach(&seg, None).unwrap();
    for i in 0..10 {
        p.try_send(&payload(i)).unwrap();
    }
    let mut child = spawn("child_consumer", "consumer", s.dir());
    let st = child.wait().unwrap();
    assert!(!st.success(), "the child consumer should have aborted");
    let mut out = String::new();
    for l in BufReader::new(child.stdout.take().unwrap()).lines() {
        let l = l.unwrap();
        if l.starts_with("got") || l.starts_with("peeked") {
            out.push_str(&l);
            out.push('\n');
        }
    }
    assert_eq!(out, "got 0\ngot 1\ngot 2\npeeked 3\n");
    let mut c = Consumer::attach(&seg).unwrap();
    for i in 3..10 {
        let f = c
            .recv_timeout(Some(Duration::from_secs(5)))
            .unwrap()
            .unwrap();
        assert_eq!(f, payload(i));
    }
}

#[test]
fn child_bell_producer() {
    let Some((role, dir)) = role() else { return };
    let Some(k) = role.strip_prefix("bell") else {
        return;
    };
    let s = Session::open(&dir).unwrap();
    let bell_seg = Segment::open(&s, "bell", SegmentKind::Blob).unwrap();
    let ptr = bell_seg.body_ptr() as *const Doorbell;
    // SAFETY: the "bell" segment's body starts with a Doorbell (8 bytes,
    // page-aligned + 128).
    let bell = unsafe { BellRef::new(bell_seg.clone(), ptr) };
    let seg = open_ring(&s, &format!("ring{k}")).unwrap();
    let mut p = Producer::attach(&seg, Some(bell)).unwrap();
    for i in 0..2000u32 {
        p.send(&i.to_le_bytes()).unwrap();
        if i % 500 == 0 {
            // Let the consumer go to sleep now and then.
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// One consumer sleeps on one doorbell that three producer processes ring.
#[test]
fn one_doorbell_many_producers() {
    if role().is_some() {
        return;
    }
    let s = session("bell");
    let bell_seg = Segment::create(&s, "bell", SegmentKind::Blob, 128, |_, _| {}).unwrap();
    // SAFETY: the body is zeroed, aligned and holds a Doorbell at offset 0.
    let bell = unsafe { &*(bell_seg.body_ptr() as *const Doorbell) };
    let mut cons: Vec<Consumer> = (0..3)
        .map(|k| Consumer::attach(&create_ring(&s, &format!("ring{k}"), 1024).unwrap()).unwrap())
        .collect();
    let kids: Vec<Child> = (0..3)
        .map(|k| spawn("child_bell_producer", &format!("bell{k}"), s.dir()))
        .collect();
    let mut next = [0u32; 3];
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut sleeps = 0;
    while next.iter().any(|&n| n < 2000) {
        assert!(Instant::now() < deadline, "watchdog: got {next:?}");
        for (k, c) in cons.iter_mut().enumerate() {
            while let Some(f) = c.peek().unwrap() {
                assert_eq!(&f.to_vec()[..], &next[k].to_le_bytes());
                next[k] += 1;
                f.release();
            }
        }
        let woke = bell.wait_until(WaitStrategy::SLEEP, Some(Duration::from_secs(5)), || {
            cons.iter().any(|c| c.has_data()).then_some(())
        });
        sleeps += 1;
        if next.iter().any(|&n| n < 2000) {
            assert!(woke.is_some(), "the doorbell did not wake us: {next:?}");
        }
    }
    for k in kids {
        wait(k, "bell producer");
    }
    assert!(sleeps > 3);
}

#[test]
fn child_session_owner() {
    let Some((role, dir)) = role() else { return };
    if role != "owner" {
        return;
    }
    let s = Session::create_in(&dir, "orphan").unwrap();
    create_ring(&s, "r", 1024).unwrap();
    println!("{}", s.dir().display());
    std::thread::sleep(Duration::from_secs(120));
}

/// A session whose owner was killed with SIGKILL is found and removed; a
/// live one is left alone.
#[test]
fn cleanup_after_sigkill() {
    if role().is_some() {
        return;
    }
    let root = std::env::temp_dir().join(format!("shmc-clean-{}", std::process::id()));
    std::fs::create_dir_all(&root).unwrap();
    struct Rm(PathBuf);
    impl Drop for Rm {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let _rm = Rm(root.clone());
    let live = Session::create_in(&root, "alive").unwrap();
    let mut child = spawn("child_session_owner", "owner", &root);
    // The test harness prints its own lines first; the path is ours.
    let mut line = String::new();
    let mut rd = BufReader::new(child.stdout.as_mut().unwrap());
    while !line.starts_with('/') {
        line.clear();
        assert!(
            rd.read_line(&mut line).unwrap() > 0,
            "owner child said nothing"
        );
    }
    let dir = PathBuf::from(line.trim());
    assert!(dir.join("r").exists());
    assert!(segment::stale_sessions(&root).unwrap().is_empty());
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let report = segment::clean_stale_sessions(Some(&root)).unwrap();
    let removed: Vec<PathBuf> = report.removed.into_iter().map(|(p, _)| p).collect();
    assert_eq!(removed, vec![dir.clone()]);
    assert!(report.refused.is_empty() && report.failed.is_empty());
    assert!(!dir.exists());
    assert!(live.dir().exists());
}
