//! The urgent orders widened to the subdistrict, by an index of their own: the first page of a
//! community's board also shows its neighbours' widened orders (`read::board`), and without it
//! that query read every open order of every neighbouring community to find the few widened
//! ones (28 ms a board page with the benchmark's 1,000,000 orders). With the field too: a
//! board filtered by service field otherwise took the field board's index (two equal columns
//! against one) and read every open order of that field next door (7 ms). A partial index,
//! the same SQL on both databases, as the board's own (migration 1).
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.get_connection()
            .execute_unprepared(
                "CREATE INDEX ix_orders_widened ON orders (community_id, field_code, created_at) \
                 WHERE status IN ('open', 'accepted') AND accepted_count < volunteers_needed AND escalated",
            )
            .await
            .map(|_| ())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_index(
            Index::drop()
                .name("ix_orders_widened")
                .table("orders")
                .to_owned(),
        )
        .await
    }
}
