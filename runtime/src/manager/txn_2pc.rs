//! Two-phase commit across managers, led by the manager of the LP that
//! commits (presumed abort):
//!
//! 1. The leader validates and locks its own part (if it hosts one), and
//!    sends each other host its part (`Prepare`). A host validates and
//!    locks it, logs a `Prepare` record, and once that is durable votes yes
//!    (or no at once on a conflict).
//! 2. All yes: the leader logs its own part's writes (a `Commit` record) and
//!    its `Decision` (version 0) in one fdatasync; once they are durable the
//!    transaction has committed (the commit point): it applies its part,
//!    sends `Decide` to every other host and answers its LP. Any no:
//!    `Decide(abort)`, nothing logged (no decision record means abort).
//! 3. A host logs its own `Decision` (with its version), applies, and
//!    acknowledges (`Decided`) once that is durable; the leader forgets the
//!    decision when every host has acknowledged.
//!
//! Recovery: a host's `Prepare` without a `Decision` is in doubt (after a
//! restart, or when the leader's `Decide` is late because the leader died):
//! its keys stay locked and it asks the leader (`Outcome`, every 200 ms)
//! until it gets an answer. The leader answers from its decisions (kept across
//! checkpoints until acknowledged); a transaction it does not know and is
//! not leading was never committed (presumed abort). A transaction id
//! names its leader's slot in its top 16 bits.

use super::context::Ctx;
use super::txn_server::{reply, to_manager, Outbox, Requester, TxnServer};
use crate::txn::msg::{TxnReply, TxnRequest};
use crate::txn::record::Record;
use crate::txn::storage::Storage;
use crate::txn::store::{Store, TxnSet, Version};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How often an in-doubt transaction's leader is asked.
const ASK_EVERY: Duration = Duration::from_millis(200);

/// A two-phase commit whose hosts have not all voted by then is aborted (a
/// host died): its other hosts must not keep their keys locked.
const VOTE_TIMEOUT: Duration = Duration::from_secs(2);

/// Two-phase-commit steps that wait for the group's fdatasync.
pub(super) enum AfterSync {
    /// A host: our Prepare is durable: vote yes.
    Vote { to: Requester, txid: u64 },
    /// The leader: our commit decision (and our own part's writes, at
    /// `version`) is durable.
    Decision { txid: u64, version: Version },
    /// A host: our Decision is durable: acknowledge.
    Ack { to: Requester, txid: u64 },
}

/// A two-phase commit we lead.
struct Lead {
    lp: Requester,
    started: Instant,
    /// Our own part's writes (locked in our store), if we host one.
    own: Option<Vec<crate::txn::store::WriteItem>>,
    hosts: Vec<u32>,
    waiting: Vec<u32>,
    refused: Option<String>,
}

#[derive(Default)]
pub(super) struct TwoPhase {
    /// Commits forwarded to their one host: our correlation id -> the LP.
    forwarded: HashMap<u32, Requester>,
    next_corr: u32,
    leading: HashMap<u64, Lead>,
    /// Our commit decisions, until every host acknowledged them.
    pub(super) decided: HashMap<u64, bool>,
    acks: HashMap<u64, Vec<u32>>,
    /// Prepared here, outcome unknown: when we last asked the leader.
    pub(super) in_doubt: HashMap<u64, Option<Instant>>,
}

fn leader_of(txid: u64) -> u32 {
    (txid >> 48) as u32
}

impl TwoPhase {
    /// Remember `lp` for a commit forwarded to its host; the correlation id.
    pub fn forward(&mut self, lp: Requester) -> u32 {
        self.next_corr = self.next_corr.wrapping_add(1).max(1);
        self.forwarded.insert(self.next_corr, lp);
        self.next_corr
    }

    /// Something is in flight that a checkpoint must not cut.
    pub fn busy(&self) -> bool {
        !self.leading.is_empty()
    }

