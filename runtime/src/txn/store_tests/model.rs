//! The store against a model (a BTreeMap per sub-function): random puts,
//! deletes and aborts through prepare + decide, direct applies, gets,
//! scans, transactions left prepared and decided later, snapshot round
//! trips and sub-function moves at random points.

use std::collections::{BTreeMap, VecDeque};

use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;

use crate::txn::store::{Conflict, ReadItem, Store, TxnSet, UnhostError, Version, WriteItem};

/// Sub-functions 0..3 are hosted; 3 is not.
const HOSTED: u32 = 3;

#[derive(Debug, Clone)]
enum Op {
    /// Read-modify-write one key in a transaction (None: delete).
    Write(u32, Vec<u8>, Option<Vec<u8>>),
    /// The same, decided abort.
    Abort(u32, Vec<u8>),
    /// Recovery-style direct apply.
    Apply(u32, Vec<u8>, Option<Vec<u8>>),
    Get(u32, Vec<u8>),
    Scan(u32, Vec<u8>, u32),
    /// Prepare a write on a key of its own and leave it in doubt.
    Hold(u32),
    /// Decide the oldest held transaction.
    Release(bool),
    Snapshot,
    Move(u32),
}

fn key() -> impl Strategy<Value = Vec<u8>> {
    vec(0u8..3, 0..4)
}

fn op() -> impl Strategy<Value = Op> {
    let f = 0u32..4;
    let val = option::of(vec(any::<u8>(), 0..4));
    prop_oneof![
        4 => (f.clone(), key(), val.clone()).prop_map(|(f, k, v)| Op::Write(f, k, v)),
        1 => (f.clone(), key()).prop_map(|(f, k)| Op::Abort(f, k)),
        2 => (f.clone(), key(), val).prop_map(|(f, k, v)| Op::Apply(f, k, v)),
        2 => (f.clone(), key()).prop_map(|(f, k)| Op::Get(f, k)),
        2 => (f.clone(), key(), 0u32..5).prop_map(|(f, p, l)| Op::Scan(f, p, l)),
        1 => (0..HOSTED).prop_map(Op::Hold),
        1 => any::<bool>().prop_map(Op::Release),
        1 => Just(Op::Snapshot),
        1 => (0..HOSTED).prop_map(Op::Move),
    ]
}

type Space = BTreeMap<Vec<u8>, (Vec<u8>, Version)>;

struct Harness {
    store: Store,
    model: BTreeMap<u32, Space>,
    held: VecDeque<(u64, WriteItem)>,
    version: Version,
    /// What the store's max version must be: the last version it applied.
    max: Version,
    txid: u64,
}

impl Harness {
    fn new() -> Harness {
        let mut store = Store::new();
        let mut model = BTreeMap::new();
        for f in 0..HOSTED {
            store.host(f);
            model.insert(f, Space::new());
        }
        Harness {
            store,
            model,
            held: VecDeque::new(),
            version: 0,
            max: 0,
            txid: 0,
        }
    }

    fn model_apply(&mut self, w: &WriteItem, version: Version) {
        if let Some(space) = self.model.get_mut(&w.subfn) {
            match &w.value {
                Some(v) => space.insert(w.key.clone(), (v.clone(), version)),
                None => space.remove(&w.key),
            };
        }
    }

    /// Reads `key` (unless not hosted), writes it, prepares; true when the
    /// write is hosted here.
    fn prepare_rmw(&mut self, w: &WriteItem) -> u64 {
        self.txid += 1;
        let mut set = TxnSet::default();
        if let Ok((_, version)) = self.store.get(w.subfn, &w.key) {
            set.reads.push(ReadItem {
                subfn: w.subfn,
                key: w.key.clone(),
                version,
            });
        }
        set.writes.push(w.clone());
        let hosted = self
            .store
            .prepare(self.txid, &set)
            .expect("nothing else holds these keys");
        let expect = if w.subfn < HOSTED {
            set
        } else {
            TxnSet::default()
        };
        assert_eq!(hosted, expect);
        self.txid
    }

