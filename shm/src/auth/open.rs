//! The receiving end of a link: [`Opener`] checks a frame copied out of
//! shared memory and counts every outcome in [`RxStats`]; why a frame was
//! refused is a [`Reject`].
//!
//! The bytes come from memory another process can write, so they are
//! untrusted input: this is the one decoding path for sealed frames, and it
//! returns errors, never panics (the order of the checks is in the parent
//! module's documentation).

use super::frame_crc;
use super::keys::LinkKey;
use crate::frame::{frame_len, FrameError, FrameHeader, CRC_OFFSET, FRAME_HEADER_LEN, TAG_LEN};

/// Why a received frame was rejected. Rejected frames are counted in
/// [`RxStats`] and never delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum Reject {
    /// The frame is shorter than its header says.
    #[error("frame truncated: shorter than its header and payload length say")]
    Truncated,
    /// Unknown version, payload length above the maximum, or trailing bytes.
    #[error("frame malformed: bad version, payload length or frame length")]
    Malformed,
    /// The CRC does not match: bytes changed after sealing.
    #[error("frame altered: checksum mismatch, bytes changed after sealing")]
    Altered,
    /// Well-formed, but not sealed with this link's key.
    #[error("frame forged: authentication tag does not verify with this link's key")]
    Forged,
    /// The sequence number is not above the last accepted one (or the
    /// sequence space is used up).
    #[error("frame replayed: sequence number not above the last accepted one")]
    Replayed,
    /// Kept for the counters' layout; [`Opener::open`] no longer returns it:
    /// a frame ahead of the expected one is accepted and the frames it
    /// skipped are counted in [`RxStats::lost`].
    #[error("frame reordered: sequence number higher than expected, a frame is missing")]
    Reordered,
}

/// Counters of a link's receiving end: one per outcome of [`Opener::open`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RxStats {
    /// Frames delivered.
    pub accepted: u64,
    /// [`Reject::Truncated`] frames.
    pub truncated: u64,
    /// [`Reject::Malformed`] frames.
    pub malformed: u64,
    /// [`Reject::Altered`] frames.
    pub altered: u64,
    /// [`Reject::Forged`] frames.
    pub forged: u64,
    /// [`Reject::Replayed`] frames.
    pub replayed: u64,
    /// [`Reject::Reordered`] frames.
    pub reordered: u64,
    /// Frames never seen: sequence numbers skipped by a gap before an
    /// accepted frame (a frame removed or destroyed on the way). Not part of
    /// [`RxStats::rejected`].
    pub lost: u64,
}

impl RxStats {
    /// The six reject counts: truncated, malformed, altered, forged,
    /// replayed, reordered.
    pub fn rejects(&self) -> [u64; 6] {
        [
            self.truncated,
            self.malformed,
            self.altered,
            self.forged,
            self.replayed,
            self.reordered,
        ]
    }

    /// Reject counts from [`RxStats::rejects`] order (nothing accepted).
    pub fn from_rejects(r: [u64; 6]) -> RxStats {
        RxStats {
            accepted: 0,
            truncated: r[0],
            malformed: r[1],
            altered: r[2],
            forged: r[3],
            replayed: r[4],
            reordered: r[5],
            lost: 0,
        }
    }

    /// Adds `other`'s counts to these (saturating).
    pub fn add(&mut self, other: &RxStats) {
        let mine = [
            &mut self.accepted,
            &mut self.truncated,
            &mut self.malformed,
            &mut self.altered,
            &mut self.forged,
            &mut self.replayed,
            &mut self.reordered,
        ];
        let theirs = [other.accepted].into_iter().chain(other.rejects());
        for (a, b) in mine.into_iter().zip(theirs) {
            *a = a.saturating_add(b);
        }
        self.lost = self.lost.saturating_add(other.lost);
    }

    /// Total number of rejected frames (saturating).
    pub fn rejected(&self) -> u64 {
        self.rejects()
            .into_iter()
            .fold(0u64, |a, b| a.saturating_add(b))
    }

    /// Frames lost to tampering: rejected ones and those a gap skipped
    /// (saturating).
    pub fn lost_total(&self) -> u64 {
        self.rejected().saturating_add(self.lost)
    }

    fn count(&mut self, r: Reject) {
        let c = match r {
            Reject::Truncated => &mut self.truncated,
            Reject::Malformed => &mut self.malformed,
            Reject::Altered => &mut self.altered,
            Reject::Forged => &mut self.forged,
            Reject::Replayed => &mut self.replayed,
            Reject::Reordered => &mut self.reordered,
        };
        *c = c.saturating_add(1);
    }
}

