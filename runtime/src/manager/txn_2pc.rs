//! Two-phase commit across managers as a parallel commit, led by the
//! manager of the LP that commits; the leader's side here, the
//! participants' in `txn_2pc_host.rs`.
//!
//! One fdatasync on the critical path: the leader's own intent and the
//! participants' prepares are made durable at the same time.
//!
//! ```text
//!  LP       leader L                              participant P (each)
//!  Commit ─> validate + lock own part
//!            append Staging{txid, version,  ─Prepare─> validate + lock,
//!              participants, own part}                 append Prepare
//!            fdatasync ║                               fdatasync ║
//!            Staging durable                 <─Vote(yes)─ Prepare durable
//!            ── every vote yes and Staging durable: COMMITTED ──
//!  <─Committed apply own part                ─Decide──> apply, append
//!            append Decision(commit, v 0):                Decision(version)
//!              lazy, no fdatasync waited for  <─Decided─ (lazy fdatasync)
//!            Decision durable and every host acknowledged:
//!              forget the decision, log Finished
//!            next Decide (or Forget) carries the watermark: forget below it
//! ```
//!
//! What each side remembers after the outcome, until when, and the logged
//! forget that bounds it: `txn_forget.rs`.
//!
//! The commit point is a state, not a record: the transaction is committed
//! iff the Staging record and every participant's Prepare record are
//! durable. Any no vote (a conflict, or a Prepare whose fdatasync failed,
//! so it was cut from the log) means a participant never has a durable
//! Prepare: abort at once (`Decide(abort)`; a lazy `Decision(abort)` here
//! spares recovery the probes). A Staging whose fdatasync failed is cut
//! from the log, so the transaction can never be committed: abort.
//!
//! Recovery rules (the transaction id names its leader's slot in its top
//! 16 bits; ids never repeat, across restarts and launches on the same
//! state, because every outcome below is remembered by id, some for ever:
//! an id carries its leader's epoch, `txn_epoch.rs`, issue 9):
//!
//! | leader's log / state after restart | outcome |
//! | --- | --- |
//! | Staging and Decision(c) | c (own part applied or released) |
//! | Staging, no Decision | in doubt: probe every participant (below) |
//! | no Staging (never durable, or checkpointed with its decision kept) | the kept decision, else abort (presumed abort) |
//!
//! Probing (after a restart, when votes are late (2 s), or when a host
//! restarted before it voted): the leader asks each participant that has
//! not voted yes `Probe(txid)` every 200 ms until it answers, and the LP
//! (if it still waits) is answered once it is resolved.
//!
//! | participant's state when probed | answer |
//! | --- | --- |
//! | Prepare in its log (after that record's fdatasync), or it applied the commit and the leader's watermark is not past it | prepared |
//! | no Prepare | logs a refusal (Decision(abort) with version 0), answers refused once it is durable, and votes no to that Prepare for ever after |
//!
//! Committed iff every participant answers prepared (or voted yes) and the
//! Staging is durable (it is, after a restart: recovery made the log
//! durable). The outcome is a function of durable state, so probing again
//! after another crash gives the same answer: a prepared participant stays
//! prepared until decided; a refusal is durable; a participant that applied
//! the commit remembers it (from its Decision record) until the leader's
//! Decision is durable and its watermark says so. Participants in doubt ask
//! the leader (`Outcome`): it answers `None` while it leads or probes, else
//! from its decisions, and abort for a transaction it does not know.

use super::context::Ctx;
use super::txn_server::{reply, to_manager, Outbox, Requester, TxnServer};
use crate::txn::msg::{TxnReply, TxnRequest};
use crate::txn::record::Record;
use crate::txn::storage::Storage;
use crate::txn::store::{TxnSet, Version};
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

/// How often an in-doubt transaction's leader, or a participant being
/// probed, is asked.
pub(super) const ASK_EVERY: Duration = Duration::from_millis(200);

/// A two-phase commit whose hosts have not all voted by then is resolved by
/// probing them (a host may have died).
const VOTE_TIMEOUT: Duration = Duration::from_secs(2);

/// Two-phase-commit steps that wait for the group's fdatasync.
pub(super) enum AfterSync {
    /// A host: our Prepare is durable: vote yes.
    Vote { to: Requester, txid: u64 },
    /// The leader: our Staging record is durable.
    Staged { txid: u64 },
    /// The leader: our (lazy) Decision record is durable.
    Logged { txid: u64 },
    /// A host: our Decision is durable: acknowledge.
    Ack { to: Requester, txid: u64 },
    /// A host: answer a probe now that what it depends on is durable.
    Probed { to: Requester, txid: u64 },
    /// A participant: its Forget record is durable (nothing to do).
    Forgot,
}

