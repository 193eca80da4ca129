//! What the governor reads of the collaboration at each look: its slots,
//! ready LPs and process ids ([`Seen`]), and over a window of time the CPU
//! its processes used and the messages its LPs sent ([`Window`]).

use super::mode::process_cpu_ns;
use shmcollab_runtime::plan::Plan;
use shmcollab_shm::registry::{LpState, Registry, SlotState, SlotView};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// The collaboration as read from the registry at one look.
pub(super) struct Seen {
    /// Ready LPs: (name, pid, nanoseconds waited in the LP API).
    pub ready: Vec<(String, u32, u64)>,
    /// The same LPs as (slot, pid): where each goes when paired.
    pub ready_at: Vec<(u32, u32)>,
    /// Every process: LPs, managers, this supervisor.
    pub pids: Vec<u32>,
    /// Each slot's count of messages its LP sent (untrusted).
    pub msgs: Vec<u64>,
    /// Of those, each slot's transaction frames its own manager served
    /// (untrusted).
    pub own_txn: Vec<u64>,
    /// Whether each slot has a ready LP (by slot: asked once per manager at
    /// every look, a search of `slots` each was quadratic).
    ready_slots: Vec<bool>,
}

impl Seen {
    /// Reads the collaboration of `plan` in `registry`, whose managers are
    /// `managers` (slot, pid).
    pub fn read(registry: &Registry, plan: &Plan, managers: &[(u32, u32)]) -> Seen {
        let slots: Vec<SlotView> = (0..plan.lps.len() as u32)
            .filter_map(|s| registry.slot(s).ok())
            .filter(|v| v.state == SlotState::Active)
            .collect();
        let (ready, ready_at) = slots
            .iter()
            .filter(|v| v.lp_state == LpState::Ready && v.lp_pid != 0)
            .filter_map(|v| {
                let name = plan.lps.get(v.index as usize)?.name.clone();
                Some(((name, v.lp_pid, v.lp_wait_ns), (v.index, v.lp_pid)))
            })
            .unzip();
        let lp_pids = slots.iter().map(|v| v.lp_pid).filter(|&p| p != 0);
        let pids = lp_pids
            .chain(managers.iter().map(|m| m.1))
            .chain([std::process::id()])
            .collect();
        let msgs = (0..plan.lps.len() as u32)
            .map(|s| registry.lp_msgs(s).unwrap_or(0))
            .collect();
        let own_txn = (0..plan.lps.len() as u32)
            .map(|s| registry.lp_own_txn(s).unwrap_or(0))
            .collect();
        let mut ready_slots = vec![false; plan.lps.len()];
        for v in slots.iter().filter(|v| v.lp_state == LpState::Ready) {
            if let Some(r) = ready_slots.get_mut(v.index as usize) {
                *r = true;
            }
        }
        Seen {
            ready,
            ready_at,
            pids,
            msgs,
            own_txn,
            ready_slots,
        }
    }

    /// The short look: only each slot's counts of messages its LP sent and
    /// of its transactions with its own manager (no slots, names or pids:
    /// read every [`super::FAST`] while compact).
    pub fn read_msgs(registry: &Registry, plan: &Plan) -> Seen {
        Seen {
            ready: Vec::new(),
            ready_at: Vec::new(),
            pids: Vec::new(),
            msgs: (0..plan.lps.len() as u32)
                .map(|s| registry.lp_msgs(s).unwrap_or(0))
                .collect(),
            own_txn: (0..plan.lps.len() as u32)
                .map(|s| registry.lp_own_txn(s).unwrap_or(0))
                .collect(),
            ready_slots: Vec::new(),
        }
    }

    /// The processes placed by the mode: the managers of ready slots and
    /// the ready LPs (pids, in slot order).
    pub fn placed(&self, managers: &[(u32, u32)]) -> Vec<u32> {
        let mgrs = managers.iter().filter(|(s, _)| self.ready_slot(*s));
        mgrs.map(|m| m.1)
            .chain(self.ready.iter().map(|r| r.1))
            .collect()
    }

    /// Whether slot `s` has a ready LP (its manager placed itself then).
    pub fn ready_slot(&self, s: u32) -> bool {
        self.ready_slots.get(s as usize).copied().unwrap_or(false)
    }
}

/// Readings at the start of a window.
pub(super) struct Window {
    cpu: HashMap<u32, u64>,
    msgs: Vec<u64>,
    own_txn: Vec<u64>,
    at: Instant,
}

/// What a window saw: CPU (ns), messages, of those transaction frames the
/// LPs' own managers served, and its length.
pub(super) struct Advanced {
    pub cpu_ns: u64,
    pub msgs: u64,
    pub own_txn: u64,
    pub dt: Duration,
}

impl Window {
    /// A window starting now with nothing read (the first advance reads
    /// the baselines and reports nothing).
    pub fn new() -> Window {
        Window {
            cpu: HashMap::new(),
            msgs: Vec::new(),
            own_txn: Vec::new(),
            at: Instant::now(),
        }
    }

    /// Ends the window at `now` and starts the next: the CPU time the
    /// processes of `seen` used in it (a pid not read before adds nothing:
    /// its start is not the collaboration's load; 0 unless `with_cpu`,
    /// which costs a system call per process), the messages sent, and its
    /// length.
    pub fn advance(&mut self, now: Instant, seen: &Seen, with_cpu: bool) -> Advanced {
        let mut cpu = HashMap::with_capacity(seen.pids.len());
        let mut cpu_ns = 0u64;
        for &pid in seen.pids.iter().filter(|_| with_cpu) {
            if let Some(ns) = process_cpu_ns(pid) {
                if let Some(before) = self.cpu.get(&pid) {
                    cpu_ns = cpu_ns.saturating_add(ns.saturating_sub(*before));
                }
                cpu.insert(pid, ns);
            }
        }
        self.cpu = cpu;
        let sent = sent_since(&seen.msgs, &self.msgs);
        self.msgs.clone_from(&seen.msgs);
        let own_txn = sent_since(&seen.own_txn, &self.own_txn);
        self.own_txn.clone_from(&seen.own_txn);
        let dt = now.duration_since(self.at);
        self.at = now;
        Advanced {
            cpu_ns,
            msgs: sent,
            own_txn,
            dt,
        }
    }
}

/// Messages sent between the counts `before` and `now`. Counts are untrusted
/// and start over with a new manager: a count that went down adds nothing,
/// nor does a slot not counted before.
pub(super) fn sent_since(now: &[u64], before: &[u64]) -> u64 {
    now.iter()
        .zip(before.iter().chain(std::iter::repeat(&u64::MAX)))
        .fold(0u64, |sum, (now, before)| {
            sum.saturating_add(now.saturating_sub(*before))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_sent_ignore_counts_that_went_down_or_are_new() {
        assert_eq!(sent_since(&[10, 20], &[4, 5]), 21);
        assert_eq!(sent_since(&[10, 20], &[4]), 6);
        assert_eq!(sent_since(&[3, u64::MAX], &[4, 0]), u64::MAX);
        assert_eq!(sent_since(&[], &[4]), 0);
    }
}
