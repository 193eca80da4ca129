//! An LP that says ready and then waits for messages, doing nothing: used to
//! measure start-up and the cost of an idle collaboration. Exits 0 on the
//! broadcast "stop" (or when stopped by `shmcollab stop`).
use shmcollab::runtime::{Lp, LpError, MessageKind};

fn main() -> Result<(), LpError> {
    let mut lp = Lp::connect()?;
    lp.ready()?;
    loop {
        let m = lp.recv()?;
        if m.kind == MessageKind::Broadcast && m.payload == b"stop" {
            return Ok(());
        }
    }
}
