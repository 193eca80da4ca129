//! Rejection cases of `Opener::open`, through the public API: each kind of bad
//! frame is rejected with the exact `Reject`, counted, leaves the expected
//! sequence number alone, and the genuine stream still flows afterwards.

use shmcollab_shm::auth::{
    link_key, Endpoint, LinkKey, MasterKey, Opener, Reject, RxStats, Sealer,
};
use shmcollab_shm::frame::{kind, FrameHeader, FRAME_HEADER_LEN, TAG_LEN};

const SESSION: u64 = 0x5e55_1011;
const LP: Endpoint = Endpoint {
    id: 3,
    generation: 1,
};
const MGR: Endpoint = Endpoint {
    id: 0x8000_0000,
    generation: 0,
};

fn key(master: &MasterKey) -> LinkKey {
    link_key(master, SESSION, LP, MGR)
}

fn hdr() -> FrameHeader {
    FrameHeader {
        kind: kind::REQUEST,
        flags: 0,
        src: LP.id,
        dst: 4,
        aux: 77,
        ..FrameHeader::default()
    }
}

fn payload(i: u64) -> Vec<u8> {
    format!("frame number {i}: some payload bytes").into_bytes()
}

/// Seals frames 0..n on one link.
fn frames(sealer: &mut Sealer, n: u64) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            let p = payload(i);
            let mut buf = vec![0u8; sealer.frame_len(p.len())];
            let len = sealer.seal(hdr(), &p, &mut buf).unwrap();
            assert_eq!(len, buf.len());
            buf
        })
        .collect()
}

struct Link {
    frames: Vec<Vec<u8>>,
    opener: Opener,
    key: Option<LinkKey>,
    out: Vec<u8>,
}

impl Link {
    fn new(secure: bool) -> Link {
        let master = MasterKey::from_bytes([0x42; 32]);
        let k = secure.then(|| key(&master));
        let mut sealer = Sealer::new(k.clone());
        Link {
            frames: frames(&mut sealer, 8),
            opener: Opener::new(k.clone()),
            key: k,
            out: Vec::new(),
        }
    }

    fn deliver(&mut self, i: usize) {
        let f = self.frames[i].clone();
        let h = self.opener.open(&f, &mut self.out).unwrap();
        assert_eq!(h.seq, i as u64);
        assert_eq!(self.out, payload(i as u64));
    }

    /// Expects `bytes` to be rejected with `want`, without side effects on the
    /// sequence number and without payload.
    fn reject(&mut self, bytes: &[u8], want: Reject) {
        let before = self.opener.expected_seq();
        self.out.extend_from_slice(b"stale");
        assert_eq!(self.opener.open(bytes, &mut self.out), Err(want));
        assert!(self.out.is_empty(), "rejected frame yielded bytes");
        assert_eq!(self.opener.expected_seq(), before);
    }

    fn stats(&self) -> RxStats {
        *self.opener.stats()
    }
}

#[test]
fn forged_with_other_master_key() {
    let mut link = Link::new(true);
    link.deliver(0);
    // A frame sealed with another master key: well-formed, correct CRC, seq 1.
    let other = MasterKey::generate();
    let mut mallory = Sealer::new(Some(key(&other)));
    let forged = frames(&mut mallory, 2).pop().unwrap();
    assert_eq!(FrameHeader::decode(&forged).unwrap().seq, 1);
    link.reject(&forged, Reject::Forged);
    // Same with the right master key but the wrong direction.
    let master = MasterKey::from_bytes([0x42; 32]);
    let mut wrong_dir = Sealer::new(Some(link_key(&master, SESSION, MGR, LP)));
    let forged = frames(&mut wrong_dir, 2).pop().unwrap();
    link.reject(&forged, Reject::Forged);
    // And an old generation of the same LP.
    let old = Endpoint {
        generation: 0,
        ..LP
    };
    let mut stale = Sealer::new(Some(link_key(&master, SESSION, old, MGR)));
    let forged = frames(&mut stale, 2).pop().unwrap();
    link.reject(&forged, Reject::Forged);
    assert_eq!(
        link.stats(),
        RxStats {
            accepted: 1,
            forged: 3,
            ..RxStats::default()
        }
    );
    link.deliver(1);
    link.deliver(2);
    assert_eq!(link.stats().accepted, 3);
}

/// Recomputes the CRC of a frame the way a sealer does.
fn fix_crc(f: &mut [u8]) {
    let c = crc32c::crc32c(&f[..28]);
    let c = crc32c::crc32c_append(c, &f[FRAME_HEADER_LEN..]);
    f[28..32].copy_from_slice(&c.to_le_bytes());
}

