//! The memory's rules, by example and against a model.

use super::*;
use proptest::prelude::*;
use std::collections::BTreeMap;

fn w(subfn: u32, key: &[u8], value: Option<&[u8]>) -> WriteItem {
    WriteItem {
        subfn,
        key: key.to_vec(),
        value: value.map(<[u8]>::to_vec),
    }
}

/// Reads of the keys of `writes` (a read-modify-write).
fn reads_of(writes: &[WriteItem]) -> Vec<ReadItem> {
    writes
        .iter()
        .map(|w| ReadItem {
            subfn: w.subfn,
            key: w.key.clone(),
            version: 0,
        })
        .collect()
}

/// Send a read-modify-write of `writes` and settle it.
fn commit(m: &mut TxnMemory, corr: u32, writes: Vec<WriteItem>, how: Settled) {
    let reads = reads_of(&writes);
    m.sent(corr, writes, &reads, Vec::new());
    m.settle(corr, how);
}

/// Send a read-modify-write of `writes`.
fn send(m: &mut TxnMemory, corr: u32, writes: Vec<WriteItem>) {
    let reads = reads_of(&writes);
    m.sent(corr, writes, &reads, Vec::new());
}

#[test]
fn filled_only_by_an_applied_commit_with_its_version() {
    let mut m = TxnMemory::default();
    send(&mut m, 1, vec![w(0, b"k", Some(b"v1"))]);
    // In flight: not remembered yet.
    assert_eq!(m.recall(0, b"k"), None);
    m.settle(1, Settled::Applied(7));
    let r = m.recall(0, b"k").expect("remembered");
    assert_eq!((r.value.as_deref(), r.version), (Some(&b"v1"[..]), 7));
    // Consumed by the read.
    assert_eq!(m.recall(0, b"k"), None);
    assert_eq!(m.stats().recalled, 1);
}

#[test]
fn a_delete_is_remembered_as_absent() {
    let mut m = TxnMemory::default();
    commit(&mut m, 1, vec![w(3, b"k", None)], Settled::Applied(9));
    let r = m.recall(3, b"k").expect("remembered");
    assert_eq!((r.value, r.version), (None, 9));
}

#[test]
fn two_phase_unknown_and_failed_outcomes_forget_the_written_keys() {
    for how in [Settled::Committed, Settled::Other] {
        let mut m = TxnMemory::default();
        commit(&mut m, 1, vec![w(0, b"k", Some(b"a"))], Settled::Applied(2));
        // A later commit of the key whose version we do not learn.
        commit(&mut m, 2, vec![w(0, b"k", Some(b"b"))], how);
        assert_eq!(m.recall(0, b"k"), None, "{how:?}");
    }
}

#[test]
fn a_conflict_drops_what_it_recalled_and_keeps_the_rest() {
    let mut m = TxnMemory::default();
    commit(
        &mut m,
        1,
        vec![w(0, b"a", Some(b"1")), w(0, b"b", Some(b"2"))],
        Settled::Applied(4),
    );
    let a = m.recall(0, b"a").expect("remembered");
    let writes = vec![w(0, b"a", Some(b"x")), w(0, b"b", Some(b"y"))];
    m.sent(2, writes, &reads_of(&[w(0, b"a", None)]), vec![a]);
    m.settle(2, Settled::Conflict);
    assert_eq!(m.recall(0, b"a"), None);
    // Nothing applied: b's entry still holds.
    assert_eq!(m.recall(0, b"b").map(|r| r.version), Some(4));
    assert_eq!(m.stats().stale, 1);
}

#[test]
fn a_committed_transaction_puts_back_what_it_recalled() {
    let mut m = TxnMemory::default();
    commit(&mut m, 1, vec![w(0, b"a", Some(b"1"))], Settled::Applied(4));
    let a = m.recall(0, b"a").expect("remembered");
    // Read-only: validated by the host, answered without a version of
    // writes.
    let reads = reads_of(&[w(0, b"a", None)]);
    m.sent(2, Vec::new(), &reads, vec![a]);
    m.settle(2, Settled::Committed);
    assert_eq!(m.recall(0, b"a").map(|r| r.version), Some(4));
}

