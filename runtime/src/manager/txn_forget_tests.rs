//! The forget of two-phase-commit outcomes (`txn_forget.rs`) between two
//! transaction servers on fault-injecting storages (the harness of
//! `txn_2pc_tests.rs`): what each side remembers stays bounded over
//! thousands of commits, across restarts and checkpoints, and a crash at
//! any step while forgetting keeps atomicity.

use super::*;
use crate::manager::txn_checkpoint::{decode_checkpoint, encode_checkpoint};

/// Two-phase commits in a row (each settled before the next).
const N: usize = 2000;

/// What either side may keep after a commit settled: the last commit (the
/// participant's answer, until the next watermark) and little more.
const BOUND: u64 = 2;

impl Net {
    /// The remembered outcomes of slot `i`: (answers, decisions).
    fn remembered(&mut self, i: usize) -> (u64, u64) {
        self.srv(i).two_phase.remembered()
    }

    fn assert_bounded(&mut self, what: &str) {
        for i in 0..2 {
            let (answers, decisions) = self.remembered(i);
            assert!(
                answers <= BOUND && decisions <= BOUND,
                "{what}: slot {i} remembers {answers} answers and {decisions} decisions"
            );
        }
    }

    /// Bytes of slot `i`'s checkpoint beyond its store's snapshot.
    fn kept_bytes(&mut self, i: usize) -> usize {
        let s = self.srv(i);
        encode_checkpoint(&s.store, &s.two_phase).len() - s.store.encode_snapshot().len()
    }

    /// Settled, and the quiet second's timer (watermarks, Decides sent
    /// again) fired and everything it sent delivered.
    fn quiet(&mut self) {
        self.settle();
        self.tick();
        while self.step() {}
    }
}

fn v(i: usize) -> Vec<u8> {
    i.to_string().into_bytes()
}

#[test]
fn thousands_of_commits_leave_each_side_a_bounded_memory_also_after_restarts() {
    let mut n = Net::new();
    for i in 0..N {
        n.commit(&v(i));
        n.settle();
        if i % 97 == 0 {
            n.assert_bounded(&format!("after commit {i}"));
        }
    }
    assert_eq!(n.lp.len(), N);
    assert!(n.lp.iter().all(|r| matches!(r, TxnReply::Committed { .. })));
    n.check(&v(N - 1), "no crash");
    n.assert_bounded("after the commits");
    // A restart replays the whole log: forgotten outcomes stay forgotten.
    for image in [CrashImage::KILL, CrashImage::POWER_LOSS] {
        for i in 0..2 {
            n.crash(i, image);
        }
        n.settle();
        n.assert_bounded(&format!("after a restart of both ({image:?})"));
        n.quiet();
        n.assert_bounded(&format!("a second after a restart ({image:?})"));
        n.check(&v(N - 1), "restarted");
    }
    // Idle: nothing at all.
    n.quiet();
    for i in 0..2 {
        assert_eq!(n.remembered(i), (0, 0), "slot {i} idle");
    }
}

#[test]
fn a_checkpoint_does_not_grow_with_the_commits_and_keeps_what_is_needed() {
    let mut n = Net::new();
    let mut kept = Vec::new();
    for round in 0..2 {
        for i in 0..N / 2 {
            n.commit(&v(i));
            n.settle();
        }
        // After a restart too (the log replayed), before its timer fired.
        n.crash(0, CrashImage::KILL);
        n.crash(1, CrashImage::KILL);
        n.settle();
        kept.push((n.kept_bytes(0), n.kept_bytes(1)));
        n.quiet();
        assert!(
            kept[round].0 <= 128 && kept[round].1 <= 128,
            "round {round}: checkpoints keep {:?} bytes of outcomes",
            kept[round]
        );
    }
    // A real checkpoint on each side, with an answer and a decision in it:
    // a commit whose Decide the host never got.
    n.commit(b"last");
    while !n.committed_last() {
        assert!(n.step(), "stalled: {:?}", n.lp);
    }
    n.wire.retain(|(h, _)| h.dst != 1);
    for i in 0..2 {
        let s = n.srv(i);
        let snap = encode_checkpoint(&s.store, &s.two_phase);
        let (_, back) = decode_checkpoint(&snap).unwrap();
        assert_eq!(back.decided, s.two_phase.decided);
        s.wal.as_mut().unwrap().checkpoint(&snap).unwrap();
    }
    assert_eq!(
        n.remembered(0).1,
        1,
        "the leader's decision, unacknowledged"
    );
    n.crash(0, CrashImage::POWER_LOSS);
    n.crash(1, CrashImage::POWER_LOSS);
    assert_eq!(n.remembered(0).1, 1, "the checkpoint lost the decision");
    n.quiet();
    n.check(b"last", "after restarts from the checkpoints");
    assert_eq!(n.value(1, b"b").as_deref(), Some(&b"last"[..]));
    n.quiet();
    for i in 0..2 {
        assert_eq!(n.remembered(i), (0, 0), "slot {i} idle");
    }
}

impl Net {
    fn committed_last(&self) -> bool {
        matches!(self.lp.last(), Some(TxnReply::Committed { .. })) && self.lp.len() > N
    }
}

#[test]
fn a_participant_that_lost_the_decide_acknowledges_the_outcome_it_asked_for() {
    let mut n = Net::new();
    n.commit(b"1");
    // Deliver until the leader decided; the Decide to the host is lost
    // with the host, killed with its Prepare durable.
    while !n.committed() {
        assert!(n.step(), "stalled: {:?}", n.lp);
    }
    assert_eq!(n.remembered(0).1, 1);
    n.crash(1, CrashImage::KILL);
    n.settle();
    n.check(b"1", "the host asked for the outcome");
    // It acknowledged what it learned: the leader forgets its decision.
    n.quiet();
    for i in 0..2 {
        assert_eq!(n.remembered(i), (0, 0), "slot {i}");
    }
}

