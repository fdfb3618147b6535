//! Entity of the `ledger_flags` table (see migrations for the schema).
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type), serde(rename = "LedgerFlag"))]
#[sea_orm(table_name = "ledger_flags")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub kind: String,
    pub member_id: String,
    pub order_id: Option<String>,
    pub visit_id: Option<String>,
    pub activity_id: Option<String>,
    pub held_minutes: i64,
    pub status: String,
    pub detail: String,
    pub created_at: i64,
    pub resolved_by: Option<String>,
    pub resolved_at: Option<i64>,
    pub transfer_id: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
