//! Entity of the `orders` table (see migrations for the schema).
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "orders")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub service_code: String,
    pub field_code: String,
    pub beneficiary_id: String,
    pub posted_by: String,
    pub description: String,
    pub urgent: bool,
    pub community_id: String,
    pub place_hint: String,
    pub address: String,
    pub window_start: Option<i64>,
    pub window_end: Option<i64>,
    pub expected_minutes: i32,
    pub volunteers_needed: i32,
    pub accepted_count: i32,
    pub visits_total: i32,
    pub visits_done: i32,
    pub status: String,
    pub escalated: bool,
    pub cancel_reason: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub first_accepted_at: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
