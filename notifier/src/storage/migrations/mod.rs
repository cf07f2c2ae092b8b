//! Schema migrations, applied in order at start-up (one migration per file).

use sea_orm_migration::prelude::*;

mod m20261130_000001_create_schema;

/// The notifier's migrations.
#[derive(Debug)]
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(m20261130_000001_create_schema::Migration)]
    }
}

/// Advisory lock key under which replicas migrate one at a time (PostgreSQL).
pub const MIGRATION_LOCK_KEY: i64 = 0x6e6f_7469_6679; // "notify"
