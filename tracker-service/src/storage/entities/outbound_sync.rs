//! One entry of the assignment service's outbound log, as the tracker applies
//! it to Jira.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "outbound_syncs")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub source_sequence: i64,
    pub organization_id: i64,
    pub group_id: i64,
    pub integration_id: String,
    pub issue_key: String,
    pub jira_issue_id: Option<String>,
    pub ordering_key: String,
    pub target: String,
    pub assignee_user_id: Option<i64>,
    #[sea_orm(column_type = "Text")]
    pub assignee_emails: String,
    pub status_action: Option<String>,
    pub from_source: bool,
    pub request_id: Option<String>,
    pub traceparent: String,
    pub state: String,
    #[sea_orm(column_type = "Text", nullable)]
    pub result: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub last_error: Option<String>,
    pub attempts: i32,
    pub next_attempt_at: Option<DateTimeUtc>,
    pub sent_value: Option<String>,
    pub echo_expected: bool,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
