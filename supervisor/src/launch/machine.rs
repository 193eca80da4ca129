//! One supervised manager as a state machine: a table of states by events,
//! kept in one function ([`Child::on`]), the way s6-supervise keeps one.
//!
//! Why a machine: what the supervisor does when a manager exits, when a
//! timer fires or when the collaboration stops depends on what that
//! manager is doing (running, waiting out a back-off, being stopped), and
//! written as a set of Options and bools the combinations nobody thought
//! of are the bugs. Here every (state, event) pair has one answer, the
//! machine touches no process, fd or clock (the event loop brings the time
//! and performs the [`Action`]s), and the tests below drive it with
//! made-up exit statuses and instants.
//!
//! | state / event | Spawned | SpawnFailed | Exited(status) | ReapFailed | Timer (when due) | Stop |
//! | --- | --- | --- | --- | --- | --- | --- |
//! | Starting | Running | Exited, fail | - | - | - | - |
//! | Running | - | - | see below | Exited, fail | - | Stopping, SIGTERM |
//! | Backoff | - | - | - | - | Starting, spawn (shutting down: Exited) | Exited |
//! | Stopping | - | - | see below | Exited, fail | Stopping, SIGKILL | - |
//! | Exited | - | - | - | - | - | - |
//!
//! An exit with status 0 is Exited; with `EXIT_LP_FAILED` Exited and the
//! collaboration fails; any other while shutting down is Exited; any other
//! otherwise is a manager that died: Backoff when its restart intensity
//! allows one more, else Exited and the collaboration fails.
//!
//! `Stop` is the event loop's way of saying "your turn": it stops the
//! managers one at a time, in reverse start order. A child that is not
//! running when its turn comes (backing off, exited) is done at once.

use rustix::process::Signal;
use shmcollab_runtime::manager::EXIT_LP_FAILED;
use shmcollab_runtime::plan::{LpPlan, RestartIntensity};
use std::process::ExitStatus;
use std::time::{Duration, Instant};

/// Added to the grace period before SIGKILL: the manager passes SIGTERM on
/// to its LP and waits the grace period itself, then needs a moment to go.
pub(super) const TERM_MARGIN: Duration = Duration::from_millis(500);
/// Between SIGKILLs of a manager that is still there.
pub(super) const KILL_AGAIN: Duration = Duration::from_secs(5);

/// Where one manager is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum State {
    /// To be spawned (at launch, or at the end of a back-off).
    Starting,
    /// Spawned and not yet reaped.
    Running,
    /// Died; respawned at `until` unless the collaboration stops first.
    Backoff {
        /// When the back-off ends.
        until: Instant,
    },
    /// Signalled to stop; signalled (again) with SIGKILL at `deadline`.
    Stopping {
        /// When to send SIGKILL.
        deadline: Instant,
    },
    /// Done: reaped and not to be restarted.
    Exited,
}

/// What happened to a manager, or what the event loop asks of it.
#[derive(Debug)]
pub(super) enum Event {
    /// It was spawned.
    Spawned,
    /// Spawning it failed (the error, with its causes).
    SpawnFailed(String),
    /// Its pidfd became readable and it was reaped.
    Exited(ExitStatus),
    /// Its pidfd became readable but reaping it failed.
    ReapFailed(String),
    /// Time passed (a back-off or a stop deadline may be due).
    Timer,
    /// Its turn to stop.
    Stop,
}

/// What the event loop does for the machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Action {
    /// Spawn the manager; answer with `Spawned` or `SpawnFailed`.
    Spawn,
    /// Send the manager a signal through its pidfd.
    Signal(Signal),
    /// The collaboration failed for this reason (the first reason wins).
    Fail(String),
    /// Print this line on stderr.
    Say(String),
}

/// What the machine needs to know besides its own state.
#[derive(Debug, Clone, Copy)]
pub(super) struct Cx {
    /// The time of the event.
    pub(super) now: Instant,
    /// Whether the collaboration is stopping (on request or on a failure):
    /// nothing is restarted then.
    pub(super) shutting_down: bool,
}

/// The supervisor's view of one manager (and through it, its LP).
#[derive(Debug)]
pub(super) struct Child {
    lp: LpPlan,
    grace: Duration,
    restarts: RestartIntensity,
    state: State,
}

impl Child {
    /// A manager for `lp`, to be started; stopped with `grace` between
    /// SIGTERM and SIGKILL (plus [`TERM_MARGIN`]).
    pub(super) fn new(lp: LpPlan, grace: Duration) -> Child {
        Child {
            lp,
            grace,
            restarts: RestartIntensity::default(),
            state: State::Starting,
        }
    }

    /// Its LP's name.
    pub(super) fn name(&self) -> &str {
        &self.lp.name
    }

