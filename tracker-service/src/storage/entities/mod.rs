//! sea-orm entities: one module per table, plain rows without relations.

pub mod integration;
pub mod issue_creation;
pub mod issue_default;
pub mod outbound_cursor;
pub mod outbound_sync;
pub mod queue_head;
pub mod status_mapping;
pub mod webhook_delivery;
