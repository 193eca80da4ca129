//! The registry's error type.
//!
//! One enum for every registry operation: it is part of the public API
//! (`shmcollab_shm::registry::RegistryError`) that the runtime and the
//! supervisor match on, so it stays whole here rather than being split per
//! operation.

use super::slots::SlotState;
use crate::segment::{CreateError, OpenError};

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
