//! The coordinator role: claimed by bumping the registry's coordinator
//! epoch with compare-and-swap (the manager named in the config, or with
//! `coordinator = "auto"` the lowest live slot); its holder keeps the
//! newest [`LpReport`] of every manager and publishes the aggregate
//! ([`CollaborationState`]) in the registry's status area, where
//! `shmcollab status` and every LP read it. Reports of a stale epoch are
//! ignored.

use super::context::Ctx;
use crate::plan::CoordinatorChoice;
use crate::report::{CollaborationState, CoordinatorView, LpReport};
use shmcollab_shm::registry::{monotonic_ms, LpState, SlotState, SlotView};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Publications are at least this far apart...
const PUBLISH_EVERY: Duration = Duration::from_millis(20);
/// ... plus this much per LP: each rewrites the whole aggregate (about
/// 0.5 KB an LP), which with hundreds of LPs reporting as they start would
/// otherwise take the coordinator's core (1,024 LPs: every 225 ms).
const PUBLISH_PER_LP: Duration = Duration::from_micros(200);

/// How far apart publications are for the collaboration of `ctx`.
fn publish_every(ctx: &Ctx) -> Duration {
    PUBLISH_EVERY + PUBLISH_PER_LP * ctx.slots()
}

/// The lowercase name of an LP state, as `status` shows it.
pub(super) fn state_name(s: LpState) -> String {
    format!("{s:?}").to_lowercase()
}

#[derive(Default)]
pub(super) struct Coordinator {
    /// The holder we know of: (epoch, slot).
    current: Option<(u32, u32)>,
    /// The newest report of each slot (while we hold the role).
    aggregate: BTreeMap<u32, LpReport>,
    /// A report arrived since the last publication.
    dirty: bool,
    last_publish: Option<Instant>,
}

impl Coordinator {
    /// The holder: (epoch, slot).
    pub fn holder(&self) -> Option<(u32, u32)> {
        self.current
    }

    /// Whether we hold the role.
    pub fn is_me(&self, ctx: &Ctx) -> bool {
        self.current.is_some_and(|(_, s)| s == ctx.slot)
    }

    /// Claim the role when it is ours to take, hand it over when it is not,
    /// and follow whoever holds it. True if the holder changed.
    pub fn elect(&mut self, ctx: &Ctx) -> bool {
        let reg = &ctx.registry;
        let active = |s: u32| reg.slot(s).is_ok_and(|v| v.state == SlotState::Active);
        let current = reg.coordinator();
        let holder_is_me = current.is_some_and(|(_, s)| s == ctx.slot);
        let holder_alive = current.is_some_and(|(_, s)| s == ctx.slot || active(s));
        let auto = ctx.plan.coordinator == CoordinatorChoice::Auto;
        let mine = match ctx.plan.coordinator {
            CoordinatorChoice::Slot(s) => s == ctx.slot,
            CoordinatorChoice::Auto => (0..ctx.slot).all(|s| !active(s)),
        };
        if let Some((epoch, _)) = current.filter(|_| holder_is_me && !mine && auto) {
            // A lower slot is live (it registered after us): "auto" means
            // the lowest live slot, so hand the role over.
            if reg.resign_coordinator(ctx.slot, epoch).is_ok() {
                self.current = None;
                self.aggregate.clear();
                ctx.ring_all_peers();
                return true;
            }
        }
        if mine && (!holder_alive || (holder_is_me && self.current != current)) {
            // Also when an earlier generation of this slot held it: a new
            // manager always takes a new epoch.
            let seen = reg.coordinator_epoch();
            if let Ok(e) = reg.claim_coordinator(ctx.slot, seen) {
                self.current = Some((e, ctx.slot));
                self.aggregate.clear();
                self.dirty = true;
                return true;
            }
        }
        let now = reg.coordinator();
        if now == self.current {
            return false;
        }
        self.current = now;
        if !self.is_me(ctx) {
            self.aggregate.clear();
        }
        true
    }

    /// A report from peer `src` for epoch `epoch` (untrusted JSON).
    pub fn on_report(&mut self, ctx: &Ctx, src: u32, epoch: u32, payload: &[u8]) {
        let current = self.current.map(|(e, _)| e);
        if !self.is_me(ctx) || current != Some(epoch) {
            return;
        }
        if let Ok(r) = serde_json::from_slice::<LpReport>(payload) {
            // A report that says nothing new but its time does not make a
            // publication (hundreds of idle managers would keep the
            // aggregate, all of it, being written 50 times a second).
            let news = self
                .aggregate
                .get(&src)
                .is_none_or(|old| !same_but_time(old, &r));
            self.aggregate.insert(src, r);
            self.dirty |= news;
        }
    }

    /// Our own report (we hold the role).
    pub fn own(&mut self, ctx: &Ctx, r: LpReport) {
        self.aggregate.insert(ctx.slot, r);
        self.dirty = true;
    }

    /// When a publication is due, if one is.
    pub fn deadline(&self, ctx: &Ctx) -> Option<Instant> {
        if !self.dirty || !self.is_me(ctx) {
            return None;
        }
        Some(
            self.last_publish
                .map_or_else(Instant::now, |t| t + publish_every(ctx)),
        )
    }

