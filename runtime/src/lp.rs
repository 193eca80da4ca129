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

use crate::wire::{self, ctl, env, DirectStats, FLAG_DST_LP};
use shmcollab_shm::auth::{LinkKey, Opener, RxStats, Sealer};
use shmcollab_shm::doorbell::WaitStrategy;
use shmcollab_shm::frame::{kind, FrameHeader, FRAME_HEADER_LEN};
use shmcollab_shm::registry::Registry;
use shmcollab_shm::ring::{open_ring, BellRef, Consumer, Producer, SendError};
use shmcollab_shm::segment::Session;
use std::collections::VecDeque;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Errors of the LP API.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LpError {
    /// Not started by a shmcollab manager, or its environment is damaged.
    #[error("not running under a shmcollab manager: {0}")]
    Environment(String),
    /// The session or a segment could not be opened.
    #[error("cannot attach to the session: {0}")]
    Attach(String),
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
    /// The shared ring is inconsistent (the manager misbehaved or memory was overwritten).
    #[error("ring from the manager is corrupt: {0}")]
    Corrupt(String),
    /// The collaboration state is not available.
    #[error("collaboration state unavailable: {0}")]
    State(String),
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
    _session: Session,
    registry: Registry,
    slot: u32,
    name: String,
    subfns: Vec<String>,
    tx: Producer,
    rx: Consumer,
    sealer: Sealer,
    opener: Opener,
    inbox: VecDeque<Message>,
    next_corr: u32,
    scratch: Vec<u8>,
    names: Vec<Option<String>>,
    /// The last frame handed out is released only when the next one is
    /// asked for: if this LP dies while handling a message, its manager
    /// delivers that message again to the restarted LP (at least once).
    /// Which ring holds it: 0 the main ring, `i + 1` direct ring `i`.
    unreleased: Option<usize>,
    /// Messages of `send_buffered` not yet written to the ring.
    out: crate::link::Outbox,
    /// The key of the inbound link, from which direct rings' keys derive.
    rx_key: Option<LinkKey>,
    /// Rings other managers write into straight (the 4-hop path).
    direct: Vec<DirectRx>,
    /// Where the next search of the direct rings starts (fairness).
    next_direct: usize,
    /// Messages and bytes taken from direct rings, and what rings already
    /// dropped rejected: reported to the manager, which cannot see them.
    direct_msgs: u64,
    direct_bytes: u64,
    direct_gone: RxStats,
    /// What the manager was told last, and when.
    stats_sent: DirectStats,
    stats_at: Instant,
}

/// A direct ring: frames sealed by a peer manager with a key derived from
/// this LP's inbound link key.
struct DirectRx {
    c: Consumer,
    opener: Opener,
    name: String,
    /// Its producer is gone: drop it once empty.
    closing: bool,
}

/// How often at most an LP tells its manager what it took from direct rings.
const STATS_EVERY: Duration = Duration::from_millis(100);

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
    b.fill(0);
    Ok(Some((LinkKey::from_bytes(tx), LinkKey::from_bytes(rx))))
}

