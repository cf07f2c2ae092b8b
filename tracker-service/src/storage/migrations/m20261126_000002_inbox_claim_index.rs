//! An index for claiming: pending deliveries in arrival order, so the claim
//! statement walks the oldest pending rows and stops at its limit instead of
//! sorting every pending row (which made claiming cost grow with the backlog).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name("ix_webhook_deliveries_pending_by_id")
                    .table("webhook_deliveries")
                    .col("state")
                    .col("id")
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("ix_webhook_deliveries_pending_by_id")
                    .table("webhook_deliveries")
                    .to_owned(),
            )
            .await
    }
}
