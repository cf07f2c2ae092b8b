//! `jira-sync-client`: what a program needs to use the jira-sync services.
//!
//! - The generated gRPC clients and messages, re-exported from `proto`
//!   ([`assignment`], [`tracker`]).
//! - [`connect`]: a channel with a bearer token and, for `https://`, TLS.
//! - [`Subscriber`]: a notification subscriber that resumes after its cursor
//!   whenever the stream breaks (with backoff), hands progress to the caller,
//!   turns a cursor behind retention into [`SubscribeError::OutOfRange`]
//!   carrying the oldest sequence still available, and, for a durable
//!   subscriber, acknowledges each notification only after its handler
//!   returned.
//!
//! `cargo run -p jira-sync-client --example follow -- http://127.0.0.1:50061`
//! prints notifications as they come.

mod channel;
mod subscriber;

pub use channel::{Authed, ConnectOptions, connect};
pub use proto::assignment::v1 as assignment;
pub use proto::tracker::v1 as tracker;
pub use subscriber::{Event, Start, SubscribeError, Subscriber, SubscriberOptions};
