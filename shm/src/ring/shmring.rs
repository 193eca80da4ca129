//! Rings in shared-memory segments: create, open and validate a ring
//! segment (the one decoder of its untrusted control block), and
//! [`BellRef`], a doorbell in another segment that a producer rings instead
//! of the ring's own.

use super::layout::{
    init_header, ring_body_len, RingHeader, HEADER_LEN, MAX_CAPACITY, MIN_CAPACITY, RING_MAGIC,
    RING_VERSION,
};
use super::mem::Mem;
use crate::doorbell::Doorbell;
use crate::segment::{CreateError, OpenError, Segment, SegmentKind, Session};
use std::sync::Arc;

/// Reference to a doorbell in some segment, rung by a producer after each
/// flush instead of the ring's own data doorbell.
#[cfg(not(loom))]
#[derive(Clone)]
pub struct BellRef {
    _keep: Arc<dyn Send + Sync>,
    bell: *const Doorbell,
}

#[cfg(not(loom))]
// SAFETY: the pointer targets a Doorbell (atomics only) kept alive by `_keep`.
unsafe impl Send for BellRef {}
#[cfg(not(loom))]
// SAFETY: as above; Doorbell is Sync.
unsafe impl Sync for BellRef {}

#[cfg(not(loom))]
impl BellRef {
    /// A doorbell inside `seg`.
    ///
    /// # Safety
    /// `bell` must point to a properly aligned `Doorbell` inside `seg`'s mapping.
    pub unsafe fn new(seg: crate::segment::Segment, bell: *const Doorbell) -> BellRef {
        BellRef {
            _keep: Arc::new(seg),
            bell,
        }
    }

    /// The doorbell.
    pub fn get(&self) -> &Doorbell {
        // SAFETY: guaranteed by the contract of `new`; `_keep` keeps it mapped.
        unsafe { &*self.bell }
    }
}

/// Create a ring segment `name` with `capacity` data bytes (a power of
/// two, 64 ..= 2^30).
pub fn create_ring(session: &Session, name: &str, capacity: usize) -> Result<Segment, CreateError> {
    assert!(
        capacity.is_power_of_two() && (MIN_CAPACITY..=MAX_CAPACITY).contains(&capacity),
        "ring capacity must be a power of two in 64..=2^30"
    );
    Segment::create(
        session,
        name,
        SegmentKind::Ring,
        ring_body_len(capacity),
        // SAFETY: `p` is the zeroed, 128-aligned body of a fresh mapping of
        // ring_body_len(capacity) bytes that no other process can open
        // before `Segment::create` marks it ready.
        |p, _| unsafe { init_header(p.cast(), capacity) },
    )
}

/// The data doorbell of the ring in `seg`, for a producer of another
/// ring whose consumer waits on this one (an LP reading several rings
/// waits on its main ring's doorbell).
pub fn data_bell_ref(seg: &Segment) -> Result<BellRef, OpenError> {
    let (mem, _) = mem(seg)?;
    let bell: *const Doorbell = &mem.hdr().data_bell.0;
    // SAFETY: `bell` points at the aligned doorbell inside the header of
    // `seg`'s mapping (validated by `mem`); BellRef keeps `seg` mapped.
    Ok(unsafe { BellRef::new(seg.clone(), bell) })
}

/// Open ring segment `name` of `session`.
pub fn open_ring(session: &Session, name: &str) -> Result<Segment, OpenError> {
    let seg = Segment::open(session, name, SegmentKind::Ring)?;
    validate(&seg)?;
    Ok(seg)
}

/// Map the ring segment behind `file` (handed over by its creator; `label`
/// names it in errors) of session `session_id`, checked as [`open_ring`]
/// checks one opened by name.
pub fn open_ring_fd(
    file: std::fs::File,
    label: &std::path::Path,
    session_id: u64,
) -> Result<Segment, OpenError> {
    let seg = Segment::from_fd(file, label, session_id, SegmentKind::Ring)?;
    validate(&seg)?;
    Ok(seg)
}

/// Check a ring segment's control block; returns the capacity.
pub(super) fn validate(seg: &Segment) -> Result<usize, OpenError> {
    let corrupt = |reason: &str| OpenError::Corrupt {
        path: seg.path().to_owned(),
        reason: reason.to_owned(),
    };
    if seg.body_len() < ring_body_len(0) {
        return Err(corrupt("ring segment shorter than its control block"));
    }
    let hdr = seg.body_ptr().cast::<RingHeader>();
    // SAFETY: body is at least 640 bytes, 128-aligned (header is 128
    // bytes into a page-aligned mapping); plain integer reads.
    let (magic, version, cap) = unsafe {
        let meta = std::ptr::addr_of!((*hdr).meta.0);
        (
            std::ptr::addr_of!((*meta).magic).read_volatile(),
            std::ptr::addr_of!((*meta).version).read_volatile(),
            std::ptr::addr_of!((*meta).capacity).read_volatile(),
        )
    };
    if magic != RING_MAGIC {
        return Err(corrupt("bad ring magic"));
    }
    if version != RING_VERSION {
        return Err(corrupt("unknown ring version"));
    }
    let cap = usize::try_from(cap).map_err(|_| corrupt("capacity out of range"))?;
    if !cap.is_power_of_two() || !(MIN_CAPACITY..=MAX_CAPACITY).contains(&cap) {
        return Err(corrupt("capacity is not a power of two in range"));
    }
    if ring_body_len(cap) > seg.body_len() {
        return Err(corrupt("capacity exceeds the segment"));
    }
    // Head and tail are not checked here: they are the two ends' running
    // state, which each end checks at every use and repairs (its own) or
    // resets; refusing to attach to a ring with garbage in them would leave
    // a restarted process out for good.
    Ok(cap)
}

/// For the creator of the ring in `seg` (of `capacity`, in session
/// `session_id`): write back its segment header and the ring's fixed fields
/// (magic, version, capacity) if another process changed them, so that a
/// process attaching later is not refused for good. Returns whether
/// anything changed.
pub fn heal_ring(seg: &Segment, capacity: usize, session_id: u64) -> bool {
    let mut changed = seg.heal_header(SegmentKind::Ring, session_id);
    if seg.body_len() < ring_body_len(capacity) {
        return changed;
    }
    let hdr = seg.body_ptr().cast::<RingHeader>();
    // SAFETY: the body holds the 128-aligned control block (checked just
    // above); the fields are plain integers other processes may write too:
    // volatile accesses.
    unsafe {
        let meta = std::ptr::addr_of_mut!((*hdr).meta.0);
        let magic = std::ptr::addr_of_mut!((*meta).magic);
        let version = std::ptr::addr_of_mut!((*meta).version);
        let cap = std::ptr::addr_of_mut!((*meta).capacity);
        if magic.read_volatile() != RING_MAGIC {
            magic.write_volatile(RING_MAGIC);
            changed = true;
        }
        if version.read_volatile() != RING_VERSION {
            version.write_volatile(RING_VERSION);
            changed = true;
        }
        if cap.read_volatile() != capacity as u64 {
            cap.write_volatile(capacity as u64);
            changed = true;
        }
    }
    changed
}

pub(super) fn mem(seg: &Segment) -> Result<(Mem, usize), OpenError> {
    let cap = validate(seg)?;
    let hdr = seg.body_ptr().cast::<RingHeader>();
    // SAFETY: validate() checked that 640 + cap bytes lie in the body.
    let data = unsafe { seg.body_ptr().add(HEADER_LEN) };
    Ok((
        Mem {
            _keep: Arc::new(seg.clone()),
            hdr,
            data,
            cap,
        },
        cap,
    ))
}
