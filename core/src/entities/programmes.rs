//! Entity of the `programmes` table (see migrations for the schema).
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "programmes")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub name: String,
    pub payer: String,
    pub rounding_minutes: i32,
    pub max_per_visit: i64,
    pub max_per_day: i64,
    pub balance_cap: i64,
    pub overdraft_limit: i64,
    pub min_spend_age: i32,
    pub gift_policy: String,
    pub signup_bonus: i64,
    pub auto_confirm_minutes: i32,
    pub urgent_escalation_minutes: i32,
    pub timezone: String,
    pub updated_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
