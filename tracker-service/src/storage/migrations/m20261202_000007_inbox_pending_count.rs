//! The inbox's pending count, kept as deltas: every transaction that queues
//! deliveries or finishes them adds one row with its change, and a reader sums
//! the rows and folds them into one (see `crate::webhooks::inbox::pending_count`).
//! Counting the pending rows themselves read every one of them; on PostgreSQL
//! with 1 M pending that was a 230 ms parallel sequential scan, which the push-
//! back bound and the inbox gauge ran every half second and every two seconds.
//! Rows, not one counter row, so concurrent writers never wait on each other.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{big_integer, pk_auto};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("inbox_pending_deltas")
                    .col(pk_auto("id").big_integer())
                    .col(big_integer("delta"))
                    .to_owned(),
            )
            .await?;
        // What is pending now is the first delta.
        manager
            .get_connection()
            .execute_unprepared(
                "INSERT INTO inbox_pending_deltas (delta) \
                 SELECT COUNT(*) FROM webhook_deliveries WHERE state = 'pending'",
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table("inbox_pending_deltas").to_owned())
            .await
    }
}
