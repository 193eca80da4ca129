//! The LP API: what a logical process uses to talk to its manager.
//!
//! ```no_run
//! let mut lp = shmcollab_runtime::Lp::connect()?;
//! lp.ready()?;
//! let msg = lp.recv()?;
//! lp.reply(&msg, b"pong")?;
//! # Ok::<(), shmcollab_runtime::LpError>(())
//! ```
//!
//! An LP holds only the keys of its own link to its manager; every frame it
//! sends is sealed with one, every frame it receives opened with the other
//! or, on a direct ring (another manager writing straight to this LP), with
//! a key derived from it. The sending manager stamps the sender of every
//! message, so `Message::from` is the slot of the LP whose manager forwarded
//! it, whatever that LP wrote.
//!
//! An LP opens nothing by path: its rings, its view (the collaboration
//! state, see [`crate::lpview`]) and a socket for later rings are handed
//! over by its manager as descriptors, the plan's names in the environment
//! ([`crate::handover`]), so that it works in the sandbox
//! ([`crate::sandbox`]) and as another user. It never maps the registry.

mod fds;
mod inbound;
mod recycle;
mod request;
mod txn;
mod txn_memory;

pub use txn::{CommitHandle, KeyValue, OwnedTxn, Txn, TxnError, MAX_ATTEMPTS};
pub use txn_memory::{TxnMemoryStats, MEMORY_BYTES, MEMORY_ENTRIES};

