//! Typed control messages: [`LpCtl`] between a manager and its LP, and
//! [`PeerCtl`] between two managers. Each has one encoder and one decoder;
//! the decoder reads untrusted bytes (an LP writes its ring, and a peer's
//! frame is only as good as the peer) and returns an error, never panics.
//!
//! A control payload is the payload of a `kind::CONTROL` frame:
//!
//! ```text
//! byte 0      op (the constants in `op`)
//! then        the op's u32 fields, little-endian, in the order listed
//! then        the op's tail: a ring name (UTF-8, <= 255 bytes), or for
//!             REPORT `key \0 value` (lossy UTF-8), or for STATS 8 x u64 LE
//! ```

use crate::wire::DirectStats;

/// The op bytes. Values are part of the wire format: never renumber.
pub mod op {
    /// LP -> manager: the LP is ready.
    pub const READY: u8 = 1;
    /// LP -> manager: custom state, `key \0 value`.
    pub const REPORT: u8 = 2;
    /// LP -> manager: what the LP took from and rejected on direct rings.
    pub const STATS: u8 = 3;
    /// LP -> manager: the LP dropped the (empty, closing) direct ring.
    pub const DETACHED: u8 = 4;
    /// LP -> manager: the LP cannot read the direct ring; its manager does.
    pub const LOST: u8 = 5;
    /// Manager -> LP: start reading a direct ring.
    pub const ATTACH: u8 = 16;
    /// Manager -> LP: the direct ring gets nothing more.
    pub const DETACH: u8 = 17;
    /// Manager b -> manager a: write into LP b's direct ring.
    pub const OFFER: u8 = 32;
    /// Manager a -> manager b: everything for LP b now goes direct.
    pub const SWITCH: u8 = 33;
    /// Manager b -> manager a: LP b's direct ring is gone; go back.
    pub const REVOKE: u8 = 34;
    /// Manager a -> manager b: nothing more goes into that direct ring.
    pub const UNSWITCH: u8 = 35;
}

/// Longest ring name a control message carries.
pub const MAX_RING_NAME: usize = 255;

/// Why a control payload was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CtlError {
    /// No bytes at all.
    #[error("empty control payload")]
    Empty,
    /// An op this side does not take.
    #[error("unknown control op {0}")]
    UnknownOp(u8),
    /// Fewer bytes than the op's fields.
    #[error("control op {0}: payload too short")]
    Short(u8),
    /// A ring name that is not UTF-8 or too long.
    #[error("control op {0}: bad ring name")]
    BadName(u8),
    /// Bytes after the op's last field.
    #[error("control op {0}: trailing bytes")]
    Trailing(u8),
}

/// Control between a manager and its own LP (both directions).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LpCtl {
    /// LP -> manager: ready; processes waiting on it may start.
    Ready,
    /// LP -> manager: publish `key = value` in the LP's state report.
    Report {
        /// Key (the manager bounds its length).
        key: String,
        /// Value (the manager bounds its length).
        value: String,
    },
    /// LP -> manager: totals of what the LP took from direct rings.
    Stats(DirectStats),
    /// LP -> manager: the LP dropped this empty, closing direct ring.
    Detached {
        /// Segment name of the ring.
        ring: String,
    },
    /// LP -> manager: the LP cannot read this direct ring.
    Lost {
        /// Segment name of the ring.
        ring: String,
    },
    /// Manager -> LP: read this direct ring from now on; sent behind every
    /// frame of that writer that must come first.
    Attach {
        /// Slot of the writing manager.
        writer: u32,
        /// Its generation (for the ring's key).
        writer_generation: u32,
        /// Segment name of the ring.
        ring: String,
    },
    /// Manager -> LP: the direct ring gets nothing more; drop it once empty.
    Detach {
        /// Segment name of the ring.
        ring: String,
    },
}

