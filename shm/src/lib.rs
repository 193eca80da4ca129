//! Shared memory for shmcollab: sessions and segments, single-producer
//! single-consumer frame rings, doorbells (futex words), the registry, and
//! authenticated frames.
//!
//! Everything read from shared memory is treated as untrusted input: lengths
//! are bounded, indices validated, and errors are returned, never panics.
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]
#![warn(missing_docs)]

pub mod doorbell;
pub mod handover;
pub mod load;
pub mod ring;
pub(crate) mod sync;

#[cfg(not(loom))]
pub mod auth;
#[cfg(not(loom))]
pub mod batch;
#[cfg(not(loom))]
pub mod frame;
#[cfg(not(loom))]
pub mod registry;
#[cfg(not(loom))]
pub mod segment;

pub use doorbell::{Doorbell, WaitStrategy};
pub use load::LoadMode;
#[cfg(not(loom))]
pub use segment::{OpenError, Segment, SegmentKind, Session};