use crate::ctl::LpCtl;
use crate::handover::Handover;
use crate::link::{Outbox, Resync, RxLink, TxLink, Wait};
use crate::lpview::ViewReader;
use crate::report::CollaborationState;
use crate::wire::{env, FLAG_DST_LP};
use inbound::Inbound;
use shmcollab_shm::auth::{LinkKey, Opener, Sealer};
use shmcollab_shm::frame::{kind, FrameHeader};
use shmcollab_shm::ring::SendError;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Errors of the LP API. A caller acts on `WouldBlock`, `Timeout`,
/// `TooLarge` and `UnknownSubfn`; the others say what broke, with their
/// cause as `source()`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LpError {
    /// Not started by a shmcollab manager, or its environment is damaged.
    #[error("not running under a shmcollab manager: {0}")]
    Environment(String),
    /// The session or a segment could not be opened.
    #[error("cannot attach to the session: {0}")]
    Attach(#[source] AttachError),
    /// No sub-function of that name in this collaboration.
    #[error("no sub-function named {0:?}")]
    UnknownSubfn(String),
    /// The ring to the manager is full (`try_send`) or stayed full.
    #[error("the ring to the manager is full")]
    WouldBlock,
    /// Nothing arrived in time.
    #[error("timed out")]
    Timeout,
    /// The message is larger than a ring carries.
    #[error("message of {len} bytes is larger than the maximum {max}")]
    TooLarge {
        /// Length asked for.
        len: usize,
        /// Largest payload.
        max: usize,
    },
    /// A shared ring is inconsistent (the manager misbehaved or memory was
    /// overwritten).
    #[error("a ring shared with the manager is unusable: {0}")]
    Corrupt(#[source] CorruptError),
    /// The collaboration state is not available.
    #[error("collaboration state unavailable: {0}")]
    State(#[source] StateError),
}

/// Why [`Lp::connect`] could not attach.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AttachError {
    /// The session directory.
    #[error(transparent)]
    Session(#[from] shmcollab_shm::segment::SessionError),
    /// The registry.
    #[error(transparent)]
    Registry(#[from] shmcollab_shm::registry::RegistryError),
    /// One of the LP's rings, or its view.
    #[error(transparent)]
    Ring(#[from] shmcollab_shm::segment::OpenError),
    /// What the manager handed over at spawn.
    #[error(transparent)]
    Handover(#[from] crate::handover::HandoverError),
}

/// A ring that cannot be used any more.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CorruptError {
    /// Reading it.
    #[error(transparent)]
    Read(#[from] shmcollab_shm::ring::RingError),
    /// Writing it.
    #[error(transparent)]
    Write(#[from] SendError),
}

/// Why the collaboration state could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// The coordinator has not published a state yet.
    #[error("the coordinator has not published yet")]
    NotPublished,
    /// The registry's status area could not be read.
    #[error(transparent)]
    Registry(#[from] shmcollab_shm::registry::RegistryError),
    /// The published document does not parse.
    #[error("bad state document: {0}")]
    Decode(#[from] serde_json::Error),
    /// The manager's copy of it could not be read.
    #[error(transparent)]
    View(#[from] crate::lpview::ViewReadError),
}

impl<E: Into<AttachError>> From<E> for LpError {
    fn from(e: E) -> LpError {
        LpError::Attach(e.into())
    }
}

/// What kind of message arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    /// A plain message (`send`).
    Data,
    /// A request: answer it with [`Lp::reply`].
    Request,
    /// A reply to a request of ours.
    Reply,
    /// A broadcast.
    Broadcast,
}

/// A received message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Slot of the sending LP, as its manager stamped it.
    pub from: u32,
    /// Sub-function it was addressed to (`None` for replies and broadcasts).
    pub to: Option<String>,
    /// Kind.
    pub kind: MessageKind,
    /// Correlation id (requests and replies).
    pub corr: u32,
    /// The bytes.
    pub payload: Vec<u8>,
}

/// A connection of a logical process to its manager.
pub struct Lp {
    /// What the manager handed over: names, owners, the session id.
    plan: Handover,
    /// The state copy and the waiting-time counter.
    view: ViewReader,
    /// Where the descriptors of later rings arrive.
    sock: fds::RingSocket,
    slot: u32,
    name: String,
    subfns: Vec<String>,
    /// Every sub-function's index by name ([`Handover::subfn_ids`]): a
    /// send looks its destination up here. Made at the first lookup: an
    /// LP that never sends by name (1,024 idle ones at launch) does not
    /// pay for it.
    subfn_ids: std::cell::OnceCell<std::collections::HashMap<String, u32>>,
    /// The ring to the manager.
    tx: TxLink,
    /// Messages of `send_buffered` not yet written to it.
    out: Outbox,
    /// The rings from the manager and from other managers.
    rx: Inbound,
    inbox: VecDeque<Message>,
    /// Replies of transaction servers, by correlation id.
    txn_replies: std::collections::HashMap<u32, Vec<u8>>,
    next_corr: u32,
    /// What this LP remembers of its own committed writes.
    txn_memory: txn_memory::TxnMemory,
    /// See [`Lp::forged_replies`].
    forged_replies: u64,
    scratch: Vec<u8>,
    /// Buffers of messages handed back ([`Lp::recv_into`]).
    spares: recycle::Spares,
}

fn env_var(name: &str) -> Result<String, LpError> {
    std::env::var(name).map_err(|_| LpError::Environment(format!("{name} is not set")))
}

fn read_keys() -> Result<Option<(LinkKey, LinkKey)>, LpError> {
    static TAKEN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    let Ok(fd) = std::env::var(env::KEY_FD) else {
        return Ok(None);
    };
    // The descriptor is read and closed once per process: a second connect
    // must not take ownership of whatever fd 3 has become since.
    if TAKEN.swap(true, std::sync::atomic::Ordering::SeqCst) {
        return Err(LpError::Environment(
            "the link keys were already taken: connect once per process".into(),
        ));
    }
    let fd: i32 = fd
        .parse()
        .map_err(|_| LpError::Environment(format!("{} is not a number", env::KEY_FD)))?;
    use std::io::Read;
    use std::os::fd::FromRawFd;
    // SAFETY: the manager hands the read end of a pipe down as this fd;
    // TAKEN above makes this the only place in the process that takes it,
    // once; we own it from here and close it when `f` drops.
    let mut f = unsafe { std::fs::File::from_raw_fd(fd) };
    let mut b = [0u8; 32];
    f.read_exact(&mut b)
        .map_err(|e| LpError::Environment(format!("cannot read link keys: {e}")))?;
    let mut tx = [0u8; 16];
    let mut rx = [0u8; 16];
    tx.copy_from_slice(&b[..16]);
    rx.copy_from_slice(&b[16..]);
    let keys = (LinkKey::from_bytes(tx), LinkKey::from_bytes(rx));
    for buf in [&mut b[..], &mut tx[..], &mut rx[..]] {
        shmcollab_shm::auth::wipe(buf);
    }
    Ok(Some(keys))
}

impl Lp {
    /// Connect from the environment the manager set: everything by the
    /// descriptors it handed over (see [`crate::handover`]), nothing by
    /// path, so that this works in the sandbox.
    pub fn connect() -> Result<Lp, LpError> {
        let slot: u32 = env_var(env::SLOT)?
            .parse()
            .map_err(|_| LpError::Environment(format!("{} is not a number", env::SLOT)))?;
        let name = env_var(env::NAME)?;
        let plan = Handover::from_env()?;
        let keys = read_keys()?;
        let taken = fds::take(&plan)?;
        let (tx, rx) = (taken.tx, taken.rx);
        let (tx_key, rx_key) = match keys {
            Some((t, r)) => (Some(t), Some(r)),
            None => (None, None),
        };
        let main = RxLink::new(rx, Opener::new(rx_key.clone()), Resync::Never);
        let subfns = plan.hosted_by(slot);
        Ok(Lp {
            subfn_ids: std::cell::OnceCell::new(),
            plan,
            view: taken.view,
            sock: taken.sock,
            slot,
            name,
            subfns,
            tx: TxLink::new(tx, Sealer::new(tx_key)),
            out: Outbox::new(),
            rx: Inbound::new(main, rx_key),
            inbox: VecDeque::new(),
            txn_replies: std::collections::HashMap::new(),
            next_corr: 1,
            txn_memory: txn_memory::TxnMemory::default(),
            forged_replies: 0,
            scratch: Vec::with_capacity(4096),
            spares: recycle::Spares::default(),
        })
    }

    /// This LP's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// This LP's registry slot (its identity in `Message::from`).
    pub fn slot(&self) -> u32 {
        self.slot
    }

    /// The sub-functions this LP hosts.
    pub fn subfunctions(&self) -> &[String] {
        &self.subfns
    }

    /// All sub-functions of the collaboration.
    pub fn all_subfunctions(&self) -> Vec<String> {
        self.plan.subfns.clone()
    }

    /// Name of the LP in `slot` (as registered by its manager).
    pub fn name_of(&mut self, slot: u32) -> Option<String> {
        let n = self.plan.names.get(slot as usize)?;
        (!n.is_empty()).then(|| n.clone())
    }

    /// Frames from the manager and other managers that failed
    /// authentication (dropped).
    pub fn auth_failures(&self) -> u64 {
        self.rx.rejected()
    }

    /// Frames that were on their way to this LP and were lost to
    /// tampering or corruption: rejected (forged, altered, replayed, ...),
    /// skipped (a gap in a link's sequence numbers) or in a ring that had to
    /// be reset. A program that must not miss input checks it (and
    /// [`Lp::collaboration_frames_lost`] for what was lost elsewhere).
    pub fn frames_lost(&self) -> u64 {
        self.rx.lost()
    }

    /// Frames lost to tampering or corruption on every link of the
    /// collaboration, as the coordinator last published it (each manager's
    /// `lost`), plus [`Lp::frames_lost`]. The published view lags by up to
    /// a report interval.
    pub fn collaboration_frames_lost(&self) -> Result<u64, LpError> {
        let state = self.collaboration_state()?;
        let managers = state
            .lps
            .iter()
            .filter_map(|l| l.report.as_ref())
            .fold(0u64, |a, r| a.saturating_add(r.lost));
        Ok(managers.saturating_add(self.frames_lost()))
    }

    pub(crate) fn subfn_id(&self, subfn: &str) -> Result<u32, LpError> {
        let ids = self.subfn_ids.get_or_init(|| self.plan.subfn_ids());
        (ids.get(subfn).copied()).ok_or_else(|| LpError::UnknownSubfn(subfn.to_owned()))
    }

    /// Send one message, after whatever `send_buffered` queued.
    fn emit(&mut self, hdr: FrameHeader, payload: &[u8], wait: Wait) -> Result<(), LpError> {
        // Keep the order: what was buffered goes first.
        if !self.out.is_empty() {
            match wait {
                Wait::No => {
                    self.drain_out();
                    if !self.out.is_empty() {
                        return Err(LpError::WouldBlock);
                    }
                }
                Wait::Forever => self.flush_timeout(None)?,
                Wait::For(t) => self.flush_timeout(Some(t))?,
            }
        }
        let max = self.tx.max_payload();
        if payload.len() > max {
            return Err(LpError::TooLarge {
                len: payload.len(),
                max,
            });
        }
        self.tx.send(hdr, payload, wait).map_err(send_error)
    }

    fn header(k: u8, dst: u32, aux: u32) -> FrameHeader {
        FrameHeader {
            kind: k,
            dst,
            aux,
            ..Default::default()
        }
    }

    /// Send `bytes` to sub-function `subfn`, waiting while the ring is full.
    pub fn send(&mut self, subfn: &str, bytes: &[u8]) -> Result<(), LpError> {
        let dst = self.subfn_id(subfn)?;
        self.emit(Self::header(kind::DATA, dst, 0), bytes, Wait::Forever)
    }

    /// Send, or fail at once with [`LpError::WouldBlock`] if the ring is full.
    pub fn try_send(&mut self, subfn: &str, bytes: &[u8]) -> Result<(), LpError> {
        let dst = self.subfn_id(subfn)?;
        self.emit(Self::header(kind::DATA, dst, 0), bytes, Wait::No)
    }

    /// Send, waiting at most `timeout` for room.
    pub fn send_timeout(
        &mut self,
        subfn: &str,
        bytes: &[u8],
        timeout: Duration,
    ) -> Result<(), LpError> {
        let dst = self.subfn_id(subfn)?;
        self.emit(Self::header(kind::DATA, dst, 0), bytes, Wait::For(timeout))
    }

    /// Queue `bytes` for `subfn` without writing it yet: queued messages go
    /// out together, several under one tag, at the next [`Lp::flush`] or any
    /// other call that sends or receives (or when 64 KiB are queued). For
    /// streams of small messages this is several times faster than `send`.
    pub fn send_buffered(&mut self, subfn: &str, bytes: &[u8]) -> Result<(), LpError> {
        let dst = self.subfn_id(subfn)?;
        let max = self.tx.max_payload().saturating_sub(32);
        if bytes.len() > max {
            return Err(LpError::TooLarge {
                len: bytes.len(),
                max,
            });
        }
        self.out.push(&Self::header(kind::DATA, dst, 0), bytes);
        if self.out.payload_bytes() >= 64 * 1024 {
            // Back-pressure: wait until the ring took it all.
            self.flush()?;
        }
        Ok(())
    }

    /// Write every buffered message, waiting for room as long as it takes.
    pub fn flush(&mut self) -> Result<(), LpError> {
        self.flush_timeout(None)
    }

    fn drain_out(&mut self) {
        self.tx.drain(&mut self.out);
        self.tx.flush();
    }

    fn flush_timeout(&mut self, timeout: Option<Duration>) -> Result<(), LpError> {
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            self.drain_out();
            let Some(first) = self.out.front_len() else {
                return Ok(());
            };
            // Wait for room for the oldest message: `drain` then writes at
            // least it (batches shrink to what fits).
            let wait = match deadline.map(|d| d.saturating_duration_since(Instant::now())) {
                None => Wait::Forever,
                Some(Duration::ZERO) => return Err(LpError::WouldBlock),
                Some(left) => Wait::For(left),
            };
            self.tx.wait_room(first, wait).map_err(send_error)?;
        }
    }

    /// Send `bytes` to every other LP.
    pub fn broadcast(&mut self, bytes: &[u8]) -> Result<(), LpError> {
        self.emit(Self::header(kind::BROADCAST, 0, 0), bytes, Wait::Forever)
    }

    /// Answer a request.
    pub fn reply(&mut self, req: &Message, bytes: &[u8]) -> Result<(), LpError> {
        let mut h = Self::header(kind::REPLY, req.from, req.corr);
        h.flags = FLAG_DST_LP;
        self.emit(h, bytes, Wait::Forever)
    }

    /// Tell the manager (and through it the supervisor) that this LP is ready.
    pub fn ready(&mut self) -> Result<(), LpError> {
        self.tell(&LpCtl::Ready, Wait::Forever)
    }

    /// Publish a custom `key = value` in this LP's state report.
    pub fn report(&mut self, key: &str, value: &str) -> Result<(), LpError> {
        let m = LpCtl::Report {
            key: key.to_owned(),
            value: value.to_owned(),
        };
        self.tell(&m, Wait::Forever)
    }

    /// The coordinator's view of the collaboration (see the README).
    ///
    /// The manager copies it into the LP's view when asked (this call asks
    /// and waits up to 1 s for it, then reads what the view holds).
    pub fn collaboration_state(&self) -> Result<CollaborationState, LpError> {
        let state = |e: StateError| LpError::State(e);
        let ticket = self.view.request();
        self.tx.wake_reader();
        let until = Instant::now() + Duration::from_secs(1);
        while !self.view.served(ticket) && Instant::now() < until {
            std::thread::sleep(Duration::from_micros(50));
        }
        let bytes = self.view.state().map_err(|e| state(e.into()))?;
        if bytes.is_empty() {
            return Err(state(StateError::NotPublished));
        }
        CollaborationState::decode(&bytes).map_err(|e| state(e.into()))
    }

    /// Wait for the next message.
    pub fn recv(&mut self) -> Result<Message, LpError> {
        loop {
            if let Some(m) = self.recv_timeout(Duration::from_secs(3600))? {
                return Ok(m);
            }
        }
    }

    /// Wait up to `timeout` for the next message.
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<Option<Message>, LpError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(m) = self.inbox.pop_front() {
                return Ok(Some(m));
            }
            // A frame may bring only a transaction reply: wait on.
            if !self.fill_inbox(Some(deadline))? {
                return Ok(None);
            }
        }
    }

    /// Take the next message without waiting.
    pub fn try_recv(&mut self) -> Result<Option<Message>, LpError> {
        self.recv_timeout(Duration::ZERO)
    }

    /// A control message to the manager.
    fn tell(&mut self, m: &LpCtl, wait: Wait) -> Result<(), LpError> {
        self.emit(Self::header(kind::CONTROL, 0, 0), &m.encode(), wait)
    }
}

fn send_error(e: SendError) -> LpError {
    match e {
        SendError::WouldBlock => LpError::WouldBlock,
        other => LpError::Corrupt(other.into()),
    }
}

impl Message {
    /// The message of a frame from the manager; `None` for kinds an LP
    /// does not receive.
    fn from_frame(
        plan: &Handover,
        spares: &mut recycle::Spares,
        h: &FrameHeader,
        payload: &[u8],
    ) -> Option<Message> {
        let kind = match h.kind {
            kind::DATA => MessageKind::Data,
            kind::REQUEST => MessageKind::Request,
            kind::REPLY => MessageKind::Reply,
            kind::BROADCAST => MessageKind::Broadcast,
            _ => return None,
        };
        let addressed = matches!(kind, MessageKind::Data | MessageKind::Request);
        let to = if h.flags & FLAG_DST_LP == 0 && addressed {
            plan.subfn_name(h.dst).map(|n| spares.name(n))
        } else {
            None
        };
        Some(Message {
            from: h.src,
            to,
            kind,
            corr: h.aux,
            payload: spares.payload(payload),
        })
    }
}

/// Whether this process was started by a shmcollab manager.
pub fn under_manager() -> bool {
    std::env::var_os(env::SESSION).is_some() && std::env::var_os(env::SLOT).is_some()
}

#[doc(hidden)]
pub use crate::wire::KEY_FD as _KEY_FD;
