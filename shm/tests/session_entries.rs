//! Entries of the shm root and of a session that are not what their names
//! say: each is classified or refused, never followed, never read without
//! a bound, never waited on. Each test runs under a watchdog (a hang fails
//! it) in its own temporary root.

use shmcollab_shm::segment::{
    classify, clean_stale_sessions, process_start_time, EntryError, EntryState, OpenError, Refusal,
    Segment, SegmentKind, Session, SessionError, StaleReason,
};
use std::os::unix::fs::{symlink, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

/// Run `f` on a thread; fail if it takes more than 20 s (a hang).
fn watchdog(what: &str, f: impl FnOnce() + Send + 'static) {
    let (tx, rx) = std::sync::mpsc::channel();
    let h = std::thread::spawn(move || {
        f();
        let _ = tx.send(());
    });
    match rx.recv_timeout(Duration::from_secs(20)) {
        Ok(()) => h.join().unwrap(),
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
            if let Err(e) = h.join() {
                std::panic::resume_unwind(e)
            }
        }
        Err(_) => panic!("watchdog: {what} hung"),
    }
}

struct Root(PathBuf);
impl Root {
    fn new(tag: &str) -> Root {
        let p = std::env::temp_dir().join(format!("shmc-entries-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir(&p).unwrap();
        Root(p)
    }
    fn dir(&self, id: u64, record: Option<&[u8]>) -> PathBuf {
        let d = self.0.join(format!("shmc.x.{id:016x}"));
        std::fs::create_dir(&d).unwrap();
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700)).unwrap();
        if let Some(r) = record {
            write_mode(&d.join("owner"), r, 0o600);
        }
        d
    }
}
impl Drop for Root {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn write_mode(path: &Path, bytes: &[u8], mode: u32) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .unwrap();
    f.write_all(bytes).unwrap();
    f.set_permissions(std::fs::Permissions::from_mode(mode))
        .unwrap();
}

fn mkfifo(path: &Path) {
    let ok = Command::new("mkfifo")
        .args(["-m", "600"])
        .arg(path)
        .status()
        .unwrap();
    assert!(ok.success());
}

fn age(dir: &Path) {
    let past = SystemTime::now() - Duration::from_secs(60);
    std::fs::File::open(dir)
        .unwrap()
        .set_modified(past)
        .unwrap();
}

fn me() -> String {
    let pid = std::process::id();
    format!("{pid} {}", process_start_time(pid).unwrap())
}

/// One entry of each kind, in its own root.
struct Entries {
    root: Root,
    live: PathBuf,
    /// Directories of ours without a valid owner record, with their ids.
    no_owner: Vec<(PathBuf, u64)>,
    fifo_entry: PathBuf,
    link_entry: PathBuf,
    wide: PathBuf,
}

fn entries(tag: &str) -> Entries {
    let root = Root::new(tag);
    let rec = |id: u64| format!("{} {id:016x}\n", me());
    let live = root.dir(1, Some(rec(1).as_bytes()));
    let fifo_owner = root.dir(2, None);
    mkfifo(&fifo_owner.join("owner"));
    let zero_owner = root.dir(3, None);
    symlink("/dev/zero", zero_owner.join("owner")).unwrap();
    let big = root.dir(4, Some(&[b'1'; 4096]));
    let open_mode = root.dir(5, None);
    write_mode(&open_mode.join("owner"), rec(5).as_bytes(), 0o644);
    let start0 = format!("{} 0 {:016x}\n", std::process::id(), 6);
    let start0 = root.dir(6, Some(start0.as_bytes()));
    let wrong_id = root.dir(7, Some(rec(99).as_bytes()));
    let fifo_entry = root.0.join("shmc.x.0000000000000008");
    mkfifo(&fifo_entry);
    let link_entry = root.0.join("shmc.x.0000000000000009");
    symlink(&live, &link_entry).unwrap();
    let wide = root.dir(10, Some(rec(10).as_bytes()));
    std::fs::set_permissions(&wide, std::fs::Permissions::from_mode(0o755)).unwrap();
    let no_owner = vec![
        (fifo_owner, 2),
        (zero_owner, 3),
        (big, 4),
        (open_mode, 5),
        (start0, 6),
        (wrong_id, 7),
    ];
    Entries {
        root,
        live,
        no_owner,
        fifo_entry,
        link_entry,
        wide,
    }
}

