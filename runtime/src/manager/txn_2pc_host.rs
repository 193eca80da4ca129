//! Two-phase commit: a participant's side (the protocol and its recovery
//! rules are drawn in `txn_2pc.rs`). A participant validates and locks its
//! part, logs a Prepare and votes yes once that is durable; applies the
//! leader's decision; answers the leader's probes (prepared, or refused for
//! ever); and, while in doubt, asks the leader for the outcome. What it
//! remembers afterwards, and when it forgets: `txn_forget.rs`.

use super::context::Ctx;
use super::txn_2pc::{leader_of, AfterSync, TwoPhase, ASK_EVERY};
use super::txn_server::{reply, to_manager, Outbox, Requester, TxnServer};
use crate::txn::msg::{TxnReply, TxnRequest};
use crate::txn::record::Record;
use crate::txn::storage::Storage;
use crate::txn::store::{Store, TxnSet, Version};
use std::time::Instant;

impl TwoPhase {
    /// A host's first phase.
    pub fn prepare<S: Storage>(
        srv: &mut TxnServer<S>,
        ctx: &Ctx,
        from: Requester,
        txid: u64,
        set: TxnSet,
        out: &mut Outbox,
    ) {
        let tp = &srv.two_phase;
        if tp.decided.get(&txid) == Some(&false) || tp.forgotten(txid) {
            // Refused when its leader probed: never prepared, for ever; or
            // below its leader's watermark: a Prepare from the past.
            return reply(ctx, out, from, TxnReply::Vote { txid, yes: false });
        }
        let part = match srv.store.prepare(txid, &set) {
            Ok(p) => p,
            Err(_) => return reply(ctx, out, from, TxnReply::Vote { txid, yes: false }),
        };
        let r = Record::Prepare {
            txid,
            coordinator: from.slot,
            set: part,
        };
        if srv.append(&r).is_err() {
            srv.store.decide(txid, false, 0);
            return reply(ctx, out, from, TxnReply::Vote { txid, yes: false });
        }
        crate::failpoint::hit("host-prepared");
        // In doubt until the leader decides: if its Decide does not come
        // (it died), we ask it (its successor) for the outcome.
        srv.two_phase.in_doubt.insert(txid, Some(Instant::now()));
        srv.after_sync(AfterSync::Vote { to: from, txid });
    }

    /// A host's second phase.
    pub fn decide<S: Storage>(
        srv: &mut TxnServer<S>,
        ctx: &Ctx,
        from: Requester,
        txid: u64,
        commit: bool,
        out: &mut Outbox,
    ) {
        if !srv.store.is_prepared(txid) {
            // Refused at prepare, or decided already: nothing to do.
            return reply(ctx, out, from, TxnReply::Decided { txid });
        }
        crate::failpoint::hit("host-deciding");
        TwoPhase::resolve(srv, txid, commit);
        // Nobody waits for the acknowledgement but the leader's memory: no
        // fdatasync of its own for it.
        srv.after_sync_lazy(AfterSync::Ack { to: from, txid });
    }

    /// A leader resolving `txid` asks whether our Prepare is durable. The
    /// answer goes after the next fdatasync: a Prepare (or a refusal) we
    /// appended is durable by then.
    pub fn probe<S: Storage>(srv: &mut TxnServer<S>, from: Requester, txid: u64) {
        let known = srv.two_phase.decided.contains_key(&txid);
        if !known && !srv.store.is_prepared(txid) {
            // Never prepared here: refuse it for ever, durably.
            srv.two_phase.decided.insert(txid, false);
            let refusal = Record::Decision {
                txid,
                commit: false,
                version: 0,
            };
            if srv.append(&refusal).is_err() {
                // No answer: the leader probes again.
                return;
            }
        }
        srv.after_sync(AfterSync::Probed { to: from, txid });
    }

    /// Log and apply the outcome of a transaction prepared here; returns
    /// its version here. If the record cannot be logged the outcome is
    /// still applied: after a crash the Prepare is in doubt again and the
    /// leader is asked again.
    pub fn resolve<S: Storage>(srv: &mut TxnServer<S>, txid: u64, commit: bool) -> Version {
        let version = srv.next_version;
        srv.next_version += 1;
        let _ = srv.append(&Record::Decision {
            txid,
            commit,
            version,
        });
        srv.store.decide(txid, commit, version);
        srv.two_phase.in_doubt.remove(&txid);
        if commit && !srv.two_phase.forgotten(txid) {
            // Until the leader's own decision is durable it may probe us.
            srv.two_phase.decided.insert(txid, true);
        }
        version
    }

