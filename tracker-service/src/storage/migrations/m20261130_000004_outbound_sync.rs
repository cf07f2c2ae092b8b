//! Outbound sync: what the assignment service's outbound log asked Jira to
//! show (`outbound_syncs`, one row per log entry, applied in order per issue
//! and direction), the position read up to (`outbound_cursor`, one row), and
//! each organization's status mapping per Jira project (`status_mappings`).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{
    big_integer, big_integer_null, boolean, integer, string, string_null, text, text_null,
    timestamp_with_time_zone, timestamp_with_time_zone_null,
};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("outbound_syncs")
                    .col(
                        ColumnDef::new("id")
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(big_integer("source_sequence").unique_key())
                    .col(big_integer("organization_id"))
                    .col(big_integer("group_id"))
                    .col(string("integration_id"))
                    .col(string("issue_key"))
                    .col(string_null("jira_issue_id"))
                    // Direction and issue: entries with the same key apply in
                    // source order, one at a time.
                    .col(string("ordering_key"))
                    .col(string("target"))
                    .col(big_integer_null("assignee_user_id"))
                    .col(text("assignee_emails"))
                    .col(string_null("status_action"))
                    .col(boolean("from_source"))
                    .col(string_null("request_id"))
                    .col(string("traceparent"))
                    .col(string("state"))
                    .col(text_null("result"))
                    .col(text_null("last_error"))
                    .col(integer("attempts"))
                    .col(timestamp_with_time_zone_null("next_attempt_at"))
                    .col(string_null("lease_owner"))
                    .col(timestamp_with_time_zone_null("lease_until"))
                    // What was sent (an account id, a user name or a status id),
                    // to recognise Jira's webhook about it.
                    .col(string_null("sent_value"))
                    .col(boolean("echo_expected"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_outbound_syncs_queue")
                    .table("outbound_syncs")
                    .col("integration_id")
                    .col("ordering_key")
                    .col("source_sequence")
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_outbound_syncs_state")
                    .table("outbound_syncs")
                    .col("state")
                    .col("source_sequence")
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("outbound_cursor")
                    .col(integer("id").primary_key())
                    .col(big_integer("last_sequence"))
                    .to_owned(),
            )
            .await?;
        manager
            .exec_stmt(
                Query::insert()
                    .into_table("outbound_cursor")
                    .columns(["id", "last_sequence"])
                    .values_panic([1.into(), 0.into()])
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("status_mappings")
                    .col(string("integration_id"))
                    .col(big_integer("organization_id"))
                    .col(string("jira_project_id"))
                    .col(string("on_resolve_status_id"))
                    .col(string("on_unresolve_status_id"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .primary_key(
                        Index::create()
                            .col("integration_id")
                            .col("organization_id")
                            .col("jira_project_id"),
                    )
                    .to_owned(),
            )
            .await
    }
}
