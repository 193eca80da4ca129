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
}

impl LoadMode {
    /// The word in shared memory.
    pub const fn as_u32(self) -> u32 {
        match self {
            LoadMode::Unset => 0,
            LoadMode::Compact => 1,
            LoadMode::Spread => 2,
        }
    }

    /// The mode of a word read from shared memory (untrusted: anything
    /// unknown is `Unset`).
    pub const fn from_u32(v: u32) -> LoadMode {
        match v {
            1 => LoadMode::Compact,
            2 => LoadMode::Spread,
            _ => LoadMode::Unset,
        }
    }

    /// How a process waits for input in this mode.
    pub fn strategy(self) -> WaitStrategy {
        match self {
            LoadMode::Compact => WaitStrategy::SLEEP,
            LoadMode::Unset | LoadMode::Spread => WaitStrategy::default(),
        }
    }
}

/// The mode this process follows, as last applied by [`follow`].
static FOLLOWED: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// Make this process follow `mode` in the wake-ups it makes: while
/// compact, a wake-up hands the CPU over
/// ([`crate::doorbell::set_hand_over`]), so that each hop of a round trip
/// on the one CPU runs as soon as it is woken, before the rest of its
/// waker's turn. Cheap (an atomic swap): callers call it at every turn or
/// wait.
pub fn follow(mode: LoadMode) {
    use std::sync::atomic::Ordering::Relaxed;
    if FOLLOWED.swap(mode.as_u32(), Relaxed) != mode.as_u32() {
        crate::doorbell::set_hand_over(mode == LoadMode::Compact);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_round_trip_and_garbage_is_unset() {
        for m in [LoadMode::Unset, LoadMode::Compact, LoadMode::Spread] {
            assert_eq!(LoadMode::from_u32(m.as_u32()), m);
        }
        assert_eq!(LoadMode::from_u32(3), LoadMode::Unset);
        assert_eq!(LoadMode::from_u32(u32::MAX), LoadMode::Unset);
        assert_eq!(LoadMode::Compact.strategy(), WaitStrategy::SLEEP);
    }

    /// Only compact hands the CPU over after a wake-up; the mode read from
    /// a garbage word (`Unset`) does not.
    #[test]
    fn only_compact_hands_over() {
        use crate::doorbell::hand_over;
        follow(LoadMode::Compact);
        assert!(hand_over());
        follow(LoadMode::Spread);
        assert!(!hand_over());
        follow(LoadMode::Compact);
        follow(LoadMode::from_u32(0xdead));
        assert!(!hand_over());
    }
}
