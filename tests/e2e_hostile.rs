//! The hostile-memory harness: while `examples/mesh` runs (4 LPs, each
//! sending to every other one every millisecond), another process writes
//! into its live rings and registry: random bytes, well-formed frames with
//! wrong tags, replays of frames it finds in the rings, absurd indices, for
//! `SHMC_HOSTILE_SECS` seconds (2 by default; CI runs that);
//! `SHMC_HOSTILE_KINDS=garbage,forged,replay,indices` picks attacks; it
//! writes random bytes into the registry too (`SHMC_HOSTILE_REGISTRY=0`
//! leaves the registry alone). Then it checks
//! that no process panicked, died by a signal or hung, that the damage was
//! counted, and that every link (every ordered pair of LPs) carries
//! traffic again once the writes stop, and prints the figures:
//!
//! ```text
//! SHMC_HOSTILE_SECS=30 cargo test --release --test e2e_hostile -- --nocapture
//! ```
//!
//! (Truncating segments is the other attack on memory: `e2e_truncate.rs`.)

mod common;

use common::*;
use shmcollab::shm::ring::{open_ring, Producer};
use shmcollab::shm::segment::Session;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// File offsets of a ring segment: the segment header (128 B), then the
/// ring's control block (meta, head, tail, two doorbells: 128 B each),
/// then the data.
const HEAD: usize = 256;
const TAIL: usize = 384;
const DATA: usize = 768;

fn mesh_config(dir: &Path, name: &str, n: usize) -> PathBuf {
    write_config(
        dir,
        &format!(
            "name = \"{name}\"\nreport_interval_ms = 50\n[[subfunction]]\nname = \"node\"\npartitions = {n}\n[[process]]\nname = \"node\"\ninstances = {n}\ncommand = [\"{}\"]\nhosts = [\"node\"]\nrestart = \"permanent\"\n",
            example("mesh").display()
        ),
    )
}

/// What each LP (by name) received from each sender slot, from the `rx`
/// custom values of the status.
fn received(v: &serde_json::Value) -> BTreeMap<(String, u32), u64> {
    let mut out = BTreeMap::new();
    for l in v["lps"].as_array().into_iter().flatten() {
        let name = l["name"].as_str().unwrap_or("").to_owned();
        let rx = l["custom"]["rx"].as_str().unwrap_or("");
        for pair in rx.split(',').filter(|p| !p.is_empty()) {
            if let Some((s, c)) = pair.split_once(':') {
                if let (Ok(s), Ok(c)) = (s.parse(), c.parse()) {
                    out.insert((name.clone(), s), c);
                }
            }
        }
    }
    out
}

/// A small reproducible random generator.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// A segment file of the session, mapped writable by the attacker.
struct Target {
    name: String,
    map: memmap2::MmapRaw,
}

impl Target {
    fn open(path: &Path) -> Option<Target> {
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .ok()?;
        let map = memmap2::MmapOptions::new().map_raw(&f).ok()?;
        Some(Target {
            name: path.file_name()?.to_str()?.to_owned(),
            map,
        })
    }

    fn len(&self) -> usize {
        self.map.len()
    }

    fn write(&self, off: usize, bytes: &[u8]) {
        for (i, b) in bytes.iter().enumerate() {
            if off + i < self.len() {
                // SAFETY: in bounds of a live mapping of ours; the bytes are
                // shared memory other processes read and write, which is
                // the point of the test (volatile: every write happens).
                unsafe { self.map.as_mut_ptr().add(off + i).write_volatile(*b) };
            }
        }
    }

    fn read_u64(&self, off: usize) -> u64 {
        let mut b = [0u8; 8];
        for (i, x) in b.iter_mut().enumerate() {
            // SAFETY: as in `write`, reading.
            *x = unsafe { self.map.as_ptr().add(off + i).read_volatile() };
        }
        u64::from_le_bytes(b)
    }

    /// The record at the ring's head, if one is there: a frame to replay.
    fn frame_at_head(&self) -> Option<Vec<u8>> {
        let cap = self.len().checked_sub(DATA)?;
        let (head, tail) = (self.read_u64(HEAD), self.read_u64(TAIL));
        if cap == 0 || tail <= head || tail - head > cap as u64 {
            return None;
        }
        let at = DATA + (head % cap as u64) as usize;
        let len = (self.read_u64(at) & 0xffff_ffff) as usize;
        if len < 32 || at + 8 + len > self.len() {
            return None;
        }
        let mut f = vec![0u8; len];
        for (i, x) in f.iter_mut().enumerate() {
            // SAFETY: in bounds (checked above), reading.
            *x = unsafe { self.map.as_ptr().add(at + 8 + i).read_volatile() };
        }
        Some(f)
    }
}

