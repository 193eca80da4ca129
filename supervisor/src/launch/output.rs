//! What the managers and their LPs print, line by line with the LP's name
//! in front, like other process managers do.
//!
//! A manager's stdout and stderr are pipes to the supervisor, and its LP
//! inherits them: the supervisor reads them without blocking from its one
//! event loop (each pipe is in the epoll set under its own tag) and writes
//! every complete line to its own stdout or stderr with the prefix
//! `"name | "`, names padded to one width so the bars line up. A line
//! longer than 64 KiB is cut there; a last line without a newline is
//! printed when the pipe closes or is replaced by a restarted manager's.

use rustix::event::epoll;
use std::collections::HashMap;
use std::io::Write;
use std::os::fd::OwnedFd;

/// Epoll tags at and above this are output pipes: `OUT_BASE + slot` for a
/// stdout, `ERR_BASE + slot` for a stderr. Below are the managers' pidfds
/// (the slot itself).
pub(super) const OUT_BASE: u64 = 1 << 32;
const ERR_BASE: u64 = 2 << 32;
/// Longest line kept before it is printed anyway.
const MAX_LINE: usize = 64 * 1024;

/// One pipe being read.
struct Out {
    prefix: String,
    buf: Vec<u8>,
    fd: OwnedFd,
    is_err: bool,
}

/// Every pipe being read, by epoll tag.
pub(super) struct Outputs {
    pipes: HashMap<u64, Out>,
    /// Width of the name column.
    width: usize,
}

impl Outputs {
    /// No pipes yet; names padded to `width`.
    pub(super) fn new(width: usize) -> Outputs {
        Outputs {
            pipes: HashMap::new(),
            width,
        }
    }

    /// Read the stdout and stderr of the manager in `slot` (LP `name`)
    /// from now on, after what its predecessor in that slot still had to
    /// say.
    pub(super) fn attach(
        &mut self,
        ep: &OwnedFd,
        slot: u32,
        name: &str,
        stdout: Option<OwnedFd>,
        stderr: Option<OwnedFd>,
    ) -> rustix::io::Result<()> {
        for (is_err, fd) in [(false, stdout), (true, stderr)] {
            let Some(fd) = fd else { continue };
            rustix::fs::fcntl_setfl(&fd, rustix::fs::OFlags::NONBLOCK)?;
            let tag = if is_err { ERR_BASE } else { OUT_BASE } + u64::from(slot);
            if self.pipes.contains_key(&tag) {
                // What the dead manager (or its LP) still had to say, first.
                self.pump(ep, tag);
                if let Some(mut old) = self.pipes.remove(&tag) {
                    flush_partial(&mut old);
                    let _ = epoll::delete(ep, &old.fd);
                }
            }
            epoll::add(
                ep,
                &fd,
                epoll::EventData::new_u64(tag),
                epoll::EventFlags::IN,
            )?;
            let width = self.width;
            self.pipes.insert(
                tag,
                Out {
                    prefix: format!("{name:<width$} | "),
                    buf: Vec::new(),
                    fd,
                    is_err,
                },
            );
        }
        Ok(())
    }

    /// Read what pipe `tag` has and print its complete lines; forget the
    /// pipe at its end (or on an error).
    pub(super) fn pump(&mut self, ep: &OwnedFd, tag: u64) {
        let Some(o) = self.pipes.get_mut(&tag) else {
            return;
        };
        let mut chunk = [0u8; 8192];
        loop {
            match rustix::io::read(&o.fd, &mut chunk) {
                Ok(0) => {
                    flush_partial(o);
                    let _ = epoll::delete(ep, &o.fd);
                    self.pipes.remove(&tag);
                    return;
                }
                Ok(n) => {
                    o.buf.extend_from_slice(&chunk[..n]);
                    while let Some(i) = o.buf.iter().position(|&b| b == b'\n') {
                        let line: Vec<u8> = o.buf.drain(..=i).collect();
                        emit(o, &line);
                    }
                    if o.buf.len() > MAX_LINE {
                        let line: Vec<u8> = std::mem::take(&mut o.buf);
                        emit(o, &line);
                    }
                }
                Err(rustix::io::Errno::AGAIN) => return,
                Err(rustix::io::Errno::INTR) => continue,
                Err(_) => {
                    let _ = epoll::delete(ep, &o.fd);
                    self.pipes.remove(&tag);
                    return;
                }
            }
        }
    }

    /// At the end: print what is left in every pipe, and every last line
    /// without a newline.
    pub(super) fn drain(&mut self, ep: &OwnedFd) {
        let tags: Vec<u64> = self.pipes.keys().copied().collect();
        for t in tags {
            self.pump(ep, t);
        }
        for o in self.pipes.values_mut() {
            flush_partial(o);
        }
    }
}

fn flush_partial(o: &mut Out) {
    if !o.buf.is_empty() {
        let mut line = std::mem::take(&mut o.buf);
        line.push(b'\n');
        emit(o, &line);
    }
}

fn emit(o: &Out, line: &[u8]) {
    let mut v = Vec::with_capacity(o.prefix.len() + line.len() + 1);
    v.extend_from_slice(o.prefix.as_bytes());
    v.extend_from_slice(line);
    if !v.ends_with(b"\n") {
        v.push(b'\n');
    }
    let _ = if o.is_err {
        std::io::stderr().lock().write_all(&v)
    } else {
        std::io::stdout().lock().write_all(&v)
    };
}
