//! shmcollab runtime: the manager process and the LP API.
//!
//! * [`manager`]: one per LP (`shmcollab manager --slot N`): the
//!   communications module (registry discovery, rings per peer, per-link
//!   authentication, source stamping), the router, the LP's life cycle and
//!   the coordinator with its state reports.
//! * [`txn`]: the transaction server's parts: storage behind a trait, the
//!   write-ahead log with checkpoints and recovery.
//! * [`lp`]: [`Lp`], what an LP program uses to talk to its manager.
//! * [`link`]: the one read loop and the one writer of a ring, and the
//!   queue of messages batched under one tag.
//! * [`ctl`]: the typed control messages (manager <-> LP, manager <-> manager).
//! * [`report`]: the typed state report and the published collaboration state.
//! * [`txn`]: the transaction server's store, log records and messages.
//! * [`plan`]: what the supervisor decided, handed to every manager.
//! * [`wire`]: names, environment variables and child-process setup shared
//!   by all of them.
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

pub mod child;
pub mod ctl;
pub mod failpoint;
pub mod handover;
pub mod link;
pub mod lp;
pub mod lpview;
pub mod manager;
pub mod plan;
pub mod report;
pub mod sandbox;
pub mod txn;
pub mod wire;

pub use lp::{
    AttachError, CommitHandle, CorruptError, Lp, LpError, Message, MessageKind, OwnedTxn,
    StateError, Txn, TxnError, TxnMemoryStats,
};
