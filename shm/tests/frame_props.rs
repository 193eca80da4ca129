//! Property tests of the frame codec and of sealing/opening: garbage never
//! panics, headers and payloads roundtrip, any bit flip is rejected.

use proptest::prelude::*;
use shmcollab_shm::auth::{link_key, Endpoint, MasterKey, Opener, Sealer};
use shmcollab_shm::frame::{frame_len, FrameError, FrameHeader, FRAME_VERSION, MAX_PAYLOAD};

fn key() -> shmcollab_shm::auth::LinkKey {
    let master = MasterKey::from_bytes([9u8; 32]);
    link_key(
        &master,
        1,
        Endpoint {
            id: 1,
            generation: 0,
        },
        Endpoint {
            id: 2,
            generation: 0,
        },
    )
}

prop_compose! {
    fn any_header()(
        version in any::<u8>(), kind in any::<u8>(), flags in any::<u16>(),
        payload_len in any::<u32>(), seq in any::<u64>(), src in any::<u32>(),
        dst in any::<u32>(), aux in any::<u32>(), crc in any::<u32>(),
    ) -> FrameHeader {
        FrameHeader { version, kind, flags, payload_len, seq, src, dst, aux, crc }
    }
}

proptest! {
    #[test]
    fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..2000)) {
        let _ = FrameHeader::decode(&bytes);
    }

    #[test]
    fn open_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..2000), expected in 0u64..4) {
        for k in [Some(key()), None] {
            let mut o = Opener::new(k);
            o.resync(expected);
            let mut out = vec![1, 2, 3];
            match o.open(&bytes, &mut out) {
                Ok(h) => prop_assert_eq!(out.len(), h.payload_len as usize),
                Err(_) => {
                    prop_assert!(out.is_empty());
                    prop_assert_eq!(o.expected_seq(), expected);
                }
            }
            prop_assert_eq!(o.stats().accepted + o.stats().rejected(), 1);
        }
    }

    /// Garbage that starts with a plausible header: exercises the checks past
    /// decoding (length, CRC, AEAD, sequence) rather than the version check.
    #[test]
    fn open_plausible_garbage(mut h in any_header(), body in proptest::collection::vec(any::<u8>(), 0..300)) {
        h.version = FRAME_VERSION;
        h.payload_len %= 300;
        h.seq %= 3;
        let mut bytes = h.encode().to_vec();
        bytes.extend_from_slice(&body);
        let mut o = Opener::new(None);
        let mut out = Vec::new();
        let insecure_ok = o.open(&bytes, &mut out).is_ok();
        // Any sequence number at or above the window (0) opens.
        prop_assert_eq!(insecure_ok, bytes.len() == frame_len(h.payload_len as usize, false));
        let mut o = Opener::new(Some(key()));
        prop_assert!(o.open(&bytes, &mut out).is_err());
        prop_assert!(out.is_empty());
    }

    #[test]
    fn header_roundtrip(h in any_header()) {
        let bytes = h.encode();
        match FrameHeader::decode(&bytes) {
            Ok(d) => prop_assert_eq!(d, h),
            Err(FrameError::Version(v)) => prop_assert!(v != FRAME_VERSION && v == h.version),
            Err(FrameError::TooLong(n)) => prop_assert!(n as usize > MAX_PAYLOAD && n == h.payload_len),
            Err(e) => prop_assert!(false, "unexpected {e}"),
        }
        let mut valid = h;
        valid.version = FRAME_VERSION;
        valid.payload_len %= MAX_PAYLOAD as u32 + 1;
        prop_assert_eq!(FrameHeader::decode(&valid.encode()), Ok(valid));
    }

    #[test]
    fn seal_open_roundtrip(
        h in any_header(),
        payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..4096), 1..4),
        secure in any::<bool>(),
    ) {
        let k = secure.then(key);
        let mut s = Sealer::new(k.clone());
        let mut o = Opener::new(k);
        let mut buf = vec![0u8; frame_len(4096, true)];
        let mut out = Vec::new();
        for (i, p) in payloads.iter().enumerate() {
            let n = s.seal(h, p, &mut buf).unwrap();
            prop_assert_eq!(n, frame_len(p.len(), secure));
            let got = o.open(&buf[..n], &mut out).unwrap();
            prop_assert_eq!(&out, p);
            prop_assert_eq!(got.seq, i as u64);
            prop_assert_eq!(got.version, FRAME_VERSION);
            prop_assert_eq!(got.payload_len as usize, p.len());
            prop_assert_eq!((got.kind, got.flags, got.src, got.dst, got.aux), (h.kind, h.flags, h.src, h.dst, h.aux));
        }
    }

    #[test]
    fn any_bit_flip_is_rejected(
        h in any_header(),
        payload in proptest::collection::vec(any::<u8>(), 0..512),
        bit in any::<proptest::sample::Index>(),
    ) {
        let mut s = Sealer::new(Some(key()));
        let mut o = Opener::new(Some(key()));
        let mut buf = vec![0u8; frame_len(payload.len(), true)];
        let n = s.seal(h, &payload, &mut buf).unwrap();
        let frame = buf[..n].to_vec();
        let b = bit.index(n * 8);
        buf[b / 8] ^= 1 << (b % 8);
        let mut out = Vec::new();
        prop_assert!(o.open(&buf[..n], &mut out).is_err());
        prop_assert!(out.is_empty());
        prop_assert_eq!(o.expected_seq(), 0);
        // The genuine frame still opens afterwards.
        o.open(&frame, &mut out).unwrap();
        prop_assert_eq!(out, payload);
    }

    /// The opener's window over any order of arrival: frames delivered,
    /// dropped, duplicated or swapped. What is accepted is strictly
    /// increasing (never a replay), the payload is the sealed one, and the
    /// sequence numbers skipped by accepted frames are exactly `lost`.
    #[test]
    fn window_accepts_increasing_and_counts_gaps(
        order in proptest::collection::vec(0u64..24, 0..64),
        secure in any::<bool>(),
    ) {
        let k = secure.then(key);
        let mut s = Sealer::new(k.clone());
        let mut frames = Vec::new();
        for i in 0..24u64 {
            let mut buf = vec![0u8; frame_len(8, true)];
            let n = s.seal(FrameHeader::default(), &i.to_le_bytes(), &mut buf).unwrap();
            buf.truncate(n);
            frames.push(buf);
        }
        let mut o = Opener::new(k);
        let mut out = Vec::new();
        let mut last: Option<u64> = None;
        let mut gaps = 0u64;
        for &i in &order {
            let want_ok = last.is_none_or(|l| i > l);
            match o.open(&frames[i as usize], &mut out) {
                Ok(h) => {
                    prop_assert!(want_ok);
                    prop_assert_eq!(h.seq, i);
                    prop_assert_eq!(&out[..], &i.to_le_bytes()[..]);
                    gaps += i - last.map_or(0, |l| l + 1);
                    last = Some(i);
                }
                Err(r) => {
                    prop_assert!(!want_ok);
                    prop_assert_eq!(r, shmcollab_shm::auth::Reject::Replayed);
                }
            }
        }
        prop_assert_eq!(o.stats().lost, gaps);
        prop_assert_eq!(o.stats().accepted + o.stats().replayed, order.len() as u64);
    }
}
