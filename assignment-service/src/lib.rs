//! The assignment service: who is assigned to which error group, changed by Jira
//! through inbound sync, with an audit trail and a notification stream.
//!
//! Start at [`startup::Application`]. The gRPC edge is [`api`]; it converts
//! protobuf messages into [`domain`] values and calls the logic modules
//! ([`directory`], [`groups`], [`external_issues`], [`inbound_sync`]), which own
//! their transactions. [`stream`] serves the notification log to subscribers.

pub mod api;
pub mod commit_log;
pub mod config;
pub mod directory;
pub mod domain;
pub mod error;
pub mod external_issues;
pub mod groups;
pub mod inbound_sync;
pub mod metrics;
pub mod notification_log;
pub mod outbound;
pub mod startup;
pub mod storage;
pub mod stream;
pub mod subscribers;

pub use config::Config;
pub use startup::Application;
