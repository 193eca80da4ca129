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
//!     16    4 max_slots      1..=1024
//!     20    4 max_subfns     0..=4096 (= number of sub-functions)
//!     24    4 status_cap     0..=MAX_STATUS_CAP bytes of status data
//!     28    4 secure         1 if frames must be authenticated, else 0
//!     32    8 coordinator    (epoch << 32) | slot, slot u32::MAX = none
//!     40    8 changes        Doorbell: the change counter
//!     48    4 name_len       length of the collaboration name, 1..=63
//!     52   64 name           UTF-8, zero padded
//!    116    4 load_mode      LoadMode the supervisor chose: 0 unset, 1 compact, 2 spread, 3 paired
//!    120    8 reserved
//!
//! Slot (384 bytes, align 128), max_slots of them at offset 128
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
//!    100    4 made           bumped by a peer that made a ring this manager
//!                            writes (answer to a ring request)
//!    104    8 lp_msgs        messages the manager took from its LP, summed
//!    112    8 lp_own_txn     of those, transaction frames its own manager served
//!    120    8 reserved
//!    128    8 doorbell       Doorbell the slot's manager sleeps on
//!    136   56 reserved
//!    192    8 lp_wait_ns     nanoseconds the LP spent waiting in the LP API
//!                            (written by the LP; read by the supervisor's
//!                            placement governor; its own cache line)
//!    200   56 reserved
//!    256  128 requests       ring requests: bit x (word x / 64, bit x % 64)
//!                            set by manager x, which has frames for this
//!                            manager and no ring to write them into
//!
//! Sub-function entry (64 bytes), max_subfns of them at 128 + 384 * max_slots
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
//!
//! # Parts
//!
//! - `layout`: the `#[repr(C)]` structures, their offsets and compile-time
//!   assertions, and the one decoder of the untrusted header;
//! - `slots`: manager slots (claim, release, mark dead, heartbeat, LP state);
//! - `subfns`: the sub-function assignment table;
//! - `requests`: ring requests between managers (rings are made when a
//!   pair first talks);
//! - `coordinator`: the coordinator epoch;
//! - `status`: the seqlocked status area;
//! - `load`: the load mode and the message counts the governor reads;
//! - `error`: [`RegistryError`].
//!
//! This file holds the [`Registry`] handle: creating and opening the segment
//! and the accessors of the header.

mod coordinator;
mod error;
mod heal;
mod layout;
mod load;
mod requests;
mod slots;
mod status;
mod subfns;

pub use error::RegistryError;
pub use heal::Golden;
pub use layout::{
    MAX_NAME_LEN, MAX_SLOTS, MAX_STATUS_CAP, MAX_SUBFNS, MAX_SUBFN_NAME_LEN, NO_SLOT,
    REGISTRY_INIT, REGISTRY_MAGIC, REGISTRY_VERSION,
};
pub use slots::{monotonic_ms, monotonic_us, LpState, SlotState, SlotView};

use crate::doorbell::Doorbell;
use crate::segment::{OpenError, Segment, SegmentKind, Session};
use layout::{check_name, init_body, read_header, Header, Layout, HEADER_LEN};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use subfns::check_subfn_names;

/// Name of the registry segment in a session.
pub const SEGMENT_NAME: &str = "registry";
/// Default size of the status area.
pub const DEFAULT_STATUS_CAP: usize = 64 * 1024;
/// Attempts of a reader before it reports [`RegistryError::Busy`].
const READ_RETRIES: u32 = 10_000;

/// What a handle caches once at create or open: the validated layout and
/// the immutable names, so that another process changing them later cannot
/// move an index out of bounds.
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
        let n_subfns = check_subfn_names(subfns)?;
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
        let (layout, collab_name) = read_header(h, body_len).map_err(corrupt)?;
        // A handle without names yet, to reach the entries.
        let probe = Registry {
            seg: seg.clone(),
            meta: Arc::new(Meta {
                layout,
                collab_name: collab_name.clone(),
                subfn_names: Vec::new(),
            }),
        };
        let names = probe.read_subfn_names(corrupt)?;
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
}

/// A fresh session under the temp dir with a name unique to this test run.
#[cfg(test)]
fn test_session() -> Session {
    use std::sync::atomic::AtomicUsize;
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = format!("regunit-{}-{n}", std::process::id());
    Session::create_in(&std::env::temp_dir(), &name).expect("session")
}
