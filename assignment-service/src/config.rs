//! The assignment service's configuration: command-line flags, each with an
//! environment-variable fallback (`--help` lists both).

use std::net::SocketAddr;
use std::time::Duration;

use service_runtime::config::{
    BoundsArgs, DatabaseUrl, GrpcServerArgs, LogFormat, TelemetryArgs, parse_duration,
};

/// Everything the assignment service needs to start.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "assignment-service",
    about = "Assigns and resolves error groups from Jira changes, and streams notifications about them.",
    version
)]
pub struct Config {
    /// Address of the gRPC API (port 0 picks a free port).
    #[arg(
        help_heading = "Serving",
        long,
        env = "ASSIGNMENT_GRPC_ADDR",
        default_value = "127.0.0.1:50061"
    )]
    pub grpc_addr: SocketAddr,

    /// Authentication, TLS and limits of the gRPC server.
    #[command(
        flatten,
        next_help_heading = "gRPC server: authentication, TLS, limits"
    )]
    pub grpc: GrpcServerArgs,

    /// Address of the operations HTTP endpoint (`/healthz`, `/metrics`).
    #[arg(
        help_heading = "Serving",
        long,
        env = "ASSIGNMENT_HTTP_ADDR",
        default_value = "127.0.0.1:8061"
    )]
    pub http_addr: SocketAddr,

    /// Database URL: `sqlite://path?mode=rwc` (created on first run) or
    /// `postgres://user@host/db`.
    #[arg(
        help_heading = "Database",
        long,
        env = "ASSIGNMENT_DATABASE_URL",
        default_value = "sqlite://data/assignment.db?mode=rwc"
    )]
    pub database_url: DatabaseUrl,

    /// Most database connections.
    #[arg(
        help_heading = "Database",
        long,
        env = "ASSIGNMENT_DB_MAX_CONNECTIONS",
        default_value_t = 16
    )]
    pub db_max_connections: u32,

    /// Database connections reserved for the notification stream's reads.
    #[arg(
        help_heading = "Database",
        long,
        env = "ASSIGNMENT_STREAM_DB_CONNECTIONS",
        default_value_t = 4
    )]
    pub stream_db_connections: u32,

    /// Statement and lock timeouts, and the shutdown grace.
    #[command(flatten, next_help_heading = "Database and shutdown bounds")]
    pub bounds: BoundsArgs,

    /// Log format.
    #[arg(help_heading = "Serving", long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Pretty)]
    pub log_format: LogFormat,

    /// Span export (OpenTelemetry).
    #[command(flatten, next_help_heading = "Traces (OpenTelemetry)")]
    pub telemetry: TelemetryArgs,

    /// How long a stream may stay silent before it gets a progress message.
    #[arg(help_heading = "Notification stream", long, env = "ASSIGNMENT_PROGRESS_INTERVAL", default_value = "10s", value_parser = parse_duration)]
    pub progress_interval: Duration,

    /// Notifications older than this are pruned.
    #[arg(help_heading = "Retention", long, env = "ASSIGNMENT_RETENTION_MAX_AGE", default_value = "7d", value_parser = parse_duration)]
    pub retention_max_age: Duration,

    /// At most this many notifications are kept (the oldest are pruned).
    #[arg(
        help_heading = "Retention",
        long,
        env = "ASSIGNMENT_RETENTION_MAX_COUNT",
        default_value_t = 1_000_000
    )]
    pub retention_max_count: u64,

    /// How often retention runs.
    #[arg(help_heading = "Retention", long, env = "ASSIGNMENT_RETENTION_INTERVAL", default_value = "1m", value_parser = parse_duration)]
    pub retention_interval: Duration,

    /// How long stored responses of mutating calls are kept for idempotent
    /// replays (AIP-155).
    #[arg(help_heading = "Retention", long, env = "ASSIGNMENT_REQUEST_ID_RETENTION", default_value = "7d", value_parser = parse_duration)]
    pub request_id_retention: Duration,

    /// How many batches of new notifications (up to 512 each) the shared
    /// fan-out ring holds; a subscriber further behind falls back to reading
    /// from the database.
    #[arg(
        help_heading = "Notification stream",
        long,
        env = "ASSIGNMENT_STREAM_RING_BATCHES",
        default_value_t = 1024
    )]
    pub stream_ring_batches: usize,

    /// Most notification streams open at once; one more is RESOURCE_EXHAUSTED
    /// (`TOO_MANY_STREAMS`).
    #[arg(
        help_heading = "Notification stream",
        long,
        env = "ASSIGNMENT_MAX_STREAMS",
        default_value_t = 4096
    )]
    pub max_streams: usize,

    /// Most notification streams one client connection may open (a client
    /// multiplexing many subscribers opens more connections).
    #[arg(
        help_heading = "Notification stream",
        long,
        env = "ASSIGNMENT_MAX_STREAMS_PER_CONNECTION",
        default_value_t = 100
    )]
    pub max_streams_per_connection: usize,

    /// How often the stream polls the database for notifications committed by
    /// other replicas, in case a wake-up was missed.
    #[arg(help_heading = "Notification stream", long, env = "ASSIGNMENT_POLL_INTERVAL", default_value = "1s", value_parser = parse_duration)]
    pub poll_interval: Duration,
}

impl Config {
    /// A configuration for tests and tools: both servers on port 0 of 127.0.0.1,
    /// the given database, defaults for the rest.
    pub fn for_tests(database_url: DatabaseUrl) -> Self {
        Self {
            grpc_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            grpc: GrpcServerArgs::default(),
            http_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            database_url,
            db_max_connections: 8,
            stream_db_connections: 2,
            bounds: BoundsArgs::default(),
            log_format: LogFormat::Pretty,
            telemetry: TelemetryArgs::default(),
            progress_interval: Duration::from_secs(10),
            retention_max_age: Duration::from_secs(7 * 86_400),
            retention_max_count: 1_000_000,
            retention_interval: Duration::from_secs(60),
            request_id_retention: Duration::from_secs(7 * 86_400),
            stream_ring_batches: 1024,
            poll_interval: Duration::from_secs(1),
            max_streams: 4096,
            max_streams_per_connection: 100,
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::Config;

    /// `--help` groups the flags by topic: every flag has a heading.
    #[test]
    fn every_flag_has_a_help_heading() {
        use clap::CommandFactory as _;
        let command = Config::command();
        let unheaded: Vec<String> = command
            .get_arguments()
            .filter(|a| !matches!(a.get_id().as_str(), "help" | "version"))
            .filter(|a| a.get_help_heading().is_none())
            .map(|a| a.get_id().to_string())
            .collect();
        assert!(unheaded.is_empty(), "flags without a heading: {unheaded:?}");
    }

    /// The configuration is logged at start-up: none of its secrets may show.
    #[test]
    fn the_logged_configuration_shows_no_secret() {
        let config = Config::try_parse_from([
            "assignment-service",
            "--database-url",
            "postgres://app:db-password-1@db/assignment",
            "--auth-token",
            "ops:admin=ops-token-0123456789abcdef",
        ])
        .expect("the flags parse");
        let shown = format!("{config:?}");
        assert!(
            shown.contains("postgres://app:[redacted]@db/assignment"),
            "{shown}"
        );
        for secret in ["db-password-1", "ops-token-0123456789abcdef"] {
            assert!(!shown.contains(secret), "{secret} shows in {shown}");
        }
    }
}
