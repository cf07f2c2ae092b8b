//! Deduplication by signed content: each delivery keeps the SHA-256 of its body,
//! unique per integration, so a captured webhook replayed with a new (or
//! without an) `X-Atlassian-Webhook-Identifier` is a duplicate, not a second
//! delivery. Rows stored before have no digest (NULLs never collide).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::string_null;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table("webhook_deliveries")
                    .add_column(string_null("body_digest"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_webhook_deliveries_body_digest")
                    .table("webhook_deliveries")
                    .col("integration_id")
                    .col("body_digest")
                    .unique()
                    .to_owned(),
            )
            .await
    }
}