    /// Where it is.
    pub(super) fn state(&self) -> State {
        self.state
    }

    /// When it wants a [`Event::Timer`], if it does.
    pub(super) fn due(&self) -> Option<Instant> {
        match self.state {
            State::Backoff { until } => Some(until),
            State::Stopping { deadline } => Some(deadline),
            _ => None,
        }
    }

    /// The transition function: the next state for `event`, and what the
    /// event loop is to do. Pairs not listed change nothing.
    pub(super) fn on(&mut self, event: Event, cx: Cx) -> Vec<Action> {
        use State::*;
        let (next, actions) = match (self.state, event) {
            (Starting, Event::Spawned) => (Running, vec![]),
            (Starting, Event::SpawnFailed(e)) => (
                Exited,
                vec![Action::Fail(format!(
                    "cannot restart the manager of {}: {e}",
                    self.lp.name
                ))],
            ),
            (Running | Stopping { .. }, Event::Exited(status)) => self.exited(status, cx),
            (Running | Stopping { .. }, Event::ReapFailed(e)) => (
                Exited,
                vec![Action::Fail(format!(
                    "cannot reap the manager of {}: {e}",
                    self.lp.name
                ))],
            ),
            (Running, Event::Stop) => (
                Stopping {
                    deadline: cx.now + self.grace + TERM_MARGIN,
                },
                vec![Action::Signal(Signal::TERM)],
            ),
            (Stopping { deadline }, Event::Timer) if cx.now >= deadline => (
                Stopping {
                    deadline: cx.now + KILL_AGAIN,
                },
                vec![Action::Signal(Signal::KILL)],
            ),
            (Backoff { until }, Event::Timer) if cx.now >= until => match cx.shutting_down {
                true => (Exited, vec![]),
                false => (Starting, vec![Action::Spawn]),
            },
            (Backoff { .. } | Exited, Event::Stop) => (Exited, vec![]),
            (state, _) => (state, vec![]),
        };
        self.state = next;
        actions
    }

