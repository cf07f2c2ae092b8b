//! sea-orm entities: one module per table, plain rows without relations.

pub mod integration;
pub mod issue_creation;
pub mod webhook_delivery;