/// A two-phase commit we lead (or resolve after a restart).
pub(super) struct Lead {
    /// Who waits for the outcome (none after a restart).
    lp: Option<Requester>,
    started: Instant,
    /// The version our own writes carry.
    version: Version,
    pub(super) hosts: Vec<u32>,
    /// Hosts not known to have a durable Prepare yet.
    waiting: Vec<u32>,
    /// Our Staging record is durable.
    staged: bool,
    /// Resolving by probes: when the waiting hosts were last probed.
    probing: Option<Option<Instant>>,
}

/// A committed transaction we led, until every host acknowledged it.
pub(super) struct Closing {
    pub(super) hosts: Vec<u32>,
    pub(super) unacked: Vec<u32>,
    /// Our Decision record is durable.
    pub(super) logged: bool,
    /// Its record failed: append it again (`txn_forget.rs`).
    pub(super) retry_log: bool,
    /// When the Decide was last sent (none: due).
    pub(super) sent: Option<Instant>,
}

impl Closing {
    /// A decision found in the log or a checkpoint: durable, not known to
    /// be acknowledged: sent again.
    pub(super) fn recovered(hosts: Vec<u32>) -> Closing {
        Closing {
            unacked: hosts.clone(),
            hosts,
            logged: true,
            retry_log: false,
            sent: None,
        }
    }
}

#[derive(Default)]
pub(super) struct TwoPhase {
    /// Commits forwarded to their one host: our correlation id -> the LP.
    forwarded: HashMap<u32, Requester>,
    next_corr: u32,
    pub(super) leading: HashMap<u64, Lead>,
    /// A participant's answers about other leaders' transactions: the
    /// commits it applied and its refusals, until their leader's watermark
    /// passes them (`txn_forget.rs`); also a leader's decisions from a
    /// checkpoint of the first layout. Kept across checkpoints.
    pub(super) decided: BTreeMap<u64, bool>,
    /// A leader's commit decisions until every host acknowledged them.
    /// Kept across checkpoints.
    pub(super) closing: HashMap<u64, Closing>,
    /// A participant: each leader's latest watermark.
    pub(super) finished: HashMap<u32, u64>,
    /// A leader: the watermark each host was last told.
    pub(super) told: HashMap<u32, u64>,
    /// A leader: when to send again what was not acknowledged.
    pub(super) sweep_at: Option<Instant>,
    /// Prepared here, outcome unknown: when we last asked the leader.
    pub(super) in_doubt: HashMap<u64, Option<Instant>>,
    /// Staging records replayed (txid -> version, participants), until
    /// recovery settles them.
    pub(super) staged: HashMap<u64, (Version, Vec<u32>)>,
}

pub(super) fn leader_of(txid: u64) -> u32 {
    (txid >> 48) as u32
}

impl TwoPhase {
    /// Remember `lp` for a commit forwarded to its host; the correlation id.
    pub fn forward(&mut self, lp: Requester) -> u32 {
        self.next_corr = self.next_corr.wrapping_add(1).max(1);
        self.forwarded.insert(self.next_corr, lp);
        self.next_corr
    }

    /// The LP a forwarded commit's answer goes to.
    pub fn forwarded(&mut self, corr: u32) -> Option<Requester> {
        self.forwarded.remove(&corr)
    }

    /// Something is in flight that a checkpoint must not cut.
    pub fn busy(&self) -> bool {
        !self.leading.is_empty()
    }

