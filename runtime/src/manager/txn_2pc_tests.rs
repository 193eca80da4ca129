//! The parallel commit between two transaction servers on fault-injecting
//! storages, frames carried by a deterministic scheduler: a crash (kill -9,
//! or a power loss) of the leader or of the participant at every step of
//! the protocol, then recovery; atomicity and acknowledged durability must
//! hold. (The same with real processes: `tests/e2e_txn_crash.rs`.)

use super::*;
use crate::manager::testctx;
use crate::manager::txn_server::{TxnFrame, TxnServer};
use crate::txn::storage::{CrashImage, Fail, FaultyStorage};
use crate::txn::store::WriteItem;
use crate::wire::{FLAG_DST_LP, FLAG_MANAGER};
use shmcollab_shm::frame::{kind, FrameHeader};
use std::collections::VecDeque;

/// Two managers (slot i hosts sub-function i), their storages, the frames
/// in flight, and what the LP of slot 0 was answered.
struct Net {
    ctx: Vec<Ctx>,
    fs: Vec<FaultyStorage>,
    srv: Vec<Option<TxnServer<FaultyStorage>>>,
    wire: VecDeque<(FrameHeader, Vec<u8>)>,
    lp: Vec<TxnReply>,
    /// Which server's fdatasync goes first when both have records waiting.
    order: [usize; 2],
}

impl Net {
    fn new() -> Net {
        let c0 = testctx::ctx(0, 2);
        let c1 = testctx::peer_of(&c0, 1);
        let fs = vec![FaultyStorage::new(), FaultyStorage::new()];
        let srv = vec![
            Some(TxnServer::open_on(&c0, fs[0].clone())),
            Some(TxnServer::open_on(&c1, fs[1].clone())),
        ];
        Net {
            ctx: vec![c0, c1],
            fs,
            srv,
            wire: VecDeque::new(),
            lp: Vec::new(),
            order: [0, 1],
        }
    }

    fn srv(&mut self, i: usize) -> &mut TxnServer<FaultyStorage> {
        self.srv[i].as_mut().expect("running")
    }

    fn send(&mut self, out: Outbox) {
        for (h, p) in out {
            if h.flags & FLAG_DST_LP != 0 {
                self.lp.push(TxnReply::decode(&p).unwrap());
            } else {
                self.wire.push_back((h, p));
            }
        }
    }

    /// Our LP commits `a = v` in sub-function 0 and `b = v` in 1.
    fn commit(&mut self, v: &[u8]) {
        let w = |subfn, key: &[u8]| WriteItem {
            subfn,
            key: key.to_vec(),
            value: Some(v.to_vec()),
        };
        let set = TxnSet {
            writes: vec![w(0, b"a"), w(1, b"b")],
            ..Default::default()
        };
        let h = FrameHeader {
            kind: kind::TXN,
            src: 0,
            aux: 7,
            ..Default::default()
        };
        let f = TxnFrame {
            h,
            payload: TxnRequest::Commit { set }.encode(),
            from_lp: true,
        };
        let mut out = Vec::new();
        let srv = self.srv[0].as_mut().expect("running");
        srv.handle(&self.ctx[0], f, &mut out);
        self.send(out);
    }

    /// One step: deliver the next frame, else sync a server with records
    /// waiting (lazy ones too); false when there is nothing left to do.
    fn step(&mut self) -> bool {
        if let Some((h, p)) = self.wire.pop_front() {
            let to = h.dst as usize;
            if self.srv[to].is_none() {
                return true; // lost with the crashed manager
            }
            let f = TxnFrame {
                h,
                payload: p,
                from_lp: false,
            };
            assert!(h.flags & FLAG_MANAGER != 0);
            let mut out = Vec::new();
            let srv = self.srv[to].as_mut().expect("running");
            srv.handle(&self.ctx[to], f, &mut out);
            self.send(out);
            return true;
        }
        for i in self.order {
            let Some(s) = self.srv[i].as_mut() else {
                continue;
            };
            if s.groups.gathering.is_empty() && s.groups.lazy.is_empty() {
                continue;
            }
            s.groups.lazy_since = Some(Instant::now() - Duration::from_secs(1));
            let mut out = Vec::new();
            s.sync_group_wait(&self.ctx[i], &mut out, false);
            self.send(out);
            return true;
        }
        false
    }

    /// Timers fire at once: probes, outcome queries.
    fn tick(&mut self) {
        for i in 0..2 {
            let Some(s) = self.srv[i].as_mut() else {
                continue;
            };
            s.two_phase.rush();
            let mut out = Vec::new();
            s.tick(&self.ctx[i], &mut out);
            self.send(out);
        }
    }

    /// kill -9 (or a power loss) of manager `i`, and its restart.
    fn crash(&mut self, i: usize, image: CrashImage) {
        drop(self.srv[i].take());
        self.wire.retain(|(h, _)| h.dst as usize != i);
        self.fs[i] = self.fs[i].crash(image);
        self.srv[i] = Some(TxnServer::open_on(&self.ctx[i], self.fs[i].clone()));
        if i == 1 {
            // The leader's discovery sees the host come back.
            self.srv(0).host_gone(1);
        }
    }

