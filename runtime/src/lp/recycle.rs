//! Receiving without allocating: [`Lp::recv_into`] and [`Lp::request_into`]
//! take the message to fill from the caller and keep its buffers (the
//! payload's `Vec`, the sub-function's name) as spares, into which the next
//! messages read from the rings are copied. A loop that receives into the
//! same message allocates nothing once its buffers are as large as its
//! messages; [`Lp::recv`] and [`Lp::request`] allocate one `Vec` per
//! message, and one `String` per message addressed to a sub-function.
//!
//! Back to back, the allocation and the free of those buffers were about
//! 60 ns of each hop into an LP, 250-320 ns paced (cold; benches/hops.md,
//! "lat9" and "lat10").

use super::{Lp, LpError, Message, MessageKind};
use std::time::Duration;

/// Spare buffers kept, of each kind: a receive puts back one of each and
/// takes as many as the frame it reads brings messages.
const KEEP: usize = 8;
/// Larger buffers are freed, not kept (one large message must not keep its
/// memory for ever).
const KEEP_BYTES: usize = 64 * 1024;

/// Buffers of messages the application handed back.
#[derive(Default)]
pub(super) struct Spares {
    payloads: Vec<Vec<u8>>,
    names: Vec<String>,
}

impl Spares {
    /// Keep `m`'s buffers (`m` is left empty).
    fn put(&mut self, m: &mut Message) {
        let p = std::mem::take(&mut m.payload);
        if p.capacity() > 0 && p.capacity() <= KEEP_BYTES && self.payloads.len() < KEEP {
            self.payloads.push(p);
        }
        if let Some(n) = m.to.take() {
            if n.capacity() <= KEEP_BYTES && self.names.len() < KEEP {
                self.names.push(n);
            }
        }
    }

    /// A copy of `bytes`, in a spare buffer if there is one.
    pub(super) fn payload(&mut self, bytes: &[u8]) -> Vec<u8> {
        match self.payloads.pop() {
            Some(mut v) => {
                v.clear();
                v.extend_from_slice(bytes);
                v
            }
            None => bytes.to_vec(),
        }
    }

    /// A copy of `name`, in a spare buffer if there is one.
    pub(super) fn name(&mut self, name: &str) -> String {
        match self.names.pop() {
            Some(mut s) => {
                s.clear();
                s.push_str(name);
                s
            }
            None => name.to_owned(),
        }
    }
}

impl Default for Message {
    /// An empty message, to receive into ([`Lp::recv_into`]).
    fn default() -> Message {
        Message {
            from: 0,
            to: None,
            kind: MessageKind::Data,
            corr: 0,
            payload: Vec::new(),
        }
    }
}

impl Lp {
    /// As [`Lp::recv`], into `m`: its buffers are reused for the messages
    /// that come next, so a loop receiving into the same message does not
    /// allocate per message.
    pub fn recv_into(&mut self, m: &mut Message) -> Result<(), LpError> {
        while !self.recv_timeout_into(Duration::from_secs(3600), m)? {}
        Ok(())
    }

    /// As [`Lp::recv_timeout`], into `m` (see [`Lp::recv_into`]); false
    /// after `timeout` without a message (`m` is then empty).
    pub fn recv_timeout_into(
        &mut self,
        timeout: Duration,
        m: &mut Message,
    ) -> Result<bool, LpError> {
        // First, so that the frame read now is copied into them.
        self.spares.put(m);
        match self.recv_timeout(timeout)? {
            Some(next) => {
                *m = next;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// As [`Lp::request`], the reply into `reply` (see [`Lp::recv_into`]);
    /// on an error `reply` is empty.
    pub fn request_into(
        &mut self,
        subfn: &str,
        bytes: &[u8],
        timeout: Duration,
        reply: &mut Message,
    ) -> Result<(), LpError> {
        self.spares.put(reply);
        *reply = self.request(subfn, bytes, timeout)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(payload: &[u8], to: Option<&str>) -> Message {
        Message {
            to: to.map(str::to_owned),
            payload: payload.to_vec(),
            ..Message::default()
        }
    }

    #[test]
    fn buffers_handed_back_are_reused_for_the_next_copies() {
        let mut s = Spares::default();
        let mut m = msg(&[1; 100], Some("sub/function"));
        let (p, n) = (m.payload.as_ptr(), m.to.as_ref().unwrap().as_ptr());
        s.put(&mut m);
        assert_eq!(m, Message::default(), "left empty");
        let copy = s.payload(&[2; 64]);
        assert_eq!((copy.as_ptr(), &copy[..]), (p, &[2u8; 64][..]));
        let name = s.name("pong");
        assert_eq!((name.as_ptr(), name.as_str()), (n, "pong"));
        // None left: fresh ones.
        assert_eq!(s.payload(b"x"), b"x");
        assert_eq!(s.name("y"), "y");
    }

    #[test]
    fn few_and_small_buffers_are_kept() {
        let mut s = Spares::default();
        for _ in 0..KEEP + 4 {
            s.put(&mut msg(&[0; 16], Some("a")));
        }
        s.put(&mut msg(&vec![0; KEEP_BYTES + 1], None));
        s.put(&mut msg(&[], None));
        assert_eq!((s.payloads.len(), s.names.len()), (KEEP, KEEP));
        assert!(s.payloads.iter().all(|p| p.capacity() == 16));
    }
}
