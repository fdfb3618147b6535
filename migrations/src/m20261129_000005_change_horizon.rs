//! The horizon of each partition's change log: the highest sequence of a deletion the city
//! server no longer keeps (deletions older than the retention period are dropped, and
//! superseded versions of rows with them). A device whose cursor is below it may have missed a
//! deletion and must pull the partition again from the start.
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table("change_heads")
                .add_column(big_integer("horizon").default(0))
                .take(),
        )
        .await?;
        // Compaction finds the later versions of a row in its partition by this index.
        m.create_index(
            Index::create()
                .name("idx_change_log_row")
                .table("change_log")
                .col("community_id")
                .col("tbl")
                .col("pk")
                .col("seq")
                .take(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_index(
            Index::drop()
                .name("idx_change_log_row")
                .table("change_log")
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table("change_heads")
                .drop_column("horizon")
                .take(),
        )
        .await
    }
}
