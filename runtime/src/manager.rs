//! The manager: one per LP, a separate process (`shmcollab manager`).
//!
//! It holds the *communications module* (registers in the registry, discovers
//! the other managers as they join and leave, opens the rings to them,
//! authenticates every frame, stamps the source), the router (frames are
//! addressed to sub-functions; the registry's assignment table says which
//! manager owns each), the LP's life cycle (spawn, pidfd watch, restart by
//! policy, frames kept while it restarts), the state reports to the
//! coordinator, and — when it holds the role — the coordinator itself.
//!
//! One thread runs the event loop; it sleeps on the doorbell of its registry
//! slot, which its LP and every peer manager ring after publishing frames.
//! Two small threads turn a signal and the LP's pidfd into a doorbell ring.
//!
//! Rings (segments in the session directory, see [`crate::wire`]):
//! `lp<slot>.g<gen>.in` (manager -> LP), `lp<slot>.g<gen>.out` (LP ->
//! manager), per peer `m<from>.g<gen>-m<to>.g<gen>`, created by the
//! receiving manager when it discovers the sender, and per peer and LP
//! generation the direct ring `m<from>.g<gen>-lp<slot>.g<gen>.<lp gen>`
//! (peer manager -> our LP; see "the direct path" below).

use crate::plan::{set_process_cpus, CoordinatorChoice, Plan, RestartIntensity, RestartType};
use crate::wire::{self, ctl, DirectStats, FLAG_DST_LP};
use anyhow::{anyhow, Context};
use serde_json::{json, Value};
use shmcollab_shm::auth::{link_key, LinkKey, MasterKey, Opener, RxStats, Sealer};
use shmcollab_shm::frame::{kind, FrameHeader};
use shmcollab_shm::registry::{monotonic_ms, LpState, Registry, SlotState};
use shmcollab_shm::ring::{create_ring, open_ring, BellRef, Consumer, Producer};
use shmcollab_shm::segment::{Segment, Session};
use shmcollab_shm::WaitStrategy;
use std::collections::BTreeMap;
use std::io::Read;
use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Payload bytes a manager queues before it stops taking frames in.
const BACKLOG: usize = 4 << 20;

/// Exit code of a manager whose LP failed for good.
pub const EXIT_LP_FAILED: i32 = 3;

use crate::link::{self, Outbox};

#[derive(Default, Clone, Copy)]
struct Counters {
    msgs_in: u64,
    msgs_out: u64,
    bytes_in: u64,
    bytes_out: u64,
    dropped: u64,
    bad_batches: u64,
    bad_rings: u64,
}

struct Peer {
    slot: u32,
    gen: u32,
    up: bool,
    /// Frames from the peer (we created this ring).
    rx: Option<(Consumer, Opener, String)>,
    /// Old rings of earlier generations still being drained.
    draining: Vec<(Consumer, Opener, String)>,
    /// Frames to the peer (the peer created this ring).
    tx: Option<(Producer, Sealer)>,
    pending: Outbox,
    /// The newest state report for this peer (the coordinator), sent ahead
    /// of `pending`; an older one not yet sent is simply replaced.
    report: Option<(FrameHeader, Vec<u8>)>,
    /// Its LP ended for good: nothing is queued for it any more.
    finished: bool,
    /// The direct ring into the peer's LP (the 4-hop path), once the peer
    /// offered it: producer, sealer, the LP generation it serves.
    direct: Option<(Producer, Sealer, u32)>,
    /// Messages for the peer's LP waiting for room in `direct`.
    direct_pending: Outbox,
}

/// A direct ring into our LP from a peer manager (created by us, written by
/// the peer, read by the LP; by us once the LP it was made for is dead).
struct DirectIn {
    peer: u32,
    peer_gen: u32,
    lp_gen: u32,
    name: String,
    seg: Segment,
    /// The LP was told to read it (ATTACH queued).
    attached: bool,
    /// The peer manager is gone: nothing more is written to it.
    peer_dead: bool,
    /// The peer switched to a newer ring: nothing more is written to it.
    superseded: bool,
    /// The peer's SWITCH for this ring was routed: everything it sent us
    /// before writing here is queued, so this ring's frames may follow.
    switched: bool,
    /// We read it ourselves (its LP is dead): consumer, opener, and whether
    /// the opener still has to pick up the sequence at the first frame.
    drain: Option<(Consumer, Opener, bool)>,
}

struct LpProc {
    child: Child,
    pidfd: Arc<OwnedFd>,
}

struct Flags {
    stop: AtomicBool,
    lp_exited: AtomicBool,
}

/// Run the manager of `slot` in session `dir`. Returns the process exit code.
pub fn run(dir: &Path, slot: u32) -> anyhow::Result<i32> {
    let session = Session::open(dir).context("opening the session")?;
    let plan: Plan =
        serde_json::from_slice(&std::fs::read(dir.join(Plan::FILE)).context("reading the plan")?)
            .context("parsing the plan")?;
    let lp = plan
        .lps
        .get(slot as usize)
        .ok_or_else(|| anyhow!("slot {slot} is not in the plan"))?
        .clone();
    let master = if plan.secure {
        Some(read_master_key().context("reading the master key")?)
    } else {
        None
    };
    let registry = Registry::open(&session).context("opening the registry")?;
    let flags = Arc::new(Flags {
        stop: AtomicBool::new(false),
        lp_exited: AtomicBool::new(false),
    });
    spawn_signal_thread(flags.clone(), registry.clone(), slot)?;
    let pid = std::process::id();
    let gen = registry
        .claim_slot(slot, &lp.name, pid)
        .with_context(|| format!("claiming registry slot {slot}"))?;
    remove_stale_rings(&session, slot, gen);
    // A predecessor killed while asleep left its count behind.
    registry.doorbell(slot)?.reset_sleepers();
    let cap = plan.ring_capacity;
    let in_name = wire::lp_in_ring(slot, gen);
    let out_name = wire::lp_out_ring(slot, gen);
    let in_seg = create_ring(&session, &in_name, cap).context("creating the LP ring")?;
    let out_seg = create_ring(&session, &out_name, cap).context("creating the LP ring")?;
    let lp_tx = Producer::attach(&in_seg, None)?;
    let lp_rx = Consumer::attach(&out_seg)?;
    let mut m = Manager {
        session,
        registry,
        plan,
        slot,
        gen,
        master,
        flags,
        in_seg,
        in_name,
        out_name,
        lp_tx,
        lp_rx,
        lp_sealer: Sealer::new(None),
        lp_opener: Opener::new(None),
        lp_gen: 0,
        lp: None,
        lp_pending: Outbox::new(),
        lp_up: false,
        lp_ready: false,
        lp_placed: false,
        restart_at: None,
        restart_times: RestartIntensity::default(),
        restarts: 0,
        peers: BTreeMap::new(),
        changes_seen: u32::MAX,
        coord: None,
        aggregate: BTreeMap::new(),
        custom: BTreeMap::new(),
        counters: Counters::default(),
        scratch: Vec::with_capacity(4096),
        last_report: Instant::now() - Duration::from_secs(3600),
        report_dirty: true,
        last_publish: Instant::now() - Duration::from_secs(3600),
        publish_dirty: false,
        exit: None,
        stop_seen: false,
        direct_in: Vec::new(),
        lp_direct: DirectStats::default(),
        lp_direct_base: DirectStats::default(),
        direct_gone: RxStats::default(),
        peer_ctl: Vec::new(),
    };
    if let Err(e) = m.spawn_lp() {
        // Not a crash of the manager: restarting it would not help.
        eprintln!("shmcollab: {} cannot start: {e:#}", m.lp_plan().name);
        let _ = m.registry.set_lp(slot, 0, LpState::Failed);
        let _ = m.registry.release_slot(slot, m.gen);
        return Ok(EXIT_LP_FAILED);
    }
    // Tell the others we are here.
    m.registry.changes().notify();
    m.ring_all_peers();
    m.event_loop()
}

