//! One CreateIssue: its Jira outcome and the link it owes the assignment service.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "issue_creations")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub fingerprint: String,
    pub integration_id: String,
    pub organization_id: i64,
    #[sea_orm(column_type = "Text")]
    pub group_ids: String,
    pub marker: String,
    pub state: String,
    pub jira_key: Option<String>,
    pub jira_id: Option<String>,
    #[sea_orm(column_type = "Text")]
    pub url: String,
    #[sea_orm(column_type = "Text")]
    pub title: String,
    #[sea_orm(column_type = "Text")]
    pub description: String,
    pub link_state: String,
    #[sea_orm(column_type = "Text")]
    pub link_error: String,
    pub link_attempts: i32,
    pub next_link_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub kind: String,
    #[sea_orm(column_type = "Text")]
    pub comment: String,
    pub comment_state: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
