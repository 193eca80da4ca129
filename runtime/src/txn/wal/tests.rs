//! Log tests: round trips, truncation at every offset, flipped bytes,
//! preallocation, checkpoints, modes, the real disk. Faults and crash
//! images are in `tests_crash.rs`.

use super::format::{record_len, LOG_HEADER_LEN};
use super::*;
use crate::txn::storage::{CrashImage, FaultyStorage, FsStorage, Storage};
use proptest::prelude::*;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

/// The directory the in-memory logs live in.
pub(super) fn dir() -> PathBuf {
    PathBuf::from("/state/sf")
}

pub(super) fn log_path() -> PathBuf {
    dir().join(LOG_FILE)
}

/// Small preallocation chunks keep the in-memory file system cheap.
pub(super) const CHUNK: u64 = 4096;

pub(super) fn open(fs: &FaultyStorage, sync: SyncMode) -> (Wal<FaultyStorage>, Recovered) {
    let opts = WalOptions {
        sync,
        prealloc_chunk: CHUNK,
    };
    Wal::open_with(fs.clone(), &dir(), opts).expect("open the log")
}

pub(super) fn payload(i: usize, len: usize) -> Vec<u8> {
    (0..len)
        .map(|j| i.wrapping_mul(31).wrapping_add(j * 7) as u8)
        .collect()
}

/// Records `(1, p1), (2, p2), ...` for the payloads.
pub(super) fn numbered(payloads: &[Vec<u8>], first: u64) -> Vec<(u64, Vec<u8>)> {
    (first..).zip(payloads.iter().cloned()).collect()
}

/// A log with `payloads` appended and synced, and the log's bytes.
fn synced_log(payloads: &[Vec<u8>]) -> (FaultyStorage, Vec<u8>) {
    let fs = FaultyStorage::new();
    let (mut wal, _) = open(&fs, SyncMode::Always);
    for p in payloads {
        wal.append(p).unwrap();
    }
    assert_eq!(wal.sync().unwrap(), payloads.len() as u64);
    let bytes = fs.file_bytes(&log_path()).unwrap();
    (fs, bytes)
}

/// A temporary directory on the real disk, removed on drop.
pub(super) struct TempDir(pub PathBuf);

impl TempDir {
    pub(super) fn new(tag: &str) -> TempDir {
        static N: AtomicU64 = AtomicU64::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let name = format!("shmcollab-wal-{tag}-{}-{n}", std::process::id());
        TempDir(std::env::temp_dir().join(name))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Records come back in order with their LSNs, across reopens, whatever
    /// the group sizes.
    #[test]
    fn append_sync_reopen_round_trips(
        groups in proptest::collection::vec(
            proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..600), 0..8), 0..8),
    ) {
        let fs = FaultyStorage::new();
        let mut all = Vec::new();
        for group in &groups {
            let (mut wal, rec) = open(&fs, SyncMode::Always);
            prop_assert_eq!(&rec.records, &numbered(&all, 1));
            prop_assert_eq!(rec.cut_bytes, 0);
            for p in group {
                let lsn = wal.append(p).unwrap();
                all.push(p.clone());
                prop_assert_eq!(lsn, all.len() as u64);
            }
            prop_assert_eq!(wal.sync().unwrap(), all.len() as u64);
            prop_assert_eq!(wal.durable_lsn(), all.len() as u64);
        }
        let (_, rec) = open(&fs, SyncMode::Always);
        prop_assert_eq!(rec.records, numbered(&all, 1));
    }

    /// A byte flipped anywhere: open never panics; it either refuses a bad
    /// header or returns a prefix of the records, each exactly as written,
    /// ending before the damaged one.
    #[test]
    fn flipped_byte_anywhere_gives_a_clean_prefix(
        lens in proptest::collection::vec(0usize..200, 1..12),
        at in any::<prop::sample::Index>(), bit in 0u8..8,
    ) {
        let payloads: Vec<_> = lens.iter().enumerate().map(|(i, &l)| payload(i, l)).collect();
        let (fs, mut bytes) = synced_log(&payloads);
        let at = at.index(bytes.len());
        bytes[at] ^= 1 << bit;
        fs.set_file_bytes(&log_path(), &bytes);
        let opened = Wal::open_with(fs.clone(), &dir(), WalOptions { sync: SyncMode::Always, prealloc_chunk: CHUNK });
        if at < LOG_HEADER_LEN {
            prop_assert!(matches!(opened, Err(WalError::Corrupt { .. })), "header damage accepted");
            return Ok(());
        }
        let (_, rec) = opened.unwrap();
        let all = numbered(&payloads, 1);
        let ends: Vec<usize> = payloads.iter()
            .scan(LOG_HEADER_LEN, |off, p| { *off += record_len(p.len()); Some(*off) }).collect();
        let damaged = ends.iter().position(|&end| at < end).unwrap_or(payloads.len());
        prop_assert_eq!(&rec.records[..], &all[..damaged]);
        prop_assert!(rec.cut_bytes > 0);
    }

    /// Arbitrary bytes after a valid header, or as the whole file: never a
    /// panic.
    #[test]
    fn garbage_log_never_panics(garbage in proptest::collection::vec(any::<u8>(), 0..2000), header in any::<bool>()) {
        let fs = FaultyStorage::new();
        drop(open(&fs, SyncMode::Always));
        let mut bytes = if header { fs.file_bytes(&log_path()).unwrap()[..LOG_HEADER_LEN].to_vec() } else { Vec::new() };
        bytes.extend_from_slice(&garbage);
        fs.set_file_bytes(&log_path(), &bytes);
        let opts = WalOptions { sync: SyncMode::Always, prealloc_chunk: CHUNK };
        if let Ok((mut wal, _)) = Wal::open_with(fs.clone(), &dir(), opts) {
            let lsn = wal.append(b"after").unwrap();
            wal.sync().unwrap();
            let (_, rec) = open(&fs, SyncMode::Always);
            prop_assert_eq!(rec.records.last(), Some(&(lsn, b"after".to_vec())));
        }
    }
}

