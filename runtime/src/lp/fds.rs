//! The LP's descriptors: taking over what its manager handed it at spawn
//! (rings, view, socket; numbers in the handover), and the socket on which
//! later rings arrive (a direct ring's descriptor, sent with SCM_RIGHTS
//! before the ATTACH that names it). Nothing here opens a path.

use super::LpError;
use crate::handover::Handover;
use crate::lpview::ViewReader;
use shmcollab_shm::ring::{open_ring_fd, Consumer, Producer};
use shmcollab_shm::segment::OpenError;
use std::collections::HashMap;
use std::fs::File;
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::Path;
use std::time::{Duration, Instant};

/// Rings announced on the socket but not attached yet, at most.
const MAX_PENDING: usize = 1024;

/// What [`take`] returns.
pub(super) struct Taken {
    pub tx: Producer,
    pub rx: Consumer,
    pub view: ViewReader,
    pub sock: RingSocket,
}

/// Take over the handed-over descriptors (once per process) and map them.
pub(super) fn take(plan: &Handover) -> Result<Taken, LpError> {
    static TAKEN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if TAKEN.swap(true, std::sync::atomic::Ordering::SeqCst) {
        return Err(LpError::Environment(
            "the handed-over descriptors were already taken: connect once per process".into(),
        ));
    }
    let f = plan.fds;
    // SAFETY: the manager placed these four descriptors for us at spawn
    // (the handover names them, checked distinct and above the standard
    // ones); TAKEN makes this the only place that takes them, once; each
    // is owned from here on.
    let [ring_in, ring_out, view, sock] =
        [f.ring_in, f.ring_out, f.view, f.sock].map(|fd| unsafe { OwnedFd::from_raw_fd(fd) });
    let id = plan.session_id;
    let (tx, rx) = attach_main(File::from(ring_out), File::from(ring_in), id)?;
    let view = ViewReader::open(File::from(view), Path::new("<lp view>"), id)?;
    Ok(Taken {
        tx,
        rx,
        view,
        sock: RingSocket::new(sock),
    })
}

/// The two rings of the main link. Another process may have written into
/// a ring's fixed fields; the manager puts them back within its heal
/// period: try again for a while before giving up.
fn attach_main(out: File, inn: File, id: u64) -> Result<(Producer, Consumer), LpError> {
    let attach = || -> Result<_, OpenError> {
        let (out_label, in_label) = (Path::new("<ring out>"), Path::new("<ring in>"));
        let out_seg = open_ring_fd(out.try_clone().map_err(io(out_label))?, out_label, id)?;
        let in_seg = open_ring_fd(inn.try_clone().map_err(io(in_label))?, in_label, id)?;
        // No doorbell of the registry: the producer rings the ring's own,
        // on which the manager sleeps too.
        Ok((
            Producer::attach(&out_seg, None)?,
            Consumer::attach(&in_seg)?,
        ))
    };
    let give_up = Instant::now() + Duration::from_secs(1);
    loop {
        match attach() {
            Ok(r) => return Ok(r),
            Err(OpenError::Corrupt { .. }) if Instant::now() < give_up => {
                std::thread::sleep(Duration::from_millis(10))
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// A failed duplication of the handed-over ring `label`.
fn io(label: &Path) -> impl Fn(std::io::Error) -> OpenError + '_ {
    move |source| OpenError::Io {
        path: label.to_owned(),
        source,
    }
}

/// The LP's end of the socketpair with its manager.
pub(super) struct RingSocket {
    sock: OwnedFd,
    /// Rings received but not asked for yet, by name.
    pending: HashMap<String, File>,
}

impl RingSocket {
    fn new(sock: OwnedFd) -> RingSocket {
        RingSocket {
            sock,
            pending: HashMap::new(),
        }
    }

    /// The descriptor of ring `name`, if the manager sent it (it sends it
    /// before it queues the ATTACH naming it, so it is there by then).
    pub fn take_ring(&mut self, name: &str) -> Option<File> {
        while !self.pending.contains_key(name) {
            match self.recv_one() {
                Recv::Empty => return None,
                Recv::Bad => continue,
                Recv::Ring(n, f) => {
                    if self.pending.len() >= MAX_PENDING {
                        // Never asked for: drop any one of them.
                        let k = self.pending.keys().next().cloned();
                        k.map(|k| self.pending.remove(&k));
                    }
                    self.pending.insert(n, f);
                }
            }
        }
        self.pending.remove(name)
    }

    /// One message without waiting.
    fn recv_one(&self) -> Recv {
        use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
        use std::os::fd::AsRawFd;
        let mut buf = [0u8; 256];
        let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
        let flags = MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_CMSG_CLOEXEC;
        let (len, fds) = {
            let mut iov = [std::io::IoSliceMut::new(&mut buf)];
            let fd = self.sock.as_raw_fd();
            let Ok(msg) = recvmsg::<()>(fd, &mut iov, Some(&mut space), flags) else {
                return Recv::Empty;
            };
            let mut fds = Vec::new();
            if let Ok(cmsgs) = msg.cmsgs() {
                for c in cmsgs {
                    if let ControlMessageOwned::ScmRights(v) = c {
                        fds.extend(v);
                    }
                }
            }
            (msg.bytes, fds)
        };
        // SAFETY: the kernel just installed these descriptors in this
        // process for us (SCM_RIGHTS); nobody else owns them.
        let mut files = fds.into_iter().map(|fd| unsafe { File::from_raw_fd(fd) });
        if len == 0 && files.len() == 0 {
            // End of stream: the manager is gone.
            return Recv::Empty;
        }
        match (std::str::from_utf8(&buf[..len]), files.next()) {
            (Ok(name), Some(f)) => Recv::Ring(name.to_owned(), f),
            _ => Recv::Bad,
        }
    }
}

/// What one receive brought.
enum Recv {
    /// Nothing (yet), or the manager's end is closed.
    Empty,
    /// A message without a descriptor or with a bad name (dropped).
    Bad,
    /// Ring `name`'s descriptor.
    Ring(String, File),
}
