//! The router: where a message goes, decided from its header alone by a
//! pure function, so that it can be tested without processes.
//!
//! Messages are addressed to sub-functions; the registry's assignment table
//! says which slot hosts each (the [`Owners`] trait, implemented by the
//! registry and by a table in tests). A reply is addressed to the slot of
//! the requester (`FLAG_DST_LP`). The sending manager stamps the source
//! before routing, so `h.src` is never the LP's own claim.
//!
//! Transactions: a `TXN` frame addressed to a sub-function (get, scan) goes
//! to the manager hosting it and is served by its transaction server
//! (`Route::Txn`); one flagged `FLAG_MANAGER` goes to a manager itself: from
//! an LP, to its own manager, the transaction's coordinator (commit); from a
//! peer, the two-phase commit between managers. A `TXN_REPLY` flagged
//! `FLAG_MANAGER` answers a manager; otherwise it is addressed to an LP slot,
//! like a reply.

use crate::wire::{FLAG_DST_LP, FLAG_MANAGER};
use shmcollab_shm::frame::{kind, FrameHeader};
use shmcollab_shm::registry::Registry;

/// Where a frame came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Our own LP (its ring to us).
    Lp,
    /// Peer manager `slot` (its ring to us).
    Peer(u32),
    /// Our own transaction server (its replies and two-phase-commit steps).
    Server,
}

/// Where a frame goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// To our LP.
    Local,
    /// To the manager of this slot (and on to its LP).
    Peer(u32),
    /// To every other live LP.
    Broadcast,
    /// Control from our LP to us ([`crate::ctl::LpCtl`]).
    LpControl,
    /// Control from a peer manager to us ([`crate::ctl::PeerCtl`]).
    PeerControl,
    /// A state report for the coordinator.
    Report,
    /// To our transaction server (a request, or a reply to it as a
    /// two-phase-commit coordinator).
    Txn,
    /// Nowhere: counted as dropped.
    Drop(DropReason),
}

/// Why a frame was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// No slot hosts the sub-function (or the slot does not exist).
    NoOwner,
    /// A peer sent us a message for a sub-function we do not host.
    NotOurs,
    /// A frame kind this origin does not send.
    BadKind,
}

/// Who hosts each sub-function.
pub trait Owners {
    /// The slot hosting sub-function `subfn`, if any.
    fn owner(&self, subfn: u32) -> Option<u32>;
}

impl Owners for Registry {
    fn owner(&self, subfn: u32) -> Option<u32> {
        self.subfn_owner(subfn)
    }
}

/// What routing needs to know about this manager.
pub struct Here<'a, O: Owners + ?Sized> {
    /// Our slot.
    pub slot: u32,
    /// Slots in the collaboration.
    pub slots: u32,
    /// The assignment table.
    pub owners: &'a O,
}

/// The route of a frame with header `h` that came from `origin`.
pub fn route<O: Owners + ?Sized>(here: &Here<'_, O>, origin: Origin, h: &FrameHeader) -> Route {
    let to_manager = h.flags & FLAG_MANAGER != 0;
    match (origin, h.kind) {
        (Origin::Lp, kind::DATA | kind::REQUEST | kind::REPLY) => to_owner(here, h, Route::Local),
        (Origin::Lp, kind::TXN) if to_manager => Route::Txn,
        (Origin::Lp, kind::TXN) => to_owner(here, h, Route::Txn),
        (Origin::Lp, kind::BROADCAST) => Route::Broadcast,
        (Origin::Lp, kind::CONTROL) => Route::LpControl,
        (Origin::Server, kind::TXN | kind::TXN_REPLY) if to_manager => to_slot(here, h, Route::Txn),
        (Origin::Server, kind::TXN_REPLY) => to_slot(here, h, Route::Local),
        (Origin::Peer(_), kind::DATA | kind::REQUEST) => hosted_here(here, h, Route::Local),
        (Origin::Peer(_), kind::REPLY | kind::BROADCAST) => Route::Local,
        (Origin::Peer(_), kind::TXN | kind::TXN_REPLY) if to_manager => Route::Txn,
        (Origin::Peer(_), kind::TXN) => hosted_here(here, h, Route::Txn),
        (Origin::Peer(_), kind::TXN_REPLY) => Route::Local,
        (Origin::Peer(_), kind::REPORT) => Route::Report,
        (Origin::Peer(_), kind::CONTROL) => Route::PeerControl,
        _ => Route::Drop(DropReason::BadKind),
    }
}

