//! What a manager hands its LP at spawn, so that the LP opens nothing by
//! path (issue 11, the LP sandbox):
//!
//! - four inherited descriptors at fixed numbers: its ring from the
//!   manager, its ring to the manager, its view ([`crate::lpview`]) and
//!   its end of a unix socketpair over which the manager passes the
//!   descriptors of later rings (direct rings, when peers appear: sent
//!   with SCM_RIGHTS just before the ATTACH that names them is queued);
//! - one environment variable, [`env::HANDOVER`], a JSON [`Handover`]: the
//!   descriptor numbers, the session id (to check the segments' headers)
//!   and what the LP used to read from the registry and never changes
//!   during a run (sub-function names and owners, LP names by slot), from
//!   the manager's plan.
//!
//! The link keys still come on their own pipe ([`crate::wire::KEY_FD`]).
//! Why descriptors: a sandboxed LP (Landlock) cannot open anything under
//! the session root, and one running as another user could not open the
//! manager's 0600 files; a descriptor already open is not checked again.

use serde::{Deserialize, Serialize};

/// Environment variables of the handover.
pub mod env {
    /// The [`super::Handover`] document (JSON).
    pub const HANDOVER: &str = "SHMCOLAB_HANDOVER";
}

/// Descriptor of the ring from the manager, in the LP.
pub const RING_IN_FD: i32 = 4;
/// Descriptor of the ring to the manager, in the LP.
pub const RING_OUT_FD: i32 = 5;
/// Descriptor of the LP's view, in the LP.
pub const VIEW_FD: i32 = 6;
/// Descriptor of the LP's end of the socketpair, in the LP.
pub const SOCK_FD: i32 = 7;

/// The descriptors an LP inherits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fds {
    /// The ring from the manager.
    pub ring_in: i32,
    /// The ring to the manager.
    pub ring_out: i32,
    /// The view segment.
    pub view: i32,
    /// The socket on which later rings arrive.
    pub sock: i32,
}

impl Fds {
    /// The fixed numbers above.
    pub const FIXED: Fds = Fds {
        ring_in: RING_IN_FD,
        ring_out: RING_OUT_FD,
        view: VIEW_FD,
        sock: SOCK_FD,
    };

    /// Each descriptor once, and none of stdin, stdout, stderr or the key
    /// pipe's: a damaged handover must not make the LP take over (and
    /// later close) a descriptor it does not own.
    pub fn valid(&self) -> bool {
        let all = [self.ring_in, self.ring_out, self.view, self.sock];
        let distinct = all.iter().enumerate().all(|(i, a)| !all[..i].contains(a));
        distinct && all.iter().all(|&f| f > crate::wire::KEY_FD)
    }
}

/// What the manager tells its LP at spawn.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Handover {
    /// The session's id (every segment's header carries it).
    pub session_id: u64,
    /// The descriptors.
    pub fds: Fds,
    /// Every sub-function, by index.
    pub subfns: Vec<String>,
    /// The slot hosting each sub-function, by index.
    pub owners: Vec<Option<u32>>,
    /// The LP names, by slot.
    pub names: Vec<String>,
}

