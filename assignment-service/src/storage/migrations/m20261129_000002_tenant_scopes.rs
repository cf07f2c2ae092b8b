//! Tenant scopes: a user created through an organization's token belongs to it
//! (`users.owner_organization_id`), and an integration may have an install
//! secret that an organization presents to install it
//! (`integration_install_secrets`, the secret's SHA-256 only).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{big_integer_null, string, timestamp_with_time_zone};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table("users")
                    .add_column(big_integer_null("owner_organization_id"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_users_owner")
                    .table("users")
                    .col("owner_organization_id")
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("integration_install_secrets")
                    .col(string("integration_id").primary_key())
                    .col(string("secret_sha256"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .to_owned(),
            )
            .await
    }
}
