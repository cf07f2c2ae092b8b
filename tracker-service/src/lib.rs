//! The tracker service: Jira integrations, issue creation, and the webhook inbox
//! that turns Jira changes into calls to the assignment service.
//!
//! Start at [`startup::Application`].

pub mod api;
pub mod config;
pub mod startup;
pub mod storage;

pub use config::Config;
pub use startup::Application;