impl Lp {
    /// Connect from the environment the manager set.
    pub fn connect() -> Result<Lp, LpError> {
        let dir = PathBuf::from(env_var(env::SESSION)?);
        let slot: u32 = env_var(env::SLOT)?
            .parse()
            .map_err(|_| LpError::Environment(format!("{} is not a number", env::SLOT)))?;
        let name = env_var(env::NAME)?;
        let ring_in = env_var(env::RING_IN)?;
        let ring_out = env_var(env::RING_OUT)?;
        let subfns = env_var(env::SUBFNS)?
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        let keys = read_keys()?;
        let attach = |e: &dyn std::fmt::Display| LpError::Attach(e.to_string());
        let session = Session::open(&dir).map_err(|e| attach(&e))?;
        let registry = Registry::open(&session).map_err(|e| attach(&e))?;
        let bell_ptr = registry.doorbell(slot).map_err(|e| attach(&e))? as *const _;
        // SAFETY: `bell_ptr` points at the doorbell of our slot inside the
        // registry segment, which BellRef keeps mapped.
        let bell = unsafe { BellRef::new(registry.segment().clone(), bell_ptr) };
        let out_seg = open_ring(&session, &ring_out).map_err(|e| attach(&e))?;
        let in_seg = open_ring(&session, &ring_in).map_err(|e| attach(&e))?;
        let tx = Producer::attach(&out_seg, Some(bell)).map_err(|e| attach(&e))?;
        let rx = Consumer::attach(&in_seg).map_err(|e| attach(&e))?;
        let (sealer, opener, rx_key) = match keys {
            Some((t, r)) => (Sealer::new(Some(t)), Opener::new(Some(r.clone())), Some(r)),
            None => (Sealer::new(None), Opener::new(None), None),
        };
        Ok(Lp {
            _session: session,
            registry,
            slot,
            name,
            subfns,
            tx,
            rx,
            sealer,
            opener,
            inbox: VecDeque::new(),
            next_corr: 1,
            scratch: Vec::with_capacity(4096),
            names: Vec::new(),
            unreleased: None,
            out: crate::link::Outbox::new(),
            rx_key,
            direct: Vec::new(),
            next_direct: 0,
            direct_msgs: 0,
            direct_bytes: 0,
            direct_gone: RxStats::default(),
            stats_sent: DirectStats::default(),
            stats_at: Instant::now(),
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
        (0..self.registry.subfn_count())
            .filter_map(|i| self.registry.subfn_name(i).ok())
            .collect()
    }

    /// Name of the LP in `slot` (as registered by its manager).
    pub fn name_of(&mut self, slot: u32) -> Option<String> {
        let i = slot as usize;
        if i >= self.registry.max_slots() as usize {
            return None;
        }
        if self.names.len() <= i {
            self.names.resize(i + 1, None);
        }
        if self.names[i].is_none() {
            let n = self.registry.slot(slot).ok()?.name;
            if !n.is_empty() {
                self.names[i] = Some(n);
            }
        }
        self.names[i].clone()
    }

    /// Frames from the manager that failed authentication (dropped).
    pub fn auth_failures(&self) -> u64 {
        self.opener.stats().rejected() + self.direct_stats().rejected()
    }

    /// What the direct rings rejected, removed ones included.
    fn direct_stats(&self) -> RxStats {
        let mut all = self.direct_gone;
        for d in &self.direct {
            all.add(d.opener.stats());
        }
        all
    }

    fn subfn_id(&self, subfn: &str) -> Result<u32, LpError> {
        self.registry
            .subfn_index(subfn)
            .ok_or_else(|| LpError::UnknownSubfn(subfn.to_owned()))
    }

    fn emit(
        &mut self,
        hdr: FrameHeader,
        payload: &[u8],
        wait: Option<Option<Duration>>,
    ) -> Result<(), LpError> {
        // Keep the order: what was buffered goes first.
        if !self.out.is_empty() {
            match wait {
                None => {
                    self.drain_out();
                    if !self.out.is_empty() {
                        return Err(LpError::WouldBlock);
                    }
                }
                Some(t) => self.flush_timeout(t)?,
            }
        }
        let len = self.sealer.frame_len(payload.len());
        let max = self.tx.max_frame_len();
        if len > max {
            return Err(LpError::TooLarge {
                len: payload.len(),
                max: max.saturating_sub(len - payload.len()),
            });
        }
        let slot = match wait {
            None => self.tx.reserve(len),
            Some(t) => self.tx.reserve_wait(len, t),
        };
        let mut slot = slot.map_err(|e| match e {
            SendError::WouldBlock => LpError::WouldBlock,
            other => LpError::Corrupt(other.to_string()),
        })?;
        let buf = slot.as_mut_slice();
        buf[FRAME_HEADER_LEN..FRAME_HEADER_LEN + payload.len()].copy_from_slice(payload);
        let hdr = FrameHeader {
            payload_len: payload.len() as u32,
            ..hdr
        };
        let n = self
            .sealer
            .seal_in_place(hdr, buf)
            .map_err(|e| LpError::Corrupt(e.to_string()))?;
        slot.commit_len(n);
        self.tx.flush();
        Ok(())
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
        self.emit(Self::header(kind::DATA, dst, 0), bytes, Some(None))
    }

    /// Send, or fail at once with [`LpError::WouldBlock`] if the ring is full.
    pub fn try_send(&mut self, subfn: &str, bytes: &[u8]) -> Result<(), LpError> {
        let dst = self.subfn_id(subfn)?;
        self.emit(Self::header(kind::DATA, dst, 0), bytes, None)
    }

    /// Send, waiting at most `timeout` for room.
    pub fn send_timeout(
        &mut self,
        subfn: &str,
        bytes: &[u8],
        timeout: Duration,
    ) -> Result<(), LpError> {
        let dst = self.subfn_id(subfn)?;
        self.emit(Self::header(kind::DATA, dst, 0), bytes, Some(Some(timeout)))
    }

    /// Queue `bytes` for `subfn` without writing it yet: queued messages go
    /// out together, several under one tag, at the next [`Lp::flush`] or any
    /// other call that sends or receives (or when 64 KiB are queued). For
    /// streams of small messages this is several times faster than `send`.
    pub fn send_buffered(&mut self, subfn: &str, bytes: &[u8]) -> Result<(), LpError> {
        let dst = self.subfn_id(subfn)?;
        let max = self
            .tx
            .max_frame_len()
            .saturating_sub(self.sealer.frame_len(0) + 32);
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
        self.out.drain(&mut self.tx, &mut self.sealer);
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
            let need = self.sealer.frame_len(first);
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            if left == Some(Duration::ZERO) {
                return Err(LpError::WouldBlock);
            }
            // Wait for room for at least the first message.
            match self.tx.reserve_wait(need, left) {
                Ok(_) => {}
                Err(SendError::WouldBlock) => return Err(LpError::WouldBlock),
                Err(e) => return Err(LpError::Corrupt(e.to_string())),
            }
        }
    }

    /// Send `bytes` to every other LP.
    pub fn broadcast(&mut self, bytes: &[u8]) -> Result<(), LpError> {
        self.emit(Self::header(kind::BROADCAST, 0, 0), bytes, Some(None))
    }

    /// Send a request to `subfn` and wait up to `timeout` for its reply.
    /// Messages that arrive meanwhile are kept for `recv`.
    pub fn request(
        &mut self,
        subfn: &str,
        bytes: &[u8],
        timeout: Duration,
    ) -> Result<Message, LpError> {
        let dst = self.subfn_id(subfn)?;
        let corr = self.next_corr;
        self.next_corr = self.next_corr.wrapping_add(1).max(1);
        self.emit(
            Self::header(kind::REQUEST, dst, corr),
            bytes,
            Some(Some(timeout)),
        )?;
        let deadline = Instant::now() + timeout;
        loop {
            // Other messages stay in the inbox, in order, for `recv`.
            let hit = self
                .inbox
                .iter()
                .position(|m| m.kind == MessageKind::Reply && m.corr == corr);
            if let Some(m) = hit.and_then(|i| self.inbox.remove(i)) {
                return Ok(m);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if !self.fill_inbox(Some(left))? {
                return Err(LpError::Timeout);
            }
        }
    }

    /// Answer a request.
    pub fn reply(&mut self, req: &Message, bytes: &[u8]) -> Result<(), LpError> {
        let mut h = Self::header(kind::REPLY, req.from, req.corr);
        h.flags = FLAG_DST_LP;
        self.emit(h, bytes, Some(None))
    }

    /// Tell the manager (and through it the supervisor) that this LP is ready.
    pub fn ready(&mut self) -> Result<(), LpError> {
        self.tell(&[ctl::READY], Some(None))
    }

    /// Publish a custom `key = value` in this LP's state report.
    pub fn report(&mut self, key: &str, value: &str) -> Result<(), LpError> {
        let mut p = Vec::with_capacity(2 + key.len() + value.len());
        p.push(ctl::REPORT);
        p.extend_from_slice(key.as_bytes());
        p.push(0);
        p.extend_from_slice(value.as_bytes());
        self.tell(&p, Some(None))
    }

    /// The coordinator's view of the collaboration (JSON, see the README).
    pub fn collaboration_state(&self) -> Result<serde_json::Value, LpError> {
        let bytes = self
            .registry
            .read_status()
            .map_err(|e| LpError::State(e.to_string()))?;
        if bytes.is_empty() {
            return Err(LpError::State(
                "the coordinator has not published yet".into(),
            ));
        }
        serde_json::from_slice(&bytes).map_err(|e| LpError::State(e.to_string()))
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
        if self.inbox.is_empty() && !self.fill_inbox(Some(timeout))? {
            return Ok(None);
        }
        Ok(self.inbox.pop_front())
    }

    /// Take the next message without waiting.
    pub fn try_recv(&mut self) -> Result<Option<Message>, LpError> {
        self.recv_timeout(Duration::ZERO)
    }

    /// Read the next frame's messages onto the back of the inbox, waiting up
    /// to `timeout`; false if nothing came. The main ring (from the manager)
    /// goes first: its control frames say when a direct ring may be read.
    fn fill_inbox(&mut self, timeout: Option<Duration>) -> Result<bool, LpError> {
        if !self.out.is_empty() {
            self.flush()?;
        }
        let deadline = timeout.map(|t| Instant::now() + t);
        if let Some(r) = self.unreleased.take() {
            self.release(r)?;
        }
        loop {
            // A closing ring first: its writer's manager is gone, and the
            // frames it left come before anything its successor sends
            // (which arrives behind the DETACH on the main ring).
            if let Some(r) = self.direct.iter().position(|d| d.closing && d.c.has_data()) {
                if let Some(got) = self.take_from(r + 1)? {
                    if got {
                        return Ok(true);
                    }
                    continue;
                }
            }
            if let Some(got) = self.take_from(0)? {
                if got {
                    return Ok(true);
                }
                continue;
            }
            let n = self.direct.len();
            let mut any = false;
            for i in 0..n {
                let r = (self.next_direct + i) % n;
                if let Some(got) = self.take_from(r + 1)? {
                    self.next_direct = (r + 1) % n;
                    if got {
                        // Under steady load the rings are never all empty:
                        // tell the manager now and then anyway.
                        if self.direct_msgs.is_multiple_of(256) {
                            self.send_stats(false);
                        }
                        return Ok(true);
                    }
                    any = true;
                    break;
                }
            }
            if any {
                continue;
            }
            // Every ring is empty and nothing is held.
            self.drop_closed_direct();
            let mut left = match deadline {
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        self.send_stats(true);
                        return Ok(false);
                    }
                    Some(d - now)
                }
                None => None,
            };
            if !self.send_stats(false) {
                // Counts to report but reported recently: wake up in time.
                left = Some(left.map_or(STATS_EVERY, |l| l.min(STATS_EVERY)));
            }
            self.rx.prepare_wait();
            for d in &mut self.direct {
                d.c.prepare_wait();
            }
            let this = &*self;
            let waited = Instant::now();
            this.rx
                .data_bell()
                .wait_until(WaitStrategy::default(), left, || {
                    (this.rx.has_data() || this.direct.iter().any(|d| d.c.has_data())).then_some(())
                });
            // For the supervisor's placement: time spent waiting is not work.
            let _ = this
                .registry
                .add_lp_wait(this.slot, waited.elapsed().as_nanos() as u64);
        }
    }