/// Control between two managers, about the direct path into the LP of the
/// receiver (`OFFER`, `REVOKE`) or of the sender's peer (`SWITCH`,
/// `UNSWITCH`). Generations name which incarnation each side means, so that
/// a message queued before a restart cannot act on the successor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerCtl {
    /// b -> a: "write straight into my LP's direct ring of `lp_gen`".
    Offer {
        /// Generation of b's LP the ring serves.
        lp_gen: u32,
        /// b's manager generation.
        from_gen: u32,
    },
    /// a -> b: "everything for your LP after this goes into the direct ring
    /// of `lp_gen`" (for b's generation `to_gen` only).
    Switch {
        /// Generation of b's LP.
        lp_gen: u32,
        /// a's manager generation.
        from_gen: u32,
        /// b's manager generation the ring was offered by.
        to_gen: u32,
    },
    /// b -> a: "the direct ring into my LP of `lp_gen` is gone".
    Revoke {
        /// Generation of b's LP.
        lp_gen: u32,
        /// b's manager generation.
        from_gen: u32,
    },
    /// a -> b, answering REVOKE: "nothing more goes into that ring".
    Unswitch {
        /// Generation of b's LP.
        lp_gen: u32,
        /// a's manager generation.
        from_gen: u32,
    },
}

/// Reads untrusted control bytes field by field.
struct Reader<'a> {
    op: u8,
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(p: &'a [u8]) -> Result<Reader<'a>, CtlError> {
        let (&op, rest) = p.split_first().ok_or(CtlError::Empty)?;
        Ok(Reader { op, rest })
    }

    fn u32(&mut self) -> Result<u32, CtlError> {
        let (b, rest) = self
            .rest
            .split_first_chunk::<4>()
            .ok_or(CtlError::Short(self.op))?;
        self.rest = rest;
        Ok(u32::from_le_bytes(*b))
    }

    fn u64(&mut self) -> Result<u64, CtlError> {
        let (b, rest) = self
            .rest
            .split_first_chunk::<8>()
            .ok_or(CtlError::Short(self.op))?;
        self.rest = rest;
        Ok(u64::from_le_bytes(*b))
    }

    /// The rest as a ring name.
    fn ring(self) -> Result<String, CtlError> {
        if self.rest.len() > MAX_RING_NAME {
            return Err(CtlError::BadName(self.op));
        }
        std::str::from_utf8(self.rest)
            .map(str::to_owned)
            .map_err(|_| CtlError::BadName(self.op))
    }

    fn end(self) -> Result<(), CtlError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(CtlError::Trailing(self.op))
        }
    }
}

fn put_u32s(p: &mut Vec<u8>, nums: &[u32]) {
    for n in nums {
        p.extend_from_slice(&n.to_le_bytes());
    }
}

impl LpCtl {
    /// The control payload.
    pub fn encode(&self) -> Vec<u8> {
        let mut p = Vec::with_capacity(32);
        match self {
            LpCtl::Ready => p.push(op::READY),
            LpCtl::Report { key, value } => {
                p.push(op::REPORT);
                p.extend_from_slice(key.as_bytes());
                p.push(0);
                p.extend_from_slice(value.as_bytes());
            }
            LpCtl::Stats(s) => {
                p.push(op::STATS);
                for v in [s.msgs, s.bytes].into_iter().chain(s.rejects.rejects()) {
                    p.extend_from_slice(&v.to_le_bytes());
                }
            }
            LpCtl::Detached { ring } => ring_msg(&mut p, op::DETACHED, &[], ring),
            LpCtl::Lost { ring } => ring_msg(&mut p, op::LOST, &[], ring),
            LpCtl::Attach {
                writer,
                writer_generation,
                ring,
            } => ring_msg(&mut p, op::ATTACH, &[*writer, *writer_generation], ring),
            LpCtl::Detach { ring } => ring_msg(&mut p, op::DETACH, &[], ring),
        }
        p
    }

