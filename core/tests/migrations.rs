//! The migrations run up, down and up again on SQLite and on PostgreSQL.
#![allow(clippy::unwrap_used)]
mod common;
use sea_orm::ConnectionTrait;
use timebank_migrations::{Migrator, MigratorTrait};

async fn tables(db: &sea_orm::DatabaseConnection) -> Vec<String> {
    let sql = match db.get_database_backend() {
        sea_orm::DbBackend::Postgres => "SELECT tablename AS name FROM pg_tables WHERE schemaname = 'public' ORDER BY 1",
        _ => "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY 1",
    };
    timebank_core::sql::all(db, sql, vec![])
        .await
        .unwrap()
        .iter()
        .map(|r| r.try_get::<String>("", "name").unwrap())
        .filter(|n| n != "seaql_migrations")
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_go_up_down_and_up_again() {
    for t in common::backends().await {
        let db = &t.db;
        let up = tables(db).await;
        for expected in [
            "members",
            "orders",
            "ledger_entries",
            "transfers",
            "accounts",
            "outbox",
            "audit_log",
            "programmes",
        ] {
            assert!(
                up.iter().any(|n| n == expected),
                "{}: {expected} missing after up: {up:?}",
                t.backend
            );
        }
        Migrator::down(db, None).await.unwrap();
        assert_eq!(
            tables(db).await,
            Vec::<String>::new(),
            "{}: down drops every table",
            t.backend
        );
        Migrator::up(db, None).await.unwrap();
        assert_eq!(
            tables(db).await,
            up,
            "{}: up again restores the same tables",
            t.backend
        );
        // The append-only triggers are back too (a world with a sign-up bonus has entries).
        common::world(db, timebank_core::domain::Rules::default()).await;
        let err = db
            .execute_unprepared("DELETE FROM ledger_entries")
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("ledger_append_only"),
            "{}: {err}",
            t.backend
        );
        t.cleanup().await;
    }
}
