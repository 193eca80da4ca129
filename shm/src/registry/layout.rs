//! The registry's byte layout: the `#[repr(C)]` structures that live in the
//! segment body, the offsets derived from the header's counts, and the one
//! decoder of the (untrusted) header.
//!
//! The layout is drawn byte by byte in the [module doc](super); the
//! compile-time assertions below keep the structures and that drawing in
//! step. Everything another process can write is decoded here once, when the
//! registry is opened, so that the other parts index with validated counts.

use super::coordinator::pack_coordinator;
use crate::doorbell::Doorbell;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering};

/// `b"SHMCREG1"` read as a little-endian u64.
pub const REGISTRY_MAGIC: u64 = u64::from_le_bytes(*b"SHMCREG1");
/// Version of the registry layout.
pub const REGISTRY_VERSION: u32 = 2;
/// Value of the header's `init` field once the body is written (`"INIT"`).
pub const REGISTRY_INIT: u32 = u32::from_le_bytes(*b"INIT");
/// Most manager slots a registry can have.
pub const MAX_SLOTS: u32 = 1024;
/// Most sub-functions a registry can have.
pub const MAX_SUBFNS: u32 = 4096;
/// Longest collaboration or manager name, in bytes.
pub const MAX_NAME_LEN: usize = 63;
/// Longest sub-function name, in bytes.
pub const MAX_SUBFN_NAME_LEN: usize = 55;
/// Largest status area.
pub const MAX_STATUS_CAP: usize = 16 * 1024 * 1024;
/// The "no slot" value of the coordinator word and of sub-function owners.
pub const NO_SLOT: u32 = u32::MAX;

pub(super) const HEADER_LEN: usize = 128;
pub(super) const SLOT_LEN: usize = 384;
/// u64 words of a slot's ring request bitmap: one bit per possible slot.
pub(super) const REQUEST_WORDS: usize = MAX_SLOTS as usize / 64;
pub(super) const SUBFN_LEN: usize = 64;
pub(super) const STATUS_HEADER_LEN: usize = 16;

/// The registry header, at body offset 0.
#[repr(C, align(128))]
pub(super) struct Header {
    /// Immutable after create.
    pub(super) magic: AtomicU64,
    /// Immutable after create.
    pub(super) version: AtomicU32,
    /// REGISTRY_INIT after create; immutable after.
    pub(super) init: AtomicU32,
    /// Immutable after create; validated and cached by `open`.
    pub(super) max_slots: AtomicU32,
    /// Immutable after create; validated and cached by `open`.
    pub(super) max_subfns: AtomicU32,
    /// Immutable after create; validated and cached by `open`.
    pub(super) status_cap: AtomicU32,
    /// 0 or 1. Publishes nothing: Relaxed on both sides.
    pub(super) secure: AtomicU32,
    /// `(epoch << 32) | slot`; the epoch only grows (by one per successful
    /// `claim_coordinator`), slot is NO_SLOT or the holder's slot.
    /// SYNC: changed by CAS with AcqRel, loaded with Acquire: a new
    /// coordinator sees everything its predecessor did before resigning.
    pub(super) coordinator: AtomicU64,
    /// Change counter: notified after every change to the registry (other
    /// than heartbeats and status); its own Release/Acquire pairing is
    /// described in `crate::doorbell`.
    pub(super) changes: Doorbell,
    /// Immutable after create.
    pub(super) name_len: AtomicU32,
    /// Immutable after create.
    pub(super) name: [AtomicU8; 64],
    /// The collaboration's [`LoadMode`](crate::load::LoadMode), set by the
    /// supervisor's placement governor, read by managers at every turn.
    /// Untrusted (the supervisor writes it again every period). Publishes
    /// nothing: Relaxed on both sides.
    pub(super) load_mode: AtomicU32,
    _reserved: [AtomicU32; 2],
}
const _: () = assert!(std::mem::size_of::<Header>() == HEADER_LEN);
const _: () = assert!(std::mem::align_of::<Header>() == 128);
const _: () = assert!(std::mem::offset_of!(Header, coordinator) == 32);
const _: () = assert!(std::mem::offset_of!(Header, changes) == 40);
const _: () = assert!(std::mem::offset_of!(Header, name_len) == 48);
const _: () = assert!(std::mem::offset_of!(Header, name) == 52);
// `heal::LOAD_MODE` skips these bytes.
const _: () = assert!(std::mem::offset_of!(Header, load_mode) == 116);

