//! The supervisor's one event loop: epoll over a signalfd, one pidfd per
//! manager and the managers' output pipes, with timers for back-offs,
//! stop deadlines and the placement governor.
//!
//! The loop owns the processes and fds; what to do with a manager is
//! decided by its state machine ([`Child`]), to which the loop hands every
//! event and whose actions it performs. What belongs to the whole
//! collaboration is here: the first failure, whether a stop was asked for,
//! and the stop itself, one manager at a time in reverse start order.

use super::machine::{Action, Child, Cx, Event, State};
use super::output::{Outputs, OUT_BASE};
use super::spawn::{spawn_all, Manager, SpawnError, Spawner};
use crate::placement::Governor;
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use rustix::event::epoll;
use shmcollab_runtime::plan::Plan;
use shmcollab_shm::registry::Registry;
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

/// Epoll tag of the signalfd.
const TAG_SIGNAL: u64 = u64::MAX;
/// Longest sleep when no timer is due.
const IDLE: Duration = Duration::from_secs(3600);
/// How often the registry's fixed parts are checked and put back.
const HEAL_EVERY: Duration = Duration::from_millis(100);

/// What woke the loop, by epoll tag.
enum Source {
    /// SIGINT, SIGTERM or SIGHUP.
    Signal,
    /// An output pipe (its tag).
    Output(u64),
    /// The pidfd of the manager in this slot.
    Manager(usize),
}

impl Source {
    fn of(tag: u64) -> Source {
        if tag == TAG_SIGNAL {
            Source::Signal
        } else if tag >= OUT_BASE {
            Source::Output(tag)
        } else {
            Source::Manager(tag as usize)
        }
    }
}

/// Block the stop signals and read them from a signalfd instead.
pub(super) fn block_signals() -> nix::Result<SignalFd> {
    let mut set = SigSet::empty();
    for s in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        set.add(s);
    }
    nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&set), None)?;
    SignalFd::with_flags(&set, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
}

/// How the collaboration ended.
pub(super) struct Outcome {
    /// The first failure, if any.
    pub(super) failure: Option<String>,
    /// Whether a signal asked for the stop.
    pub(super) stop_requested: bool,
}

/// The supervisor's state while the collaboration runs.
pub(super) struct Supervisor<'a> {
    plan: &'a Plan,
    registry: &'a Registry,
    spawner: Spawner,
    ep: OwnedFd,
    sigfd: SignalFd,
    /// The state machine of each slot's manager.
    children: Vec<Child>,
    /// The process of each slot's manager, while there is one.
    managers: Vec<Option<Manager>>,
    outputs: Outputs,
    governor: Option<Governor>,
    failure: Option<String>,
    stop_requested: bool,
    /// Slots still to stop once the stop began, popped from the back.
    stop_order: Option<Vec<usize>>,
    /// The registry's fixed parts as made, and when to put them back next
    /// (any process of the user can write there).
    golden: shmcollab_shm::registry::Golden,
    next_heal: Instant,
    healed: usize,
}

