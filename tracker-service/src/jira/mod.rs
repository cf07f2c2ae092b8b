//! Talking to Jira: the REST client, Connect JWTs, the create-issue form and the
//! shaping of form values into Jira's `fields`.

pub mod client;
pub mod connect_jwt;
pub mod error;
pub mod fields;
pub mod form;
pub mod model;
pub mod targets;

pub use client::{JiraClient, JiraSettings, Site};
pub use error::JiraError;
