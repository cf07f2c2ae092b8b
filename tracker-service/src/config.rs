//! The tracker service's configuration: command-line flags, each with an
//! environment-variable fallback (`--help` lists both).

use std::net::SocketAddr;

use service_runtime::config::{DatabaseUrl, LogFormat};

/// Everything the tracker service needs to start.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "tracker-service",
    about = "Creates Jira issues for error groups and turns Jira webhooks into assignment and status changes.",
    version
)]
pub struct Config {
    /// Address of the gRPC API (port 0 picks a free port).
    #[arg(long, env = "TRACKER_GRPC_ADDR", default_value = "127.0.0.1:50051")]
    pub grpc_addr: SocketAddr,

    /// Address of the HTTP endpoint: Jira webhooks (`POST /webhooks/jira/{id}`),
    /// `/healthz` and `/metrics`.
    #[arg(long, env = "TRACKER_HTTP_ADDR", default_value = "127.0.0.1:8051")]
    pub http_addr: SocketAddr,

    /// Database URL: `sqlite://path?mode=rwc` (created on first run) or
    /// `postgres://user@host/db`.
    #[arg(
        long,
        env = "TRACKER_DATABASE_URL",
        default_value = "sqlite://data/tracker.db?mode=rwc"
    )]
    pub database_url: DatabaseUrl,

    /// Most database connections.
    #[arg(long, env = "TRACKER_DB_MAX_CONNECTIONS", default_value_t = 16)]
    pub db_max_connections: u32,

    /// The assignment service's gRPC URL.
    #[arg(
        long,
        env = "TRACKER_ASSIGNMENT_URL",
        default_value = "http://127.0.0.1:50061"
    )]
    pub assignment_url: String,

    /// Log format.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Pretty)]
    pub log_format: LogFormat,
}

impl Config {
    /// A configuration for tests and tools: both servers on port 0 of 127.0.0.1,
    /// the given database and assignment service, defaults for the rest.
    pub fn for_tests(database_url: DatabaseUrl, assignment_url: String) -> Self {
        Self {
            grpc_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            http_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            database_url,
            db_max_connections: 8,
            assignment_url,
            log_format: LogFormat::Pretty,
        }
    }
}
