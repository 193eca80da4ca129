//! Faults and crashes: ENOSPC, EIO on sync, torn writes, crash images after
//! any sequence of operations, and a crash at every step of a checkpoint.

use super::tests::{dir, open, payload};
use super::*;
use crate::txn::storage::{CrashImage, Fail, FaultyStorage, Storage, Unsynced};
use proptest::prelude::*;

/// The images checked after each crash: kill -9, power losses that keep
/// nothing, all or a random mix of the unsynced data, with and without the
/// directory changes not synced.
fn images(seed: u64) -> Vec<CrashImage> {
    let mut out = Vec::new();
    for data in [
        Unsynced::Drop,
        Unsynced::Keep,
        Unsynced::Mix(seed),
        Unsynced::Mix(seed ^ 0x9e37),
    ] {
        for dir_changes in [false, true] {
            out.push(CrashImage { data, dir_changes });
        }
    }
    out
}

/// A test snapshot: the list of payloads it covers.
fn encode_list(list: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for p in list {
        out.extend_from_slice(&(p.len() as u32).to_le_bytes());
        out.extend_from_slice(p);
    }
    out
}

fn decode_list(mut bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while let Some((len, rest)) = bytes.split_first_chunk::<4>() {
        let len = u32::from_le_bytes(*len) as usize;
        out.push(rest[..len].to_vec());
        bytes = &rest[len..];
    }
    out
}

/// The history a recovery gives: the snapshot's list, then the records,
/// whose LSNs must continue it.
fn history(rec: &Recovered) -> Vec<Vec<u8>> {
    let mut all = rec.snapshot.as_deref().map(decode_list).unwrap_or_default();
    for (lsn, p) in &rec.records {
        assert_eq!(
            *lsn,
            all.len() as u64 + 1,
            "LSNs do not continue the snapshot"
        );
        all.push(p.clone());
    }
    all
}

/// Every acknowledged record is there; anything more is a prefix of what
/// was appended and not acknowledged; and the log goes on after it.
fn check_recovery(fs: &FaultyStorage, acked: &[Vec<u8>], pending: &[Vec<u8>], image: CrashImage) {
    let crashed = fs.crash(image);
    let (mut wal, rec) = open(&crashed, SyncMode::Always);
    let got = history(&rec);
    assert!(
        got.len() >= acked.len(),
        "{image:?}: lost acknowledged records"
    );
    assert_eq!(
        &got[..acked.len()],
        acked,
        "{image:?}: acknowledged records differ"
    );
    assert!(
        got.len() <= acked.len() + pending.len(),
        "{image:?}: records never appended"
    );
    assert_eq!(
        &got[acked.len()..],
        &pending[..got.len() - acked.len()],
        "{image:?}"
    );
    assert_eq!(
        wal.append(b"after").unwrap(),
        got.len() as u64 + 1,
        "{image:?}"
    );
    wal.sync().unwrap();
    drop(wal);
    let (_, rec) = open(&crashed, SyncMode::Always);
    let again = history(&rec);
    assert_eq!(again.len(), got.len() + 1, "{image:?}");
    assert_eq!(again.last().map(|p| &p[..]), Some(&b"after"[..]));
}

