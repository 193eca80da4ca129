//! Loom model of the ring's index protocol.
//!
//! Run: `RUSTFLAGS="--cfg loom" cargo test -p shmcollab-shm --release --test loom`
//! Data bytes go through loom's UnsafeCell, so a publish with the wrong
//! ordering (e.g. Relaxed instead of Release on the tail) is reported as a
//! data race between the producer's write and the consumer's read.
#![cfg(loom)]

use loom::thread;
use shmcollab_shm::ring::heap_ring;

fn consume(c: &mut shmcollab_shm::ring::Consumer, expect: &[&[u8]]) {
    for want in expect {
        loop {
            match c.peek().expect("ring is consistent") {
                Some(f) => {
                    assert_eq!(&f.to_vec()[..], *want);
                    f.release();
                    break;
                }
                None => thread::yield_now(),
            }
        }
    }
}

#[test]
fn two_frames_in_order() {
    loom::model(|| {
        let (mut p, mut c) = heap_ring(64);
        let t = thread::spawn(move || {
            p.try_send(b"ab").unwrap();
            p.try_send(b"cdef").unwrap();
        });
        consume(&mut c, &[b"ab", b"cdef"]);
        t.join().unwrap();
    });
}

#[test]
fn wrap_around_with_padding_and_reuse() {
    loom::model(|| {
        // Capacity 64: records of 24 bytes; the third wraps (a pad record)
        // and reuses space the consumer released.
        let (mut p, mut c) = heap_ring(64);
        let t = thread::spawn(move || {
            let frames: [&[u8]; 3] = [&[1; 16], &[2; 16], &[3; 16]];
            for f in frames {
                loop {
                    match p.try_send(f) {
                        Ok(()) => break,
                        Err(shmcollab_shm::ring::SendError::WouldBlock) => thread::yield_now(),
                        Err(e) => panic!("{e}"),
                    }
                }
            }
        });
        consume(&mut c, &[&[1; 16], &[2; 16], &[3; 16]]);
        t.join().unwrap();
    });
}
