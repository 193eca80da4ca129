//! The targets: a name, valid encodings to start from, and the decoder.

use shmcollab_runtime::ctl::{LpCtl, PeerCtl};
use shmcollab_runtime::handover::{Fds, Handover};
use shmcollab_runtime::report::CollaborationState;
use shmcollab_runtime::txn::msg::{TxnReply, TxnRequest};
use shmcollab_runtime::txn::record::Record;
use shmcollab_runtime::txn::set::{ReadItem, ScanItem, TxnSet, WriteItem};
use shmcollab_runtime::txn::storage::{FaultyStorage, Storage};
use shmcollab_runtime::txn::store::Store;
use shmcollab_runtime::txn::wal::{format, SyncMode, Wal, WalOptions};
use shmcollab_runtime::wire::RingName;
use shmcollab_shm::auth::{LinkKey, Opener, Sealer};
use shmcollab_shm::batch;
use shmcollab_shm::frame::{kind, FrameHeader};
use std::hint::black_box;
use std::path::Path;

/// A fuzz target.
pub struct Target {
    /// Its name on the command line.
    pub name: &'static str,
    /// What it decodes.
    pub what: &'static str,
    /// Valid inputs to mutate.
    pub seeds: fn() -> Vec<Vec<u8>>,
    /// Decode `bytes` (and use the result); must not panic.
    pub run: fn(&[u8]),
}

/// Every target.
pub static TARGETS: &[Target] = &[
    Target {
        name: "frame",
        what: "frame header (FrameHeader::decode)",
        seeds: frame_seeds,
        run: |b| {
            let _ = black_box(FrameHeader::decode(b));
        },
    },
    Target {
        name: "open",
        what: "a sealed frame through the opener (checks, tag, sequence)",
        seeds: sealed_seeds,
        run: run_open,
    },
    Target {
        name: "batch",
        what: "batched message entries (batch::entries)",
        seeds: batch_seeds,
        run: |b| {
            batch::entries(b).take(10_000).for_each(|e| {
                let _ = black_box(e);
            })
        },
    },
    Target {
        name: "lpctl",
        what: "manager <-> LP control messages (LpCtl::decode)",
        seeds: lpctl_seeds,
        run: |b| {
            let _ = black_box(LpCtl::decode(b));
        },
    },
    Target {
        name: "peerctl",
        what: "manager <-> manager control messages (PeerCtl::decode)",
        seeds: peerctl_seeds,
        run: |b| {
            let _ = black_box(PeerCtl::decode(b));
        },
    },
    Target {
        name: "txnmsg",
        what: "transaction requests and replies (TxnRequest/TxnReply::decode)",
        seeds: txnmsg_seeds,
        run: |b| {
            let _ = black_box(TxnRequest::decode(b));
            let _ = black_box(TxnReply::decode(b));
        },
    },
    Target {
        name: "record",
        what: "log records (Record::decode)",
        seeds: record_seeds,
        run: |b| {
            let _ = black_box(Record::decode(b));
        },
    },
    Target {
        name: "snapshot",
        what: "checkpoint snapshots (format::decode_snapshot, Store::decode_snapshot)",
        seeds: snapshot_seeds,
        run: |b| {
            let _ = black_box(format::decode_snapshot(b));
            let _ = black_box(Store::decode_snapshot(b));
        },
    },
    Target {
        name: "wal",
        what: "a whole log file recovered (Wal::open: header, records, cut)",
        seeds: wal_seeds,
        run: run_wal,
    },
    Target {
        name: "state",
        what: "the coordinator's aggregate (CollaborationState::decode)",
        seeds: state_seeds,
        run: |b| {
            let _ = black_box(CollaborationState::decode(b));
        },
    },
    Target {
        name: "ringname",
        what: "segment names in a session directory (RingName::parse)",
        seeds: ringname_seeds,
        run: |b| {
            let _ = black_box(RingName::parse(&String::from_utf8_lossy(b)));
        },
    },
    Target {
        name: "handover",
        what: "what a manager hands its LP in the environment (Handover::decode)",
        seeds: handover_seeds,
        run: |b| {
            let _ = black_box(Handover::decode(&String::from_utf8_lossy(b)));
        },
    },
    Target {
        name: "config",
        what: "a config file (Config::parse)",
        seeds: config_seeds,
        run: |b| {
            let text = String::from_utf8_lossy(b);
            let _ = black_box(shmcollab_supervisor::config::Config::parse(
                &text,
                Path::new("fuzz.toml"),
            ));
        },
    },
];