#[test]
fn header_rewritten_with_fixed_crc_is_forged() {
    // An LP claiming to be another LP: change src, recompute the CRC. The
    // header is the AEAD's associated data, so the tag no longer verifies.
    let mut link = Link::new(true);
    let mut f = link.frames[0].clone();
    f[16] ^= 0x01;
    fix_crc(&mut f);
    link.reject(&f, Reject::Forged);
    // Altering the ciphertext and fixing the CRC: forged as well.
    let mut f = link.frames[0].clone();
    f[FRAME_HEADER_LEN] ^= 0x80;
    fix_crc(&mut f);
    link.reject(&f, Reject::Forged);
    assert_eq!(link.stats().forged, 2);
    link.deliver(0);
}

#[test]
fn altered() {
    let mut link = Link::new(true);
    let len = link.frames[0].len();
    // One payload byte, one header byte (dst, src, aux, flags, kind), one tag
    // byte, one CRC byte.
    for pos in [
        FRAME_HEADER_LEN,
        FRAME_HEADER_LEN + 5,
        20,
        16,
        24,
        2,
        1,
        len - TAG_LEN,
        len - 1,
        28,
        31,
    ] {
        let mut f = link.frames[0].clone();
        f[pos] ^= 0x04;
        link.reject(&f, Reject::Altered);
    }
    // The sequence number is covered too.
    let mut f = link.frames[0].clone();
    f[8] ^= 0x01;
    link.reject(&f, Reject::Altered);
    assert_eq!(
        link.stats(),
        RxStats {
            altered: 12,
            ..RxStats::default()
        }
    );
    link.deliver(0);
    link.deliver(1);
}

#[test]
fn truncated() {
    for secure in [true, false] {
        let mut link = Link::new(secure);
        link.deliver(0);
        let f = link.frames[1].clone();
        let cuts = [0, 1, 10, 31, 32, 33, f.len() - TAG_LEN, f.len() - 1];
        for &n in &cuts {
            link.reject(&f[..n], Reject::Truncated);
        }
        // A payload length larger than the bytes present (but within bounds).
        let mut g = f.clone();
        g[4..8].copy_from_slice(&4096u32.to_le_bytes());
        link.reject(&g, Reject::Truncated);
        assert_eq!(
            link.stats(),
            RxStats {
                accepted: 1,
                truncated: cuts.len() as u64 + 1,
                ..RxStats::default()
            }
        );
        link.deliver(1);
    }
}

