//! What every part of a manager borrows and nobody changes after start:
//! the session, the registry, the plan, our slot and generation, the
//! master key (with the key derivations made from it), and the flags the
//! signal and pidfd threads set.

use super::assignment::Assignment;
use crate::plan::{LpPlan, Plan};
use crate::wire;
use shmcollab_shm::auth::{link_key, Endpoint, LinkKey, MasterKey};
use shmcollab_shm::registry::Registry;
use shmcollab_shm::segment::Session;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Set by the manager's helper threads, read by its loop.
#[derive(Default)]
pub(super) struct Flags {
    /// SIGTERM, SIGINT or SIGHUP arrived.
    pub stop: AtomicBool,
    /// The LP's pidfd became readable.
    pub lp_exited: AtomicBool,
}

impl Flags {
    /// Whether a stop was asked for.
    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }
}

/// The manager's immutable context.
pub(super) struct Ctx {
    pub session: Session,
    pub registry: Registry,
    pub plan: Plan,
    /// Who hosts what, as the plan says (never the registry's table).
    pub assign: Assignment,
    pub slot: u32,
    pub generation: u32,
    master: Option<MasterKey>,
    pub flags: Arc<Flags>,
}

impl Ctx {
    pub fn new(
        session: Session,
        registry: Registry,
        plan: Plan,
        (slot, generation): (u32, u32),
        master: Option<MasterKey>,
        flags: Arc<Flags>,
    ) -> Ctx {
        Ctx {
            session,
            registry,
            assign: Assignment::of(&plan),
            plan,
            slot,
            generation,
            master,
            flags,
        }
    }

    /// Our LP's plan.
    pub fn lp_plan(&self) -> &LpPlan {
        &self.plan.lps[self.slot as usize]
    }

    /// Number of slots in the collaboration.
    pub fn slots(&self) -> u32 {
        self.plan.lps.len() as u32
    }

    /// This manager as a key endpoint.
    pub fn me(&self) -> Endpoint {
        wire::manager_endpoint(self.slot, self.generation)
    }

    /// The key of the link `from` -> `to`; `None` when `secure = false`.
    pub fn key(&self, from: Endpoint, to: Endpoint) -> Option<LinkKey> {
        self.master
            .as_ref()
            .map(|m| link_key(m, self.session.id(), from, to))
    }

    /// Keys of the links with our LP of generation `lp_gen`: (to it, from it).
    pub fn lp_keys(&self, lp_gen: u32) -> (Option<LinkKey>, Option<LinkKey>) {
        let lpe = wire::lp_endpoint(self.slot, self.generation, lp_gen);
        (self.key(self.me(), lpe), self.key(lpe, self.me()))
    }

    /// Key of the link from manager `peer` (generation `peer_gen`) to us.
    pub fn peer_to_us_key(&self, peer: u32, peer_gen: u32) -> Option<LinkKey> {
        self.key(wire::manager_endpoint(peer, peer_gen), self.me())
    }

    /// Key of the link from us to manager `peer` (generation `peer_gen`).
    pub fn us_to_peer_key(&self, peer: u32, peer_gen: u32) -> Option<LinkKey> {
        self.key(self.me(), wire::manager_endpoint(peer, peer_gen))
    }

    /// Key of the direct ring from manager `writer` (slot, generation) into
    /// the LP of slot `lp` (slot, manager generation) of generation
    /// `lp_gen`: derived from that LP's inbound link key, as the LP
    /// derives it, so that an LP holds no key but its own.
    pub fn direct_key(&self, writer: (u32, u32), lp: (u32, u32), lp_gen: u32) -> Option<LinkKey> {
        let mgr = wire::manager_endpoint(lp.0, lp.1);
        let lpe = wire::lp_endpoint(lp.0, lp.1, lp_gen);
        self.key(mgr, lpe)
            .map(|k| k.derive(&wire::direct_label(writer.0, writer.1)))
    }

    /// Remove ring segment `name` from the session directory.
    pub fn remove_ring(&self, name: &str) {
        let _ = std::fs::remove_file(self.session.segment_path(name));
    }

    /// Ring every other manager's doorbell (they look at the registry).
    pub fn ring_all_peers(&self) {
        for s in (0..self.slots()).filter(|&s| s != self.slot) {
            if let Ok(b) = self.registry.doorbell(s) {
                b.notify();
            }
        }
    }

    /// Ring our own doorbell (from a helper thread).
    pub fn wake(registry: &Registry, slot: u32) {
        if let Ok(b) = registry.doorbell(slot) {
            b.notify();
        }
    }

    /// The names of the sub-functions our LP hosts.
    pub fn hosted(&self) -> Vec<String> {
        self.hosted_by(self.slot)
    }

    /// The names of the sub-functions slot `slot` hosts, as the plan says.
    pub fn hosted_by(&self, slot: u32) -> Vec<String> {
        let names = self.assign.subfns_of(slot).iter();
        names
            .filter_map(|&i| self.plan.subfns.get(i as usize).cloned())
            .collect()
    }
}
