//! shmcollab runtime: the manager (communications module, router,
//! transaction server, coordinator) and the LP API.
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

pub mod link;
pub mod lp;
pub mod manager;
pub mod plan;
pub mod wire;

pub use lp::{Lp, LpError, Message, MessageKind};
