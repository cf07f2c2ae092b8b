//! The notifier: delivers the assignment service's notifications to the
//! people they are about, in Slack, in Discord, or through a signed webhook,
//! each notification once, edits as edits.
//!
//! It is the durable subscriber most teams would otherwise write. Code map:
//! `config` (flags), `startup` (build and run), `api` (the gRPC API for
//! destinations and deliveries, and its `access` rules), `domain` (what the
//! API parses into), `destinations` and `deliveries` (the notifier's own
//! state, in `storage`), `pipeline` (stream → record → tools → acknowledgement)
//! and `channels` (one module per tool, each classifying the tool's answers).

pub mod access;
pub mod api;
pub mod channels;
pub mod config;
pub mod deliveries;
pub mod destinations;
pub mod domain;
pub mod error;
pub mod metrics;
pub mod pipeline;
pub mod startup;
pub mod storage;

pub use config::Config;
pub use startup::Application;
