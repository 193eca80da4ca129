//! The sub-function assignment table: names (fixed at create time and
//! cached by the handle), owners (a slot index or none) and versions (bumped
//! on every owner change, so a manager can tell that its assignment moved
//! even if it moved back).

use super::layout::{check_name, decode_name, SubfnEntry, MAX_SUBFNS, MAX_SUBFN_NAME_LEN, NO_SLOT};
use super::{Registry, RegistryError};
use std::sync::atomic::Ordering;

/// Check the sub-function names given to `create`: at most [`MAX_SUBFNS`],
/// each 1..=55 bytes without NUL, no name twice. Returns their count.
pub(super) fn check_subfn_names(subfns: &[&str]) -> Result<u32, RegistryError> {
    let n_subfns = u32::try_from(subfns.len())
        .ok()
        .filter(|&n| n <= MAX_SUBFNS)
        .ok_or_else(|| {
            RegistryError::BadConfig(format!(
                "{} sub-functions, at most {MAX_SUBFNS} allowed",
                subfns.len()
            ))
        })?;
    let mut seen = std::collections::HashSet::new();
    for s in subfns {
        check_name(s, MAX_SUBFN_NAME_LEN).map_err(|reason| RegistryError::BadName {
            what: "sub-function",
            name: (*s).to_owned(),
            reason,
        })?;
        if !seen.insert(*s) {
            return Err(RegistryError::BadName {
                what: "sub-function",
                name: (*s).to_owned(),
                reason: "declared twice".into(),
            });
        }
    }
    Ok(n_subfns)
}

impl Registry {
    /// Copy and validate the sub-function names of an opened registry (all
    /// valid and none twice); `corrupt` turns a reason into the error.
    pub(super) fn read_subfn_names(
        &self,
        corrupt: impl Fn(String) -> RegistryError,
    ) -> Result<Vec<String>, RegistryError> {
        let layout = &self.meta.layout;
        let mut names = Vec::with_capacity(layout.max_subfns as usize);
        let mut seen = std::collections::HashSet::new();
        for i in 0..layout.max_subfns {
            let e = self.subfn_entry(i)?;
            let mut bytes = [0u8; MAX_SUBFN_NAME_LEN];
            for (d, s) in bytes.iter_mut().zip(&e.name) {
                *d = s.load(Ordering::Relaxed);
            }
            let len = usize::from(e.name_len.load(Ordering::Relaxed));
            let name = decode_name(len, &bytes, MAX_SUBFN_NAME_LEN)
                .map_err(|r| corrupt(format!("sub-function {i}: {r}")))?;
            if !seen.insert(name.clone()) {
                return Err(corrupt(format!("sub-function {name:?} appears twice")));
            }
            names.push(name);
        }
        Ok(names)
    }

    /// The shared entry of sub-function `index`.
    pub(super) fn subfn_entry(&self, index: u32) -> Result<&SubfnEntry, RegistryError> {
        let count = self.meta.layout.max_subfns;
        if index >= count {
            return Err(RegistryError::NoSuchSubfn { index, count });
        }
        let off = self.meta.layout.subfn_off(index as usize);
        // SAFETY: index < max_subfns, so the entry lies within the validated
        // layout inside the body; off is a multiple of 64 from a 128-aligned
        // base; all fields of SubfnEntry are atomic.
        Ok(unsafe { &*self.seg.body_ptr().add(off).cast::<SubfnEntry>() })
    }

    /// Number of sub-functions.
    pub fn subfn_count(&self) -> u32 {
        self.meta.layout.max_subfns
    }

    /// Name of sub-function `index`.
    pub fn subfn_name(&self, index: u32) -> Result<String, RegistryError> {
        self.meta
            .subfn_names
            .get(index as usize)
            .cloned()
            .ok_or(RegistryError::NoSuchSubfn {
                index,
                count: self.subfn_count(),
            })
    }

    /// Index of the sub-function called `name`.
    pub fn subfn_index(&self, name: &str) -> Option<u32> {
        self.meta
            .subfn_names
            .iter()
            .position(|n| n == name)
            .and_then(|i| u32::try_from(i).ok())
    }

    /// Owner slot of sub-function `index`; `None` if unassigned, if there is
    /// no such sub-function, or if the stored owner is not a valid slot.
    pub fn subfn_owner(&self, index: u32) -> Option<u32> {
        let e = self.subfn_entry(index).ok()?;
        // SYNC: pairs with the AcqRel swap in set_subfn_owner.
        let owner = e.owner.load(Ordering::Acquire);
        (owner < self.max_slots()).then_some(owner)
    }

    /// Version of sub-function `index`'s assignment (bumped on every owner
    /// change).
    pub fn subfn_version(&self, index: u32) -> Result<u32, RegistryError> {
        // SYNC: pairs with the Release fetch_add in set_subfn_owner.
        Ok(self.subfn_entry(index)?.version.load(Ordering::Acquire))
    }

    /// Assign sub-function `index` to `slot` (`None`: unassign). Bumps the
    /// entry's version if the owner changed, and notifies the change counter.
    pub fn set_subfn_owner(&self, index: u32, slot: Option<u32>) -> Result<(), RegistryError> {
        let e = self.subfn_entry(index)?;
        let new = match slot {
            Some(s) => {
                self.slot_ref(s)?;
                s
            }
            None => NO_SLOT,
        };
        // SYNC: AcqRel: publishes what the coordinator did before assigning;
        // pairs with the Acquire load in subfn_owner.
        let old = e.owner.swap(new, Ordering::AcqRel);
        if old != new {
            // SYNC: pairs with the Acquire load in subfn_version.
            e.version.fetch_add(1, Ordering::Release);
            self.changes().notify();
        }
        Ok(())
    }

    /// The sub-functions currently assigned to `slot`.
    pub fn subfns_of(&self, slot: u32) -> Vec<u32> {
        (0..self.subfn_count())
            .filter(|&i| self.subfn_owner(i) == Some(slot))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::test_session as session;

    #[test]
    fn garbage_owner_reads_as_unassigned() {
        let s = session();
        let r = Registry::create(&s, "unit", 4, &["a"], 64).unwrap();
        // A garbage owner reads as unassigned.
        r.subfn_entry(0).unwrap().owner.store(77, Ordering::Relaxed);
        assert_eq!(r.subfn_owner(0), None);
    }
}
