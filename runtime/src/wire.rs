//! Names and small formats shared by the supervisor, the managers and the
//! LPs: segment names, environment variables, endpoint ids, control ops.

use shmcollab_shm::auth::{Endpoint, RxStats};

/// Environment variables the manager sets for its LP (read by [`crate::Lp::connect`]).
pub mod env {
    /// The session directory.
    pub const SESSION: &str = "SHMCOLAB_SESSION";
    /// The LP's registry slot.
    pub const SLOT: &str = "SHMCOLAB_SLOT";
    /// The LP's name.
    pub const NAME: &str = "SHMCOLAB_NAME";
    /// File descriptor from which the LP reads its two link keys (32 bytes:
    /// LP -> manager, then manager -> LP); absent when `secure = false`.
    pub const KEY_FD: &str = "SHMCOLAB_KEY_FD";
}

/// File descriptor number on which a child finds its keys.
pub const KEY_FD: i32 = 3;

/// Frame flag: `dst` is an LP slot, not a sub-function index.
pub const FLAG_DST_LP: u16 = 1;

/// Frame flag of a TXN or TXN_REPLY: between managers (`dst` is a manager
/// slot), or from an LP to its own manager (the transaction coordinator).
pub const FLAG_MANAGER: u16 = 2;

/// What an LP took from its direct rings and what it rejected there (the
/// manager cannot see either): carried by [`crate::ctl::LpCtl::Stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DirectStats {
    /// Messages taken.
    pub msgs: u64,
    /// Their payload bytes.
    pub bytes: u64,
    /// Frames rejected (`accepted` unused).
    pub rejects: RxStats,
}

impl DirectStats {
    /// Adds `other`'s counts to these (saturating).
    pub fn add(&mut self, other: &DirectStats) {
        self.msgs = self.msgs.saturating_add(other.msgs);
        self.bytes = self.bytes.saturating_add(other.bytes);
        self.rejects.add(&other.rejects);
    }
}

/// Whether managers offer the direct path (manager a writing straight into
/// LP b's direct ring, 4 hops per round trip instead of 6). On unless
/// `SHMCOLAB_DIRECT=0` (for measuring the difference).
pub fn direct_enabled() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var("SHMCOLAB_DIRECT").map_or(true, |v| v != "0"))
}

/// Label of the sub-key of a direct ring from manager `from` (generation
/// `from_gen`): derived from the key of the LP's own inbound link, so the LP
/// holds no key but its own.
pub fn direct_label(from: u32, from_gen: u32) -> Vec<u8> {
    let mut l = b"direct".to_vec();
    l.extend_from_slice(&from.to_le_bytes());
    l.extend_from_slice(&from_gen.to_le_bytes());
    l
}

/// Endpoint id of manager `slot` (for key derivation).
pub fn manager_endpoint(slot: u32, generation: u32) -> Endpoint {
    Endpoint {
        id: slot,
        generation: u64::from(generation),
    }
}

/// Endpoint id of the LP of slot `slot`; its generation is the manager's
/// generation and the LP's restart count side by side (64 bits: no two
/// pairs give the same one), so both a restarted LP and a restarted
/// manager get fresh keys.
pub fn lp_endpoint(slot: u32, manager_gen: u32, lp_gen: u32) -> Endpoint {
    Endpoint {
        id: 0x1000_0000 | slot,
        generation: (u64::from(manager_gen) << 32) | u64::from(lp_gen),
    }
}

/// Ring from manager to its LP.
pub fn lp_in_ring(slot: u32, manager_gen: u32) -> String {
    RingName::LpIn { slot, manager_gen }.to_string()
}

/// Ring from the LP to its manager.
pub fn lp_out_ring(slot: u32, manager_gen: u32) -> String {
    RingName::LpOut { slot, manager_gen }.to_string()
}

/// Ring from manager `from` to manager `to` (created by `to`, the consumer).
pub fn peer_ring(from: u32, from_gen: u32, to: u32, to_gen: u32) -> String {
    RingName::Peer {
        from,
        from_gen,
        to,
        to_gen,
    }
    .to_string()
}

/// Direct ring from manager `from` (generation `from_gen`) to the LP of
/// slot `lp` (manager generation `lp_mgr_gen`, LP generation `lp_gen`),
/// created by the LP's manager.
pub fn direct_ring(from: u32, from_gen: u32, lp: u32, lp_mgr_gen: u32, lp_gen: u32) -> String {
    RingName::Direct {
        from,
        from_gen,
        lp,
        lp_mgr_gen,
        lp_gen,
    }
    .to_string()
}

