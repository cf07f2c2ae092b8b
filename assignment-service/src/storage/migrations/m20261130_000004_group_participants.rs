//! Group participants: users who follow a group (subscribed explicitly, or
//! made participants by being assigned), told of its assignment and status
//! changes.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{big_integer, string, timestamp_with_time_zone};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("group_participants")
                    .col(big_integer("group_id"))
                    .col(big_integer("user_id"))
                    // `subscribed` or `assignee`.
                    .col(string("reason"))
                    .col(timestamp_with_time_zone("created_at"))
                    .primary_key(Index::create().col("group_id").col("user_id"))
                    .to_owned(),
            )
            .await
    }
}
