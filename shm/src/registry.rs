//! The registry: one segment per collaboration (segment name `"registry"`,
//! kind [`SegmentKind::Registry`]) holding the manager slots, the
//! sub-function assignment table, the coordinator epoch, a change counter and
//! the coordinator's published status.
//!
//! # Byte layout
//!
//! All offsets are relative to the segment body (which follows the 128-byte
//! segment header and is therefore page aligned + 128); all integers are
//! little-endian.
//!
//! ```text
//! Header (128 bytes, align 128), at body offset 0
//! offset size field
//!      0    8 magic          b"SHMCREG1"
//!      8    4 version        REGISTRY_VERSION
//!     12    4 init           REGISTRY_INIT once create has written the body
//!     16    4 max_slots      1..=256
//!     20    4 max_subfns     0..=4096 (= number of sub-functions)
//!     24    4 status_cap     0..=MAX_STATUS_CAP bytes of status data
//!     28    4 secure         1 if frames must be authenticated, else 0
//!     32    8 coordinator    (epoch << 32) | slot, slot u32::MAX = none
//!     40    8 changes        Doorbell: the change counter
//!     48    4 name_len       length of the collaboration name, 1..=63
//!     52   64 name           UTF-8, zero padded
//!    116   12 reserved
//!
//! Slot (256 bytes, align 128), max_slots of them at offset 128
//!      0    4 state          FREE=0 CLAIMING=1 ACTIVE=2 STOPPING=3 DEAD=4
//!      4    4 generation     bumped on every claim
//!               (state and generation form one 64-bit atomic word,
//!                state in the low half, so they change together)
//!      8    4 pid            manager pid
//!     12    4 lp_pid         pid of the LP, 0 if none
//!     16    4 lp_state       STARTING=0 RUNNING=1 READY=2 RESTARTING=3 EXITED=4 FAILED=5
//!     20    4 restarts       restarts of the LP, as reported
//!     24    8 heartbeat_ms   CLOCK_MONOTONIC milliseconds of the last heartbeat
//!     32    4 name_len       length of the manager name, 1..=63
//!     36   64 name           UTF-8, zero padded
//!    100   28 reserved
//!    128    8 doorbell       Doorbell the slot's manager sleeps on
//!    136   56 reserved
//!    192    8 lp_wait_ns     nanoseconds the LP spent waiting in the LP API
//!                            (written by the LP; read by the supervisor's
//!                            placement governor; its own cache line)
//!    200   56 reserved
//!
//! Sub-function entry (64 bytes), max_subfns of them at 128 + 256 * max_slots
//!      0    1 name_len       1..=55
//!      1   55 name           UTF-8, zero padded; written at create time only
//!     56    4 owner          slot index, u32::MAX = unassigned
//!     60    4 version        bumped whenever owner changes
//!
//! Status area, at S = round_up(subfn table end, 128)
//!    S+0    8 seq            seqlock counter, odd while being written
//!    S+8    4 len            bytes of data in use, <= status_cap
//!   S+12    4 reserved
//!   S+16    - data           round_up(status_cap, 8) bytes
//! ```
//!
//! The doorbell sits in the second half of its slot so that producers ringing
//! it do not share a cache line with the slot's metadata.
//!
//! # Trust
//!
//! Every byte of the registry is accessed through an atomic type, so taking a
//! reference to any of its structures is sound whatever another process writes
//! into it; the *values* are untrusted. [`Registry::open`] validates the header
//! against the segment length and copies the immutable parts (counts, names of
//! the collaboration and sub-functions) into the handle once, so a later
//! change to them by another process cannot move any index out of bounds.
//! Slot numbers given by callers are checked, slot names and the status length
//! are validated on every read, and unknown state values map to `Unknown`.

