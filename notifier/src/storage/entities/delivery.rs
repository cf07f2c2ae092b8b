//! One notification received, and how its delivery stands.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "deliveries")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub sequence: i64,
    pub recipient: i64,
    pub message_key: String,
    pub is_update: bool,
    #[sea_orm(column_type = "Text")]
    pub notification: String,
    pub state: String,
    pub channel: String,
    #[sea_orm(column_type = "Text")]
    pub reason: String,
    pub attempts: i32,
    pub external_id: String,
    pub next_attempt_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
