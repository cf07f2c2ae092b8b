//! The tracker's database: entities (one per table) and migrations.

pub mod migrations;