    /// Publish the aggregate if something changed and the last publication
    /// is old enough (or `force`).
    pub fn publish(&mut self, ctx: &Ctx, force: bool) {
        if !(force || self.dirty) || !self.is_me(ctx) {
            return;
        }
        let recent = self
            .last_publish
            .is_some_and(|t| t.elapsed() < publish_every(ctx));
        if recent && !force {
            return;
        }
        self.dirty = false;
        self.last_publish = Some(Instant::now());
        let epoch = self.current.map_or(0, |(e, _)| e);
        let lps = (0..ctx.slots()).map(|s| self.entry(ctx, s)).collect();
        let doc = CollaborationState {
            name: ctx.plan.name.clone(),
            coordinator: CoordinatorView {
                slot: ctx.slot,
                name: ctx.lp_plan().name.clone(),
                epoch,
            },
            published_ms: monotonic_ms(),
            lps,
        };
        let _ = ctx.registry.publish_status(&doc.encode());
    }

    /// Slot `s`'s entry: its newest report, or what the plan and the
    /// registry say; the registry's slot has the last word on states.
    fn entry(&self, ctx: &Ctx, s: u32) -> LpReport {
        let mut r = self.aggregate.get(&s).cloned().unwrap_or_else(|| LpReport {
            name: ctx.plan.lps[s as usize].name.clone(),
            slot: s,
            subfunctions: ctx.hosted_by(s),
            state: "unknown".into(),
            manager_state: None,
            restarts: 0,
            pid: None,
            report: None,
        });
        if let Ok(view) = ctx.registry.slot(s) {
            apply_view(&mut r, &view);
        }
        r
    }

    /// Give the role up (the manager stops).
    pub fn resign(&mut self, ctx: &Ctx) {
        if let Some((e, s)) = self.current {
            if s == ctx.slot {
                let _ = ctx.registry.resign_coordinator(ctx.slot, e);
            }
        }
    }
}

/// The two reports differ at most in when they were made.
fn same_but_time(a: &LpReport, b: &LpReport) -> bool {
    match (&a.report, &b.report) {
        (Some(x), Some(y)) => {
            let mut y = y.clone();
            y.at_ms = x.at_ms;
            let (mut a, mut b) = (a.clone(), b.clone());
            a.report = None;
            b.report = None;
            a == b && *x == y
        }
        _ => a == b,
    }
}

fn apply_view(r: &mut LpReport, view: &SlotView) {
    r.manager_state = Some(format!("{:?}", view.state).to_lowercase());
    r.state = state_name(view.lp_state);
    r.restarts = view.restarts;
    if view.state != SlotState::Active {
        r.pid = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manager::testctx;
    use crate::report::ManagerReport;

    fn report(ctx: &Ctx, msgs_in: u64) -> LpReport {
        LpReport {
            name: ctx.lp_plan().name.clone(),
            slot: ctx.slot,
            subfunctions: ctx.hosted(),
            state: "ready".into(),
            manager_state: None,
            restarts: 0,
            pid: Some(42),
            report: Some(ManagerReport {
                msgs_in,
                ..Default::default()
            }),
        }
    }

    #[test]
    fn auto_means_the_lowest_live_slot_and_the_others_follow() {
        let c0 = testctx::ctx(0, 3);
        let c1 = testctx::peer_of(&c0, 1);
        let (mut k0, mut k1) = (Coordinator::default(), Coordinator::default());
        // Slot 0 is live: slot 1 does not claim.
        k1.elect(&c1);
        assert_eq!(k1.holder(), None);
        assert!(k0.elect(&c0));
        let (epoch, slot) = k0.holder().unwrap();
        assert_eq!(slot, 0);
        assert!(k0.is_me(&c0));
        assert!(k1.elect(&c1));
        assert_eq!(k1.holder(), Some((epoch, 0)));
        assert!(!k1.is_me(&c1));
        // Slot 0 leaves: slot 1 takes a new epoch.
        c0.registry.release_slot(0, c0.generation).unwrap();
        assert!(k1.elect(&c1));
        let (e1, s1) = k1.holder().unwrap();
        assert_eq!(s1, 1);
        assert!(e1 > epoch);
    }

    #[test]
    fn reports_of_a_stale_epoch_are_ignored_and_the_publication_parses() {
        let c0 = testctx::ctx(0, 3);
        let c1 = testctx::peer_of(&c0, 1);
        let mut k0 = Coordinator::default();
        k0.elect(&c0);
        let (epoch, _) = k0.holder().unwrap();
        let stale = serde_json::to_vec(&report(&c1, 7)).unwrap();
        k0.on_report(&c0, 1, epoch + 1, &stale);
        k0.on_report(&c0, 1, epoch, b"{not json");
        assert!(k0.deadline(&c0).is_some(), "its own claim is news");
        k0.own(&c0, report(&c0, 1));
        k0.publish(&c0, true);
        let state = CollaborationState::decode(&c0.registry.read_status().unwrap()).unwrap();
        assert_eq!(state.coordinator.epoch, epoch);
        assert_eq!(state.lps.len(), 3);
        assert!(
            state.lps[1].report.is_none(),
            "stale and garbage reports are ignored"
        );
        k0.on_report(&c0, 1, epoch, &stale);
        k0.publish(&c0, true);
        let state = CollaborationState::decode(&c0.registry.read_status().unwrap()).unwrap();
        let lp1 = &state.lps[1];
        assert_eq!(lp1.report.as_ref().map(|r| r.msgs_in), Some(7));
        assert_eq!(lp1.manager_state.as_deref(), Some("active"));
        // A slot that never reported: plan and registry only.
        assert_eq!(state.lps[2].subfunctions, ["s/2"]);
        assert!(state.lps[2].report.is_none());
    }
}
