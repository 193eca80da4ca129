//! An LP that says ready and then waits for messages, doing nothing: used to
//! measure start-up and the cost of an idle collaboration. Exits 0 on the
//! broadcast "stop" (or when stopped by `shmcollab stop`). `idle burn` says
//! ready and then computes without pause until it is stopped: an LP that is
//! CPU-bound (for the placement test).
use shmcollab::runtime::{Lp, LpError, MessageKind};

fn main() -> Result<(), LpError> {
    let mut lp = Lp::connect()?;
    lp.ready()?;
    if std::env::args().nth(1).as_deref() == Some("burn") {
        let mut x = 0u64;
        loop {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
    }
    loop {
        let m = lp.recv()?;
        if m.kind == MessageKind::Broadcast && m.payload == b"stop" {
            return Ok(());
        }
    }
}
