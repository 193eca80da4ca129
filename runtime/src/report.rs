//! The state report, typed: what a manager sends the coordinator
//! ([`LpReport`]), and what the coordinator publishes in the registry
//! ([`CollaborationState`]) for `shmcollab status` and
//! [`crate::Lp::collaboration_state`]. One set of types, serialised with
//! serde as JSON (the README shows a document); nobody builds or patches
//! the JSON by hand.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The coordinator's view of the collaboration, as published.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CollaborationState {
    /// The collaboration's name.
    pub name: String,
    /// Who published this.
    pub coordinator: CoordinatorView,
    /// When, CLOCK_MONOTONIC milliseconds.
    pub published_ms: u64,
    /// One entry per LP slot, in slot order.
    pub lps: Vec<LpReport>,
}

/// The coordinator of a published state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CoordinatorView {
    /// Its slot.
    pub slot: u32,
    /// Its LP's name.
    pub name: String,
    /// Its epoch.
    pub epoch: u32,
}

/// One LP in the collaboration state. The first fields are always there
/// (from the plan and the registry); [`ManagerReport`]'s only once the
/// LP's manager has reported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LpReport {
    /// The LP's name.
    pub name: String,
    /// Its registry slot.
    pub slot: u32,
    /// The sub-functions it hosts (the registry's assignment table).
    pub subfunctions: Vec<String>,
    /// LP state: `starting`, `running`, `ready`, `restarting`, `exited`, `failed`.
    pub state: String,
    /// The registry slot's state (`active`, `dead`, ...), set by the coordinator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manager_state: Option<String>,
    /// LP restarts so far.
    pub restarts: u32,
    /// The LP's pid while it runs.
    pub pid: Option<u32>,
    /// What the manager reported.
    #[serde(flatten, default, skip_serializing_if = "Option::is_none")]
    pub report: Option<ManagerReport>,
}

/// What a manager knows about its LP's traffic.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ManagerReport {
    /// The manager's generation.
    pub generation: u32,
    /// The manager's pid.
    pub manager_pid: u32,
    /// Messages delivered to the LP.
    pub msgs_in: u64,
    /// Messages the LP sent.
    pub msgs_out: u64,
    /// Their payload bytes.
    pub bytes_in: u64,
    /// Their payload bytes.
    pub bytes_out: u64,
    /// Messages that could not be delivered (no owner, finished LP, too large).
    pub dropped: u64,
    /// Batches whose entries were malformed.
    pub bad_batches: u64,
    /// Rings found corrupt.
    pub bad_rings: u64,
    /// Frames rejected on every inbound link of the LP: the sum of `rejected`.
    pub auth_failures: u64,
    /// Frames lost to tampering or corruption on the links this manager
    /// (and its LP, for the direct rings) reads: rejected, skipped by a gap
    /// in sequence numbers, or in a ring reset after garbage.
    #[serde(default)]
    pub lost: u64,
    /// The same per link, for the links that lost anything.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<LinkLoss>,
    /// The rejected frames by reason.
    pub rejected: Rejected,
    /// Frames waiting in the LP's two rings.
    pub ring_depth: RingDepth,
    /// Messages the manager holds for its LP and its peers.
    pub pending: u64,
    /// What the LP published with `Lp::report`.
    pub custom: BTreeMap<String, String>,
    /// The manager's transaction server.
    #[serde(default)]
    pub txn: TxnReport,
    /// When the report was made, CLOCK_MONOTONIC milliseconds.
    pub at_ms: u64,
    /// The LP's sandbox: "off", "on", or "degraded" (asked for, but the
    /// kernel cannot close the files: see the README).
    #[serde(default)]
    pub sandbox: String,
}

/// A manager's transaction server, as reported.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnReport {
    /// Transactions committed (counted where they were coordinated).
    pub commits: u64,
    /// Transactions that did not commit (conflicts and failures).
    pub aborts: u64,
    /// Of those, conflicts.
    pub conflicts: u64,
    /// Bytes in the write-ahead log.
    pub log_bytes: u64,
    /// fdatasyncs done.
    pub fsyncs: u64,
    /// Duration of the last fdatasync, µs.
    pub last_fsync_us: u64,
    /// Two-phase-commit answers kept as a participant (bounded by the
    /// transactions in flight: `manager/txn_forget.rs`).
    #[serde(default)]
    pub outcomes_kept: u64,
    /// Two-phase-commit decisions kept as a leader until every participant
    /// acknowledged them.
    #[serde(default)]
    pub decisions_open: u64,
}

