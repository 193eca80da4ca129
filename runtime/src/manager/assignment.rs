//! Who hosts which sub-function: the manager's own copy, made from the plan
//! at start. The registry's assignment table lives in memory every LP can
//! write (DESIGN.md, "Threat model"), so routing and the transaction server
//! never read it: an LP that rewrites it takes nobody's traffic and moves
//! nobody's state. (Reassignment, a later issue, will change this copy
//! through authenticated control messages, not through shared memory.)
//!
//! Sub-functions are numbered by their position in the plan, as in the
//! registry the supervisor made from the same plan.

use super::router::Owners;
use crate::plan::Plan;

/// The assignment of a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Assignment {
    /// Owner slot by sub-function index.
    owner: Vec<Option<u32>>,
    /// Sub-function indices by slot.
    hosted: Vec<Vec<u32>>,
}

impl Assignment {
    /// Linear in the plan: every manager makes one at start, and a search
    /// of the sub-function list per LP (quadratic) was about 9 ms of CPU per
    /// manager at 1,024 LPs, most of the launch's CPU.
    pub fn of(plan: &Plan) -> Assignment {
        let mut owner = vec![None; plan.subfns.len()];
        let mut hosted = vec![Vec::new(); plan.lps.len()];
        let index: std::collections::HashMap<&str, usize> = plan
            .subfns
            .iter()
            .enumerate()
            .rev()
            .map(|(i, n)| (n.as_str(), i))
            .collect();
        for (slot, lp) in plan.lps.iter().enumerate() {
            for name in &lp.subfns {
                if let Some(&i) = index.get(name.as_str()) {
                    owner[i] = Some(slot as u32);
                    hosted[slot].push(i as u32);
                }
            }
        }
        Assignment { owner, hosted }
    }

    /// The slot hosting sub-function `subfn`.
    pub fn owner(&self, subfn: u32) -> Option<u32> {
        self.owner.get(subfn as usize).copied().flatten()
    }

    /// The sub-functions slot `slot` hosts.
    pub fn subfns_of(&self, slot: u32) -> &[u32] {
        self.hosted.get(slot as usize).map_or(&[], Vec::as_slice)
    }
}

impl Owners for Assignment {
    fn owner(&self, subfn: u32) -> Option<u32> {
        Assignment::owner(self, subfn)
    }
}

#[cfg(test)]
mod tests {
    use crate::manager::router::{route, Here, Origin, Route};
    use crate::manager::testctx;
    use shmcollab_shm::frame::{kind, FrameHeader};

    #[test]
    fn an_lp_rewriting_the_registry_table_takes_no_traffic() {
        let ctx = testctx::ctx(0, 3);
        // LP 2 claims sub-function 1 in shared memory.
        ctx.registry.set_subfn_owner(1, Some(2)).unwrap();
        assert_eq!(ctx.registry.subfn_owner(1), Some(2));
        let here = Here {
            slot: 0,
            slots: ctx.slots(),
            owners: &ctx.assign,
        };
        let h = FrameHeader {
            kind: kind::DATA,
            src: 0,
            dst: 1,
            ..Default::default()
        };
        assert_eq!(route(&here, Origin::Lp, &h), Route::Peer(1));
        assert_eq!(ctx.assign.subfns_of(1), &[1]);
        assert_eq!(ctx.assign.owner(7), None);
    }
}
