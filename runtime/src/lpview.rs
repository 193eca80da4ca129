//! The LP's view: a small segment a manager makes for its LP and hands it
//! by descriptor, holding what the LP used to read from (and write into)
//! the registry, so that the LP never maps the registry (issue 11, the LP
//! sandbox). It has no name in the session directory (`O_TMPFILE`, see
//! [`Segment::create_unnamed_sparse`]; `lp<slot>.g<gen>.view` labels it in
//! errors): only the manager and its LP hold it, it goes when both have
//! closed it, and an idle collaboration's directory holds one file fewer
//! per LP (issue 13):
//!
//! - the collaboration state the coordinator published, copied here by
//!   the manager when the LP asks for it (read by
//!   [`crate::Lp::collaboration_state`]): the LP bumps `want` and wakes its
//!   manager, which copies the document in and sets `served` to `want`.
//!   Copying on demand keeps an idle collaboration's cost linear: the
//!   document grows with the LPs, and copying it into every LP's view at
//!   every change was O(n^2) in memory and CPU. The view is sparse (only the
//!   pages written take memory), so an LP that never asks costs a page;
//! - the time the LP spent waiting for input (for the supervisor's
//!   placement), which the manager adds to its registry slot.
//!
//! What never changes during a run (sub-function names, their owners, the
//! LP names by slot) comes from the plan, in the handover
//! ([`crate::handover`]); the LP's wake-up of its manager is the data
//! doorbell of the LP's own ring to the manager, which the manager sleeps
//! on beside its registry doorbell.
//!
//! Layout of the body (little-endian):
//!
//! ```text
//! offset size field
//!      0    8 magic       b"LPVIEW\0\x01"
//!      8    8 wait_ns     ns the LP waited for input; the LP adds (Relaxed),
//!                         the manager reads the growth (never trusts it)
//!     16    4 seq         seqlock of the state copy: odd while the manager
//!                         writes it
//!     20    4 len         bytes of the state document
//!     24    4 want        bumped by the LP to ask for a fresh copy
//!     28    4 served      `want` as the manager last served it
//!     32   32 reserved
//!     64  cap state       the coordinator's document (JSON), `len` bytes
//! ```
//!
//! Both sides treat the other's writes as untrusted: the LP copies the
//! document out and checks `len` and `seq` around the copy, giving up after
//! a few torn reads; the manager clamps the growth of `wait_ns` to the time
//! that passed. An LP that scribbles here harms only its own view.

use shmcollab_shm::segment::{CreateError, OpenError, Segment, SegmentKind, Session};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

const MAGIC: u64 = u64::from_le_bytes(*b"LPVIEW\0\x01");
const DOC_OFF: usize = 64;
/// Torn reads of the state before [`ViewReader::state`] gives up.
const READ_TRIES: u32 = 64;

/// The fixed part of the body.
#[repr(C)]
struct ViewHeader {
    magic: u64,
    /// SYNC: Relaxed on both sides; a counter, nothing is published with it.
    wait_ns: AtomicU64,
    /// SYNC: the writer stores it odd (Relaxed), fences, writes the
    /// document, then stores it even with Release; pairs with the Acquire
    /// loads in `ViewReader::state` before and after its copy.
    seq: AtomicU32,
    len: AtomicU32,
    /// SYNC: the LP's fetch_add (Release) orders nothing it needs; the
    /// manager compares it with `served` (Relaxed) and serves any change.
    want: AtomicU32,
    /// SYNC: stored with Release by the manager after the document's seq
    /// went even; the LP's Acquire load then sees that document.
    served: AtomicU32,
    _reserved: [u8; 32],
}
const _: () = assert!(std::mem::size_of::<ViewHeader>() == DOC_OFF);
const _: () = assert!(std::mem::align_of::<ViewHeader>() <= 128);

/// Label of the view of the LP of `slot`, manager generation `gen`.
pub fn view_name(slot: u32, gen: u32) -> String {
    format!("lp{slot}.g{gen}.view")
}

fn header(seg: &Segment) -> &ViewHeader {
    // SAFETY: both constructors checked that the body holds DOC_OFF bytes;
    // the body starts 128 bytes into a page-aligned mapping; every field is
    // an integer or an atomic, valid for any bit pattern.
    unsafe { &*seg.body_ptr().cast::<ViewHeader>() }
}

/// The manager's side.
pub struct ViewWriter {
    seg: Segment,
    cap: usize,
    /// The document last copied in.
    last: Vec<u8>,
    /// `wait_ns` as last read, and when.
    wait_seen: u64,
    wait_at: Instant,
}

