//! `db::refresh_statistics` gathers the query planner's statistics for a table whose rows
//! changed much since they were last gathered, on SQLite and on PostgreSQL, and leaves a table
//! that did not change alone.
#![allow(clippy::unwrap_used)]
#[macro_use]
mod common;
use common::*;
use sea_orm::{ConnectionTrait, TransactionTrait};
use timebank_core::{db, sql};

both_backends!(statistics_are_gathered_for_a_table_that_grew_and_only_then);

/// Rows in the audit log (a table with indexes), written in one transaction.
async fn grow_audit_log(t: &TestDb, n: usize, from: usize) {
    let txn = t.db.begin().await.unwrap();
    for chunk in (from..from + n).collect::<Vec<_>>().chunks(100) {
        let marks =
            vec!["(?, ?, 'actor', 'device', 'test', 'member', ?, '{}')"; chunk.len()].join(", ");
        let mut vals = Vec::new();
        for i in chunk {
            vals.extend([
                format!("a{i:06}").into(),
                (T0 + *i as i64).into(),
                format!("m{}", i % 7).into(),
            ]);
        }
        sql::exec(
            &txn,
            &format!("INSERT INTO audit_log (id, at, actor_id, device_id, action, entity, entity_id, detail) VALUES {marks}"),
            vals,
        )
        .await
        .unwrap();
    }
    if t.backend == Backend::Postgres {
        // This connection's counts of changed rows reach the statistics views when the
        // transaction ends, not up to ten seconds later.
        txn.execute_unprepared("SELECT pg_stat_force_next_flush()")
            .await
            .unwrap();
    }
    txn.commit().await.unwrap();
}

/// Whether the planner has statistics for the audit log.
async fn audit_log_analyzed(t: &TestDb) -> bool {
    match t.backend {
        Backend::Postgres => {
            sql::scalar_i64(
                &t.db,
                "SELECT COUNT(*) FROM pg_stat_user_tables WHERE relname = 'audit_log' \
                 AND (last_analyze IS NOT NULL OR last_autoanalyze IS NOT NULL)",
                vec![],
            )
            .await
            .unwrap()
                > 0
        }
        Backend::Sqlite => {
            let has_stat1 = sql::scalar_i64(
                &t.db,
                "SELECT COUNT(*) FROM sqlite_master WHERE name = 'sqlite_stat1'",
                vec![],
            )
            .await
            .unwrap()
                > 0;
            has_stat1
                && sql::scalar_i64(
                    &t.db,
                    "SELECT COUNT(*) FROM sqlite_stat1 WHERE tbl = 'audit_log'",
                    vec![],
                )
                .await
                .unwrap()
                    > 0
        }
    }
}

