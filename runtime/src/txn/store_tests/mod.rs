//! Tests of the store, its codecs and its concurrency control.

mod arb;
mod codecs;
mod model;
mod occ;
mod serial;
