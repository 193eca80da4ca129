//! What our LP reaches, and how: everything by descriptor, nothing by
//! path (issue 11, the LP sandbox; the handover is in `handover.rs`).
//!
//! - At spawn: the two ring segments of `lp_link.rs`, the LP's view
//!   (`lpview.rs`, made here once per manager generation) and the LP's end
//!   of a fresh socketpair, at fixed descriptor numbers, plus the plan's
//!   names and owners in the environment. A new socketpair per LP
//!   generation: a dead LP's unread descriptors go with its socket.
//! - Later: the descriptor of each direct ring, sent on the socket when
//!   `direct.rs` asks for ATTACH, before the ATTACH frame is queued (the
//!   ATTACH path stays the one place where a direct ring reaches the LP).
//! - Now and then ([`LpAccess::sync`]): the coordinator's state copied into
//!   the view, the LP's waiting time from the view into our registry slot.
//! - The sandbox: the Landlock ruleset, built at the first spawn of a
//!   sandboxed LP and kept for its restarts; another user's (uid, gid).

use super::context::Ctx;
use super::direct::DirectIn;
use super::lp_link::LpLink;
use super::lp_proc::SpawnError;
use crate::child::ChildSetup;
use crate::ctl::LpCtl;
use crate::handover::{Fds, Handover, RING_IN_FD, RING_OUT_FD, SOCK_FD, VIEW_FD};
use crate::lpview::{view_name, ViewWriter};
use crate::sandbox::{Level, Sandbox};
use shmcollab_shm::segment::Segment;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

/// The LP's access: its view, the manager's end of the socket, the
/// sandbox.
pub(super) struct LpAccess {
    view: Option<ViewWriter>,
    sock: Option<OwnedFd>,
    sandbox: Option<Sandbox>,
    /// Whether to use Landlock where the kernel has it (decided at start).
    landlock: bool,
    level: Level,
}

/// What a spawn needs from us: the child's setup and the handover text.
pub(super) struct Spawn {
    pub setup: ChildSetup,
    pub handover: String,
    /// The LP's end of the socket: kept open until the spawn returned.
    pub _lp_end: OwnedFd,
}

fn os(what: &'static str) -> impl FnOnce(std::io::Error) -> SpawnError {
    move |source| SpawnError::Os { what, source }
}

impl LpAccess {
    /// `landlock`: false to act as on a kernel without it (the
    /// `SHMCOLAB_LANDLOCK=0` setting, read at the top).
    pub fn new(landlock: bool) -> LpAccess {
        LpAccess {
            view: None,
            sock: None,
            sandbox: None,
            landlock,
            level: Level::Off,
        }
    }

