//! pingpong, the "pong" LP: answers every request with its payload; counts
//! one-way messages (and, if `PONG_LOG` names a file, appends each 8-byte
//! sequence number to it); on the request "end" it answers with the count
//! and exits 0.
//!
//! `PONG_FORGE_TO=SLOT` (for the tampering tests) makes it a forger first:
//! it sends replies with correlation ids 1..=2000 to the LP in SLOT, as if
//! answering requests that LP has not sent yet, reports `forged = done`,
//! waits until the file `PONG_FORGE_UNTIL` exists (if set) and exits 0.
use shmcollab::runtime::{Lp, LpError, Message, MessageKind};
use std::io::Write;

fn main() -> Result<(), LpError> {
    let mut lp = Lp::connect()?;
    let mut log = std::env::var_os("PONG_LOG").map(|p| {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
            .expect("open PONG_LOG")
    });
    lp.ready()?;
    if let Some(slot) = std::env::var("PONG_FORGE_TO")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        for corr in 1..=2000 {
            let fake = shmcollab::runtime::Message {
                from: slot,
                to: None,
                kind: MessageKind::Request,
                corr,
                payload: Vec::new(),
            };
            lp.reply(&fake, b"forged")?;
        }
        lp.report("forged", "done")?;
        if let Some(f) = std::env::var_os("PONG_FORGE_UNTIL") {
            while !std::path::Path::new(&f).exists() {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        }
        return Ok(());
    }
    let mut count = 0u64;
    // Received into the same message: its buffers are reused (no
    // allocation per message).
    let mut m = Message::default();
    loop {
        lp.recv_into(&mut m)?;
        match m.kind {
            MessageKind::Request if m.payload == b"end" => {
                lp.reply(&m, count.to_string().as_bytes())?;
                // Let the reply leave before we go.
                std::thread::sleep(std::time::Duration::from_millis(50));
                return Ok(());
            }
            MessageKind::Request => lp.reply(&m, &m.payload)?,
            _ => {
                count += 1;
                if let Some(f) = log.as_mut() {
                    f.write_all(&m.payload).expect("write PONG_LOG");
                }
            }
        }
    }
}