    fn run(&mut self, op: Op) {
        match op {
            Op::Write(f, k, v) => {
                let w = WriteItem {
                    subfn: f,
                    key: k,
                    value: v,
                };
                // Not hosted: prepare keeps nothing and decide is a no-op.
                let txid = self.prepare_rmw(&w);
                self.version += 1;
                self.store.decide(txid, true, self.version);
                self.model_apply(&w, self.version);
                if f < HOSTED {
                    self.max = self.version;
                }
            }
            Op::Abort(f, k) => {
                let w = WriteItem {
                    subfn: f,
                    key: k,
                    value: Some(b"no".to_vec()),
                };
                let txid = self.prepare_rmw(&w);
                self.store.decide(txid, false, 0);
            }
            Op::Apply(f, k, v) => {
                let w = WriteItem {
                    subfn: f,
                    key: k,
                    value: v,
                };
                self.version += 1;
                self.store.apply(std::slice::from_ref(&w), self.version);
                self.model_apply(&w, self.version);
                self.max = self.version;
            }
            Op::Get(f, k) => self.check_get(f, &k),
            Op::Scan(f, p, limit) => self.check_scan(f, &p, limit),
            Op::Hold(f) => {
                let w = WriteItem {
                    subfn: f,
                    key: [&[0xff][..], &self.txid.to_be_bytes()].concat(),
                    value: Some(vec![f as u8]),
                };
                let txid = self.prepare_rmw(&w);
                self.held.push_back((txid, w));
            }
            Op::Release(commit) => {
                if let Some((txid, w)) = self.held.pop_front() {
                    self.version += 1;
                    self.store.decide(txid, commit, self.version);
                    if commit {
                        self.model_apply(&w, self.version);
                        self.max = self.version;
                    }
                }
            }
            Op::Snapshot => {
                let b = self.store.encode_snapshot();
                self.store = Store::decode_snapshot(&b).expect("own snapshot decodes");
            }
            Op::Move(f) => self.move_away_and_back(f),
        }
    }

    fn move_away_and_back(&mut self, f: u32) {
        let bytes = self.store.snapshot_of(f);
        let holder = self
            .held
            .iter()
            .find(|(_, w)| w.subfn == f)
            .map(|(t, _)| *t);
        match (self.store.unhost(f), holder) {
            (Err(UnhostError::Prepared { txid, .. }), Some(t)) => assert_eq!(txid, t),
            (Ok(()), None) => {
                assert!(!self.store.hosts(f));
                assert_eq!(
                    self.store.get(f, b""),
                    Err(Conflict::NotHosted { subfn: f })
                );
                let mut other = Store::new();
                assert_eq!(other.load_subfn(&bytes), Ok(f));
                assert_eq!(other.max_version(), self.store.max_version());
                assert_eq!(self.store.load_subfn(&other.snapshot_of(f)), Ok(f));
            }
            (got, holder) => panic!("unhost {f}: {got:?} with holder {holder:?}"),
        }
    }

    fn check_get(&self, f: u32, k: &[u8]) {
        let got = self.store.get(f, k);
        match self.model.get(&f) {
            None => assert_eq!(got, Err(Conflict::NotHosted { subfn: f })),
            Some(space) => {
                let want = space
                    .get(k)
                    .map_or((None, 0), |(v, ver)| (Some(v.clone()), *ver));
                assert_eq!(got, Ok(want));
            }
        }
    }

    fn check_scan(&self, f: u32, p: &[u8], limit: u32) {
        let got = self.store.scan(f, p, limit);
        match self.model.get(&f) {
            None => assert_eq!(got, Err(Conflict::NotHosted { subfn: f })),
            Some(space) => {
                let want: Vec<_> = (space.iter())
                    .filter(|(k, _)| k.starts_with(p))
                    .take(limit as usize)
                    .map(|(k, (v, ver))| (k.clone(), v.clone(), *ver))
                    .collect();
                assert_eq!(got, Ok(want));
            }
        }
    }

    fn check_all(&self) {
        for (f, space) in &self.model {
            assert_eq!(self.store.keys(*f), space.len());
            self.check_scan(*f, b"", u32::MAX);
        }
        assert_eq!(self.store.max_version(), self.max);
        let held: Vec<u64> = self.held.iter().map(|(t, _)| *t).collect();
        let prepared: Vec<u64> = self.store.prepared().iter().map(|(t, _)| *t).collect();
        assert_eq!(prepared, held);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]
    #[test]
    fn store_matches_a_btreemap_model(ops in vec(op(), 1..80)) {
        let mut h = Harness::new();
        for op in ops {
            h.run(op);
            h.check_all();
        }
    }
}