#[test]
fn malformed() {
    for secure in [true, false] {
        let mut link = Link::new(secure);
        let f = link.frames[0].clone();
        // Bad version byte.
        for v in [0u8, 2, 0xFF] {
            let mut g = f.clone();
            g[0] = v;
            link.reject(&g, Reject::Malformed);
        }
        // Payload length above MAX_PAYLOAD.
        let mut g = f.clone();
        g[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        link.reject(&g, Reject::Malformed);
        // Trailing bytes after the frame.
        let mut g = f.clone();
        g.push(0);
        link.reject(&g, Reject::Malformed);
        assert_eq!(
            link.stats(),
            RxStats {
                malformed: 5,
                ..RxStats::default()
            }
        );
        link.deliver(0);
    }
}

#[test]
fn secure_frame_to_insecure_opener_and_back() {
    // A secure frame has 16 bytes more than an insecure opener expects, an
    // insecure frame 16 fewer than a secure opener expects.
    let mut insecure = Link::new(false);
    let secure = Link::new(true);
    insecure.reject(&secure.frames[0], Reject::Malformed);
    let mut secure = secure;
    let f = insecure.frames[0].clone();
    secure.reject(&f, Reject::Truncated);
}

#[test]
fn replayed() {
    for secure in [true, false] {
        let mut link = Link::new(secure);
        link.deliver(0);
        let f0 = link.frames[0].clone();
        link.reject(&f0, Reject::Replayed);
        link.deliver(1);
        link.reject(&f0, Reject::Replayed);
        let f1 = link.frames[1].clone();
        link.reject(&f1, Reject::Replayed);
        assert_eq!(
            link.stats(),
            RxStats {
                accepted: 2,
                replayed: 3,
                ..RxStats::default()
            }
        );
        link.deliver(2);
    }
}

/// One altered frame costs that frame, not the link: a frame ahead of the
/// expected one is accepted and the sequence numbers it skipped are counted
/// as lost; anything at or below the last accepted one is a replay. (Before
/// issue 11 every frame after a gap was rejected as reordered, for good.)
#[test]
fn a_gap_is_counted_lost_and_the_link_goes_on() {
    for secure in [true, false] {
        let mut link = Link::new(secure);
        link.deliver(0);
        // Frame 1 is destroyed on the way: 2 arrives next.
        link.deliver(2);
        assert_eq!(link.opener.expected_seq(), 3);
        // The lost frame, arriving late, is a replay now (never delivered).
        let f1 = link.frames[1].clone();
        link.reject(&f1, Reject::Replayed);
        for i in 3..8 {
            link.deliver(i);
        }
        let f5 = link.frames[5].clone();
        link.reject(&f5, Reject::Replayed);
        assert_eq!(
            link.stats(),
            RxStats {
                accepted: 7,
                replayed: 2,
                lost: 1,
                ..RxStats::default()
            }
        );
        assert_eq!(link.stats().rejected(), 2);
        assert_eq!(link.stats().lost_total(), 3);
    }
}

/// An altered frame in the middle of a stream: rejected and counted once,
/// the frames after it are delivered.
#[test]
fn an_altered_frame_loses_only_itself() {
    let mut link = Link::new(true);
    link.deliver(0);
    let mut g = link.frames[1].clone();
    g[40] ^= 1;
    link.reject(&g, Reject::Altered);
    for i in 2..8 {
        link.deliver(i);
    }
    let s = link.stats();
    assert_eq!((s.accepted, s.altered, s.lost), (7, 1, 1));
}

/// A reader that starts mid-stream takes the window from the first frame
/// that authenticates, not from a header: a forged head frame with a huge
/// sequence number cannot push the window past the real frames.
#[test]
fn mid_stream_takes_the_window_from_an_authentic_frame_only() {
    let mut link = Link::new(true);
    link.opener = Opener::mid_stream(link.key.clone());
    let mut forged = link.frames[3].clone();
    forged[16..24].copy_from_slice(&1000u64.to_le_bytes());
    fix_crc(&mut forged);
    link.reject(&forged, Reject::Forged);
    link.deliver(3);
    link.deliver(4);
    let s = link.stats();
    assert_eq!((s.accepted, s.forged, s.lost), (2, 1, 0));
}

#[test]
fn resync_skips_a_gap() {
    let mut link = Link::new(true);
    link.deliver(0);
    link.opener.resync(3);
    assert_eq!(link.opener.expected_seq(), 3);
    link.deliver(3);
    let f1 = link.frames[1].clone();
    link.reject(&f1, Reject::Replayed);
    link.deliver(4);
}

#[test]
fn restarted_peer_gets_new_key() {
    // The LP restarts (generation 2): its new sealer starts at seq 0 with a
    // new key; the manager makes a new opener. Frames of the old generation
    // are forged for the new opener.
    let master = MasterKey::from_bytes([0x42; 32]);
    let old = Link::new(true);
    let lp2 = Endpoint {
        generation: 2,
        ..LP
    };
    let k2 = link_key(&master, SESSION, lp2, MGR);
    let mut sealer = Sealer::new(Some(k2.clone()));
    let mut opener = Opener::new(Some(k2));
    let mut out = Vec::new();
    assert_eq!(opener.open(&old.frames[0], &mut out), Err(Reject::Forged));
    for (i, f) in frames(&mut sealer, 3).iter().enumerate() {
        let h = opener.open(f, &mut out).unwrap();
        assert_eq!(h.seq, i as u64);
        assert_eq!(out, payload(i as u64));
    }
}

#[test]
fn every_outcome_is_counted() {
    let mut link = Link::new(true);
    let f0 = link.frames[0].clone();
    let f1 = link.frames[1].clone();
    link.reject(&f0[..5], Reject::Truncated);
    let mut g = f0.clone();
    g[0] = 9;
    link.reject(&g, Reject::Malformed);
    let mut g = f0.clone();
    g[40] ^= 1;
    link.reject(&g, Reject::Altered);
    let mut g = f0.clone();
    g[40] ^= 1;
    fix_crc(&mut g);
    link.reject(&g, Reject::Forged);
    link.deliver(0);
    link.reject(&f0, Reject::Replayed);
    link.deliver(2);
    link.reject(&f1, Reject::Replayed);
    let s = link.stats();
    assert_eq!(
        s,
        RxStats {
            accepted: 2,
            truncated: 1,
            malformed: 1,
            altered: 1,
            forged: 1,
            replayed: 2,
            reordered: 0,
            lost: 1,
        }
    );
    assert_eq!(s.rejected(), 6);
    for r in [
        Reject::Truncated,
        Reject::Malformed,
        Reject::Altered,
        Reject::Forged,
        Reject::Replayed,
        Reject::Reordered,
    ] {
        assert!(!r.to_string().is_empty());
    }
}