/// Truncate the file inside the last record at every offset, and, apart,
/// zero its bytes from every offset on (a torn write into preallocated
/// space): recovery returns all earlier records, cuts, and the log goes on.
#[test]
fn truncation_at_every_offset_of_the_last_record() {
    let payloads: Vec<_> = (0..4).map(|i| payload(i, 37 + i * 20)).collect();
    let (_, bytes) = synced_log(&payloads);
    let last_end = LOG_HEADER_LEN + payloads.iter().map(|p| record_len(p.len())).sum::<usize>();
    let last_start = last_end - record_len(payloads[3].len());
    let earlier = numbered(&payloads[..3], 1);
    for cut in last_start..last_end {
        for zero_fill in [false, true] {
            let fs = FaultyStorage::new();
            fs.create_dir_all(&dir()).unwrap();
            let mut image = bytes[..cut].to_vec();
            if zero_fill {
                image.resize(bytes.len(), 0);
            }
            fs.write_new(&log_path(), &image).unwrap();
            // Zeros over the padding leave the file as it was.
            let intact = image == bytes;
            let expect = if intact {
                numbered(&payloads, 1)
            } else {
                earlier.clone()
            };
            let (mut wal, rec) = open(&fs, SyncMode::Always);
            assert_eq!(rec.records, expect, "cut at {cut}, zero fill {zero_fill}");
            let torn = bytes[last_start..cut].iter().filter(|&&b| b != 0).count();
            assert_eq!(rec.cut_bytes > 0, !intact && torn > 0, "cut at {cut}");
            let next = expect.len() as u64 + 1;
            assert_eq!(wal.append(b"next").unwrap(), next);
            wal.sync().unwrap();
            drop(wal);
            let (_, rec) = open(&fs, SyncMode::Always);
            assert_eq!(rec.records.len() as u64, next, "cut at {cut}");
            assert_eq!(rec.records.last(), Some(&(next, b"next".to_vec())));
            assert_eq!(rec.cut_bytes, 0);
        }
    }
}

/// Each byte of the last record flipped (two ways): recovery stops before
/// it, never returns its payload altered.
#[test]
fn flipped_byte_in_the_last_record_stops_there() {
    let payloads: Vec<_> = (0..3).map(|i| payload(i, 21 + i)).collect();
    let (_, bytes) = synced_log(&payloads);
    let last_end = LOG_HEADER_LEN + payloads.iter().map(|p| record_len(p.len())).sum::<usize>();
    let last_start = last_end - record_len(payloads[2].len());
    for at in last_start..last_end {
        for mask in [0x01u8, 0x80, 0xff] {
            let fs = FaultyStorage::new();
            fs.create_dir_all(&dir()).unwrap();
            let mut image = bytes.clone();
            image[at] ^= mask;
            fs.write_new(&log_path(), &image).unwrap();
            let (_, rec) = open(&fs, SyncMode::Always);
            assert_eq!(
                rec.records,
                numbered(&payloads[..2], 1),
                "byte {at} ^ {mask:#x}"
            );
            assert_ne!(rec.stop, Stop::End, "byte {at} ^ {mask:#x}");
            assert!(rec.cut_bytes > 0);
        }
    }
}

#[test]
fn too_large_is_refused_and_changes_nothing() {
    let fs = FaultyStorage::new();
    let (mut wal, _) = open(&fs, SyncMode::Always);
    wal.append(b"a").unwrap();
    let big = vec![0u8; format::MAX_PAYLOAD + 1];
    assert!(matches!(wal.append(&big), Err(WalError::TooLarge { .. })));
    assert_eq!(wal.append(b"b").unwrap(), 2);
    assert_eq!(wal.sync().unwrap(), 2);
}