/// A commit settled, then a second one whose Decide carries the watermark
/// past the first, with slot `who` crashed after `k` steps of it; then a
/// third that must commit (nothing refused for a stale watermark).
fn crash_while_forgetting(k: usize, who: usize, image: CrashImage, order: [usize; 2]) -> bool {
    let mut n = Net::new();
    n.order = order;
    n.commit(b"1");
    n.settle();
    n.lp.clear();
    n.commit(b"2");
    let mut steps = 0;
    while steps < k && n.step() {
        steps += 1;
    }
    let ran_out = steps < k;
    n.crash(who, image);
    n.quiet();
    let what = format!("crash of slot {who} after {k} steps ({image:?}, syncs {order:?})");
    n.check(b"2", &what);
    let second = n.value(0, b"a");
    assert!(
        second.as_deref() == Some(b"1") || second.as_deref() == Some(b"2"),
        "{what}: {second:?}"
    );
    n.lp.clear();
    n.commit(b"3");
    n.quiet();
    assert!(n.committed(), "{what}: the next commit: {:?}", n.lp);
    n.check(b"3", &what);
    for i in 0..2 {
        n.crash(i, CrashImage::POWER_LOSS);
    }
    n.quiet();
    n.check(b"3", &format!("{what}, then a power loss of both"));
    for i in 0..2 {
        assert_eq!(n.remembered(i), (0, 0), "{what}: slot {i} idle");
    }
    !ran_out
}

#[test]
fn a_crash_at_every_step_while_forgetting_keeps_atomicity_and_forgets_in_the_end() {
    at_every_step(crash_while_forgetting);
}

#[test]
fn checkpoints_of_both_layouts_are_read_and_damaged_ones_refused() {
    // The first layout: answers only, then the store.
    let store = crate::txn::store::Store::new();
    let mut b = b"SHMCCKP1".to_vec();
    b.extend_from_slice(&1u32.to_le_bytes());
    b.extend_from_slice(&7u64.to_le_bytes());
    b.push(1);
    b.extend_from_slice(&store.encode_snapshot());
    let (_, kept) = decode_checkpoint(&b).unwrap();
    assert_eq!(kept.decided.get(&7), Some(&true));
    assert!(kept.closing.is_empty() && kept.finished.is_empty());
    // The second: every part, and no prefix of it is taken for a whole.
    let mut tp = TwoPhase::default();
    tp.decided.insert(9, false);
    tp.closing
        .insert(5, crate::manager::txn_2pc::Closing::recovered(vec![1, 2]));
    tp.finished.insert(1, 1 << 48 | 40);
    let b = encode_checkpoint(&store, &tp);
    let (_, kept) = decode_checkpoint(&b).unwrap();
    assert_eq!(kept.decided, tp.decided);
    assert_eq!(kept.closing, vec![(5, vec![1, 2])]);
    assert_eq!(kept.finished, tp.finished);
    let outcomes = b.len() - store.encode_snapshot().len();
    for cut in 0..outcomes {
        assert!(
            decode_checkpoint(&b[..cut]).is_err(),
            "a prefix of {cut} bytes"
        );
    }
    // A count larger than the bytes that follow.
    let mut huge = b.clone();
    huge[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(decode_checkpoint(&huge).is_err());
}

proptest::proptest! {
    /// A checkpoint is a file (untrusted): any bytes after either layout's
    /// header are read or refused, never a panic; one that is read keeps
    /// no more entries than its bytes can hold.
    #[test]
    fn any_checkpoint_bytes_are_read_or_refused(
        v2 in proptest::prelude::any::<bool>(),
        body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256),
    ) {
        let mut b = if v2 { b"SHMCCKP2".to_vec() } else { b"SHMCCKP1".to_vec() };
        b.extend_from_slice(&body);
        if let Ok((_, kept)) = decode_checkpoint(&b) {
            let entries = kept.decided.len() + kept.closing.len() + kept.finished.len();
            proptest::prop_assert!(entries * 8 <= body.len());
        }
    }
}

/// The leader's id counter runs out (after 2^32 transactions of one start:
/// hours at a pipelined rate): its ids must keep rising (the next epoch,
/// durable), or its host, holding a watermark of the old epoch, would vote
/// no to every Prepare from then on. Commits across the roll-over, then a
/// power loss of both: every one committed, memory still bounded.
#[test]
fn commits_go_on_when_the_leaders_id_counter_runs_out() {
    let mut n = Net::new();
    n.commit(&v(0));
    n.quiet();
    n.srv(0).spend_txids_but(3);
    let mut ids = Vec::new();
    for i in 1..=8 {
        n.commit(&v(i));
        ids.push(prepare_txid(&n.wire.front().expect("a Prepare").1));
        n.quiet();
        n.check(&v(i), &format!("commit {i} across the roll-over"));
    }
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:x?}");
    assert_eq!(n.lp.len(), 9);
    assert!(
        n.lp.iter().all(|r| matches!(r, TxnReply::Committed { .. })),
        "{:?}",
        n.lp
    );
    n.assert_bounded("after the roll-over");
    for i in 0..2 {
        n.crash(i, CrashImage::POWER_LOSS);
    }
    n.settle();
    n.lp.clear();
    n.commit(&v(9));
    let after = prepare_txid(&n.wire.front().expect("a Prepare").1);
    assert!(after > *ids.last().unwrap(), "{after:#x} after {ids:x?}");
    n.quiet();
    n.check(&v(9), "after a power loss of both");
    assert!(n.committed(), "{:?}", n.lp);
}
