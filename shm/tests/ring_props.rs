//! Property tests of the ring: arbitrary frame sizes and batch patterns,
//! wrap-around, order and content preserved; garbage indices never panic.

use proptest::prelude::*;
use shmcollab_shm::ring::{heap_ring, SendError};

fn frame(i: usize, len: usize) -> Vec<u8> {
    (0..len).map(|j| (i * 31 + j) as u8).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Interleave sends and receives in arbitrary batch sizes; everything sent
    /// comes out once, in order, unchanged.
    #[test]
    fn order_and_content_preserved(
        cap_pow in 6u32..12,
        sizes in proptest::collection::vec(0usize..600, 1..300),
        batches in proptest::collection::vec(1usize..8, 1..50),
    ) {
        let cap = 1usize << cap_pow;
        let max = cap / 2 - 8;
        let sizes: Vec<usize> = sizes.into_iter().map(|s| s % (max + 1)).collect();
        let (mut p, mut c) = heap_ring(cap);
        let mut sent = 0;
        let mut recvd = 0;
        let mut b = 0;
        while recvd < sizes.len() {
            // Send up to a batch of frames, then flush once.
            let n = batches[b % batches.len()];
            b += 1;
            for _ in 0..n {
                if sent == sizes.len() { break; }
                match p.reserve(sizes[sent]) {
                    Ok(mut slot) => {
                        slot.copy_from(&frame(sent, sizes[sent]));
                        slot.commit();
                        sent += 1;
                    }
                    Err(SendError::WouldBlock) => break,
                    Err(e) => panic!("{e}"),
                }
            }
            p.flush();
            // Receive a batch.
            let m = batches[(b * 7) % batches.len()];
            for _ in 0..m {
                match c.peek().unwrap() {
                    Some(f) => {
                        prop_assert_eq!(f.to_vec(), frame(recvd, sizes[recvd]));
                        f.release();
                        recvd += 1;
                    }
                    None => break,
                }
            }
            prop_assert!(recvd <= sent);
        }
        prop_assert!(c.peek().unwrap().is_none());
    }
}

#[cfg(target_os = "linux")]
mod shm_backed {
    use super::*;
    use shmcollab_shm::ring::{create_ring, Consumer, Producer};
    use shmcollab_shm::segment::Session;

    fn session() -> Session {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Session::create(&format!("ringprop-{}-{n}", std::process::id())).unwrap()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Whatever the other process scribbles over the control block and
        /// the data area, the consumer returns frames or errors: no panic,
        /// no read out of bounds, no endless loop.
        #[test]
        fn garbage_never_panics(
            head in any::<u64>(), tail in any::<u64>(),
            data in proptest::collection::vec(any::<u8>(), 256),
            frames in 0usize..6,
        ) {
            let s = session();
            let seg = create_ring(&s, "r", 256).unwrap();
            let mut p = Producer::attach(&seg, None).unwrap();
            for i in 0..frames { p.try_send(&frame(i, 20)).unwrap(); }
            let mut c = Consumer::attach(&seg).unwrap();
            let base = seg.body_ptr();
            // SAFETY: the segment body is 640 + 256 bytes; head at 128, tail
            // at 256, data at 640; this test owns the mapping.
            unsafe {
                std::ptr::copy_nonoverlapping(data.as_ptr(), base.add(640), 256);
                (base.add(128) as *mut u64).write_volatile(head % 4096);
                (base.add(256) as *mut u64).write_volatile(tail % 4096);
            }
            let mut c2 = Consumer::attach(&seg).ok();
            for _ in 0..64 {
                match c.peek() {
                    Ok(Some(f)) => f.release(),
                    Ok(None) | Err(_) => break,
                }
            }
            if let Some(c2) = c2.as_mut() {
                for _ in 0..64 {
                    match c2.peek() {
                        Ok(Some(f)) => { let _ = f.to_vec(); f.release() }
                        Ok(None) | Err(_) => break,
                    }
                }
            }
            let _ = p.try_send(&[1, 2, 3]);
        }
    }
}
