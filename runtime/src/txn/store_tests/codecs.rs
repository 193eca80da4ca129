//! Round trips of records, messages and snapshots; garbage, truncations and
//! corruptions are refused without a panic.

use proptest::prelude::*;

use super::arb;
use crate::txn::codec::{DecodeError, Writer, MAX_KEY, MAX_VALUE};
use crate::txn::msg::{TxnReply, TxnRequest};
use crate::txn::record::Record;
use crate::txn::store::{Store, TxnSet, WriteItem};

/// Every strict prefix of `b` is refused by `decode`.
fn prefixes_refused<T: std::fmt::Debug>(
    b: &[u8],
    decode: impl Fn(&[u8]) -> Result<T, DecodeError>,
) {
    for n in 0..b.len() {
        assert!(
            decode(&b[..n]).is_err(),
            "prefix of {n} of {} bytes decoded",
            b.len()
        );
    }
}

/// A sub-function snapshot with the given body after the header, sealed
/// with a correct CRC.
fn sealed(magic: &[u8; 8], max_version: u64, body: &[u8]) -> Vec<u8> {
    let mut w = Writer::new();
    w.raw(magic);
    w.u32(1);
    w.u64(max_version);
    w.raw(body);
    let mut b = w.finish();
    let crc = crc32c::crc32c(&b);
    b.extend_from_slice(&crc.to_le_bytes());
    b
}

/// A section holding `entries` as given (no order check on the way out).
fn section(subfn: u32, entries: &[(&[u8], &[u8], u64)]) -> Vec<u8> {
    let mut body = Writer::new();
    body.u64(entries.len() as u64);
    for (k, v, ver) in entries {
        body.bytes(k);
        body.bytes(v);
        body.u64(*ver);
    }
    let body = body.finish();
    let mut w = Writer::new();
    w.u32(subfn);
    w.u64(body.len() as u64);
    w.raw(&body);
    w.finish()
}

proptest! {
    #[test]
    fn records_round_trip(rec in arb::record()) {
        let b = rec.encode();
        prop_assert_eq!(Record::decode(&b), Ok(rec));
        prefixes_refused(&b, Record::decode);
    }

    #[test]
    fn requests_round_trip(req in arb::request()) {
        let b = req.encode();
        prop_assert_eq!(TxnRequest::decode(&b), Ok(req));
        prefixes_refused(&b, TxnRequest::decode);
    }

    #[test]
    fn replies_round_trip(reply in arb::reply()) {
        let b = reply.encode();
        prop_assert_eq!(TxnReply::decode(&b), Ok(reply));
        prefixes_refused(&b, TxnReply::decode);
    }

    #[test]
    fn snapshots_round_trip(store in arb::store()) {
        let b = store.encode_snapshot();
        let back = Store::decode_snapshot(&b).unwrap();
        prop_assert_eq!(back.encode_snapshot(), b.clone());
        prop_assert_eq!(back.prepared(), store.prepared());
        prop_assert_eq!(back.max_version(), store.max_version());
        prefixes_refused(&b, Store::decode_snapshot);
        for f in 0..3 {
            let one = store.snapshot_of(f);
            let mut other = Store::new();
            prop_assert_eq!(other.load_subfn(&one), Ok(f));
            prop_assert_eq!(other.scan(f, b"", u32::MAX), store.scan(f, b"", u32::MAX));
            prefixes_refused(&one, |b| Store::new().load_subfn(b));
        }
    }

    #[test]
    fn a_flipped_snapshot_byte_is_refused(store in arb::store(), at in any::<prop::sample::Index>(), bit in 0u8..8) {
        let mut b = store.encode_snapshot();
        let i = at.index(b.len());
        b[i] ^= 1 << bit;
        prop_assert!(Store::decode_snapshot(&b).is_err());
    }

    #[test]
    fn garbage_never_panics(b in arb::bytes(200)) {
        let _ = Record::decode(&b);
        let _ = TxnRequest::decode(&b);
        let _ = TxnReply::decode(&b);
        let _ = Store::decode_snapshot(&b);
        let _ = Store::new().load_subfn(&b);
        // The same garbage behind a valid header and CRC reaches the parser.
        let _ = Store::decode_snapshot(&sealed(b"SHMCTXST", 9, &b));
        let _ = Store::new().load_subfn(&sealed(b"SHMCTXSF", 9, &b));
    }

    #[test]
    fn mutated_encodings_never_panic(rec in arb::record(), req in arb::request(), at in any::<prop::sample::Index>(), byte in any::<u8>()) {
        for mut b in [rec.encode(), req.encode()] {
            let i = at.index(b.len());
            b[i] = byte;
            let _ = Record::decode(&b);
            let _ = TxnRequest::decode(&b);
            let _ = TxnReply::decode(&b);
        }
    }
}

