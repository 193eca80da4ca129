//! The load mode: how a collaboration's processes wait and where they run,
//! chosen by the supervisor's placement governor from the load it sees.
//!
//! On a machine whose idle CPUs halt, waking a process on another CPU costs
//! tens of µs, while waking one on the same CPU costs a few. A lightly
//! loaded collaboration is therefore fastest, and cheapest, with every
//! process on one CPU, each sleeping at once when it has nothing to do: a
//! process that hands work on and then sleeps gives its CPU to the one it
//! woke. A heavily loaded one needs every CPU, and there a waiter that spins
//! briefly is on a CPU when its work comes.
//! Paired is compact per pair of LP and manager, the pairs over every CPU:
//! for LPs that mostly wait for their own manager (durable commits); the
//! governor chooses it for a busy collaboration whose traffic is that, or
//! the config fixes it.
//!
//! The mode travels as a word: in the registry header (the supervisor writes
//! it, managers read it) and in the wait hint of each LP's inbound ring (its
//! manager copies it there; the LP reads it at every wait). Every copy is
//! untrusted: an unknown value reads as [`LoadMode::Unset`], which waits as
//! before modes existed.

use crate::doorbell::WaitStrategy;

/// How the collaboration runs at the moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LoadMode {
    /// No mode (placement off, or an unknown word): the process's own
    /// [`WaitStrategy::default`].
    #[default]
    Unset,
    /// Light load: every process on one CPU, every wait sleeps at once.
    Compact,
    /// Heavy load: LPs and managers on separate CPUs, waits spin and yield
    /// first ([`WaitStrategy::default`]).
    Spread,
    /// Each LP on the CPU of its own manager, the pairs over every CPU,
    /// every wait a sleep: compact per pair. For LPs that talk mostly to
    /// their own manager and wait long for it (durable commits): the hop
    /// between them is a wake-up on the same CPU, a few µs, where one
    /// across CPUs costs the waker tens of µs on a VM, and no CPU spins
    /// through an fdatasync.
    Paired,
}

impl LoadMode {
    /// The word in shared memory.
    pub const fn as_u32(self) -> u32 {
        match self {
            LoadMode::Unset => 0,
            LoadMode::Compact => 1,
            LoadMode::Spread => 2,
            LoadMode::Paired => 3,
        }
    }

    /// The mode of a word read from shared memory (untrusted: anything
    /// unknown is `Unset`).
    pub const fn from_u32(v: u32) -> LoadMode {
        match v {
            1 => LoadMode::Compact,
            2 => LoadMode::Spread,
            3 => LoadMode::Paired,
            _ => LoadMode::Unset,
        }
    }

    /// How a process waits for input in this mode.
    pub fn strategy(self) -> WaitStrategy {
        match self {
            LoadMode::Compact | LoadMode::Paired => WaitStrategy::SLEEP,
            LoadMode::Unset | LoadMode::Spread => WaitStrategy::default(),
        }
    }
}

/// The mode this process follows, as last applied by [`follow`].
static FOLLOWED: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// Make this process follow `mode` in how it hands its CPU over
/// ([`crate::handover`]): while compact or paired, after a wake-up that
/// woke someone; while spread, after every publish; else never. So each hop of
/// a round trip runs before the rest of the turn of the process before it.
/// Cheap (an atomic swap): callers call it at every turn or wait.
pub fn follow(mode: LoadMode) {
    use crate::handover::{set, HandOver};
    use std::sync::atomic::Ordering::Relaxed;
    if FOLLOWED.swap(mode.as_u32(), Relaxed) != mode.as_u32() {
        set(match mode {
            LoadMode::Compact | LoadMode::Paired => HandOver::AfterWake,
            LoadMode::Spread => HandOver::AfterPublish,
            LoadMode::Unset => HandOver::Off,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_round_trip_and_garbage_is_unset() {
        for m in [
            LoadMode::Unset,
            LoadMode::Compact,
            LoadMode::Spread,
            LoadMode::Paired,
        ] {
            assert_eq!(LoadMode::from_u32(m.as_u32()), m);
        }
        assert_eq!(LoadMode::from_u32(4), LoadMode::Unset);
        assert_eq!(LoadMode::from_u32(u32::MAX), LoadMode::Unset);
        assert_eq!(LoadMode::Compact.strategy(), WaitStrategy::SLEEP);
        assert_eq!(LoadMode::Paired.strategy(), WaitStrategy::SLEEP);
    }

    /// Compact hands the CPU over after a wake-up, spread after a publish;
    /// the mode read from a garbage word (`Unset`) never. A request's send
    /// skips only the hand-over after a wake. (The only test that changes
    /// the process-wide policy.)
    #[test]
    fn each_mode_hands_over_its_way() {
        use crate::handover::{get, without_wake_hand_over, HandOver};
        use std::time::Duration;
        follow(LoadMode::Compact);
        assert_eq!(get(), HandOver::AfterWake);
        assert_eq!(without_wake_hand_over(get), HandOver::Off);
        assert_eq!(get(), HandOver::AfterWake, "restored after the send");
        // No hand-over came back while compact (its hand-over is after a
        // wake, not a publish).
        crate::handover::waited(None);
        crate::handover::after_publish();
        assert!(!crate::handover::take_handed_back());
        follow(LoadMode::Spread);
        assert_eq!(get(), HandOver::AfterPublish);
        assert_eq!(without_wake_hand_over(get), HandOver::AfterPublish);
        // Spread, in a stream: the hand-over after a publish comes back and
        // says so, once (the next wait spins first, see `HANDED_BACK_SPIN`).
        crate::handover::waited(None);
        crate::handover::after_publish();
        assert!(crate::handover::take_handed_back());
        assert!(!crate::handover::take_handed_back(), "taken once");
        // After a long wait, a publish is not in a stream: no hand-over.
        crate::handover::waited(Some((Duration::from_millis(1), std::time::Instant::now())));
        crate::handover::after_publish();
        assert!(!crate::handover::take_handed_back());
        follow(LoadMode::Paired);
        assert_eq!(get(), HandOver::AfterWake);
        follow(LoadMode::Compact);
        follow(LoadMode::from_u32(0xdead));
        assert_eq!(get(), HandOver::Off);
    }
}