/// One manager slot.
#[repr(C, align(128))]
pub(super) struct Slot {
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
    pub(super) state_gen: AtomicU64,
    /// Manager pid; written while CLAIMING. Relaxed (published by state_gen).
    pub(super) pid: AtomicU32,
    /// LP pid, 0 if none. Relaxed; published by the Release store of lp_state.
    pub(super) lp_pid: AtomicU32,
    /// LpState as u32.
    /// SYNC: stored with Release after lp_pid; loaded with Acquire in `slot`.
    pub(super) lp_state: AtomicU32,
    /// Restart count of the LP. Publishes nothing: Relaxed.
    pub(super) restarts: AtomicU32,
    /// CLOCK_MONOTONIC ms of the last heartbeat. Publishes nothing: Relaxed.
    pub(super) heartbeat_ms: AtomicU64,
    /// Manager name length; written while CLAIMING (Relaxed, published by
    /// state_gen).
    pub(super) name_len: AtomicU32,
    /// Manager name bytes; as name_len.
    pub(super) name: [AtomicU8; 64],
    /// Bumped by a peer manager after it made a ring this slot's manager
    /// writes (the answer to a ring request). Untrusted: a change only makes
    /// the manager look again. Publishes nothing (the ring's segment is
    /// published by its own ready flag): Relaxed.
    pub(super) made: AtomicU32,
    /// Messages the slot's manager took from its LP (a batch counts each of its messages), summed (written by
    /// the manager, read by the placement governor as the collaboration's
    /// load). Publishes nothing: Relaxed.
    pub(super) lp_msgs: AtomicU64,
    /// Of those, the transaction frames its own manager served (the LP's
    /// requests to it), summed (written by the manager, read by the
    /// governor: a collaboration whose traffic is mostly that is paired).
    /// Publishes nothing: Relaxed.
    pub(super) lp_own_txn: AtomicU64,
    _reserved0b: [AtomicU32; 2],
    /// The doorbell of this slot's manager.
    pub(super) doorbell: Doorbell,
    _reserved1: [AtomicU32; 14],
    /// Nanoseconds the LP spent waiting for input in the LP API, summed.
    /// Written by the LP, untrusted. Publishes nothing: Relaxed.
    pub(super) lp_wait_ns: AtomicU64,
    _reserved2: [AtomicU32; 14],
    /// Ring requests: bit `x` set by manager `x` that has frames for this
    /// slot's manager and no ring to write them into. Set with `fetch_or`,
    /// taken with `swap(0)` by this slot's manager. Untrusted: a bit only
    /// makes the manager look at slot `x`. Publishes nothing: Relaxed.
    pub(super) requests: [AtomicU64; REQUEST_WORDS],
}
const _: () = assert!(std::mem::size_of::<Slot>() == SLOT_LEN);
const _: () = assert!(std::mem::align_of::<Slot>() == 128);
const _: () = assert!(std::mem::offset_of!(Slot, heartbeat_ms) == 24);
const _: () = assert!(std::mem::offset_of!(Slot, name) == 36);
const _: () = assert!(std::mem::offset_of!(Slot, lp_msgs) == 104);
const _: () = assert!(std::mem::offset_of!(Slot, lp_own_txn) == 112);
const _: () = assert!(std::mem::offset_of!(Slot, doorbell) == 128);
const _: () = assert!(std::mem::offset_of!(Slot, lp_wait_ns) == 192);
const _: () = assert!(std::mem::offset_of!(Slot, made) == 100);
const _: () = assert!(std::mem::offset_of!(Slot, requests) == 256);
const _: () = assert!(REQUEST_WORDS * 8 == 128);

/// One sub-function table entry.
#[repr(C)]
pub(super) struct SubfnEntry {
    /// Immutable after create; validated and cached by `open`.
    pub(super) name_len: AtomicU8,
    /// Immutable after create; validated and cached by `open`.
    pub(super) name: [AtomicU8; MAX_SUBFN_NAME_LEN],
    /// Slot index of the owner, NO_SLOT if none.
    /// SYNC: swapped with AcqRel by the coordinator, loaded with Acquire.
    pub(super) owner: AtomicU32,
    /// Bumped (Release) after each owner change; loaded with Acquire.
    pub(super) version: AtomicU32,
}
const _: () = assert!(std::mem::size_of::<SubfnEntry>() == SUBFN_LEN);
const _: () = assert!(std::mem::align_of::<SubfnEntry>() == 4);
const _: () = assert!(std::mem::offset_of!(SubfnEntry, owner) == 56);

