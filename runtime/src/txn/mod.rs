//! The transaction server's parts: durable, serializable transactions on
//! per-sub-function key-value state (see "Transaction server" in the
//! design).
//!
//! * [`store`]: the keyspaces, optimistic validation and the locks of
//!   prepared transactions ([`locks`]), snapshots ([`snapshot`]);
//! * [`set`]: what a transaction read, scanned and writes;
//! * [`record`]: the write-ahead log's records;
//! * [`msg`]: the messages between LPs and managers;
//! * [`codec`]: the reader, the writer and the one decoding error they share.

pub mod codec;
pub mod locks;
pub mod msg;
pub mod record;
pub mod set;
pub mod snapshot;
pub mod store;

#[cfg(test)]
mod store_tests;
