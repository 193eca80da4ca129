//! Leaving: once our LP is done for good, the manager hands the peers what
//! the LP sent last, reports a last time, gives up the coordinator's role
//! and releases its slot.
//!
//! The last words: what our LP sent before it ended may still wait in the
//! peers' queues, for room in a ring (its reader is slow) or for the ring
//! itself (rings are made when a pair first talks). They used to get 500 ms:
//! under load (256 LPs flooding each other on 2 CPUs, `cargo bench --bench
//! scale`) a receiving LP went unscheduled for longer, the sender's manager
//! left with thousands of messages queued, and they were lost without a
//! trace while the receiver waited for them for ever. Now the manager stays
//! while they go out. It stops waiting for a peer whose LP ended for good
//! (nobody will read; see [`Manager::may_read`]) and, at the latest, after
//! [`PATIENCE`] without a message going out (an LP that stopped reading);
//! then what is left is counted as dropped (the last report shows it), and
//! said when a live peer is given up.

use super::Manager;
use shmcollab_shm::registry::LpState;
use std::time::{Duration, Instant};

/// How long a leaving manager waits while none of its last words go out:
/// longer than a busy machine leaves a process unscheduled (seconds, with
/// 512 processes on 2 CPUs), short enough that an LP that stopped reading
/// for good does not keep its peers' managers long.
const PATIENCE: Duration = Duration::from_secs(10);

/// The first and the longest pause between looks at the queues (a reader
/// frees room in its ring without ringing us). Doubled while nothing moves:
/// hundreds of leaving managers polling every millisecond took the CPU
/// their readers needed.
const POLL: (Duration, Duration) = (Duration::from_millis(1), Duration::from_millis(20));

impl Manager {
    /// Leave; returns `code`, the process exit code.
    pub(super) fn shutdown(&mut self, code: i32) -> i32 {
        self.last_words();
        self.reports.force();
        self.maybe_report();
        if self.coord.is_me(&self.ctx) {
            self.coord.publish(&self.ctx, true);
            self.coord.resign(&self.ctx);
        }
        let reg = &self.ctx.registry;
        let _ = reg.release_slot(self.ctx.slot, self.ctx.generation);
        reg.changes().notify();
        self.peers.ring_known(&self.ctx);
        code
    }

    /// Write what waits for peers whose LP may still read it, until it is
    /// all out or nothing went out for [`PATIENCE`]; count what is left.
    fn last_words(&mut self) {
        let (mut moved, mut pause) = (Instant::now(), POLL.0);
        loop {
            let mut waiting = self.peers.unsent();
            waiting.retain(|&(s, _)| self.may_read(s));
            if waiting.is_empty() {
                break;
            }
            if moved.elapsed() >= PATIENCE {
                let n: usize = waiting.iter().map(|&(_, n)| n).sum();
                let slots: Vec<u32> = waiting.iter().map(|&(s, _)| s).collect();
                eprintln!(
                    "shmcollab: leaving with {n} messages for slots {slots:?} unsent: none went out for {PATIENCE:?}; dropped"
                );
                break;
            }
            let (work, dropped) = self.peers.pump_out(&self.ctx);
            self.counters.dropped += dropped;
            if work {
                (moved, pause) = (Instant::now(), POLL.0);
            } else {
                std::thread::sleep(pause);
                pause = (pause * 2).min(POLL.1);
            }
        }
        // What is still queued leaves with us.
        self.counters.dropped += self.peers.queued() as u64;
    }

    /// Peer `s`'s LP may still read what we send it: it has not ended for
    /// good (a peer not started yet, or restarting, may).
    fn may_read(&self, s: u32) -> bool {
        let view = self.ctx.registry.slot(s);
        view.is_ok_and(|v| !matches!(v.lp_state, LpState::Exited | LpState::Failed))
    }
}
