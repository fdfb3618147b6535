//! Database migrations of the time bank. The same migrations run on SQLite (devices, the
//! embedded city server) and on PostgreSQL (the production city server).
pub use sea_orm_migration::prelude::*;

mod m20261128_000001_create_schema;
mod m20261128_000002_create_sync_tables;
mod m20261128_000003_field_versions;
mod m20261129_000004_change_queue_order;
mod m20261129_000005_change_horizon;
mod m20261129_000006_journal_before;
mod m20261129_000007_outbox_pending;
mod m20261130_000008_queue_row_image;
mod m20261207_000009_widened_board_index;

/// Schema version written into every outbox mutation. Bump it with every migration.
pub const SCHEMA_VERSION: i32 = 9;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261128_000001_create_schema::Migration),
            Box::new(m20261128_000002_create_sync_tables::Migration),
            Box::new(m20261128_000003_field_versions::Migration),
            Box::new(m20261129_000004_change_queue_order::Migration),
            Box::new(m20261129_000005_change_horizon::Migration),
            Box::new(m20261129_000006_journal_before::Migration),
            Box::new(m20261129_000007_outbox_pending::Migration),
            Box::new(m20261130_000008_queue_row_image::Migration),
            Box::new(m20261207_000009_widened_board_index::Migration),
        ]
    }
}
