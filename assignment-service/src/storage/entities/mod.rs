//! sea-orm entities: one module per table, plain rows without relations.
//!
//! Queries join explicitly where they need to; rows are turned into domain values
//! by the module that reads them, so these types never cross the API edge.

pub mod activity;
pub mod external_issue;
pub mod group;
pub mod group_assignee;
pub mod group_link;
pub mod group_participant;
pub mod installation;
pub mod integration_install_secret;
pub mod notification;
pub mod notification_log;
pub mod notification_thread;
pub mod organization;
pub mod outbound_sync;
pub mod project;
pub mod project_member;
pub mod subscriber;
pub mod user;
pub mod user_email;