/// Head of the status area; the data words follow.
#[repr(C)]
pub(super) struct StatusHeader {
    /// Seqlock counter: odd while a writer is writing.
    /// SYNC: the writer's CAS to odd is followed by a Release fence before the
    /// data stores; its store back to even is Release. The reader loads it
    /// with Acquire, copies, issues an Acquire fence and re-loads it.
    pub(super) seq: AtomicU64,
    /// Bytes of data in use; untrusted, bounded by status_cap on read.
    pub(super) len: AtomicU32,
    _reserved: AtomicU32,
}
const _: () = assert!(std::mem::size_of::<StatusHeader>() == STATUS_HEADER_LEN);
const _: () = assert!(std::mem::align_of::<StatusHeader>() == 8);

/// Offsets and counts of a registry, derived from validated header values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Layout {
    pub(super) max_slots: u32,
    pub(super) max_subfns: u32,
    pub(super) status_cap: usize,
    pub(super) subfns_off: usize,
    pub(super) status_off: usize,
    pub(super) total: usize,
}

pub(super) fn round_up(n: usize, to: usize) -> usize {
    n.div_ceil(to) * to
}

impl Layout {
    /// The layout for these counts, or why they are out of range.
    pub(super) fn new(
        max_slots: u32,
        max_subfns: u32,
        status_cap: usize,
    ) -> Result<Layout, String> {
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

    /// Body offset of slot `slot`; in bounds if `slot < max_slots`.
    pub(super) fn slot_off(slot: u32) -> usize {
        HEADER_LEN + SLOT_LEN * slot as usize
    }

    /// Body offset of sub-function entry `index`; in bounds if
    /// `index < max_subfns`.
    pub(super) fn subfn_off(&self, index: usize) -> usize {
        self.subfns_off + SUBFN_LEN * index
    }

    /// Number of u64 words of status data after the status header.
    pub(super) fn status_words(&self) -> usize {
        round_up(self.status_cap, 8) / 8
    }
}

/// Check a collaboration or manager name: 1..=`max` bytes, no NUL.
pub(super) fn check_name(name: &str, max: usize) -> Result<(), String> {
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
pub(super) fn decode_name(len: usize, bytes: &[u8], max: usize) -> Result<String, String> {
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

impl RawHeader {
    /// Copy the immutable fields out of the shared header.
    fn load(h: &Header) -> RawHeader {
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
        raw
    }
}

/// Copy the header out of shared memory and validate it against the body
/// length: the layout and the collaboration name, or why they are refused.
pub(super) fn read_header(h: &Header, body_len: usize) -> Result<(Layout, String), String> {
    decode_header(&RawHeader::load(h), body_len)
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

/// Write a fresh registry into a zeroed body.
///
/// # Safety
///
/// `body` must point to at least `layout.total` zeroed, writable bytes,
/// aligned to 128, that no other thread or process accesses yet.
pub(super) unsafe fn init_body(body: *mut u8, layout: &Layout, collab_name: &str, subfns: &[&str]) {
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
    h.coordinator
        .store(pack_coordinator(0, NO_SLOT), Ordering::Relaxed);
    h.name_len
        .store(collab_name.len() as u32, Ordering::Relaxed);
    for (d, s) in h.name.iter().zip(collab_name.bytes()) {
        d.store(s, Ordering::Relaxed);
    }
    for (i, name) in subfns.iter().enumerate() {
        let off = layout.subfn_off(i);
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

    #[test]
    fn layout_is_bounded() {
        let l = Layout::new(1024, 4096, MAX_STATUS_CAP).unwrap();
        assert_eq!(l.subfns_off, 128 + 384 * 1024);
        assert_eq!(l.status_off % 128, 0);
        assert!(Layout::new(0, 0, 0).is_err());
        assert!(Layout::new(1025, 0, 0).is_err());
        assert!(Layout::new(1, 4097, 0).is_err());
        assert!(Layout::new(1, 0, MAX_STATUS_CAP + 1).is_err());
        let small = Layout::new(1, 0, 5).unwrap();
        assert_eq!(small.total, 128 + 384 + 16 + 8);
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

    mod prop {
        use super::super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn decode_header_never_panics(
                magic_ok in any::<bool>(),
                version in prop_oneof![Just(REGISTRY_VERSION), any::<u32>()],
                init in prop_oneof![Just(REGISTRY_INIT), any::<u32>()],
                max_slots in prop_oneof![0u32..1100, any::<u32>()],
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