#[test]
fn an_older_answer_does_not_replace_a_newer_entry() {
    let mut m = TxnMemory::default();
    send(&mut m, 1, vec![w(0, b"k", Some(b"old"))]);
    send(&mut m, 2, vec![w(0, b"k", Some(b"new"))]);
    m.settle(2, Settled::Applied(8));
    m.settle(1, Settled::Applied(5));
    let r = m.recall(0, b"k").expect("remembered");
    assert_eq!((r.value.as_deref(), r.version), (Some(&b"new"[..]), 8));
}

#[test]
fn large_values_are_not_remembered() {
    let mut m = TxnMemory::default();
    commit(
        &mut m,
        1,
        vec![w(0, b"k", Some(b"small"))],
        Settled::Applied(1),
    );
    let big = vec![0u8; MAX_REMEMBERED_VALUE + 1];
    commit(&mut m, 2, vec![w(0, b"k", Some(&big))], Settled::Applied(2));
    assert_eq!(m.recall(0, b"k"), None);
}

#[test]
fn bounded_by_entries_and_bytes() {
    let mut m = TxnMemory::default();
    let n = MEMORY_ENTRIES as u32 + 10;
    for i in 0..n {
        commit(
            &mut m,
            i + 1,
            vec![w(0, &i.to_le_bytes(), Some(b"v"))],
            Settled::Applied(u64::from(i) + 1),
        );
    }
    assert_eq!(m.stats().entries, MEMORY_ENTRIES as u64);
    let kept = (0..n)
        .filter(|i| m.recall(0, &i.to_le_bytes()).is_some())
        .count();
    assert_eq!(kept, MEMORY_ENTRIES);

    let mut m = TxnMemory::default();
    let v = vec![1u8; MAX_REMEMBERED_VALUE];
    let fits = MEMORY_BYTES / (MAX_REMEMBERED_VALUE + 4);
    for i in 0..(fits as u32 + 5) {
        commit(
            &mut m,
            i + 1,
            vec![w(0, &i.to_le_bytes(), Some(&v))],
            Settled::Applied(u64::from(i) + 1),
        );
    }
    assert!(m.bytes <= MEMORY_BYTES);
    assert_eq!(m.stats().entries, fits as u64);
}

#[test]
fn commits_past_the_pending_cap_forget_their_keys() {
    let mut m = TxnMemory::default();
    commit(&mut m, 1, vec![w(0, b"k", Some(b"a"))], Settled::Applied(1));
    for corr in 10..10 + MAX_PENDING as u32 {
        send(&mut m, corr, vec![w(1, b"other", Some(b"x"))]);
    }
    // A blind write of a key the memory holds: followed, but past the cap.
    m.sent(99_999, vec![w(0, b"k", Some(b"b"))], &[], Vec::new());
    assert_eq!(m.recall(0, b"k"), None);
    m.settle(99_999, Settled::Applied(50));
    assert_eq!(m.recall(0, b"k"), None, "not followed, not filled");
}

/// One step of a client of the memory against a host (one key space,
/// versions from a counter), with a second writer that the memory does
/// not see.
#[derive(Debug, Clone)]
enum Step {
    /// Our transaction: read `key` (memory or host), then write it (or
    /// not), commit.
    Ours { key: u8, write: Option<u8> },
    /// Our transaction reads `key` and is dropped.
    Abort { key: u8 },
    /// Another LP writes `key`.
    Theirs { key: u8, value: u8 },
    /// Our commit of `key` with an unknown outcome, applied or not.
    Lost { key: u8, value: u8, applied: bool },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (0u8..4, proptest::option::of(any::<u8>()))
            .prop_map(|(key, write)| Step::Ours { key, write }),
        (0u8..4).prop_map(|key| Step::Abort { key }),
        (0u8..4, any::<u8>()).prop_map(|(key, value)| Step::Theirs { key, value }),
        (0u8..4, any::<u8>(), any::<bool>()).prop_map(|(key, value, applied)| Step::Lost {
            key,
            value,
            applied
        }),
    ]
}

