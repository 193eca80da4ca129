//! The manager's state report: what it counts, what its LP told it
//! (custom values, and what the LP took from and rejected on its direct
//! rings, which the manager cannot see), when the next report is due, and
//! how the parts' figures become one [`LpReport`].

use super::context::Ctx;
use super::coordinator::state_name;
use crate::report::{LinkLoss, LpReport, ManagerReport, Rejected, RingDepth};
use crate::wire::DirectStats;
use shmcollab_shm::auth::RxStats;
use shmcollab_shm::registry::monotonic_ms;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// A changed state is reported at most this often.
const DIRTY_EVERY: Duration = Duration::from_millis(20);
/// A manager that moved nothing since its last report reports this often
/// (or at its interval if longer): an idle collaboration of hundreds of
/// managers must not wake each of them 5 times a second to say nothing new.
const IDLE_EVERY: Duration = Duration::from_secs(2);
/// Custom values an LP may publish, and their sizes: so that a report
/// always fits a frame and the status area.
const MAX_CUSTOM: usize = 64;
const MAX_KEY: usize = 64;
const MAX_VALUE: usize = 1024;

/// What the manager counts.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Counters {
    pub msgs_in: u64,
    pub msgs_out: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub dropped: u64,
    pub bad_batches: u64,
    pub bad_rings: u64,
}

/// The figures of the other parts a report needs.
pub(super) struct Inputs {
    pub lp_pid: Option<u32>,
    pub restarts: u32,
    /// Rejected frames on the links the manager reads.
    pub rejects: RxStats,
    /// The same per link (name as in [`crate::report::LinkLoss::link`]).
    pub links: Vec<(String, RxStats)>,
    pub depths: (u64, u64),
    pub pending: usize,
    pub txn: crate::report::TxnReport,
    /// The LP's sandbox, as `status` shows it.
    pub sandbox: &'static str,
}

#[derive(Default)]
pub(super) struct Reports {
    last: Option<Instant>,
    dirty: bool,
    /// Something moved (a turn did work) since the last report.
    active: bool,
    custom: BTreeMap<String, String>,
    /// What our current LP says it took from and rejected on its direct
    /// rings, and the totals of its dead predecessors.
    lp_direct: DirectStats,
    lp_direct_base: DirectStats,
}

/// `s` cut to at most `max` bytes, at a character boundary.
fn cut(mut s: String, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.truncate(end);
    s
}

impl Reports {
    /// Something changed: report soon.
    pub fn mark(&mut self) {
        self.dirty = true;
    }

    /// A turn moved something: the next report comes at the interval.
    pub fn activity(&mut self) {
        self.active = true;
    }

    /// When the next report is due.
    pub fn deadline(&self, interval: Duration) -> Instant {
        self.due_at(interval).unwrap_or_else(Instant::now)
    }

    /// When the next report is due; `None`: now (none made yet).
    fn due_at(&self, interval: Duration) -> Option<Instant> {
        let last = self.last?;
        let regular = if self.active || self.dirty {
            last + interval
        } else {
            last + interval.max(IDLE_EVERY)
        };
        Some(if self.dirty {
            regular.min(last + DIRTY_EVERY)
        } else {
            regular
        })
    }

    /// Whether a report is due now; if so, it counts as made.
    pub fn take_due(&mut self, interval: Duration) -> bool {
        if self.due_at(interval).is_some_and(|t| Instant::now() < t) {
            return false;
        }
        self.last = Some(Instant::now());
        self.dirty = false;
        self.active = false;
        true
    }

    /// Make the next report due at once.
    pub fn force(&mut self) {
        self.last = None;
    }

    /// The LP published `key = value` (bounded); false if it was refused
    /// (too many keys).
    pub fn custom(&mut self, key: String, value: String) -> bool {
        let key = cut(key, MAX_KEY);
        if self.custom.len() >= MAX_CUSTOM && !self.custom.contains_key(&key) {
            return false;
        }
        self.custom.insert(key, cut(value, MAX_VALUE));
        self.dirty = true;
        true
    }

    /// The LP's direct-ring totals.
    pub fn lp_direct(&mut self, st: DirectStats) {
        self.lp_direct = st;
        self.dirty = true;
    }

    /// The LP died: its totals become part of the base.
    pub fn lp_died(&mut self) {
        let last = std::mem::take(&mut self.lp_direct);
        self.lp_direct_base.add(&last);
    }

