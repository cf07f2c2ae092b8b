//! The tracker service: Jira integrations, issue creation, and the webhook inbox
//! that turns Jira changes into calls to the assignment service.
//!
//! Start at [`startup::Application`].

pub mod api;
pub mod assignment_client;
pub mod cache;
pub mod config;
pub mod domain;
pub mod error;
pub mod integrations;
pub mod issues;
pub mod jira;
pub mod metrics;
pub mod outbound;
pub mod queue_heads;
pub mod startup;
pub mod storage;
pub mod webhooks;
pub mod worker;

pub use config::Config;
pub use startup::Application;
