//! Entity of the `transfers` table (see migrations for the schema).
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "transfers")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub kind: String,
    pub programme_id: String,
    pub order_id: Option<String>,
    pub visit_id: Option<String>,
    pub activity_id: Option<String>,
    pub credit_key: Option<String>,
    pub reverses_id: Option<String>,
    pub memo: String,
    pub reason: Option<String>,
    pub approved_by: Option<String>,
    pub created_by: String,
    pub created_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
