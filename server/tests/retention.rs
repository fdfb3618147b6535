//! The change log is compacted: superseded versions of rows go, and rows deleted longer ago
//! than the retention go with their deletion. A device that synced before such a deletion is
//! told to pull everything again, keeps what it had not sent yet, and converges; a new device
//! pulls the compacted log as its snapshot (SQLite and PostgreSQL).
#![allow(clippy::unwrap_used)]
mod common;
use common::{register, rows, City};
use timebank_core::service::command::*;
use timebank_core::service::{execute, outbox, Ctx};
use timebank_core::sql;
use timebank_core::sync::{self, http::Http};

const DAY: i64 = 86_400_000;

/// On the server, `v1`'s volunteer role deleted and its deletion logged 100 days before `now`
/// (past the retention of 90 days the tests compact with).
async fn remove_volunteer_role_long_ago(c: &City, now: i64) {
    let txn = timebank_core::db::begin_write(&c.db).await.unwrap();
    sql::exec(
        &txn,
        "DELETE FROM member_roles WHERE member_id = 'v1' AND role = 'volunteer'",
        vec![],
    )
    .await
    .unwrap();
    timebank_server::changes::log_changes(&txn, now - 100 * DAY)
        .await
        .unwrap();
    txn.commit().await.unwrap();
}

