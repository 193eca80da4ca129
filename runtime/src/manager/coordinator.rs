//! The coordinator role: claimed by bumping the registry's coordinator
//! epoch with compare-and-swap (the manager named in the config, or with
//! `coordinator = "auto"` the lowest live slot); its holder keeps the
//! newest [`LpReport`] of every manager and publishes the aggregate
//! ([`CollaborationState`]) in the registry's status area, where
//! `shmcollab status` and every LP read it. Reports of a stale epoch are
//! ignored.

use super::context::{hosted, Ctx};
use crate::plan::CoordinatorChoice;
use crate::report::{CollaborationState, CoordinatorView, LpReport};
use shmcollab_shm::registry::{monotonic_ms, LpState, SlotState, SlotView};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Publications are at least this far apart.
const PUBLISH_EVERY: Duration = Duration::from_millis(20);

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
            self.aggregate.insert(src, r);
            self.dirty = true;
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
                .map_or_else(Instant::now, |t| t + PUBLISH_EVERY),
        )
    }

    /// Publish the aggregate if something changed and the last publication
    /// is old enough (or `force`).
    pub fn publish(&mut self, ctx: &Ctx, force: bool) {
        let recent = self
            .last_publish
            .is_some_and(|t| t.elapsed() < PUBLISH_EVERY);
        if !self.is_me(ctx) || !(force || self.dirty && !recent) {
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
            subfunctions: hosted(&ctx.registry, s),
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

fn apply_view(r: &mut LpReport, view: &SlotView) {
    r.manager_state = Some(format!("{:?}", view.state).to_lowercase());
    r.state = state_name(view.lp_state);
    r.restarts = view.restarts;
    if view.state != SlotState::Active {
        r.pid = None;
    }
}
