//! proptest strategies for sets, records, messages and stores.

use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;

use crate::txn::msg::{TxnReply, TxnRequest};
use crate::txn::record::Record;
use crate::txn::store::{ReadItem, ScanItem, Store, TxnSet, WriteItem};

pub fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 0..max)
}

pub fn set() -> impl Strategy<Value = TxnSet> {
    let read = (0u32..4, bytes(8), any::<u64>()).prop_map(|(subfn, key, version)| ReadItem {
        subfn,
        key,
        version,
    });
    let scan = (
        0u32..4,
        bytes(4),
        any::<u32>(),
        vec((bytes(8), any::<u64>()), 0..4),
    )
        .prop_map(|(subfn, prefix, limit, seen)| ScanItem {
            subfn,
            prefix,
            limit,
            seen,
        });
    let write = (0u32..4, bytes(8), option::of(bytes(16)))
        .prop_map(|(subfn, key, value)| WriteItem { subfn, key, value });
    (vec(read, 0..4), vec(scan, 0..3), vec(write, 0..4)).prop_map(|(reads, scans, writes)| TxnSet {
        reads,
        scans,
        writes,
    })
}

pub fn record() -> impl Strategy<Value = Record> {
    let writes = set().prop_map(|s| s.writes);
    prop_oneof![
        (any::<u64>(), any::<u64>(), writes).prop_map(|(txid, version, writes)| Record::Commit {
            txid,
            version,
            writes
        }),
        (any::<u64>(), any::<u32>(), set()).prop_map(|(txid, coordinator, set)| Record::Prepare {
            txid,
            coordinator,
            set
        }),
        (any::<u64>(), any::<bool>(), any::<u64>()).prop_map(|(txid, commit, version)| {
            Record::Decision {
                txid,
                commit,
                version,
            }
        }),
        (any::<u64>(), any::<u64>(), vec(any::<u32>(), 0..4), set()).prop_map(
            |(txid, version, participants, set)| Record::Staging {
                txid,
                version,
                participants,
                set
            }
        ),
        (any::<u32>(), any::<u64>()).prop_map(|(leader, below)| Record::Forget { leader, below }),
        any::<u64>().prop_map(|txid| Record::Finished { txid }),
    ]
}

pub fn request() -> impl Strategy<Value = TxnRequest> {
    prop_oneof![
        (any::<u32>(), bytes(8)).prop_map(|(subfn, key)| TxnRequest::Get { subfn, key }),
        (any::<u32>(), bytes(8), any::<u32>()).prop_map(|(subfn, prefix, limit)| {
            TxnRequest::Scan {
                subfn,
                prefix,
                limit,
            }
        }),
        set().prop_map(|set| TxnRequest::Commit { set }),
        (any::<u64>(), set()).prop_map(|(txid, set)| TxnRequest::CommitLocal { txid, set }),
        (any::<u64>(), set()).prop_map(|(txid, set)| TxnRequest::Prepare { txid, set }),
        (any::<u64>(), any::<bool>(), any::<u64>()).prop_map(|(txid, commit, finished_below)| {
            TxnRequest::Decide {
                txid,
                commit,
                finished_below,
            }
        }),
        any::<u64>().prop_map(|txid| TxnRequest::Outcome { txid }),
        any::<u64>().prop_map(|txid| TxnRequest::Probe { txid }),
        any::<u64>().prop_map(|below| TxnRequest::Forget { below }),
    ]
}

pub fn reply() -> impl Strategy<Value = TxnReply> {
    prop_oneof![
        (option::of(bytes(16)), any::<u64>())
            .prop_map(|(value, version)| TxnReply::Value { value, version }),
        vec((bytes(8), bytes(16), any::<u64>()), 0..4).prop_map(TxnReply::Entries),
        (any::<u64>(), any::<bool>()).prop_map(|(version, writes_carry_version)| {
            TxnReply::Committed {
                version,
                writes_carry_version,
            }
        }),
        ".{0,20}".prop_map(TxnReply::Conflict),
        ".{0,20}".prop_map(TxnReply::Failed),
        (any::<u64>(), any::<bool>()).prop_map(|(txid, yes)| TxnReply::Vote { txid, yes }),
        any::<u64>().prop_map(|txid| TxnReply::Decided { txid }),
        (any::<u64>(), option::of(any::<bool>()))
            .prop_map(|(txid, commit)| TxnReply::Outcome { txid, commit }),
        (any::<u64>(), any::<bool>())
            .prop_map(|(txid, prepared)| TxnReply::Probed { txid, prepared }),
    ]
}

/// A store hosting sub-functions 0..3, filled by committed transactions,
/// with some transactions left prepared (on disjoint keys).
pub fn store() -> impl Strategy<Value = Store> {
    let write = (0u32..3, bytes(6), option::of(bytes(12)))
        .prop_map(|(subfn, key, value)| WriteItem { subfn, key, value });
    (vec(vec(write, 1..4), 0..12), 0usize..4).prop_map(|(txns, pending)| {
        let mut s = Store::new();
        for f in 0..3 {
            s.host(f);
        }
        let n = txns.len() as u64;
        for (txid, writes) in (1..).zip(txns) {
            let set = TxnSet {
                writes,
                ..TxnSet::default()
            };
            s.prepare(txid, &set).expect("no other txn holds locks");
            s.decide(txid, true, txid);
        }
        // Left prepared, each on its own key.
        for i in 0..pending {
            let held = TxnSet {
                writes: vec![WriteItem {
                    subfn: (i % 3) as u32,
                    key: vec![0xff, i as u8],
                    value: Some(vec![1]),
                }],
                ..TxnSet::default()
            };
            s.prepare(n + 1 + i as u64, &held).expect("disjoint keys");
        }
        s
    })
}