/// The receiving end of one link direction.
#[derive(Debug)]
pub struct Opener {
    key: Option<LinkKey>,
    /// The lowest sequence number still accepted: one above the last
    /// accepted frame's.
    expected: u64,
    /// Sequence numbers from here on were never sealed (see
    /// [`Opener::set_ceiling`]).
    ceiling: u64,
    /// The first frame may carry any sequence number without its gap being
    /// counted as lost (a reader that starts in the middle of a stream).
    mid_stream: bool,
    stats: RxStats,
}

impl Opener {
    /// An opener that expects sequence number 0 first. `None` is the insecure
    /// mode: no CRC or tag is checked, only lengths and sequence numbers.
    pub fn new(key: Option<LinkKey>) -> Opener {
        Opener {
            key,
            expected: 0,
            ceiling: u64::MAX,
            mid_stream: false,
            stats: RxStats::default(),
        }
    }

    /// An opener for a reader that starts in the middle of a stream (another
    /// reader released its beginning): the first frame that opens sets where
    /// the stream is, and the frames before it are not counted as lost. The
    /// sequence number is taken only from a frame that authenticated, never
    /// from an unchecked header.
    pub fn mid_stream(key: Option<LinkKey>) -> Opener {
        Opener {
            mid_stream: true,
            ..Opener::new(key)
        }
    }

    /// From now on, as [`Opener::mid_stream`]: the next frame that opens sets
    /// the window without counting a gap before it.
    pub fn start_mid_stream(&mut self) {
        self.mid_stream = true;
    }

    /// Refuse sequence numbers from `ceiling` on as [`Reject::Forged`]: for
    /// a reader of frames its own side sealed (a manager reclaiming what
    /// its dead LP did not read), which knows the sealer has not gone past
    /// it. The LP holds that link's key, so only this bound tells its
    /// additions from the manager's frames.
    pub fn set_ceiling(&mut self, ceiling: u64) {
        self.ceiling = ceiling;
    }

    /// Count a frame rejected outside [`Opener::open`] (a ring reset skips
    /// frames that were never opened: it counts as one malformed frame, and
    /// the frames in it as lost by the gap the next frame shows).
    pub fn note(&mut self, r: Reject) {
        self.stats.count(r);
    }

    /// Whether frames are expected to be encrypted and authenticated.
    pub fn secure(&self) -> bool {
        self.key.is_some()
    }

    /// The counters of this link.
    pub fn stats(&self) -> &RxStats {
        &self.stats
    }

    /// The lowest sequence number that will be accepted.
    pub fn expected_seq(&self) -> u64 {
        self.expected
    }

    /// Sets the sequence number the next accepted frame must carry.
    ///
    /// Only for the manager's recovery paths, e.g. when a peer restarted and
    /// the link got a new key (usually a new `Opener` is simpler), or to
    /// skip a gap deliberately after reporting it. Resyncing to an earlier
    /// number under the same key re-opens the door to replays.
    pub fn resync(&mut self, seq: u64) {
        self.expected = seq;
    }

    /// Checks and opens one frame.
    ///
    /// `frame` is untrusted: it is first copied into `out`, and only the copy
    /// is checked (see the module documentation for the order of checks). On
    /// success `out` holds exactly the plaintext payload and the header is
    /// returned; on rejection `out` is empty. Never panics.
    pub fn open(&mut self, frame: &[u8], out: &mut Vec<u8>) -> Result<FrameHeader, Reject> {
        out.clear();
        out.extend_from_slice(frame);
        self.open_copied(out)
    }

    /// As [`Opener::open`] for a frame already copied into `buf` (a private
    /// copy out of shared memory): on success `buf` holds exactly the
    /// payload, on rejection it is empty. Never panics.
    pub fn open_copied(&mut self, buf: &mut Vec<u8>) -> Result<FrameHeader, Reject> {
        let out = buf;
        match self.check(out) {
            Ok(hdr) => {
                self.stats.accepted = self.stats.accepted.saturating_add(1);
                let len = hdr.payload_len as usize;
                out.copy_within(FRAME_HEADER_LEN..FRAME_HEADER_LEN + len, 0);
                out.truncate(len);
                Ok(hdr)
            }
            Err(r) => {
                self.stats.count(r);
                out.clear();
                Err(r)
            }
        }
    }

