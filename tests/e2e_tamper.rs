//! End-to-end tests of tampering: frames forged into an LP's ring and into
//! a direct ring, and a direct ring with garbage indices, in a running
//! pingpong (how the LP programs get built: `tests/common/mod.rs`).

mod common;

use common::*;
use shmcollab::runtime::wire::RingName;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A pingpong whose ping (slot 0) waits for the file `go` before 100 round
/// trips, launched and both LPs ready: (launch, go file, session dir).
fn idle_pingpong(dir: &TempDir, name: &str) -> (Launched, PathBuf, PathBuf) {
    let go = dir.0.join("go");
    let go_arg = go.display().to_string();
    let cfg_path = pingpong_config(&dir.0, name, &["wait", &go_arg], "", false);
    let run = Launched::start(&cfg_path, name);
    wait_status(name, "both LPs ready", |v| {
        ["ping", "pong"]
            .iter()
            .all(|n| lp_entry(v, n).is_some_and(|l| l["state"] == "ready"))
    });
    let sdir = session_dirs(name).pop().expect("session directory");
    (run, go, sdir)
}

/// Let ping of an `idle_pingpong` go and wait for the collaboration to end
/// with exit code 0; returns ping's (stdout, stderr).
fn go_and_finish(run: Launched, go: &Path) -> (String, String) {
    std::fs::write(go, b"go").unwrap();
    let (code, stdout, stderr) = run.wait(Duration::from_secs(60));
    assert_eq!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    (stdout, stderr)
}

/// The segment names in session directory `sdir`.
fn segment_names(sdir: &Path) -> Vec<String> {
    std::fs::read_dir(sdir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().into_string().unwrap())
        .collect()
}

/// A DATA frame to `dst` with sequence `seq`, well formed (valid CRC) but
/// sealed with no key: a made-up tag.
fn forged_frame(seq: u64, dst: u32) -> Vec<u8> {
    use shmcollab::shm::frame::{kind, FrameHeader};
    let hdr = FrameHeader {
        version: 1,
        kind: kind::DATA,
        payload_len: 16,
        seq,
        dst,
        ..Default::default()
    };
    let mut frame = hdr.encode().to_vec();
    frame.extend_from_slice(&[0x41u8; 16]);
    frame.extend_from_slice(&[0x99; 16]);
    let mut crc = crc32c::crc32c(&frame[..28]);
    crc = crc32c::crc32c_append(crc, &frame[32..]);
    frame[28..32].copy_from_slice(&crc.to_le_bytes());
    frame
}

#[test]
fn forged_frame_is_rejected_counted_and_the_collaboration_goes_on() {
    use shmcollab::shm::ring::{open_ring, Producer};
    use shmcollab::shm::segment::Session;
    let dir = TempDir::new("forge");
    let name = unique("fg");
    let (run, go, sdir) = idle_pingpong(&dir, &name);
    // ping (slot 0) is idle now, waiting for the go file: write a forged
    // frame into its outbound ring.
    let ring = segment_names(&sdir)
        .into_iter()
        .find(|n| matches!(RingName::parse(n), Some(RingName::LpOut { slot: 0, .. })))
        .expect("ping's outbound ring");
    let session = Session::open(&sdir).unwrap();
    let mut p = Producer::attach(&open_ring(&session, &ring).unwrap(), None).unwrap();
    // Sequence 1: ping sent its READY as 0.
    p.try_send(&forged_frame(1, 1)).unwrap();
    drop(p);
    let v = wait_status(&name, "the forged frame counted", |v| {
        lp_entry(v, "ping").is_some_and(|l| l["auth_failures"].as_u64() >= Some(1))
            && lp_entry(v, "pong").is_some_and(|l| l["msgs_in"].is_u64())
    });
    let l = lp_entry(&v, "ping").unwrap();
    assert_eq!(l["rejected"]["forged"], 1, "{l}");
    assert_eq!(l["auth_failures"], 1, "{l}");
    // pong never saw it.
    assert_eq!(lp_entry(&v, "pong").unwrap()["msgs_in"], 0);
    // The collaboration goes on: ping now does real round trips and ends.
    let (stdout, _) = go_and_finish(run, &go);
    assert!(stdout.contains("round trips of 64 B"), "{stdout}");
}

/// A pingpong whose ping did `WARM` round trips (so the pair has talked:
/// direct rings are made when a pair first talks), then waits for the file
/// `go` before 100 more; launched, and the warm-up counted by pong:
/// (launch, go file, session dir).
fn warm_pingpong(dir: &TempDir, name: &str) -> (Launched, PathBuf, PathBuf) {
    let go = dir.0.join("go");
    let go_arg = go.display().to_string();
    let warm = WARM.to_string();
    let cfg_path = pingpong_config(&dir.0, name, &["warm-wait", &warm, &go_arg], "", false);
    let run = Launched::start(&cfg_path, name);
    wait_status(name, "the warm-up round trips counted by pong", |v| {
        lp_entry(v, "pong").is_some_and(|l| l["msgs_in"].as_u64() == Some(WARM))
    });
    let sdir = session_dirs(name).pop().expect("session directory");
    (run, go, sdir)
}