    /// The report of our LP.
    pub fn build(&self, ctx: &Ctx, counters: &Counters, inputs: Inputs) -> LpReport {
        // What our LPs, this one and its dead predecessors, said they took
        // from and rejected on direct rings.
        let mut from_lp = self.lp_direct_base;
        from_lp.add(&self.lp_direct);
        let mut rejects = inputs.rejects;
        rejects.add(&from_lp.rejects);
        let links = inputs
            .links
            .iter()
            .chain(std::iter::once(&("lp-direct".to_owned(), from_lp.rejects)))
            .filter_map(|(n, s)| LinkLoss::of(n.clone(), s))
            .collect();
        let state = ctx.registry.slot(ctx.slot).map(|v| state_name(v.lp_state));
        let c = counters;
        LpReport {
            name: ctx.lp_plan().name.clone(),
            slot: ctx.slot,
            subfunctions: ctx.hosted(),
            state: state.unwrap_or_else(|_| "unknown".into()),
            manager_state: None,
            restarts: inputs.restarts,
            pid: inputs.lp_pid,
            report: Some(ManagerReport {
                generation: ctx.generation,
                manager_pid: std::process::id(),
                // The LP's numbers are untrusted: saturating.
                msgs_in: c.msgs_in.saturating_add(from_lp.msgs),
                msgs_out: c.msgs_out,
                bytes_in: c.bytes_in.saturating_add(from_lp.bytes),
                bytes_out: c.bytes_out,
                dropped: c.dropped,
                bad_batches: c.bad_batches,
                bad_rings: c.bad_rings,
                auth_failures: rejects.rejected(),
                lost: rejects.lost_total(),
                links,
                rejected: Rejected::from_stats(&rejects),
                ring_depth: RingDepth {
                    to_lp: inputs.depths.0,
                    from_lp: inputs.depths.1,
                },
                pending: inputs.pending as u64,
                custom: self.custom.clone(),
                txn: inputs.txn,
                at_ms: monotonic_ms(),
                sandbox: inputs.sandbox.to_owned(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn custom_values_are_bounded() {
        let mut r = Reports::default();
        assert!(r.custom("k".repeat(100), "é".repeat(600)));
        let (k, v) = r.custom.iter().next().unwrap();
        assert_eq!(k.len(), MAX_KEY);
        assert!(v.len() <= MAX_VALUE && v.chars().all(|c| c == 'é'));
        for i in 1..MAX_CUSTOM {
            assert!(r.custom(format!("k{i}"), String::new()));
        }
        assert!(!r.custom("one more".into(), String::new()));
        // An existing key may still change.
        assert!(r.custom("k1".into(), "new".into()));
    }

    fn inputs(links: Vec<(String, RxStats)>) -> Inputs {
        Inputs {
            lp_pid: None,
            restarts: 0,
            rejects: RxStats::default(),
            links,
            depths: (0, 0),
            pending: 0,
            txn: Default::default(),
            sandbox: "off",
        }
    }

    /// Issue 11 item 8: the STATS an LP sends are untrusted; totals near
    /// u64::MAX used to overflow the `+` (a panic in a debug build, a
    /// wrapped count in release). They saturate now.
    #[test]
    fn lp_supplied_counters_saturate() {
        let ctx = crate::manager::testctx::ctx(0, 1);
        let mut r = Reports::default();
        let huge = DirectStats {
            msgs: u64::MAX,
            bytes: u64::MAX - 1,
            rejects: RxStats::from_rejects([u64::MAX; 6]),
        };
        r.lp_direct(huge);
        r.lp_died();
        r.lp_direct(huge);
        let c = Counters {
            msgs_in: 7,
            bytes_in: 7,
            ..Default::default()
        };
        let rep = r.build(&ctx, &c, inputs(Vec::new())).report.unwrap();
        assert_eq!((rep.msgs_in, rep.bytes_in), (u64::MAX, u64::MAX));
        assert_eq!((rep.auth_failures, rep.lost), (u64::MAX, u64::MAX));
    }

    /// Build 4: what each link lost is in the report, by link.
    #[test]
    fn losses_are_reported_per_link() {
        let ctx = crate::manager::testctx::ctx(0, 1);
        let r = Reports::default();
        let mut peer = RxStats::from_rejects([0, 1, 2, 0, 0, 0]);
        peer.lost = 5;
        let links = vec![
            ("lp".to_owned(), RxStats::default()),
            ("peer/3".to_owned(), peer),
        ];
        let mut i = inputs(links);
        i.rejects = peer;
        let rep = r.build(&ctx, &Counters::default(), i).report.unwrap();
        assert_eq!(rep.lost, 8);
        assert_eq!(
            rep.links,
            [LinkLoss {
                link: "peer/3".into(),
                rejected: 3,
                skipped: 5
            }]
        );
    }

    #[test]
    fn due_at_once_then_by_interval_or_sooner_when_dirty() {
        let mut r = Reports::default();
        let interval = Duration::from_secs(3600);
        assert!(r.take_due(interval));
        assert!(!r.take_due(interval));
        let last = r.last.unwrap();
        assert_eq!(r.deadline(interval), last + interval);
        r.mark();
        assert_eq!(r.deadline(interval), last + DIRTY_EVERY);
        r.force();
        assert!(r.take_due(interval));
    }
}
