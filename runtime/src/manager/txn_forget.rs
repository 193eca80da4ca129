//! What a two-phase commit remembers after its outcome, why, and the
//! logged forget that keeps it bounded by the transactions in flight.
//!
//! # What is remembered, and until when
//!
//! The protocol is drawn in `txn_2pc.rs`. Presumed abort holds throughout:
//! a leader asked about one of its transactions that it neither leads nor
//! remembers answers abort, and a participant probed about one it neither
//! prepared nor remembers refuses it. Nothing is remembered to say "abort".
//!
//! * **A participant's applied commit** (`TwoPhase::decided`, true): a
//!   leader that restarts with its Staging durable but not its Decision
//!   probes each participant, and "prepared" is the only true answer from a
//!   participant that already applied the commit (its Prepare is settled).
//!   Probes about `t` come only from a leader whose Decision of `t` is not
//!   durable: once it is, a restart finds the Decision (or the checkpoint
//!   that keeps `t` in `closing`) and never probes `t`. So the memory is
//!   needed exactly until the leader's Decision of `t` is durable.
//! * **A participant's refusal** (`decided`, false): it answered a probe
//!   "never prepared"; a Prepare of `t` still on its way must then vote no.
//!   Needed until the leader can send no Prepare and no probe of `t`: once
//!   `t` is neither led nor staged there.
//! * **A leader's commit decision** (`TwoPhase::closing`): a participant
//!   with a durable Prepare and no durable Decision (its Decide was lost,
//!   or it crashed before logging it) asks the leader (`Outcome`), and only
//!   "commit" is right. Needed until every participant acknowledged the
//!   Decide (`Decided`, sent once its Decision record is durable): then no
//!   participant is in doubt about `t` and none will ask. An abort needs no
//!   memory (presumed abort).
//!
//! # The forget
//!
//! The leader tells each participant `P` a low watermark `W(P)`: the
//! smallest of its ids that it still leads with `P` among the hosts, that
//! it decided with `P` among the hosts and whose Decision is not durable,
//! and the next id it will hand out (ids rise: `txn_epoch.rs`). Below
//! `W(P)` the leader will send `P` no Prepare and no probe, for ever: `P`
//! drops every answer it keeps about the leader's ids below `W(P)`, refuses
//! a Prepare below it, and logs `Record::Forget` so that a restart does not
//! bring them back. The watermark rides on every `Decide` (no message of
//! its own on the commit path); a leader that goes quiet sends the latest
//! once in a `Forget` a second later ([`SWEEP_EVERY`]), so an idle
//! participant keeps nothing.
//!
//! The leader drops a decision once every participant acknowledged it and
//! it is durable, and logs `Record::Finished { txid }`, so that a restart
//! does not rebuild it from the Staging and Decision records the log still
//! holds. (Per transaction, not a watermark: a decision a dead participant
//! pins would hold a watermark back, and a restart would then rebuild every
//! decision logged since.)
//! Decisions that a restart rebuilds from the log tail (acknowledged, but
//! the Finished record was not durable yet) are sent again (`Decide`) until
//! acknowledged; so is any decision not acknowledged within a second (a
//! lost frame). A participant answers a Decide about a transaction it no
//! longer holds with `Decided` at once, and acknowledges an outcome it
//! learned by asking (`Outcome`) once its Decision is durable.
//!
//! Neither record is synced on its own: each is appended to the log's
//! buffer and made durable by the fdatasync that follows anyway (the
//! participant's lazy one for its Decision, the leader's next group). A
//! Forget or Finished lost to a crash only brings back entries that the
//! next watermark drops again (or decisions sent again and acknowledged):
//! more memory for a while, never a wrong answer. Checkpoints keep what is
//! left (`txn_checkpoint.rs`) and the participants' watermarks.
//!
//! # Bounds
//!
//! A participant keeps, per leader, the commits at or above `W(P)`: those
//! in flight at that leader, plus those it decided since the last Decide
//! or Forget reached `P` (none after a quiet second). A leader keeps the
//! commits not yet acknowledged by every participant: those in flight. A
//! dead participant pins at its leaders the commits it had not
//! acknowledged when it died (no new commit with it can reach a decision:
//! it cannot vote), until it restarts and asks (`Outcome`) or answers the
//! Decide sent again; it pins nothing at the other participants (each has
//! its own watermark). A leader that dies with commits in doubt pins, at
//! its participants, its ids from the oldest in doubt on, until it
//! restarts and resolves them. The legacy layout of checkpoints (before
//! this) kept a leader's decisions without their participants: those are
//! kept for ever, as before.

