//! Optimistic concurrency: lost updates, phantoms and prepared locks.

use crate::txn::store::{Conflict, ReadItem, ScanItem, Store, TxnSet, UnhostError, WriteItem};

fn store() -> Store {
    let mut s = Store::new();
    s.host(0);
    s.host(1);
    s
}

fn put(s: &mut Store, txid: u64, key: &[u8], value: &[u8], version: u64) {
    let set = TxnSet {
        writes: vec![write(key, value)],
        ..TxnSet::default()
    };
    s.prepare(txid, &set).unwrap();
    s.decide(txid, true, version);
}

fn write(key: &[u8], value: &[u8]) -> WriteItem {
    WriteItem {
        subfn: 0,
        key: key.to_vec(),
        value: Some(value.to_vec()),
    }
}

fn read(s: &Store, key: &[u8]) -> ReadItem {
    let (_, version) = s.get(0, key).unwrap();
    ReadItem {
        subfn: 0,
        key: key.to_vec(),
        version,
    }
}

fn scan(s: &Store, prefix: &[u8], limit: u32) -> ScanItem {
    let seen = s.scan(0, prefix, limit).unwrap();
    ScanItem {
        subfn: 0,
        prefix: prefix.to_vec(),
        limit,
        seen: seen.into_iter().map(|(k, _, v)| (k, v)).collect(),
    }
}

/// Read `key` and write `value` to it.
fn rmw(s: &Store, key: &[u8], value: &[u8]) -> TxnSet {
    TxnSet {
        reads: vec![read(s, key)],
        writes: vec![write(key, value)],
        ..TxnSet::default()
    }
}

fn locked(key: &[u8]) -> Conflict {
    Conflict::Locked {
        subfn: 0,
        key: key.to_vec(),
    }
}

#[test]
fn of_two_read_modify_writes_exactly_one_commits() {
    // One after the other: the second read an old version.
    let mut s = store();
    put(&mut s, 1, b"k", b"0", 1);
    let (a, b) = (rmw(&s, b"k", b"a"), rmw(&s, b"k", b"b"));
    s.prepare(2, &a).unwrap();
    s.decide(2, true, 2);
    let err = s.prepare(3, &b).unwrap_err();
    assert_eq!(
        err,
        Conflict::Changed {
            subfn: 0,
            key: b"k".to_vec()
        }
    );
    assert_eq!(s.get(0, b"k"), Ok((Some(b"a".to_vec()), 2)));

    // Both prepared before either is decided: the second finds the lock.
    let (a, b) = (rmw(&s, b"k", b"a2"), rmw(&s, b"k", b"b2"));
    s.prepare(4, &a).unwrap();
    assert_eq!(s.prepare(5, &b), Err(locked(b"k")));
    s.decide(4, true, 3);
    assert_eq!(
        s.prepare(5, &b),
        Err(Conflict::Changed {
            subfn: 0,
            key: b"k".to_vec()
        })
    );
}

#[test]
fn an_insert_under_a_scanned_prefix_is_a_phantom() {
    let mut s = store();
    put(&mut s, 1, b"a1", b"x", 1);
    put(&mut s, 2, b"a3", b"x", 2);
    let scanner = TxnSet {
        scans: vec![scan(&s, b"a", 10)],
        writes: vec![write(b"total", b"2")],
        ..TxnSet::default()
    };
    put(&mut s, 3, b"a2", b"y", 3);
    let err = s.prepare(4, &scanner).unwrap_err();
    assert_eq!(
        err,
        Conflict::Phantom {
            subfn: 0,
            prefix: b"a".to_vec()
        }
    );
    assert_eq!(s.get(0, b"total"), Ok((None, 0)));
    // A delete under the prefix is one too.
    let scanner = TxnSet {
        scans: vec![scan(&s, b"a", 10)],
        ..TxnSet::default()
    };
    let del = TxnSet {
        writes: vec![WriteItem {
            subfn: 0,
            key: b"a1".to_vec(),
            value: None,
        }],
        ..TxnSet::default()
    };
    s.prepare(5, &del).unwrap();
    s.decide(5, true, 4);
    assert!(matches!(
        s.prepare(6, &scanner),
        Err(Conflict::Phantom { .. })
    ));
}

#[test]
fn a_limited_scan_covers_only_what_it_saw() {
    let mut s = store();
    for (i, k) in [b"a1", b"a3", b"a5"].into_iter().enumerate() {
        put(&mut s, i as u64 + 1, k, b"x", i as u64 + 1);
    }
    let first_two = TxnSet {
        scans: vec![scan(&s, b"a", 2)],
        ..TxnSet::default()
    };
    // Past the last key seen: not observed, no conflict, no lock.
    put(&mut s, 10, b"a9", b"x", 10);
    s.prepare(11, &first_two).unwrap();
    put(&mut s, 12, b"a4", b"x", 12);
    // Before it: locked while prepared, a phantom once committed.
    let insert = TxnSet {
        writes: vec![write(b"a2", b"x")],
        ..TxnSet::default()
    };
    assert_eq!(s.prepare(13, &insert), Err(locked(b"a2")));
    s.decide(11, true, 13);
    s.prepare(13, &insert).unwrap();
    s.decide(13, true, 14);
    assert!(matches!(
        s.prepare(14, &first_two),
        Err(Conflict::Phantom { .. })
    ));
}