#[test]
fn every_kind_of_entry_is_classified_without_blocking() {
    watchdog("classify", || {
        let e = entries("classify");
        let live = classify(&e.live, 1);
        assert!(matches!(live, EntryState::Live(o) if o.pid == std::process::id()));
        // Without a valid owner record, a young directory is one being
        // created; an old one is stale, for the reason given.
        for (d, id) in &e.no_owner {
            assert!(
                matches!(classify(d, *id), EntryState::Starting),
                "{}",
                d.display()
            );
            age(d);
        }
        let why: Vec<EntryError> = e
            .no_owner
            .iter()
            .map(|(d, id)| match classify(d, *id) {
                EntryState::Stale(StaleReason::NoValidOwner(e)) => e,
                other => panic!("{}: {other:?}", d.display()),
            })
            .collect();
        assert!(matches!(why[0], EntryError::OwnerFile(Refusal::WrongType)));
        assert!(matches!(why[1], EntryError::OwnerFile(Refusal::WrongType)));
        assert!(matches!(why[2], EntryError::OwnerTooLong(4096)));
        assert!(matches!(
            why[3],
            EntryError::OwnerFile(Refusal::BadMode { found: 0o644, .. })
        ));
        assert!(matches!(why[4], EntryError::BadRecord(_)));
        assert!(matches!(why[5], EntryError::BadRecord(_)));
        let refused = |p: &Path, id| match classify(p, id) {
            EntryState::Refused(e) => e,
            other => panic!("{}: {other:?}", p.display()),
        };
        assert!(matches!(
            refused(&e.fifo_entry, 8),
            EntryError::NotADirectory
        ));
        assert!(matches!(
            refused(&e.link_entry, 9),
            EntryError::NotADirectory
        ));
        assert!(matches!(
            refused(&e.wide, 10),
            EntryError::BadMode { found: 0o755, .. }
        ));
        // Session::open takes the same view.
        assert!(Session::open(&e.live).is_ok());
        for d in [&e.no_owner[1].0, &e.wide, &e.link_entry] {
            let r = Session::open(d);
            assert!(matches!(r, Err(SessionError::Refused { .. })), "{r:?}");
        }
    });
}

/// `clean` removes the stale ones, reports the refused ones, and leaves
/// the live one and everything not ours.
#[test]
fn clean_removes_stale_and_reports_refused_entries() {
    watchdog("clean", || {
        let e = entries("clean");
        for (d, _) in &e.no_owner {
            age(d);
        }
        let report = clean_stale_sessions(Some(&e.root.0)).unwrap();
        let mut removed: Vec<_> = report.removed.iter().map(|(p, _)| p.clone()).collect();
        removed.sort();
        let expect: Vec<_> = e.no_owner.iter().map(|(p, _)| p.clone()).collect();
        assert_eq!(removed, expect);
        let mut refused: Vec<_> = report.refused.iter().map(|(p, _)| p.clone()).collect();
        refused.sort();
        assert_eq!(
            refused,
            vec![e.fifo_entry.clone(), e.link_entry.clone(), e.wide.clone()]
        );
        assert!(report.failed.is_empty());
        assert!(e.live.exists() && e.wide.exists());
        assert!(e.fifo_entry.symlink_metadata().is_ok());
        assert!(e.link_entry.symlink_metadata().is_ok());
    });
}

/// A FIFO or a symlink in a segment's place is refused at once.
#[test]
fn a_fifo_or_link_in_place_of_a_segment_is_refused() {
    watchdog("segment open", || {
        let root = Root::new("segfifo");
        let s = Session::create_in(&root.0, "segs").unwrap();
        mkfifo(&s.segment_path("fifo"));
        let e = Segment::open(&s, "fifo", SegmentKind::Blob).unwrap_err();
        assert!(matches!(e, OpenError::Corrupt { .. }), "{e}");
        symlink("/dev/zero", s.segment_path("zero")).unwrap();
        let e = Segment::open(&s, "zero", SegmentKind::Blob).unwrap_err();
        assert!(matches!(e, OpenError::Io { .. }), "{e}");
    });
}

/// The owner record a session is created with is what readers accept,
/// with the exact modes, whatever the umask.
#[test]
fn a_created_session_is_accepted() {
    let root = Root::new("created");
    let s = Session::create_in(&root.0, "made").unwrap();
    match classify(s.dir(), s.id()) {
        EntryState::Live(o) => {
            assert_eq!((o.pid, o.id), (std::process::id(), s.id()));
        }
        other => panic!("{other:?}"),
    }
    assert!(!s.dir().join(".owner.tmp").exists());
}
