//! Leaving: once our LP is done for good, the manager hands the peers what
//! the LP sent last, reports a last time, gives up the coordinator's role
//! and releases its slot.

use super::Manager;
use std::time::{Duration, Instant};

impl Manager {
    /// Leave; returns `code`, the process exit code.
    pub(super) fn shutdown(&mut self, code: i32) -> i32 {
        // Give queued frames to live peers a moment to go out.
        let until = Instant::now() + Duration::from_millis(500);
        while Instant::now() < until && self.peers.unsent() {
            self.peers.pump_out(&self.ctx);
            std::thread::sleep(Duration::from_millis(1));
        }
        self.reports.force();
        self.maybe_report();
        if self.coord.is_me(&self.ctx) {
            self.coord.publish(&self.ctx, true);
            self.coord.resign(&self.ctx);
        }
        self.access.remove(&self.ctx);
        let reg = &self.ctx.registry;
        let _ = reg.release_slot(self.ctx.slot, self.ctx.generation);
        reg.changes().notify();
        self.peers.ring_known(&self.ctx);
        code
    }
}