/// A frame with a valid header and CRC and a made-up tag.
fn forged_frame(rng: &mut Rng) -> Vec<u8> {
    use shmcollab::shm::frame::{kind, FrameHeader};
    let hdr = FrameHeader {
        version: 1,
        kind: kind::DATA,
        payload_len: 8,
        seq: rng.next() % 1_000_000,
        dst: rng.below(4) as u32,
        ..Default::default()
    };
    let mut frame = hdr.encode().to_vec();
    frame.extend_from_slice(&rng.next().to_le_bytes());
    frame.extend_from_slice(&[0x99; 16]);
    let mut crc = crc32c::crc32c(&frame[..28]);
    crc = crc32c::crc32c_append(crc, &frame[32..]);
    frame[28..32].copy_from_slice(&crc.to_le_bytes());
    frame
}

/// The attacks, by kind.
#[derive(Default, Debug)]
struct Attacks {
    garbage: u64,
    forged: u64,
    replayed: u64,
    indices: u64,
    registry: u64,
}

impl Attacks {
    fn total(&self) -> u64 {
        self.garbage + self.forged + self.replayed + self.indices + self.registry
    }
}

/// One hostile write into `t` (a ring or the registry).
fn attack(t: &Target, session: &Session, rng: &mut Rng, a: &mut Attacks) {
    if t.name == "registry" && std::env::var("SHMC_HOSTILE_REGISTRY").is_ok_and(|v| v == "0") {
        return;
    }
    if t.name == "registry" {
        let n = 1 + rng.below(16);
        let off = rng.below(t.len());
        let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
        t.write(off, &bytes);
        a.registry += 1;
        return;
    }
    let kinds = std::env::var("SHMC_HOSTILE_KINDS").unwrap_or_default();
    let allowed = |k: &str| kinds.is_empty() || kinds.split(',').any(|x| x == k);
    let pick = rng.below(10);
    let kind = match pick {
        0..=3 => "garbage",
        4..=5 => "forged",
        6 => "replay",
        _ => "indices",
    };
    if !allowed(kind) {
        return;
    }
    match pick {
        0..=3 => {
            // Random bytes, mostly in the data, sometimes anywhere.
            let from = if rng.below(4) == 0 { 0 } else { DATA };
            let off = from + rng.below(t.len().saturating_sub(from));
            let bytes: Vec<u8> = (0..1 + rng.below(32)).map(|_| rng.next() as u8).collect();
            t.write(off, &bytes);
            a.garbage += 1;
        }
        4..=5 => {
            // A well-formed frame with a wrong tag, pushed like a producer.
            if let Ok(seg) = open_ring(session, &t.name) {
                if let Ok(mut p) = Producer::attach(&seg, None) {
                    let _ = p.try_send(&forged_frame(rng));
                }
            }
            a.forged += 1;
        }
        6 => {
            // A frame found in the ring, pushed again.
            if let (Some(f), Ok(seg)) = (t.frame_at_head(), open_ring(session, &t.name)) {
                if let Ok(mut p) = Producer::attach(&seg, None) {
                    let _ = p.try_send(&f);
                }
            }
            a.replayed += 1;
        }
        _ => {
            // Absurd positions.
            let v = [
                u64::MAX,
                0,
                1 << 40,
                rng.next(),
                t.read_u64(TAIL).wrapping_add(3),
            ];
            let at = if rng.below(2) == 0 { HEAD } else { TAIL };
            t.write(at, &v[rng.below(v.len())].to_le_bytes());
            a.indices += 1;
        }
    }
}

/// The session's segments (rings come and go: read again now and then).
fn targets(sdir: &Path) -> Vec<Target> {
    std::fs::read_dir(sdir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            let n = e.file_name();
            let n = n.to_string_lossy();
            n == "registry" || shmcollab::runtime::wire::RingName::parse(&n).is_some()
        })
        .filter_map(|e| Target::open(&e.path()))
        .collect()
}