/// Round trips before a test tampers with the direct ring.
const WARM: u64 = 20;

/// In a `warm_pingpong` session: the name of the direct ring from ping's
/// manager (slot 0) into pong (slot 1), once ping's manager wrote into it
/// (its tail moved: it is the ring's writer from now on), and the doorbell
/// pong waits on (its main ring's), which that ring's writer rings.
fn direct_ring_into_pong(sdir: &Path) -> (String, shmcollab::shm::ring::BellRef) {
    use shmcollab::shm::ring::{data_bell_ref, open_ring};
    use shmcollab::shm::segment::Session;
    use std::os::unix::fs::FileExt;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let direct = loop {
        let names = segment_names(sdir);
        let found = names.into_iter().find(|n| {
            matches!(
                RingName::parse(n),
                Some(RingName::Direct { from: 0, lp: 1, .. })
            )
        });
        // The ring's tail (segment header, meta and head lines before it).
        let written = found.as_ref().is_some_and(|n| {
            let f = std::fs::File::open(sdir.join(n)).unwrap();
            let mut b = [0u8; 8];
            f.read_exact_at(&mut b, 128 + 256).is_ok() && u64::from_le_bytes(b) > 0
        });
        if let (true, Some(n)) = (written, found) {
            break n;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "watchdog: no direct ring into pong written by ping's manager"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let direct = &direct;
    let names = segment_names(sdir);
    let main_in = names
        .iter()
        .find(|n| matches!(RingName::parse(n), Some(RingName::LpIn { slot: 1, .. })))
        .expect("pong's inbound ring");
    let session = Session::open(sdir).unwrap();
    let bell = data_bell_ref(&open_ring(&session, main_in).unwrap()).unwrap();
    (direct.clone(), bell)
}

/// A frame forged into a direct ring (manager a -> LP b, the 4-hop path)
/// is rejected by LP b, counted in its status, and the ring still works.
#[test]
fn forged_frame_in_a_direct_ring_is_rejected_and_counted() {
    use shmcollab::shm::ring::{open_ring, Producer};
    use shmcollab::shm::segment::Session;
    let dir = TempDir::new("forged");
    let name = unique("fd");
    let (run, go, sdir) = warm_pingpong(&dir, &name);
    // ping (slot 0) waits for the go file, so its manager writes nothing
    // into pong's (slot 1) direct ring from it: the test may.
    let (direct, bell) = direct_ring_into_pong(&sdir);
    let session = Session::open(&sdir).unwrap();
    let mut p = Producer::attach(&open_ring(&session, &direct).unwrap(), Some(bell)).unwrap();
    p.try_send(&forged_frame(0, 1)).unwrap();
    drop(p);
    let v = wait_status(&name, "the forged frame counted", |v| {
        lp_entry(v, "pong").is_some_and(|l| l["auth_failures"].as_u64() >= Some(1))
    });
    let l = lp_entry(&v, "pong").unwrap();
    assert_eq!(l["auth_failures"], 1, "{l}");
    // Counted by the LP on its direct ring, told to its manager in STATS,
    // and broken down like the manager's own rejects.
    assert_eq!(l["rejected"]["forged"], 1, "{l}");
    assert_eq!(l["msgs_in"], WARM, "{l}");
    // The ring still carries ping's real requests.
    let (stdout, _) = go_and_finish(run, &go);
    assert!(stdout.contains("100 round trips of 64 B"), "{stdout}");
}

/// Garbage in a direct ring's indices: the LP hands the ring to its
/// manager, which counts it, drops it and sends the writer back to the
/// 6-hop path; messages sent afterwards still arrive.
#[test]
fn corrupt_direct_ring_is_dropped_and_traffic_goes_the_long_way() {
    use std::os::unix::fs::FileExt;
    let dir = TempDir::new("corrupt");
    let name = unique("cr");
    let (run, go, sdir) = warm_pingpong(&dir, &name);
    let (direct, bell) = direct_ring_into_pong(&sdir);
    // The ring's tail index (segment header 128 bytes, then the ring's
    // meta and head lines of 128 bytes each): a misaligned position.
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(sdir.join(&direct))
        .unwrap();
    f.write_all_at(&3u64.to_le_bytes(), 128 + 256).unwrap();
    drop(f);
    bell.get().notify();
    let v = wait_status(&name, "the corrupt ring counted", |v| {
        lp_entry(v, "pong").is_some_and(|l| l["bad_rings"].as_u64() >= Some(1))
    });
    assert_eq!(lp_entry(&v, "pong").unwrap()["msgs_in"], WARM);
    // ping's requests now go through pong's manager, and all get answers.
    let (stdout, stderr) = go_and_finish(run, &go);
    assert!(stdout.contains("100 round trips of 64 B"), "{stdout}");
    assert!(stderr.contains("cannot read the direct ring"), "{stderr}");
}
