//! Healing the rings now and then: any process of the user can write into
//! a ring's shared fields (DESIGN.md, "Threat model"). Each end checks the
//! positions it reads at every use, and a reader resets a ring it finds
//! corrupt; but a field overwritten where nobody looks until it is too late
//! (the fixed fields that a process attaching later checks, our own
//! position that the other end needs to make progress) would leave a link
//! dead. So every [`HEAL_EVERY`] the manager puts back what it owns in the
//! rings it made and the positions it writes in every ring it uses; a
//! manager that moved nothing for a second does so every [`HEAL_IDLE`]
//! (rings are made when a pair first talks, so what it checks follows what
//! exists; how often, what moves).

use super::Manager;
use std::time::{Duration, Instant};

/// How often the rings are checked (each check reads a few words per ring)
/// while the manager works or was written into lately.
pub(super) const HEAL_EVERY: Duration = Duration::from_millis(100);
/// How often when the manager moved nothing for [`QUIET_AFTER`]: the cost of
/// an idle collaboration is its managers' timers, 10 wake-ups a second each
/// was most of it (256 idle managers: several % of a core).
pub(super) const HEAL_IDLE: Duration = Duration::from_secs(1);
/// See [`HEAL_IDLE`].
pub(super) const QUIET_AFTER: Duration = Duration::from_secs(1);

/// When to heal next, and what was healed.
pub(super) struct Healer {
    pub next: Instant,
    /// What the manager last wrote of its LP in its slot (pid, state,
    /// restarts), to put back.
    pub lp: Option<(u32, shmcollab_shm::registry::LpState)>,
    pub restarts: u32,
    last_said: Option<Instant>,
    /// Fields put back since start.
    pub healed: u64,
    /// When a turn last moved something (or healing put something back).
    pub active_at: Instant,
}

impl Default for Healer {
    fn default() -> Self {
        Healer {
            next: Instant::now() + HEAL_EVERY,
            lp: None,
            restarts: 0,
            last_said: None,
            healed: 0,
            active_at: Instant::now(),
        }
    }
}

impl Manager {
    /// Heal if it is time; true if anything was put back.
    pub(super) fn heal_rings(&mut self) -> bool {
        let now = Instant::now();
        if now < self.healer.next {
            return false;
        }
        let quiet = now.duration_since(self.healer.active_at) >= QUIET_AFTER;
        self.healer.next = now + if quiet { HEAL_IDLE } else { HEAL_EVERY };
        // Not healing, but on the same timer: the LP's view.
        self.access.sync(&self.ctx);
        let name = &self.ctx.lp_plan().name;
        let slot = self.ctx.registry.heal_slot(
            self.ctx.slot,
            self.ctx.generation,
            std::process::id(),
            name,
        );
        let lp = self.healer.lp.is_some_and(|(pid, state)| {
            let reg = &self.ctx.registry;
            reg.heal_lp(self.ctx.slot, pid, state, self.healer.restarts)
        });
        let n = self.lp.heal(&self.ctx) + self.peers.heal(&self.ctx);
        let n = n + self.peers.heal_replaced(&self.ctx);
        let n = n + usize::from(slot) + usize::from(lp);
        if n == 0 {
            return false;
        }
        self.healer.healed += n as u64;
        self.healer.active_at = now;
        self.healer.next = now + HEAL_EVERY;
        // Said at most once a second: an attack must not flood the log.
        if self
            .healer
            .last_said
            .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(1))
        {
            self.healer.last_said = Some(now);
            eprintln!(
                "shmcollab: another process wrote into our rings: {} fields put back so far",
                self.healer.healed
            );
        }
        true
    }
}