fn header(k: u8, len: u32, seq: u64) -> FrameHeader {
    FrameHeader {
        version: 1,
        kind: k,
        payload_len: len,
        seq,
        src: 1,
        dst: 2,
        aux: 3,
        ..Default::default()
    }
}

fn frame_seeds() -> Vec<Vec<u8>> {
    [kind::DATA, kind::TXN, kind::TXN_REPLY]
        .iter()
        .map(|&k| header(k, 64, 7).encode().to_vec())
        .collect()
}

fn key() -> LinkKey {
    LinkKey::from_bytes([7; 16])
}

fn sealed_seeds() -> Vec<Vec<u8>> {
    let mut s = Sealer::new(Some(key()));
    (0..3u64)
        .map(|i| {
            let payload = vec![i as u8; 8 + 40 * i as usize];
            let mut out = vec![0u8; 32 + payload.len() + 64];
            let n = s
                .seal(
                    header(kind::DATA, payload.len() as u32, 0),
                    &payload,
                    &mut out,
                )
                .expect("seal");
            out.truncate(n);
            out
        })
        .collect()
}

fn run_open(b: &[u8]) {
    let mut o = Opener::new(Some(key()));
    let mut out = Vec::new();
    let _ = black_box(o.open(b, &mut out));
    // A second frame on the same opener (the sequence check).
    let _ = black_box(o.open(b, &mut out));
}

fn batch_seeds() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for i in 0..3u32 {
        let e = batch::Entry {
            kind: kind::DATA,
            flags: 0,
            src: i,
            dst: i + 1,
            aux: 0,
        };
        batch::push(&mut out, &e, &vec![i as u8; 10 * i as usize]);
    }
    vec![out]
}

fn lpctl_seeds() -> Vec<Vec<u8>> {
    let r = "lp0.g1.in".to_string();
    [
        LpCtl::Ready,
        LpCtl::Report {
            key: "k".into(),
            value: "v".into(),
        },
        LpCtl::Detached { ring: r.clone() },
        LpCtl::Lost { ring: r.clone() },
        LpCtl::Attach {
            writer: 1,
            writer_generation: 2,
            ring: r.clone(),
        },
        LpCtl::Detach { ring: r },
    ]
    .iter()
    .map(LpCtl::encode)
    .collect()
}

fn peerctl_seeds() -> Vec<Vec<u8>> {
    [
        PeerCtl::Offer {
            lp_gen: 1,
            from_gen: 2,
        },
        PeerCtl::Switch {
            lp_gen: 1,
            from_gen: 2,
            to_gen: 3,
        },
        PeerCtl::Revoke {
            lp_gen: 1,
            from_gen: 2,
        },
        PeerCtl::Unswitch {
            lp_gen: 1,
            from_gen: 2,
        },
    ]
    .iter()
    .map(PeerCtl::encode)
    .collect()
}

fn set() -> TxnSet {
    TxnSet {
        reads: vec![ReadItem {
            subfn: 1,
            key: b"a".to_vec(),
            version: 3,
        }],
        scans: vec![ScanItem {
            subfn: 2,
            prefix: b"p/".to_vec(),
            limit: 10,
            seen: vec![(b"p/1".to_vec(), 4)],
        }],
        writes: writes(),
    }
}

fn writes() -> Vec<WriteItem> {
    vec![
        WriteItem {
            subfn: 1,
            key: b"a".to_vec(),
            value: Some(b"1".to_vec()),
        },
        WriteItem {
            subfn: 1,
            key: b"b".to_vec(),
            value: None,
        },
    ]
}

