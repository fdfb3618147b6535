//! The city server's own tables: enrolled devices (tokens stored hashed), one-time enrolment
//! codes, and the result of every pushed mutation under (device, sequence) so that a
//! duplicate delivery gets the stored result and changes nothing. They also exist, empty, on
//! devices: one set of migrations for every database.
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table("sync_devices")
                .col(text("id").primary_key())
                .col(text("name"))
                .col(text("center_id"))
                .col(text("role"))
                .col(text("token_hash").unique_key())
                .col(big_integer("enrolled_at"))
                .col(big_integer_null("revoked_at"))
                .col(big_integer_null("last_seen_at"))
                .take(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table("enrolment_codes")
                .col(text("code_hash").primary_key())
                .col(text("center_id"))
                .col(text("role"))
                .col(big_integer("created_at"))
                .col(big_integer("expires_at"))
                .col(text_null("used_by_device"))
                .col(big_integer_null("used_at"))
                .take(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table("push_results")
                .col(text("device_id"))
                .col(big_integer("seq"))
                .col(text("mutation_id"))
                .col(text("name"))
                .col(text("status"))
                .col(text("result"))
                .col(big_integer("applied_at"))
                .primary_key(Index::create().col("device_id").col("seq"))
                .take(),
        )
        .await?;
        // The change log: per community (or "*" for city-wide reference data), a gap-free
        // sequence allocated in the writing transaction from change_heads.
        m.create_table(
            Table::create()
                .table("change_heads")
                .col(text("community_id").primary_key())
                .col(big_integer("last_seq"))
                .take(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table("change_log")
                .col(text("community_id"))
                .col(big_integer("seq"))
                .col(text("tbl"))
                .col(text("pk"))
                .col(text("op"))
                .col(text("row_json"))
                .col(big_integer("at"))
                .primary_key(Index::create().col("community_id").col("seq"))
                .take(),
        )
        .await?;
        // Rows touched by the current transaction, filled by capture triggers (installed by the
        // city server only) and emptied when the transaction's changes are logged.
        m.create_table(
            Table::create()
                .table("change_queue")
                .col(text("tbl"))
                .col(text("pk"))
                .col(text("op"))
                // On a device: the local mutation that touched the row (its journal, used to
                // repair optimistic rows the server decided otherwise).
                .col(text_null("mutation_id"))
                .take(),
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for t in [
            "change_queue",
            "change_log",
            "change_heads",
            "push_results",
            "enrolment_codes",
            "sync_devices",
        ] {
            m.drop_table(Table::drop().table(t).take()).await?;
        }
        Ok(())
    }
}
