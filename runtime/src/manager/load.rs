//! The manager's part in the load mode: it follows the mode the supervisor's
//! governor writes in the registry header (how it waits itself, and the
//! wait hint it copies into its LP's inbound ring, the one place the LP
//! reads it from), and it publishes how many messages its LP sent, which
//! the governor reads as the collaboration's load. See `shmcollab_shm::load`.

use super::context::Ctx;
use super::lp_link::LpLink;
use shmcollab_shm::{LoadMode, WaitStrategy};

/// The mode as last seen and the message count as last published.
#[derive(Debug, Default)]
pub(super) struct Load {
    mode: LoadMode,
    msgs: u64,
    published: u64,
    own_txn: u64,
    own_txn_published: u64,
}

impl Load {
    /// Once per turn: read the mode (one load), hand it to the LP (a load,
    /// and a store only when the ring's word differs, so a hint another
    /// process overwrote is put back), publish the messages `pumped` this
    /// turn added (a store only when there were some), and of those the
    /// transaction frames for our own server (`own_txn`: the governor pairs
    /// a collaboration whose traffic is mostly that).
    pub fn turn(&mut self, ctx: &Ctx, lp: &LpLink, pumped: usize, own_txn: usize) {
        self.mode = ctx.registry.load_mode();
        shmcollab_shm::load::follow(self.mode);
        lp.set_wait_hint(self.mode);
        self.msgs = self.msgs.wrapping_add(pumped as u64);
        if self.msgs != self.published {
            self.published = self.msgs;
            let _ = ctx.registry.set_lp_msgs(ctx.slot, self.msgs);
        }
        self.own_txn = self.own_txn.wrapping_add(own_txn as u64);
        if self.own_txn != self.own_txn_published {
            self.own_txn_published = self.own_txn;
            let _ = ctx.registry.set_lp_own_txn(ctx.slot, self.own_txn);
        }
    }

    /// How to wait after a turn: after one that moved something, as the
    /// mode says (sleep at once while compact: the process we just woke
    /// shares our CPU and runs when we sleep; spin and yield first while
    /// spread: the next frame often follows at once); after an idle one (a
    /// timer), sleep at once: spinning there is what idle managers cost.
    pub fn strategy(&self, busy: bool) -> WaitStrategy {
        if busy {
            self.mode.strategy()
        } else {
            WaitStrategy::SLEEP
        }
    }
}