    /// Release the frame at the head of ring `r` (0: main, `i + 1`: direct `i`).
    fn release(&mut self, r: usize) -> Result<(), LpError> {
        let c = if r == 0 {
            &mut self.rx
        } else {
            match self.direct.get_mut(r - 1) {
                Some(d) => &mut d.c,
                None => return Ok(()),
            }
        };
        if let Some(f) = c.peek().map_err(|e| LpError::Corrupt(e.to_string()))? {
            f.release();
        }
        Ok(())
    }

    /// Take the next frame of ring `r`: `None` if it is empty; `Some(true)`
    /// if messages went into the inbox (the frame stays unreleased, see
    /// `unreleased`), `Some(false)` if the frame held none (released).
    fn take_from(&mut self, r: usize) -> Result<Option<bool>, LpError> {
        let (c, opener) = if r == 0 {
            (&mut self.rx, &mut self.opener)
        } else {
            let d = &mut self.direct[r - 1];
            (&mut d.c, &mut d.opener)
        };
        let f = match c.peek() {
            Ok(Some(f)) => f,
            Ok(None) => return Ok(None),
            Err(e) if r == 0 => return Err(LpError::Corrupt(e.to_string())),
            Err(_) => {
                // A direct ring with garbage indices: nothing more can be
                // read from it here; the main ring still works. The manager
                // is told, so that the writer's frames are not stranded.
                let d = self.direct.remove(r - 1);
                self.direct_gone.add(d.opener.stats());
                // The ring itself counts as one malformed frame.
                self.direct_gone.malformed = self.direct_gone.malformed.saturating_add(1);
                let _ = self.tell_ring(ctl::LOST, &d.name, Some(None));
                return Ok(Some(false));
            }
        };
        let Ok(h) = opener.open(&f, &mut self.scratch) else {
            // Counted in the opener's stats; never delivered.
            f.release();
            return Ok(Some(false));
        };
        // `f` is not released here: see `unreleased`.
        let scratch = std::mem::take(&mut self.scratch);
        let mut msgs = Vec::new();
        let mut ctls = Vec::new();
        crate::link::unpack(&h, &scratch, |h, p| {
            if h.kind == kind::CONTROL {
                // Only the manager's own ring carries control.
                if r == 0 {
                    ctls.push(p.to_vec());
                }
            } else if let Some(m) = self.message(&h, p) {
                msgs.push(m);
            }
        });
        self.scratch = scratch;
        for c in &ctls {
            self.control(c);
        }
        if r > 0 {
            self.direct_msgs += msgs.len() as u64;
            self.direct_bytes += msgs.iter().map(|m| m.payload.len() as u64).sum::<u64>();
        }
        if msgs.is_empty() {
            self.release(r)?;
            return Ok(Some(false));
        }
        self.unreleased = Some(r);
        self.inbox.extend(msgs);
        Ok(Some(true))
    }

