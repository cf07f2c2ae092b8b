//! One notification of the log the stream reads; `sequence` is assigned in commit order.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "notifications")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub sequence: i64,
    pub recipient_user_id: i64,
    pub organization_id: i64,
    pub group_id: i64,
    pub external_issue_key: String,
    pub integration_id: String,
    pub kind: String,
    #[sea_orm(column_type = "Text")]
    pub message: String,
    pub message_key: String,
    pub is_update: bool,
    pub activity_id: i64,
    pub traceparent: String,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