/// Rejected frames by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejected {
    /// Shorter than a header and tag.
    pub truncated: u64,
    /// A header or length that makes no sense.
    pub malformed: u64,
    /// The tag did not verify.
    pub altered: u64,
    /// Claims a sender it cannot be.
    pub forged: u64,
    /// A sequence number seen before.
    pub replayed: u64,
    /// A sequence number ahead of the next one.
    pub reordered: u64,
}

impl Rejected {
    /// From [`shmcollab_shm::auth::RxStats`].
    pub fn from_stats(s: &shmcollab_shm::auth::RxStats) -> Rejected {
        Rejected {
            truncated: s.truncated,
            malformed: s.malformed,
            altered: s.altered,
            forged: s.forged,
            replayed: s.replayed,
            reordered: s.reordered,
        }
    }
}

/// Bytes waiting in the LP's two rings.
/// What one link lost (see [`ManagerReport::lost`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkLoss {
    /// Which link: `lp` (from our LP), `peer/<slot>` (from that peer's
    /// manager), `direct/<slot>` (a direct ring from that peer's manager
    /// read by us), `lp-direct` (direct rings our LP read).
    pub link: String,
    /// Frames rejected (a reset ring counts as one malformed frame).
    pub rejected: u64,
    /// Frames skipped by a gap in sequence numbers.
    pub skipped: u64,
}

impl LinkLoss {
    /// The loss of `link` from its counters; `None` if it lost nothing.
    pub fn of(link: String, s: &shmcollab_shm::auth::RxStats) -> Option<LinkLoss> {
        let l = LinkLoss {
            link,
            rejected: s.rejected(),
            skipped: s.lost,
        };
        (l.rejected > 0 || l.skipped > 0).then_some(l)
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RingDepth {
    /// Manager -> LP.
    pub to_lp: u64,
    /// LP -> manager.
    pub from_lp: u64,
}

impl CollaborationState {
    /// Parses a published document (bytes from the registry: untrusted).
    pub fn decode(bytes: &[u8]) -> Result<CollaborationState, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    /// The document to publish.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// The entry of the LP named `name`.
    pub fn lp(&self, name: &str) -> Option<&LpReport> {
        self.lps.iter().find(|l| l.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(report: Option<ManagerReport>) -> CollaborationState {
        CollaborationState {
            name: "c".into(),
            coordinator: CoordinatorView {
                slot: 0,
                name: "a".into(),
                epoch: 3,
            },
            published_ms: 9,
            lps: vec![LpReport {
                name: "a".into(),
                slot: 0,
                subfunctions: vec!["s/0".into()],
                state: "ready".into(),
                manager_state: Some("active".into()),
                restarts: 1,
                pid: Some(42),
                report,
            }],
        }
    }

    #[test]
    fn round_trips_with_and_without_a_manager_report() {
        for r in [None, Some(ManagerReport::default())] {
            let s = sample(r);
            assert_eq!(CollaborationState::decode(&s.encode()).unwrap(), s);
        }
    }

    #[test]
    fn the_json_has_the_documented_shape() {
        let mut m = ManagerReport {
            msgs_in: 5,
            ..Default::default()
        };
        m.rejected.forged = 1;
        m.custom.insert("k".into(), "v".into());
        let v: serde_json::Value = serde_json::from_slice(&sample(Some(m)).encode()).unwrap();
        let lp = &v["lps"][0];
        assert_eq!(lp["msgs_in"], 5);
        assert_eq!(lp["rejected"]["forged"], 1);
        assert_eq!(lp["custom"]["k"], "v");
        assert_eq!(lp["manager_state"], "active");
        assert_eq!(v["coordinator"]["epoch"], 3);
        let bare: serde_json::Value = serde_json::from_slice(&sample(None).encode()).unwrap();
        assert!(bare["lps"][0].get("msgs_in").is_none());
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(CollaborationState::decode(b"{\"name\":1}").is_err());
        assert!(CollaborationState::decode(&[0xff; 10]).is_err());
    }
}
