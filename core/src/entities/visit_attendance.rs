//! Entity of the `visit_attendance` table (see migrations for the schema).
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "visit_attendance")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub visit_id: String,
    pub order_id: String,
    pub volunteer_id: String,
    pub status: String,
    pub checked_in_at: i64,
    pub checked_out_at: Option<i64>,
    pub minutes: Option<i64>,
    pub confirmed_by: Option<String>,
    pub confirm_method: Option<String>,
    pub confirmed_at: Option<i64>,
    pub note: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
