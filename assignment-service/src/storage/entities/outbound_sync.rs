//! One entry of the outbound log: what a linked Jira issue must show.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "outbound_syncs")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub sequence: i64,
    pub organization_id: i64,
    pub group_id: i64,
    pub external_issue_id: i64,
    pub integration_id: String,
    pub issue_key: String,
    pub jira_issue_id: Option<String>,
    pub target: String,
    pub assignee_user_id: Option<i64>,
    pub assignee_emails: String,
    pub status_action: Option<String>,
    pub from_source: bool,
    pub request_id: Option<String>,
    pub traceparent: String,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