    /// A control frame from the manager.
    fn control(&mut self, p: &[u8]) {
        match p.first() {
            Some(&ctl::ATTACH) => {
                let Some(([slot, gen], name)) = wire::ctl_nums::<2>(p) else {
                    return;
                };
                let Ok(name) = std::str::from_utf8(name) else {
                    return;
                };
                if self.direct.iter().any(|d| d.name == name) {
                    return;
                }
                let key = self
                    .rx_key
                    .as_ref()
                    .map(|k| k.derive(&wire::direct_label(slot, gen)));
                match open_ring(&self._session, name).map(|seg| Consumer::attach(&seg)) {
                    Ok(Ok(c)) => self.direct.push(DirectRx {
                        c,
                        opener: Opener::new(key),
                        name: name.to_owned(),
                        closing: false,
                    }),
                    Ok(Err(e)) | Err(e) => {
                        eprintln!("shmcollab: cannot attach the direct ring {name}: {e}");
                        let _ = self.tell_ring(ctl::LOST, name, Some(None));
                    }
                }
            }
            Some(&ctl::DETACH) => {
                if let Ok(name) = std::str::from_utf8(&p[1..]) {
                    for d in self.direct.iter_mut().filter(|d| d.name == name) {
                        d.closing = true;
                    }
                }
            }
            _ => {}
        }
    }