    /// Checks the private copy `buf`, decrypting the payload in place; advances
    /// the expected sequence number only on success.
    fn check(&mut self, buf: &mut [u8]) -> Result<FrameHeader, Reject> {
        let hdr = FrameHeader::decode(buf).map_err(|e| match e {
            FrameError::Truncated { .. } => Reject::Truncated,
            _ => Reject::Malformed,
        })?;
        let len = hdr.payload_len as usize;
        let want = frame_len(len, self.secure());
        if buf.len() < want {
            return Err(Reject::Truncated);
        }
        if buf.len() > want {
            return Err(Reject::Malformed);
        }
        if let Some(key) = &self.key {
            if frame_crc(buf) != hdr.crc {
                return Err(Reject::Altered);
            }
            let (head, body) = buf.split_at_mut(FRAME_HEADER_LEN);
            let (payload, tag) = body.split_at_mut(len);
            let mut t = [0u8; TAG_LEN];
            t.copy_from_slice(tag);
            if !key.open(hdr.seq, &head[..CRC_OFFSET], payload, &t) {
                return Err(Reject::Forged);
            }
        }
        if hdr.seq >= self.ceiling {
            return Err(Reject::Forged);
        }
        if hdr.seq < self.expected {
            return Err(Reject::Replayed);
        }
        // A sealer never uses u64::MAX; accepting it would wrap the counter.
        let next = hdr.seq.checked_add(1).ok_or(Reject::Replayed)?;
        // Higher than expected: the frames in between never arrived intact
        // (a ring loses nothing, so something destroyed them). They are
        // counted; the nonce stays unique because the sealer never reuses a
        // sequence number under one key, and nothing below `next` is
        // accepted again.
        if !std::mem::take(&mut self.mid_stream) {
            let gap = hdr.seq - self.expected;
            self.stats.lost = self.stats.lost.saturating_add(gap);
        }
        self.expected = next;
        Ok(hdr)
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{hdr, pair};
    use super::*;
    use crate::frame::{kind, FRAME_VERSION};

    #[test]
    fn roundtrip_sequence() {
        for secure in [true, false] {
            let (mut s, mut o) = pair(secure);
            let mut buf = vec![0u8; 4096];
            let mut out = Vec::new();
            for i in 0..10u64 {
                let payload: Vec<u8> = (0..i * 13).map(|x| x as u8).collect();
                let n = s.seal(hdr(), &payload, &mut buf).unwrap();
                assert_eq!(n, frame_len(payload.len(), secure));
                let h = o.open(&buf[..n], &mut out).unwrap();
                assert_eq!(out, payload);
                assert_eq!(h.seq, i);
                assert_eq!(h.payload_len as usize, payload.len());
                assert_eq!((h.kind, h.src, h.dst, h.aux), (kind::DATA, 1, 3, 9));
                assert_eq!(h.version, FRAME_VERSION);
                if !secure {
                    assert_eq!(h.crc, 0);
                }
            }
            assert_eq!(s.next_seq(), 10);
            assert_eq!(o.expected_seq(), 10);
            assert_eq!(o.stats().accepted, 10);
            assert_eq!(o.stats().rejected(), 0);
        }
    }

    /// Issue 11 item 9: a reclaiming reader bounds what it takes by what its
    /// side sealed; a frame above (sealed by the LP, which holds the key)
    /// is forged.
    #[test]
    fn the_ceiling_refuses_what_was_never_sealed() {
        let (mut s, _) = pair(true);
        let mut frames = Vec::new();
        for _ in 0..4 {
            let mut buf = vec![0u8; 256];
            let n = s.seal(hdr(), b"x", &mut buf).unwrap();
            buf.truncate(n);
            frames.push(buf);
        }
        let (_, mut o) = pair(true);
        o.start_mid_stream();
        o.set_ceiling(3);
        let mut out = Vec::new();
        assert_eq!(o.open(&frames[1], &mut out).unwrap().seq, 1);
        assert_eq!(o.open(&frames[2], &mut out).unwrap().seq, 2);
        assert_eq!(o.open(&frames[3], &mut out), Err(Reject::Forged));
        assert_eq!((o.stats().lost, o.stats().forged), (0, 1));
    }

    #[test]
    fn rx_stats_add_and_rejects() {
        let mut a = RxStats::from_rejects([1, 2, 3, 4, 5, 6]);
        a.accepted = 7;
        assert_eq!(a.rejected(), 21);
        let mut b = RxStats::from_rejects([u64::MAX, 0, 0, 1, 0, 0]);
        b.add(&a);
        assert_eq!(b.rejects(), [u64::MAX, 2, 3, 5, 5, 6]);
        assert_eq!(b.accepted, 7);
    }
}
