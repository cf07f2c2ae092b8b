//! Schema migrations, applied in order at start-up (one migration per file).

use sea_orm_migration::prelude::*;

mod m20261126_000001_create_schema;
mod m20261126_000002_inbox_claim_index;
mod m20261129_000003_body_digest;
mod m20261130_000004_outbound_sync;
mod m20261130_000005_issue_flow;
mod m20261201_000006_queue_heads;
mod m20261202_000007_inbox_pending_count;

/// The tracker service's migrations.
#[derive(Debug)]
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261126_000001_create_schema::Migration),
            Box::new(m20261126_000002_inbox_claim_index::Migration),
            Box::new(m20261129_000003_body_digest::Migration),
            Box::new(m20261130_000004_outbound_sync::Migration),
            Box::new(m20261130_000005_issue_flow::Migration),
            Box::new(m20261201_000006_queue_heads::Migration),
            Box::new(m20261202_000007_inbox_pending_count::Migration),
        ]
    }
}

/// Advisory lock key under which replicas migrate one at a time (PostgreSQL).
pub const MIGRATION_LOCK_KEY: i64 = 0x7472_6163_6b72; // "trackr"
