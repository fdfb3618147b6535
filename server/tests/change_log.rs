//! What the change log records of a writing transaction (SQLite and PostgreSQL): each touched
//! row once, as the transaction's last write left it (the capture triggers keep the row's
//! image, so it is not read back), and, for a row queued without its image (by the trigger of
//! an earlier version), the row read back, or a deletion when it is gone; a deletion goes to
//! every partition the row was logged in.
#![allow(clippy::unwrap_used)]
mod common;
use common::City;
use serde_json::{json, Value};
use timebank_core::{db, sql};
use timebank_server::changes;

/// The change-log entries of the member `id`: (op, row).
async fn logged(c: &sea_orm::DatabaseConnection, id: &str) -> Vec<(String, Value)> {
    sql::all(
        c,
        "SELECT op, row_json FROM change_log WHERE tbl = 'members' AND pk = ? ORDER BY seq",
        vec![id.into()],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| {
        (
            r.try_get("", "op").unwrap(),
            serde_json::from_str(&r.try_get::<String>("", "row_json").unwrap()).unwrap(),
        )
    })
    .collect()
}

async fn run(postgres: bool) {
    let Some(c) = City::start(postgres, &["府苑新村", "蒋村花园"], Default::default()).await
    else {
        return;
    };
    let admin = c.boot.admin_id.clone();
    let before = logged(&c.db, &admin).await.len();

    // Two writes of one row in one transaction: one entry, with the second write's values.
    let txn = db::begin_write(&c.db).await.unwrap();
    for (name, hardship) in [("周建国", true), ("周建华", false)] {
        sql::exec(
            &txn,
            "UPDATE members SET name = ?, hardship = ? WHERE id = ?",
            vec![name.into(), hardship.into(), admin.clone().into()],
        )
        .await
        .unwrap();
    }
    // The triggers queued the row as each write left it.
    // In the order they were queued (a vacuumed queue's rows are not in it on PostgreSQL's
    // pages).
    let order = if postgres { "qid" } else { "rowid" };
    let images: Vec<Value> = sql::all(
        &txn,
        &format!(
            "SELECT row_json FROM change_queue WHERE tbl = 'members' AND pk = ? ORDER BY {order}"
        ),
        vec![admin.clone().into()],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| serde_json::from_str(&r.try_get::<String>("", "row_json").unwrap()).unwrap())
    .collect();
    let names: Vec<&Value> = images.iter().map(|r| &r["name"]).collect();
    assert_eq!(names, ["周建国", "周建华"]);
    changes::log_changes(&txn, 1).await.unwrap();
    txn.commit().await.unwrap();
    let after = logged(&c.db, &admin).await;
    assert_eq!(after.len(), before + 1, "one entry for the row: {after:?}");
    let (op, row) = after.last().unwrap();
    assert_eq!(op, "upsert");
    assert_eq!(row["id"], admin.as_str());
    assert_eq!(row["name"], "周建华", "the last write's value: {row}");
    // SQLite's triggers give a boolean as 0 or 1, PostgreSQL's as false or true: devices read
    // both the same (`->>`).
    assert!(row["hardship"] == 0 || row["hardship"] == false, "{row}");
    assert!(
        row["phone"].is_string(),
        "every column is in the row: {row}"
    );

    // Queued without an image: the row is read back; a row that is gone is logged deleted.
    let txn = db::begin_write(&c.db).await.unwrap();
    sql::exec(
        &txn,
        "UPDATE members SET name = ? WHERE id = ?",
        vec!["周建民".into(), admin.clone().into()],
    )
    .await
    .unwrap();
    sql::exec(&txn, "DELETE FROM change_queue", vec![])
        .await
        .unwrap();
    for pk in [admin.as_str(), "no-such-member"] {
        sql::exec(
            &txn,
            "INSERT INTO change_queue (tbl, pk, op) VALUES ('members', ?, 'upsert')",
            vec![pk.into()],
        )
        .await
        .unwrap();
    }
    assert_eq!(changes::log_changes(&txn, 2).await.unwrap(), 2);
    txn.commit().await.unwrap();
    let (op, row) = logged(&c.db, &admin).await.pop().unwrap();
    assert_eq!(
        (op.as_str(), &row["name"]),
        ("upsert", &Value::from("周建民"))
    );
    assert_eq!(
        logged(&c.db, "no-such-member").await,
        vec![("delete".to_owned(), Value::Null)]
    );

    // A row logged in two communities (a member who moved), then deleted: the deletion goes
    // to both, and to no other partition.
    let (home, new_home) = (&c.boot.community_ids[1], &c.boot.community_ids[0]);
    for (at, queued) in [
        (3, Some(home)),
        (4, Some(new_home)),
        (5, None), // deleted
    ] {
        let txn = db::begin_write(&c.db).await.unwrap();
        let (op, image) = match queued {
            Some(h) => (
                "upsert",
                Some(json!({"id": "ghost", "home_community_id": h}).to_string()),
            ),
            None => ("delete", None),
        };
        sql::exec(
            &txn,
            "INSERT INTO change_queue (tbl, pk, op, row_json) VALUES ('members', 'ghost', ?, ?)",
            vec![op.into(), image.into()],
        )
        .await
        .unwrap();
        changes::log_changes(&txn, at).await.unwrap();
        txn.commit().await.unwrap();
    }
    let mut deleted = sql::all(
        &c.db,
        "SELECT community_id FROM change_log WHERE tbl = 'members' AND pk = 'ghost' AND op = 'delete'",
        vec![],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| r.try_get::<String>("", "community_id").unwrap())
    .collect::<Vec<_>>();
    deleted.sort();
    let mut both = vec![home.clone(), new_home.clone()];
    both.sort();
    assert_eq!(deleted, both);
    c.stop().await;
}