use super::context::Ctx;
use super::txn_2pc::{leader_of, AfterSync, TwoPhase};
use super::txn_server::{to_manager, Outbox, TxnServer};
use crate::txn::msg::TxnRequest;
use crate::txn::record::Record;
use crate::txn::storage::Storage;
use std::time::{Duration, Instant};

/// How often a leader sends again the decisions not acknowledged, and its
/// latest watermark to participants that did not get it.
pub(super) const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// The ids of leader `slot`: `[slot << 48, (slot + 1) << 48)`.
fn ids_of(slot: u32) -> std::ops::Range<u64> {
    let lo = u64::from(slot) << 48;
    lo..lo.saturating_add(1 << 48)
}

impl TwoPhase {
    /// The leader's watermark for participant `host` (see the module doc):
    /// `next` is the next id the leader hands out.
    pub(super) fn finished_below(&self, host: u32, next: u64) -> u64 {
        let led = self.leading.iter().filter(|(_, l)| l.hosts.contains(&host));
        let open = self
            .closing
            .iter()
            .filter(|(_, c)| !c.logged && c.hosts.contains(&host));
        led.map(|(&t, _)| t)
            .chain(open.map(|(&t, _)| t))
            .fold(next, u64::min)
    }

    /// A `Decide` of `txid` for `host`, with its watermark.
    pub(super) fn decide_for(
        &mut self,
        host: u32,
        txid: u64,
        commit: bool,
        next: u64,
    ) -> TxnRequest {
        let finished_below = self.finished_below(host, next);
        self.told.insert(host, finished_below);
        self.sweep_at
            .get_or_insert_with(|| Instant::now() + SWEEP_EVERY);
        TxnRequest::Decide {
            txid,
            commit,
            finished_below,
        }
    }

    /// A decision every participant acknowledged and that is durable here:
    /// drop it, and log that (no fdatasync of its own).
    pub(super) fn finish<S: Storage>(srv: &mut TxnServer<S>, txid: u64) {
        let tp = &mut srv.two_phase;
        if !tp
            .closing
            .get(&txid)
            .is_some_and(|c| c.logged && c.unacked.is_empty())
        {
            return;
        }
        tp.closing.remove(&txid);
        // An append that fails (or is lost in a crash) leaves the decision
        // to a restart, which sends it again.
        if srv.append(&Record::Finished { txid }).is_ok() {
            crate::failpoint::hit("leader-finished");
        }
    }

    /// A participant: leader `leader` will never ask about its ids below
    /// `below` again: forget them, durably with the next fdatasync.
    pub(super) fn on_watermark<S: Storage>(srv: &mut TxnServer<S>, leader: u32, below: u64) {
        let ids = ids_of(leader);
        let tp = &mut srv.two_phase;
        // The latest, not the highest: a leader whose state was made anew
        // starts its ids lower again.
        tp.finished.insert(leader, below);
        let end = below.clamp(ids.start, ids.end);
        let gone: Vec<u64> = tp.decided.range(ids.start..end).map(|(&t, _)| t).collect();
        if gone.is_empty() {
            return;
        }
        for t in &gone {
            tp.decided.remove(t);
        }
        // Not logged (a failed group): the entries come back after a
        // restart, until the next watermark. Logged: durable with the next
        // fdatasync (a Decide's own acknowledgement waits for one anyway).
        if srv.append(&Record::Forget { leader, below }).is_ok() {
            srv.after_sync_lazy(AfterSync::Forgot);
        }
        crate::failpoint::hit("host-forgetting");
    }

