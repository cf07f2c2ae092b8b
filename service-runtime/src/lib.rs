//! What both services run on.
//!
//! Nothing here knows about groups or Jira: this crate is the plumbing that the
//! tracker and the assignment service share so that each of them is only its own
//! domain. Configuration types, logging, shutdown, serving gRPC (with health and
//! reflection) and HTTP (`/healthz`, `/metrics`), connecting to and migrating the
//! database (with statements in fixed shapes), turning errors into `google.rpc.Status` details, page tokens
//! (AIP-158), and the identifiers the two services exchange.

pub mod auth;
pub mod config;
pub mod database;
pub mod error;
pub mod grpc;
pub mod grpc_gate;
pub mod idempotency;
pub mod ids;
pub mod metrics;
pub mod ops_http;
pub mod pagination;
pub mod secret;
pub mod serve;
pub mod shapes;
pub mod shutdown;
pub mod status;
pub mod telemetry;
pub mod text;
pub mod time;
pub mod tls;
