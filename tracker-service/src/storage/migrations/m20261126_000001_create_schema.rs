//! The tracker's first schema: integrations, issue creations (with their link
//! outbox), the webhook inbox, and idempotency records.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

fn index(table: &'static str, name: &str, cols: &[&'static str]) -> IndexCreateStatement {
    let mut stmt = Index::create();
    stmt.name(format!("ix_{table}_{name}")).table(table);
    for col in cols {
        stmt.col(*col);
    }
    stmt.to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("integrations")
                    .col(string("id").primary_key())
                    .col(string("display_name"))
                    .col(text("base_url"))
                    .col(string("auth_mode"))
                    .col(string("account_email"))
                    // Secrets: never returned by the API, never logged.
                    .col(text("credential"))
                    .col(string_null("connect_client_key"))
                    .col(text_null("webhook_secret"))
                    .col(boolean("email_api_allowed"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index({
                let mut i = index(
                    "integrations",
                    "connect_client_key",
                    &["connect_client_key"],
                );
                i.unique();
                i
            })
            .await?;

        // One row per CreateIssue: written before Jira is called, so a create
        // whose outcome is unknown is found again on retry; it then carries the
        // link to the assignment service until that link is done (the outbox).
        manager
            .create_table(
                Table::create()
                    .table("issue_creations")
                    .col(string("id").primary_key())
                    .col(string("fingerprint"))
                    .col(string("integration_id"))
                    .col(big_integer("organization_id"))
                    .col(text("group_ids"))
                    .col(string("marker"))
                    .col(string("state"))
                    .col(string_null("jira_key"))
                    .col(string_null("jira_id"))
                    .col(text("url"))
                    .col(text("title"))
                    .col(text("description"))
                    .col(string("link_state"))
                    .col(text("link_error"))
                    .col(integer("link_attempts"))
                    .col(timestamp_with_time_zone_null("next_link_at"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "issue_creations",
                "link_due",
                &["link_state", "next_link_at"],
            ))
            .await?;

        // The webhook inbox: every acknowledged delivery, applied in arrival order
        // per Jira issue (`ordering_key`).
        manager
            .create_table(
                Table::create()
                    .table("webhook_deliveries")
                    .col(big_pk_auto("id"))
                    .col(string("integration_id"))
                    .col(string("delivery_key"))
                    .col(string("event_type"))
                    .col(string("issue_key"))
                    .col(string("jira_issue_id"))
                    .col(string("ordering_key"))
                    .col(timestamp_with_time_zone("received_at"))
                    .col(text("headers"))
                    .col(text("body"))
                    .col(string("traceparent"))
                    .col(string("state"))
                    .col(integer("attempts"))
                    .col(text("last_error"))
                    .col(timestamp_with_time_zone_null("next_attempt_at"))
                    .col(text("actions"))
                    .col(timestamp_with_time_zone_null("completed_at"))
                    .col(string_null("lease_owner"))
                    .col(timestamp_with_time_zone_null("lease_until"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index({
                let mut i = index(
                    "webhook_deliveries",
                    "dedup",
                    &["integration_id", "delivery_key"],
                );
                i.unique();
                i
            })
            .await?;
        manager
            .create_index(index(
                "webhook_deliveries",
                "pending",
                &["state", "ordering_key", "id"],
            ))
            .await?;
        manager
            .create_index(index(
                "webhook_deliveries",
                "issue_key",
                &["issue_key", "id"],
            ))
            .await?;
        manager
            .create_index(index(
                "webhook_deliveries",
                "completed",
                &["state", "completed_at"],
            ))
            .await?;

        service_runtime::idempotency::create_table(manager).await?;
        Ok(())
    }
}
