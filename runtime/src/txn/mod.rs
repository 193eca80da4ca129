//! The transaction server's library parts: durable, serializable
//! transactions on per-sub-function key-value state (see "Transaction
//! server" in the design; the server itself is the manager's part
//! `manager/txn_server.rs`, the LP's side `lp/txn.rs`).
//!
//! * [`store`]: the keyspaces, optimistic validation and the locks of
//!   prepared transactions ([`locks`]), snapshots ([`snapshot`]);
//! * [`set`]: what a transaction read, scanned and writes;
//! * [`record`]: the write-ahead log's records;
//! * [`msg`]: the messages between LPs and managers;
//! * [`codec`]: the reader, the writer and the one decoding error they share;
//! * [`storage`]: the platform under the log (files, fdatasync, rename,
//!   directory sync) behind a trait, with the real file system and a
//!   fault-injecting in-memory one that builds crash images;
//! * [`wal`]: the group-committed write-ahead log, its checkpoints and its
//!   recovery.

pub mod codec;
pub mod locks;
pub mod msg;
pub mod record;
pub mod set;
pub mod snapshot;
pub mod storage;
pub mod store;
pub mod wal;

#[cfg(test)]
mod store_tests;
