//! Schema migrations, applied in order at start-up (one migration per file).

use sea_orm_migration::prelude::*;

mod m20261126_000001_create_schema;
mod m20261129_000002_tenant_scopes;
mod m20261130_000003_two_way_sync;
mod m20261130_000004_group_participants;

/// The assignment service's migrations.
#[derive(Debug)]
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261126_000001_create_schema::Migration),
            Box::new(m20261129_000002_tenant_scopes::Migration),
            Box::new(m20261130_000003_two_way_sync::Migration),
            Box::new(m20261130_000004_group_participants::Migration),
        ]
    }
}

/// Advisory lock key under which replicas migrate one at a time (PostgreSQL).
pub const MIGRATION_LOCK_KEY: i64 = 0x6173_7369_676e; // "assign"
