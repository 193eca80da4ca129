//! shmcollab: a one-host runtime for collaborations of processes that talk
//! through shared memory. This crate re-exports the parts.
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

pub use shmcollab_runtime as runtime;
pub use shmcollab_shm as shm;
pub use shmcollab_supervisor as supervisor;