fn read_master_key() -> anyhow::Result<MasterKey> {
    // SAFETY: the supervisor hands the read end of a pipe down as KEY_FD;
    // nothing else in this process uses that descriptor; we own and close it.
    let mut f = unsafe { std::fs::File::from_raw_fd(wire::KEY_FD) };
    let mut b = [0u8; 32];
    f.read_exact(&mut b)?;
    let k = MasterKey::from_bytes(b);
    b.fill(0);
    Ok(k)
}

fn spawn_signal_thread(flags: Arc<Flags>, reg: Registry, slot: u32) -> anyhow::Result<()> {
    use nix::sys::signal::{SigSet, SigmaskHow, Signal};
    let mut set = SigSet::empty();
    set.add(Signal::SIGTERM);
    set.add(Signal::SIGINT);
    set.add(Signal::SIGHUP);
    nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&set), None)?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || loop {
            if set.wait().is_ok() {
                flags.stop.store(true, Ordering::SeqCst);
                if let Ok(b) = reg.doorbell(slot) {
                    b.notify();
                }
            }
        })?;
    Ok(())
}

/// Remove ring files that earlier generations of this slot created.
fn remove_stale_rings(session: &Session, slot: u32, gen: u32) {
    let Ok(rd) = std::fs::read_dir(session.dir()) else {
        return;
    };
    let mine_lp = format!("lp{slot}.g");
    let mine_in = format!("-m{slot}.g");
    let current = format!(".g{gen}");
    let mine_direct = format!("-lp{slot}.g");
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let ours =
            name.starts_with(&mine_lp) || name.contains(&mine_in) || name.contains(&mine_direct);
        let this_gen = name.ends_with(&format!("-m{slot}{current}"))
            || name.starts_with(&format!("lp{slot}{current}."))
            || name.contains(&format!("-lp{slot}{current}."));
        if ours && !this_gen {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

struct Manager {
    session: Session,
    registry: Registry,
    plan: Plan,
    slot: u32,
    gen: u32,
    master: Option<MasterKey>,
    flags: Arc<Flags>,
    in_seg: Segment,
    in_name: String,
    out_name: String,
    lp_tx: Producer,
    lp_rx: Consumer,
    lp_sealer: Sealer,
    lp_opener: Opener,
    lp_gen: u32,
    lp: Option<LpProc>,
    lp_pending: Outbox,
    lp_up: bool,
    lp_ready: bool,
    /// The plan's CPU split was applied to the current LP (and to us).
    lp_placed: bool,
    restart_at: Option<Instant>,
    restart_times: RestartIntensity,
    restarts: u32,
    peers: BTreeMap<u32, Peer>,
    changes_seen: u32,
    coord: Option<(u32, u32)>,
    aggregate: BTreeMap<u32, Value>,
    custom: BTreeMap<String, String>,
    counters: Counters,
    scratch: Vec<u8>,
    last_report: Instant,
    report_dirty: bool,
    last_publish: Instant,
    publish_dirty: bool,
    exit: Option<i32>,
    /// The stop request has been acted on (so it no longer wakes the loop).
    stop_seen: bool,
    /// Direct rings into our LP.
    direct_in: Vec<DirectIn>,
    /// What our current LP says it took from and rejected on its direct
    /// rings, and the totals of its dead predecessors.
    lp_direct: DirectStats,
    lp_direct_base: DirectStats,
    /// What the direct rings we drained and removed since rejected.
    direct_gone: RxStats,
    /// Control frames from peers, handled after their rings are read.
    peer_ctl: Vec<(u32, Vec<u8>)>,
}

impl Manager {
    fn key(
        &self,
        from: shmcollab_shm::auth::Endpoint,
        to: shmcollab_shm::auth::Endpoint,
    ) -> Option<LinkKey> {
        self.master
            .as_ref()
            .map(|m| link_key(m, self.session.id(), from, to))
    }

    fn lp_plan(&self) -> &crate::plan::LpPlan {
        &self.plan.lps[self.slot as usize]
    }

    // ---- the LP's life cycle ------------------------------------------

    fn spawn_lp(&mut self) -> anyhow::Result<()> {
        self.lp_gen += 1;
        let me = wire::manager_endpoint(self.slot, self.gen);
        let lpe = wire::lp_endpoint(self.slot, self.gen, self.lp_gen);
        let to_lp = self.key(me, lpe);
        let from_lp = self.key(lpe, me);
        self.lp_sealer = Sealer::new(to_lp.clone());
        self.lp_opener = Opener::new(from_lp.clone());
        let p = self.lp_plan().clone();
        let program = resolve_program(&p.command[0], &p.cwd);
        let mut cmd = Command::new(&program);
        cmd.args(&p.command[1..])
            .current_dir(&p.cwd)
            .envs(p.env.iter().map(|(k, v)| (k, v)))
            .env(wire::env::SESSION, self.session.dir())
            .env(wire::env::SLOT, self.slot.to_string())
            .env(wire::env::NAME, &p.name)
            .env(wire::env::RING_IN, &self.in_name)
            .env(wire::env::RING_OUT, &self.out_name)
            .env(wire::env::SUBFNS, p.subfns.join(","))
            .stdin(Stdio::null());
        let keys = match (&from_lp, &to_lp) {
            (Some(f), Some(t)) => {
                cmd.env(wire::env::KEY_FD, wire::KEY_FD.to_string());
                let mut b = [0u8; 32];
                b[..16].copy_from_slice(f.as_bytes());
                b[16..].copy_from_slice(t.as_bytes());
                Some(b)
            }
            _ => {
                cmd.env_remove(wire::env::KEY_FD);
                None
            }
        };
        // The LP dies with its manager; it stays in the manager's group.
        let key_pipe = wire::prepare_child(&mut cmd, keys.as_ref().map(|b| &b[..]), false);
        let key_pipe = key_pipe?;
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {} ({})", p.name, program.display()))?;
        drop(key_pipe);
        if let Some(mut b) = keys {
            b.fill(0);
        }
        let pid = child.id();
        if let Some(split) = &self.plan.cpus {
            // Forked from us, it would run on the managers' CPUs (once we
            // placed ourselves) until it is ready: let it start anywhere.
            let all: Vec<usize> = split.lps.iter().chain(&split.managers).copied().collect();
            set_process_cpus(pid, &all);
        }
        let pidfd = Arc::new(rustix::process::pidfd_open(
            rustix::process::Pid::from_raw(pid as i32).ok_or_else(|| anyhow!("bad pid"))?,
            rustix::process::PidfdFlags::empty(),
        )?);
        self.flags.lp_exited.store(false, Ordering::SeqCst);
        let watch = pidfd.clone();
        let flags = self.flags.clone();
        let reg = self.registry.clone();
        let slot = self.slot;
        std::thread::Builder::new()
            .name("lp-watch".into())
            .spawn(move || {
                let mut fds = [rustix::event::PollFd::new(
                    &*watch,
                    rustix::event::PollFlags::IN,
                )];
                while rustix::event::poll(&mut fds, None).is_err() {}
                flags.lp_exited.store(true, Ordering::SeqCst);
                if let Ok(b) = reg.doorbell(slot) {
                    b.notify();
                }
            })?;
        self.lp = Some(LpProc { child, pidfd });
        self.lp_up = true;
        self.lp_ready = false;
        self.lp_placed = false;
        let _ = self.registry.set_lp(self.slot, pid, LpState::Running);
        self.report_dirty = true;
        let up: Vec<u32> = self
            .peers
            .values()
            .filter(|p| p.up)
            .map(|p| p.slot)
            .collect();
        for s in up {
            self.offer_direct(s);
        }
        Ok(())
    }

    // ---- the direct path ----------------------------------------------
    //
    // Manager a may write messages for our LP straight into a ring our LP
    // reads (4 hops per round trip instead of 6). The ring's key derives
    // from our LP's inbound link key, so the LP holds no other key. Order
    // per sender is kept: a SWITCH from a, sent on a's ring to us after
    // everything a routed through us, makes us queue ATTACH for the LP
    // behind those frames; the LP reads the direct ring only from then on.
    // When our LP dies we read its direct rings ourselves, so what it did
    // not release reaches its successor, in order, before the newer rings.

    /// Key of the direct ring from manager `writer` (generation
    /// `writer_gen`) into the LP of slot `lp` (manager generation `lp_mgr`,
    /// LP generation `lp_gen`): derived from that LP's inbound link key,
    /// as the LP derives it.
    fn direct_key(&self, writer: (u32, u32), lp: (u32, u32), lp_gen: u32) -> Option<LinkKey> {
        let mgr = wire::manager_endpoint(lp.0, lp.1);
        let lpe = wire::lp_endpoint(lp.0, lp.1, lp_gen);
        self.key(mgr, lpe)
            .map(|k| k.derive(&wire::direct_label(writer.0, writer.1)))
    }

    /// Read direct ring `i` ourselves from now on (its LP is dead, gone, or
    /// cannot read it); the consumer resumes at the ring's head.
    fn start_drain(&mut self, i: usize) {
        let d = &self.direct_in[i];
        if d.drain.is_some() {
            return;
        }
        let key = self.direct_key((d.peer, d.peer_gen), (self.slot, self.gen), d.lp_gen);
        let d = &mut self.direct_in[i];
        if let Ok(c) = Consumer::attach(&d.seg) {
            d.drain = Some((c, Opener::new(key), true));
            d.attached = false;
        }
    }

    /// Create the direct ring from peer `s` into our current LP and offer it.
    fn offer_direct(&mut self, s: u32) {
        if !wire::direct_enabled() || !self.lp_up {
            return;
        }
        let Some(peer) = self.peers.get(&s) else {
            return;
        };
        if !peer.up || peer.finished {
            return;
        }
        let (peer_gen, lp_gen) = (peer.gen, self.lp_gen);
        if self
            .direct_in
            .iter()
            .any(|d| d.peer == s && d.peer_gen == peer_gen && d.lp_gen == lp_gen)
        {
            return;
        }
        let name = wire::direct_ring(s, peer_gen, self.slot, self.gen, lp_gen);
        let seg = match create_ring(&self.session, &name, self.plan.ring_capacity) {
            Ok(seg) => seg,
            Err(e) => {
                // The 6-hop path still works.
                eprintln!("shmcollab: cannot create the direct ring {name}: {e}");
                return;
            }
        };
        self.direct_in.push(DirectIn {
            peer: s,
            peer_gen,
            lp_gen,
            name,
            seg,
            attached: false,
            peer_dead: false,
            superseded: false,
            switched: false,
            drain: None,
        });
        self.send_peer_ctl(s, &wire::ctl_msg(ctl::OFFER, &[lp_gen, self.gen], &[]));
    }

    fn send_peer_ctl(&mut self, s: u32, payload: &[u8]) {
        let h = ctl_header(self.slot);
        if let Some(peer) = self.peers.get_mut(&s) {
            peer.pending.push(&h, payload);
        }
    }

    fn lp_ctl(&mut self, payload: &[u8]) {
        self.lp_pending.push(&ctl_header(self.slot), payload);
    }

    /// Peer `b` offers its LP's direct ring: write there from now on.
    fn on_offer(&mut self, b: u32, p: &[u8]) {
        let Some(([lp_gen, bgen], _)) = wire::ctl_nums::<2>(p) else {
            return;
        };
        let (me, my_gen) = (self.slot, self.gen);
        let key = self.direct_key((me, my_gen), (b, bgen), lp_gen);
        let Some(peer) = self.peers.get_mut(&b) else {
            return;
        };
        if !peer.up || peer.gen != bgen || peer.finished {
            return;
        }
        if peer.direct.as_ref().is_some_and(|d| d.2 >= lp_gen) {
            return;
        }
        let name = wire::direct_ring(me, my_gen, b, bgen, lp_gen);
        let Ok(seg) = open_ring(&self.session, &name) else {
            return;
        };
        // The LP waits on its main ring's doorbell: ring that one.
        let bell = open_ring(&self.session, &wire::lp_in_ring(b, bgen))
            .ok()
            .and_then(|s| shmcollab_shm::ring::data_bell_ref(&s).ok());
        let Some(bell) = bell else {
            return;
        };
        let Ok(tx) = Producer::attach(&seg, Some(bell)) else {
            return;
        };
        if let Some((old, _, _)) = peer.direct.as_mut() {
            old.flush();
        }
        peer.direct = Some((tx, Sealer::new(key), lp_gen));
        // For this generation of b only (the third number): a SWITCH still
        // queued when b restarts must not match the new b's ring of the
        // same LP generation.
        self.send_peer_ctl(b, &wire::ctl_msg(ctl::SWITCH, &[lp_gen, my_gen, bgen], &[]));
    }

    /// Peer `s` writes into the direct ring of LP generation `lp_gen` from
    /// now on; all it sent before is routed.
    fn on_switch(&mut self, s: u32, p: &[u8]) {
        let Some(([lp_gen, sgen, to_gen], _)) = wire::ctl_nums::<3>(p) else {
            return;
        };
        if to_gen != self.gen {
            return;
        }
        for d in self.direct_in.iter_mut() {
            if d.peer == s && d.peer_gen == sgen && d.lp_gen < lp_gen {
                d.superseded = true;
            }
        }
        let this = |d: &DirectIn| d.peer == s && d.peer_gen == sgen && d.lp_gen == lp_gen;
        let Some(i) = self.direct_in.iter().position(this) else {
            return;
        };
        self.direct_in[i].switched = true;
        let for_our_lp = lp_gen == self.lp_gen && self.lp_up && self.direct_in[i].drain.is_none();
        // What `s` wrote into older rings goes first; a ring of an LP that
        // is gone we read ourselves, from now on. (This may remove finished
        // rings, so the entry is looked up again.)
        self.drain_direct(Some(s), true);
        if !for_our_lp {
            return;
        }
        let Some(d) = self.direct_in.iter_mut().find(|d| this(d)) else {
            return;
        };
        d.attached = true;
        let m = wire::ctl_msg(ctl::ATTACH, &[s, sgen], d.name.as_bytes());
        let detach = d.peer_dead.then(|| d.name.clone());
        self.lp_ctl(&m);
        if let Some(name) = detach {
            self.detach_lp(&name);
        }
    }

    /// Tell our LP that direct ring `name` gets nothing more.
    fn detach_lp(&mut self, name: &str) {
        self.lp_ctl(&wire::ctl_msg(ctl::DETACH, &[], name.as_bytes()));
    }

    /// Tell manager `peer`, the writer of the direct ring into our LP of
    /// generation `lp_gen`, to go back to the 6-hop path.
    fn revoke(&mut self, peer: u32, lp_gen: u32) {
        self.send_peer_ctl(peer, &wire::ctl_msg(ctl::REVOKE, &[lp_gen, self.gen], &[]));
    }

    /// Peer `b` found garbage in the direct ring we write for its LP and
    /// dropped it: what we queue for that LP goes the 6-hop way again.
    fn on_revoke(&mut self, b: u32, p: &[u8]) {
        let Some(([lp_gen, bgen], _)) = wire::ctl_nums::<2>(p) else {
            return;
        };
        let m = wire::ctl_msg(ctl::UNSWITCH, &[lp_gen, self.gen], &[]);
        let h = ctl_header(self.slot);
        if let Some(peer) = self.peers.get_mut(&b) {
            if peer.gen == bgen && peer.direct.as_ref().is_some_and(|d| d.2 == lp_gen) {
                if let Some((tx, _, _)) = peer.direct.as_mut() {
                    tx.flush();
                }
                // UNSWITCH goes ahead of what now takes the 6-hop way.
                peer.pending.push(&h, &m);
                unsplit_direct(peer);
            }
        }
    }

    /// Peer `s` writes nothing more into its direct ring into our LP of
    /// generation `lp_gen`: what is left there is queued now, before the
    /// frames that follow on `s`'s ring (so this runs while routing them).
    fn on_unswitch(&mut self, s: u32, p: &[u8]) {
        let Some(([lp_gen, sgen], _)) = wire::ctl_nums::<2>(p) else {
            return;
        };
        for d in self.direct_in.iter_mut() {
            if d.peer == s && d.peer_gen == sgen && d.lp_gen == lp_gen {
                d.switched = true;
                d.superseded = true;
            }
        }
        self.drain_direct(Some(s), true);
    }

    /// Peer `s` has a new generation (or left): its old rings into our LP
    /// get nothing more.
    fn direct_peer_gone(&mut self, s: u32, new_gen: Option<u32>) {
        let mut detach = Vec::new();
        let mut take = Vec::new();
        for (i, d) in self.direct_in.iter_mut().enumerate() {
            if d.peer == s && Some(d.peer_gen) != new_gen && !d.peer_dead {
                d.peer_dead = true;
                if d.attached && d.drain.is_none() {
                    detach.push(d.name.clone());
                } else if d.drain.is_none() {
                    take.push(i);
                }
            }
        }
        // Never attached: read what the dead writer left (usually nothing)
        // ourselves, then remove the ring.
        for i in take {
            self.start_drain(i);
        }
        for name in detach {
            self.detach_lp(&name);
        }
    }

    /// Our LP cannot read direct ring `name`: read it ourselves. Frames
    /// its LP consumed before are not read again (the consumer resumes at
    /// the ring's head).
    fn take_over_ring(&mut self, name: &str) {
        if let Some(i) = self.direct_in.iter().position(|d| d.name == name) {
            self.start_drain(i);
        }
    }

    /// Our LP died: read its direct rings ourselves from here on.
    fn take_over_direct(&mut self) {
        let dead = self.lp_gen;
        // Control frames were for the dead LP only.
        self.lp_pending.retain(|h| h.kind != kind::CONTROL);
        for i in 0..self.direct_in.len() {
            if self.direct_in[i].lp_gen == dead {
                self.start_drain(i);
            }
        }
        let last = std::mem::take(&mut self.lp_direct);
        self.lp_direct_base.add(&last);
        self.drain_direct(None, true);
    }

    /// Move the frames of the direct rings we read ourselves (all, or those
    /// of peer `only`) to the LP's queue; `all` ignores the backlog limit.
    /// Rings that are empty and get nothing more are removed.
    fn drain_direct(&mut self, only: Option<u32>, all: bool) -> bool {
        let mut work = false;
        let mut revoke = Vec::new();
        let mut buf = std::mem::take(&mut self.scratch);
        for d in self.direct_in.iter_mut() {
            if only.is_some_and(|s| s != d.peer) {
                continue;
            }
            // Not before the writer's SWITCH: frames it routed through us
            // earlier must be queued first.
            if !(d.switched || d.peer_dead) {
                continue;
            }
            let Some((c, opener, fresh)) = d.drain.as_mut() else {
                continue;
            };
            loop {
                if !all && self.lp_pending.payload_bytes() > BACKLOG {
                    break;
                }
                let f = match c.peek() {
                    Ok(Some(f)) => f,
                    Ok(None) => break,
                    Err(e) => {
                        eprintln!(
                            "shmcollab: direct ring {} is corrupt ({e}); dropped",
                            d.name
                        );
                        if !d.peer_dead {
                            revoke.push((d.peer, d.lp_gen));
                        }
                        self.counters.bad_rings += 1;
                        d.peer_dead = true;
                        d.superseded = true;
                        d.drain = None;
                        break;
                    }
                };
                if *fresh {
                    // The dead LP released what it read: pick up there, at
                    // the sequence of the first frame that authenticates (a
                    // forged head frame cannot push it past the real ones).
                    if let Ok(h) = FrameHeader::decode(&f) {
                        opener.resync(h.seq);
                    }
                }
                let res = opener.open(&f, &mut buf);
                f.release();
                work = true;
                if res.is_ok() {
                    *fresh = false;
                }
                match res {
                    Ok(h) => {
                        let pending = &mut self.lp_pending;
                        let ok = link::unpack(&h, &buf, |h, p| {
                            if h.kind != kind::CONTROL {
                                pending.push(&h, p);
                            }
                        });
                        if !ok {
                            self.counters.bad_batches += 1;
                        }
                    }
                    Err(_) => self.report_dirty = true,
                }
            }
        }
        self.scratch = buf;
        let mut gone = RxStats::default();
        let session = &self.session;
        self.direct_in.retain(|d| {
            let done = match &d.drain {
                Some((c, _, _)) => (d.peer_dead || d.superseded) && !c.has_data(),
                // Dropped as corrupt.
                None => d.peer_dead && d.superseded && !d.attached,
            };
            if done {
                if let Some((_, o, _)) = &d.drain {
                    gone.add(o.stats());
                }
                let _ = std::fs::remove_file(session.segment_path(&d.name));
            }
            !done
        });
        self.direct_gone.add(&gone);
        for (s, lp_gen) in revoke {
            self.revoke(s, lp_gen);
        }
        work
    }

    /// Frames the dead LP never took out of its inbound ring go back to the
    /// front of the queue, in order, to be sealed anew for its successor.
    fn reclaim_lp_ring(&mut self) {
        self.lp_tx.flush();
        let Ok(mut c) = Consumer::attach(&self.in_seg) else {
            return;
        };
        let me = wire::manager_endpoint(self.slot, self.gen);
        let lpe = wire::lp_endpoint(self.slot, self.gen, self.lp_gen);
        let mut opener = Opener::new(self.key(me, lpe));
        let mut back = Outbox::new();
        let mut buf = Vec::new();
        while let Ok(Some(f)) = c.peek() {
            if let Ok(h) = FrameHeader::decode(&f) {
                opener.resync(h.seq);
                if let Ok(h) = opener.open(&f, &mut buf) {
                    link::unpack(&h, &buf, |h, p| {
                        // Control frames were for the dead LP only.
                        if h.kind != kind::CONTROL {
                            back.push(&h, p)
                        }
                    });
                }
            }
            f.release();
        }
        self.lp_pending.prepend(back);
    }

    fn on_lp_exit(&mut self) -> anyhow::Result<()> {
        let Some(mut lp) = self.lp.take() else {
            return Ok(());
        };
        let status = lp.child.wait()?;
        drop(lp.pidfd);
        // Whatever it sent before dying is still routed, all of it, before
        // its successor's key replaces the opener.
        self.pump_lp(true)?;
        self.lp_up = false;
        self.reclaim_lp_ring();
        self.take_over_direct();
        let p = self.lp_plan().clone();
        let ok = status.success();
        let stopping = self.flags.stop.load(Ordering::SeqCst);
        let restart = !stopping
            && match p.restart {
                RestartType::Permanent => true,
                RestartType::Transient => !ok,
                RestartType::Temporary => false,
            };
        eprintln!("shmcollab: {} exited ({status})", p.name);
        if restart {
            let now = Instant::now();
            let Some(backoff) = self.restart_times.record(now, &p) else {
                eprintln!(
                    "shmcollab: {} failed for good: {status}, more than {} restarts within {} s",
                    p.name, p.max_restarts, p.within_secs
                );
                let _ = self.registry.set_lp(self.slot, 0, LpState::Failed);
                self.exit = Some(EXIT_LP_FAILED);
                return Ok(());
            };
            self.restarts += 1;
            let _ = self.registry.set_restarts(self.slot, self.restarts);
            let _ = self.registry.set_lp(self.slot, 0, LpState::Restarting);
            self.restart_at = Some(now + backoff);
        } else if ok || stopping {
            let _ = self.registry.set_lp(self.slot, 0, LpState::Exited);
            self.exit = Some(0);
        } else {
            eprintln!(
                "shmcollab: {} failed: {status} (restart = {:?})",
                p.name, p.restart
            );
            let _ = self.registry.set_lp(self.slot, 0, LpState::Failed);
            self.exit = Some(EXIT_LP_FAILED);
        }
        self.report_dirty = true;
        Ok(())
    }

    // ---- routing ------------------------------------------------------

    /// Payload bytes queued towards peers; past [`BACKLOG`] the LP's ring
    /// is left alone, so the LP feels back-pressure instead of this
    /// manager's memory growing.
    fn peer_backlog(&self) -> usize {
        self.peers
            .values()
            .map(|p| p.pending.payload_bytes() + p.direct_pending.payload_bytes())
            .sum()
    }

    /// Take frames out of the LP's ring and route them.
    fn pump_lp(&mut self, all: bool) -> anyhow::Result<bool> {
        let mut work = false;
        // Only traffic towards peers holds the LP back: frames queued for
        // the LP itself must not stop it from sending (it may be blocked in
        // a send while its inbound queue fills). Checked once per turn, not
        // per frame: the limit is soft, a turn adds at most 256 frames.
        if !all && self.peer_backlog() > BACKLOG {
            return Ok(false);
        }
        for _ in 0..if all { usize::MAX } else { 256 } {
            let Some(f) = self.lp_rx.peek().map_err(|e| anyhow!("LP ring: {e}"))? else {
                break;
            };
            let res = self.lp_opener.open(&f, &mut self.scratch);
            f.release();
            work = true;
            let Ok(mut h) = res else {
                self.report_dirty = true;
                continue;
            };
            // The manager stamps the source: an LP cannot claim to be another.
            h.src = self.slot;
            let payload = std::mem::take(&mut self.scratch);
            let me = self.slot;
            let ok = link::unpack(&h, &payload, |mut h, p| {
                h.src = me;
                if h.kind != kind::CONTROL {
                    // Messages to other LPs, not talk with this manager.
                    self.counters.msgs_out += 1;
                    self.counters.bytes_out += p.len() as u64;
                }
                self.route_from_lp(h, p);
            });
            if !ok {
                self.counters.bad_batches += 1;
            }
            self.scratch = payload;
        }
        Ok(work)
    }

    /// Applies the plan's CPU split (if any) to this manager and its LP, once
    /// per LP: at its first frame (READY, as a rule). Until then both run
    /// anywhere, so that starting many of them uses every CPU.
    fn place(&mut self) {
        self.lp_placed = true;
        let (Some(split), Some(lp)) = (&self.plan.cpus, &self.lp) else {
            return;
        };
        set_process_cpus(std::process::id(), &split.managers);
        set_process_cpus(lp.child.id(), &split.lps);
    }

    fn route_from_lp(&mut self, h: FrameHeader, payload: &[u8]) {
        if !self.lp_placed {
            self.place();
        }
        match h.kind {
            kind::DATA | kind::REQUEST | kind::REPLY => {
                let owner = if h.flags & FLAG_DST_LP != 0 {
                    (h.dst < self.plan.lps.len() as u32).then_some(h.dst)
                } else {
                    self.registry.subfn_owner(h.dst)
                };
                match owner {
                    Some(s) if s == self.slot => self.deliver_local(h, payload),
                    Some(s) => self.send_peer(s, h, payload),
                    None => self.counters.dropped += 1,
                }
            }
            kind::BROADCAST => {
                for s in 0..self.plan.lps.len() as u32 {
                    // LPs that ended for good are not "every other LP" any more.
                    let finished = self.peers.get(&s).is_some_and(|p| p.finished);
                    if s != self.slot && !finished {
                        self.send_peer(s, h, payload);
                    }
                }
            }
            kind::CONTROL => match payload.first() {
                Some(&ctl::READY) => {
                    self.lp_ready = true;
                    let pid = self.lp.as_ref().map(|l| l.child.id()).unwrap_or(0);
                    let _ = self.registry.set_lp(self.slot, pid, LpState::Ready);
                    self.registry.changes().notify();
                    self.report_dirty = true;
                }
                Some(&ctl::REPORT) => {
                    let body = &payload[1..];
                    if let Some(i) = body.iter().position(|&b| b == 0) {
                        // Bounded, so that a report always fits a frame
                        // and the status area: 64 keys of <= 64 bytes,
                        // values of <= 1 KiB (longer ones are cut).
                        let k = String::from_utf8_lossy(&body[..i.min(64)]).into_owned();
                        let v_end = body.len().min(i + 1 + 1024);
                        let v = String::from_utf8_lossy(&body[i + 1..v_end]).into_owned();
                        if self.custom.len() < 64 || self.custom.contains_key(&k) {
                            self.custom.insert(k, v);
                        } else {
                            self.counters.dropped += 1;
                        }
                        self.report_dirty = true;
                    }
                }
                Some(&ctl::DETACHED) => {
                    let name = String::from_utf8_lossy(&payload[1..]).into_owned();
                    let session = &self.session;
                    self.direct_in.retain(|d| {
                        let done = d.name == name && d.drain.is_none() && d.peer_dead;
                        if done {
                            let _ = std::fs::remove_file(session.segment_path(&d.name));
                        }
                        !done
                    });
                }
                Some(&ctl::LOST) => {
                    let name = String::from_utf8_lossy(&payload[1..]).into_owned();
                    eprintln!(
                        "shmcollab: {} cannot read the direct ring {name}; its manager reads it",
                        self.lp_plan().name
                    );
                    self.counters.bad_rings += 1;
                    self.report_dirty = true;
                    self.take_over_ring(&name);
                    // Its writer goes back to the 6-hop path; we read what
                    // it left once it says so (UNSWITCH).
                    if let Some(d) = self.direct_in.iter().find(|d| d.name == name) {
                        self.revoke(d.peer, d.lp_gen);
                    }
                }
                Some(&ctl::STATS) => {
                    if let Some(st) = DirectStats::decode(payload) {
                        self.lp_direct = st;
                        self.report_dirty = true;
                    }
                }
                _ => self.counters.dropped += 1,
            },
            _ => self.counters.dropped += 1,
        }
    }

    fn deliver_local(&mut self, h: FrameHeader, payload: &[u8]) {
        // Queued, then written (batched) at the end of the loop's turn.
        self.lp_pending.push(&h, payload);
    }

    fn flush_lp_pending(&mut self) -> bool {
        if !self.lp_up || self.lp_pending.is_empty() {
            return false;
        }
        let (n, bytes, dropped) = self.lp_pending.drain(&mut self.lp_tx, &mut self.lp_sealer);
        self.counters.msgs_in += n as u64;
        self.counters.bytes_in += bytes;
        self.counters.dropped += dropped as u64;
        n + dropped > 0
    }

    fn send_peer(&mut self, s: u32, h: FrameHeader, payload: &[u8]) {
        let peer = self.peers.entry(s).or_insert_with(|| Peer::new(s));
        if peer.finished {
            self.counters.dropped += 1;
            return;
        }
        if peer.direct.is_some() {
            peer.direct_pending.push(&h, payload);
        } else {
            peer.pending.push(&h, payload);
        }
    }

    fn pump_peers(&mut self) -> anyhow::Result<bool> {
        let mut work = false;
        // The map is taken out while frames are routed (routing needs
        // `&mut self` but never touches the peers), put back below; moving
        // the map moves no peer.
        let mut peers = std::mem::take(&mut self.peers);
        for (&s, peer) in peers.iter_mut() {
            {
                // Pending frames out first.
                if let Some((tx, sealer)) = peer.tx.as_mut() {
                    if let Some((h, r)) = peer.report.take() {
                        match link::write_one(tx, sealer, &h, &r) {
                            Ok(true) => work = true,
                            Ok(false) => peer.report = Some((h, r)),
                            Err(_) => self.counters.dropped += 1,
                        }
                    }
                    let (n, _, dropped) = peer.pending.drain(tx, sealer);
                    self.counters.dropped += dropped as u64;
                    work |= n + dropped > 0;
                    tx.flush();
                }
                if let Some((tx, sealer, _)) = peer.direct.as_mut() {
                    if !peer.direct_pending.is_empty() {
                        let (n, _, dropped) = peer.direct_pending.drain(tx, sealer);
                        self.counters.dropped += dropped as u64;
                        work |= n + dropped > 0;
                        tx.flush();
                    }
                }
                let mut scratch = std::mem::take(&mut self.scratch);
                let mut corrupt: Vec<String> = Vec::new();
                let rings = peer.draining.iter_mut().chain(peer.rx.iter_mut());
                for (c, opener, name) in rings {
                    for _ in 0..256 {
                        if self.lp_pending.payload_bytes() > BACKLOG {
                            break;
                        }
                        let f = match c.peek() {
                            Ok(Some(f)) => f,
                            Ok(None) => break,
                            Err(e) => {
                                // Indices or records in shared memory are
                                // garbage: nothing more can be read from it.
                                eprintln!("shmcollab: ring {name} from slot {s} is corrupt ({e}); dropped");
                                corrupt.push(name.clone());
                                break;
                            }
                        };
                        let res = opener.open(&f, &mut scratch);
                        f.release();
                        work = true;
                        if let Ok(h) = res {
                            let ok = link::unpack(&h, &scratch, |mut h, p| {
                                // Stamped by the link: frames on this ring come from peer `s`.
                                h.src = s;
                                self.route_from_peer(h, p);
                            });
                            if !ok {
                                self.counters.bad_batches += 1;
                            }
                        } else {
                            self.report_dirty = true;
                        }
                    }
                }
                self.scratch = scratch;
                if !corrupt.is_empty() {
                    self.counters.bad_rings += corrupt.len() as u64;
                    self.report_dirty = true;
                    peer.draining.retain(|(_, _, n)| !corrupt.contains(n));
                    if peer
                        .rx
                        .as_ref()
                        .is_some_and(|(_, _, n)| corrupt.contains(n))
                    {
                        peer.rx = None;
                    }
                    for n in &corrupt {
                        let _ = std::fs::remove_file(self.session.segment_path(n));
                    }
                }
                // Finished draining old generations: remove their rings.
                peer.draining.retain(|(c, _, name)| {
                    if c.has_data() {
                        true
                    } else {
                        let _ = std::fs::remove_file(self.session.segment_path(name));
                        false
                    }
                });
            }
        }
        self.peers = peers;
        for (src, p) in std::mem::take(&mut self.peer_ctl) {
            match p.first() {
                Some(&ctl::OFFER) => self.on_offer(src, &p),
                Some(&ctl::SWITCH) => self.on_switch(src, &p),
                Some(&ctl::REVOKE) => self.on_revoke(src, &p),
                _ => self.counters.dropped += 1,
            }
        }
        Ok(work)
    }

    fn route_from_peer(&mut self, h: FrameHeader, payload: &[u8]) {
        match h.kind {
            kind::DATA | kind::REQUEST => {
                if self.registry.subfn_owner(h.dst) == Some(self.slot) {
                    self.deliver_local(h, payload);
                } else {
                    self.counters.dropped += 1;
                }
            }
            kind::REPLY | kind::BROADCAST => self.deliver_local(h, payload),
            kind::REPORT => {
                let current = self.coord.map(|(e, _)| e);
                if self.is_coordinator() && current == Some(h.aux) {
                    if let Ok(v) = serde_json::from_slice::<Value>(payload) {
                        self.aggregate.insert(h.src, v);
                        self.publish_dirty = true;
                    }
                }
                // Reports of a stale epoch are ignored.
            }
            kind::CONTROL if payload.first() == Some(&ctl::UNSWITCH) => {
                self.on_unswitch(h.src, payload)
            }
            // Handled once the peers are back in place (see `pump_peers`).
            kind::CONTROL => self.peer_ctl.push((h.src, payload.to_vec())),
            _ => self.counters.dropped += 1,
        }
    }

    // ---- discovery ----------------------------------------------------

    fn ring_all_peers(&self) {
        for s in 0..self.plan.lps.len() as u32 {
            if s != self.slot {
                if let Ok(b) = self.registry.doorbell(s) {
                    b.notify();
                }
            }
        }
    }

    fn discover(&mut self) {
        let seq = self.registry.changes().seq();
        if seq == self.changes_seen {
            return;
        }
        self.changes_seen = seq;
        let mut created = false;
        let mut gone = Vec::new();
        for s in 0..self.plan.lps.len() as u32 {
            if s == self.slot {
                continue;
            }
            let Ok(view) = self.registry.slot(s) else {
                continue;
            };
            let active = view.state == SlotState::Active;
            let peer = self.peers.entry(s).or_insert_with(|| Peer::new(s));
            if active && (!peer.up || peer.gen != view.generation) {
                // A new peer or a new generation of it.
                if let Some(old) = peer.rx.take() {
                    peer.draining.push(old);
                }
                peer.tx = None;
                unsplit_direct(peer);
                // OFFER and SWITCH were for its predecessor.
                peer.pending.retain(|h| h.kind != kind::CONTROL);
                gone.push((s, Some(view.generation)));
                peer.gen = view.generation;
                peer.up = true;
                let name = wire::peer_ring(s, view.generation, self.slot, self.gen);
                let seg = create_ring(&self.session, &name, self.plan.ring_capacity)
                    .or_else(|_| open_ring(&self.session, &name).map_err(|e| anyhow!("{e}")));
                if let Ok(seg) = seg {
                    if let Ok(c) = Consumer::attach(&seg) {
                        let from = wire::manager_endpoint(s, view.generation);
                        let to = wire::manager_endpoint(self.slot, self.gen);
                        let key = self
                            .master
                            .as_ref()
                            .map(|m| link_key(m, self.session.id(), from, to));
                        peer.rx = Some((c, Opener::new(key), name));
                        created = true;
                    }
                }
                if let Ok(b) = self.registry.doorbell(s) {
                    b.notify();
                }
            } else if !active && peer.up {
                peer.up = false;
                peer.tx = None;
                unsplit_direct(peer);
                gone.push((s, None));
                if let Some(old) = peer.rx.take() {
                    peer.draining.push(old);
                }
            }
            // A slot whose LP ended for good never comes back: what is
            // queued for it is dropped and counted, not kept forever.
            let finished = !active && matches!(view.lp_state, LpState::Exited | LpState::Failed);
            peer.finished = finished;
            if finished && !peer.pending.is_empty() {
                self.counters.dropped += peer.pending.len() as u64;
                peer.pending = Outbox::new();
                self.report_dirty = true;
            }
        }
        for (s, new_gen) in gone {
            self.direct_peer_gone(s, new_gen);
            if new_gen.is_some() {
                self.offer_direct(s);
            }
        }
        if created {
            // Our own bump makes the next turn run discover() again, which
            // is harmless; skipping it could miss another manager's change.
            self.registry.changes().notify();
        }
        // Open the rings the peers made for us.
        let master = self.master.as_ref();
        let sid = self.session.id();
        for peer in self.peers.values_mut() {
            if !peer.up || peer.tx.is_some() {
                continue;
            }
            let name = wire::peer_ring(self.slot, self.gen, peer.slot, peer.gen);
            let Ok(seg) = open_ring(&self.session, &name) else {
                continue;
            };
            let Ok(bell) = self.registry.doorbell(peer.slot) else {
                continue;
            };
            // SAFETY: `bell` is the peer slot's doorbell inside the registry
            // segment, which BellRef keeps mapped.
            let bell = unsafe { BellRef::new(self.registry.segment().clone(), bell as *const _) };
            if let Ok(p) = Producer::attach(&seg, Some(bell)) {
                let from = wire::manager_endpoint(self.slot, self.gen);
                let to = wire::manager_endpoint(peer.slot, peer.gen);
                let key = master.map(|m| link_key(m, sid, from, to));
                peer.tx = Some((p, Sealer::new(key)));
            }
        }
        self.elect();
        self.report_dirty = true;
    }

    fn is_coordinator(&self) -> bool {
        self.coord.is_some_and(|(_, s)| s == self.slot)
    }

    /// Claim the coordinator role when it is ours to take.
    fn elect(&mut self) {
        let current = self.registry.coordinator();
        let holder_alive = current.is_some_and(|(_, s)| {
            s == self.slot
                || self
                    .registry
                    .slot(s)
                    .is_ok_and(|v| v.state == SlotState::Active)
        });
        let mine = match self.plan.coordinator {
            CoordinatorChoice::Slot(s) => s == self.slot,
            CoordinatorChoice::Auto => (0..self.slot).all(|s| {
                self.registry
                    .slot(s)
                    .map_or(true, |v| v.state != SlotState::Active)
            }),
        };
        let holder_is_me = current.is_some_and(|(_, s)| s == self.slot);
        if holder_is_me && !mine && self.plan.coordinator == CoordinatorChoice::Auto {
            // A lower slot is live (it registered after us): "auto" means
            // the lowest live slot, so hand the role over.
            if let Some((e, _)) = current {
                if self.registry.resign_coordinator(self.slot, e).is_ok() {
                    self.coord = None;
                    self.aggregate.clear();
                    self.ring_all_peers();
                    return;
                }
            }
        }
        if mine && (!holder_alive || (holder_is_me && self.coord != current)) {
            // Also when an earlier generation of this slot held it: a new
            // manager always takes a new epoch.
            let seen = self.registry.coordinator_epoch();
            if let Ok(e) = self.registry.claim_coordinator(self.slot, seen) {
                self.coord = Some((e, self.slot));
                self.aggregate.clear();
                self.publish_dirty = true;
                return;
            }
        }
        let now = self.registry.coordinator();
        if now != self.coord {
            self.coord = now;
            self.report_dirty = true;
            if !self.is_coordinator() {
                self.aggregate.clear();
            }
        }
    }

    // ---- reports ------------------------------------------------------

    fn report(&self) -> Value {
        let drains = || self.direct_in.iter().filter_map(|d| d.drain.as_ref());
        // Every inbound link's counts: the LP's ring, peers' rings, our dead
        // LP's direct rings we drain, removed ones, and what the LP counted
        // on its direct rings.
        let mut rejects = self.direct_gone;
        rejects.add(self.lp_opener.stats());
        for p in self.peers.values() {
            for (_, o, _) in p.rx.iter().chain(p.draining.iter()) {
                rejects.add(o.stats());
            }
        }
        for (_, o, _) in drains() {
            rejects.add(o.stats());
        }
        // What our LPs, this one and its dead predecessors, said they took
        // from and rejected on direct rings.
        let mut from_lp = self.lp_direct_base;
        from_lp.add(&self.lp_direct);
        rejects.add(&from_lp.rejects);
        let auth_failures = rejects.rejected();
        let lp_state = self
            .registry
            .slot(self.slot)
            .map(|v| format!("{:?}", v.lp_state).to_lowercase())
            .unwrap_or_else(|_| "unknown".into());
        json!({
            "name": self.lp_plan().name,
            "slot": self.slot,
            "generation": self.gen,
            "pid": self.lp.as_ref().map(|l| l.child.id()),
            "manager_pid": std::process::id(),
            "state": lp_state,
            "restarts": self.restarts,
            "subfunctions": self.lp_plan().subfns,
            "msgs_in": self.counters.msgs_in + from_lp.msgs,
            "msgs_out": self.counters.msgs_out,
            "bytes_in": self.counters.bytes_in + from_lp.bytes,
            "bytes_out": self.counters.bytes_out,
            "dropped": self.counters.dropped,
            "bad_batches": self.counters.bad_batches,
            "bad_rings": self.counters.bad_rings,
            "auth_failures": auth_failures,
            "rejected": {
                "truncated": rejects.truncated, "malformed": rejects.malformed,
                "altered": rejects.altered, "forged": rejects.forged,
                "replayed": rejects.replayed, "reordered": rejects.reordered,
            },
            "ring_depth": { "to_lp": self.lp_tx.depth(), "from_lp": self.lp_rx.depth() },
            "pending": self.lp_pending.len()
                + self.peers.values().map(|p| p.pending.len() + p.direct_pending.len()).sum::<usize>(),
            "custom": self.custom,
            "at_ms": monotonic_ms(),
        })
    }

    fn maybe_report(&mut self) {
        let interval = Duration::from_millis(self.plan.report_interval_ms);
        let due = self.last_report.elapsed() >= interval
            || (self.report_dirty && self.last_report.elapsed() >= Duration::from_millis(20));
        if !due {
            return;
        }
        self.last_report = Instant::now();
        self.report_dirty = false;
        let _ = self.registry.heartbeat(self.slot);
        let r = self.report();
        match self.coord {
            Some((_, s)) if s == self.slot => {
                self.aggregate.insert(self.slot, r);
                self.publish_dirty = true;
            }
            Some((epoch, s)) => {
                let h = FrameHeader {
                    kind: kind::REPORT,
                    dst: s,
                    aux: epoch,
                    src: self.slot,
                    ..Default::default()
                };
                let bytes = serde_json::to_vec(&r).unwrap_or_default();
                // Only the newest report matters: it replaces one not sent yet.
                let peer = self.peers.entry(s).or_insert_with(|| Peer::new(s));
                peer.report = Some((h, bytes));
            }
            None => {}
        }
        if self.is_coordinator() {
            self.maybe_publish();
        }
    }

    fn maybe_publish(&mut self) {
        if !self.publish_dirty || self.last_publish.elapsed() < Duration::from_millis(20) {
            return;
        }
        self.publish_dirty = false;
        self.last_publish = Instant::now();
        let (epoch, _) = self.coord.unwrap_or((0, self.slot));
        let mut lps = Vec::new();
        for s in 0..self.plan.lps.len() as u32 {
            let view = self.registry.slot(s).ok();
            let mut v = self.aggregate.get(&s).cloned().unwrap_or_else(|| {
                json!({ "name": self.plan.lps[s as usize].name, "slot": s,
                        "subfunctions": self.plan.lps[s as usize].subfns })
            });
            if let (Some(view), Some(obj)) = (view, v.as_object_mut()) {
                obj.insert(
                    "manager_state".into(),
                    json!(format!("{:?}", view.state).to_lowercase()),
                );
                obj.insert(
                    "state".into(),
                    json!(format!("{:?}", view.lp_state).to_lowercase()),
                );
                obj.insert("restarts".into(), json!(view.restarts));
                if view.state != SlotState::Active {
                    obj.insert("pid".into(), Value::Null);
                }
            }
            lps.push(v);
        }
        let doc = json!({
            "name": self.plan.name,
            "coordinator": { "slot": self.slot, "name": self.lp_plan().name, "epoch": epoch },
            "published_ms": monotonic_ms(),
            "lps": lps,
        });
        let _ = self
            .registry
            .publish_status(&serde_json::to_vec(&doc).unwrap_or_default());
    }

    // ---- the loop -----------------------------------------------------

    fn any_input(&self) -> bool {
        // Input that the loop would leave alone (back-pressure) does not
        // count, or the manager would spin instead of sleeping.
        let lp_full = self.lp_pending.payload_bytes() > BACKLOG;
        let backlogged = self.peer_backlog() > BACKLOG;
        (self.lp_rx.has_data() && !backlogged)
            || (!lp_full
                && self.peers.values().any(|p| {
                    p.rx.as_ref().is_some_and(|(c, _, _)| c.has_data())
                        || p.draining.iter().any(|(c, _, _)| c.has_data())
                }))
            || (!lp_full
                && self
                    .direct_in
                    .iter()
                    .any(|d| d.drain.as_ref().is_some_and(|(c, _, _)| c.has_data())))
            || (self.flags.stop.load(Ordering::Relaxed) && !self.stop_seen)
            || self.flags.lp_exited.load(Ordering::Relaxed)
            || self.registry.changes().seq() != self.changes_seen
    }

    fn event_loop(&mut self) -> anyhow::Result<i32> {
        let mut stop_deadline: Option<Instant> = None;
        loop {
            self.stop_seen = stop_deadline.is_some();
            self.discover();
            let mut work = self.pump_lp(false)?;
            work |= self.pump_peers()?;
            // Only rings we read ourselves (rare: a dead or failing LP);
            // every peer has a direct ring, so `direct_in` is never empty.
            if self.direct_in.iter().any(|d| d.drain.is_some()) {
                work |= self.drain_direct(None, false);
            }
            work |= self.flush_lp_pending();
            self.lp_tx.flush();
            if self.flags.lp_exited.swap(false, Ordering::SeqCst) {
                self.on_lp_exit()?;
                work = true;
            }
            if let Some(t) = self.restart_at {
                if Instant::now() >= t && stop_deadline.is_none() {
                    self.restart_at = None;
                    if let Err(e) = self.spawn_lp() {
                        eprintln!("shmcollab: cannot restart {}: {e:#}", self.lp_plan().name);
                        self.exit = Some(EXIT_LP_FAILED);
                    }
                    work = true;
                }
            }
            if self.flags.stop.load(Ordering::SeqCst) && stop_deadline.is_none() {
                stop_deadline = Some(Instant::now() + Duration::from_millis(self.plan.grace_ms));
                self.restart_at = None;
                match &self.lp {
                    Some(lp) => {
                        let _ = rustix::process::pidfd_send_signal(
                            lp.pidfd.as_fd(),
                            rustix::process::Signal::TERM,
                        );
                    }
                    None => self.exit = Some(self.exit.unwrap_or(0)),
                }
            }
            if let Some(d) = stop_deadline {
                if Instant::now() >= d {
                    if let Some(lp) = &self.lp {
                        let _ = rustix::process::pidfd_send_signal(
                            lp.pidfd.as_fd(),
                            rustix::process::Signal::KILL,
                        );
                    }
                }
            }
            self.maybe_report();
            // Reports from peers are published within 20 ms, not only when
            // our own report is due (the wait below wakes for it).
            if self.publish_dirty && self.is_coordinator() {
                self.maybe_publish();
            }
            if let Some(code) = self.exit {
                return Ok(self.shutdown(code));
            }
            // Another full turn only if input is waiting: else the wait
            // below (which checks for input first) is cheaper than a turn.
            if work && self.any_input() {
                continue;
            }
            // Sleep until a frame, a registry change, a signal or a timer.
            let mut timeout = Duration::from_millis(self.plan.report_interval_ms);
            if let Some(t) = self.restart_at {
                timeout = timeout.min(t.saturating_duration_since(Instant::now()));
            }
            if stop_deadline.is_some() {
                timeout = timeout.min(Duration::from_millis(10));
            }
            let blocked = !self.lp_pending.is_empty() && self.lp_up
                || self.peers.values().any(|p| {
                    !p.pending.is_empty() && p.tx.is_some()
                        || !p.direct_pending.is_empty() && p.direct.is_some()
                });
            if blocked {
                // A full ring: its consumer frees space without ringing us.
                timeout = timeout.min(Duration::from_micros(200));
            }
            if self.report_dirty || self.publish_dirty {
                timeout = timeout.min(Duration::from_millis(20));
            }
            if self
                .direct_in
                .iter()
                .any(|d| d.drain.is_some() && !d.peer_dead && !d.superseded)
            {
                // Rings of our dead LP that a live peer still writes: it
                // rings the LP's doorbell, not ours.
                timeout = timeout.min(Duration::from_millis(1));
            }
            let this = &*self;
            let bell = this
                .registry
                .doorbell(this.slot)
                .map_err(|e| anyhow!("{e}"))?;
            bell.wait_until(WaitStrategy::default(), Some(timeout), || {
                this.any_input().then_some(())
            });
        }
    }

    fn shutdown(&mut self, code: i32) -> i32 {
        // Give queued frames to live peers a moment to go out.
        let until = Instant::now() + Duration::from_millis(500);
        while Instant::now() < until
            && self.peers.values().any(|p| {
                p.up && (p.tx.is_some() && !p.pending.is_empty()
                    || p.direct.is_some() && !p.direct_pending.is_empty())
            })
        {
            let _ = self.pump_peers();
            std::thread::sleep(Duration::from_millis(1));
        }
        self.last_report = Instant::now() - Duration::from_secs(3600);
        self.report_dirty = true;
        self.maybe_report();
        if self.is_coordinator() {
            self.publish_dirty = true;
            self.last_publish = Instant::now() - Duration::from_secs(1);
            self.maybe_publish();
            if let Some((e, _)) = self.coord {
                let _ = self.registry.resign_coordinator(self.slot, e);
            }
        }
        let _ = self.registry.release_slot(self.slot, self.gen);
        self.registry.changes().notify();
        self.ring_all_peers();
        code
    }
}

/// Header of a control frame from manager `slot`.
fn ctl_header(slot: u32) -> FrameHeader {
    FrameHeader {
        kind: kind::CONTROL,
        src: slot,
        ..Default::default()
    }
}

/// The peer's manager changed: its LP's direct ring is gone with it; what
/// waits for it goes the 6-hop way, after what already waits there.
fn unsplit_direct(peer: &mut Peer) {
    peer.direct = None;
    if !peer.direct_pending.is_empty() {
        let later = std::mem::take(&mut peer.direct_pending);
        later.for_each(|h, p| peer.pending.push(&h, p));
    }
}

impl Peer {
    fn new(slot: u32) -> Peer {
        Peer {
            slot,
            gen: 0,
            up: false,
            rx: None,
            draining: Vec::new(),
            tx: None,
            pending: Outbox::new(),
            report: None,
            finished: false,
            direct: None,
            direct_pending: Outbox::new(),
        }
    }
}

pub use crate::plan::resolve_program;