    /// The sandbox of the current LP, as `status` shows it.
    pub fn level_word(&self) -> &'static str {
        self.level.word()
    }

    /// Make what the next LP process gets.
    pub fn prepare(&mut self, ctx: &Ctx, link: &LpLink) -> Result<Spawn, SpawnError> {
        if self.view.is_none() {
            let name = view_name(ctx.slot, ctx.generation);
            let cap = ctx.registry.status_cap();
            let v = ViewWriter::create(&ctx.session, &name, cap)
                .map_err(|e| os("making the LP's view")(std::io::Error::other(e)))?;
            self.view = Some(v);
        }
        self.sync(ctx);
        let (mine, lp_end) = socketpair().map_err(os("making the LP's socket"))?;
        self.sock = Some(mine);
        let plan = ctx.lp_plan();
        let mut setup = ChildSetup::default();
        let (ring_in, ring_out) = link.segments();
        let view = self.view.as_ref().map(ViewWriter::segment);
        let placed = [
            (ring_in.as_fd().as_raw_fd(), RING_IN_FD),
            (ring_out.as_fd().as_raw_fd(), RING_OUT_FD),
            (view.map_or(-1, |v| v.as_fd().as_raw_fd()), VIEW_FD),
            (lp_end.as_raw_fd(), SOCK_FD),
        ];
        for (slot, p) in setup.fds.iter_mut().zip(placed) {
            *slot = Some(p);
        }
        if let Some(user) = &plan.user {
            setup.creds = Some(creds(&plan.name, user)?);
        }
        self.level = Level::Off;
        if plan.sandbox {
            let root = ctx.session.dir().parent().unwrap_or(ctx.session.dir());
            let landlock = self.landlock;
            let sb = self.sandbox.get_or_insert_with(|| {
                Sandbox::inherited(landlock).unwrap_or_else(|| Sandbox::prepare(root, landlock))
            });
            if let Level::Degraded(why) = sb.level() {
                eprintln!(
                    "shmcollab: warning: {} runs in a degraded sandbox: {why}",
                    plan.name
                );
            }
            self.level = sb.level().clone();
            setup.landlock = sb.ruleset_fd();
        }
        Ok(Spawn {
            setup,
            handover: handover(ctx).encode(),
            _lp_end: lp_end,
        })
    }

    /// Before control message `m` is queued for our LP: an ATTACH's ring
    /// goes ahead of it, on the socket.
    pub fn before(&self, m: &LpCtl, direct: &DirectIn) {
        if let LpCtl::Attach { ring, .. } = m {
            if let Some(seg) = direct.segment(ring) {
                self.pass_ring(ring, seg);
            }
        }
    }

    /// Send our LP the descriptor of direct ring `name` (in `seg`), ahead
    /// of the ATTACH that names it. Best effort: if it cannot be sent the
    /// LP reports the ring lost, as for any ring it cannot attach.
    fn pass_ring(&self, name: &str, seg: &Segment) {
        use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
        let Some(sock) = &self.sock else {
            return;
        };
        let fds = [seg.as_fd().as_raw_fd()];
        let cmsg = [ControlMessage::ScmRights(&fds)];
        let iov = [std::io::IoSlice::new(name.as_bytes())];
        let flags = MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL;
        if let Err(e) = sendmsg::<()>(sock.as_raw_fd(), &iov, &cmsg, flags, None) {
            eprintln!("shmcollab: cannot pass the direct ring {name} to the LP: {e}");
        }
    }

    /// Copy the LP's waiting time into our registry slot (the state is
    /// copied when the LP asks: [`LpAccess::serve_view`]).
    pub fn sync(&mut self, ctx: &Ctx) {
        let Some(v) = self.view.as_mut() else {
            return;
        };
        let waited = v.take_wait();
        if waited > 0 {
            let _ = ctx.registry.add_lp_wait(ctx.slot, waited);
        }
    }

    /// The LP asked for the collaboration state.
    pub fn view_wanted(&self) -> bool {
        self.view.as_ref().is_some_and(ViewWriter::wanted)
    }

    /// Copy the collaboration state into the view if the LP asked for it;
    /// true if it did.
    pub fn serve_view(&mut self, ctx: &Ctx) -> bool {
        let Some(v) = self.view.as_mut().filter(|v| v.wanted()) else {
            return false;
        };
        let doc = ctx.registry.read_status().unwrap_or_default();
        v.serve(&doc);
        true
    }
}

/// What the LP reads of the plan.
fn handover(ctx: &Ctx) -> Handover {
    let plan = &ctx.plan;
    Handover {
        session_id: ctx.session.id(),
        fds: Fds::FIXED,
        subfns: plan.subfns.clone(),
        owners: (0..plan.subfns.len() as u32)
            .map(|i| ctx.assign.owner(i))
            .collect(),
        names: plan.lps.iter().map(|l| l.name.clone()).collect(),
    }
}

/// The (uid, gid) of `user` for LP `lp`, if we may switch to it.
fn creds(lp: &str, user: &str) -> Result<(u32, u32), SpawnError> {
    if !crate::sandbox::may_switch_user() {
        return Err(SpawnError::User {
            name: lp.to_owned(),
            why: format!("running as user {user:?} needs root (or CAP_SETUID and CAP_SETGID)"),
        });
    }
    crate::sandbox::lookup_user(user).map_err(|why| SpawnError::User {
        name: lp.to_owned(),
        why,
    })
}

/// A close-on-exec SOCK_SEQPACKET pair (ours, the LP's): message
/// boundaries keep a ring's name and descriptor together.
fn socketpair() -> std::io::Result<(OwnedFd, OwnedFd)> {
    use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
    socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .map_err(std::io::Error::from)
}
