//! sea-orm entities: one module per table, plain rows without relations.

pub mod delivery;
pub mod destination;
pub mod stream_position;
pub mod thread;
