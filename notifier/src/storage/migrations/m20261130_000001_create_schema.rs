//! The notifier's tables: each user's destination (`destinations`), each
//! notification received and how its delivery stands (`deliveries`), each
//! thread's message at its tool (`threads`), and how far the stream was read
//! and acknowledged (`stream_position`, one row). Plus `processed_requests`
//! for idempotent SetDestination.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{
    big_integer, boolean, integer, string, text, timestamp_with_time_zone,
    timestamp_with_time_zone_null,
};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("destinations")
                    .col(big_integer("user_id").primary_key())
                    .col(string("channel"))
                    .col(text("address"))
                    .col(text("secret"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("deliveries")
                    .col(big_integer("sequence").primary_key())
                    .col(big_integer("recipient"))
                    .col(string("message_key"))
                    .col(boolean("is_update"))
                    // The notification as received (JSON of the domain value).
                    .col(text("notification"))
                    .col(string("state"))
                    .col(string("channel"))
                    .col(text("reason"))
                    .col(integer("attempts"))
                    .col(string("external_id"))
                    .col(timestamp_with_time_zone_null("next_attempt_at"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .to_owned(),
            )
            .await?;
        // The dispatcher's scan: unfinished deliveries in sequence order.
        manager
            .create_index(
                Index::create()
                    .name("deliveries_unfinished")
                    .table("deliveries")
                    .col("state")
                    .col("sequence")
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("deliveries_by_recipient")
                    .table("deliveries")
                    .col("recipient")
                    .col("state")
                    .col("sequence")
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("threads")
                    .col(big_integer("recipient"))
                    .col(string("message_key"))
                    .col(string("channel"))
                    .col(text("address"))
                    .col(string("external_id"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .primary_key(Index::create().col("recipient").col("message_key"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("stream_position")
                    .col(integer("id").primary_key())
                    .col(big_integer("received_through"))
                    .col(big_integer("acknowledged_through"))
                    .to_owned(),
            )
            .await?;
        service_runtime::idempotency::create_table(manager).await
    }

    async fn down(&self, _manager: &SchemaManager) -> Result<(), DbErr> {
        Err(DbErr::Migration("the first schema is not reverted".into()))
    }
}