use crate::doorbell::Doorbell;
use crate::segment::{CreateError, OpenError, Segment, SegmentKind, Session};
use std::sync::atomic::{fence, AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;

/// Name of the registry segment in a session.
pub const SEGMENT_NAME: &str = "registry";
/// `b"SHMCREG1"` read as a little-endian u64.
pub const REGISTRY_MAGIC: u64 = u64::from_le_bytes(*b"SHMCREG1");
/// Version of the registry layout.
pub const REGISTRY_VERSION: u32 = 1;
/// Value of the header's `init` field once the body is written (`"INIT"`).
pub const REGISTRY_INIT: u32 = u32::from_le_bytes(*b"INIT");
/// Most manager slots a registry can have.
pub const MAX_SLOTS: u32 = 256;
/// Most sub-functions a registry can have.
pub const MAX_SUBFNS: u32 = 4096;
/// Longest collaboration or manager name, in bytes.
pub const MAX_NAME_LEN: usize = 63;
/// Longest sub-function name, in bytes.
pub const MAX_SUBFN_NAME_LEN: usize = 55;
/// Default size of the status area.
pub const DEFAULT_STATUS_CAP: usize = 64 * 1024;
/// Largest status area.
pub const MAX_STATUS_CAP: usize = 16 * 1024 * 1024;
/// The "no slot" value of the coordinator word and of sub-function owners.
pub const NO_SLOT: u32 = u32::MAX;

const HEADER_LEN: usize = 128;
const SLOT_LEN: usize = 256;
const SUBFN_LEN: usize = 64;
const STATUS_HEADER_LEN: usize = 16;
/// Attempts of a reader before it reports [`RegistryError::Busy`].
const READ_RETRIES: u32 = 10_000;
/// Attempts of a status writer to find the seqlock even before it assumes the
/// previous writer died in the middle of a write and takes over.
const WRITE_LOCK_RETRIES: u32 = 100_000;

// ---------------------------------------------------------------- layout --

/// The registry header, at body offset 0.
#[repr(C, align(128))]
struct Header {
    /// Immutable after create.
    magic: AtomicU64,
    /// Immutable after create.
    version: AtomicU32,
    /// REGISTRY_INIT after create; immutable after.
    init: AtomicU32,
    /// Immutable after create; validated and cached by `open`.
    max_slots: AtomicU32,
    /// Immutable after create; validated and cached by `open`.
    max_subfns: AtomicU32,
    /// Immutable after create; validated and cached by `open`.
    status_cap: AtomicU32,
    /// 0 or 1. Publishes nothing: Relaxed on both sides.
    secure: AtomicU32,
    /// `(epoch << 32) | slot`; the epoch only grows (by one per successful
    /// `claim_coordinator`), slot is NO_SLOT or the holder's slot.
    /// SYNC: changed by CAS with AcqRel, loaded with Acquire: a new
    /// coordinator sees everything its predecessor did before resigning.
    coordinator: AtomicU64,
    /// Change counter: notified after every change to the registry (other
    /// than heartbeats and status); its own Release/Acquire pairing is
    /// described in `crate::doorbell`.
    changes: Doorbell,
    /// Immutable after create.
    name_len: AtomicU32,
    /// Immutable after create.
    name: [AtomicU8; 64],
    _reserved: [AtomicU32; 3],
}
const _: () = assert!(std::mem::size_of::<Header>() == HEADER_LEN);
const _: () = assert!(std::mem::align_of::<Header>() == 128);
const _: () = assert!(std::mem::offset_of!(Header, coordinator) == 32);
const _: () = assert!(std::mem::offset_of!(Header, changes) == 40);
const _: () = assert!(std::mem::offset_of!(Header, name_len) == 48);
const _: () = assert!(std::mem::offset_of!(Header, name) == 52);

/// One manager slot.
#[repr(C, align(128))]
struct Slot {
    /// `(generation << 32) | state`: one word so that "state S at generation
    /// G" is checked and changed atomically (no ABA between a release and a
    /// re-claim). Invariant: the generation changes only on FREE|DEAD ->
    /// CLAIMING, by one (wrapping); name and pid are written only in
    /// CLAIMING, by the process whose CAS entered it.
    /// SYNC: CLAIMING -> ACTIVE is a Release CAS that publishes name, pid and
    /// heartbeat; `Registry::slot` loads it with Acquire, copies, then re-loads
    /// it after an Acquire fence (a seqlock: a re-claim in between is seen).
    /// The claimer's Release fence after entering CLAIMING pairs with that
    /// reader fence.
    state_gen: AtomicU64,
    /// Manager pid; written while CLAIMING. Relaxed (published by state_gen).
    pid: AtomicU32,
    /// LP pid, 0 if none. Relaxed; published by the Release store of lp_state.
    lp_pid: AtomicU32,
    /// LpState as u32.
    /// SYNC: stored with Release after lp_pid; loaded with Acquire in `slot`.
    lp_state: AtomicU32,
    /// Restart count of the LP. Publishes nothing: Relaxed.
    restarts: AtomicU32,
    /// CLOCK_MONOTONIC ms of the last heartbeat. Publishes nothing: Relaxed.
    heartbeat_ms: AtomicU64,
    /// Manager name length; written while CLAIMING (Relaxed, published by
    /// state_gen).
    name_len: AtomicU32,
    /// Manager name bytes; as name_len.
    name: [AtomicU8; 64],
    _reserved0: [AtomicU32; 7],
    /// The doorbell of this slot's manager.
    doorbell: Doorbell,
    _reserved1: [AtomicU32; 14],
    /// Nanoseconds the LP spent waiting for input in the LP API, summed.
    /// Written by the LP, untrusted. Publishes nothing: Relaxed.
    lp_wait_ns: AtomicU64,
    _reserved2: [AtomicU32; 14],
}
const _: () = assert!(std::mem::size_of::<Slot>() == SLOT_LEN);
const _: () = assert!(std::mem::align_of::<Slot>() == 128);
const _: () = assert!(std::mem::offset_of!(Slot, heartbeat_ms) == 24);
const _: () = assert!(std::mem::offset_of!(Slot, name) == 36);
const _: () = assert!(std::mem::offset_of!(Slot, doorbell) == 128);
const _: () = assert!(std::mem::offset_of!(Slot, lp_wait_ns) == 192);

/// One sub-function table entry.
#[repr(C)]
struct SubfnEntry {
    /// Immutable after create; validated and cached by `open`.
    name_len: AtomicU8,
    /// Immutable after create; validated and cached by `open`.
    name: [AtomicU8; MAX_SUBFN_NAME_LEN],
    /// Slot index of the owner, NO_SLOT if none.
    /// SYNC: swapped with AcqRel by the coordinator, loaded with Acquire.
    owner: AtomicU32,
    /// Bumped (Release) after each owner change; loaded with Acquire.
    version: AtomicU32,
}
const _: () = assert!(std::mem::size_of::<SubfnEntry>() == SUBFN_LEN);
const _: () = assert!(std::mem::align_of::<SubfnEntry>() == 4);
const _: () = assert!(std::mem::offset_of!(SubfnEntry, owner) == 56);

/// Head of the status area; the data words follow.
#[repr(C)]
struct StatusHeader {
    /// Seqlock counter: odd while a writer is writing.
    /// SYNC: the writer's CAS to odd is followed by a Release fence before the
    /// data stores; its store back to even is Release. The reader loads it
    /// with Acquire, copies, issues an Acquire fence and re-loads it.
    seq: AtomicU64,
    /// Bytes of data in use; untrusted, bounded by status_cap on read.
    len: AtomicU32,
    _reserved: AtomicU32,
}
const _: () = assert!(std::mem::size_of::<StatusHeader>() == STATUS_HEADER_LEN);
const _: () = assert!(std::mem::align_of::<StatusHeader>() == 8);

/// Offsets and counts of a registry, derived from validated header values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Layout {
    max_slots: u32,
    max_subfns: u32,
    status_cap: usize,
    subfns_off: usize,
    status_off: usize,
    total: usize,
}

fn round_up(n: usize, to: usize) -> usize {
    n.div_ceil(to) * to
}

impl Layout {
    /// The layout for these counts, or why they are out of range.
    fn new(max_slots: u32, max_subfns: u32, status_cap: usize) -> Result<Layout, String> {
        if max_slots == 0 || max_slots > MAX_SLOTS {
            return Err(format!("max_slots {max_slots} is not in 1..={MAX_SLOTS}"));
        }
        if max_subfns > MAX_SUBFNS {
            return Err(format!("max_subfns {max_subfns} exceeds {MAX_SUBFNS}"));
        }
        if status_cap > MAX_STATUS_CAP {
            return Err(format!("status_cap {status_cap} exceeds {MAX_STATUS_CAP}"));
        }
        // All bounded above, so none of this can overflow.
        let subfns_off = HEADER_LEN + SLOT_LEN * max_slots as usize;
        let status_off = round_up(subfns_off + SUBFN_LEN * max_subfns as usize, 128);
        let total = status_off + STATUS_HEADER_LEN + round_up(status_cap, 8);
        Ok(Layout {
            max_slots,
            max_subfns,
            status_cap,
            subfns_off,
            status_off,
            total,
        })
    }
}

/// Check a collaboration or manager name: 1..=`max` bytes, no NUL.
fn check_name(name: &str, max: usize) -> Result<(), String> {
    if name.is_empty() {
        return Err("empty".into());
    }
    if name.len() > max {
        return Err(format!("{} bytes, at most {max} allowed", name.len()));
    }
    if name.bytes().any(|b| b == 0) {
        return Err("contains a NUL byte".into());
    }
    Ok(())
}

/// Decode a name read from shared memory: `len` must be within `bytes` and
/// `max`, and the bytes valid UTF-8 without NUL.
fn decode_name(len: usize, bytes: &[u8], max: usize) -> Result<String, String> {
    let max = max.min(bytes.len());
    if len == 0 || len > max {
        return Err(format!("name length {len} is not in 1..={max}"));
    }
    let s = std::str::from_utf8(&bytes[..len]).map_err(|e| format!("name is not UTF-8: {e}"))?;
    check_name(s, max)?;
    Ok(s.to_owned())
}

/// The immutable part of a header, as plain bytes.
#[derive(Debug, Clone, Copy)]
struct RawHeader {
    magic: u64,
    version: u32,
    init: u32,
    max_slots: u32,
    max_subfns: u32,
    status_cap: u32,
    name_len: u32,
    name: [u8; 64],
}

