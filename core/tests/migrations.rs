//! The migrations run up, down and up again on SQLite and on PostgreSQL, starting from an empty
//! database, and leave the same schema (tables and the ledger's append-only triggers).
#![allow(clippy::unwrap_used)]
#[macro_use]
mod common;
use common::*;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend};
use timebank_core::domain::Rules;
use timebank_migrations::{Migrator, MigratorTrait};

both_backends!(the_last_migration_goes_down_alone_and_leaves_the_first_in_place);

/// The tables of the core (one per entity) and of sync.
const CORE_TABLES: &[&str] = &[
    "accounts",
    "activities",
    "activity_signups",
    "audit_log",
    "center_communities",
    "centers",
    "device_settings",
    "family_links",
    "feedback",
    "inbox_messages",
    "ledger_entries",
    "ledger_flags",
    "member_roles",
    "members",
    "order_visits",
    "order_volunteers",
    "orders",
    "outbox",
    "places",
    "programmes",
    "safeguarding_reports",
    "service_fields",
    "services",
    "transfers",
    "visit_attendance",
    "volunteer_profiles",
];
const SYNC_TABLES: &[&str] = &[
    "change_heads",
    "change_log",
    "change_queue",
    "enrolment_codes",
    "push_results",
    "sync_devices",
];

/// The application's tables (not the migrator's own bookkeeping table), sorted.
async fn tables(db: &DatabaseConnection) -> Vec<String> {
    let q = match db.get_database_backend() {
        DbBackend::Postgres => {
            "SELECT tablename AS name FROM pg_tables WHERE schemaname = 'public' ORDER BY 1"
        }
        _ => "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY 1",
    };
    timebank_core::sql::all(db, q, vec![])
        .await
        .unwrap()
        .iter()
        .map(|r| r.try_get::<String>("", "name").unwrap())
        .filter(|n| n != "seaql_migrations")
        .collect()
}

/// The append-only triggers (and PostgreSQL's trigger function).
async fn ledger_guards(db: &DatabaseConnection) -> i64 {
    let q = match db.get_database_backend() {
        DbBackend::Postgres => {
            "SELECT (SELECT COUNT(*) FROM pg_trigger WHERE NOT tgisinternal AND tgname LIKE '%append_only') \
             + (SELECT COUNT(*) FROM pg_proc WHERE proname = 'timebank_ledger_append_only')"
        }
        _ => "SELECT COUNT(*) FROM sqlite_master WHERE type = 'trigger' AND (name GLOB '*_no_update' OR name GLOB '*_no_delete')",
    };
    scalar(db, q, vec![]).await
}

fn all_tables() -> Vec<String> {
    let mut v: Vec<String> = CORE_TABLES
        .iter()
        .chain(SYNC_TABLES)
        .map(|s| s.to_string())
        .collect();
    v.sort();
    v
}

/// Starts from an empty database (the harness hands out migrated ones to the other tests).
async fn run_up_down_up(backend: Backend) {
    let Some(t) = TestDb::empty(backend).await else {
        return;
    };
    let db = &t.db;
    let b = t.backend;
    assert_eq!(tables(db).await, Vec::<String>::new(), "{b}: starts empty");

    Migrator::up(db, None).await.unwrap();
    let up = tables(db).await;
    let missing: Vec<_> = all_tables()
        .into_iter()
        .filter(|n| !up.contains(n))
        .collect();
    assert!(missing.is_empty(), "{b}: missing after up: {missing:?}");
    let guards = ledger_guards(db).await;
    let expected_guards = match backend {
        Backend::Postgres => 3, // two triggers and their function
        Backend::Sqlite => 4,   // UPDATE and DELETE on two tables
    };
    assert_eq!(
        guards, expected_guards,
        "{b}: append-only triggers after up"
    );
    assert_eq!(
        Migrator::get_pending_migrations(db).await.unwrap().len(),
        0,
        "{b}"
    );

    Migrator::down(db, None).await.unwrap();
    assert_eq!(
        tables(db).await,
        Vec::<String>::new(),
        "{b}: down drops every table"
    );
    assert_eq!(ledger_guards(db).await, 0, "{b}: and the triggers");
    assert_eq!(
        Migrator::get_pending_migrations(db).await.unwrap().len(),
        Migrator::migrations().len(),
        "{b}: every migration is pending again"
    );

    Migrator::up(db, None).await.unwrap();
    assert_eq!(
        tables(db).await,
        up,
        "{b}: up again restores the same tables"
    );
    assert_eq!(ledger_guards(db).await, expected_guards, "{b}");

    // The schema works: a device can be set up on it, and the ledger is append-only again.
    let (town, p) = cast(db, Rules::default()).await;
    assert_eq!(town.balance(db, &p.majun).await, 60, "{b}");
    let err = db
        .execute_unprepared("DELETE FROM ledger_entries")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("ledger_append_only"), "{b}: {err}");
    assert_ledger_balanced(db, &b.to_string()).await;
    t.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_go_up_down_and_up_again_from_an_empty_database_on_sqlite() {
    run_up_down_up(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_go_up_down_and_up_again_from_an_empty_database_on_postgres() {
    run_up_down_up(Backend::Postgres).await;
}

async fn the_last_migration_goes_down_alone_and_leaves_the_first_in_place(t: &TestDb) {
    let db = &t.db;
    let b = t.backend;
    let (town, p) = cast(db, Rules::default()).await;
    let up = tables(db).await;
    Migrator::down(db, Some(1)).await.unwrap();
    assert_eq!(
        Migrator::get_pending_migrations(db).await.unwrap().len(),
        1,
        "{b}"
    );
    let after = tables(db).await;
    assert!(after.iter().all(|n| up.contains(n)), "{b}: {after:?}");
    for kept in CORE_TABLES {
        assert!(
            after.iter().any(|n| n == kept),
            "{b}: {kept} belongs to the first migration"
        );
    }
    assert_eq!(
        town.balance(db, &p.majun).await,
        60,
        "{b}: the data of the first migration is untouched"
    );
    Migrator::up(db, None).await.unwrap();
    assert_eq!(tables(db).await, up, "{b}");
}
