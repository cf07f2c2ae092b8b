//! The notifier's database: entities (one per table) and migrations.

pub mod entities;
pub mod migrations;
