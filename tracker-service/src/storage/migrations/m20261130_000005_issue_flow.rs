//! The rest of the issue flow: a creation row may record a link of an issue
//! that already existed (`kind`), with the comment to post on it and whether
//! it was posted; an integration may carry a template for the link back to
//! each group (`group_link_template`); and the create form's remembered
//! defaults (`issue_defaults`: the last project, issue type, priority and
//! labels per organization, the reporter per acting user).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{big_integer, string, string_null, text, timestamp_with_time_zone};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [
            string("kind").default("create").to_owned(),
            text("comment").default("").to_owned(),
            string("comment_state").default("none").to_owned(),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table("issue_creations")
                        .add_column(column)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .alter_table(
                Table::alter()
                    .table("integrations")
                    .add_column(string_null("group_link_template"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("issue_defaults")
                    .col(string("integration_id"))
                    .col(big_integer("organization_id"))
                    // `organization`, or `user:<id>` for a user's own defaults.
                    .col(string("scope"))
                    .col(string("field"))
                    .col(text("value"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .primary_key(
                        Index::create()
                            .col("integration_id")
                            .col("organization_id")
                            .col("scope")
                            .col("field"),
                    )
                    .to_owned(),
            )
            .await
    }
}
