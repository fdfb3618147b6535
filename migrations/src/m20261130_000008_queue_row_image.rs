//! The city server's capture triggers keep each touched row as it is after the write
//! (`change_queue.row_json`, the row as JSON; NULL for a deletion), so that logging a pushed
//! batch's changes does not read every row back. Devices leave it empty.
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table("change_queue")
                .add_column(text_null("row_json"))
                .take(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table("change_queue")
                .drop_column("row_json")
                .take(),
        )
        .await
    }
}
