//! A Jira integration; `credential` and `webhook_secret` are secrets.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "integrations")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub display_name: String,
    #[sea_orm(column_type = "Text")]
    pub base_url: String,
    pub auth_mode: String,
    pub account_email: String,
    #[sea_orm(column_type = "Text")]
    pub credential: String,
    pub connect_client_key: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub webhook_secret: Option<String>,
    pub email_api_allowed: bool,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub group_link_template: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