    /// A control frame to the manager (`wait` as in `emit`).
    fn tell(&mut self, p: &[u8], wait: Option<Option<Duration>>) -> Result<(), LpError> {
        self.emit(Self::header(kind::CONTROL, 0, 0), p, wait)
    }

    /// A control frame about direct ring `name` (LOST, DETACHED).
    fn tell_ring(
        &mut self,
        op: u8,
        name: &str,
        wait: Option<Option<Duration>>,
    ) -> Result<(), LpError> {
        self.tell(&wire::ctl_msg(op, &[], name.as_bytes()), wait)
    }

    /// Drop direct rings whose producer is gone once they are empty (call
    /// with no frame held).
    fn drop_closed_direct(&mut self) {
        let mut gone = RxStats::default();
        let mut names = Vec::new();
        self.direct.retain(|d| {
            let keep = !d.closing || d.c.has_data();
            if !keep {
                gone.add(d.opener.stats());
                names.push(d.name.clone());
            }
            keep
        });
        self.direct_gone.add(&gone);
        // The manager removes the ring once told (best effort: if the ring
        // to it is full, the ring is removed when this LP ends instead).
        for name in names {
            let _ = self.tell_ring(ctl::DETACHED, &name, None);
        }
        if self.next_direct >= self.direct.len() {
            self.next_direct = 0;
        }
    }

    /// Tell the manager what came through direct rings, if that changed and
    /// was not told within [`STATS_EVERY`] (or `now`). False if something
    /// is left to tell later.
    fn send_stats(&mut self, now: bool) -> bool {
        let cur = DirectStats {
            msgs: self.direct_msgs,
            bytes: self.direct_bytes,
            rejects: RxStats::from_rejects(self.direct_stats().rejects()),
        };
        if cur == self.stats_sent {
            return true;
        }
        if !now && self.stats_at.elapsed() < STATS_EVERY {
            return false;
        }
        if self.tell(&cur.encode(), None).is_ok() {
            self.stats_sent = cur;
            self.stats_at = Instant::now();
            return true;
        }
        false
    }
}

impl Lp {
    fn message(&self, h: &FrameHeader, payload: &[u8]) -> Option<Message> {
        let kind = match h.kind {
            kind::DATA => MessageKind::Data,
            kind::REQUEST => MessageKind::Request,
            kind::REPLY => MessageKind::Reply,
            kind::BROADCAST => MessageKind::Broadcast,
            _ => return None,
        };
        let to = if h.flags & FLAG_DST_LP == 0
            && matches!(kind, MessageKind::Data | MessageKind::Request)
        {
            self.registry.subfn_name(h.dst).ok()
        } else {
            None
        };
        Some(Message {
            from: h.src,
            to,
            kind,
            corr: h.aux,
            payload: payload.to_vec(),
        })
    }
}

/// Whether this process was started by a shmcollab manager.
pub fn under_manager() -> bool {
    std::env::var_os(env::SESSION).is_some() && std::env::var_os(env::SLOT).is_some()
}

#[doc(hidden)]
pub use wire::KEY_FD as _KEY_FD;