/// The names of ring segments in a session directory: the one grammar,
/// written by [`std::fmt::Display`] and read by [`RingName::parse`].
///
/// ```text
/// lp<slot>.g<manager gen>.in                       manager -> its LP
/// lp<slot>.g<manager gen>.out                      LP -> its manager
/// m<from>.g<gen>-m<to>.g<gen>                      manager -> manager (made by `to`)
/// m<from>.g<gen>-lp<slot>.g<manager gen>.<lp gen>  manager -> another LP (direct)
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RingName {
    /// Manager -> its LP.
    LpIn {
        /// The LP's slot.
        slot: u32,
        /// Its manager's generation.
        manager_gen: u32,
    },
    /// LP -> its manager.
    LpOut {
        /// The LP's slot.
        slot: u32,
        /// Its manager's generation.
        manager_gen: u32,
    },
    /// Manager `from` -> manager `to`.
    Peer {
        /// Writer's slot.
        from: u32,
        /// Writer's generation.
        from_gen: u32,
        /// Reader's slot.
        to: u32,
        /// Reader's generation.
        to_gen: u32,
    },
    /// Manager `from` -> the LP of slot `lp` (the direct path).
    Direct {
        /// Writer's slot.
        from: u32,
        /// Writer's generation.
        from_gen: u32,
        /// The LP's slot.
        lp: u32,
        /// The LP's manager's generation.
        lp_mgr_gen: u32,
        /// The LP's generation.
        lp_gen: u32,
    },
}

impl std::fmt::Display for RingName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            RingName::LpIn { slot, manager_gen } => write!(f, "lp{slot}.g{manager_gen}.in"),
            RingName::LpOut { slot, manager_gen } => write!(f, "lp{slot}.g{manager_gen}.out"),
            RingName::Peer {
                from,
                from_gen,
                to,
                to_gen,
            } => write!(f, "m{from}.g{from_gen}-m{to}.g{to_gen}"),
            RingName::Direct {
                from,
                from_gen,
                lp,
                lp_mgr_gen,
                lp_gen,
            } => write!(f, "m{from}.g{from_gen}-lp{lp}.g{lp_mgr_gen}.{lp_gen}"),
        }
    }
}

/// `<prefix><n>.g<m>` -> (n, m) and what follows.
fn slot_gen<'a>(s: &'a str, prefix: &str) -> Option<(u32, u32, &'a str)> {
    let s = s.strip_prefix(prefix)?;
    let (n, s) = s.split_once(".g")?;
    let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (m, rest) = s.split_at(end);
    Some((num(n)?, num(m)?, rest))
}

/// A decimal u32 as [`RingName`] writes it (no sign, no leading zeros).
fn num(s: &str) -> Option<u32> {
    let ok =
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0'));
    ok.then(|| s.parse().ok()).flatten()
}

impl RingName {
    /// Reads a segment name; `None` for anything else (a file in the
    /// session directory is untrusted).
    pub fn parse(name: &str) -> Option<RingName> {
        if let Some((slot, manager_gen, rest)) = slot_gen(name, "lp") {
            return match rest {
                ".in" => Some(RingName::LpIn { slot, manager_gen }),
                ".out" => Some(RingName::LpOut { slot, manager_gen }),
                _ => None,
            };
        }
        let (from, from_gen, rest) = slot_gen(name, "m")?;
        if let Some((to, to_gen, "")) = slot_gen(rest, "-m") {
            return Some(RingName::Peer {
                from,
                from_gen,
                to,
                to_gen,
            });
        }
        let (lp, lp_mgr_gen, rest) = slot_gen(rest, "-lp")?;
        let lp_gen = num(rest.strip_prefix('.')?)?;
        Some(RingName::Direct {
            from,
            from_gen,
            lp,
            lp_mgr_gen,
            lp_gen,
        })
    }

    /// The slot whose manager made this ring (its reader's).
    pub fn owner(&self) -> u32 {
        match *self {
            RingName::LpIn { slot, .. } | RingName::LpOut { slot, .. } => slot,
            RingName::Peer { to, .. } => to,
            RingName::Direct { lp, .. } => lp,
        }
    }