/// The file is preallocated ahead of the records and grows by chunks only.
#[test]
fn log_is_preallocated_in_chunks() {
    let fs = FaultyStorage::new();
    let (mut wal, _) = open(&fs, SyncMode::Always);
    let len = || fs.file_bytes(&log_path()).unwrap().len() as u64;
    assert_eq!(len(), CHUNK);
    let rec = record_len(100) as u64;
    let fit = (CHUNK - LOG_HEADER_LEN as u64) / rec;
    for i in 0..fit {
        wal.append(&payload(i as usize, 100)).unwrap();
        wal.sync().unwrap();
        assert_eq!(len(), CHUNK, "record {i} grew the file");
    }
    wal.append(&payload(0, 100)).unwrap();
    assert_eq!(len(), 2 * CHUNK);
    assert_eq!(wal.size(), (fit + 1) * rec);
}

#[test]
fn checkpoint_then_reopen_gives_the_snapshot_and_later_records() {
    let fs = FaultyStorage::new();
    let (mut wal, rec) = open(&fs, SyncMode::Always);
    assert_eq!(rec.snapshot, None);
    for i in 0..5 {
        wal.append(&payload(i, 50)).unwrap();
    }
    wal.checkpoint(b"state after 5").unwrap();
    assert_eq!(wal.size(), 0);
    assert_eq!(wal.durable_lsn(), 5);
    assert_eq!(fs.file_bytes(&log_path()).unwrap().len() as u64, CHUNK);
    assert_eq!(wal.append(b"six").unwrap(), 6);
    assert_eq!(wal.append(b"seven").unwrap(), 7);
    wal.sync().unwrap();
    drop(wal);
    let (mut wal, rec) = open(&fs, SyncMode::Always);
    assert_eq!(rec.snapshot.as_deref(), Some(&b"state after 5"[..]));
    assert_eq!(
        rec.records,
        vec![(6, b"six".to_vec()), (7, b"seven".to_vec())]
    );
    wal.checkpoint(b"state after 7").unwrap();
    drop(wal);
    let (mut wal, rec) = open(&fs, SyncMode::Always);
    assert_eq!(rec.snapshot.as_deref(), Some(&b"state after 7"[..]));
    assert!(rec.records.is_empty());
    assert_eq!(wal.append(b"eight").unwrap(), 8);
}

/// A snapshot that does not decode, or a log that starts after the
/// snapshot ends, is refused rather than read as an empty state.
#[test]
fn bad_snapshot_or_gap_is_corrupt() {
    let fs = FaultyStorage::new();
    let (mut wal, _) = open(&fs, SyncMode::Always);
    wal.append(b"a").unwrap();
    wal.checkpoint(b"snap").unwrap();
    drop(wal);
    let snap = dir().join(SNAPSHOT_FILE);
    let good = fs.file_bytes(&snap).unwrap();
    let mut bad = good.clone();
    bad[41] ^= 1;
    fs.set_file_bytes(&snap, &bad);
    let opts = WalOptions::new(SyncMode::Always);
    let err = Wal::open_with(fs.clone(), &dir(), opts)
        .err()
        .expect("refused");
    assert!(matches!(err, WalError::Corrupt { .. }), "{err}");
    // The snapshot gone: the log starts at LSN 2, so records 1.. are missing.
    fs.set_file_bytes(&snap, &good);
    fs.remove(&snap).unwrap();
    let err = Wal::open_with(fs.clone(), &dir(), opts)
        .err()
        .expect("refused");
    assert!(matches!(err, WalError::Corrupt { .. }), "{err}");
}

/// `Off` never fdatasyncs: a kill -9 keeps the records, a power loss may
/// not. `Batch` acknowledges at once and says when to sync again.
#[test]
fn off_and_batch_modes() {
    let fs = FaultyStorage::new();
    let (mut wal, _) = open(&fs, SyncMode::Off);
    wal.append(b"a").unwrap();
    assert_eq!(wal.sync().unwrap(), 1);
    assert_eq!(wal.syncs(), 0);
    assert_eq!(wal.synced_lsn(), 0);
    let (_, rec) = open(&fs.crash(CrashImage::KILL), SyncMode::Off);
    assert_eq!(rec.records, vec![(1, b"a".to_vec())]);
    let (_, rec) = open(&fs.crash(CrashImage::POWER_LOSS), SyncMode::Off);
    assert!(rec.records.is_empty());

    let fs = FaultyStorage::new();
    let (mut wal, _) = open(&fs, SyncMode::Batch);
    wal.append(b"a").unwrap();
    assert_eq!(wal.sync().unwrap(), 1);
    assert_eq!(
        wal.synced_lsn(),
        1,
        "the first sync in a batch window syncs"
    );
    for i in 0..50 {
        wal.append(&payload(i, 10)).unwrap();
        assert_eq!(wal.sync().unwrap(), i as u64 + 2);
        // Either it synced or it says by when it must be called again.
        assert_eq!(
            wal.sync_deadline().is_some(),
            wal.synced_lsn() < wal.durable_lsn()
        );
    }
    let (_, rec) = open(&fs.crash(CrashImage::KILL), SyncMode::Batch);
    assert_eq!(rec.records.len(), 51);
}