    /// Start a two-phase commit of `set` over `hosts`. Our own part (if we
    /// host one) is validated and locked here at once, and goes into our log
    /// with the decision, in the same fdatasync: only the other hosts
    /// prepare (the coordinator's own part costs no round of its own).
    pub fn lead<S: Storage>(
        srv: &mut TxnServer<S>,
        ctx: &Ctx,
        lp: Requester,
        txid: u64,
        set: TxnSet,
        hosts: Vec<u32>,
        out: &mut Outbox,
    ) {
        let own = if hosts.contains(&ctx.slot) {
            match srv.store.prepare(txid, &part_for(ctx, &set, ctx.slot)) {
                Ok(part) => Some(part.writes),
                Err(c) => {
                    srv.stats.conflicts += 1;
                    srv.stats.aborts += 1;
                    return reply(ctx, out, lp, TxnReply::Conflict(c.to_string()));
                }
            }
        } else {
            None
        };
        let others: Vec<u32> = hosts.into_iter().filter(|&h| h != ctx.slot).collect();
        for &h in &others {
            let part = part_for(ctx, &set, h);
            out.push(to_manager(
                ctx,
                h,
                0,
                &TxnRequest::Prepare { txid, set: part },
            ));
        }
        let lead = Lead {
            lp,
            started: Instant::now(),
            waiting: others.clone(),
            hosts: others,
            own,
            refused: None,
        };
        srv.two_phase.leading.insert(txid, lead);
    }

    /// A host's first phase.
    pub fn prepare<S: Storage>(
        srv: &mut TxnServer<S>,
        ctx: &Ctx,
        from: Requester,
        txid: u64,
        set: TxnSet,
        out: &mut Outbox,
    ) {
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
        TwoPhase::resolve(srv, txid, commit);
        // Nobody waits for the acknowledgement but the leader's memory: no
        // fdatasync of its own for it.
        srv.after_sync_lazy(AfterSync::Ack { to: from, txid });
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
        version
    }

    /// A reply to us: from a host we forwarded a commit to, or in a
    /// two-phase commit we lead, or a leader's answer about an in-doubt one.
    pub fn on_reply<S: Storage>(
        srv: &mut TxnServer<S>,
        ctx: &Ctx,
        from: Requester,
        r: TxnReply,
        out: &mut Outbox,
    ) {
        match r {
            TxnReply::Vote { txid, yes } => Self::on_vote(srv, ctx, from.slot, txid, yes, out),
            TxnReply::Decided { txid } => {
                let tp = &mut srv.two_phase;
                if let Some(left) = tp.acks.get_mut(&txid) {
                    left.retain(|&h| h != from.slot);
                    if left.is_empty() {
                        tp.acks.remove(&txid);
                        tp.decided.remove(&txid);
                    }
                }
            }
            TxnReply::Outcome {
                txid,
                commit: Some(c),
            } => {
                if srv.two_phase.in_doubt.contains_key(&txid) {
                    TwoPhase::resolve(srv, txid, c);
                }
            }
            TxnReply::Outcome { .. } => {}
            other => {
                // The answer of a host we forwarded a commit to.
                if let Some(lp) = srv.two_phase.forwarded.remove(&from.corr) {
                    reply(ctx, out, lp, other);
                }
            }
        }
    }

    fn on_vote<S: Storage>(
        srv: &mut TxnServer<S>,
        ctx: &Ctx,
        host: u32,
        txid: u64,
        yes: bool,
        out: &mut Outbox,
    ) {
        let Some(lead) = srv.two_phase.leading.get_mut(&txid) else {
            return;
        };
        lead.waiting.retain(|&h| h != host);
        if !yes {
            lead.refused = Some(format!("slot {host} refused (a conflict)"));
        }
        if !lead.waiting.is_empty() {
            return;
        }
        if let Some(why) = lead.refused.clone() {
            srv.stats.conflicts += 1;
            return Self::abort(srv, ctx, txid, TxnReply::Conflict(why), out);
        }
        // Our own writes first, then the decision: a torn tail that keeps
        // the decision keeps the writes before it.
        let version = srv.next_version;
        srv.next_version += 1;
        let own = lead.own.take().unwrap_or_default();
        let logged = if own.is_empty() {
            Ok(())
        } else {
            srv.append(&Record::Commit {
                txid,
                version,
                writes: own,
            })
        };
        let decision = Record::Decision {
            txid,
            commit: true,
            version: 0,
        };
        match logged.and_then(|()| srv.append(&decision)) {
            Ok(()) => srv.after_sync(AfterSync::Decision { txid, version }),
            Err(e) => Self::abort(srv, ctx, txid, TxnReply::Failed(e), out),
        }
    }

