//! The device's journal keeps what each row was before a local mutation touched it
//! (`change_queue.before_row`: the row as JSON, the JSON `null` when the mutation created it).
//! A pull takes the effects of mutations still waiting in the outbox back to these images,
//! applies the server's rows, and runs those mutations again on top (the rebase of sync.md).
//! The city server's capture does not fill it.
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table("change_queue")
                .add_column(text_null("before_row"))
                .take(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table("change_queue")
                .drop_column("before_row")
                .take(),
        )
        .await
    }
}
