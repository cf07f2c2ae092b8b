//! Domain types of the tracker: integrations and their credentials, creation
//! requests, webhook deliveries. They parse, so invalid ones cannot be built; the
//! API edge converts protobuf messages into them.

pub mod delivery;
pub mod integration;
pub mod outbound;
pub mod sync;

pub use integration::{
    AuthMode, BaseUrl, Credentials, GroupLinkTemplate, Integration, IntegrationSummary,
};