    /// The leader's answer about a transaction in doubt here: applied, and
    /// acknowledged once durable (the leader keeps a commit until then).
    pub(super) fn on_outcome<S: Storage>(
        srv: &mut TxnServer<S>,
        leader: Requester,
        txid: u64,
        commit: bool,
    ) {
        if srv.two_phase.in_doubt.contains_key(&txid) {
            TwoPhase::resolve(srv, txid, commit);
            srv.after_sync_lazy(AfterSync::Ack { to: leader, txid });
        }
    }

    /// A participant's steps once the group's fdatasync is done.
    pub(super) fn host_after_sync<S: Storage>(
        srv: &mut TxnServer<S>,
        ctx: &Ctx,
        a: AfterSync,
        synced: &Result<(), String>,
        out: &mut Outbox,
    ) {
        match (a, synced) {
            (AfterSync::Vote { to, txid }, Ok(())) => {
                crate::failpoint::hit("host-durable");
                srv.point_after_send = Some("host-voted");
                reply(ctx, out, to, TxnReply::Vote { txid, yes: true })
            }
            (AfterSync::Vote { to, txid }, Err(_)) => {
                srv.store.decide(txid, false, 0);
                srv.two_phase.in_doubt.remove(&txid);
                reply(ctx, out, to, TxnReply::Vote { txid, yes: false })
            }
            (AfterSync::Ack { to, txid }, Ok(())) => {
                reply(ctx, out, to, TxnReply::Decided { txid })
            }
            // Not durable: no acknowledgement, so the leader keeps the
            // decision for when we ask after a restart.
            (AfterSync::Ack { .. }, Err(_)) => {}
            (AfterSync::Probed { to, txid }, Ok(())) => {
                let tp = &srv.two_phase;
                let prepared = match tp.decided.get(&txid) {
                    Some(&c) => c,
                    None => srv.store.is_prepared(txid),
                };
                reply(ctx, out, to, TxnReply::Probed { txid, prepared })
            }
            // Unknown: no answer, the leader probes again.
            (AfterSync::Probed { .. }, Err(_)) => {}
            // The leader's steps are handled by `TwoPhase::after_sync`.
            (AfterSync::Staged { .. } | AfterSync::Logged { .. } | AfterSync::Forgot, _) => {}
        }
    }

    pub fn replay_prepare(&mut self, store: &mut Store, txid: u64, set: TxnSet) {
        store.restore_prepared(txid, set);
        self.in_doubt.insert(txid, None);
    }

    pub fn replay_decision(
        &mut self,
        store: &mut Store,
        txid: u64,
        commit: bool,
        version: Version,
    ) {
        if version == 0 {
            // Our decision as the leader (after its Staging), or our
            // refusal as a participant.
            if let Some((v, hosts)) = self.staged.remove(&txid) {
                // Applied here, in the log's order: a later commit on the
                // same keys comes after it.
                store.decide(txid, commit, v);
                if commit {
                    // Acknowledged or not: sent again until it is (a
                    // Finished record later in the log drops it).
                    self.closing
                        .insert(txid, super::txn_2pc::Closing::recovered(hosts));
                }
            } else if !self.forgotten(txid) {
                self.decided.insert(txid, commit);
            }
        } else {
            store.decide(txid, commit, version);
            self.in_doubt.remove(&txid);
            if commit && !self.forgotten(txid) {
                self.decided.insert(txid, true);
            }
        }
    }

    /// Ask the leaders of the transactions in doubt here.
    pub(super) fn ask(&mut self, ctx: &Ctx, now: Instant, out: &mut Outbox) {
        for (&txid, asked) in self.in_doubt.iter_mut() {
            if asked.is_some_and(|t| now < t + ASK_EVERY) {
                continue;
            }
            *asked = Some(now);
            let leader = leader_of(txid);
            if leader < ctx.slots() {
                out.push(to_manager(ctx, leader, 0, &TxnRequest::Outcome { txid }));
            }
        }
    }
}
