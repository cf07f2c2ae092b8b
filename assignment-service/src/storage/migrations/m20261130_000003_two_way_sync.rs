//! Two-way sync: activities record the acting user (`activities.actor_user_id`),
//! and the outbound log (`outbound_syncs`, sequences from row 2 of
//! `notification_log`) records what linked Jira issues must show.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{
    big_integer, big_integer_null, boolean, string, string_null, text, timestamp_with_time_zone,
};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table("activities")
                    .add_column(big_integer_null("actor_user_id"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("outbound_syncs")
                    .col(big_integer("sequence").primary_key())
                    .col(big_integer("organization_id"))
                    .col(big_integer("group_id"))
                    .col(big_integer("external_issue_id"))
                    .col(string("integration_id"))
                    .col(string("issue_key"))
                    .col(string_null("jira_issue_id"))
                    // `assignee`, `unassigned` or `status`.
                    .col(string("target"))
                    .col(big_integer_null("assignee_user_id"))
                    // A JSON array of the assignee's verified e-mail addresses.
                    .col(text("assignee_emails"))
                    // `resolve` or `unresolve` for a status target.
                    .col(string_null("status_action"))
                    .col(boolean("from_source"))
                    .col(string_null("request_id"))
                    .col(string("traceparent"))
                    .col(timestamp_with_time_zone("created_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_outbound_syncs_created")
                    .table("outbound_syncs")
                    .col("created_at")
                    .to_owned(),
            )
            .await?;
        manager
            .exec_stmt(
                Query::insert()
                    .into_table("notification_log")
                    .columns(["id", "last_sequence", "pruned_through"])
                    .values_panic([2.into(), 0.into(), 0.into()])
                    .to_owned(),
            )
            .await
    }
}