/// The real file system: round trip, checkpoint, modes of files and
/// directories.
#[test]
fn real_disk_round_trip_and_checkpoint() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = TempDir::new("disk");
    let dir = tmp.0.join("state").join("sf");
    let (mut wal, rec) = Wal::open(FsStorage::new(), &dir, SyncMode::Always).unwrap();
    assert!(rec.records.is_empty() && rec.snapshot.is_none());
    let payloads: Vec<_> = (0..100).map(|i| payload(i, i * 3)).collect();
    for p in &payloads {
        wal.append(p).unwrap();
    }
    assert_eq!(wal.sync().unwrap(), 100);
    assert!(wal.syncs() >= 1 && wal.last_sync().is_some());
    drop(wal);
    let (mut wal, rec) = Wal::open(FsStorage::new(), &dir, SyncMode::Always).unwrap();
    assert_eq!(rec.records, numbered(&payloads, 1));
    wal.checkpoint(b"snap").unwrap();
    wal.append(b"after").unwrap();
    wal.sync().unwrap();
    drop(wal);
    let (_, rec) = Wal::open(FsStorage::new(), &dir, SyncMode::Always).unwrap();
    assert_eq!(rec.snapshot.as_deref(), Some(&b"snap"[..]));
    assert_eq!(rec.records, vec![(101, b"after".to_vec())]);
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join(LOG_FILE)), 0o600);
    assert_eq!(mode(&dir.join(SNAPSHOT_FILE)), 0o600);
    assert_eq!(
        std::fs::metadata(dir.join(LOG_FILE)).unwrap().len(),
        PREALLOC_CHUNK
    );
}

/// Not a test: append + fdatasync of 128-byte records on the real disk,
/// p50 and p99, for each way to preallocate. Run with
/// `cargo test -p shmcollab-runtime --release txn::wal::tests::measure -- --ignored --nocapture`.
#[test]
#[ignore]
fn measure() {
    use crate::txn::storage::Prealloc;
    for (name, prealloc) in [
        ("zero-fill", Prealloc::ZeroFill),
        ("fallocate", Prealloc::Fallocate),
    ] {
        let tmp = TempDir::new("measure");
        let storage = FsStorage::with_prealloc(prealloc);
        let (mut wal, _) = Wal::open(storage, &tmp.0, SyncMode::Always).unwrap();
        let record = [7u8; 128];
        let mut times = Vec::new();
        for _ in 0..3000 {
            let start = std::time::Instant::now();
            wal.append(&record).unwrap();
            wal.sync().unwrap();
            times.push(start.elapsed());
        }
        times.sort();
        let q = |f: f64| times[((times.len() - 1) as f64 * f) as usize];
        println!(
            "{name}: append 128 B + fdatasync: p50 {:?} p99 {:?} ({} records)",
            q(0.5),
            q(0.99),
            times.len()
        );
        let start = std::time::Instant::now();
        for _ in 0..100 {
            for _ in 0..1024 {
                wal.append(&record).unwrap();
            }
            wal.sync().unwrap();
        }
        let rate = 102_400.0 / start.elapsed().as_secs_f64();
        println!("{name}: group commit 1024 x 128 B per fdatasync: {rate:.0} records/s");
    }
}

/// A valid record whose LSN is not the next one (a stale record, a copy)
/// ends the log like a corrupt one.
#[test]
fn record_with_an_unexpected_lsn_ends_the_log() {
    for wrong in [0u64, 2, 4, u64::MAX] {
        let fs = FaultyStorage::new();
        fs.create_dir_all(&dir()).unwrap();
        let mut image = format::encode_log_header(1).to_vec();
        for lsn in [1, 2, wrong, 3] {
            format::encode_record(lsn, &payload(lsn as usize, 20), &mut image);
        }
        fs.write_new(&log_path(), &image).unwrap();
        let (mut wal, rec) = open(&fs, SyncMode::Always);
        let lsns: Vec<u64> = rec.records.iter().map(|r| r.0).collect();
        assert_eq!(lsns, [1, 2], "wrong LSN {wrong}");
        assert_eq!(rec.stop, Stop::WrongLsn);
        assert!(rec.cut_bytes > 0);
        assert_eq!(wal.append(b"x").unwrap(), 3);
    }
}
