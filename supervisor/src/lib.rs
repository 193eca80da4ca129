//! shmcollab supervisor: config, partitioning, spawning, pidfd monitoring,
//! restart policies. Filled by later issues.
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

pub mod config;
pub mod launch;
pub mod status;
