//! Ring requests: rings between managers are made when a pair first talks.
//! Manager `a` with frames for manager `b` and no ring to write them into
//! sets bit `a` in `b`'s slot ([`Registry::request_ring`]) and rings `b`'s
//! doorbell; `b` takes its requests ([`Registry::take_requests`]), makes
//! the ring `a -> b` (it reads it, so it makes it, as before) and bumps
//! `a`'s `made` counter ([`Registry::ring_made`]) before ringing `a`, who
//! then attaches to the ring.
//!
//! Both words are untrusted: a bit or a bump another process made up only
//! makes a manager look at a slot (and at most make the ring a live peer
//! could have asked for anyway); neither is trusted for anything else.

use super::layout::REQUEST_WORDS;
use super::{Registry, RegistryError};
use std::sync::atomic::Ordering;

impl Registry {
    /// Manager `from` asks manager `to` for a ring `from -> to`.
    pub fn request_ring(&self, to: u32, from: u32) -> Result<(), RegistryError> {
        let max = self.max_slots();
        if from >= max {
            return Err(RegistryError::NoSuchSlot { slot: from, max });
        }
        let s = self.slot_ref(to)?;
        let (w, b) = (from as usize / 64, from % 64);
        // Relaxed: the bit publishes nothing; the doorbell the caller rings
        // next orders the wake-up (see `crate::doorbell`).
        s.requests[w].fetch_or(1 << b, Ordering::Relaxed);
        Ok(())
    }

    /// Whether some manager asked `slot`'s manager for a ring (one load
    /// per word; cheap enough for every check before sleeping).
    pub fn has_requests(&self, slot: u32) -> bool {
        let words = self.request_words();
        self.slot_ref(slot).is_ok_and(|s| {
            s.requests[..words]
                .iter()
                .any(|w| w.load(Ordering::Relaxed) != 0)
        })
    }

    /// Take the requests made to `slot`'s manager: the asking slots, each
    /// below `max_slots`, in order (bits beyond are garbage and dropped).
    pub fn take_requests(&self, slot: u32) -> Vec<u32> {
        let Ok(s) = self.slot_ref(slot) else {
            return Vec::new();
        };
        let max = self.max_slots();
        let mut out = Vec::new();
        for (w, word) in s.requests.iter().enumerate() {
            if word.load(Ordering::Relaxed) == 0 {
                continue;
            }
            let mut bits = word.swap(0, Ordering::Relaxed);
            while bits != 0 {
                let b = bits.trailing_zeros();
                bits &= bits - 1;
                let from = w as u32 * 64 + b;
                if from < max {
                    out.push(from);
                }
            }
        }
        out
    }

    /// A ring that `slot`'s manager writes was made: bump its counter (the
    /// caller rings its doorbell next).
    pub fn ring_made(&self, slot: u32) -> Result<(), RegistryError> {
        // Relaxed: see the field's doc; the segment's ready flag publishes
        // the ring itself.
        self.slot_ref(slot)?.made.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// `slot`'s counter of rings made for it (compare with an earlier value).
    pub fn rings_made(&self, slot: u32) -> u32 {
        self.slot_ref(slot)
            .map_or(0, |s| s.made.load(Ordering::Relaxed))
    }

    fn request_words(&self) -> usize {
        (self.max_slots() as usize).div_ceil(64).min(REQUEST_WORDS)
    }
}

#[cfg(test)]
mod tests {
    use crate::registry::test_session as session;
    use crate::registry::Registry;

    #[test]
    fn requests_are_taken_once_in_order_and_garbage_bits_dropped() {
        let session = session();
        let reg = Registry::create(&session, "t", 130, &[], 0).unwrap();
        assert!(!reg.has_requests(5));
        for from in [129, 3, 64, 3] {
            reg.request_ring(5, from).unwrap();
        }
        assert!(reg.request_ring(5, 130).is_err());
        assert!(reg.has_requests(5) && !reg.has_requests(4));
        assert_eq!(reg.take_requests(5), [3, 64, 129]);
        assert!(!reg.has_requests(5));
        assert!(reg.take_requests(5).is_empty());
        let before = reg.rings_made(3);
        reg.ring_made(3).unwrap();
        assert_eq!(reg.rings_made(3), before.wrapping_add(1));
        assert!(reg.ring_made(130).is_err());
    }
}