    /// Run until nothing moves and nothing is in doubt (watchdog: rounds).
    fn settle(&mut self) {
        for _ in 0..100 {
            while self.step() {}
            let idle = self.srv.iter().flatten().all(|s| {
                s.two_phase.in_doubt.is_empty()
                    && !s.two_phase.busy()
                    && s.store.prepared().is_empty()
            });
            if idle {
                return;
            }
            self.tick();
        }
        panic!("watchdog: the two-phase commit did not settle");
    }

    fn value(&mut self, i: usize, key: &[u8]) -> Option<Vec<u8>> {
        self.srv(i).store.get(i as u32, key).unwrap().0
    }

    fn committed(&self) -> bool {
        self.lp
            .iter()
            .any(|r| matches!(r, TxnReply::Committed { .. }))
    }

    /// Both parts or neither; acknowledged means both.
    fn check(&mut self, v: &[u8], what: &str) {
        let a = self.value(0, b"a");
        let b = self.value(1, b"b");
        assert_eq!(a, b, "{what}: half applied (lp answers {:?})", self.lp);
        if self.committed() {
            assert_eq!(a.as_deref(), Some(v), "{what}: acknowledged, then lost");
        }
    }
}

#[test]
fn a_parallel_commit_commits_with_one_sync_each_and_forgets_everything() {
    let mut n = Net::new();
    n.commit(b"1");
    n.settle();
    assert!(n.committed(), "{:?}", n.lp);
    n.check(b"1", "no crash");
    // Each host applied its part under a version of its own: the LP must
    // not remember its writes under the answer's.
    assert!(
        n.lp.iter().all(|r| matches!(
            r,
            TxnReply::Committed {
                writes_carry_version: false,
                ..
            }
        )),
        "{:?}",
        n.lp
    );
    // The host keeps its answer until the leader's watermark passes it:
    // sent on its own a quiet second later (the timer, rushed here).
    n.tick();
    while n.step() {}
    for i in 0..2 {
        let s = n.srv(i);
        assert!(s.two_phase.decided.is_empty(), "slot {i} keeps outcomes");
        assert!(s.two_phase.closing.is_empty());
    }
    // Each side's critical path had one fdatasync (the leader's Decision
    // and the host's Decision rode along with later, lazy ones).
    for i in 0..2 {
        n.crash(i, CrashImage::POWER_LOSS);
    }
    n.settle();
    n.check(b"1", "after a power loss of both");
}

#[test]
fn the_lp_is_answered_before_the_decision_is_durable() {
    let mut n = Net::new();
    n.commit(b"1");
    // Deliver and sync until the LP is answered; the leader's Decision
    // record then waits (lazily) for a later fdatasync.
    while !n.committed() {
        assert!(n.step(), "stalled before the commit: {:?}", n.lp);
    }
    let s = n.srv(0);
    assert!(
        s.groups.lazy.iter().any(|a| matches!(
            a,
            super::super::txn_group::AfterSync::TwoPhase(AfterSync::Logged { .. })
        )),
        "the leader's decision is not lazy"
    );
    // Power loss of the leader now: its Decision is lost, its Staging and
    // the host's Prepare decide: committed.
    n.crash(0, CrashImage::POWER_LOSS);
    n.settle();
    n.check(b"1", "leader lost its decision");
    assert_eq!(n.value(0, b"a").as_deref(), Some(&b"1"[..]));
}

/// Crash `who` after `k` steps of one commit, with `image`, the servers'
/// fdatasyncs in `order`; then settle.
fn crash_at(k: usize, who: usize, image: CrashImage, order: [usize; 2]) -> bool {
    let mut n = Net::new();
    n.order = order;
    n.commit(b"1");
    let mut steps = 0;
    while steps < k && n.step() {
        steps += 1;
    }
    let ran_out = steps < k;
    n.crash(who, image);
    n.settle();
    let what = format!("crash of slot {who} after {k} steps (syncs in order {order:?})");
    n.check(b"1", &what);
    // And what recovery decided is durable: power loss of both.
    let answered = n.lp.clone();
    for i in 0..2 {
        n.crash(i, CrashImage::POWER_LOSS);
    }
    n.settle();
    n.lp = answered;
    n.check(b"1", &format!("{what}, then a power loss of both"));
    !ran_out
}

/// `crash(k, who, image, order)` after every step `k` of the protocol (until
/// it says the protocol ran out of steps first), for both kinds of crash,
/// both servers and both orders of their fdatasyncs.
fn at_every_step(crash: impl Fn(usize, usize, CrashImage, [usize; 2]) -> bool) {
    for image in [CrashImage::KILL, CrashImage::POWER_LOSS] {
        for who in 0..2 {
            for order in [[0, 1], [1, 0]] {
                let mut k = 0;
                while crash(k, who, image, order) {
                    k += 1;
                }
                assert!(k >= 6, "the protocol took only {k} steps");
            }
        }
    }
}

