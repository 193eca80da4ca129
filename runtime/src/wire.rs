//! Names and small formats shared by the supervisor, the managers and the
//! LPs: segment names, environment variables, endpoint ids, control ops.

use shmcollab_shm::auth::Endpoint;

/// Environment variables the manager sets for its LP (read by [`crate::Lp::connect`]).
pub mod env {
    /// The session directory.
    pub const SESSION: &str = "SHMCOLAB_SESSION";
    /// The LP's registry slot.
    pub const SLOT: &str = "SHMCOLAB_SLOT";
    /// The LP's name.
    pub const NAME: &str = "SHMCOLAB_NAME";
    /// Segment name of the manager -> LP ring.
    pub const RING_IN: &str = "SHMCOLAB_RING_IN";
    /// Segment name of the LP -> manager ring.
    pub const RING_OUT: &str = "SHMCOLAB_RING_OUT";
    /// File descriptor from which the LP reads its two link keys (32 bytes:
    /// LP -> manager, then manager -> LP); absent when `secure = false`.
    pub const KEY_FD: &str = "SHMCOLAB_KEY_FD";
    /// Sub-functions the LP hosts, comma-separated.
    pub const SUBFNS: &str = "SHMCOLAB_SUBFNS";
}

/// File descriptor number on which a child finds its keys.
pub const KEY_FD: i32 = 3;

/// Frame flag: `dst` is an LP slot, not a sub-function index.
pub const FLAG_DST_LP: u16 = 1;

/// Control operations (first payload byte of a CONTROL frame, LP -> manager).
pub mod ctl {
    /// The LP is ready.
    pub const READY: u8 = 1;
    /// Custom state: `key \0 value`.
    pub const REPORT: u8 = 2;
}

/// Endpoint id of manager `slot` (for key derivation).
pub fn manager_endpoint(slot: u32, generation: u32) -> Endpoint {
    Endpoint {
        id: slot,
        generation,
    }
}

/// Endpoint id of the LP of slot `slot`; its generation combines the
/// manager's generation and the LP's restart count, so both a restarted LP
/// and a restarted manager get fresh keys.
pub fn lp_endpoint(slot: u32, manager_gen: u32, lp_gen: u32) -> Endpoint {
    Endpoint {
        id: 0x1000_0000 | slot,
        generation: (manager_gen << 16) ^ lp_gen,
    }
}

/// Ring from manager to its LP.
pub fn lp_in_ring(slot: u32, manager_gen: u32) -> String {
    format!("lp{slot}.g{manager_gen}.in")
}

/// Ring from the LP to its manager.
pub fn lp_out_ring(slot: u32, manager_gen: u32) -> String {
    format!("lp{slot}.g{manager_gen}.out")
}

/// Ring from manager `from` to manager `to` (created by `to`, the consumer).
pub fn peer_ring(from: u32, from_gen: u32, to: u32, to_gen: u32) -> String {
    format!("m{from}.g{from_gen}-m{to}.g{to_gen}")
}
