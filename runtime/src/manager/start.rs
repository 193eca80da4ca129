//! Starting a manager: the plan and the master key read, the signal
//! thread, the registry slot claimed, the leftovers of earlier generations
//! of the slot removed.

use super::context::{Ctx, Flags};
use crate::plan::Plan;
use crate::wire::{self, RingName};
use anyhow::{anyhow, Context};
use shmcollab_shm::auth::MasterKey;
use shmcollab_shm::registry::Registry;
use shmcollab_shm::segment::Session;
use std::io::Read;
use std::os::fd::FromRawFd;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// The plan and the master key, when the process already holds them (a
/// manager forked from the supervisor without exec).
pub(super) type Given = (Plan, Option<MasterKey>);

/// Everything up to the claimed slot: the manager's context. The plan and
/// the master key are read from the session and [`wire::KEY_FD`] unless
/// `given`.
pub(super) fn context(dir: &Path, slot: u32, given: Option<Given>) -> anyhow::Result<Ctx> {
    not_dumpable().context("making the manager not dumpable")?;
    let session = Session::open(dir).context("opening the session")?;
    let (plan, master) = match given {
        Some(g) => g,
        None => read_plan_and_key(dir)?,
    };
    let name = plan
        .lps
        .get(slot as usize)
        .ok_or_else(|| anyhow!("slot {slot} is not in the plan"))?
        .name
        .clone();
    let registry = Registry::open(&session).context("opening the registry")?;
    let flags = Arc::new(Flags::default());
    spawn_signal_thread(flags.clone(), registry.clone(), slot)?;
    let generation = registry
        .claim_slot(slot, &name, std::process::id())
        .with_context(|| format!("claiming registry slot {slot}"))?;
    // The first generation of a slot has no predecessor: no listing of a
    // directory of thousands of rings (O(n) in every manager at launch).
    if generation > 1 {
        remove_stale_rings(&session, slot, generation);
    }
    // A predecessor killed while asleep left its count behind.
    registry.doorbell(slot)?.reset_sleepers();
    Ok(Ctx::new(
        session,
        registry,
        plan,
        (slot, generation),
        master,
        flags,
    ))
}

/// The plan from the session directory, and the master key from
/// [`wire::KEY_FD`] when frames are sealed.
fn read_plan_and_key(dir: &Path) -> anyhow::Result<Given> {
    let plan = std::fs::read(dir.join(Plan::FILE)).context("reading the plan")?;
    let plan: Plan = serde_json::from_slice(&plan).context("parsing the plan")?;
    let master = if plan.secure {
        Some(read_master_key().context("reading the master key")?)
    } else {
        None
    };
    Ok((plan, master))
}

/// The manager holds the master key: no core dump of it, and no other
/// process of the user may ptrace it or read its memory through /proc
/// (its LP, started by exec, is dumpable again as usual).
fn not_dumpable() -> std::io::Result<()> {
    use rustix::process::{set_dumpable_behavior, DumpableBehavior};
    set_dumpable_behavior(DumpableBehavior::NotDumpable).map_err(Into::into)
}

fn read_master_key() -> anyhow::Result<MasterKey> {
    // SAFETY: the supervisor hands the read end of a pipe down as KEY_FD;
    // nothing else in this process uses that descriptor; we own and close it.
    let mut f = unsafe { std::fs::File::from_raw_fd(wire::KEY_FD) };
    let mut b = [0u8; 32];
    f.read_exact(&mut b)?;
    Ok(MasterKey::take(&mut b))
}

/// SIGTERM, SIGINT and SIGHUP go to a thread that sets the stop flag and
/// rings our doorbell.
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
                Ctx::wake(&reg, slot);
            }
        })?;
    Ok(())
}

/// Remove the rings that earlier generations of this slot made: ours are
/// the ones our manager creates (its LP's two, the rings from peers to us,
/// and the direct rings into our LP).
fn remove_stale_rings(session: &Session, slot: u32, generation: u32) {
    let Ok(rd) = std::fs::read_dir(session.dir()) else {
        return;
    };
    for e in rd.flatten() {
        let name = e.file_name();
        let name = name.to_str().unwrap_or("");
        let Some(ring) = RingName::parse(name) else {
            continue;
        };
        if ring.owner() == slot && ring.owner_gen() != generation {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_manager_is_not_dumpable() {
        // In a child: the flag is per process, and the test runner's own
        // must stay as it is.
        // SAFETY: the child only makes system calls and exits.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            let ok = super::not_dumpable().is_ok()
                && rustix::process::dumpable_behavior()
                    .is_ok_and(|b| b == rustix::process::DumpableBehavior::NotDumpable);
            // SAFETY: leaving the child without running the parent's atexit.
            unsafe { libc::_exit(if ok { 0 } else { 1 }) };
        }
        let mut status = 0;
        // SAFETY: waiting for our own child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
    }
}
