//! The LP's life cycle as one state machine: the phases below, and one
//! function, [`Lifecycle::on`], that takes an event and returns what the
//! manager must do. No processes here: spawning, signalling and the
//! registry are the manager's (see `lp_proc.rs`), so the machine is tested
//! on its own.
//!
//! ```text
//!            Spawned           first frame        READY
//!  Backoff ----------> Running -----------> Placed ------> Ready
//!    ^  |                 \______________________\___________\
//!    |  | Stop                   Exited: restart? | Stop
//!    |  v                          yes: Backoff   v
//!    |  Done <------------------- no: Done     Stopping --Exited--> Done
//! ```

use crate::plan::{LpPlan, RestartIntensity, RestartType};
use shmcollab_shm::registry::LpState;
use std::time::{Duration, Instant};

/// Exit code of a manager whose LP failed for good.
pub const EXIT_LP_FAILED: i32 = 3;

/// Where the LP is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// No LP process; one is started at `until` (at once the first time).
    Backoff {
        /// When to start it.
        until: Instant,
    },
    /// Started; it has sent nothing yet.
    Running,
    /// It sent its first frame: the plan's CPU split applies to it now.
    Placed,
    /// It said READY.
    Ready,
    /// Asked to stop (SIGTERM sent); SIGKILL at `deadline`.
    Stopping {
        /// End of the grace period.
        deadline: Instant,
        /// SIGKILL was sent.
        killed: bool,
    },
    /// Over: the manager exits with this code.
    Done(i32),
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The LP process was started.
    Spawned,
    /// It could not be started.
    SpawnFailed(String),
    /// A frame from the LP (any kind).
    Frame,
    /// The LP said READY.
    Ready,
    /// The LP process ended.
    Exited {
        /// With success.
        ok: bool,
        /// How, for messages.
        status: String,
    },
    /// Time passed (the loop's turn).
    Tick(Instant),
    /// A stop was asked for (signal to the manager).
    Stop(Instant),
}

/// What the manager must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Start the LP process.
    Spawn,
    /// Apply the plan's CPU split to us and the LP.
    Place,
    /// Send SIGTERM to the LP.
    Terminate,
    /// Send SIGKILL to the LP.
    Kill,
    /// Write the LP's state into our registry slot.
    SetState(LpState),
    /// Write the restart count into our registry slot.
    SetRestarts(u32),
    /// Print this, prefixed `shmcollab: `.
    Say(String),
}

/// The machine with what it needs to decide: the LP's restart policy and
/// intensity.
#[derive(Debug)]
pub struct Lifecycle {
    phase: Phase,
    plan: LpPlan,
    grace: Duration,
    intensity: RestartIntensity,
    restarts: u32,
}

impl Lifecycle {
    /// A machine for the LP of `plan`, to be started at once.
    pub fn new(plan: LpPlan, grace: Duration, now: Instant) -> Lifecycle {
        Lifecycle {
            phase: Phase::Backoff { until: now },
            plan,
            grace,
            intensity: RestartIntensity::default(),
            restarts: 0,
        }
    }

    /// The current phase.
    #[cfg(test)]
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// Restarts so far.
    pub fn restarts(&self) -> u32 {
        self.restarts
    }

    /// Whether an LP process exists.
    pub fn is_up(&self) -> bool {
        matches!(
            self.phase,
            Phase::Running | Phase::Placed | Phase::Ready | Phase::Stopping { .. }
        )
    }

    /// The exit code, once done.
    pub fn done(&self) -> Option<i32> {
        match self.phase {
            Phase::Done(code) => Some(code),
            _ => None,
        }
    }

    /// When the machine wants a `Tick` next.
    pub fn deadline(&self) -> Option<Instant> {
        match self.phase {
            Phase::Backoff { until } => Some(until),
            Phase::Stopping {
                deadline,
                killed: false,
            } => Some(deadline),
            _ => None,
        }
    }