impl ViewWriter {
    /// Make the view (labelled `name`) with room for a state document of
    /// `cap` bytes.
    pub fn create(session: &Session, name: &str, cap: usize) -> Result<ViewWriter, CreateError> {
        let body = DOC_OFF + cap;
        let seg =
            Segment::create_unnamed_sparse(session, name, SegmentKind::Blob, body, |p, _| {
                // SAFETY: `p` is the zeroed, 128-aligned body of DOC_OFF + cap
                // bytes, not yet visible to anyone.
                unsafe { p.cast::<u64>().write(MAGIC.to_le()) }
            })?;
        Ok(ViewWriter {
            seg,
            cap,
            last: Vec::new(),
            wait_seen: 0,
            wait_at: Instant::now(),
        })
    }

    /// The segment (to hand its descriptor over).
    pub fn segment(&self) -> &Segment {
        &self.seg
    }

    /// Copy the state document `doc` in if it changed (cut to the room).
    pub fn publish(&mut self, doc: &[u8]) {
        if doc == self.last.as_slice() {
            return;
        }
        let doc = &doc[..doc.len().min(self.cap)];
        let h = header(&self.seg);
        let seq = h.seq.load(Ordering::Relaxed);
        let odd = seq.wrapping_add(1) | 1;
        h.seq.store(odd, Ordering::Relaxed);
        // SYNC: orders the odd seq before the document bytes; a reader that
        // sees any new byte then sees seq changed at its second load.
        std::sync::atomic::fence(Ordering::Release);
        // SAFETY: the body holds DOC_OFF + cap bytes and doc.len() <= cap;
        // the LP may read (or write) these bytes concurrently: they are
        // plain bytes, checked by the seqlock on the reader's side.
        unsafe {
            std::ptr::copy_nonoverlapping(
                doc.as_ptr(),
                self.seg.body_ptr().add(DOC_OFF),
                doc.len(),
            );
        }
        h.len.store(doc.len() as u32, Ordering::Relaxed);
        h.magic_heal();
        // SYNC: publishes the document; pairs with the Acquire loads in
        // ViewReader::state.
        h.seq.store(odd.wrapping_add(1), Ordering::Release);
        self.last = doc.to_vec();
    }

    /// Whether the LP asked for a copy of the state since the last one
    /// (one load each; the LP may write anything here: any change is one
    /// request).
    pub fn wanted(&self) -> bool {
        let h = header(&self.seg);
        h.want.load(Ordering::Relaxed) != h.served.load(Ordering::Relaxed)
    }

    /// Serve the LP's request: copy `doc` in (when it changed) and say so.
    pub fn serve(&mut self, doc: &[u8]) {
        let want = header(&self.seg).want.load(Ordering::Relaxed);
        self.publish(doc);
        // SYNC: after publish's Release of the even seq; pairs with the
        // LP's Acquire load of `served` in ViewReader::served.
        header(&self.seg).served.store(want, Ordering::Release);
    }

    /// The LP's waiting time since the last call, clamped to the time that
    /// passed (the LP writes the counter: never trust its jumps).
    pub fn take_wait(&mut self) -> u64 {
        let now = Instant::now();
        let cur = header(&self.seg).wait_ns.load(Ordering::Relaxed);
        let passed = now.duration_since(self.wait_at).as_nanos() as u64;
        let grown = cur.wrapping_sub(self.wait_seen);
        self.wait_seen = cur;
        self.wait_at = now;
        if grown > passed.saturating_mul(2) {
            0
        } else {
            grown
        }
    }
}

impl ViewHeader {
    /// Put the magic back (only the manager calls it).
    fn magic_heal(&self) {
        let p = std::ptr::addr_of!(self.magic).cast_mut();
        // SAFETY: `p` is the aligned first word of the mapped body; the LP
        // may write it too: a volatile word write.
        unsafe {
            if p.read_volatile() != MAGIC.to_le() {
                p.write_volatile(MAGIC.to_le());
            }
        }
    }
}

/// Why the state could not be read from the view.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ViewReadError {
    /// The manager kept rewriting it, or its length is garbage.
    #[error("the state copy stayed torn or malformed")]
    Torn,
}

/// The LP's side.
pub struct ViewReader {
    seg: Segment,
}

impl ViewReader {
    /// Map the view handed over as `file`.
    pub fn open(
        file: std::fs::File,
        label: &std::path::Path,
        session_id: u64,
    ) -> Result<ViewReader, OpenError> {
        let seg = Segment::from_fd(file, label, session_id, SegmentKind::Blob)?;
        let corrupt = |reason: &str| OpenError::Corrupt {
            path: label.to_owned(),
            reason: reason.into(),
        };
        if seg.body_len() < DOC_OFF {
            return Err(corrupt("view shorter than its header"));
        }
        // SAFETY: the body holds at least DOC_OFF bytes (checked above).
        let magic = unsafe { seg.body_ptr().cast::<u64>().read_volatile() };
        if u64::from_le(magic) != MAGIC {
            return Err(corrupt("bad view magic"));
        }
        Ok(ViewReader { seg })
    }

