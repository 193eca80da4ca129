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
    /// Segment name of the manager -> LP ring.
    pub const RING_IN: &str = "SHMCOLAB_RING_IN";
    /// Segment name of the LP -> manager ring.
    pub const RING_OUT: &str = "SHMCOLAB_RING_OUT";
    /// File descriptor from which the LP reads its two link keys (32 bytes:
    /// LP -> manager, then manager -> LP); absent when `secure = false`.
    pub const KEY_FD: &str = "SHMCOLAB_KEY_FD";
    /// Sub-functions the LP hosts, comma-separated.
    pub const SUBFNS: &str = "SHMCOLAB_SUBFNS";
}

/// File descriptor number on which a child finds its keys.
pub const KEY_FD: i32 = 3;

/// Frame flag: `dst` is an LP slot, not a sub-function index.
pub const FLAG_DST_LP: u16 = 1;

/// Control operations (first payload byte of a CONTROL frame, LP -> manager).
pub mod ctl {
    /// The LP is ready.
    pub const READY: u8 = 1;
    /// Custom state: `key \0 value`.
    pub const REPORT: u8 = 2;
    /// LP -> manager: what the LP took from and rejected on its direct
    /// rings, totals ([`super::DirectStats`]).
    pub const STATS: u8 = 3;
    /// LP -> manager: the LP dropped the (empty, closing) direct ring `name`.
    pub const DETACHED: u8 = 4;
    /// LP -> manager: the LP cannot read direct ring `name` (it would not
    /// open, or its indices are garbage); the manager reads it instead.
    pub const LOST: u8 = 5;
    /// Manager -> LP: start reading a direct ring: `peer slot u32, peer
    /// generation u32, ring name`. Sent after every frame of that peer that
    /// must come first.
    pub const ATTACH: u8 = 16;
    /// Manager -> LP: the direct ring `name` gets nothing more; drop it once
    /// it is empty.
    pub const DETACH: u8 = 17;
    /// Manager b -> manager a: "write straight into LP b's direct ring of
    /// LP generation `lp_gen u32`; my generation is `u32`".
    pub const OFFER: u8 = 32;
    /// Manager a -> manager b: "everything for your LP after this goes into
    /// the direct ring of LP generation `lp_gen u32`; my generation is `u32`".
    pub const SWITCH: u8 = 33;
    /// Manager b -> manager a: "the direct ring into my LP of generation
    /// `lp_gen u32` is gone (garbage was found in it); my generation is
    /// `u32`": a goes back to the 6-hop path for it.
    pub const REVOKE: u8 = 34;
    /// Manager a -> manager b, answering REVOKE on a's own ring to b:
    /// "after this, nothing more for your LP of generation `lp_gen u32`
    /// goes into my direct ring; my generation is `u32`". b reads what is
    /// left in the ring before what follows this frame.
    pub const UNSWITCH: u8 = 35;
}

/// What an LP took from its direct rings and what it rejected there (the
/// manager cannot see either): the payload of [`ctl::STATS`], the op byte
/// then messages, bytes and the six reject counts of
/// [`RxStats::rejects`], each u64 LE.
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
    /// The STATS control payload.
    pub fn encode(&self) -> Vec<u8> {
        let mut p = vec![ctl::STATS];
        for v in [self.msgs, self.bytes]
            .into_iter()
            .chain(self.rejects.rejects())
        {
            p.extend_from_slice(&v.to_le_bytes());
        }
        p
    }

    /// Reads a STATS payload; `None` if it is too short (it is untrusted).
    pub fn decode(p: &[u8]) -> Option<DirectStats> {
        let mut v = [0u64; 8];
        for (i, x) in v.iter_mut().enumerate() {
            let b = p.get(1 + 8 * i..9 + 8 * i)?;
            *x = u64::from_le_bytes(b.try_into().ok()?);
        }
        let mut r = [0u64; 6];
        r.copy_from_slice(&v[2..]);
        Some(DirectStats {
            msgs: v[0],
            bytes: v[1],
            rejects: RxStats::from_rejects(r),
        })
    }

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

