//! Unit tests of the ring: both ends on a heap ring.

use super::mem::Mem;
use super::*;
use std::time::Duration;

#[test]
fn roundtrip_and_wrap() {
    let (mut p, mut c) = heap_ring(256);
    for i in 0..1000u32 {
        let len = (i as usize * 7) % 100;
        let msg: Vec<u8> = (0..len).map(|j| (i as usize + j) as u8).collect();
        p.try_send(&msg).unwrap();
        let f = c.peek().unwrap().unwrap();
        assert_eq!(&f.to_vec()[..], &msg[..]);
        f.release();
    }
    assert!(c.peek().unwrap().is_none());
}

#[test]
fn full_ring_would_block_then_drains() {
    let (mut p, mut c) = heap_ring(128);
    let mut n = 0;
    while p.try_send(&[n as u8; 24]).is_ok() {
        n += 1;
    }
    assert_eq!(p.try_send(&[0; 24]), Err(SendError::WouldBlock));
    assert!(n >= 3);
    for i in 0..n {
        let f = c.peek().unwrap().unwrap();
        assert_eq!(f.to_vec()[0], i as u8);
        f.release();
    }
    p.try_send(&[9; 24]).unwrap();
}

#[test]
fn too_large_is_refused() {
    let (mut p, _c) = heap_ring(128);
    assert!(matches!(
        p.try_send(&[0; 100]),
        Err(SendError::TooLarge { .. })
    ));
    p.try_send(&[0; 56]).unwrap();
}

#[test]
fn batch_is_invisible_until_flush() {
    let (mut p, mut c) = heap_ring(1024);
    for i in 0..5u8 {
        let mut s = p.reserve(3).unwrap();
        s.copy_from(&[i; 3]);
        s.commit();
    }
    assert!(c.peek().unwrap().is_none());
    p.flush();
    for i in 0..5u8 {
        let f = c.peek().unwrap().unwrap();
        assert_eq!(&f.to_vec()[..], &[i; 3]);
        f.release();
    }
}

#[test]
fn unreleased_frame_is_seen_again() {
    let (mut p, mut c) = heap_ring(1024);
    p.try_send(b"one").unwrap();
    p.try_send(b"two").unwrap();
    {
        let f = c.peek().unwrap().unwrap();
        assert_eq!(&f.to_vec()[..], b"one"); // looked at, not released
    }
    assert_eq!(c.peek().unwrap().unwrap().to_vec(), b"one");
}

#[test]
fn blocking_send_waits_for_consumer_thread() {
    let (mut p, mut c) = heap_ring(256);
    let t = std::thread::spawn(move || {
        let mut got = 0u32;
        while got < 10_000 {
            if let Some(v) = c.recv_timeout(None).unwrap() {
                assert_eq!(v, got.to_le_bytes());
                got += 1;
            }
        }
    });
    for i in 0..10_000u32 {
        p.send(&i.to_le_bytes()).unwrap();
    }
    t.join().unwrap();
}

#[test]
fn send_timeout_on_stuck_consumer() {
    let (mut p, _c) = heap_ring(64);
    p.try_send(&[0; 24]).unwrap();
    p.try_send(&[0; 24]).unwrap();
    let r = p.send_timeout(&[0; 24], Some(Duration::from_millis(20)));
    assert_eq!(r, Err(SendError::WouldBlock));
}

#[test]
fn producer_continues_after_a_foreign_write() {
    let (mut p, mut c) = heap_ring(256);
    p.try_send(b"a").unwrap();
    // A second producer handle on the same memory (what a process that
    // should not write here would do).
    let mut intruder = Producer::new(
        Mem {
            _keep: p.mem._keep.clone(),
            hdr: p.mem.hdr,
            data: p.mem.data,
            cap: p.cap,
        },
        p.cap,
        None,
    );
    intruder.try_send(b"x").unwrap();
    p.try_send(b"b").unwrap();
    for want in [&b"a"[..], b"x", b"b"] {
        let f = c.peek().unwrap().unwrap();
        assert_eq!(&f.to_vec()[..], want);
        f.release();
    }
}

/// A second handle on `p`'s memory, attached now (what `Producer::attach`
/// does after validating the segment).
fn reattach(p: &Producer) -> Producer {
    Producer::new(
        Mem {
            _keep: p.mem._keep.clone(),
            hdr: p.mem.hdr,
            data: p.mem.data,
            cap: p.cap,
        },
        p.cap,
        None,
    )
}

