//! An LP that says ready and then waits for messages, doing nothing: used to
//! measure start-up and the cost of an idle collaboration. Exits 0 on the
//! broadcast "stop" (or when stopped by `shmcollab stop`). `idle burn [N]` says
//! ready and then computes without pause (N million steps, or until it is
//! stopped): an LP that is CPU-bound (for the placement test).
use shmcollab::runtime::{Lp, LpError, MessageKind};

fn main() -> Result<(), LpError> {
    let mut lp = Lp::connect()?;
    lp.ready()?;
    if std::env::args().nth(1).as_deref() == Some("burn") {
        // `idle burn N`: N million steps, then exit 0; without N, forever.
        let steps = std::env::args()
            .nth(2)
            .and_then(|n| n.parse::<u64>().ok())
            .map_or(u64::MAX, |n| n.saturating_mul(1_000_000));
        let mut x = 0u64;
        for _ in 0..steps {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
        return Ok(());
    }
    loop {
        let m = lp.recv()?;
        if m.kind == MessageKind::Broadcast && m.payload == b"stop" {
            return Ok(());
        }
    }
}