#[derive(Debug, Clone)]
enum Op {
    Append(usize),
    Sync,
    FailNextSync,
    TearNextWrite(usize),
    Checkpoint,
    /// The first half of a sync on another thread ([`Wal::begin_sync`]).
    BeginSync,
    /// Run the job out and finish it ([`Wal::finish_sync`]).
    FinishSync,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0usize..300).prop_map(Op::Append),
        3 => Just(Op::Sync),
        1 => Just(Op::FailNextSync),
        1 => (0usize..200).prop_map(Op::TearNextWrite),
        1 => Just(Op::Checkpoint),
        2 => Just(Op::BeginSync),
        2 => Just(Op::FinishSync),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Any sequence of appends, syncs (whole, or begun and finished later
    /// with appends in between), failed syncs, torn writes and checkpoints,
    /// then a crash: every record whose sync returned Ok is there, nothing
    /// else but a prefix of what followed.
    #[test]
    fn crash_images_keep_every_acknowledged_record(ops in proptest::collection::vec(op(), 0..40), seed in any::<u64>()) {
        let fs = FaultyStorage::new();
        let (mut wal, _) = open(&fs, SyncMode::Always);
        let (mut acked, mut pending): (Vec<Vec<u8>>, Vec<Vec<u8>>) = (Vec::new(), Vec::new());
        // The job out, and how many pending records it covers.
        let mut job: Option<(SyncJob, usize)> = None;
        for (i, op) in ops.iter().enumerate() {
            let result = match op {
                Op::Append(len) => wal.append(&payload(i, *len)).map(|_| pending.push(payload(i, *len))),
                Op::Sync => wal.sync().map(drop),
                Op::FailNextSync => { fs.fail_sync(Fail::Once); Ok(()) }
                Op::TearNextWrite(n) => { fs.tear_next_write(*n); Ok(()) }
                Op::Checkpoint => {
                    let all: Vec<_> = acked.iter().chain(&pending).cloned().collect();
                    wal.checkpoint(&encode_list(&all))
                }
                Op::BeginSync => match wal.begin_sync() {
                    Ok(Begun::Sync(j)) => { job = Some((j, pending.len())); Ok(()) }
                    other => other.map(drop),
                },
                Op::FinishSync => match job.take() {
                    Some((j, _)) => wal.finish_sync(j.run()).map(drop),
                    None => Ok(()),
                },
            };
            if matches!(result, Err(WalError::SyncInFlight)) {
                // Refused while a job is out: nothing changed.
                continue;
            }
            // What the log acknowledged moves from pending to acked.
            let newly = (wal.durable_lsn() as usize).saturating_sub(acked.len());
            acked.extend(pending.drain(..newly.min(pending.len())));
            prop_assert_eq!(wal.durable_lsn() as usize, acked.len());
            if let Some((_, covered)) = &mut job {
                *covered = covered.saturating_sub(newly);
            }
            if result.is_err() {
                if wal.is_poisoned() {
                    // The failed group could not be cut: it may reappear.
                    break;
                }
                // An append failing while a job is out drops only what
                // came after the job's start.
                pending.truncate(job.as_ref().map_or(0, |(_, c)| *c));
            }
        }
        for image in images(seed) {
            check_recovery(&fs, &acked, &pending, image);
        }
    }
}

/// A log with `a` synced and `b` appended.
fn a_synced_b_pending() -> (FaultyStorage, Wal<FaultyStorage>) {
    let fs = FaultyStorage::new();
    let (mut wal, _) = open(&fs, SyncMode::Always);
    wal.append(b"a").unwrap();
    wal.sync().unwrap();
    wal.append(b"b").unwrap();
    (fs, wal)
}

fn io_errno(err: &WalError) -> Option<i32> {
    match err {
        WalError::Io { source, .. } => source.raw_os_error(),
        _ => None,
    }
}

/// ENOSPC from the preallocation: the append fails, the group is dropped,
/// nothing of it is recovered, and the log works once there is space.
#[test]
fn enospc_on_preallocate() {
    let (fs, mut wal) = a_synced_b_pending();
    fs.set_space_limit(Some(fs.total_size()));
    let err = wal.append(&payload(1, 5000)).unwrap_err();
    assert_eq!(io_errno(&err), Some(libc::ENOSPC), "{err}");
    assert!(!wal.is_poisoned());
    assert_eq!(wal.durable_lsn(), 1);
    check_recovery(&fs, &[b"a".to_vec()], &[], CrashImage::KILL);
    fs.set_space_limit(None);
    assert_eq!(wal.append(b"c").unwrap(), 2);
    wal.sync().unwrap();
    check_recovery(
        &fs,
        &[b"a".to_vec(), b"c".to_vec()],
        &[],
        CrashImage::POWER_LOSS,
    );
}

/// ENOSPC from a write (a file system that allocates at write time), in
/// `sync` and in `append`'s write-through.
#[test]
fn enospc_on_write() {
    let (fs, mut wal) = a_synced_b_pending();
    fs.fail_write(Fail::Once, libc::ENOSPC);
    let err = wal.sync().unwrap_err();
    assert_eq!(io_errno(&err), Some(libc::ENOSPC), "{err}");
    check_recovery(&fs, &[b"a".to_vec()], &[], CrashImage::KILL);
    let big = payload(3, WRITE_THROUGH + 10);
    fs.fail_write(Fail::Once, libc::ENOSPC);
    let err = wal.append(&big).unwrap_err();
    assert_eq!(io_errno(&err), Some(libc::ENOSPC), "{err}");
    assert_eq!(wal.append(&big).unwrap(), 2);
    wal.sync().unwrap();
    for image in images(7) {
        check_recovery(&fs, &[b"a".to_vec(), big.clone()], &[], image);
    }
}