    /// The generation of the manager that made this ring.
    pub fn owner_gen(&self) -> u32 {
        match *self {
            RingName::LpIn { manager_gen, .. } | RingName::LpOut { manager_gen, .. } => manager_gen,
            RingName::Peer { to_gen, .. } => to_gen,
            RingName::Direct { lp_mgr_gen, .. } => lp_mgr_gen,
        }
    }
}

/// Prepare `cmd` to start a child of the runtime (a manager or an LP):
/// `key`, if any, reaches it on descriptor [`KEY_FD`] through a pipe (never
/// argv, env or disk); it gets SIGKILL when its parent dies; its signal mask
/// is cleared (the parent blocks signals for its signal thread); with
/// `own_group` it leads a process group of its own, so that a terminal's
/// Ctrl-C reaches only the supervisor. Keep the returned descriptor until
/// `spawn` has returned.
pub fn prepare_child(
    cmd: &mut std::process::Command,
    key: Option<&[u8]>,
    own_group: bool,
) -> std::io::Result<Option<std::os::fd::OwnedFd>> {
    let setup = crate::child::ChildSetup {
        own_group,
        ..Default::default()
    };
    prepare_child_with(cmd, key, setup)
}

/// [`prepare_child`] with the rest of what [`crate::child`] can do to a
/// child (an LP's descriptors, another user, the sandbox).
pub fn prepare_child_with(
    cmd: &mut std::process::Command,
    key: Option<&[u8]>,
    setup: crate::child::ChildSetup,
) -> std::io::Result<Option<std::os::fd::OwnedFd>> {
    use std::os::fd::AsRawFd;
    let read_end = match key {
        Some(k) => {
            let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
            // A pipe holds 64 KiB: this write of 32 bytes never blocks.
            rustix::io::write(&w, k)?;
            Some(r)
        }
        None => None,
    };
    crate::child::apply(cmd, read_end.as_ref().map(|f| f.as_raw_fd()), setup);
    Ok(read_end)
}

#[cfg(test)]
mod tests {
    use super::*;

    use proptest::prelude::*;

    fn ring_name() -> impl Strategy<Value = RingName> {
        let n = any::<u32>;
        prop_oneof![
            (n(), n()).prop_map(|(slot, manager_gen)| RingName::LpIn { slot, manager_gen }),
            (n(), n()).prop_map(|(slot, manager_gen)| RingName::LpOut { slot, manager_gen }),
            (n(), n(), n(), n()).prop_map(|(from, from_gen, to, to_gen)| RingName::Peer {
                from,
                from_gen,
                to,
                to_gen
            }),
            (n(), n(), n(), n(), n()).prop_map(|(from, from_gen, lp, lp_mgr_gen, lp_gen)| {
                RingName::Direct {
                    from,
                    from_gen,
                    lp,
                    lp_mgr_gen,
                    lp_gen,
                }
            }),
        ]
    }

    proptest! {
        #[test]
        fn ring_names_round_trip(r in ring_name()) {
            prop_assert_eq!(RingName::parse(&r.to_string()), Some(r));
        }

        #[test]
        fn any_string_parses_without_panic(s in ".{0,40}") {
            if let Some(r) = RingName::parse(&s) {
                prop_assert_eq!(r.to_string(), s);
            }
        }
    }

    #[test]
    fn lp_endpoint_generations_never_collide() {
        // (1 << 16) ^ 0 == (0 << 16) ^ 65536 under the old formula.
        let a = lp_endpoint(3, 1, 0);
        let b = lp_endpoint(3, 0, 1 << 16);
        assert_ne!(a, b);
        assert_ne!(lp_endpoint(3, 2, 5), lp_endpoint(3, 5, 2));
    }

    #[test]
    fn ring_names_as_written() {
        assert_eq!(lp_in_ring(3, 2), "lp3.g2.in");
        assert_eq!(peer_ring(0, 1, 2, 3), "m0.g1-m2.g3");
        assert_eq!(direct_ring(0, 1, 2, 3, 4), "m0.g1-lp2.g3.4");
        for bad in [
            "lp1.g2.inx",
            "lp01.g2.in",
            "m1.g2-m3.g",
            "m1.g2-lp3.g4",
            "registry",
            "owner",
            "m1.g2-lp3.g4.-1",
        ] {
            assert_eq!(RingName::parse(bad), None, "{bad}");
        }
    }
}