    /// A running (or stopping) manager exited with `status`: 0 is done,
    /// [`EXIT_LP_FAILED`] fails the collaboration, anything else is a
    /// manager that died, restarted one_for_one within its intensity
    /// unless the collaboration is stopping.
    fn exited(&mut self, status: ExitStatus, cx: Cx) -> (State, Vec<Action>) {
        let name = &self.lp.name;
        match status.code() {
            Some(0) => (State::Exited, vec![]),
            Some(EXIT_LP_FAILED) => (
                State::Exited,
                vec![Action::Fail(format!("{name} failed for good"))],
            ),
            _ if cx.shutting_down => (State::Exited, vec![]),
            _ => match self.restarts.record(cx.now, &self.lp) {
                None => (
                    State::Exited,
                    vec![Action::Fail(format!(
                        "manager of {name} died ({status}) more than {} times within {} s",
                        self.lp.max_restarts, self.lp.within_secs
                    ))],
                ),
                Some(backoff) => (
                    State::Backoff {
                        until: cx.now + backoff,
                    },
                    vec![Action::Say(format!(
                        "shmcollab: manager of {name} died ({status}); restarting"
                    ))],
                ),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shmcollab_runtime::plan::RestartType;
    use std::os::unix::process::ExitStatusExt;

    fn lp(max_restarts: u32) -> LpPlan {
        LpPlan {
            name: "worker.0".into(),
            group: "worker".into(),
            command: vec!["idle".into()],
            cwd: "/".into(),
            env: vec![],
            subfns: vec!["w".into()],
            restart: RestartType::Permanent,
            max_restarts,
            within_secs: 10,
            sandbox: false,
            user: None,
        }
    }

    fn code(c: i32) -> ExitStatus {
        ExitStatus::from_raw(c << 8)
    }

    fn killed(sig: i32) -> ExitStatus {
        ExitStatus::from_raw(sig)
    }

    fn running(max_restarts: u32, grace_ms: u64) -> (Child, Instant) {
        let t0 = Instant::now();
        let mut c = Child::new(lp(max_restarts), Duration::from_millis(grace_ms));
        assert_eq!(c.state(), State::Starting);
        assert_eq!(c.on(Event::Spawned, cx(t0)), vec![]);
        assert_eq!(c.state(), State::Running);
        (c, t0)
    }

    fn cx(now: Instant) -> Cx {
        Cx {
            now,
            shutting_down: false,
        }
    }

    fn stopping(now: Instant) -> Cx {
        Cx {
            now,
            shutting_down: true,
        }
    }

    #[test]
    fn clean_exit_and_failed_lp() {
        let (mut c, t0) = running(3, 100);
        assert_eq!(c.on(Event::Exited(code(0)), cx(t0)), vec![]);
        assert_eq!(c.state(), State::Exited);

        let (mut c, t0) = running(3, 100);
        let a = c.on(Event::Exited(code(EXIT_LP_FAILED)), stopping(t0));
        assert_eq!(a, vec![Action::Fail("worker.0 failed for good".into())]);
        assert_eq!(c.state(), State::Exited);
    }

    #[test]
    fn died_backs_off_then_restarts_until_the_limit() {
        let (mut c, t0) = running(2, 100);
        for round in 1..=2u32 {
            let a = c.on(Event::Exited(killed(9)), cx(t0));
            assert_eq!(
                a,
                vec![Action::Say(
                    "shmcollab: manager of worker.0 died (signal: 9 (SIGKILL)); restarting".into()
                )]
            );
            let State::Backoff { until } = c.state() else {
                panic!("{:?}", c.state())
            };
            // 10 ms doubling per recent restart.
            assert_eq!(until - t0, Duration::from_millis(10 << round));
            assert_eq!(c.due(), Some(until));
            // Not yet due: nothing.
            assert_eq!(c.on(Event::Timer, cx(t0)), vec![]);
            assert_eq!(c.on(Event::Timer, cx(until)), vec![Action::Spawn]);
            assert_eq!(c.state(), State::Starting);
            assert_eq!(c.on(Event::Spawned, cx(until)), vec![]);
        }
        let a = c.on(Event::Exited(code(1)), cx(t0));
        assert_eq!(
            a,
            vec![Action::Fail(
                "manager of worker.0 died (exit status: 1) more than 2 times within 10 s".into()
            )]
        );
        assert_eq!(c.state(), State::Exited);
    }

    #[test]
    fn nothing_restarts_while_shutting_down() {
        // Dies during a stop: done, no restart recorded.
        let (mut c, t0) = running(3, 100);
        assert_eq!(c.on(Event::Exited(killed(15)), stopping(t0)), vec![]);
        assert_eq!(c.state(), State::Exited);
        // Backing off when the stop begins: done when the back-off ends...
        let (mut c, t0) = running(3, 100);
        c.on(Event::Exited(code(1)), cx(t0));
        let until = c.due().unwrap();
        assert_eq!(c.on(Event::Timer, stopping(until)), vec![]);
        assert_eq!(c.state(), State::Exited);
        // ... or when its turn to stop comes, whichever is first.
        let (mut c, t0) = running(3, 100);
        c.on(Event::Exited(code(1)), cx(t0));
        assert_eq!(c.on(Event::Stop, stopping(t0)), vec![]);
        assert_eq!(c.state(), State::Exited);
    }

    #[test]
    fn stop_is_sigterm_then_sigkill_after_the_grace_period() {
        let (mut c, t0) = running(3, 1000);
        assert_eq!(
            c.on(Event::Stop, stopping(t0)),
            vec![Action::Signal(Signal::TERM)]
        );
        let deadline = t0 + Duration::from_millis(1500);
        assert_eq!(c.state(), State::Stopping { deadline });
        // A second Stop or an early timer changes nothing.
        assert_eq!(c.on(Event::Stop, stopping(t0)), vec![]);
        assert_eq!(c.on(Event::Timer, stopping(t0)), vec![]);
        assert_eq!(
            c.on(Event::Timer, stopping(deadline)),
            vec![Action::Signal(Signal::KILL)]
        );
        assert_eq!(c.due(), Some(deadline + KILL_AGAIN));
        assert_eq!(
            c.on(Event::Timer, stopping(deadline + KILL_AGAIN)),
            vec![Action::Signal(Signal::KILL)]
        );
        assert_eq!(c.on(Event::Exited(killed(9)), stopping(t0)), vec![]);
        assert_eq!(c.state(), State::Exited);
        assert_eq!(c.due(), None);
    }

    #[test]
    fn failures_to_spawn_and_to_reap() {
        let mut c = Child::new(lp(3), Duration::ZERO);
        let t0 = Instant::now();
        let a = c.on(
            Event::SpawnFailed("spawning a manager: EAGAIN".into()),
            cx(t0),
        );
        assert_eq!(
            a,
            vec![Action::Fail(
                "cannot restart the manager of worker.0: spawning a manager: EAGAIN".into()
            )]
        );
        assert_eq!(c.state(), State::Exited);

        let (mut c, t0) = running(3, 100);
        let a = c.on(Event::ReapFailed("ECHILD".into()), cx(t0));
        assert_eq!(
            a,
            vec![Action::Fail(
                "cannot reap the manager of worker.0: ECHILD".into()
            )]
        );
        // An exited child ignores everything.
        for e in [
            Event::Timer,
            Event::Stop,
            Event::Exited(code(0)),
            Event::Spawned,
        ] {
            assert_eq!(c.on(e, cx(t0)), vec![]);
            assert_eq!(c.state(), State::Exited);
        }
    }
}