impl<'a> Supervisor<'a> {
    /// A supervisor for the LPs of `plan`, nothing spawned yet.
    pub(super) fn new(
        plan: &'a Plan,
        registry: &'a Registry,
        spawner: Spawner,
        sigfd: SignalFd,
    ) -> rustix::io::Result<Supervisor<'a>> {
        let ep = epoll::create(epoll::CreateFlags::CLOEXEC)?;
        epoll::add(
            &ep,
            &sigfd,
            epoll::EventData::new_u64(TAG_SIGNAL),
            epoll::EventFlags::IN,
        )?;
        let width = plan.lps.iter().map(|l| l.name.len()).max().unwrap_or(4);
        let grace = Duration::from_millis(plan.grace_ms);
        Ok(Supervisor {
            plan,
            registry,
            spawner,
            ep,
            sigfd,
            children: plan
                .lps
                .iter()
                .map(|lp| Child::new(lp.clone(), grace))
                .collect(),
            managers: plan.lps.iter().map(|_| None).collect(),
            outputs: Outputs::new(width),
            governor: (plan.cpus.clone()).map(|s| Governor::new(s, plan.placement)),
            failure: None,
            stop_requested: false,
            stop_order: None,
            golden: registry.golden(),
            next_heal: Instant::now() + HEAL_EVERY,
            healed: 0,
        })
    }

    /// Spawn every manager (large collaborations by several threads at
    /// once), then watch them in slot order; the first failure ends the
    /// launch.
    pub(super) fn start_all(&mut self) -> Result<(), SpawnError> {
        let spawned = spawn_all(&self.spawner, self.plan, self.children.len());
        for (slot, m) in spawned.into_iter().enumerate() {
            self.watch(slot, m?)?;
            self.feed(slot, Event::Spawned);
        }
        Ok(())
    }

    /// Run until every manager is done.
    pub(super) fn run(mut self) -> Outcome {
        let mut events: Vec<epoll::Event> = Vec::with_capacity(64);
        loop {
            let timeout = self.timeout();
            self.wait(&mut events, timeout);
            for ev in events.iter().copied() {
                match Source::of(ev.data.u64()) {
                    Source::Signal => self.on_signals(),
                    Source::Output(tag) => self.outputs.pump(&self.ep, tag),
                    Source::Manager(slot) => self.on_exit(slot),
                }
            }
            // Back-offs and stop deadlines due (only those: a timer event
            // to every manager at every wake-up showed in the idle CPU of
            // hundreds of LPs; the machine acts on a timer only once due).
            let now = Instant::now();
            for slot in 0..self.children.len() {
                if self.children[slot].due().is_some_and(|t| t <= now) {
                    self.feed(slot, Event::Timer);
                }
            }
            self.stop_step();
            if self.children.iter().all(|c| c.state() == State::Exited) {
                break;
            }
        }
        self.outputs.drain(&self.ep);
        Outcome {
            failure: self.failure,
            stop_requested: self.stop_requested,
        }
    }

    /// Until the next timer: a back-off, a stop deadline or the governor
    /// (which looks at the LPs first if it is due).
    fn timeout(&mut self) -> Duration {
        let now = Instant::now();
        // Asleep until a child, a signal or output, unless a timer is due.
        let mut timeout = IDLE;
        for t in self.children.iter().filter_map(Child::due) {
            timeout = timeout.min(t.saturating_duration_since(now));
        }
        if let Some(g) = &mut self.governor {
            if now >= g.due {
                let managers: Vec<(u32, u32)> = (self.managers.iter().enumerate())
                    .filter_map(|(s, m)| Some((s as u32, m.as_ref()?.pid)))
                    .collect();
                g.tick(self.registry, self.plan, &managers);
            }
            timeout = timeout.min(g.due.saturating_duration_since(now));
        }
        if now >= self.next_heal {
            self.heal_registry(now);
        }
        timeout.min(self.next_heal.saturating_duration_since(now))
    }

    /// Put back the registry's fixed parts if another process wrote there.
    fn heal_registry(&mut self, now: Instant) {
        self.next_heal = now + HEAL_EVERY;
        let n = self.registry.heal_fixed(&self.golden);
        if n > 0 {
            if self.healed == 0 {
                eprintln!("shmcollab: another process wrote into the registry: put back (and so on, silently)");
            }
            self.healed += n;
            self.registry.changes().notify();
        }
    }

    fn wait(&mut self, events: &mut Vec<epoll::Event>, timeout: Duration) {
        let ts = rustix::time::Timespec {
            tv_sec: timeout.as_secs() as i64,
            tv_nsec: i64::from(timeout.subsec_nanos()),
        };
        events.clear();
        match epoll::wait(&self.ep, rustix::buffer::spare_capacity(events), Some(&ts)) {
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(e) => {
                // Still stop the children in order rather than leave them
                // to the parent-death signal.
                self.fail(format!("supervisor event loop: {e}"));
            }
        }
    }

    fn on_signals(&mut self) {
        while let Ok(Some(si)) = self.sigfd.read_signal() {
            let sig = Signal::try_from(si.ssi_signo as i32)
                .map(|s| s.as_str())
                .unwrap_or("signal");
            if !self.stop_requested {
                eprintln!("shmcollab: {sig}: stopping {}", self.plan.name);
            }
            self.stop_requested = true;
        }
    }

    /// The pidfd of `slot` is readable: reap, tell the other managers, and
    /// hand the exit to the machine.
    fn on_exit(&mut self, slot: usize) {
        let Some(m) = self.managers[slot].take() else {
            return;
        };
        let _ = epoll::delete(&self.ep, &m.pidfd);
        let status = match m.reap() {
            Ok(status) => status,
            Err(e) => return self.feed(slot, Event::ReapFailed(e.to_string())),
        };
        let _ = self.registry.mark_dead(slot as u32);
        self.registry.changes().notify();
        // Managers sleep on their own doorbells: wake them to see it. Not
        // while the collaboration stops, one manager at a time: each exit
        // woke every other manager, n^2 wake-ups for nothing (they stop
        // next, and see the change at their next timer).
        if !self.shutting_down() {
            for s in 0..self.children.len() as u32 {
                if let Ok(b) = self.registry.doorbell(s) {
                    b.notify();
                }
            }
        }
        self.feed(slot, Event::Exited(status));
    }

    /// Begin the stop on request or failure, then stop the managers one at
    /// a time from the last: each gets its turn once the one after it is
    /// done.
    fn stop_step(&mut self) {
        if self.stop_order.is_none() && self.shutting_down() {
            self.stop_order = Some((0..self.children.len()).collect());
        }
        while let Some(&slot) = self.stop_order.as_ref().and_then(|o| o.last()) {
            if !matches!(self.children[slot].state(), State::Stopping { .. }) {
                self.feed(slot, Event::Stop);
            }
            if self.children[slot].state() != State::Exited {
                break;
            }
            if let Some(order) = &mut self.stop_order {
                order.pop();
            }
        }
    }

    fn shutting_down(&self) -> bool {
        self.stop_requested || self.failure.is_some()
    }

    fn fail(&mut self, reason: String) {
        self.failure.get_or_insert(reason);
    }

    /// Hand `event` to the machine of `slot` and do what it says.
    fn feed(&mut self, slot: usize, event: Event) {
        let cx = Cx {
            now: Instant::now(),
            shutting_down: self.shutting_down(),
        };
        for action in self.children[slot].on(event, cx) {
            match action {
                Action::Spawn => {
                    let answer = match self.spawn(slot) {
                        Ok(()) => Event::Spawned,
                        Err(e) => Event::SpawnFailed(super::error_chain(&e)),
                    };
                    self.feed(slot, answer);
                }
                Action::Signal(sig) => {
                    if let Some(m) = &self.managers[slot] {
                        let _ = rustix::process::pidfd_send_signal(&m.pidfd, sig);
                    }
                }
                Action::Fail(reason) => self.fail(reason),
                Action::Say(line) => eprintln!("{line}"),
            }
        }
    }

    /// Spawn the manager of `slot` and watch its pidfd and pipes.
    fn spawn(&mut self, slot: usize) -> Result<(), SpawnError> {
        let m = self.spawner.spawn(slot as u32)?;
        self.watch(slot, m)
    }

    /// Watch the pidfd and pipes of the manager just spawned for `slot`.
    fn watch(&mut self, slot: usize, mut m: Manager) -> Result<(), SpawnError> {
        epoll::add(
            &self.ep,
            &m.pidfd,
            epoll::EventData::new_u64(slot as u64),
            epoll::EventFlags::IN,
        )?;
        let name = self.children[slot].name().to_owned();
        let (stdout, stderr) = (m.stdout.take(), m.stderr.take());
        self.outputs
            .attach(&self.ep, slot as u32, &name, stdout, stderr)?;
        self.managers[slot] = Some(m);
        Ok(())
    }
}