    /// Reads a control payload (untrusted).
    pub fn decode(p: &[u8]) -> Result<LpCtl, CtlError> {
        let mut r = Reader::new(p)?;
        Ok(match r.op {
            op::READY => {
                r.end()?;
                LpCtl::Ready
            }
            op::REPORT => {
                let i = r.rest.iter().position(|&b| b == 0);
                let i = i.ok_or(CtlError::Short(op::REPORT))?;
                LpCtl::Report {
                    key: String::from_utf8_lossy(&r.rest[..i]).into_owned(),
                    value: String::from_utf8_lossy(&r.rest[i + 1..]).into_owned(),
                }
            }
            op::STATS => {
                let mut v = [0u64; 8];
                for x in v.iter_mut() {
                    *x = r.u64()?;
                }
                r.end()?;
                let mut rejects = [0u64; 6];
                rejects.copy_from_slice(&v[2..]);
                LpCtl::Stats(DirectStats {
                    msgs: v[0],
                    bytes: v[1],
                    rejects: shmcollab_shm::auth::RxStats::from_rejects(rejects),
                })
            }
            op::DETACHED => LpCtl::Detached { ring: r.ring()? },
            op::LOST => LpCtl::Lost { ring: r.ring()? },
            op::ATTACH => LpCtl::Attach {
                writer: r.u32()?,
                writer_generation: r.u32()?,
                ring: r.ring()?,
            },
            op::DETACH => LpCtl::Detach { ring: r.ring()? },
            other => return Err(CtlError::UnknownOp(other)),
        })
    }
}

fn ring_msg(p: &mut Vec<u8>, op: u8, nums: &[u32], ring: &str) {
    p.push(op);
    put_u32s(p, nums);
    p.extend_from_slice(ring.as_bytes());
}

impl PeerCtl {
    /// The control payload.
    pub fn encode(&self) -> Vec<u8> {
        let mut p = Vec::with_capacity(13);
        match *self {
            PeerCtl::Offer { lp_gen, from_gen } => {
                p.push(op::OFFER);
                put_u32s(&mut p, &[lp_gen, from_gen]);
            }
            PeerCtl::Switch {
                lp_gen,
                from_gen,
                to_gen,
            } => {
                p.push(op::SWITCH);
                put_u32s(&mut p, &[lp_gen, from_gen, to_gen]);
            }
            PeerCtl::Revoke { lp_gen, from_gen } => {
                p.push(op::REVOKE);
                put_u32s(&mut p, &[lp_gen, from_gen]);
            }
            PeerCtl::Unswitch { lp_gen, from_gen } => {
                p.push(op::UNSWITCH);
                put_u32s(&mut p, &[lp_gen, from_gen]);
            }
        }
        p
    }