    /// End a transaction we lead without committing it.
    fn abort<S: Storage>(
        srv: &mut TxnServer<S>,
        ctx: &Ctx,
        txid: u64,
        why: TxnReply,
        out: &mut Outbox,
    ) {
        let Some(lead) = srv.two_phase.leading.remove(&txid) else {
            return;
        };
        // Our own part, if any, was only locked.
        srv.store.decide(txid, false, 0);
        for &h in &lead.hosts {
            let req = TxnRequest::Decide {
                txid,
                commit: false,
            };
            out.push(to_manager(ctx, h, 0, &req));
        }
        srv.stats.aborts += 1;
        reply(ctx, out, lead.lp, why);
    }

    /// A step whose records the group's fdatasync made durable (or not).
    pub fn after_sync<S: Storage>(
        srv: &mut TxnServer<S>,
        ctx: &Ctx,
        a: AfterSync,
        synced: &Result<(), String>,
        out: &mut Outbox,
    ) {
        match (a, synced) {
            (AfterSync::Vote { to, txid }, Ok(())) => {
                reply(ctx, out, to, TxnReply::Vote { txid, yes: true })
            }
            (AfterSync::Vote { to, txid }, Err(_)) => {
                srv.store.decide(txid, false, 0);
                reply(ctx, out, to, TxnReply::Vote { txid, yes: false })
            }
            (AfterSync::Decision { txid, version }, Ok(())) => {
                let Some(lead) = srv.two_phase.leading.remove(&txid) else {
                    return;
                };
                srv.store.decide(txid, true, version);
                for &h in &lead.hosts {
                    let req = TxnRequest::Decide { txid, commit: true };
                    out.push(to_manager(ctx, h, 0, &req));
                }
                srv.two_phase.decided.insert(txid, true);
                if !lead.hosts.is_empty() {
                    srv.two_phase.acks.insert(txid, lead.hosts);
                } else {
                    srv.two_phase.decided.remove(&txid);
                }
                srv.stats.commits += 1;
                reply(ctx, out, lead.lp, TxnReply::Committed { version: txid });
            }
            (AfterSync::Decision { txid, .. }, Err(e)) => {
                Self::abort(srv, ctx, txid, TxnReply::Failed(e.clone()), out)
            }
            (AfterSync::Ack { to, txid }, Ok(())) => {
                reply(ctx, out, to, TxnReply::Decided { txid })
            }
            // Not durable: no acknowledgement, so the leader keeps the
            // decision for when we ask after a restart.
            (AfterSync::Ack { .. }, Err(_)) => {}
        }
    }

