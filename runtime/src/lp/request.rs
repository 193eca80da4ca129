//! Request and reply: [`Lp::request`] sends a request with a random
//! correlation id and takes as its reply only a message with that id from
//! the owner of the sub-function asked (its source stamped by the sender's
//! manager). Anything else with the id is a forgery: dropped and counted.

use super::{Lp, LpError, Message, MessageKind};
use crate::link::Wait;
use shmcollab_shm::frame::kind;
use shmcollab_shm::handover;
use std::cell::RefCell;
use std::time::{Duration, Instant};

impl Lp {
    /// Send a request to `subfn` and wait up to `timeout` for its reply.
    /// Messages that arrive meanwhile are kept for `recv`.
    pub fn request(
        &mut self,
        subfn: &str,
        bytes: &[u8],
        timeout: Duration,
    ) -> Result<Message, LpError> {
        let dst = self.subfn_id(subfn)?;
        // Unpredictable: another LP cannot aim a reply at a request it
        // cannot see (sequential ids from 1 could be sprayed in advance).
        let corr = fresh_corr();
        let hdr = Self::header(kind::REQUEST, dst, corr);
        // We wait for the reply at once: no hand-over after this wake-up
        // (see `shmcollab_shm::handover`), a yield would only put us behind
        // the processes that will answer us and delay our own wait. While
        // compact, the send and the first sleep are one step.
        let sent = match self.send_then_wait(hdr, bytes, timeout)? {
            Some(at) => at,
            None => {
                handover::without_wake_hand_over(|| self.emit(hdr, bytes, Wait::For(timeout)))?;
                Instant::now()
            }
        };
        let deadline = sent + timeout;
        loop {
            // The owner of the sub-function, now: only its reply counts (the
            // source is stamped by the sender's manager, not by the sender).
            let owner = self.plan.owner(dst);
            let mut forged = 0u64;
            let mut hit = None;
            // Other messages stay in the inbox, in order, for `recv`. The
            // reply is moved out, not copied (it leaves the inbox anyway).
            self.inbox
                .retain_mut(|m| match reply_match(m, corr, owner) {
                    ReplyMatch::Other => true,
                    ReplyMatch::Forged => {
                        forged += 1;
                        false
                    }
                    ReplyMatch::Ours => {
                        if hit.is_none() {
                            hit = Some(Message {
                                to: m.to.take(),
                                payload: std::mem::take(&mut m.payload),
                                ..*m
                            });
                        }
                        false
                    }
                });
            self.forged_replies = self.forged_replies.saturating_add(forged);
            if let Some(m) = hit {
                return Ok(m);
            }
            if !self.fill_inbox(Some(deadline))? {
                return Err(LpError::Timeout);
            }
        }
    }

    /// Replies that carried the id of one of our requests but did not come
    /// from the owner of the sub-function asked (dropped, never returned).
    pub fn forged_replies(&self) -> u64 {
        self.forged_replies
    }
}

/// Correlation ids drawn from the OS at a time: one `getrandom` system
/// call per this many requests instead of one each (it was one of the ten
/// system calls of a round trip, before the request left).
const CORR_POOL: usize = 64;

/// Random ids not handed out yet. Private to the process (nothing another
/// LP can read); an id leaves the pool when it is used.
struct CorrPool {
    next: usize,
    ids: [u32; CORR_POOL],
}

impl CorrPool {
    fn take(&mut self) -> u32 {
        loop {
            if self.next >= CORR_POOL {
                let mut b = [0u8; CORR_POOL * 4];
                shmcollab_shm::auth::random_bytes(&mut b);
                for (id, c) in self.ids.iter_mut().zip(b.chunks_exact(4)) {
                    *id = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
                }
                self.next = 0;
            }
            let c = std::mem::take(&mut self.ids[self.next]);
            self.next += 1;
            if c != 0 {
                return c;
            }
        }
    }
}

/// A fresh correlation id for a request: random, never 0.
fn fresh_corr() -> u32 {
    thread_local! {
        static POOL: RefCell<CorrPool> = const {
            RefCell::new(CorrPool { next: CORR_POOL, ids: [0; CORR_POOL] })
        };
    }
    POOL.with_borrow_mut(CorrPool::take)
}

/// What a message in the inbox is to a request waiting for `corr` to a
/// sub-function owned by `owner`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReplyMatch {
    /// Not a reply to it: stays for `recv`.
    Other,
    /// Its reply, from the owner.
    Ours,
    /// Its id, from someone else (or while no one owns the sub-function).
    Forged,
}

fn reply_match(m: &Message, corr: u32, owner: Option<u32>) -> ReplyMatch {
    if m.kind != MessageKind::Reply || m.corr != corr {
        ReplyMatch::Other
    } else if Some(m.from) == owner {
        ReplyMatch::Ours
    } else {
        ReplyMatch::Forged
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(from: u32, corr: u32) -> Message {
        Message {
            from,
            to: None,
            kind: MessageKind::Reply,
            corr,
            payload: Vec::new(),
        }
    }

    /// Issue 11 item 7: a reply counts only with the request's id and from
    /// the owner of the sub-function asked.
    #[test]
    fn a_reply_must_come_from_the_owner() {
        assert_eq!(reply_match(&reply(3, 77), 77, Some(3)), ReplyMatch::Ours);
        assert_eq!(reply_match(&reply(4, 77), 77, Some(3)), ReplyMatch::Forged);
        assert_eq!(reply_match(&reply(3, 77), 77, None), ReplyMatch::Forged);
        assert_eq!(reply_match(&reply(3, 78), 77, Some(3)), ReplyMatch::Other);
        let data = Message {
            kind: MessageKind::Data,
            ..reply(3, 77)
        };
        assert_eq!(reply_match(&data, 77, Some(3)), ReplyMatch::Other);
    }

    #[test]
    fn correlation_ids_are_not_sequential() {
        let ids: Vec<u32> = (0..64).map(|_| fresh_corr()).collect();
        assert!(ids.iter().all(|&c| c != 0));
        let sequential = ids.windows(2).filter(|w| w[1] == w[0].wrapping_add(1));
        assert!(sequential.count() < 4, "{ids:?}");
    }

    /// Ids come from a pool refilled from the OS: across 16 refills none
    /// is 0 and at most one repeats (two repeats among 1,024 random u32s:
    /// odds of about 10^-8; a pool that handed an id out twice, or did not
    /// refill, repeats 63 times per fill).
    #[test]
    fn pooled_ids_are_fresh_across_refills() {
        let n = CORR_POOL * 16;
        let ids: Vec<u32> = (0..n).map(|_| fresh_corr()).collect();
        assert!(ids.iter().all(|&c| c != 0));
        let distinct: std::collections::HashSet<u32> = ids.iter().copied().collect();
        assert!(
            distinct.len() >= n - 1,
            "{} of {n} distinct",
            distinct.len()
        );
        // A pool whose fill is all zeros (what `take` zeroes behind it)
        // refills instead of returning 0.
        let mut p = CorrPool {
            next: 0,
            ids: [0; CORR_POOL],
        };
        assert_ne!(p.take(), 0);
        assert!(p.next <= CORR_POOL);
    }
}
