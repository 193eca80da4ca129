//! The registry's part in choosing the load mode: the mode word in the
//! header, which the supervisor's governor writes and managers read, and
//! each slot's count of messages its manager took from its LP, which the
//! governor reads as the collaboration's load.

use super::{Registry, RegistryError};
use crate::load::LoadMode;
use std::sync::atomic::Ordering;

impl Registry {
    /// The collaboration's load mode (untrusted: garbage reads as
    /// [`LoadMode::Unset`]).
    pub fn load_mode(&self) -> LoadMode {
        // Relaxed: the mode publishes nothing else.
        LoadMode::from_u32(self.header().load_mode.load(Ordering::Relaxed))
    }

    /// Set the collaboration's load mode (by the supervisor); a store only
    /// when the word differs, so that doing it every period costs nothing.
    pub fn set_load_mode(&self, mode: LoadMode) {
        let w = &self.header().load_mode;
        // Relaxed: the mode publishes nothing else.
        if w.load(Ordering::Relaxed) != mode.as_u32() {
            w.store(mode.as_u32(), Ordering::Relaxed);
        }
    }

    /// Set the count of messages `slot`'s manager took from its LP.
    pub fn set_lp_msgs(&self, slot: u32, n: u64) -> Result<(), RegistryError> {
        // Relaxed: the count publishes nothing else.
        self.slot_ref(slot)?.lp_msgs.store(n, Ordering::Relaxed);
        Ok(())
    }

    /// Set the count of transaction frames `slot`'s manager took from its
    /// LP and served itself.
    pub fn set_lp_own_txn(&self, slot: u32, n: u64) -> Result<(), RegistryError> {
        // Relaxed: the count publishes nothing else.
        self.slot_ref(slot)?.lp_own_txn.store(n, Ordering::Relaxed);
        Ok(())
    }

    /// Transaction frames `slot`'s manager took from its LP and served
    /// itself (untrusted, as [`Registry::lp_msgs`]).
    pub fn lp_own_txn(&self, slot: u32) -> Result<u64, RegistryError> {
        // Relaxed: the count publishes nothing else.
        Ok(self.slot_ref(slot)?.lp_own_txn.load(Ordering::Relaxed))
    }

    /// Messages `slot`'s manager took from its LP (untrusted: another
    /// process may have written anything here).
    pub fn lp_msgs(&self, slot: u32) -> Result<u64, RegistryError> {
        // Relaxed: the count publishes nothing else.
        Ok(self.slot_ref(slot)?.lp_msgs.load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use crate::load::LoadMode;

    #[test]
    fn mode_and_counts() {
        let s = super::super::test_session();
        let reg = super::Registry::create(&s, "unit", 2, &[], 0).unwrap();
        assert_eq!(reg.load_mode(), LoadMode::Unset);
        reg.set_load_mode(LoadMode::Compact);
        assert_eq!(reg.load_mode(), LoadMode::Compact);
        reg.set_load_mode(LoadMode::Spread);
        assert_eq!(reg.load_mode(), LoadMode::Spread);
        reg.set_lp_msgs(1, 42).unwrap();
        assert_eq!(reg.lp_msgs(1).unwrap(), 42);
        reg.set_lp_own_txn(1, 40).unwrap();
        assert_eq!(
            (reg.lp_own_txn(1).unwrap(), reg.lp_msgs(1).unwrap()),
            (40, 42)
        );
        assert!(reg.lp_own_txn(2).is_err());
        assert_eq!(reg.lp_msgs(0).unwrap(), 0);
        assert!(reg.lp_msgs(2).is_err());
        assert!(reg.set_lp_msgs(2, 1).is_err());
    }
}
