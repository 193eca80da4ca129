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

#[test]
fn every_kind_of_entry_is_classified_without_blocking() {
    watchdog("classify", || {
        let root = Root::new("classify");
        let live = root.dir(1, Some(format!("{} {:016x}\n", me(), 1).as_bytes()));
        let fifo_owner = root.dir(2, None);
        mkfifo(&fifo_owner.join("owner"));
        let zero_owner = root.dir(3, None);
        symlink("/dev/zero", zero_owner.join("owner")).unwrap();
        let big = root.dir(4, Some(&[b'1'; 4096]));
        let open_mode = root.dir(5, None);
        write_mode(
            &open_mode.join("owner"),
            format!("{} {:016x}\n", me(), 5).as_bytes(),
            0o644,
        );
        let start0 = root.dir(
            6,
            Some(format!("{} 0 {:016x}\n", std::process::id(), 6).as_bytes()),
        );
        let wrong_id = root.dir(7, Some(format!("{} {:016x}\n", me(), 99).as_bytes()));
        let fifo_entry = root.0.join("shmc.x.0000000000000008");
        mkfifo(&fifo_entry);
        let link_entry = root.0.join("shmc.x.0000000000000009");
        symlink(&live, &link_entry).unwrap();
        let wide = root.dir(10, Some(format!("{} {:016x}\n", me(), 10).as_bytes()));
        std::fs::set_permissions(&wide, std::fs::Permissions::from_mode(0o755)).unwrap();

        assert!(matches!(classify(&live, 1), EntryState::Live(o) if o.pid == std::process::id()));
        // Without a valid owner record, a young directory is one being
        // created; an old one is stale.
        for (d, id) in [
            (&fifo_owner, 2),
            (&zero_owner, 3),
            (&big, 4),
            (&open_mode, 5),
            (&start0, 6),
            (&wrong_id, 7),
        ] {
            assert!(
                matches!(classify(d, id), EntryState::Starting),
                "{}",
                d.display()
            );
            age(d);
        }
        let stale = |d: &Path, id| match classify(d, id) {
            EntryState::Stale(StaleReason::NoValidOwner(e)) => e,
            other => panic!("{}: {other:?}", d.display()),
        };
        assert!(matches!(
            stale(&fifo_owner, 2),
            EntryError::OwnerFile(Refusal::WrongType)
        ));
        assert!(matches!(
            stale(&zero_owner, 3),
            EntryError::OwnerFile(Refusal::WrongType)
        ));
        assert!(matches!(stale(&big, 4), EntryError::OwnerTooLong(4096)));
        assert!(matches!(
            stale(&open_mode, 5),
            EntryError::OwnerFile(Refusal::BadMode { found: 0o644, .. })
        ));
        assert!(matches!(stale(&start0, 6), EntryError::BadRecord(_)));
        assert!(matches!(stale(&wrong_id, 7), EntryError::BadRecord(_)));
        assert!(matches!(
            classify(&fifo_entry, 8),
            EntryState::Refused(EntryError::NotADirectory)
        ));
        assert!(matches!(
            classify(&link_entry, 9),
            EntryState::Refused(EntryError::NotADirectory)
        ));
        assert!(matches!(
            classify(&wide, 10),
            EntryState::Refused(EntryError::BadMode { found: 0o755, .. })
        ));
        // Session::open takes the same view.
        assert!(Session::open(&live).is_ok());
        for (d, _) in [(&zero_owner, 3), (&wide, 10)] {
            assert!(matches!(
                Session::open(d),
                Err(SessionError::Refused { .. })
            ));
        }
        assert!(matches!(
            Session::open(&link_entry),
            Err(SessionError::Refused { .. })
        ));

        let report = clean_stale_sessions(Some(&root.0)).unwrap();
        let mut removed: Vec<_> = report.removed.iter().map(|(p, _)| p.clone()).collect();
        removed.sort();
        let mut expect = vec![fifo_owner, zero_owner, big, open_mode, start0, wrong_id];
        expect.sort();
        assert_eq!(removed, expect);
        let mut refused: Vec<_> = report.refused.iter().map(|(p, _)| p.clone()).collect();
        refused.sort();
        assert_eq!(
            refused,
            vec![fifo_entry.clone(), link_entry.clone(), wide.clone()]
        );
        assert!(report.failed.is_empty());
        assert!(live.exists() && wide.exists());
        assert!(fifo_entry.symlink_metadata().is_ok() && link_entry.symlink_metadata().is_ok());
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
