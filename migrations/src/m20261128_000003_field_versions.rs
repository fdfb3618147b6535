//! Per-field versions of profile fields on the city server: the hybrid-logical-clock time and
//! device of the last write that won each field, so that concurrent offline edits of the same
//! field are decided last-writer-wins by HLC (sync.md), whatever order they arrive in.
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table("field_versions")
                .col(text("entity"))
                .col(text("entity_id"))
                .col(text("field"))
                .col(text("hlc"))
                .col(text("device_id"))
                .col(text("mutation_id"))
                .primary_key(Index::create().col("entity").col("entity_id").col("field"))
                .take(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table("field_versions").take())
            .await
    }
}