    /// Every transition: the new phase is set, the actions returned.
    pub fn on(&mut self, ev: Event) -> Vec<Action> {
        use Phase::*;
        let (next, actions) = match (self.phase, ev) {
            (Done(_), _) => return Vec::new(),
            (Backoff { .. }, Event::Spawned) => (Running, vec![Action::SetState(LpState::Running)]),
            (_, Event::SpawnFailed(why)) => {
                let say = format!("cannot restart {}: {why}", self.plan.name);
                (Done(EXIT_LP_FAILED), vec![Action::Say(say)])
            }
            (Running, Event::Frame) => (Placed, vec![Action::Place]),
            (Running, Event::Ready) => (Ready, ready(true)),
            (Placed, Event::Ready) | (Ready, Event::Ready) => (Ready, ready(false)),
            (Backoff { until }, Event::Tick(now)) if now >= until => {
                (self.phase, vec![Action::Spawn])
            }
            (
                Stopping {
                    deadline,
                    killed: false,
                },
                Event::Tick(now),
            ) if now >= deadline => (
                Stopping {
                    deadline,
                    killed: true,
                },
                vec![Action::Kill],
            ),
            (Backoff { .. }, Event::Stop(_)) => (Done(0), Vec::new()),
            (Running | Placed | Ready, Event::Stop(now)) => {
                let deadline = now + self.grace;
                (
                    Stopping {
                        deadline,
                        killed: false,
                    },
                    vec![Action::Terminate],
                )
            }
            (Stopping { .. }, Event::Exited { .. }) => {
                (Done(0), vec![Action::SetState(LpState::Exited)])
            }
            (Running | Placed | Ready, Event::Exited { ok, status }) => self.exited(ok, &status),
            (phase, _) => (phase, Vec::new()),
        };
        self.phase = next;
        actions
    }

    /// The LP ended on its own: restart it or finish, by its restart type
    /// and intensity.
    fn exited(&mut self, ok: bool, status: &str) -> (Phase, Vec<Action>) {
        let p = &self.plan;
        let restart = match p.restart {
            RestartType::Permanent => true,
            RestartType::Transient => !ok,
            RestartType::Temporary => false,
        };
        if restart {
            let now = Instant::now();
            let Some(backoff) = self.intensity.record(now, p) else {
                let say = format!(
                    "{} failed for good: {status}, more than {} restarts within {} s",
                    p.name, p.max_restarts, p.within_secs
                );
                return failed(say);
            };
            self.restarts += 1;
            let actions = vec![
                Action::SetRestarts(self.restarts),
                Action::SetState(LpState::Restarting),
            ];
            (
                Phase::Backoff {
                    until: now + backoff,
                },
                actions,
            )
        } else if ok {
            (Phase::Done(0), vec![Action::SetState(LpState::Exited)])
        } else {
            failed(format!(
                "{} failed: {status} (restart = {:?})",
                p.name, p.restart
            ))
        }
    }
}

fn ready(place: bool) -> Vec<Action> {
    let mut v = Vec::new();
    if place {
        v.push(Action::Place);
    }
    v.push(Action::SetState(LpState::Ready));
    v
}