fn txnmsg_seeds() -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = [
        TxnRequest::Get {
            subfn: 1,
            key: b"k".to_vec(),
        },
        TxnRequest::Commit { set: set() },
        TxnRequest::Prepare {
            txid: 9,
            set: set(),
        },
    ]
    .iter()
    .map(TxnRequest::encode)
    .collect();
    v.push(
        TxnReply::Committed {
            version: 5,
            writes_carry_version: true,
        }
        .encode(),
    );
    v.push(TxnReply::Failed("no".into()).encode());
    v.push(TxnReply::Entries(vec![(b"k".to_vec(), b"v".to_vec(), 2)]).encode());
    v
}

fn record_seeds() -> Vec<Vec<u8>> {
    vec![
        Record::Commit {
            txid: 1,
            version: 2,
            writes: writes(),
        }
        .encode(),
        Record::Prepare {
            txid: 3,
            coordinator: 1,
            set: set(),
        }
        .encode(),
        Record::Decision {
            txid: 3,
            commit: true,
            version: 4,
        }
        .encode(),
    ]
}

fn snapshot_seeds() -> Vec<Vec<u8>> {
    let mut s = Store::new();
    s.host(1);
    s.apply(&writes(), 2);
    let body = s.encode_snapshot();
    vec![format::encode_snapshot(3, &body), body]
}

fn wal_dir() -> &'static Path {
    Path::new("/fuzz/wal")
}

fn wal_seeds() -> Vec<Vec<u8>> {
    let fs = FaultyStorage::new();
    let opts = WalOptions {
        sync: SyncMode::Always,
        prealloc_chunk: 4096,
    };
    let (mut wal, _) = Wal::open_with(fs.clone(), wal_dir(), opts).expect("open");
    for r in record_seeds() {
        wal.append(&r).expect("append");
    }
    wal.sync().expect("sync");
    let mut bytes = fs
        .file_bytes(&wal_dir().join(shmcollab_runtime::txn::wal::LOG_FILE))
        .expect("log bytes");
    // The zeros of the preallocation add nothing to mutate.
    let end = bytes.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    bytes.truncate(end.next_multiple_of(8));
    vec![bytes]
}

fn run_wal(b: &[u8]) {
    let fs = FaultyStorage::new();
    let _ = fs.create_dir_all(wal_dir());
    if fs
        .write_new(&wal_dir().join(shmcollab_runtime::txn::wal::LOG_FILE), b)
        .is_err()
    {
        return;
    }
    let opts = WalOptions {
        sync: SyncMode::Always,
        prealloc_chunk: 4096,
    };
    let _ = black_box(Wal::open_with(fs, wal_dir(), opts));
}

fn state_seeds() -> Vec<Vec<u8>> {
    vec![br#"{"name":"n","coordinator":0,"published_ms":1,"lps":[{"name":"a","slot":0,"state":"ready","pid":12,"restarts":0,"subfunctions":["s"],"msgs_in":1,"msgs_out":2,"rejected":0,"custom":{"k":"v"}}]}"#.to_vec()]
}

fn ringname_seeds() -> Vec<Vec<u8>> {
    [
        "lp0.g1.in",
        "lp3.g2.out",
        "peer.0g1.1g2",
        "direct.0g1.2g3l4",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect()
}

fn handover_seeds() -> Vec<Vec<u8>> {
    let h = Handover {
        session_id: 42,
        fds: Fds::FIXED,
        subfns: vec!["a".into(), "b/0".into()],
        owners: vec![Some(0), None],
        names: vec!["p".into(), "q.1".into()],
    };
    vec![h.encode().into_bytes()]
}

fn config_seeds() -> Vec<Vec<u8>> {
    vec![br#"name = "w"
build = ["true"]
sync = "batch"

[[subfunction]]
name = "count"
partitions = 8

[[process]]
name = "counter"
instances = 4
command = ["./c", "x"]
hosts = ["count"]
restart = "permanent"
"#
    .to_vec()]
}
