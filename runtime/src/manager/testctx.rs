//! A manager context over a real session and registry, for the parts'
//! unit tests (no processes). The session is removed when it drops.

use super::context::{Ctx, Flags};
use crate::plan::{CoordinatorChoice, LpPlan, Placement, Plan, RestartType};
use shmcollab_shm::auth::MasterKey;
use shmcollab_shm::registry::Registry;
use shmcollab_shm::segment::Session;
use std::sync::atomic::{AtomicU32, Ordering};

/// A collaboration `slots` LPs wide, one sub-function `s/i` per slot
/// hosted by slot i, with every slot claimed; the context of `me`.
pub(super) fn ctx(me: u32, slots: u32) -> Ctx {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let session = Session::create(&format!("mgrtest-{}-{n}", std::process::id())).unwrap();
    let names: Vec<String> = (0..slots).map(|i| format!("s/{i}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let registry = Registry::create(&session, "t", slots, &refs, 1 << 16).unwrap();
    let mut generation = 0;
    for i in 0..slots {
        registry.set_subfn_owner(i, Some(i)).unwrap();
        let g = registry.claim_slot(i, &format!("lp{i}"), 1000 + i).unwrap();
        if i == me {
            generation = g;
        }
    }
    let lps = (0..slots).map(|i| lp(i, &names[i as usize])).collect();
    let plan = Plan {
        name: "t".into(),
        secure: true,
        report_interval_ms: 200,
        coordinator: CoordinatorChoice::Auto,
        state_dir: session.dir().join("state"),
        subfns: names,
        lps,
        ring_capacity: 1 << 12,
        grace_ms: 100,
        placement: Placement::None,
        cpus: None,
        sync: Default::default(),
    };
    let master = MasterKey::from_bytes([9; 32]);
    let flags = std::sync::Arc::new(Flags::default());
    Ctx::new(
        session,
        registry,
        plan,
        (me, generation),
        Some(master),
        flags,
    )
}

fn lp(i: u32, subfn: &str) -> LpPlan {
    LpPlan {
        name: format!("lp{i}"),
        group: "lp".into(),
        command: vec!["true".into()],
        cwd: ".".into(),
        env: Vec::new(),
        subfns: vec![subfn.into()],
        restart: RestartType::Permanent,
        max_restarts: 3,
        within_secs: 10,
        sandbox: false,
        user: None,
    }
}

/// The same collaboration seen from slot `me` (another manager of it).
pub(super) fn peer_of(ctx: &Ctx, me: u32) -> Ctx {
    let session = Session::open(ctx.session.dir()).unwrap();
    let registry = Registry::open(&session).unwrap();
    let generation = registry.slot(me).unwrap().generation;
    let master = MasterKey::from_bytes([9; 32]);
    let flags = std::sync::Arc::new(Flags::default());
    Ctx::new(
        session,
        registry,
        ctx.plan.clone(),
        (me, generation),
        Some(master),
        flags,
    )
}
