//! Entity of the `center_communities` table (see migrations for the schema).
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "center_communities")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub center_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub community_id: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