    /// Below the watermark of its leader: nothing will ask about `txid`.
    pub(super) fn forgotten(&self, txid: u64) -> bool {
        self.finished
            .get(&leader_of(txid))
            .is_some_and(|&w| txid < w)
    }

    /// Recovery: a participant's `Record::Forget`.
    pub(super) fn replay_forget(&mut self, leader: u32, below: u64) {
        let ids = ids_of(leader);
        self.finished.insert(leader, below);
        let end = below.clamp(ids.start, ids.end);
        let gone: Vec<u64> = self
            .decided
            .range(ids.start..end)
            .map(|(&t, _)| t)
            .collect();
        for t in gone {
            self.decided.remove(&t);
        }
    }

    /// Recovery: a leader's `Record::Finished`.
    pub(super) fn replay_finished(&mut self, txid: u64) {
        self.closing.remove(&txid);
    }

    /// The timer: send again the decisions not acknowledged within
    /// [`SWEEP_EVERY`] (and log again those whose record failed), and the
    /// latest watermark to participants whose last one is behind.
    pub(super) fn sweep<S: Storage>(
        srv: &mut TxnServer<S>,
        ctx: &Ctx,
        now: Instant,
        out: &mut Outbox,
    ) {
        if srv.two_phase.sweep_at.is_none_or(|t| now < t) {
            return;
        }
        srv.two_phase.sweep_at = None;
        let next = srv.upcoming_txid(ctx);
        let mut again = Vec::new();
        let mut relog = Vec::new();
        for (&txid, c) in srv.two_phase.closing.iter_mut() {
            if c.retry_log {
                c.retry_log = false;
                relog.push(txid);
            }
            if c.sent.is_none_or(|t| now >= t + SWEEP_EVERY) {
                c.sent = Some(now);
                again.extend(c.unacked.iter().map(|&h| (h, txid)));
            }
        }
        for txid in relog {
            log_decision_lazily(srv, txid);
        }
        let tp = &mut srv.two_phase;
        for (h, txid) in again {
            if h < ctx.slots() {
                let req = tp.decide_for(h, txid, true, next);
                out.push(to_manager(ctx, h, 0, &req));
            }
        }
        let hosts: Vec<(u32, u64)> = tp.told.iter().map(|(&h, &w)| (h, w)).collect();
        for (h, told) in hosts {
            let below = tp.finished_below(h, next);
            if below > told && h < ctx.slots() {
                tp.told.insert(h, below);
                out.push(to_manager(ctx, h, 0, &TxnRequest::Forget { below }));
            }
        }
        if !tp.closing.is_empty() || !tp.leading.is_empty() {
            tp.sweep_at = Some(now + SWEEP_EVERY);
        }
    }

    /// Our Decision record of `txid` was not made durable: log it again at
    /// the next sweep (until then the participants keep their answers).
    pub(super) fn decision_not_logged(&mut self, txid: u64) {
        mark_retry(self, txid);
    }

    /// Outcomes remembered: a participant's answers, a leader's decisions
    /// not acknowledged by every participant.
    pub fn remembered(&self) -> (u64, u64) {
        (self.decided.len() as u64, self.closing.len() as u64)
    }
}

/// Append a leader's commit Decision of `txid` without a sync of its own
/// (nobody waits for it: it rides along with a later group's fdatasync;
/// until it is durable, a restart probes); one that fails to be appended is
/// appended again by the next [`TwoPhase::sweep`].
pub(super) fn log_decision_lazily<S: Storage>(srv: &mut TxnServer<S>, txid: u64) {
    let d = Record::Decision {
        txid,
        commit: true,
        version: 0,
    };
    match srv.append(&d) {
        Ok(()) => srv.after_sync_lazy(AfterSync::Logged { txid }),
        Err(_) => mark_retry(&mut srv.two_phase, txid),
    }
}

fn mark_retry(tp: &mut TwoPhase, txid: u64) {
    if let Some(c) = tp.closing.get_mut(&txid) {
        c.retry_log = true;
        tp.sweep_at
            .get_or_insert_with(|| Instant::now() + SWEEP_EVERY);
    }
}