async fn run(postgres: bool) {
    let Some(c) = City::start(postgres, &["府苑新村"], Default::default()).await else {
        return;
    };
    let http = Http::new(&c.base);
    let (a, b) = (c.device("a").await, c.device("b").await);
    let community = c.boot.community_ids[0].clone();
    let admin = c.boot.admin_id.clone();
    let now = timebank_core::service::now_ms();
    let on = |d: &sea_orm::DatabaseConnection| {
        let d = d.clone();
        let admin = admin.clone();
        async move { Ctx::new(&admin, outbox::device_id(&d).await.unwrap(), now) }
    };
    let ctx_a = on(&a).await;
    execute(
        &a,
        &ctx_a,
        register("v1", "马军", "13800000001", &community, true),
    )
    .await
    .unwrap();
    sync::sync_once(&a, &http).await.unwrap();
    // A profile changed three times, each synced: three more versions of the row in the log.
    for hardship in [true, false, true] {
        execute(
            &a,
            &ctx_a,
            Command::SetHardship {
                member_id: "v1".into(),
                hardship,
            },
        )
        .await
        .unwrap();
        sync::sync_once(&a, &http).await.unwrap();
    }
    for d in [&a, &b] {
        sync::sync_once(d, &http).await.unwrap();
    }
    // B is offline from now on, and registers a resident there.
    execute(
        &b,
        &on(&b).await,
        register("r2", "张桂英", "13700000002", &community, false),
    )
    .await
    .unwrap();
    // Long ago (as far as the log is concerned), the server removed 马军's volunteer role.
    remove_volunteer_role_long_ago(&c, now).await;
    sync::sync_once(&a, &http).await.unwrap();
    let roles = "SELECT member_id AS c0, role AS c1 FROM member_roles ORDER BY member_id, role";
    assert_eq!(
        rows(&a, roles).await,
        rows(&c.db, roles).await,
        "A applied the deletion"
    );

    let logged = "SELECT COUNT(*) AS c0 FROM change_log";
    let before: i64 = rows(&c.db, logged).await[0].parse().unwrap();
    let done = timebank_server::changes::compact(&c.db, now, 90 * DAY)
        .await
        .unwrap();
    assert!(done.superseded >= 2, "{done:?}");
    assert!(
        done.deleted_rows >= 2,
        "the role's entry and its deletion: {done:?}"
    );
    let after: i64 = rows(&c.db, logged).await[0].parse().unwrap();
    assert_eq!(before - after, (done.superseded + done.deleted_rows) as i64);
    // Compacting again finds nothing more.
    let again = timebank_server::changes::compact(&c.db, now, 90 * DAY)
        .await
        .unwrap();
    assert_eq!(again, Default::default());

    // B's cursor is below the horizon: it pulls everything again, and its resident survives.
    let r = sync::sync_once(&b, &http).await.unwrap();
    assert!(r.resynced, "{r:?}");
    assert_eq!(r.pushed, 1);
    for q in [
        roles,
        "SELECT id AS c0, name AS c1, hardship AS c2 FROM members ORDER BY id",
        "SELECT id AS c0, balance AS c1 FROM accounts ORDER BY id",
    ] {
        let server = rows(&c.db, q).await;
        assert_eq!(rows(&b, q).await, server, "B after pulling again: {q}");
    }
    assert!(
        rows(&b, "SELECT id AS c0 FROM members WHERE id = 'r2'")
            .await
            .len()
            == 1
    );
    // A was past the deletion: it keeps following the log.
    let ra = sync::sync_once(&a, &http).await.unwrap();
    assert!(!ra.resynced);
    assert_eq!(
        rows(&a, roles).await,
        rows(&c.db, roles).await,
        "A follows on"
    );
    // A new device's snapshot is the compacted log, and it is complete.
    let n = c.device("new").await;
    for q in [
        roles,
        "SELECT id AS c0, hardship AS c1 FROM members ORDER BY id",
    ] {
        assert_eq!(rows(&n, q).await, rows(&c.db, q).await, "new device: {q}");
    }
    assert!(timebank_core::read::verify(&b, &|_, _| {})
        .await
        .unwrap()
        .ok());
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_compaction_a_device_behind_a_dropped_deletion_pulls_everything_again_and_loses_nothing_on_sqlite(
) {
    run(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_compaction_a_device_behind_a_dropped_deletion_pulls_everything_again_and_loses_nothing_on_postgres(
) {
    run(true).await;
}

/// A compaction that commits while a page is read (after its head, before its rows) may take
/// a deletion past the device's cursor out of the page: the device is sent to pull from the
/// start, as if the compaction had come first, instead of moving its cursor past a deletion it
/// never got (it would keep the row for ever).
async fn compaction_during_a_page(postgres: bool) {
    use timebank_server::{auth::Device, pull};
    let Some(c) = City::start(postgres, &["府苑新村"], Default::default()).await else {
        return;
    };
    let a = c.device("a").await;
    let community = c.boot.community_ids[0].clone();
    let now = timebank_core::service::now_ms();
    let ctx = Ctx::new(&c.boot.admin_id, outbox::device_id(&a).await.unwrap(), now);
    execute(
        &a,
        &ctx,
        register("v1", "马军", "13800000001", &community, true),
    )
    .await
    .unwrap();
    sync::sync_once(&a, &Http::new(&c.base)).await.unwrap();
    // Long ago (as far as the log is concerned), the volunteer role was removed.
    remove_volunteer_role_long_ago(&c, now).await;
    let seqs = rows(
        &c.db,
        "SELECT CAST(seq AS TEXT) AS c0, op AS c1 FROM change_log WHERE tbl = 'member_roles' AND pk = 'v1|volunteer' ORDER BY seq",
    )
    .await;
    assert_eq!(seqs.len(), 2, "{seqs:?}");
    let upserted: i64 = seqs[0].split('|').next().unwrap().parse().unwrap();
    // A device that has the role (its cursor past the upsert, before the deletion).
    let device = Device {
        id: "d".into(),
        center_id: c.boot.center_id.clone(),
        role: "center".into(),
        communities: vec![community.clone()],
    };
    let q = pull::PullQuery {
        community: community.clone(),
        after: upserted,
        limit: 5000,
    };
    let compaction = async {
        let done = timebank_server::changes::compact(&c.db, now, 90 * DAY)
            .await
            .unwrap();
        assert!(done.deleted_rows >= 2, "{done:?}");
    };
    match pull::pull_between(&c.db, &device, &q, compaction).await {
        Err(e) => assert_eq!(e.code, timebank_core::Code::ResyncRequired, "{e:?}"),
        Ok(page) => panic!(
            "a page without the deletion, cursor moved to {} (head {}): {:?}",
            page.next_after,
            page.head,
            page.changes
                .iter()
                .map(|ch| format!("{} {} {}", ch.seq, ch.table, ch.op))
                .collect::<Vec<_>>()
        ),
    }
    // The next page, asked from the same cursor, gets the same answer at once.
    let e = pull::pull(&c.db, &device, &q).await.unwrap_err();
    assert_eq!(e.code, timebank_core::Code::ResyncRequired);
    c.stop().await;
}

#[tokio::test]
async fn a_compaction_while_a_page_is_read_sends_the_device_to_pull_again_on_sqlite() {
    compaction_during_a_page(false).await;
}

#[tokio::test]
async fn a_compaction_while_a_page_is_read_sends_the_device_to_pull_again_on_postgres() {
    compaction_during_a_page(true).await;
}