/// Decode and validate a header against the body length (the one decoding
/// function for the header; property-tested below).
fn decode_header(raw: &RawHeader, body_len: usize) -> Result<(Layout, String), String> {
    if raw.magic != REGISTRY_MAGIC {
        return Err(format!("bad registry magic {:#018x}", raw.magic));
    }
    if raw.version != REGISTRY_VERSION {
        return Err(format!(
            "registry layout version {}, this build reads {REGISTRY_VERSION}",
            raw.version
        ));
    }
    if raw.init != REGISTRY_INIT {
        return Err("registry header is not initialised".into());
    }
    let layout = Layout::new(raw.max_slots, raw.max_subfns, raw.status_cap as usize)?;
    if layout.total > body_len {
        return Err(format!(
            "registry layout needs {} bytes, the body has {body_len}",
            layout.total
        ));
    }
    let name = decode_name(raw.name_len as usize, &raw.name, MAX_NAME_LEN)
        .map_err(|e| format!("collaboration name: {e}"))?;
    Ok((layout, name))
}

// ----------------------------------------------------------------- types --

/// State of a manager slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SlotState {
    /// Never used.
    Free,
    /// A manager is writing its name and pid.
    Claiming,
    /// A manager holds the slot.
    Active,
    /// The manager holds the slot and is shutting down.
    Stopping,
    /// The manager released the slot or died; it may be claimed again.
    Dead,
    /// A value this build does not know (garbage or a newer writer).
    Unknown(u32),
}

impl SlotState {
    /// The value stored in shared memory.
    pub fn as_u32(self) -> u32 {
        match self {
            SlotState::Free => 0,
            SlotState::Claiming => 1,
            SlotState::Active => 2,
            SlotState::Stopping => 3,
            SlotState::Dead => 4,
            SlotState::Unknown(v) => v,
        }
    }

    /// Decode a stored value; unknown values give `Unknown`.
    pub fn from_u32(v: u32) -> SlotState {
        match v {
            0 => SlotState::Free,
            1 => SlotState::Claiming,
            2 => SlotState::Active,
            3 => SlotState::Stopping,
            4 => SlotState::Dead,
            v => SlotState::Unknown(v),
        }
    }
}

/// State of a slot's logical process, as its manager reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LpState {
    /// Being started.
    Starting,
    /// Running, not yet ready.
    Running,
    /// Called `ready()`.
    Ready,
    /// Exited and about to be restarted.
    Restarting,
    /// Exited for good.
    Exited,
    /// Failed for good (restart limit exceeded).
    Failed,
    /// A value this build does not know.
    Unknown(u32),
}

impl LpState {
    /// The value stored in shared memory.
    pub fn as_u32(self) -> u32 {
        match self {
            LpState::Starting => 0,
            LpState::Running => 1,
            LpState::Ready => 2,
            LpState::Restarting => 3,
            LpState::Exited => 4,
            LpState::Failed => 5,
            LpState::Unknown(v) => v,
        }
    }

    /// Decode a stored value; unknown values give `Unknown`.
    pub fn from_u32(v: u32) -> LpState {
        match v {
            0 => LpState::Starting,
            1 => LpState::Running,
            2 => LpState::Ready,
            3 => LpState::Restarting,
            4 => LpState::Exited,
            5 => LpState::Failed,
            v => LpState::Unknown(v),
        }
    }
}

const FREE: u32 = 0;
const CLAIMING: u32 = 1;
const ACTIVE: u32 = 2;
const STOPPING: u32 = 3;
const DEAD: u32 = 4;

fn state_of(word: u64) -> u32 {
    word as u32
}
fn gen_of(word: u64) -> u32 {
    (word >> 32) as u32
}
fn pack(generation: u32, state: u32) -> u64 {
    (u64::from(generation) << 32) | u64::from(state)
}

/// A validated copy of one slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotView {
    /// Slot index.
    pub index: u32,
    /// Slot state.
    pub state: SlotState,
    /// Generation (bumped on every claim).
    pub generation: u32,
    /// Manager pid (of the last claim).
    pub pid: u32,
    /// LP pid, 0 if none.
    pub lp_pid: u32,
    /// LP state.
    pub lp_state: LpState,
    /// LP restarts.
    pub restarts: u32,
    /// CLOCK_MONOTONIC ms of the last heartbeat (see [`monotonic_ms`]).
    pub heartbeat_ms: u64,
    /// Nanoseconds the slot's LPs spent waiting in the LP API, summed
    /// (written by the LPs: a hint, not a fact).
    pub lp_wait_ns: u64,
    /// Manager name; empty for a slot that is free or being claimed (a DEAD
    /// slot keeps its last holder's name).
    pub name: String,
}

