//! The transaction server's library parts (issue 9): durable, serializable
//! transactions on per-sub-function key-value state.
//!
//! * [`storage`]: the platform under the log (files, fdatasync, rename,
//!   directory sync) behind a trait, with the real file system and a
//!   fault-injecting in-memory one that builds crash images.
//! * [`wal`]: the group-committed write-ahead log, its checkpoints and its
//!   recovery.

pub mod storage;
pub mod wal;