    /// The leader's answer about `txid`: `None` while it is still voting.
    pub fn outcome(&self, txid: u64) -> Option<bool> {
        if let Some(&c) = self.decided.get(&txid) {
            return Some(c);
        }
        if self.leading.contains_key(&txid) {
            return None;
        }
        // Never decided to commit: presumed abort.
        Some(false)
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
            // Our decision as the leader.
            self.decided.insert(txid, commit);
        } else {
            store.decide(txid, commit, version);
            self.in_doubt.remove(&txid);
        }
    }

    /// In-doubt transactions we led ourselves, with their outcome.
    pub fn own_in_doubt(&self, ctx: &Ctx) -> Vec<(u64, bool)> {
        let own = self.in_doubt.keys().filter(|&&t| leader_of(t) == ctx.slot);
        own.map(|&t| (t, self.decided.get(&t).copied().unwrap_or(false)))
            .collect()
    }

    /// Abort the two-phase commits we lead whose votes are late, and ask
    /// the leaders of in-doubt transactions.
    pub fn tick<S: Storage>(srv: &mut TxnServer<S>, ctx: &Ctx, out: &mut Outbox) {
        let now = Instant::now();
        let late: Vec<u64> = srv
            .two_phase
            .leading
            .iter()
            .filter(|(_, l)| now >= l.started + VOTE_TIMEOUT)
            .map(|(&t, _)| t)
            .collect();
        for txid in late {
            let why = TxnReply::Failed("a host did not vote in time (it may have died)".into());
            Self::abort(srv, ctx, txid, why, out);
        }
        srv.two_phase.ask(ctx, now, out);
    }

    /// Manager `slot` restarted or left: the two-phase commits we lead that
    /// wait for its vote will not get it (its Prepare, if logged, is in
    /// doubt there and presumed aborted): abort them now.
    pub fn host_gone<S: Storage>(srv: &mut TxnServer<S>, ctx: &Ctx, slot: u32, out: &mut Outbox) {
        let waiting: Vec<u64> = srv
            .two_phase
            .leading
            .iter()
            .filter(|(_, l)| l.waiting.contains(&slot))
            .map(|(&t, _)| t)
            .collect();
        for txid in waiting {
            let why = TxnReply::Failed(format!("slot {slot}'s manager restarted before it voted"));
            Self::abort(srv, ctx, txid, why, out);
        }
    }

    fn ask(&mut self, ctx: &Ctx, now: Instant, out: &mut Outbox) {
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

    pub fn deadline(&self) -> Option<Instant> {
        let next = |a: &Option<Instant>| a.map_or_else(Instant::now, |t| t + ASK_EVERY);
        let ask = self.in_doubt.values().map(next);
        let votes = self.leading.values().map(|l| l.started + VOTE_TIMEOUT);
        ask.chain(votes).min()
    }
}

/// The part of `set` hosted by slot `host`.
fn part_for(ctx: &Ctx, set: &TxnSet, host: u32) -> TxnSet {
    let here = |s: u32| ctx.assign.owner(s) == Some(host);
    TxnSet {
        reads: set
            .reads
            .iter()
            .filter(|r| here(r.subfn))
            .cloned()
            .collect(),
        scans: set
            .scans
            .iter()
            .filter(|s| here(s.subfn))
            .cloned()
            .collect(),
        writes: set
            .writes
            .iter()
            .filter(|w| here(w.subfn))
            .cloned()
            .collect(),
    }
}

/// Magic of a checkpoint (layout version 1).
const CHECKPOINT_MAGIC: &[u8; 8] = b"SHMCCKP1";

/// A checkpoint: the store and the decisions not yet acknowledged.
///
/// ```text
/// 0   8  magic "SHMCCKP1"
/// 8   4  n: decisions, u32 LE
/// 12  9n (txid u64 LE, commit u8) each
/// ..     the store's snapshot (`Store::encode_snapshot`)
/// ```
pub(super) fn encode_checkpoint(store: &Store, decided: &HashMap<u64, bool>) -> Vec<u8> {
    let mut b = CHECKPOINT_MAGIC.to_vec();
    b.extend_from_slice(&(decided.len() as u32).to_le_bytes());
    for (&t, &c) in decided {
        b.extend_from_slice(&t.to_le_bytes());
        b.push(u8::from(c));
    }
    b.extend_from_slice(&store.encode_snapshot());
    b
}

/// Reads a checkpoint (a file: untrusted).
pub(super) fn decode_checkpoint(b: &[u8]) -> Result<(Store, HashMap<u64, bool>), String> {
    let bad = || "checkpoint: bad header".to_string();
    let rest = b.strip_prefix(CHECKPOINT_MAGIC).ok_or_else(bad)?;
    let (n, mut rest) = rest.split_first_chunk::<4>().ok_or_else(bad)?;
    let n = u32::from_le_bytes(*n) as usize;
    if n > rest.len() / 9 {
        return Err(bad());
    }
    let mut decided = HashMap::with_capacity(n);
    for _ in 0..n {
        let (t, r) = rest.split_first_chunk::<8>().ok_or_else(bad)?;
        let (&c, r) = r.split_first().ok_or_else(bad)?;
        decided.insert(u64::from_le_bytes(*t), c != 0);
        rest = r;
    }
    let store = Store::decode_snapshot(rest).map_err(|e| format!("checkpoint: {e}"))?;
    Ok((store, decided))
}
