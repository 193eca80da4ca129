//! The transaction server on a fault-injecting storage (no processes).
use super::*;
use crate::manager::testctx;
use crate::txn::storage::{CrashImage, Fail, FaultyStorage};
use crate::txn::store::WriteItem;

/// A commit of `key = value` in sub-function 0 from our LP.
fn commit(ctx: &Ctx, corr: u32, key: &[u8], value: &[u8]) -> TxnFrame {
    let set = TxnSet {
        writes: vec![WriteItem {
            subfn: 0,
            key: key.to_vec(),
            value: Some(value.to_vec()),
        }],
        ..Default::default()
    };
    TxnFrame {
        h: FrameHeader {
            kind: kind::TXN,
            src: ctx.slot,
            aux: corr,
            flags: FLAG_MANAGER,
            ..Default::default()
        },
        payload: TxnRequest::Commit { set }.encode(),
        from_lp: true,
    }
}

/// The answers in `out`, by correlation id.
fn answers(out: &mut Outbox) -> Vec<(u32, TxnReply)> {
    out.drain(..)
        .map(|(h, p)| (h.aux, TxnReply::decode(&p).unwrap()))
        .collect()
}

#[test]
fn a_failed_write_fails_the_whole_group_and_a_crash_keeps_only_what_was_acknowledged() {
    let ctx = testctx::ctx(0, 1);
    let fs = FaultyStorage::new();
    let mut srv = TxnServer::open_on(&ctx, fs.clone());
    let mut out = Vec::new();
    // Two commits in one group; the group's write fails (a full disk).
    srv.handle(&ctx, commit(&ctx, 1, b"a", b"1"), &mut out);
    srv.handle(&ctx, commit(&ctx, 2, b"b", b"2"), &mut out);
    assert!(
        out.is_empty(),
        "nothing is answered before the group is durable"
    );
    fs.fail_write(Fail::Once, libc::ENOSPC);
    srv.sync_group_wait(&ctx, &mut out, true);
    let got = answers(&mut out);
    assert_eq!(got.len(), 2);
    assert!(
        got.iter().all(|(_, r)| matches!(r, TxnReply::Failed(_))),
        "{got:?}"
    );
    assert_eq!(
        srv.store.get(0, b"a").unwrap(),
        (None, 0),
        "nothing half applied"
    );
    assert_eq!(srv.report().aborts, 2);
    // The next group works and is acknowledged.
    srv.handle(&ctx, commit(&ctx, 3, b"c", b"3"), &mut out);
    srv.sync_group_wait(&ctx, &mut out, true);
    let got = answers(&mut out);
    assert!(
        matches!(got[..], [(3, TxnReply::Committed { .. })]),
        "{got:?}"
    );
    // A crash (kill -9: unsynced data lost) and a restart: the
    // acknowledged commit is there, the failed ones are not.
    drop(srv);
    let after = fs.crash(CrashImage::KILL);
    let srv = TxnServer::open_on(&ctx, after);
    assert_eq!(srv.store.get(0, b"c").unwrap().0, Some(b"3".to_vec()));
    assert_eq!(srv.store.get(0, b"a").unwrap().0, None);
    assert_eq!(srv.store.get(0, b"b").unwrap().0, None);
}

#[test]
fn no_log_is_made_until_the_first_commit() {
    let ctx = testctx::ctx(0, 1);
    let fs = FaultyStorage::new();
    let mut srv = TxnServer::open_on(&ctx, fs.clone());
    assert_eq!(fs.total_size(), 0, "a preallocated log at start");
    let mut out = Vec::new();
    srv.handle(&ctx, commit(&ctx, 1, b"a", b"1"), &mut out);
    srv.sync_group_wait(&ctx, &mut out, false);
    assert!(matches!(
        answers(&mut out)[..],
        [(1, TxnReply::Committed { .. })]
    ));
    assert!(fs.total_size() > 0);
    drop(srv);
    let srv = TxnServer::open_on(&ctx, fs);
    assert_eq!(srv.store.get(0, b"a").unwrap().0, Some(b"1".to_vec()));
}

#[test]
fn a_second_owner_is_refused_and_serves_nothing() {
    let ctx = testctx::ctx(0, 1);
    let _first = TxnServer::open(&ctx);
    let mut second = TxnServer::open(&ctx);
    let mut out = Vec::new();
    second.handle(&ctx, commit(&ctx, 1, b"a", b"1"), &mut out);
    let got = answers(&mut out);
    assert!(
        matches!(&got[..], [(1, TxnReply::Failed(why))] if why.contains("locked")),
        "{got:?}"
    );
}