/// To the owner of `h.dst` (a slot with `FLAG_DST_LP`, else a
/// sub-function's host): `here_route` if that is us.
fn to_owner<O: Owners + ?Sized>(here: &Here<'_, O>, h: &FrameHeader, here_route: Route) -> Route {
    if h.flags & FLAG_DST_LP != 0 {
        return to_slot(here, h, here_route);
    }
    match here.owners.owner(h.dst) {
        Some(s) if s == here.slot => here_route,
        Some(s) => Route::Peer(s),
        None => Route::Drop(DropReason::NoOwner),
    }
}

/// To slot `h.dst`: `here_route` if that is us.
fn to_slot<O: Owners + ?Sized>(here: &Here<'_, O>, h: &FrameHeader, here_route: Route) -> Route {
    match h.dst {
        s if s == here.slot => here_route,
        s if s < here.slots => Route::Peer(s),
        _ => Route::Drop(DropReason::NoOwner),
    }
}

/// `route` if we host sub-function `h.dst` (a peer sent it to us).
fn hosted_here<O: Owners + ?Sized>(here: &Here<'_, O>, h: &FrameHeader, route: Route) -> Route {
    if here.owners.owner(h.dst) == Some(here.slot) {
        route
    } else {
        Route::Drop(DropReason::NotOurs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sub-function i is hosted by slot table[i].
    struct Table(Vec<Option<u32>>);

    impl Owners for Table {
        fn owner(&self, subfn: u32) -> Option<u32> {
            self.0.get(subfn as usize).copied().flatten()
        }
    }

    const TABLE: &[Option<u32>] = &[Some(0), Some(1), None, Some(2)];

    fn r(origin: Origin, k: u8, dst: u32, flags: u16) -> Route {
        let t = Table(TABLE.to_vec());
        let here = Here {
            slot: 1,
            slots: 3,
            owners: &t,
        };
        let h = FrameHeader {
            kind: k,
            dst,
            flags,
            ..Default::default()
        };
        route(&here, origin, &h)
    }

    #[test]
    fn from_the_lp_by_sub_function_owner() {
        for k in [kind::DATA, kind::REQUEST] {
            assert_eq!(r(Origin::Lp, k, 0, 0), Route::Peer(0));
            assert_eq!(r(Origin::Lp, k, 1, 0), Route::Local);
            assert_eq!(r(Origin::Lp, k, 3, 0), Route::Peer(2));
            assert_eq!(r(Origin::Lp, k, 2, 0), Route::Drop(DropReason::NoOwner));
            assert_eq!(r(Origin::Lp, k, 99, 0), Route::Drop(DropReason::NoOwner));
        }
    }

    #[test]
    fn replies_go_to_a_slot() {
        assert_eq!(r(Origin::Lp, kind::REPLY, 2, FLAG_DST_LP), Route::Peer(2));
        assert_eq!(r(Origin::Lp, kind::REPLY, 1, FLAG_DST_LP), Route::Local);
        assert_eq!(
            r(Origin::Lp, kind::REPLY, 3, FLAG_DST_LP),
            Route::Drop(DropReason::NoOwner)
        );
    }

    #[test]
    fn broadcast_control_and_kinds_an_lp_may_not_send() {
        assert_eq!(r(Origin::Lp, kind::BROADCAST, 0, 0), Route::Broadcast);
        assert_eq!(r(Origin::Lp, kind::CONTROL, 0, 0), Route::LpControl);
        // An LP cannot file a state report for the coordinator.
        assert_eq!(
            r(Origin::Lp, kind::REPORT, 0, 0),
            Route::Drop(DropReason::BadKind)
        );
        assert_eq!(
            r(Origin::Lp, kind::BATCH, 0, 0),
            Route::Drop(DropReason::BadKind)
        );
        assert_eq!(r(Origin::Lp, 200, 0, 0), Route::Drop(DropReason::BadKind));
    }

    #[test]
    fn transactions_go_to_the_host_or_to_our_manager() {
        // get/scan: the sub-function's host.
        assert_eq!(r(Origin::Lp, kind::TXN, 1, 0), Route::Txn);
        assert_eq!(r(Origin::Lp, kind::TXN, 3, 0), Route::Peer(2));
        assert_eq!(
            r(Origin::Lp, kind::TXN, 2, 0),
            Route::Drop(DropReason::NoOwner)
        );
        // commit: our own manager coordinates, whatever dst says.
        assert_eq!(r(Origin::Lp, kind::TXN, 3, FLAG_MANAGER), Route::Txn);
        // An LP cannot answer for a transaction server.
        assert_eq!(
            r(Origin::Lp, kind::TXN_REPLY, 1, FLAG_DST_LP),
            Route::Drop(DropReason::BadKind)
        );
        let p = Origin::Peer(0);
        assert_eq!(r(p, kind::TXN, 1, 0), Route::Txn);
        assert_eq!(r(p, kind::TXN, 0, 0), Route::Drop(DropReason::NotOurs));
        assert_eq!(r(p, kind::TXN, 0, FLAG_MANAGER), Route::Txn);
        assert_eq!(r(p, kind::TXN_REPLY, 0, FLAG_MANAGER), Route::Txn);
        assert_eq!(r(p, kind::TXN_REPLY, 1, FLAG_DST_LP), Route::Local);
    }

    #[test]
    fn our_server_answers_lps_and_managers_by_slot() {
        let s = Origin::Server;
        assert_eq!(r(s, kind::TXN_REPLY, 1, FLAG_DST_LP), Route::Local);
        assert_eq!(r(s, kind::TXN_REPLY, 0, FLAG_DST_LP), Route::Peer(0));
        assert_eq!(
            r(s, kind::TXN_REPLY, 9, FLAG_DST_LP),
            Route::Drop(DropReason::NoOwner)
        );
        assert_eq!(r(s, kind::TXN, 2, FLAG_MANAGER), Route::Peer(2));
        assert_eq!(r(s, kind::TXN, 1, FLAG_MANAGER), Route::Txn);
        assert_eq!(r(s, kind::TXN_REPLY, 0, FLAG_MANAGER), Route::Peer(0));
        assert_eq!(r(s, kind::DATA, 0, 0), Route::Drop(DropReason::BadKind));
    }

    #[test]
    fn from_a_peer_only_what_we_host() {
        let p = Origin::Peer(0);
        assert_eq!(r(p, kind::DATA, 1, 0), Route::Local);
        assert_eq!(r(p, kind::REQUEST, 1, 0), Route::Local);
        assert_eq!(r(p, kind::DATA, 0, 0), Route::Drop(DropReason::NotOurs));
        assert_eq!(r(p, kind::DATA, 2, 0), Route::Drop(DropReason::NotOurs));
        assert_eq!(r(p, kind::REPLY, 7, FLAG_DST_LP), Route::Local);
        assert_eq!(r(p, kind::BROADCAST, 0, 0), Route::Local);
        assert_eq!(r(p, kind::REPORT, 0, 0), Route::Report);
        assert_eq!(r(p, kind::CONTROL, 0, 0), Route::PeerControl);
        assert_eq!(r(p, 200, 0, 0), Route::Drop(DropReason::BadKind));
    }
}