/// A count of PostgreSQL's activity statistics of `table` (`pg_stat_user_tables.{count}`),
/// waiting until it is at least `at_least` (the counts arrive a moment after the transaction
/// that made them), at most 20 s.
async fn pg_count(t: &TestDb, table: &str, count: &str, at_least: i64) -> i64 {
    let mut n = 0;
    for _ in 0..200 {
        n = sql::scalar_i64(
            &t.db,
            &format!("SELECT COALESCE(MAX({count}), 0) FROM pg_stat_user_tables WHERE relname = ?"),
            vec![table.into()],
        )
        .await
        .unwrap();
        if n >= at_least {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    n
}

/// The rows changed in the audit log since it was last analyzed, as PostgreSQL counts them.
async fn pg_changed_since_analyze(t: &TestDb, at_least: i64) -> i64 {
    pg_count(t, "audit_log", "n_mod_since_analyze", at_least).await
}

async fn statistics_are_gathered_for_a_table_that_grew_and_only_then(t: &TestDb) {
    assert!(
        !audit_log_analyzed(t).await,
        "a new database has no statistics for the audit log"
    );
    grow_audit_log(t, 2_000, 0).await;
    if t.backend == Backend::Postgres {
        assert!(pg_changed_since_analyze(t, 2_000).await >= 2_000);
    }
    let analyzed = db::refresh_statistics(&t.db).await.unwrap();
    assert!(
        audit_log_analyzed(t).await,
        "the audit log grew by 2,000 rows from nothing: its statistics are gathered"
    );
    if t.backend == Backend::Postgres {
        assert!(
            analyzed.iter().any(|x| x == "audit_log"),
            "named among the tables analyzed: {analyzed:?}"
        );
        assert_eq!(pg_changed_since_analyze(t, 0).await, 0);
        // A few rows more are under autovacuum's threshold (50 and a tenth of the table).
        grow_audit_log(t, 60, 2_000).await;
        assert!(pg_changed_since_analyze(t, 60).await >= 60);
        let again = db::refresh_statistics(&t.db).await.unwrap();
        assert!(
            !again.iter().any(|x| x == "audit_log"),
            "60 rows more in 2,000 do not call for new statistics: {again:?}"
        );
    } else {
        // The audit log's rows as the planner counts them (the first figure of each index's
        // statistics).
        let stat = || async {
            sql::all(
                &t.db,
                "SELECT stat FROM sqlite_stat1 WHERE tbl = 'audit_log' ORDER BY idx",
                vec![],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| {
                let s = r.try_get::<String>("", "stat").unwrap();
                s.split(' ').next().unwrap().parse::<i64>().unwrap()
            })
            .collect::<Vec<_>>()
        };
        let first = stat().await;
        assert!(
            !first.is_empty() && first.iter().all(|n| *n == 2_000),
            "the statistics count the 2,000 rows: {first:?}"
        );
        // Unchanged: left as they are.
        grow_audit_log(t, 100, 2_000).await;
        db::refresh_statistics(&t.db).await.unwrap();
        assert_eq!(
            stat().await,
            first,
            "100 rows more in 2,000 do not call for new statistics"
        );
        // Grown thirtyfold: gathered again (SQLite's own limit on the rows it reads may make the
        // count an estimate).
        grow_audit_log(t, 57_900, 2_100).await;
        db::refresh_statistics(&t.db).await.unwrap();
        let after = stat().await;
        assert!(
            !after.is_empty() && after.iter().all(|n| *n >= 20_000),
            "the statistics count the 60,000 rows after the table grew thirtyfold: {after:?}"
        );
    }
}

/// The dead rows PostgreSQL counts in `table`.
async fn pg_dead_rows(t: &TestDb, table: &str, at_least: i64) -> i64 {
    pg_count(t, table, "n_dead_tup", at_least).await
}

/// `db::vacuum_dead_rows` vacuums, on PostgreSQL, a table whose rows were deleted past
/// autovacuum's threshold (its pages come back), and leaves a table with a few dead rows
/// alone; on SQLite, which reuses a deleted row's space itself, it does nothing.
#[tokio::test]
async fn dead_rows_are_vacuumed_past_autovacuums_threshold_on_postgresql() {
    let sqlite = TestDb::sqlite().await;
    assert!(db::vacuum_dead_rows(&sqlite.db).await.unwrap().is_empty());
    sqlite.cleanup().await;

    let Some(t) = TestDb::postgres().await else {
        return;
    };
    let pages = || async {
        sql::scalar_i64(
            &t.db,
            "SELECT pg_relation_size('audit_log') / current_setting('block_size')::bigint",
            vec![],
        )
        .await
        .unwrap()
    };
    grow_audit_log(&t, 3_000, 0).await;
    // 40 rows deleted: under the threshold (50 and a fifth of the 2,960 left).
    let delete = |below: usize| {
        let db = t.db.clone();
        async move {
            let txn = db.begin().await.unwrap();
            sql::exec(
                &txn,
                "DELETE FROM audit_log WHERE id < ?",
                vec![format!("a{below:06}").into()],
            )
            .await
            .unwrap();
            txn.execute_unprepared("SELECT pg_stat_force_next_flush()")
                .await
                .unwrap();
            txn.commit().await.unwrap();
        }
    };
    delete(40).await;
    assert!(pg_dead_rows(&t, "audit_log", 40).await >= 40);
    let vacuumed = db::vacuum_dead_rows(&t.db).await.unwrap();
    assert!(
        !vacuumed.iter().any(|x| x == "audit_log"),
        "40 dead rows beside 2,960 live ones are left for later: {vacuumed:?}"
    );
    assert!(pg_dead_rows(&t, "audit_log", 40).await >= 40);
    // Every row deleted: vacuumed, and the emptied pages given back.
    let full = pages().await;
    delete(3_000).await;
    assert!(pg_dead_rows(&t, "audit_log", 3_000).await >= 3_000);
    let vacuumed = db::vacuum_dead_rows(&t.db).await.unwrap();
    assert!(
        vacuumed.iter().any(|x| x == "audit_log"),
        "3,000 dead rows and no live one: vacuumed ({vacuumed:?})"
    );
    assert!(full > 0);
    assert_eq!(
        pages().await,
        0,
        "the {full} pages of deleted rows are given back"
    );
    t.cleanup().await;
}