#[test]
fn hostile_writes_kill_nothing_are_counted_and_every_link_recovers() {
    let secs: f64 = std::env::var("SHMC_HOSTILE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2.0);
    let n = 4;
    let dir = TempDir::new("hostile");
    let name = unique("ho");
    let run = Launched::start(&mesh_config(&dir.0, &name, n), &name);
    let pairs = n * (n - 1);
    wait_status(&name, "every link carrying traffic", |v| {
        received(v).values().filter(|&&c| c > 0).count() == pairs
    });
    let sdir = session_dirs(&name).pop().expect("session directory");
    let session = Session::open(&sdir).unwrap();

    // The attack.
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut a = Attacks::default();
    let start = Instant::now();
    let mut ts = targets(&sdir);
    while start.elapsed().as_secs_f64() < secs {
        if a.total() % 500 == 0 {
            ts = targets(&sdir);
        }
        if ts.is_empty() {
            break;
        }
        let t = &ts[rng.below(ts.len())];
        attack(t, &session, &mut rng, &mut a);
        if a.total() % 8 == 0 {
            std::thread::sleep(Duration::from_micros(200));
        }
    }
    drop(ts);
    let stopped = Instant::now();

    // Every link carries traffic again: every pair's count grows past what
    // it was when the writes stopped.
    let at_stop = received(&status_json(&name).unwrap_or_default());
    let flowing = |v: &serde_json::Value| {
        let now = received(v);
        now.len() == pairs
            && now
                .iter()
                .all(|(k, c)| *c > at_stop.get(k).copied().unwrap_or(0))
    };
    let v = loop {
        let v = status_json(&name).unwrap_or_default();
        if flowing(&v) {
            break v;
        }
        if stopped.elapsed() > Duration::from_secs(20) {
            let rings: Vec<String> = targets(&sdir)
                .iter()
                .filter(|t| t.name != "registry")
                .map(|t| {
                    format!(
                        "{} head {} tail {}",
                        t.name,
                        t.read_u64(HEAD),
                        t.read_u64(TAIL)
                    )
                })
                .collect();
            eprintln!("rings: {rings:#?}");
            let listed: Vec<String> = std::fs::read_dir(&sdir)
                .map(|d| {
                    d.flatten()
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .collect()
                })
                .unwrap_or_else(|e| vec![format!("{}: {e}", sdir.display())]);
            eprintln!("session directory: {listed:?}");
            for l in v["lps"].as_array().into_iter().flatten() {
                for key in ["pid", "manager_pid"] {
                    if let Some(p) = l[key].as_u64() {
                        let wchan =
                            std::fs::read_to_string(format!("/proc/{p}/wchan")).unwrap_or_default();
                        let stat =
                            std::fs::read_to_string(format!("/proc/{p}/stat")).unwrap_or_default();
                        let f: Vec<&str> = stat.split(' ').collect();
                        eprintln!(
                            "{} {key} {p}: wchan {wchan} state {} cpu {}+{}",
                            l["name"],
                            f.get(2).unwrap_or(&""),
                            f.get(13).unwrap_or(&""),
                            f.get(14).unwrap_or(&"")
                        );
                    }
                }
            }
            let _ = std::process::Command::new(bin())
                .args(["stop", &name])
                .output();
            let (_, o, e) = run.wait(Duration::from_secs(60));
            panic!(
                "watchdog: links still silent 20 s after the attack ({a:?})\nat stop: {at_stop:?}\nnow: {:?}\nstatus: {v}\n{o}\n{e}",
                received(&v)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let recovered = stopped.elapsed();
    let lost: u64 = v["lps"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|l| l["lost"].as_u64().unwrap_or(0) + l["auth_failures"].as_u64().unwrap_or(0))
        .sum();
    let stop = std::process::Command::new(bin())
        .args(["stop", &name])
        .output()
        .unwrap();
    let (_, stdout, stderr) = run.wait(Duration::from_secs(60));
    let all = format!("{stdout}\n{stderr}");
    println!(
        "{{\"bench\":\"hostile\",\"secs\":{secs},\"writes\":{},\"garbage\":{},\"forged\":{},\"replayed\":{},\"indices\":{},\"registry\":{},\"counted\":{lost},\"recovered_ms\":{}}}",
        a.total(),
        a.garbage,
        a.forged,
        a.replayed,
        a.indices,
        a.registry,
        recovered.as_millis()
    );
    assert!(stop.status.success(), "{stop:?}\n{all}");
    assert!(!all.contains("panicked"), "a process panicked:\n{all}");
    let deaths: Vec<&str> = all
        .lines()
        .filter(|l| l.contains("signal:") && !l.contains("SIGTERM"))
        .collect();
    assert!(deaths.is_empty(), "died by a signal: {deaths:?}\n{all}");
    assert!(lost > 0, "nothing was counted after {a:?}:\n{all}");
}