    /// Reads a control payload (untrusted).
    pub fn decode(p: &[u8]) -> Result<PeerCtl, CtlError> {
        let mut r = Reader::new(p)?;
        let m = match r.op {
            op::OFFER => PeerCtl::Offer {
                lp_gen: r.u32()?,
                from_gen: r.u32()?,
            },
            op::SWITCH => PeerCtl::Switch {
                lp_gen: r.u32()?,
                from_gen: r.u32()?,
                to_gen: r.u32()?,
            },
            op::REVOKE => PeerCtl::Revoke {
                lp_gen: r.u32()?,
                from_gen: r.u32()?,
            },
            op::UNSWITCH => PeerCtl::Unswitch {
                lp_gen: r.u32()?,
                from_gen: r.u32()?,
            },
            other => return Err(CtlError::UnknownOp(other)),
        };
        r.end()?;
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use shmcollab_shm::auth::RxStats;

    fn ring_name() -> impl Strategy<Value = String> {
        "[a-z0-9.\\-]{0,40}"
    }

    fn lp_ctl() -> impl Strategy<Value = LpCtl> {
        prop_oneof![
            Just(LpCtl::Ready),
            ("[^\\x00]{0,20}", ".{0,40}").prop_map(|(key, value)| LpCtl::Report { key, value }),
            (any::<[u64; 8]>()).prop_map(|v| LpCtl::Stats(DirectStats {
                msgs: v[0],
                bytes: v[1],
                rejects: RxStats::from_rejects([v[2], v[3], v[4], v[5], v[6], v[7]]),
            })),
            ring_name().prop_map(|ring| LpCtl::Detached { ring }),
            ring_name().prop_map(|ring| LpCtl::Lost { ring }),
            (any::<u32>(), any::<u32>(), ring_name()).prop_map(|(writer, g, ring)| {
                LpCtl::Attach {
                    writer,
                    writer_generation: g,
                    ring,
                }
            }),
            ring_name().prop_map(|ring| LpCtl::Detach { ring }),
        ]
    }

    fn peer_ctl() -> impl Strategy<Value = PeerCtl> {
        let (a, b, c) = (any::<u32>(), any::<u32>(), any::<u32>());
        prop_oneof![
            (a, b).prop_map(|(lp_gen, from_gen)| PeerCtl::Offer { lp_gen, from_gen }),
            (a, b, c).prop_map(|(lp_gen, from_gen, to_gen)| PeerCtl::Switch {
                lp_gen,
                from_gen,
                to_gen
            }),
            (a, b).prop_map(|(lp_gen, from_gen)| PeerCtl::Revoke { lp_gen, from_gen }),
            (a, b).prop_map(|(lp_gen, from_gen)| PeerCtl::Unswitch { lp_gen, from_gen }),
        ]
    }

    proptest! {
        #[test]
        fn lp_ctl_round_trips(m in lp_ctl()) {
            prop_assert_eq!(LpCtl::decode(&m.encode()), Ok(m));
        }

        #[test]
        fn peer_ctl_round_trips(m in peer_ctl()) {
            prop_assert_eq!(PeerCtl::decode(&m.encode()), Ok(m));
        }

        #[test]
        fn garbage_never_panics(p in proptest::collection::vec(any::<u8>(), 0..80)) {
            let _ = LpCtl::decode(&p);
            let _ = PeerCtl::decode(&p);
        }

        #[test]
        fn every_cut_of_a_valid_message_is_refused_or_shorter(m in peer_ctl(), cut in 0usize..13) {
            let p = m.encode();
            if cut < p.len() {
                prop_assert!(PeerCtl::decode(&p[..cut]).is_err());
            }
        }
    }

    #[test]
    fn refusals_say_why() {
        assert_eq!(LpCtl::decode(&[]), Err(CtlError::Empty));
        assert_eq!(LpCtl::decode(&[99]), Err(CtlError::UnknownOp(99)));
        assert_eq!(
            LpCtl::decode(&[op::STATS, 1, 2]),
            Err(CtlError::Short(op::STATS))
        );
        assert_eq!(
            LpCtl::decode(&[op::READY, 0]),
            Err(CtlError::Trailing(op::READY))
        );
        assert_eq!(
            LpCtl::decode(&[op::DETACH, 0xff, 0xfe]),
            Err(CtlError::BadName(op::DETACH))
        );
        let long = [vec![op::LOST], vec![b'a'; MAX_RING_NAME + 1]].concat();
        assert_eq!(LpCtl::decode(&long), Err(CtlError::BadName(op::LOST)));
        assert_eq!(
            PeerCtl::decode(&[op::READY]),
            Err(CtlError::UnknownOp(op::READY))
        );
        let switch = PeerCtl::Switch {
            lp_gen: 1,
            from_gen: 2,
            to_gen: 3,
        };
        assert_eq!(switch.encode().len(), 13);
        assert_eq!(
            PeerCtl::decode(&[switch.encode(), vec![0]].concat()),
            Err(CtlError::Trailing(op::SWITCH))
        );
    }
}
