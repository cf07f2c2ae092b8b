//! One acknowledged webhook delivery in the inbox.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "webhook_deliveries")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub integration_id: String,
    pub delivery_key: String,
    pub event_type: String,
    pub issue_key: String,
    pub jira_issue_id: String,
    pub ordering_key: String,
    pub received_at: DateTimeUtc,
    #[sea_orm(column_type = "Text")]
    pub headers: String,
    #[sea_orm(column_type = "Text")]
    pub body: String,
    pub traceparent: String,
    pub state: String,
    pub attempts: i32,
    #[sea_orm(column_type = "Text")]
    pub last_error: String,
    pub next_attempt_at: Option<DateTimeUtc>,
    #[sea_orm(column_type = "Text")]
    pub actions: String,
    pub completed_at: Option<DateTimeUtc>,
    pub body_digest: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