/// EIO from fdatasync once: the group is cut back (it does not reappear
/// after any crash), and later appends reuse its LSNs and work.
#[test]
fn eio_on_sync_cuts_back_and_goes_on() {
    let (fs, mut wal) = a_synced_b_pending();
    wal.append(b"c").unwrap();
    fs.fail_sync(Fail::Once);
    let err = wal.sync().unwrap_err();
    assert_eq!(io_errno(&err), Some(libc::EIO), "{err}");
    assert!(!wal.is_poisoned());
    for image in images(3) {
        check_recovery(&fs, &[b"a".to_vec()], &[], image);
    }
    assert_eq!(wal.append(b"d").unwrap(), 2);
    assert_eq!(wal.sync().unwrap(), 2);
    for image in images(4) {
        check_recovery(&fs, &[b"a".to_vec(), b"d".to_vec()], &[], image);
    }
}

/// EIO from every fdatasync: the cut cannot be made durable, so the log is
/// poisoned; reopening recovers what was acknowledged.
#[test]
fn eio_on_every_sync_poisons() {
    let (fs, mut wal) = a_synced_b_pending();
    fs.fail_sync(Fail::Always);
    assert!(wal.sync().is_err());
    assert!(wal.is_poisoned());
    assert!(matches!(wal.append(b"x"), Err(WalError::Poisoned)));
    assert!(matches!(wal.sync(), Err(WalError::Poisoned)));
    assert!(matches!(wal.checkpoint(b"s"), Err(WalError::Poisoned)));
    drop(wal);
    // The zeros were written (not synced): neither image has `b`.
    check_recovery(&fs, &[b"a".to_vec()], &[], CrashImage::KILL);
    check_recovery(&fs, &[b"a".to_vec()], &[], CrashImage::POWER_LOSS);
}

/// The group's write torn after every length: an error, the torn bytes
/// never recovered, and the log goes on.
#[test]
fn torn_write_at_every_length() {
    let group: Vec<_> = (0..3).map(|i| payload(i, 30 + i)).collect();
    let bytes: usize = group.iter().map(|p| format::record_len(p.len())).sum();
    for n in 0..bytes {
        let fs = FaultyStorage::new();
        let (mut wal, _) = open(&fs, SyncMode::Always);
        wal.append(b"a").unwrap();
        wal.sync().unwrap();
        for p in &group {
            wal.append(p).unwrap();
        }
        fs.tear_next_write(n);
        assert!(wal.sync().is_err(), "tear at {n}");
        assert!(!wal.is_poisoned());
        for image in [CrashImage::KILL, CrashImage::POWER_LOSS] {
            check_recovery(&fs, &[b"a".to_vec()], &[], image);
        }
        wal.append(b"e").unwrap();
        wal.sync().unwrap();
        check_recovery(&fs, &[b"a".to_vec(), b"e".to_vec()], &[], CrashImage::KILL);
    }
}

/// A log with 5 records synced, 2 pending, and the snapshot of all 7.
fn before_checkpoint(mode: SyncMode) -> (FaultyStorage, Wal<FaultyStorage>, Vec<Vec<u8>>) {
    let fs = FaultyStorage::new();
    let (mut wal, _) = open(&fs, mode);
    let all: Vec<_> = (0..7).map(|i| payload(i, 40 + i)).collect();
    for p in &all[..5] {
        wal.append(p).unwrap();
    }
    wal.sync().unwrap();
    for p in &all[5..] {
        wal.append(p).unwrap();
    }
    (fs, wal, all)
}