#[test]
fn trailing_bytes_and_unknown_tags_are_refused() {
    let mut b = Record::Decision {
        txid: 1,
        commit: true,
        version: 2,
    }
    .encode();
    b.push(0);
    assert_eq!(Record::decode(&b), Err(DecodeError::Trailing { extra: 1 }));
    assert!(matches!(
        Record::decode(&[9]),
        Err(DecodeError::BadTag { tag: 9, .. })
    ));
    assert!(matches!(
        TxnRequest::decode(&[0]),
        Err(DecodeError::BadTag { tag: 0, .. })
    ));
    assert!(matches!(
        TxnReply::decode(&[99]),
        Err(DecodeError::BadTag { tag: 99, .. })
    ));
    let mut outcome = TxnReply::Outcome {
        txid: 3,
        commit: None,
    }
    .encode();
    *outcome.last_mut().unwrap() = 3;
    assert!(matches!(
        TxnReply::decode(&outcome),
        Err(DecodeError::BadTag { tag: 3, .. })
    ));
}

#[test]
fn lengths_and_counts_are_bounded() {
    let key = vec![0; MAX_KEY + 1];
    let get = TxnRequest::Get { subfn: 0, key }.encode();
    assert!(matches!(
        TxnRequest::decode(&get),
        Err(DecodeError::TooLong { .. })
    ));
    let value = vec![0; MAX_VALUE + 1];
    let reply = TxnReply::Value {
        value: Some(value.clone()),
        version: 1,
    }
    .encode();
    assert!(matches!(
        TxnReply::decode(&reply),
        Err(DecodeError::TooLong { .. })
    ));
    // A commit claiming 4 billion reads in a few bytes allocates nothing.
    let mut w = Writer::new();
    w.u8(3);
    w.u32(u32::MAX);
    w.raw(&[0; 32]);
    assert!(matches!(
        TxnRequest::decode(&w.finish()),
        Err(DecodeError::Count { .. })
    ));

    let mut set = TxnSet::default();
    set.check_limits().unwrap();
    set.writes.push(WriteItem {
        subfn: 0,
        key: vec![1],
        value: Some(value),
    });
    assert!(matches!(
        set.check_limits(),
        Err(DecodeError::TooLong { what: "value", .. })
    ));
}

#[test]
fn snapshots_that_break_the_rules_are_refused() {
    let ok = sealed(
        b"SHMCTXSF",
        5,
        &section(1, &[(b"a", b"x", 1), (b"b", b"y", 5)]),
    );
    assert_eq!(Store::new().load_subfn(&ok), Ok(1));
    let cases: [(&str, Vec<u8>); 5] = [
        (
            "order",
            sealed(
                b"SHMCTXSF",
                5,
                &section(1, &[(b"b", b"x", 1), (b"a", b"y", 2)]),
            ),
        ),
        (
            "duplicate",
            sealed(
                b"SHMCTXSF",
                5,
                &section(1, &[(b"a", b"x", 1), (b"a", b"y", 2)]),
            ),
        ),
        (
            "zero version",
            sealed(b"SHMCTXSF", 5, &section(1, &[(b"a", b"x", 0)])),
        ),
        (
            "above max",
            sealed(b"SHMCTXSF", 5, &section(1, &[(b"a", b"x", 6)])),
        ),
        ("wrong magic", sealed(b"SHMCTXST", 5, &section(1, &[]))),
    ];
    for (name, b) in cases {
        assert!(Store::new().load_subfn(&b).is_err(), "{name} accepted");
    }
    // Sections out of order in a store snapshot.
    let mut body = Writer::new();
    body.u32(2);
    body.raw(&section(3, &[]));
    body.raw(&section(1, &[]));
    body.u32(0);
    let b = sealed(b"SHMCTXST", 1, body.as_slice());
    assert!(matches!(
        Store::decode_snapshot(&b),
        Err(DecodeError::Invalid(_))
    ));
}

#[test]
fn clashing_or_foreign_prepared_sets_are_refused() {
    let held = |subfn: u32| {
        let mut w = Writer::new();
        TxnSet {
            writes: vec![WriteItem {
                subfn,
                key: b"k".to_vec(),
                value: None,
            }],
            ..TxnSet::default()
        }
        .encode_into(&mut w);
        w.finish()
    };
    let snapshot = |subfns: [u32; 2]| {
        let mut body = Writer::new();
        body.u32(1);
        body.raw(&section(0, &[]));
        body.u32(2);
        for (txid, f) in [1u64, 2].into_iter().zip(subfns) {
            body.u64(txid);
            body.raw(&held(f));
        }
        sealed(b"SHMCTXST", 1, body.as_slice())
    };
    // Two prepared transactions writing one key cannot both hold it.
    assert_eq!(
        Store::decode_snapshot(&snapshot([0, 0])).unwrap_err(),
        DecodeError::Invalid("prepared transactions clash")
    );
    assert!(matches!(
        Store::decode_snapshot(&snapshot([0, 7])),
        Err(DecodeError::Invalid(_))
    ));
}