    /// Start a parallel commit of `set` over `hosts`: our own part (if we
    /// host one) is validated and locked at once and goes into our Staging
    /// record, which is synced while the other hosts prepare.
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
                Ok(part) => part,
                Err(c) => {
                    srv.stats.conflicts += 1;
                    srv.stats.aborts += 1;
                    return reply(ctx, out, lp, TxnReply::Conflict(c.to_string()));
                }
            }
        } else {
            TxnSet::default()
        };
        let others: Vec<u32> = hosts.into_iter().filter(|&h| h != ctx.slot).collect();
        let version = srv.next_version;
        srv.next_version += 1;
        let staging = Record::Staging {
            txid,
            version,
            participants: others.clone(),
            set: own,
        };
        if let Err(e) = srv.append(&staging) {
            srv.store.decide(txid, false, 0);
            srv.stats.aborts += 1;
            return reply(ctx, out, lp, TxnReply::Failed(e));
        }
        crate::failpoint::hit("leader-staged");
        // The prepares go out before our fdatasync starts (the loop sends
        // the outbox first): both are made durable at the same time.
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
            lp: Some(lp),
            started: Instant::now(),
            version,
            waiting: others.clone(),
            hosts: others,
            staged: false,
            probing: None,
        };
        srv.two_phase.leading.insert(txid, lead);
        srv.after_sync(AfterSync::Staged { txid });
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
            TxnReply::Vote { txid, yes }
            | TxnReply::Probed {
                txid,
                prepared: yes,
            } => Self::on_vote(srv, ctx, from.slot, txid, yes, out),
            TxnReply::Decided { txid } => {
                if let Some(c) = srv.two_phase.closing.get_mut(&txid) {
                    c.unacked.retain(|&h| h != from.slot);
                }
                Self::finish(srv, txid);
            }
            TxnReply::Outcome {
                txid,
                commit: Some(c),
            } => Self::on_outcome(srv, from, txid, c),
            TxnReply::Outcome { .. } => {}
            other => {
                // The answer of a host we forwarded a commit to.
                if let Some(lp) = srv.two_phase.forwarded(from.corr) {
                    reply(ctx, out, lp, other);
                }
            }
        }
    }

    /// Host `host` has a durable Prepare (`yes`) or never will.
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
        if !lead.waiting.contains(&host) {
            return;
        }
        if !yes {
            srv.stats.conflicts += 1;
            let why = TxnReply::Conflict(format!("slot {host} refused (a conflict)"));
            return Self::abort(srv, ctx, txid, why, out);
        }
        lead.waiting.retain(|&h| h != host);
        Self::settle(srv, ctx, txid, out);
    }

    /// Commit once every host voted yes and our Staging is durable.
    fn settle<S: Storage>(srv: &mut TxnServer<S>, ctx: &Ctx, txid: u64, out: &mut Outbox) {
        let Some(lead) = srv.two_phase.leading.get(&txid) else {
            return;
        };
        if !lead.waiting.is_empty() || !lead.staged {
            return;
        }
        let Some(lead) = srv.two_phase.leading.remove(&txid) else {
            return;
        };
        crate::failpoint::hit("leader-committed");
        srv.store.decide(txid, true, lead.version);
        let next = srv.upcoming_txid(ctx);
        let tp = &mut srv.two_phase;
        // Before the Decides: their watermark must not pass it.
        let mut c = Closing::recovered(lead.hosts.clone());
        (c.logged, c.sent) = (false, Some(Instant::now()));
        tp.closing.insert(txid, c);
        for &h in &lead.hosts {
            let req = tp.decide_for(h, txid, true, next);
            out.push(to_manager(ctx, h, 0, &req));
        }
        super::txn_forget::log_decision_lazily(srv, txid);
        srv.stats.commits += 1;
        if let Some(lp) = lead.lp {
            // Each host applied its part under its own version: the LP gets
            // the transaction's id, and must not take it for its writes'.
            let r = TxnReply::Committed {
                version: txid,
                writes_carry_version: false,
            };
            reply(ctx, out, lp, r);
        }
        // With the answer sent, before the Decision is durable.
        srv.point_after_send = Some("leader-acknowledged");
    }

    /// End a transaction we lead without committing it (it cannot commit:
    /// a host refused, or our Staging is not durable).
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
        srv.store.decide(txid, false, 0);
        let next = srv.upcoming_txid(ctx);
        for &h in &lead.hosts {
            let req = srv.two_phase.decide_for(h, txid, false, next);
            out.push(to_manager(ctx, h, 0, &req));
        }
        // Spares a restart the probes; presumed abort holds without it.
        let _ = srv.append(&Record::Decision {
            txid,
            commit: false,
            version: 0,
        });
        srv.stats.aborts += 1;
        if let Some(lp) = lead.lp {
            reply(ctx, out, lp, why);
        }
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
            (AfterSync::Staged { txid }, Ok(())) => {
                if let Some(lead) = srv.two_phase.leading.get_mut(&txid) {
                    lead.staged = true;
                    Self::settle(srv, ctx, txid, out);
                }
            }
            // Cut from the log: it can never commit.
            (AfterSync::Staged { txid }, Err(e)) => {
                Self::abort(srv, ctx, txid, TxnReply::Failed(e.clone()), out)
            }
            (AfterSync::Logged { txid }, Ok(())) => {
                if let Some(c) = srv.two_phase.closing.get_mut(&txid) {
                    c.logged = true;
                }
                Self::finish(srv, txid);
            }
            // Not durable: the hosts keep their answers (a restart probes)
            // and the record is appended again.
            (AfterSync::Logged { txid }, Err(_)) => srv.two_phase.decision_not_logged(txid),
            (a, synced) => Self::host_after_sync(srv, ctx, a, synced, out),
        }
    }

    /// The leader's answer about `txid`: `None` while it is still voting
    /// or probing (first: that is the truth now), then its decisions.
    pub fn outcome(&self, txid: u64) -> Option<bool> {
        if self.leading.contains_key(&txid) {
            return None;
        }
        if self.closing.contains_key(&txid) {
            return Some(true);
        }
        if let Some(&c) = self.decided.get(&txid) {
            return Some(c);
        }
        // Never staged durably, aborted, or acknowledged by every host
        // (none asks then): presumed abort.
        Some(false)
    }

    /// Recovery: a Staging record.
    pub fn replay_staging(
        &mut self,
        store: &mut crate::txn::store::Store,
        txid: u64,
        version: Version,
        participants: Vec<u32>,
        set: TxnSet,
    ) {
        if !set.is_empty() {
            store.restore_prepared(txid, set);
        }
        for &p in &participants {
            // Told our watermark once recovered (`txn_forget.rs`).
            self.told.entry(p).or_insert(0);
        }
        self.staged.insert(txid, (version, participants));
    }

    /// Recovery, after the replay: the Staging records without a Decision
    /// (those with one were settled when it was replayed) are in doubt:
    /// resolved by probing. Returns the highest version they carry.
    pub fn settle_staged(&mut self) -> Version {
        let mut max = 0;
        for (txid, (version, hosts)) in std::mem::take(&mut self.staged) {
            max = max.max(version);
            let lead = Lead {
                lp: None,
                started: Instant::now(),
                version,
                waiting: hosts.clone(),
                hosts,
                staged: true,
                probing: Some(None),
            };
            self.leading.insert(txid, lead);
        }
        if !self.closing.is_empty() || !self.told.is_empty() {
            // Decisions found in the log or the checkpoint: sent again;
            // the participants found there: told our watermark.
            self.sweep_at = Some(Instant::now());
        }
        max
    }

    /// Probe the hosts of commits we lead whose votes are late; ask the
    /// leaders of in-doubt transactions.
    pub fn tick<S: Storage>(srv: &mut TxnServer<S>, ctx: &Ctx, out: &mut Outbox) {
        let now = Instant::now();
        let mut settle = Vec::new();
        for (&txid, lead) in srv.two_phase.leading.iter_mut() {
            if lead.probing.is_none() && now >= lead.started + VOTE_TIMEOUT {
                lead.probing = Some(None);
            }
            let Some(last) = &mut lead.probing else {
                continue;
            };
            if last.is_some_and(|t| now < t + ASK_EVERY) {
                continue;
            }
            *last = Some(now);
            for &h in &lead.waiting {
                if h < ctx.slots() {
                    out.push(to_manager(ctx, h, 0, &TxnRequest::Probe { txid }));
                }
            }
            if lead.waiting.is_empty() {
                settle.push(txid);
            }
        }
        for txid in settle {
            Self::settle(srv, ctx, txid, out);
        }
        srv.two_phase.ask(ctx, now, out);
        Self::sweep(srv, ctx, now, out);
    }

    /// Manager `slot` restarted or left: the commits we lead that wait for
    /// its vote will not get it: probe it (its Prepare may be durable).
    pub fn host_gone<S: Storage>(srv: &mut TxnServer<S>, slot: u32) {
        for lead in srv.two_phase.leading.values_mut() {
            if lead.waiting.contains(&slot) && lead.probing.is_none() {
                lead.probing = Some(None);
            }
        }
    }

    pub fn deadline(&self) -> Option<Instant> {
        let next = |a: &Option<Instant>| a.map_or_else(Instant::now, |t| t + ASK_EVERY);
        let ask = self.in_doubt.values().map(next);
        let votes = self.leading.values().map(|l| match &l.probing {
            Some(p) => next(p),
            None => l.started + VOTE_TIMEOUT,
        });
        ask.chain(votes).chain(self.sweep_at).min()
    }

    /// Tests: every timer is due.
    #[cfg(test)]
    pub fn rush(&mut self) {
        for a in self.in_doubt.values_mut() {
            *a = None;
        }
        for l in self.leading.values_mut() {
            l.probing = Some(None);
        }
        for c in self.closing.values_mut() {
            c.sent = None;
        }
        self.sweep_at = Some(Instant::now());
    }
}

/// The part of `set` hosted by slot `host`.
fn part_for(ctx: &Ctx, set: &TxnSet, host: u32) -> TxnSet {
    set.filter(|s| ctx.assign.owner(s) == Some(host))
}

#[cfg(test)]
#[path = "txn_2pc_tests.rs"]
mod tests;
