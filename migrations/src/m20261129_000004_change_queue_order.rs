//! The order in which a transaction touched rows, kept in the change queue, so that the city
//! server logs a transaction's rows parents first: a device applies a page in one transaction
//! with foreign keys checked at its end, and a page boundary must never leave a row whose
//! parent comes later. SQLite has it already (the rowid); PostgreSQL gets a sequence column.
use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        if m.get_database_backend() == DbBackend::Postgres {
            m.get_connection()
                .execute_unprepared(
                    "ALTER TABLE change_queue ADD COLUMN IF NOT EXISTS qid BIGSERIAL",
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        if m.get_database_backend() == DbBackend::Postgres {
            m.get_connection()
                .execute_unprepared("ALTER TABLE change_queue DROP COLUMN IF EXISTS qid")
                .await?;
        }
        Ok(())
    }
}
