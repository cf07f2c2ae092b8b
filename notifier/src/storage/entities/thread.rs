//! A thread's message at its tool: what an update edits.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "threads")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub recipient: i64,
    #[sea_orm(primary_key, auto_increment = false)]
    pub message_key: String,
    pub channel: String,
    #[sea_orm(column_type = "Text")]
    pub address: String,
    pub external_id: String,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