fn failed(say: String) -> (Phase, Vec<Action>) {
    (
        Phase::Done(EXIT_LP_FAILED),
        vec![Action::Say(say), Action::SetState(LpState::Failed)],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(restart: RestartType, max_restarts: u32) -> LpPlan {
        LpPlan {
            name: "lp".into(),
            group: "lp".into(),
            command: vec!["true".into()],
            cwd: ".".into(),
            env: Vec::new(),
            subfns: vec!["s".into()],
            restart,
            max_restarts,
            within_secs: 60,
            sandbox: false,
            user: None,
        }
    }

    fn started(restart: RestartType, max: u32) -> (Lifecycle, Instant) {
        let now = Instant::now();
        let mut m = Lifecycle::new(plan(restart, max), Duration::from_millis(100), now);
        assert_eq!(m.on(Event::Tick(now)), [Action::Spawn]);
        assert_eq!(m.on(Event::Spawned), [Action::SetState(LpState::Running)]);
        (m, now)
    }

    fn exit(ok: bool) -> Event {
        Event::Exited {
            ok,
            status: if ok { "exit 0" } else { "exit 1" }.into(),
        }
    }

    #[test]
    fn placed_at_the_first_frame_then_ready() {
        let (mut m, _) = started(RestartType::Permanent, 3);
        assert_eq!(m.on(Event::Frame), [Action::Place]);
        assert_eq!(m.phase(), Phase::Placed);
        assert_eq!(m.on(Event::Frame), []);
        assert_eq!(m.on(Event::Ready), [Action::SetState(LpState::Ready)]);
        assert_eq!(m.phase(), Phase::Ready);
    }

    #[test]
    fn ready_as_the_first_frame_places_too() {
        let (mut m, _) = started(RestartType::Permanent, 3);
        assert_eq!(
            m.on(Event::Ready),
            [Action::Place, Action::SetState(LpState::Ready)]
        );
    }

    #[test]
    fn transient_restarts_on_failure_with_backoff_and_a_limit() {
        let (mut m, _) = started(RestartType::Transient, 2);
        for n in 1..=2 {
            let a = m.on(exit(false));
            assert_eq!(
                a,
                [
                    Action::SetRestarts(n),
                    Action::SetState(LpState::Restarting)
                ]
            );
            let Phase::Backoff { until } = m.phase() else {
                panic!("{:?}", m.phase())
            };
            assert!(!m.is_up());
            assert_eq!(m.deadline(), Some(until));
            // Not before the back-off is over.
            assert_eq!(m.on(Event::Tick(until - Duration::from_millis(1))), []);
            assert_eq!(m.on(Event::Tick(until)), [Action::Spawn]);
            m.on(Event::Spawned);
        }
        let a = m.on(exit(false));
        assert!(
            matches!(&a[0], Action::Say(s) if s.contains("failed for good")),
            "{a:?}"
        );
        assert_eq!(a[1], Action::SetState(LpState::Failed));
        assert_eq!(m.done(), Some(EXIT_LP_FAILED));
        assert_eq!(m.restarts(), 2);
    }

    #[test]
    fn exit_codes_by_restart_type() {
        let (mut m, _) = started(RestartType::Transient, 3);
        assert_eq!(m.on(exit(true)), [Action::SetState(LpState::Exited)]);
        assert_eq!(m.done(), Some(0));
        let (mut m, _) = started(RestartType::Temporary, 3);
        m.on(exit(false));
        assert_eq!(m.done(), Some(EXIT_LP_FAILED));
        let (mut m, _) = started(RestartType::Permanent, 3);
        m.on(exit(true));
        assert!(matches!(m.phase(), Phase::Backoff { .. }));
    }

    #[test]
    fn stop_terminates_then_kills_after_the_grace_period() {
        let (mut m, now) = started(RestartType::Permanent, 3);
        assert_eq!(m.on(Event::Stop(now)), [Action::Terminate]);
        let deadline = now + Duration::from_millis(100);
        assert_eq!(m.deadline(), Some(deadline));
        assert_eq!(m.on(Event::Tick(now)), []);
        assert_eq!(m.on(Event::Tick(deadline)), [Action::Kill]);
        assert_eq!(m.deadline(), None);
        assert_eq!(m.on(Event::Tick(deadline)), []);
        assert!(m.is_up());
        // Even a failure is a clean end once stopping, and never restarted.
        assert_eq!(m.on(exit(false)), [Action::SetState(LpState::Exited)]);
        assert_eq!(m.done(), Some(0));
        assert_eq!(m.on(Event::Tick(deadline)), []);
    }

    #[test]
    fn stop_during_backoff_ends_without_a_restart() {
        let (mut m, now) = started(RestartType::Permanent, 3);
        m.on(exit(false));
        assert_eq!(m.on(Event::Stop(now)), []);
        assert_eq!(m.done(), Some(0));
        assert_eq!(m.on(Event::Tick(now + Duration::from_secs(5))), []);
    }

    #[test]
    fn a_failed_restart_ends_the_manager() {
        let (mut m, _) = started(RestartType::Permanent, 3);
        m.on(exit(false));
        let a = m.on(Event::SpawnFailed("no such file".into()));
        assert!(matches!(&a[0], Action::Say(s) if s.contains("no such file")));
        assert_eq!(m.done(), Some(EXIT_LP_FAILED));
    }
}