/// Direct ring from manager `from` (generation `from_gen`) to the LP of
/// slot `lp` (manager generation `lp_mgr_gen`, LP generation `lp_gen`),
/// created by the LP's manager.
pub fn direct_ring(from: u32, from_gen: u32, lp: u32, lp_mgr_gen: u32, lp_gen: u32) -> String {
    format!("m{from}.g{from_gen}-lp{lp}.g{lp_mgr_gen}.{lp_gen}")
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

/// A control payload: the op byte, `nums` as u32 LE, then `tail` (a ring
/// name, say). [`ctl_nums`] reads the numbers back.
pub fn ctl_msg(op: u8, nums: &[u32], tail: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(1 + 4 * nums.len() + tail.len());
    m.push(op);
    for n in nums {
        m.extend_from_slice(&n.to_le_bytes());
    }
    m.extend_from_slice(tail);
    m
}

/// The `N` numbers of a control payload made by [`ctl_msg`] and the bytes
/// after them; `None` if the payload is too short (it is untrusted).
pub fn ctl_nums<const N: usize>(p: &[u8]) -> Option<([u32; N], &[u8])> {
    let body = p.get(1 + 4 * N..)?;
    let mut nums = [0u32; N];
    for (i, n) in nums.iter_mut().enumerate() {
        let b = &p[1 + 4 * i..5 + 4 * i];
        *n = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    }
    Some((nums, body))
}

/// Endpoint id of manager `slot` (for key derivation).
pub fn manager_endpoint(slot: u32, generation: u32) -> Endpoint {
    Endpoint {
        id: slot,
        generation,
    }
}

/// Endpoint id of the LP of slot `slot`; its generation combines the
/// manager's generation and the LP's restart count, so both a restarted LP
/// and a restarted manager get fresh keys.
pub fn lp_endpoint(slot: u32, manager_gen: u32, lp_gen: u32) -> Endpoint {
    Endpoint {
        id: 0x1000_0000 | slot,
        generation: (manager_gen << 16) ^ lp_gen,
    }
}

/// Ring from manager to its LP.
pub fn lp_in_ring(slot: u32, manager_gen: u32) -> String {
    format!("lp{slot}.g{manager_gen}.in")
}

/// Ring from the LP to its manager.
pub fn lp_out_ring(slot: u32, manager_gen: u32) -> String {
    format!("lp{slot}.g{manager_gen}.out")
}

/// Ring from manager `from` to manager `to` (created by `to`, the consumer).
pub fn peer_ring(from: u32, from_gen: u32, to: u32, to_gen: u32) -> String {
    format!("m{from}.g{from_gen}-m{to}.g{to_gen}")
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
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let read_end = match key {
        Some(k) => {
            let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
            // A pipe holds 64 KiB: this write of 32 bytes never blocks.
            rustix::io::write(&w, k)?;
            Some(r)
        }
        None => None,
    };
    let key_fd = read_end.as_ref().map_or(-1, |f| f.as_raw_fd());
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: the closure runs in the forked child before exec and calls
    // only async-signal-safe functions (dup2, fcntl, setpgid, prctl,
    // getppid, sigemptyset, sigprocmask, _exit); it allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            if key_fd >= 0 {
                if libc::dup2(key_fd, KEY_FD) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                libc::fcntl(KEY_FD, libc::F_SETFD, 0);
            }
            if own_group {
                libc::setpgid(0, 0);
            }
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            // The parent may have died before prctl took effect.
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
            Ok(())
        });
    }
    Ok(read_end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn direct_stats_round_trip_and_short_payloads() {
        let s = DirectStats {
            msgs: 7,
            bytes: 448,
            rejects: RxStats::from_rejects([1, 2, 3, 4, 5, 6]),
        };
        let p = s.encode();
        assert_eq!(p.len(), 1 + 8 * 8);
        assert_eq!(DirectStats::decode(&p), Some(s));
        assert_eq!(DirectStats::decode(&p[..p.len() - 1]), None);
        assert_eq!(DirectStats::decode(&[ctl::STATS]), None);
    }
}
