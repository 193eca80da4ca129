//! Serializability: random transfers between accounts on two stores (two
//! managers, so every transfer across them is a two-phase commit),
//! interleaved at random: reads, prepares and decisions in random order.
//! The committed transfers, replayed serially in commit order, must have
//! read what they read and must give the same state; the total never
//! changes.

use std::collections::BTreeMap;

use proptest::collection::vec;
use proptest::prelude::*;

use crate::txn::store::{ReadItem, Store, TxnSet, Version, WriteItem};

const ACCOUNTS: u8 = 6;
const INITIAL: i64 = 100;

/// Account `a` lives in sub-function `a % 2`, hosted by store `a % 2`.
fn home(a: u8) -> (usize, u32) {
    (usize::from(a % 2), u32::from(a % 2))
}

fn key(a: u8) -> Vec<u8> {
    vec![b'a', a]
}

fn decode(v: Option<Vec<u8>>) -> i64 {
    v.map_or(0, |b| {
        i64::from_le_bytes(b.try_into().expect("8-byte balance"))
    })
}

/// A transfer's life: each step of the schedule moves one on.
#[derive(Debug, Clone)]
enum Phase {
    Planned,
    /// Read both balances; holds the set to commit.
    Read(TxnSet, [i64; 2]),
    /// Prepared on the stores listed (all voted yes so far).
    Voting(TxnSet, [i64; 2], Vec<usize>),
    Done,
}

#[derive(Debug, Clone, Copy)]
struct Transfer {
    from: u8,
    to: u8,
    amount: i64,
}

struct Bank {
    stores: [Store; 2],
    version: Version,
    /// Committed transfers: version -> (transfer, the balances it read).
    log: BTreeMap<Version, (Transfer, [i64; 2])>,
}

impl Bank {
    fn new() -> Bank {
        let mut stores = [Store::new(), Store::new()];
        stores[0].host(0);
        stores[1].host(1);
        let mut bank = Bank {
            stores,
            version: 1,
            log: BTreeMap::new(),
        };
        for a in 0..ACCOUNTS {
            let (s, f) = home(a);
            let w = WriteItem {
                subfn: f,
                key: key(a),
                value: Some(INITIAL.to_le_bytes().to_vec()),
            };
            bank.stores[s].apply(&[w], 1);
        }
        bank
    }

    fn read(&self, t: Transfer) -> Phase {
        let mut set = TxnSet::default();
        let mut seen = [0; 2];
        for (i, a) in [t.from, t.to].into_iter().enumerate() {
            let (s, f) = home(a);
            let (v, version) = self.stores[s].get(f, &key(a)).unwrap();
            seen[i] = decode(v);
            set.reads.push(ReadItem {
                subfn: f,
                key: key(a),
                version,
            });
        }
        for (a, balance) in [(t.from, seen[0] - t.amount), (t.to, seen[1] + t.amount)] {
            let (_, f) = home(a);
            set.writes.push(WriteItem {
                subfn: f,
                key: key(a),
                value: Some(balance.to_le_bytes().to_vec()),
            });
        }
        Phase::Read(set, seen)
    }

    /// Prepares on the next participant; a no aborts at those that said yes.
    fn vote(&mut self, txid: u64, set: TxnSet, seen: [i64; 2], mut yes: Vec<usize>) -> Phase {
        let next = (0..2)
            .find(|s| !yes.contains(s))
            .expect("a participant left");
        match self.stores[next].prepare(txid, &set) {
            Ok(_) => {
                yes.push(next);
                Phase::Voting(set, seen, yes)
            }
            Err(_) => {
                for s in yes {
                    self.stores[s].decide(txid, false, 0);
                }
                Phase::Done
            }
        }
    }

    fn commit(&mut self, txid: u64, t: Transfer, seen: [i64; 2]) -> Phase {
        self.version += 1;
        for s in &mut self.stores {
            s.decide(txid, true, self.version);
        }
        self.log.insert(self.version, (t, seen));
        Phase::Done
    }

    fn step(&mut self, txid: u64, t: Transfer, phase: Phase) -> Phase {
        match phase {
            Phase::Planned => self.read(t),
            Phase::Read(set, seen) => self.vote(txid, set, seen, Vec::new()),
            Phase::Voting(_, seen, yes) if yes.len() == 2 => self.commit(txid, t, seen),
            Phase::Voting(set, seen, yes) => self.vote(txid, set, seen, yes),
            Phase::Done => Phase::Done,
        }
    }

    fn balances(&self) -> BTreeMap<u8, i64> {
        (0..ACCOUNTS)
            .map(|a| {
                let (s, f) = home(a);
                (a, decode(self.stores[s].get(f, &key(a)).unwrap().0))
            })
            .collect()
    }

    /// Replays the committed transfers serially in commit order.
    fn check_serializable(&self) {
        let mut serial: BTreeMap<u8, i64> = (0..ACCOUNTS).map(|a| (a, INITIAL)).collect();
        for (version, (t, seen)) in &self.log {
            let now = [serial[&t.from], serial[&t.to]];
            assert_eq!(
                now, *seen,
                "transfer committed at {version} read a state no serial order gives"
            );
            *serial.get_mut(&t.from).unwrap() -= t.amount;
            *serial.get_mut(&t.to).unwrap() += t.amount;
        }
        assert_eq!(self.balances(), serial);
        let total: i64 = self.balances().values().sum();
        assert_eq!(total, INITIAL * i64::from(ACCOUNTS));
        for s in &self.stores {
            assert!(
                s.prepared().is_empty(),
                "a decided transaction still holds locks"
            );
        }
    }
}

fn transfer() -> impl Strategy<Value = Transfer> {
    (0..ACCOUNTS, 1..ACCOUNTS, 1i64..50).prop_map(|(from, d, amount)| Transfer {
        from,
        to: (from + d) % ACCOUNTS,
        amount,
    })
}

/// Runs the transfers, each step advancing the transfer the schedule picks
/// among those not done; returns the bank and how many committed.
fn run(transfers: &[Transfer], picks: &[usize]) -> (Bank, usize) {
    let mut bank = Bank::new();
    let mut phases: Vec<Phase> = vec![Phase::Planned; transfers.len()];
    let mut picks = picks.iter().cycle();
    loop {
        let open: Vec<usize> = (0..phases.len())
            .filter(|i| !matches!(phases[*i], Phase::Done))
            .collect();
        let Some(pick) = picks.next() else { break };
        if open.is_empty() {
            break;
        }
        let i = open[pick % open.len()];
        let phase = std::mem::replace(&mut phases[i], Phase::Done);
        phases[i] = bank.step(i as u64 + 1, transfers[i], phase);
    }
    let committed = bank.log.len();
    (bank, committed)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn interleaved_transfers_are_serializable(
        transfers in vec(transfer(), 1..24),
        picks in vec(any::<usize>(), 1..64),
    ) {
        let (bank, _) = run(&transfers, &picks);
        bank.check_serializable();
    }
}

#[test]
fn transfers_one_at_a_time_all_commit() {
    let transfers: Vec<Transfer> = (0..20)
        .map(|i| Transfer {
            from: i % ACCOUNTS,
            to: (i * 5 + 1) % ACCOUNTS,
            amount: i64::from(i) + 1,
        })
        .filter(|t| t.from != t.to)
        .collect();
    // Always the first open transfer: each runs to its end before the next.
    let picks = [0];
    let (bank, committed) = run(&transfers, &picks);
    assert_eq!(committed, transfers.len());
    bank.check_serializable();
}