#[test]
fn a_crash_of_the_leader_or_the_host_at_every_step_keeps_atomicity_and_acknowledged_commits() {
    at_every_step(crash_at);
}

#[test]
fn a_host_that_refused_a_probe_votes_no_to_a_late_prepare() {
    let mut n = Net::new();
    n.commit(b"1");
    // The Prepare is lost (the host restarted before it came).
    let prepare = n.wire.pop_front().unwrap();
    assert_eq!(prepare.0.dst, 1);
    n.crash(1, CrashImage::KILL);
    n.settle();
    assert!(matches!(n.lp[..], [TxnReply::Conflict(_)]), "{:?}", n.lp);
    n.check(b"1", "refused");
    assert_eq!(n.value(0, b"a"), None);
    // The late Prepare: refused, for ever (also after a restart).
    n.crash(1, CrashImage::POWER_LOSS);
    let txid = prepare_txid(&prepare.1);
    let f = TxnFrame {
        h: prepare.0,
        payload: prepare.1,
        from_lp: false,
    };
    let mut out = Vec::new();
    n.srv[1].as_mut().unwrap().handle(&n.ctx[1], f, &mut out);
    n.srv[1]
        .as_mut()
        .unwrap()
        .sync_group_wait(&n.ctx[1], &mut out, false);
    let votes: Vec<TxnReply> = out
        .iter()
        .map(|(_, p)| TxnReply::decode(p).unwrap())
        .collect();
    assert!(
        matches!(votes[..], [TxnReply::Vote { yes: false, .. }]),
        "{votes:?}"
    );
    assert!(!n.srv(1).store.is_prepared(txid));
}

/// Issue 9: the state outlives a run. The leader's next run (a restart with
/// the same registry generation, as every new launch has) commits again;
/// the host, killed after appending that commit's Prepare (lost), is probed
/// for it and must not answer "prepared" from the first run's commit that
/// had the same transaction id: the leader would apply its part alone.
#[test]
fn a_restarted_leader_does_not_reuse_a_transaction_id_its_host_remembers() {
    let mut n = Net::new();
    n.commit(b"1");
    n.settle();
    n.check(b"1", "first run");
    // The next run: both managers start again on the same state.
    n.crash(0, CrashImage::KILL);
    n.crash(1, CrashImage::KILL);
    n.settle();
    n.lp.clear();
    n.commit(b"2");
    // The host appends the Prepare and is killed before its fdatasync.
    let prepare = n.wire.front().expect("a Prepare").0;
    assert_eq!(prepare.dst, 1);
    assert!(n.step());
    n.crash(1, CrashImage::KILL);
    n.settle();
    n.check(b"2", "the host lost the Prepare of the next run's commit");
    assert_eq!(n.value(0, b"a").as_deref(), Some(&b"1"[..]), "{:?}", n.lp);
}

fn prepare_txid(p: &[u8]) -> u64 {
    match TxnRequest::decode(p).unwrap() {
        TxnRequest::Prepare { txid, .. } => txid,
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_failed_staging_sync_aborts_both_sides() {
    let mut n = Net::new();
    n.fs[0].fail_sync(Fail::Once);
    n.commit(b"1");
    n.settle();
    assert!(matches!(n.lp[..], [TxnReply::Failed(_)]), "{:?}", n.lp);
    n.check(b"1", "failed staging");
    assert_eq!(n.value(1, b"b"), None);
    n.crash(0, CrashImage::KILL);
    n.crash(1, CrashImage::KILL);
    n.settle();
    assert_eq!(n.value(0, b"a"), None);
    assert_eq!(n.value(1, b"b"), None);
}

#[test]
fn recovery_applies_a_staged_commit_at_its_decision_not_over_later_commits() {
    let mut n = Net::new();
    n.commit(b"1");
    n.settle();
    assert!(n.committed());
    // A later commit of the leader's own key alone (a local commit).
    let set = TxnSet {
        writes: vec![WriteItem {
            subfn: 0,
            key: b"a".to_vec(),
            value: Some(b"2".to_vec()),
        }],
        ..Default::default()
    };
    let h = FrameHeader {
        kind: kind::TXN,
        src: 0,
        aux: 8,
        ..Default::default()
    };
    let f = TxnFrame {
        h,
        payload: TxnRequest::Commit { set }.encode(),
        from_lp: true,
    };
    let mut out = Vec::new();
    let s = n.srv[0].as_mut().unwrap();
    s.handle(&n.ctx[0], f, &mut out);
    s.sync_group_wait(&n.ctx[0], &mut out, false);
    n.send(out);
    assert_eq!(n.value(0, b"a").as_deref(), Some(&b"2"[..]));
    n.crash(0, CrashImage::KILL);
    n.settle();
    assert_eq!(
        n.value(0, b"a").as_deref(),
        Some(&b"2"[..]),
        "the replay put back the older value"
    );
}

#[path = "txn_forget_tests.rs"]
mod forget;