#[test]
fn a_prepared_transaction_holds_its_keys_until_decided() {
    let mut s = store();
    put(&mut s, 1, b"k", b"0", 1);
    put(&mut s, 2, b"r", b"0", 2);
    let holder = TxnSet {
        reads: vec![read(&s, b"r")],
        scans: vec![scan(&s, b"p", 10)],
        writes: vec![write(b"k", b"1")],
    };
    s.prepare(3, &holder).unwrap();
    let reader = TxnSet {
        reads: vec![read(&s, b"k")],
        ..TxnSet::default()
    };
    let scanner = TxnSet {
        scans: vec![scan(&s, b"", 10)],
        ..TxnSet::default()
    };
    let writer = TxnSet {
        writes: vec![write(b"r", b"1")],
        ..TxnSet::default()
    };
    let inserter = TxnSet {
        writes: vec![write(b"p1", b"1")],
        ..TxnSet::default()
    };
    assert_eq!(s.prepare(4, &reader), Err(locked(b"k")));
    assert_eq!(s.prepare(4, &scanner), Err(locked(b"k")));
    assert_eq!(s.prepare(4, &writer), Err(locked(b"r")));
    assert_eq!(s.prepare(4, &inserter), Err(locked(b"p1")));
    // Reads share: another reader of r goes through.
    let co_reader = TxnSet {
        reads: vec![read(&s, b"r")],
        ..TxnSet::default()
    };
    s.prepare(5, &co_reader).unwrap();
    s.decide(5, true, 3);
    assert_eq!(s.prepared().len(), 1);
    // Aborted: everything it held is free and nothing changed.
    s.decide(3, false, 0);
    assert!(s.prepared().is_empty());
    for set in [&reader, &scanner, &writer] {
        s.prepare(6, set).unwrap();
        s.decide(6, false, 0);
    }
}

#[test]
fn deciding_abort_changes_nothing() {
    let mut s = store();
    put(&mut s, 1, b"k", b"0", 1);
    let before = s.encode_snapshot();
    let mut set = rmw(&s, b"k", b"1");
    set.writes.push(WriteItem {
        subfn: 1,
        key: b"new".to_vec(),
        value: None,
    });
    s.prepare(2, &set).unwrap();
    assert_ne!(s.encode_snapshot(), before);
    s.decide(2, false, 9);
    assert_eq!(s.encode_snapshot(), before);
    assert_eq!(s.max_version(), 1);
    // A decision for a txid not prepared here is a no-op too.
    s.decide(77, true, 10);
    assert_eq!(s.encode_snapshot(), before);
}

#[test]
fn only_the_hosted_part_is_validated_and_kept() {
    let mut s = store();
    let mut set = rmw(&s, b"k", b"1");
    set.reads.push(ReadItem {
        subfn: 9,
        key: b"k".to_vec(),
        version: 12345,
    });
    set.writes.push(WriteItem {
        subfn: 9,
        key: b"k".to_vec(),
        value: None,
    });
    let hosted = s.prepare(1, &set).unwrap();
    assert_eq!(hosted, rmw(&s, b"k", b"1"));
    assert_eq!(s.prepared(), vec![(1, hosted.clone())]);
    // Resent: the same answer; another set under the same txid: refused.
    assert_eq!(s.prepare(1, &set), Ok(hosted));
    assert_eq!(
        s.prepare(1, &TxnSet::default()),
        Err(Conflict::AlreadyPrepared { txid: 1 })
    );
    // Nothing hosted: nothing kept.
    let foreign = set.filter(|f| f == 9);
    assert_eq!(s.prepare(2, &foreign), Ok(TxnSet::default()));
    assert_eq!(s.prepared().len(), 1);
    assert_eq!(s.get(9, b"k"), Err(Conflict::NotHosted { subfn: 9 }));
    assert_eq!(s.scan(9, b"", 1), Err(Conflict::NotHosted { subfn: 9 }));
}

#[test]
fn moving_a_sub_function_waits_for_its_prepared_transactions() {
    let mut s = store();
    put(&mut s, 1, b"k", b"v", 40);
    let set = rmw(&s, b"k", b"w");
    s.restore_prepared(2, set.clone());
    assert_eq!(s.prepared(), vec![(2, set)]);
    assert_eq!(
        s.unhost(0),
        Err(UnhostError::Prepared { subfn: 0, txid: 2 })
    );
    assert_eq!(s.unhost(7), Err(UnhostError::NotHosted { subfn: 7 }));
    let bytes = s.snapshot_of(0);
    assert!(
        s.load_subfn(&bytes).is_err(),
        "loaded over a prepared transaction's keys"
    );
    s.decide(2, false, 0);
    s.unhost(0).unwrap();
    let mut other = Store::new();
    assert_eq!(other.load_subfn(&bytes), Ok(0));
    assert_eq!(other.get(0, b"k"), Ok((Some(b"v".to_vec()), 40)));
    // The destination's commit counter must stay above what readers saw.
    assert_eq!(other.max_version(), 40);
}