/// Why a handover could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HandoverError {
    /// The variable is not set.
    #[error("SHMCOLAB_HANDOVER is not set")]
    Missing,
    /// It does not parse.
    #[error("SHMCOLAB_HANDOVER does not parse: {0}")]
    Decode(#[from] serde_json::Error),
    /// It parses but does not hold together.
    #[error("SHMCOLAB_HANDOVER is inconsistent: {0}")]
    Invalid(&'static str),
}

impl Handover {
    /// Encode for the environment.
    pub fn encode(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The one decoder of the (untrusted) environment text.
    pub fn decode(text: &str) -> Result<Handover, HandoverError> {
        let h: Handover = serde_json::from_str(text)?;
        if !h.fds.valid() {
            return Err(HandoverError::Invalid("bad descriptor numbers"));
        }
        if h.owners.len() != h.subfns.len() {
            return Err(HandoverError::Invalid(
                "owners and sub-functions differ in number",
            ));
        }
        Ok(h)
    }

    /// From this process's environment.
    pub fn from_env() -> Result<Handover, HandoverError> {
        let text = std::env::var(env::HANDOVER).map_err(|_| HandoverError::Missing)?;
        Handover::decode(&text)
    }

    /// Index of sub-function `name`.
    pub fn subfn_index(&self, name: &str) -> Option<u32> {
        self.subfns.iter().position(|n| n == name).map(|i| i as u32)
    }

    /// Every sub-function's index by name, as [`Handover::subfn_index`]
    /// gives it (the first of a name the (untrusted) list repeats): for
    /// lookups per message, which searched the list before (13% of an
    /// LP's CPU in a flood of 256 LPs).
    pub fn subfn_ids(&self) -> std::collections::HashMap<String, u32> {
        let mut ids = std::collections::HashMap::with_capacity(self.subfns.len());
        for (i, n) in self.subfns.iter().enumerate() {
            ids.entry(n.clone()).or_insert(i as u32);
        }
        ids
    }

    /// Name of sub-function `i`.
    pub fn subfn_name(&self, i: u32) -> Option<&str> {
        self.subfns.get(i as usize).map(String::as_str)
    }

    /// The slot hosting sub-function `i`.
    pub fn owner(&self, i: u32) -> Option<u32> {
        self.owners.get(i as usize).copied().flatten()
    }

    /// The sub-functions slot `slot` hosts.
    pub fn hosted_by(&self, slot: u32) -> Vec<String> {
        let owned = self.owners.iter().zip(&self.subfns);
        owned
            .filter(|(o, _)| **o == Some(slot))
            .map(|(_, n)| n.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Handover {
        Handover {
            session_id: 7,
            fds: Fds::FIXED,
            subfns: vec!["a".into(), "b".into()],
            owners: vec![Some(1), None],
            names: vec!["x".into(), "y".into()],
        }
    }

    #[test]
    fn a_handover_round_trips_and_damage_is_refused() {
        let h = sample();
        assert_eq!(Handover::decode(&h.encode()).unwrap(), h);
        assert_eq!(h.hosted_by(1), ["a"]);
        assert_eq!(h.owner(1), None);
        assert_eq!(h.subfn_index("b"), Some(1));
        let stdin = Handover {
            fds: Fds {
                ring_in: 0,
                ..Fds::FIXED
            },
            ..sample()
        };
        assert!(Handover::decode(&stdin.encode()).is_err());
        let twice = Handover {
            fds: Fds {
                view: SOCK_FD,
                ..Fds::FIXED
            },
            ..sample()
        };
        assert!(Handover::decode(&twice.encode()).is_err());
        let short = Handover {
            owners: vec![],
            ..sample()
        };
        assert!(Handover::decode(&short.encode()).is_err());
        assert!(Handover::decode("{\"session_id\":1}").is_err());
        assert!(Handover::decode("\u{0}garbage").is_err());
    }

    /// The index by name answers as the search of the list does: every
    /// name, a repeated name's first index, nothing for an unknown one.
    #[test]
    fn the_index_by_name_agrees_with_the_list() {
        let h = Handover {
            subfns: ["w.0", "w.1", "b", "w.1", "w.255"]
                .map(String::from)
                .to_vec(),
            owners: vec![None; 5],
            ..sample()
        };
        let ids = h.subfn_ids();
        for n in &h.subfns {
            assert_eq!(ids.get(n.as_str()).copied(), h.subfn_index(n), "{n}");
        }
        assert_eq!(ids.get("w.1"), Some(&1));
        assert_eq!(ids.len(), 4);
        assert_eq!(ids.get("w.2"), None);
        assert_eq!(h.subfn_index("w.2"), None);
    }
}
