//! One entry of a group's audit trail.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "activities")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub organization_id: i64,
    pub group_id: i64,
    pub kind: String,
    pub user_id: Option<i64>,
    pub previous_user_id: Option<i64>,
    pub source_integration_id: Option<String>,
    pub external_issue_key: Option<String>,
    pub request_id: Option<String>,
    pub created_at: DateTimeUtc,
    pub actor_user_id: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