    /// Add `d` to the time spent waiting for input.
    pub fn add_wait(&self, d: Duration) {
        let ns = d.as_nanos() as u64;
        header(&self.seg).wait_ns.fetch_add(ns, Ordering::Relaxed);
    }

    /// Ask the manager for a fresh copy of the state; returns the ticket
    /// that [`ViewReader::served`] then waits for.
    pub fn request(&self) -> u32 {
        let h = header(&self.seg);
        h.want.fetch_add(1, Ordering::Release).wrapping_add(1)
    }

    /// Whether the manager served request `ticket` (or a later one).
    pub fn served(&self, ticket: u32) -> bool {
        let served = header(&self.seg).served.load(Ordering::Acquire);
        served.wrapping_sub(ticket) < u32::MAX / 2
    }

    /// A copy of the state document (empty: none published yet).
    pub fn state(&self) -> Result<Vec<u8>, ViewReadError> {
        let h = header(&self.seg);
        let room = self.seg.body_len() - DOC_OFF;
        for _ in 0..READ_TRIES {
            let s1 = h.seq.load(Ordering::Acquire);
            if s1 & 1 == 1 {
                std::thread::yield_now();
                continue;
            }
            let len = h.len.load(Ordering::Relaxed) as usize;
            if len > room {
                return Err(ViewReadError::Torn);
            }
            let mut out = vec![0u8; len];
            // SAFETY: DOC_OFF + len lies within the body (len <= room);
            // the bytes may change under us: the seq check below discards
            // such a copy.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    self.seg.body_ptr().add(DOC_OFF).cast_const(),
                    out.as_mut_ptr(),
                    len,
                );
            }
            // SYNC: orders the copy before the second seq load; pairs with
            // the Release fence in ViewWriter::publish.
            std::sync::atomic::fence(Ordering::Acquire);
            if h.seq.load(Ordering::Relaxed) == s1 {
                return Ok(out);
            }
        }
        Err(ViewReadError::Torn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    fn reopen(w: &ViewWriter, session: &Session) -> ViewReader {
        let fd = w.segment().as_fd().try_clone_to_owned().unwrap();
        ViewReader::open(fd.into(), w.segment().path(), session.id()).unwrap()
    }

    #[test]
    fn the_lp_reads_what_the_manager_copied_and_garbage_is_refused() {
        let session = Session::create(&format!("view{}", std::process::id())).unwrap();
        let mut w = ViewWriter::create(&session, "lp0.g1.view", 256).unwrap();
        let r = reopen(&w, &session);
        assert_eq!(r.state().unwrap(), b"");
        w.publish(b"{\"a\":1}");
        assert_eq!(r.state().unwrap(), b"{\"a\":1}");
        r.add_wait(Duration::from_micros(5));
        assert_eq!(w.take_wait(), 5_000);
        // The LP writes a huge jump: not believed.
        header(&w.seg)
            .wait_ns
            .fetch_add(u64::MAX / 2, Ordering::Relaxed);
        assert_eq!(w.take_wait(), 0);
        // Garbage length: refused, never read past the segment.
        header(&w.seg).len.store(u32::MAX, Ordering::Relaxed);
        assert!(matches!(r.state(), Err(ViewReadError::Torn)));
        // A seq stuck odd: gives up instead of hanging.
        header(&w.seg).seq.store(1, Ordering::Relaxed);
        assert!(matches!(r.state(), Err(ViewReadError::Torn)));
        w.publish(b"{}");
        assert_eq!(r.state().unwrap(), b"{}");
    }

    /// The state is copied when the LP asks, not before: an LP that never
    /// asks costs its manager nothing, one that asks gets the document.
    #[test]
    fn the_state_is_copied_when_the_lp_asks() {
        let session = Session::create(&format!("viewask{}", std::process::id())).unwrap();
        let mut w = ViewWriter::create(&session, "lp0.g1.view", 1 << 20).unwrap();
        let r = reopen(&w, &session);
        assert!(!w.wanted());
        let ticket = r.request();
        assert!(w.wanted() && !r.served(ticket));
        w.serve(b"{\"doc\":1}");
        assert!(!w.wanted() && r.served(ticket));
        assert_eq!(r.state().unwrap(), b"{\"doc\":1}");
        // Sparse: a view sized for 1 MiB holds a page or two (of a file
        // with no name in the session directory).
        use std::os::fd::AsFd;
        use std::os::unix::fs::MetadataExt;
        let file = std::fs::File::from(w.segment().as_fd().try_clone_to_owned().unwrap());
        let blocks = file.metadata().unwrap().blocks();
        assert!(blocks * 512 < 64 << 10, "{blocks} blocks");
        assert_eq!(
            std::fs::read_dir(session.dir()).unwrap().flatten().count(),
            1,
            "owner only"
        );
    }
}
