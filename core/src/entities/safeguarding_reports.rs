//! Entity of the `safeguarding_reports` table (see migrations for the schema).
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[cfg_attr(
    feature = "specta",
    derive(specta::Type),
    serde(rename = "SafeguardingReport")
)]
#[sea_orm(table_name = "safeguarding_reports")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub reporter_id: String,
    pub subject_member_id: Option<String>,
    pub order_id: Option<String>,
    pub community_id: String,
    pub category: String,
    pub details: String,
    pub status: String,
    pub handled_by: Option<String>,
    pub resolution: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