/// Errors of registry operations.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// Creating the segment failed.
    #[error(transparent)]
    Create(#[from] CreateError),
    /// Opening the segment failed, or its contents are refused.
    #[error(transparent)]
    Open(#[from] OpenError),
    /// A name given by the caller is not acceptable.
    #[error("invalid {what} name {name:?}: {reason}")]
    BadName {
        /// What the name is of.
        what: &'static str,
        /// The name.
        name: String,
        /// Why.
        reason: String,
    },
    /// A count or size given to `create` is out of range.
    #[error("invalid registry configuration: {0}")]
    BadConfig(String),
    /// No such slot.
    #[error("slot {slot} does not exist (the registry has {max} slots)")]
    NoSuchSlot {
        /// Slot asked for.
        slot: u32,
        /// Number of slots.
        max: u32,
    },
    /// No such sub-function.
    #[error("sub-function {index} does not exist (the registry has {count})")]
    NoSuchSubfn {
        /// Index asked for.
        index: u32,
        /// Number of sub-functions.
        count: u32,
    },
    /// The slot is not free or dead, or another process claimed it first.
    #[error("slot {0} is taken")]
    SlotTaken(u32),
    /// No slot is free.
    #[error("every registry slot is taken")]
    Full,
    /// The slot is not in the state (or generation) the operation needs.
    #[error("slot {slot} is {state:?} at generation {generation}, which this operation does not apply to")]
    WrongState {
        /// The slot.
        slot: u32,
        /// Its state.
        state: SlotState,
        /// Its generation.
        generation: u32,
    },
    /// Another process changed the coordinator epoch first.
    #[error("coordinator epoch is {current}, not {seen}: someone else claimed the role")]
    EpochChanged {
        /// The epoch the caller saw.
        seen: u32,
        /// The epoch now.
        current: u32,
    },
    /// The coordinator epoch cannot grow any more.
    #[error("coordinator epoch exhausted")]
    EpochExhausted,
    /// The caller does not hold the coordinator role at that epoch.
    #[error("slot {slot} is not the coordinator at epoch {epoch}")]
    NotCoordinator {
        /// The slot.
        slot: u32,
        /// The epoch.
        epoch: u32,
    },
    /// A status report longer than the status area.
    #[error("status of {len} bytes exceeds the status area of {cap} bytes")]
    StatusTooLong {
        /// Its length.
        len: usize,
        /// The capacity.
        cap: usize,
    },
    /// A reader kept seeing concurrent writes and gave up.
    #[error("registry {0} kept changing while being read; try again")]
    Busy(&'static str),
    /// A value in shared memory is invalid.
    #[error("registry is corrupt: {0}")]
    Corrupt(String),
}

/// CLOCK_MONOTONIC in milliseconds.
///
/// This clock is system-wide (it does not depend on the process), so values
/// from different processes on the host compare; it does not jump with the
/// wall clock and does not count time the system was suspended.
pub fn monotonic_ms() -> u64 {
    let ts = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    (ts.tv_sec.max(0) as u64)
        .saturating_mul(1000)
        .saturating_add((ts.tv_nsec.max(0) as u64) / 1_000_000)
}

// -------------------------------------------------------------- registry --

#[derive(Debug)]
struct Meta {
    layout: Layout,
    collab_name: String,
    subfn_names: Vec<String>,
}

/// A handle on a collaboration's registry. Cloning is cheap.
#[derive(Debug, Clone)]
pub struct Registry {
    seg: Segment,
    meta: Arc<Meta>,
}

impl Registry {
    /// Create the registry segment of `session` for collaboration
    /// `collab_name` with `max_slots` slots (1..=256), the sub-functions
    /// `subfns` (at most 4096, unique, 1..=55 bytes each, all unassigned) and
    /// a status area of `status_cap` bytes (see [`DEFAULT_STATUS_CAP`]).
    pub fn create(
        session: &Session,
        collab_name: &str,
        max_slots: u32,
        subfns: &[&str],
        status_cap: usize,
    ) -> Result<Registry, RegistryError> {
        check_name(collab_name, MAX_NAME_LEN).map_err(|reason| RegistryError::BadName {
            what: "collaboration",
            name: collab_name.to_owned(),
            reason,
        })?;
        let n_subfns = u32::try_from(subfns.len())
            .ok()
            .filter(|&n| n <= MAX_SUBFNS)
            .ok_or_else(|| {
                RegistryError::BadConfig(format!(
                    "{} sub-functions, at most {MAX_SUBFNS} allowed",
                    subfns.len()
                ))
            })?;
        let mut seen = std::collections::HashSet::new();
        for s in subfns {
            check_name(s, MAX_SUBFN_NAME_LEN).map_err(|reason| RegistryError::BadName {
                what: "sub-function",
                name: (*s).to_owned(),
                reason,
            })?;
            if !seen.insert(*s) {
                return Err(RegistryError::BadName {
                    what: "sub-function",
                    name: (*s).to_owned(),
                    reason: "declared twice".into(),
                });
            }
        }
        let layout =
            Layout::new(max_slots, n_subfns, status_cap).map_err(RegistryError::BadConfig)?;
        let seg = Segment::create(
            session,
            SEGMENT_NAME,
            SegmentKind::Registry,
            layout.total,
            |body, len| {
                debug_assert!(len >= layout.total);
                // SAFETY: `body` is the zeroed, 128-aligned body of a fresh
                // mapping of `layout.total` bytes that no other process can
                // open before `Segment::create` marks it ready; all-zero is a
                // valid value of every (atomic) field.
                unsafe { init_body(body, &layout, collab_name, subfns) }
            },
        )?;
        Ok(Registry {
            seg,
            meta: Arc::new(Meta {
                layout,
                collab_name: collab_name.to_owned(),
                subfn_names: subfns.iter().map(|s| (*s).to_owned()).collect(),
            }),
        })
    }

    /// Open the registry of `session`, validating its header against the
    /// segment length and every immutable name.
    pub fn open(session: &Session) -> Result<Registry, RegistryError> {
        let seg = Segment::open(session, SEGMENT_NAME, SegmentKind::Registry)?;
        let corrupt = |reason: String| {
            RegistryError::Open(OpenError::Corrupt {
                path: seg.path().to_owned(),
                reason,
            })
        };
        let body_len = seg.body_len();
        if body_len < HEADER_LEN {
            return Err(corrupt(format!(
                "registry body of {body_len} bytes is shorter than its header"
            )));
        }
        // SAFETY: the body is at least HEADER_LEN bytes and 128-aligned; every
        // field of Header is atomic, so a shared reference is sound whatever
        // other processes write.
        let h = unsafe { &*seg.body_ptr().cast::<Header>() };
        let mut raw = RawHeader {
            // Immutable after create (published by the segment's ready flag,
            // which Segment::open loaded with Acquire): Relaxed suffices.
            magic: h.magic.load(Ordering::Relaxed),
            version: h.version.load(Ordering::Relaxed),
            init: h.init.load(Ordering::Relaxed),
            max_slots: h.max_slots.load(Ordering::Relaxed),
            max_subfns: h.max_subfns.load(Ordering::Relaxed),
            status_cap: h.status_cap.load(Ordering::Relaxed),
            name_len: h.name_len.load(Ordering::Relaxed),
            name: [0; 64],
        };
        for (d, s) in raw.name.iter_mut().zip(&h.name) {
            *d = s.load(Ordering::Relaxed);
        }
        let (layout, collab_name) = decode_header(&raw, body_len).map_err(corrupt)?;
        // A handle without names yet, to reach the entries.
        let probe = Registry {
            seg: seg.clone(),
            meta: Arc::new(Meta {
                layout,
                collab_name: collab_name.clone(),
                subfn_names: Vec::new(),
            }),
        };
        let mut names = Vec::with_capacity(layout.max_subfns as usize);
        let mut seen = std::collections::HashSet::new();
        for i in 0..layout.max_subfns {
            let e = probe.subfn_entry(i)?;
            let mut bytes = [0u8; MAX_SUBFN_NAME_LEN];
            for (d, s) in bytes.iter_mut().zip(&e.name) {
                *d = s.load(Ordering::Relaxed);
            }
            let len = usize::from(e.name_len.load(Ordering::Relaxed));
            let name = decode_name(len, &bytes, MAX_SUBFN_NAME_LEN)
                .map_err(|r| corrupt(format!("sub-function {i}: {r}")))?;
            if !seen.insert(name.clone()) {
                return Err(corrupt(format!("sub-function {name:?} appears twice")));
            }
            names.push(name);
        }
        Ok(Registry {
            seg,
            meta: Arc::new(Meta {
                layout,
                collab_name,
                subfn_names: names,
            }),
        })
    }

    /// The underlying segment.
    pub fn segment(&self) -> &Segment {
        &self.seg
    }

    fn header(&self) -> &Header {
        // SAFETY: `create`/`open` checked that the body holds the layout,
        // which starts with a Header at the 128-aligned body start; all its
        // fields are atomic, and the mapping lives as long as `self.seg`.
        unsafe { &*self.seg.body_ptr().cast::<Header>() }
    }

    fn slot_ref(&self, slot: u32) -> Result<&Slot, RegistryError> {
        let max = self.meta.layout.max_slots;
        if slot >= max {
            return Err(RegistryError::NoSuchSlot { slot, max });
        }
        let off = HEADER_LEN + SLOT_LEN * slot as usize;
        // SAFETY: slot < max_slots, so [off, off + SLOT_LEN) lies within the
        // validated layout, which fits in the body; off is a multiple of 128
        // from a 128-aligned base; all fields of Slot are atomic.
        Ok(unsafe { &*self.seg.body_ptr().add(off).cast::<Slot>() })
    }

    fn subfn_entry(&self, index: u32) -> Result<&SubfnEntry, RegistryError> {
        let count = self.meta.layout.max_subfns;
        if index >= count {
            return Err(RegistryError::NoSuchSubfn { index, count });
        }
        let off = self.meta.layout.subfns_off + SUBFN_LEN * index as usize;
        // SAFETY: index < max_subfns, so the entry lies within the validated
        // layout inside the body; off is a multiple of 64 from a 128-aligned
        // base; all fields of SubfnEntry are atomic.
        Ok(unsafe { &*self.seg.body_ptr().add(off).cast::<SubfnEntry>() })
    }

    fn status_parts(&self) -> (&StatusHeader, &[AtomicU64]) {
        let l = &self.meta.layout;
        let base = self.seg.body_ptr();
        // SAFETY: status_off + 16 + round_up(status_cap, 8) == layout.total,
        // which fits in the body; status_off is a multiple of 128 from a
        // 128-aligned base, so the header and the u64 words that follow it are
        // aligned; all are atomics.
        unsafe {
            let h = &*base.add(l.status_off).cast::<StatusHeader>();
            let words = std::slice::from_raw_parts(
                base.add(l.status_off + STATUS_HEADER_LEN)
                    .cast::<AtomicU64>(),
                round_up(l.status_cap, 8) / 8,
            );
            (h, words)
        }
    }

    /// The collaboration name.
    pub fn collab_name(&self) -> &str {
        &self.meta.collab_name
    }

    /// Number of manager slots.
    pub fn max_slots(&self) -> u32 {
        self.meta.layout.max_slots
    }

    /// Capacity of the status area in bytes.
    pub fn status_cap(&self) -> usize {
        self.meta.layout.status_cap
    }

    /// Whether the collaboration runs the secure (authenticated) protocol.
    pub fn is_secure(&self) -> bool {
        // Relaxed: a flag set once by the supervisor before managers start.
        self.header().secure.load(Ordering::Relaxed) != 0
    }

    /// Set the secure flag (by the supervisor, before it starts managers).
    pub fn set_secure(&self, secure: bool) {
        // Relaxed: the supervisor sets it before spawning the processes that
        // read it; process creation orders it.
        self.header()
            .secure
            .store(u32::from(secure), Ordering::Relaxed);
        self.header().changes.notify();
    }

    /// The change counter: every change to the registry (except heartbeats
    /// and status) calls `notify` on it; wait with `wait_change`.
    pub fn changes(&self) -> &Doorbell {
        &self.header().changes
    }

    // ------------------------------------------------------ sub-functions --

    /// Number of sub-functions.
    pub fn subfn_count(&self) -> u32 {
        self.meta.layout.max_subfns
    }

    /// Name of sub-function `index`.
    pub fn subfn_name(&self, index: u32) -> Result<String, RegistryError> {
        self.meta
            .subfn_names
            .get(index as usize)
            .cloned()
            .ok_or(RegistryError::NoSuchSubfn {
                index,
                count: self.subfn_count(),
            })
    }

    /// Index of the sub-function called `name`.
    pub fn subfn_index(&self, name: &str) -> Option<u32> {
        self.meta
            .subfn_names
            .iter()
            .position(|n| n == name)
            .and_then(|i| u32::try_from(i).ok())
    }

    /// Owner slot of sub-function `index`; `None` if unassigned, if there is
    /// no such sub-function, or if the stored owner is not a valid slot.
    pub fn subfn_owner(&self, index: u32) -> Option<u32> {
        let e = self.subfn_entry(index).ok()?;
        // SYNC: pairs with the AcqRel swap in set_subfn_owner.
        let owner = e.owner.load(Ordering::Acquire);
        (owner < self.max_slots()).then_some(owner)
    }

    /// Version of sub-function `index`'s assignment (bumped on every owner
    /// change).
    pub fn subfn_version(&self, index: u32) -> Result<u32, RegistryError> {
        // SYNC: pairs with the Release fetch_add in set_subfn_owner.
        Ok(self.subfn_entry(index)?.version.load(Ordering::Acquire))
    }

    /// Assign sub-function `index` to `slot` (`None`: unassign). Bumps the
    /// entry's version if the owner changed, and notifies the change counter.
    pub fn set_subfn_owner(&self, index: u32, slot: Option<u32>) -> Result<(), RegistryError> {
        let e = self.subfn_entry(index)?;
        let new = match slot {
            Some(s) => {
                self.slot_ref(s)?;
                s
            }
            None => NO_SLOT,
        };
        // SYNC: AcqRel: publishes what the coordinator did before assigning;
        // pairs with the Acquire load in subfn_owner.
        let old = e.owner.swap(new, Ordering::AcqRel);
        if old != new {
            // SYNC: pairs with the Acquire load in subfn_version.
            e.version.fetch_add(1, Ordering::Release);
            self.changes().notify();
        }
        Ok(())
    }

    /// The sub-functions currently assigned to `slot`.
    pub fn subfns_of(&self, slot: u32) -> Vec<u32> {
        (0..self.subfn_count())
            .filter(|&i| self.subfn_owner(i) == Some(slot))
            .collect()
    }

    // -------------------------------------------------------------- slots --

    /// Claim `slot` for the manager `name` (1..=63 bytes) with pid `pid`.
    ///
    /// The slot must be FREE or DEAD; it goes through CLAIMING (name and pid
    /// written, generation bumped, heartbeat set) to ACTIVE, and the change
    /// counter is notified. Returns the new generation. `restarts` is left
    /// alone (the supervisor keeps counting across manager restarts); the LP
    /// fields are reset.
    pub fn claim_slot(&self, slot: u32, name: &str, pid: u32) -> Result<u32, RegistryError> {
        check_name(name, MAX_NAME_LEN).map_err(|reason| RegistryError::BadName {
            what: "manager",
            name: name.to_owned(),
            reason,
        })?;
        let s = self.slot_ref(slot)?;
        // Relaxed: only a hint; the CAS below decides.
        let mut cur = s.state_gen.load(Ordering::Relaxed);
        let generation = loop {
            let st = state_of(cur);
            if st != FREE && st != DEAD {
                return Err(RegistryError::SlotTaken(slot));
            }
            let g = gen_of(cur).wrapping_add(1);
            // SYNC: Acquire: see the previous owner's writes before ours.
            match s.state_gen.compare_exchange(
                cur,
                pack(g, CLAIMING),
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => break g,
                Err(now) => cur = now,
            }
        };
        // SYNC: orders the CLAIMING store before the name writes below; pairs
        // with the Acquire fence in `slot` (seqlock re-check).
        fence(Ordering::Release);
        let bytes = name.as_bytes();
        for (i, b) in s.name.iter().enumerate() {
            b.store(bytes.get(i).copied().unwrap_or(0), Ordering::Relaxed);
        }
        // Relaxed: all of these are published by the Release CAS to ACTIVE.
        s.name_len.store(bytes.len() as u32, Ordering::Relaxed);
        s.pid.store(pid, Ordering::Relaxed);
        s.lp_pid.store(0, Ordering::Relaxed);
        s.lp_state
            .store(LpState::Starting.as_u32(), Ordering::Relaxed);
        s.heartbeat_ms.store(monotonic_ms(), Ordering::Relaxed);
        // SYNC: Release publishes the writes above; pairs with the Acquire
        // load in `slot`. A CAS, not a store: the supervisor may have marked
        // the slot dead meanwhile (it thought we died).
        s.state_gen
            .compare_exchange(
                pack(generation, CLAIMING),
                pack(generation, ACTIVE),
                Ordering::Release,
                Ordering::Relaxed,
            )
            .map_err(|_| RegistryError::SlotTaken(slot))?;
        self.changes().notify();
        Ok(generation)
    }

    /// Claim the first free (or dead) slot; returns `(slot, generation)`.
    pub fn claim_any(&self, name: &str, pid: u32) -> Result<(u32, u32), RegistryError> {
        for slot in 0..self.max_slots() {
            match self.claim_slot(slot, name, pid) {
                Ok(g) => return Ok((slot, g)),
                Err(RegistryError::SlotTaken(_)) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(RegistryError::Full)
    }

    /// CAS the slot's state from one of `from` to `to`, keeping the
    /// generation; `generation` restricts it to that generation.
    fn transition(
        &self,
        slot: u32,
        generation: Option<u32>,
        from: &[u32],
        to: u32,
    ) -> Result<(), RegistryError> {
        let s = self.slot_ref(slot)?;
        // Relaxed: only a hint; the CAS decides.
        let mut cur = s.state_gen.load(Ordering::Relaxed);
        loop {
            let (st, g) = (state_of(cur), gen_of(cur));
            if !from.contains(&st) || generation.is_some_and(|want| want != g) {
                return Err(RegistryError::WrongState {
                    slot,
                    state: SlotState::from_u32(st),
                    generation: g,
                });
            }
            // SYNC: AcqRel: Release publishes the caller's last writes to the
            // slot to whoever reclaims it (Acquire CAS in claim_slot).
            match s.state_gen.compare_exchange(
                cur,
                pack(g, to),
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(now) => cur = now,
            }
        }
        self.changes().notify();
        Ok(())
    }

    /// Release `slot` held at `generation`: ACTIVE or STOPPING -> DEAD.
    /// Fails with `WrongState` if the slot was re-claimed or not held.
    pub fn release_slot(&self, slot: u32, generation: u32) -> Result<(), RegistryError> {
        self.transition(slot, Some(generation), &[ACTIVE, STOPPING], DEAD)
    }

    /// Mark `slot` DEAD whatever its state (the supervisor, when the manager
    /// died, possibly in the middle of a claim). A FREE or DEAD slot is left
    /// as it is. Does not touch the coordinator word: the next coordinator
    /// claims a new epoch.
    pub fn mark_dead(&self, slot: u32) -> Result<(), RegistryError> {
        match self.transition(slot, None, &[CLAIMING, ACTIVE, STOPPING], DEAD) {
            Err(RegistryError::WrongState {
                state: SlotState::Free | SlotState::Dead,
                ..
            }) => Ok(()),
            Err(RegistryError::WrongState {
                state: SlotState::Unknown(_),
                ..
            }) => self.transition_unknown_to_dead(slot),
            r => r,
        }
    }

    fn transition_unknown_to_dead(&self, slot: u32) -> Result<(), RegistryError> {
        let s = self.slot_ref(slot)?;
        // Relaxed: a hint for the CAS.
        let cur = s.state_gen.load(Ordering::Relaxed);
        if state_of(cur) > DEAD {
            // SYNC: AcqRel as in `transition`.
            let _ = s.state_gen.compare_exchange(
                cur,
                pack(gen_of(cur), DEAD),
                Ordering::AcqRel,
                Ordering::Relaxed,
            );
            self.changes().notify();
        }
        Ok(())
    }

    /// ACTIVE -> STOPPING (the manager is shutting down).
    pub fn set_stopping(&self, slot: u32) -> Result<(), RegistryError> {
        self.transition(slot, None, &[ACTIVE], STOPPING)
    }

    /// A validated copy of `slot`.
    pub fn slot(&self, slot: u32) -> Result<SlotView, RegistryError> {
        let s = self.slot_ref(slot)?;
        for _ in 0..READ_RETRIES {
            // SYNC: pairs with the Release CAS to ACTIVE in claim_slot.
            let before = s.state_gen.load(Ordering::Acquire);
            let state = state_of(before);
            let name_len = s.name_len.load(Ordering::Relaxed) as usize;
            let mut name = [0u8; 64];
            for (d, b) in name.iter_mut().zip(&s.name) {
                *d = b.load(Ordering::Relaxed);
            }
            let pid = s.pid.load(Ordering::Relaxed);
            // SYNC: pairs with the Release fence in claim_slot: if a name byte
            // above came from a newer claim, the re-load sees its CLAIMING.
            fence(Ordering::Acquire);
            if s.state_gen.load(Ordering::Relaxed) != before {
                continue;
            }
            // While CLAIMING the name is being written: report none.
            let name = if state == CLAIMING || (state == FREE && name_len == 0) {
                String::new()
            } else {
                decode_name(name_len, &name, MAX_NAME_LEN)
                    .map_err(|e| RegistryError::Corrupt(format!("slot {slot}: {e}")))?
            };
            // SYNC: pairs with the Release store in set_lp.
            let lp_state = s.lp_state.load(Ordering::Acquire);
            return Ok(SlotView {
                index: slot,
                state: SlotState::from_u32(state),
                generation: gen_of(before),
                pid,
                lp_pid: s.lp_pid.load(Ordering::Relaxed),
                lp_state: LpState::from_u32(lp_state),
                restarts: s.restarts.load(Ordering::Relaxed),
                heartbeat_ms: s.heartbeat_ms.load(Ordering::Relaxed),
                lp_wait_ns: s.lp_wait_ns.load(Ordering::Relaxed),
                name,
            });
        }
        Err(RegistryError::Busy("slot"))
    }

    /// Copies of the ACTIVE and STOPPING slots. Slots that fail validation
    /// (see [`Registry::slot`]) are skipped.
    pub fn active_slots(&self) -> Vec<SlotView> {
        (0..self.max_slots())
            .filter_map(|i| self.slot(i).ok())
            .filter(|v| matches!(v.state, SlotState::Active | SlotState::Stopping))
            .collect()
    }

    /// Record a heartbeat of `slot`'s manager (now, CLOCK_MONOTONIC ms). Does
    /// not notify the change counter.
    pub fn heartbeat(&self, slot: u32) -> Result<(), RegistryError> {
        // Relaxed: the value publishes nothing else.
        self.slot_ref(slot)?
            .heartbeat_ms
            .store(monotonic_ms(), Ordering::Relaxed);
        Ok(())
    }

    /// Add `ns` to the time the slot's LP spent waiting (called by the LP).
    pub fn add_lp_wait(&self, slot: u32, ns: u64) -> Result<(), RegistryError> {
        // Relaxed: the value publishes nothing else.
        self.slot_ref(slot)?
            .lp_wait_ns
            .fetch_add(ns, Ordering::Relaxed);
        Ok(())
    }

    /// Record the slot's LP pid and state, and notify the change counter.
    pub fn set_lp(&self, slot: u32, lp_pid: u32, lp_state: LpState) -> Result<(), RegistryError> {
        let s = self.slot_ref(slot)?;
        // Relaxed: published by the Release store of lp_state.
        s.lp_pid.store(lp_pid, Ordering::Relaxed);
        // SYNC: pairs with the Acquire load in `slot`.
        s.lp_state.store(lp_state.as_u32(), Ordering::Release);
        self.changes().notify();
        Ok(())
    }

    /// Record the slot's LP restart count, and notify the change counter.
    pub fn set_restarts(&self, slot: u32, n: u32) -> Result<(), RegistryError> {
        // Relaxed: the value publishes nothing else.
        self.slot_ref(slot)?.restarts.store(n, Ordering::Relaxed);
        self.changes().notify();
        Ok(())
    }

    /// The doorbell of `slot`'s manager.
    pub fn doorbell(&self, slot: u32) -> Result<&Doorbell, RegistryError> {
        Ok(&self.slot_ref(slot)?.doorbell)
    }

    // -------------------------------------------------------- coordinator --

    fn coordinator_word(&self) -> u64 {
        // SYNC: pairs with the AcqRel CASes in claim/resign_coordinator.
        self.header().coordinator.load(Ordering::Acquire)
    }

    /// The current coordinator `(epoch, slot)`, or `None` if nobody holds the
    /// role (or the stored slot is not a valid one).
    pub fn coordinator(&self) -> Option<(u32, u32)> {
        let w = self.coordinator_word();
        let (epoch, slot) = ((w >> 32) as u32, w as u32);
        (slot < self.max_slots()).then_some((epoch, slot))
    }

    /// The current coordinator epoch (0 before anyone claimed the role).
    pub fn coordinator_epoch(&self) -> u32 {
        (self.coordinator_word() >> 32) as u32
    }

    /// Claim the coordinator role for `slot`, having seen epoch
    /// `seen_epoch`: moves the word from `(seen_epoch, anything)` to
    /// `(seen_epoch + 1, slot)` by CAS and returns the new epoch. Fails with
    /// `EpochChanged` if the epoch is no longer `seen_epoch`.
    pub fn claim_coordinator(&self, slot: u32, seen_epoch: u32) -> Result<u32, RegistryError> {
        self.slot_ref(slot)?;
        let new_epoch = seen_epoch
            .checked_add(1)
            .ok_or(RegistryError::EpochExhausted)?;
        let c = &self.header().coordinator;
        // SYNC: Acquire, pairs with the AcqRel CASes below.
        let mut cur = c.load(Ordering::Acquire);
        loop {
            let current = (cur >> 32) as u32;
            if current != seen_epoch {
                return Err(RegistryError::EpochChanged {
                    seen: seen_epoch,
                    current,
                });
            }
            let new = (u64::from(new_epoch) << 32) | u64::from(slot);
            // SYNC: AcqRel: see the predecessor's writes, publish ours; pairs
            // with the Acquire load in `coordinator`.
            match c.compare_exchange(cur, new, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => break,
                // Same epoch but another slot value (a resign): try again.
                Err(now) => cur = now,
            }
        }
        self.changes().notify();
        Ok(new_epoch)
    }

    /// Give up the coordinator role held by `slot` at `epoch`: the slot
    /// becomes none, the epoch stays.
    pub fn resign_coordinator(&self, slot: u32, epoch: u32) -> Result<(), RegistryError> {
        let c = &self.header().coordinator;
        let held = (u64::from(epoch) << 32) | u64::from(slot);
        let none = (u64::from(epoch) << 32) | u64::from(NO_SLOT);
        // SYNC: AcqRel as in claim_coordinator.
        c.compare_exchange(held, none, Ordering::AcqRel, Ordering::Relaxed)
            .map_err(|_| RegistryError::NotCoordinator { slot, epoch })?;
        self.changes().notify();
        Ok(())
    }

    // ------------------------------------------------------------- status --

    /// Publish the collaboration status (by the coordinator). Fails with
    /// `StatusTooLong` if `data` exceeds the status area.
    ///
    /// One writer at a time is expected. A writer that finds the seqlock odd
    /// waits for a bounded time and then assumes the previous writer died in
    /// the middle of a write and takes over.
    pub fn publish_status(&self, data: &[u8]) -> Result<(), RegistryError> {
        let cap = self.status_cap();
        if data.len() > cap {
            return Err(RegistryError::StatusTooLong {
                len: data.len(),
                cap,
            });
        }
        let (h, words) = self.status_parts();
        // Take the seqlock: even -> odd, or after a while odd -> odd + 2.
        let mut tries = 0u32;
        let mine = loop {
            let cur = h.seq.load(Ordering::Relaxed);
            let next = if cur.is_multiple_of(2) {
                cur.wrapping_add(1)
            } else if tries >= WRITE_LOCK_RETRIES {
                cur.wrapping_add(2)
            } else {
                tries += 1;
                if tries.is_multiple_of(64) {
                    crate::sync::yield_now();
                } else {
                    crate::sync::spin_hint();
                }
                continue;
            };
            // Relaxed CAS, then the Release fence below.
            if h.seq
                .compare_exchange(cur, next, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
            {
                break next;
            }
        };
        // SYNC: orders the odd seq before the data stores; pairs with the
        // Acquire fence in read_status.
        fence(Ordering::Release);
        for (w, chunk) in words.iter().zip(data.chunks(8)) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            w.store(u64::from_le_bytes(b), Ordering::Relaxed);
        }
        // Fits: data.len() <= cap <= MAX_STATUS_CAP < u32::MAX.
        h.len.store(data.len() as u32, Ordering::Relaxed);
        // SYNC: publishes data and len; pairs with the Acquire load in
        // read_status.
        h.seq.store(mine.wrapping_add(1), Ordering::Release);
        Ok(())
    }

    /// Read the last published status (empty if none). Retries a bounded
    /// number of times while a write is in progress, then fails with `Busy`.
    pub fn read_status(&self) -> Result<Vec<u8>, RegistryError> {
        let cap = self.status_cap();
        let (h, words) = self.status_parts();
        let mut out = Vec::new();
        for i in 0..READ_RETRIES {
            if i > 0 && i.is_multiple_of(64) {
                crate::sync::yield_now();
            }
            // SYNC: pairs with the Release store that ends publish_status.
            let s1 = h.seq.load(Ordering::Acquire);
            if !s1.is_multiple_of(2) {
                crate::sync::spin_hint();
                continue;
            }
            let len = h.len.load(Ordering::Relaxed) as usize;
            let n = len.min(cap);
            out.clear();
            for w in words.iter().take(n.div_ceil(8)) {
                out.extend_from_slice(&w.load(Ordering::Relaxed).to_le_bytes());
            }
            out.truncate(n);
            // SYNC: pairs with the Release fence in publish_status.
            fence(Ordering::Acquire);
            if h.seq.load(Ordering::Relaxed) != s1 {
                continue;
            }
            if len > cap {
                return Err(RegistryError::Corrupt(format!(
                    "status length {len} exceeds the status area of {cap} bytes"
                )));
            }
            return Ok(out);
        }
        Err(RegistryError::Busy("status"))
    }
}

/// Write a fresh registry into a zeroed body.
///
/// # Safety
///
/// `body` must point to at least `layout.total` zeroed, writable bytes,
/// aligned to 128, that no other thread or process accesses yet.
unsafe fn init_body(body: *mut u8, layout: &Layout, collab_name: &str, subfns: &[&str]) {
    // SAFETY: the caller guarantees size, alignment and exclusivity; all
    // fields are atomic, zero is valid for each of them.
    let h = unsafe { &*body.cast::<Header>() };
    // Relaxed everywhere: the segment's ready flag (Release in
    // Segment::create, Acquire in Segment::open) publishes the whole body.
    h.magic.store(REGISTRY_MAGIC, Ordering::Relaxed);
    h.version.store(REGISTRY_VERSION, Ordering::Relaxed);
    h.max_slots.store(layout.max_slots, Ordering::Relaxed);
    h.max_subfns.store(layout.max_subfns, Ordering::Relaxed);
    h.status_cap
        .store(layout.status_cap as u32, Ordering::Relaxed);
    h.coordinator.store(u64::from(NO_SLOT), Ordering::Relaxed);
    h.name_len
        .store(collab_name.len() as u32, Ordering::Relaxed);
    for (d, s) in h.name.iter().zip(collab_name.bytes()) {
        d.store(s, Ordering::Relaxed);
    }
    for (i, name) in subfns.iter().enumerate() {
        let off = layout.subfns_off + SUBFN_LEN * i;
        // SAFETY: i < max_subfns, so the entry lies inside the layout; the
        // offset is 64-aligned; all fields are atomic.
        let e = unsafe { &*body.add(off).cast::<SubfnEntry>() };
        e.name_len.store(name.len() as u8, Ordering::Relaxed);
        for (d, s) in e.name.iter().zip(name.bytes()) {
            d.store(s, Ordering::Relaxed);
        }
        e.owner.store(NO_SLOT, Ordering::Relaxed);
    }
    h.init.store(REGISTRY_INIT, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    static COUNTER: AtomicUsize = AtomicUsize::new(0);

    fn session() -> Session {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("regunit-{}-{n}", std::process::id());
        Session::create_in(&std::env::temp_dir(), &name).expect("session")
    }

    #[test]
    fn layout_is_bounded() {
        let l = Layout::new(256, 4096, MAX_STATUS_CAP).unwrap();
        assert_eq!(l.subfns_off, 128 + 256 * 256);
        assert_eq!(l.status_off % 128, 0);
        assert!(Layout::new(0, 0, 0).is_err());
        assert!(Layout::new(257, 0, 0).is_err());
        assert!(Layout::new(1, 4097, 0).is_err());
        assert!(Layout::new(1, 0, MAX_STATUS_CAP + 1).is_err());
        let small = Layout::new(1, 0, 5).unwrap();
        assert_eq!(small.total, 128 + 256 + 16 + 8);
    }

    #[test]
    fn names_are_checked() {
        assert!(check_name("a", 63).is_ok());
        assert!(check_name("", 63).is_err());
        assert!(check_name(&"x".repeat(64), 63).is_err());
        assert!(check_name("a\0b", 63).is_err());
        assert!(decode_name(3, b"abc\0", 63).is_ok());
        assert!(decode_name(0, b"abc", 63).is_err());
        assert!(decode_name(200, b"abc", 63).is_err());
        assert!(decode_name(2, &[0xff, 0xfe], 63).is_err());
    }

    #[test]
    fn garbage_slot_values_do_not_panic() {
        let s = session();
        let r = Registry::create(&s, "unit", 4, &["a"], 64).unwrap();
        let slot = r.slot_ref(1).unwrap();
        slot.state_gen.store(pack(7, 99), Ordering::Relaxed);
        slot.lp_state.store(1234, Ordering::Relaxed);
        slot.name_len.store(3, Ordering::Relaxed);
        for (i, b) in b"abc".iter().enumerate() {
            slot.name[i].store(*b, Ordering::Relaxed);
        }
        let v = r.slot(1).unwrap();
        assert_eq!(v.state, SlotState::Unknown(99));
        assert_eq!(v.lp_state, LpState::Unknown(1234));
        assert_eq!(v.generation, 7);
        // A garbage name length is an error, not a panic.
        slot.name_len.store(u32::MAX, Ordering::Relaxed);
        assert!(matches!(r.slot(1), Err(RegistryError::Corrupt(_))));
        // Invalid UTF-8.
        slot.name_len.store(2, Ordering::Relaxed);
        slot.name[0].store(0xff, Ordering::Relaxed);
        assert!(matches!(r.slot(1), Err(RegistryError::Corrupt(_))));
        // mark_dead recovers an unknown state.
        r.mark_dead(1).unwrap();
        assert_eq!(state_of(slot.state_gen.load(Ordering::Relaxed)), DEAD);
        // A garbage owner reads as unassigned; a garbage status len is an error.
        r.subfn_entry(0).unwrap().owner.store(77, Ordering::Relaxed);
        assert_eq!(r.subfn_owner(0), None);
        let (h, _) = r.status_parts();
        h.len.store(u32::MAX, Ordering::Relaxed);
        assert!(matches!(r.read_status(), Err(RegistryError::Corrupt(_))));
        // An odd seq that never ends gives Busy, not a hang.
        h.seq.store(1, Ordering::Relaxed);
        assert!(matches!(r.read_status(), Err(RegistryError::Busy(_))));
        // and a writer takes over from a writer that died mid-write.
        r.publish_status(b"ok").unwrap();
        assert_eq!(r.read_status().unwrap(), b"ok");
        // Garbage coordinator slot reads as no coordinator.
        r.header()
            .coordinator
            .store(5 << 32 | 1000, Ordering::Relaxed);
        assert_eq!(r.coordinator(), None);
        assert_eq!(r.coordinator_epoch(), 5);
    }

    #[test]
    fn claim_release_generation() {
        let s = session();
        let r = Registry::create(&s, "unit", 2, &[], 0).unwrap();
        let g1 = r.claim_slot(0, "m0", 10).unwrap();
        assert!(matches!(
            r.claim_slot(0, "m0", 10),
            Err(RegistryError::SlotTaken(0))
        ));
        r.release_slot(0, g1).unwrap();
        let g2 = r.claim_slot(0, "m0b", 11).unwrap();
        assert_eq!(g2, g1 + 1);
        // A stale generation cannot release the new holder.
        assert!(matches!(
            r.release_slot(0, g1),
            Err(RegistryError::WrongState { .. })
        ));
        r.set_stopping(0).unwrap();
        assert_eq!(r.slot(0).unwrap().state, SlotState::Stopping);
        r.release_slot(0, g2).unwrap();
        assert_eq!(r.slot(0).unwrap().state, SlotState::Dead);
        assert_eq!(r.slot(0).unwrap().name, "m0b");
        assert!(matches!(
            r.claim_slot(2, "x", 1),
            Err(RegistryError::NoSuchSlot { slot: 2, max: 2 })
        ));
        assert!(matches!(
            r.claim_slot(1, &"x".repeat(64), 1),
            Err(RegistryError::BadName { .. })
        ));
    }

    mod prop {
        use super::super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn decode_header_never_panics(
                magic_ok in any::<bool>(),
                version in prop_oneof![Just(REGISTRY_VERSION), any::<u32>()],
                init in prop_oneof![Just(REGISTRY_INIT), any::<u32>()],
                max_slots in prop_oneof![0u32..300, any::<u32>()],
                max_subfns in prop_oneof![0u32..5000, any::<u32>()],
                status_cap in prop_oneof![0u32..100_000, any::<u32>()],
                name_len in prop_oneof![0u32..80, any::<u32>()],
                name in proptest::array::uniform32(any::<u8>()),
                body_len in 0usize..(1 << 26),
            ) {
                let mut n = [0u8; 64];
                n[..32].copy_from_slice(&name);
                let raw = RawHeader {
                    magic: if magic_ok { REGISTRY_MAGIC } else { 0 },
                    version, init, max_slots, max_subfns, status_cap, name_len, name: n,
                };
                if let Ok((l, name)) = decode_header(&raw, body_len) {
                    prop_assert!(l.total <= body_len);
                    prop_assert!(l.max_slots >= 1 && l.max_slots <= MAX_SLOTS);
                    prop_assert!(l.max_subfns <= MAX_SUBFNS);
                    prop_assert!(!name.is_empty() && name.len() <= MAX_NAME_LEN);
                }
            }
        }
    }
}
