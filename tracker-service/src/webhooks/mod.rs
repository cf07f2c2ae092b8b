//! Jira webhooks: authenticity checks, the endpoint, the durable inbox, and the
//! dispatcher that applies deliveries through the assignment service.

pub mod apply;
pub mod authenticity;
pub mod backlog;
pub mod dispatcher;
pub mod inbox;
pub mod inbox_writer;
pub mod intake;
pub mod rate_limit;
pub mod waker;