proptest! {
    /// Whatever the memory hands out either is what the host holds, or
    /// is caught by the host's validation (its version differs): a read
    /// from memory never lets a stale value commit.
    #[test]
    fn a_stale_recall_never_commits(steps in proptest::collection::vec(step(), 1..60)) {
        let mut m = TxnMemory::default();
        let mut host: BTreeMap<u8, (u8, Version)> = BTreeMap::new();
        let mut next: Version = 1;
        let mut corr = 0u32;
        for s in steps {
            corr += 1;
            match s {
                Step::Ours { key, write } => {
                    let now = host.get(&key).map_or(0, |e| e.1);
                    let (seen, recalled) = match m.recall(0, &[key]) {
                        Some(r) => {
                            // Same version at the host means same value.
                            if r.version == now && now != 0 {
                                prop_assert_eq!(r.value.clone(), Some(vec![host[&key].0]));
                            }
                            (r.version, vec![r])
                        }
                        None => (now, Vec::new()),
                    };
                    let writes: Vec<WriteItem> =
                        write.map(|v| w(0, &[key], Some(&[v]))).into_iter().collect();
                    let reads = reads_of(&[w(0, &[key], None)]);
                    m.sent(corr, writes, &reads, recalled);
                    if seen != now {
                        m.settle(corr, Settled::Conflict);
                        prop_assert!(m.recall(0, &[key]).is_none());
                    } else if let Some(v) = write {
                        host.insert(key, (v, next));
                        m.settle(corr, Settled::Applied(next));
                        next += 1;
                    } else {
                        m.settle(corr, Settled::Committed);
                    }
                }
                Step::Abort { key } => {
                    let _ = m.recall(0, &[key]);
                }
                Step::Theirs { key, value } => {
                    host.insert(key, (value, next));
                    next += 1;
                }
                Step::Lost { key, value, applied } => {
                    // A blind write.
                    m.sent(corr, vec![w(0, &[key], Some(&[value]))], &[], Vec::new());
                    if applied {
                        host.insert(key, (value, next));
                        next += 1;
                    }
                    m.settle(corr, Settled::Other);
                }
            }
            // Every entry left agrees with the host or is older than it.
            for key in 0..4u8 {
                if let Some(e) = m.entries.get(&(0, vec![key])) {
                    let (hv, hver) = host.get(&key).map_or((None, 0), |e| (Some(vec![e.0]), e.1));
                    if e.version == hver {
                        prop_assert_eq!(&e.value, &hv);
                    } else {
                        prop_assert!(e.version < hver);
                    }
                }
            }
        }
    }
}

#[test]
fn blind_writes_of_keys_not_remembered_are_not_followed() {
    let mut m = TxnMemory::default();
    m.sent(1, vec![w(0, b"k", Some(b"v"))], &[], Vec::new());
    assert!(m.pending.is_empty(), "a blind write stream pays nothing");
    m.settle(1, Settled::Applied(3));
    assert_eq!(m.recall(0, b"k"), None);
    // A blind write of a key the memory holds is followed: its entry
    // gets the new version.
    commit(&mut m, 2, vec![w(0, b"k", Some(b"a"))], Settled::Applied(4));
    m.sent(3, vec![w(0, b"k", Some(b"b"))], &[], Vec::new());
    m.settle(3, Settled::Applied(5));
    let r = m.recall(0, b"k").expect("remembered");
    assert_eq!((r.value.as_deref(), r.version), (Some(&b"b"[..]), 5));
}