#[test]
fn conflicting_commits_in_one_group_one_wins() {
    let ctx = testctx::ctx(0, 1);
    let mut srv = TxnServer::open_on(&ctx, FaultyStorage::new());
    let mut out = Vec::new();
    srv.handle(&ctx, commit(&ctx, 1, b"k", b"1"), &mut out);
    srv.handle(&ctx, commit(&ctx, 2, b"k", b"2"), &mut out);
    // The second finds the key locked by the first (pending): conflict.
    let early = answers(&mut out);
    assert!(
        matches!(early[..], [(2, TxnReply::Conflict(_))]),
        "{early:?}"
    );
    srv.sync_group_wait(&ctx, &mut out, true);
    let got = answers(&mut out);
    assert!(
        matches!(got[..], [(1, TxnReply::Committed { .. })]),
        "{got:?}"
    );
    assert_eq!(srv.store.get(0, b"k").unwrap().0, Some(b"1".to_vec()));
}

#[test]
fn commits_that_arrive_during_a_sync_form_the_next_group_and_its_failure_fails_both() {
    let ctx = testctx::ctx(0, 1);
    let fs = FaultyStorage::new();
    let mut srv = TxnServer::open_on(&ctx, fs.clone());
    let mut out = Vec::new();
    // Group 1's sync goes out (on the syncing thread); commit 2 comes
    // meanwhile and waits for a sync of its own.
    srv.handle(&ctx, commit(&ctx, 1, b"a", b"1"), &mut out);
    srv.sync_group(&ctx, &mut out, &|| true);
    srv.handle(&ctx, commit(&ctx, 2, b"b", b"2"), &mut out);
    srv.sync_group_wait(&ctx, &mut out, true);
    let got = answers(&mut out);
    assert!(
        matches!(
            got[..],
            [
                (1, TxnReply::Committed { .. }),
                (2, TxnReply::Committed { .. })
            ]
        ),
        "{got:?}"
    );
    // Now group 3's fdatasync fails, with commit 4 gathered behind it: the
    // log drops both, so both fail, and neither is there after a crash.
    fs.fail_sync(Fail::Once);
    srv.handle(&ctx, commit(&ctx, 3, b"c", b"3"), &mut out);
    srv.sync_group(&ctx, &mut out, &|| true);
    srv.handle(&ctx, commit(&ctx, 4, b"d", b"4"), &mut out);
    srv.sync_group_wait(&ctx, &mut out, true);
    let got = answers(&mut out);
    assert!(
        matches!(
            got[..],
            [(3, TxnReply::Failed(_)), (4, TxnReply::Failed(_))]
        ),
        "{got:?}"
    );
    assert_eq!(
        srv.store.get(0, b"d").unwrap(),
        (None, 0),
        "nothing half applied"
    );
    drop(srv);
    let srv = TxnServer::open_on(&ctx, fs.crash(CrashImage::KILL));
    assert_eq!(srv.store.get(0, b"b").unwrap().0, Some(b"2".to_vec()));
    assert_eq!(srv.store.get(0, b"c").unwrap().0, None);
    assert_eq!(srv.store.get(0, b"d").unwrap().0, None);
}

#[test]
fn a_local_commit_tells_the_lp_that_its_writes_carry_the_version() {
    let ctx = testctx::ctx(0, 1);
    let mut srv = TxnServer::open_on(&ctx, FaultyStorage::new());
    let mut out = Vec::new();
    srv.handle(&ctx, commit(&ctx, 1, b"a", b"1"), &mut out);
    srv.sync_group_wait(&ctx, &mut out, false);
    let got = answers(&mut out);
    let [(
        1,
        TxnReply::Committed {
            version,
            writes_carry_version: true,
        },
    )] = got[..]
    else {
        panic!("{got:?}");
    };
    assert_eq!(
        srv.store.get(0, b"a").unwrap(),
        (Some(b"1".to_vec()), version)
    );
    // A read-only commit (validated, nothing written) carries no version
    // of writes.
    let set = TxnSet {
        reads: vec![crate::txn::store::ReadItem {
            subfn: 0,
            key: b"a".to_vec(),
            version,
        }],
        ..Default::default()
    };
    let mut f = commit(&ctx, 2, b"a", b"1");
    f.payload = TxnRequest::Commit { set }.encode();
    srv.handle(&ctx, f, &mut out);
    srv.sync_group_wait(&ctx, &mut out, false);
    let got = answers(&mut out);
    assert!(
        matches!(
            got[..],
            [(
                2,
                TxnReply::Committed {
                    writes_carry_version: false,
                    ..
                }
            )]
        ),
        "{got:?}"
    );
}