/// Issue 11 item 12: the positions change between the attach's check and
/// the producer's own load of them (a race with a writer of garbage). The
/// producer used to compute with them unchecked (with head 0 and tail 5 it
/// wrote a frame at a misaligned offset, the arithmetic `pad - REC_HDR`
/// relies on alignment, and the reader found garbage); now the first
/// reserve checks them again and either refuses or restores its own
/// aligned tail before writing.
#[test]
fn positions_changed_after_attach_are_reported_not_used() {
    for (head, tail) in [(0, 5), (0, 61), (0, 1 << 40), (200, 100), (3, 259)] {
        let (p, mut c) = heap_ring(64);
        p.mem
            .hdr()
            .head
            .0
            .store(head, crate::sync::Ordering::Relaxed);
        p.mem
            .hdr()
            .tail
            .0
            .store(tail, crate::sync::Ordering::Relaxed);
        let mut late = reattach(&p);
        match late.try_send(&[7; 8]) {
            // Refused: nothing written.
            Err(SendError::Corrupt(_) | SendError::WouldBlock) => {}
            // Or the producer put its own (aligned) tail back first: then
            // the frame is where the reader finds it.
            Ok(()) => assert_eq!(drain(&mut c), [vec![7; 8]], "{head} {tail}"),
            Err(e) => panic!("{head} {tail}: {e}"),
        }
    }
}

/// The frame handed out by `peek` is a copy: bytes the producer changes
/// after the copy do not change it.
#[test]
fn a_frame_is_read_as_a_copy() {
    let (mut p, mut c) = heap_ring(256);
    p.try_send(b"hello").unwrap();
    let f = c.peek().unwrap().unwrap();
    let mut copy = Vec::new();
    f.copy_to(&mut copy);
    assert_eq!((f.len(), &copy[..]), (5, &b"hello"[..]));
    f.release();
}

/// Reads every frame the consumer can get now.
fn drain(c: &mut Consumer) -> Vec<Vec<u8>> {
    let mut got = Vec::new();
    while let Ok(Some(f)) = c.peek() {
        got.push(f.to_vec());
        f.release();
    }
    got
}

/// Issue 11 item 5: a ring with garbage in it is reset in place, the loss
/// is the frames skipped, and both ends go on (it used to stay corrupt: the
/// reader dropped the ring, the writer filled it and stalled). Garbage in a
/// record header, in the tail, in the head, each at any time.
#[test]
fn a_corrupt_ring_is_reset_and_both_ends_go_on() {
    use crate::sync::Ordering::Relaxed;
    for case in 0..4 {
        let (mut p, mut c) = heap_ring(256);
        p.try_send(b"one").unwrap();
        p.try_send(b"two").unwrap();
        let hdr = p.mem.hdr();
        match case {
            0 => p.mem.write(4, &[0xde, 0xad, 0xbe, 0xef]), // marker of "one"
            1 => hdr.tail.0.store(12_345, Relaxed),         // misaligned tail
            2 => hdr.tail.0.store(1 << 40, Relaxed),        // far away
            _ => hdr.head.0.store(9_999, Relaxed),          // head: the writer's view
        }
        if case < 3 {
            assert!(c.peek().is_err(), "case {case}");
            c.reset();
        } else {
            // The reader does not read the head; the writer sees garbage
            // until the reader puts its own head back.
            assert_eq!(drain(&mut c), [b"one".to_vec(), b"two".to_vec()]);
        }
        for i in 0..20u8 {
            match p.try_send(&[i; 40]) {
                Ok(()) => {}
                Err(SendError::WouldBlock) => drop(drain(&mut c)),
                Err(e) => {
                    // At most once, until the reader repairs its head.
                    assert_eq!(case, 3, "case {case}: {e}");
                    drop(drain(&mut c));
                    p.try_send(&[i; 40]).unwrap();
                }
            }
        }
        let last = drain(&mut c);
        assert_eq!(last.last().map(|v| v[0]), Some(19), "case {case}");
        assert!(c.peek().unwrap().is_none(), "case {case}");
    }
}

#[test]
fn the_wait_hint_goes_from_producer_to_consumer() {
    let (p, c) = heap_ring(128);
    assert_eq!(c.wait_hint(), 0, "a fresh ring has no hint");
    p.set_wait_hint(2);
    assert_eq!(c.wait_hint(), 2);
    p.set_wait_hint(1);
    assert_eq!(c.wait_hint(), 1);
}

/// `last_known`: true for the last frame the consumer saw published, false
/// while more follow (wrapped ones, behind a padding record, included);
/// what comes after the tail was read shows at the next read of it.
#[test]
fn last_known_tells_a_lone_frame_from_one_in_a_stream() {
    let (mut p, mut c) = heap_ring(256);
    p.try_send(&[1; 8]).unwrap();
    let f = c.peek().unwrap().unwrap();
    assert!(f.last_known(), "the only frame");
    // Published after the tail was read: not seen until the next peek.
    p.try_send(&[2; 8]).unwrap();
    assert!(f.last_known());
    f.release();
    let f = c.peek().unwrap().unwrap();
    assert!(f.last_known());
    f.release();
    // A stream, wrapping the ring (padding records between some frames).
    for round in 0..20u8 {
        for i in 0..3u8 {
            p.try_send(&[round ^ i; 40]).unwrap();
        }
        for i in 0..3u8 {
            let f = c.peek().unwrap().unwrap();
            assert_eq!(f.to_vec()[0], round ^ i);
            assert_eq!(f.last_known(), i == 2, "round {round}, frame {i}");
            f.release();
        }
    }
    assert!(c.peek().unwrap().is_none());
}