/// A crash after every storage operation of a checkpoint, under every
/// image: recovery gives the acknowledged records, or all 7 (never a mix,
/// never a gap), LSNs continue, and a checkpoint that returned Ok is whole.
/// In `Off` mode nothing is durable before the checkpoint (a power loss may
/// leave the old log shorter than the new snapshot: recovery must then
/// start a fresh log at the snapshot's LSN).
#[test]
fn crash_at_every_step_of_a_checkpoint() {
    for mode in [SyncMode::Always, SyncMode::Off] {
        let durable_before = if mode == SyncMode::Always { 5 } else { 0 };
        let mut steps = 0;
        loop {
            let (fs, mut wal, all) = before_checkpoint(mode);
            fs.halt_after(Some(steps));
            let result = wal.checkpoint(&encode_list(&all));
            let done = if result.is_ok() { 7 } else { durable_before };
            for (i, image) in images(steps).into_iter().enumerate() {
                check_recovery(&fs, &all[..done], &all[done..], image);
                if result.is_ok() && i == 0 {
                    let (_, rec) = open(&fs.crash(image), SyncMode::Always);
                    assert!(rec.snapshot.is_some() && rec.records.is_empty());
                }
            }
            if result.is_ok() {
                break;
            }
            steps += 1;
        }
        // sync: write (+ fdatasync); snapshot: write, rename, sync dir;
        // log: write, allocate, fdatasync, rename, sync dir.
        assert!(
            steps >= 9,
            "{mode:?}: the checkpoint took only {steps} operations"
        );
    }
}

/// A crash at every step of creating a log, then reopen.
#[test]
fn crash_at_every_step_of_the_first_open() {
    for steps in 0..8 {
        let fs = FaultyStorage::new();
        fs.halt_after(Some(steps));
        let opened = Wal::open_with(fs.clone(), &dir(), WalOptions::new(SyncMode::Always));
        for image in images(steps) {
            check_recovery(&fs, &[], &[], image);
        }
        if opened.is_ok() {
            return;
        }
    }
    panic!("the first open never completed");
}

/// Failures of a checkpoint that leave the log usable (ENOSPC on the
/// snapshot, EIO syncing the directory after it), and the one that poisons
/// (EIO syncing the directory after the log switch).
#[test]
fn checkpoint_failures() {
    let (fs, mut wal, all) = before_checkpoint(SyncMode::Always);
    wal.sync().unwrap();
    fs.set_space_limit(Some(fs.total_size() + 10));
    let err = wal.checkpoint(&encode_list(&all)).unwrap_err();
    assert_eq!(io_errno(&err), Some(libc::ENOSPC), "{err}");
    fs.set_space_limit(None);
    assert!(!fs.exists(&dir().join(SNAPSHOT_TMP)));
    fs.fail_sync_dir(Fail::Once);
    assert!(wal.checkpoint(&encode_list(&all)).is_err());
    assert!(!wal.is_poisoned());
    wal.append(b"8").unwrap();
    wal.sync().unwrap();
    let mut acked = all.clone();
    acked.push(b"8".to_vec());
    for image in images(11) {
        check_recovery(&fs, &acked, &[], image);
    }
    fs.fail_sync_dir(Fail::OnceAfter(1));
    assert!(wal.checkpoint(&encode_list(&acked)).is_err());
    assert!(wal.is_poisoned());
    assert!(matches!(wal.append(b"9"), Err(WalError::Poisoned)));
    for image in images(12) {
        check_recovery(&fs, &acked, &[], image);
    }
}

/// A sync on another thread: records appended while it is out are not
/// acknowledged by it; a failed one drops them too, and only what was
/// acknowledged before it survives a crash.
#[test]
fn a_sync_job_covers_what_came_before_it_and_its_failure_drops_everything_after() {
    let (fs, mut wal) = a_synced_b_pending();
    let Begun::Sync(job) = wal.begin_sync().unwrap() else {
        panic!("b needs an fdatasync");
    };
    wal.append(b"c").unwrap();
    assert!(matches!(wal.sync(), Err(WalError::SyncInFlight)));
    let done = std::thread::spawn(move || job.run()).join().unwrap();
    assert_eq!(wal.finish_sync(done).unwrap(), 2, "b, not c");
    assert_eq!(wal.durable_lsn(), 2);
    // c's sync fails: c goes, a and b stay.
    let Begun::Sync(job) = wal.begin_sync().unwrap() else {
        panic!("c needs an fdatasync");
    };
    wal.append(b"d").unwrap();
    fs.fail_sync(Fail::Once);
    assert!(wal.finish_sync(job.run()).is_err());
    assert_eq!(wal.durable_lsn(), 2);
    assert_eq!(wal.next_lsn(), 3, "c and d dropped");
    check_recovery(&fs, &[b"a".to_vec(), b"b".to_vec()], &[], CrashImage::KILL);
}