#[tokio::test]
async fn each_row_is_logged_once_as_its_last_write_left_it_and_deleted_where_it_was_logged_sqlite()
{
    run(false).await;
}

#[tokio::test]
async fn each_row_is_logged_once_as_its_last_write_left_it_and_deleted_where_it_was_logged_postgres(
) {
    run(true).await;
}

/// The change queue's pages on PostgreSQL (a deleted row keeps its place until a vacuum).
async fn queue_pages(c: &sea_orm::DatabaseConnection) -> i64 {
    sql::scalar_i64(
        c,
        "SELECT pg_relation_size('change_queue') / current_setting('block_size')::bigint",
        vec![],
    )
    .await
    .unwrap()
}

/// Every row of the change queue dies in the transaction that wrote it; on PostgreSQL its
/// space comes back only with a vacuum, which a busy city server does itself within seconds
/// (also with autovacuum off, as on these machines: without it the queue only grew, and every
/// push read all of it).
#[tokio::test]
async fn a_city_server_on_postgresql_gives_back_its_change_queues_space_after_pushes() {
    use timebank_core::service::{execute, outbox, Ctx};
    use timebank_core::sync::{self, http::Http};
    let Some(c) = City::start(true, &["府苑新村"], Default::default()).await else {
        return;
    };
    let community = c.boot.community_ids[0].clone();
    let d = c.device("desk").await;
    let dev = outbox::device_id(&d).await.unwrap();
    let ctx = Ctx::new(&c.boot.admin_id, &dev, timebank_core::service::now_ms());
    for i in 0..600 {
        execute(
            &d,
            &ctx,
            common::register(
                &format!("r-{i}"),
                "赵大爷",
                &format!("137{i:08}"),
                &community,
                false,
            ),
        )
        .await
        .unwrap();
    }
    // While the server is held from vacuuming (a snapshot older than the pushes keeps their
    // dead rows), the queue has pages: 600 members, their roles and accounts went through it.
    let holder = db::open(&c.url).await.unwrap();
    let snapshot = sea_orm::TransactionTrait::begin_with_config(
        &holder,
        Some(sea_orm::IsolationLevel::RepeatableRead),
        None,
    )
    .await
    .unwrap();
    sql::scalar_i64(&snapshot, "SELECT COUNT(*) FROM members", vec![])
        .await
        .unwrap();
    sync::sync_once(&d, &Http::new(&c.base)).await.unwrap();
    assert_eq!(
        sql::scalar_i64(&c.db, "SELECT COUNT(*) FROM change_queue", vec![])
            .await
            .unwrap(),
        0,
        "no row is left in the queue"
    );
    let held = queue_pages(&c.db).await;
    assert!(held > 0, "the pushes' dead rows take pages: {held}");
    snapshot.rollback().await.unwrap();
    holder.close().await.ok();
    // Now the server's next vacuums of the queue give the pages back.
    let mut pages = held;
    for _ in 0..100 {
        pages = queue_pages(&c.db).await;
        if pages == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(
        pages, 0,
        "the server vacuumed the queue ({held} pages before)"
    );
    c.stop().await;
}

/// On PostgreSQL pushes run side by side. One changes a member of the first community and logs
/// the change where the member has been logged (there only); before it commits, another
/// links the member to a resident of the second community, which copies the member's row into
/// the second community's log. The copy is the row as the first left it, not as it was before:
/// the second community's devices would otherwise keep the old row until the member next
/// changed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_copied_to_another_community_while_a_change_to_it_commits_is_copied_changed() {
    use timebank_core::service::{execute, outbox, Ctx};
    let Some(c) = City::start(true, &["府苑新村", "蒋村花园"], Default::default()).await
    else {
        return;
    };
    let (a, b) = (
        c.boot.community_ids[0].clone(),
        c.boot.community_ids[1].clone(),
    );
    let d = c.device("d").await;
    let dev = outbox::device_id(&d).await.unwrap();
    for (id, phone, comm) in [("r-1", "13711112221", &a), ("r-2", "13711112222", &b)] {
        let ctx = Ctx::new(&c.boot.admin_id, &dev, timebank_core::service::now_ms());
        execute(&d, &ctx, common::register(id, "周桂兰", phone, comm, false))
            .await
            .unwrap();
    }
    timebank_core::sync::sync_once(&d, &timebank_core::sync::http::Http::new(&c.base))
        .await
        .unwrap();

    let now = timebank_core::service::now_ms();
    let change = db::begin_write(&c.db).await.unwrap();
    sql::exec(
        &change,
        "UPDATE members SET name = '周桂芳' WHERE id = 'r-1'",
        vec![],
    )
    .await
    .unwrap();
    changes::log_changes(&change, now).await.unwrap();
    let link = tokio::spawn({
        let city = c.db.clone();
        async move {
            let txn = db::begin_write(&city).await.unwrap();
            sql::exec(
                &txn,
                "INSERT INTO family_links (member_id, relative_id, relation, created_at) \
                 VALUES ('r-2', 'r-1', 'child', ?)",
                vec![now.into()],
            )
            .await
            .unwrap();
            changes::log_changes(&txn, now).await.unwrap();
            txn.commit().await.unwrap();
        }
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    change.commit().await.unwrap();
    link.await.unwrap();

    let copied = sql::all(
        &c.db,
        "SELECT row_json FROM change_log WHERE community_id = ? AND tbl = 'members' AND pk = 'r-1' ORDER BY seq",
        vec![b.into()],
    )
    .await
    .unwrap();
    let names: Vec<String> = copied
        .iter()
        .map(|r| {
            let row: Value =
                serde_json::from_str(&r.try_get::<String>("", "row_json").unwrap()).unwrap();
            row["name"].as_str().unwrap_or_default().to_owned()
        })
        .collect();
    assert_eq!(
        names,
        ["周桂芳"],
        "the member's rows in the second community's log"
    );
    c.stop().await;
}

/// PostgreSQL: two pushes that write the first entries of a community's log side by side both
/// commit, one after the other in its sequence. Each found no head row for the community; both
/// inserted one, and the second failed on its key once the first committed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_first_writes_to_a_new_communitys_log_side_by_side_both_commit() {
    use timebank_core::service::{execute, outbox, Ctx};
    let Some(c) = City::start(true, &["府苑新村", "蒋村花园"], Default::default()).await
    else {
        return;
    };
    let b = c.boot.community_ids[1].clone();
    let d = c.device("d").await;
    let dev = outbox::device_id(&d).await.unwrap();
    for (id, phone) in [("r-1", "13711112221"), ("r-2", "13711112222")] {
        let ctx = Ctx::new(&c.boot.admin_id, &dev, timebank_core::service::now_ms());
        execute(&d, &ctx, common::register(id, "周桂兰", phone, &b, false))
            .await
            .unwrap();
    }
    timebank_core::sync::sync_once(&d, &timebank_core::sync::http::Http::new(&c.base))
        .await
        .unwrap();
    // The community as if its log had never been written: no head row.
    for table in ["change_log", "change_heads"] {
        sql::exec(
            &c.db,
            &format!("DELETE FROM {table} WHERE community_id = ?"),
            vec![b.clone().into()],
        )
        .await
        .unwrap();
    }

    let now = timebank_core::service::now_ms();
    let first = db::begin_write(&c.db).await.unwrap();
    sql::exec(
        &first,
        "UPDATE members SET name = '周桂芳' WHERE id = 'r-1'",
        vec![],
    )
    .await
    .unwrap();
    changes::log_changes(&first, now).await.unwrap();
    let second = tokio::spawn({
        let city = c.db.clone();
        async move {
            let txn = db::begin_write(&city).await?;
            sql::exec(
                &txn,
                "UPDATE members SET name = '周桂英' WHERE id = 'r-2'",
                vec![],
            )
            .await?;
            changes::log_changes(&txn, now).await?;
            txn.commit().await?;
            Ok::<_, timebank_core::error::CoreError>(())
        }
    });
    // The second transaction reaches the head row while the first holds it.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    first.commit().await.unwrap();
    let second = second.await.unwrap();
    assert!(second.is_ok(), "the second first write failed: {second:?}");

    let logged: Vec<(i64, String)> = sql::all(
        &c.db,
        "SELECT seq, pk FROM change_log WHERE community_id = ? AND tbl = 'members' ORDER BY seq",
        vec![b.clone().into()],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| (r.try_get("", "seq").unwrap(), r.try_get("", "pk").unwrap()))
    .collect();
    assert_eq!(logged, [(1, "r-1".to_owned()), (2, "r-2".to_owned())]);
    let head = sql::scalar_i64(
        &c.db,
        "SELECT last_seq FROM change_heads WHERE community_id = ?",
        vec![b.into()],
    )
    .await
    .unwrap();
    assert_eq!(head, 2, "the community's head");
    c.stop().await;
}
