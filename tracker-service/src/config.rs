//! The tracker service's configuration: command-line flags, each with an
//! environment-variable fallback (`--help` lists both).

use std::net::SocketAddr;
use std::time::Duration;

use service_runtime::config::{
    BoundsArgs, DatabaseUrl, GrpcServerArgs, LogFormat, TelemetryArgs, parse_duration,
};
use service_runtime::secret::Secret;

/// Everything the tracker service needs to start.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "tracker-service",
    about = "Creates Jira issues for error groups and turns Jira webhooks into assignment and status changes.",
    version
)]
pub struct Config {
    /// Address of the gRPC API (port 0 picks a free port).
    #[arg(
        help_heading = "Serving",
        long,
        env = "TRACKER_GRPC_ADDR",
        default_value = "127.0.0.1:50051"
    )]
    pub grpc_addr: SocketAddr,

    /// Authentication, TLS and limits of the gRPC server.
    #[command(
        flatten,
        next_help_heading = "gRPC server: authentication, TLS, limits"
    )]
    pub grpc: GrpcServerArgs,

    /// Address of the HTTP endpoint: Jira webhooks (`POST /webhooks/jira/{id}`),
    /// `/healthz` and `/metrics`.
    #[arg(
        help_heading = "Serving",
        long,
        env = "TRACKER_HTTP_ADDR",
        default_value = "127.0.0.1:8051"
    )]
    pub http_addr: SocketAddr,

    /// Database URL: `sqlite://path?mode=rwc` (created on first run) or
    /// `postgres://user@host/db`.
    #[arg(
        help_heading = "Database",
        long,
        env = "TRACKER_DATABASE_URL",
        default_value = "sqlite://data/tracker.db?mode=rwc"
    )]
    pub database_url: DatabaseUrl,

    /// Most database connections.
    #[arg(
        help_heading = "Database",
        long,
        env = "TRACKER_DB_MAX_CONNECTIONS",
        default_value_t = 16
    )]
    pub db_max_connections: u32,

    /// How long a request waits for a database connection before it fails (a
    /// webhook then gets 503, so Jira delivers it again).
    #[arg(help_heading = "Database", long, env = "TRACKER_DB_ACQUIRE_TIMEOUT", default_value = "5s", value_parser = parse_duration)]
    pub db_acquire_timeout: Duration,

    /// Statement and lock timeouts, and the shutdown grace.
    #[command(flatten, next_help_heading = "Database and shutdown bounds")]
    pub bounds: BoundsArgs,

    /// The assignment service's gRPC URL.
    #[arg(
        help_heading = "Assignment service",
        long,
        env = "TRACKER_ASSIGNMENT_URL",
        default_value = "http://127.0.0.1:50061"
    )]
    pub assignment_url: String,

    /// The bearer token this tracker presents to the assignment service.
    #[arg(
        help_heading = "Assignment service",
        long,
        env = "TRACKER_ASSIGNMENT_TOKEN",
        hide_env_values = true
    )]
    pub assignment_token: Option<Secret<String>>,

    /// PEM CA certificate to verify the assignment service's TLS certificate
    /// (with an `https://` assignment URL).
    #[arg(
        help_heading = "Assignment service",
        long,
        env = "TRACKER_ASSIGNMENT_CA_CERT"
    )]
    pub assignment_ca_cert: Option<std::path::PathBuf>,

    /// Deadline of each call to the assignment service.
    #[arg(help_heading = "Assignment service", long, env = "TRACKER_ASSIGNMENT_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub assignment_timeout: Duration,

    /// Most assignee changes carried to the assignment service in one call
    /// (SyncAssigneeInboundBatch; concurrent deliveries share it); 0 or 1: one
    /// SyncAssigneeInbound call per change.
    #[arg(help_heading = "Assignment service", long, env = "TRACKER_ASSIGNMENT_BATCH", default_value_t = 64, value_parser = clap::value_parser!(u16).range(0..=64))]
    pub assignment_batch: u16,

    /// Largest webhook body accepted (bytes); larger ones get 413.
    #[arg(help_heading = "Webhooks", long, env = "TRACKER_WEBHOOK_BODY_LIMIT", default_value_t = 1024 * 1024)]
    pub webhook_body_limit: usize,

    /// How long a client may take to send a request's headers, and the grace
    /// before a webhook body must arrive at `--webhook-min-body-rate`: a client
    /// slower than that loses its connection, never a legitimate one's slot.
    #[arg(help_heading = "Webhooks", long, env = "TRACKER_WEBHOOK_READ_TIMEOUT", default_value = "5s", value_parser = parse_duration)]
    pub webhook_read_timeout: Duration,

    /// The slowest a webhook body may arrive after the grace (bytes per second).
    #[arg(help_heading = "Webhooks", long, env = "TRACKER_WEBHOOK_MIN_BODY_RATE", default_value_t = 16 * 1024)]
    pub webhook_min_body_rate: u64,

    /// The oldest a webhook may be, by the `timestamp` Jira signs with it;
    /// older ones are replays and are refused (400). Jira retries for about 30
    /// minutes. `0s` disables the check.
    #[arg(help_heading = "Webhooks", long, env = "TRACKER_WEBHOOK_MAX_AGE", default_value = "6h", value_parser = parse_duration)]
    pub webhook_max_age: Duration,

    /// Webhook requests handled at once (once their body is in and verified);
    /// more are answered 503 (Jira retries).
    #[arg(
        help_heading = "Webhooks",
        long,
        env = "TRACKER_WEBHOOK_MAX_IN_FLIGHT",
        default_value_t = 256
    )]
    pub webhook_max_in_flight: usize,

    /// The most deliveries the inbox holds waiting to be applied; beyond it
    /// authentic webhooks are answered 503 with Retry-After (Jira retries)
    /// instead of queued, so a sender that outruns the dispatcher cannot grow
    /// the backlog, and every delivery's wait, without limit. 0: no bound.
    #[arg(
        help_heading = "Webhooks",
        long,
        env = "TRACKER_INBOX_MAX_PENDING",
        default_value_t = 100_000
    )]
    pub inbox_max_pending: u64,

    /// The most work the inbox holds waiting, in time at the dispatchers'
    /// recent pace (deliveries finished per second, by every replica): beyond
    /// it authentic webhooks are answered 503 with Retry-After, as beyond
    /// `--inbox-max-pending`. A bound that holds on any machine, where a count
    /// is seconds on one and minutes on another. It applies once a pace is
    /// measured and never below `--dispatch-concurrency` deliveries; while
    /// nothing finishes (the assignment service down) only the count bounds
    /// the inbox. Mind that refusing for long while a backlog drains asks Jira
    /// to retry for long. 0s: no bound.
    #[arg(help_heading = "Webhooks", long, env = "TRACKER_INBOX_MAX_WAIT", default_value = "0s", value_parser = parse_duration)]
    pub inbox_max_wait: Duration,

    /// Webhooks accepted per second per integration (sustained); more are
    /// answered 429 with Retry-After (Jira retries).
    #[arg(
        help_heading = "Webhooks",
        long,
        env = "TRACKER_WEBHOOK_RATE",
        default_value_t = 1000.0
    )]
    pub webhook_rate: f64,

    /// Webhooks accepted at once per integration above the sustained rate.
    #[arg(
        help_heading = "Webhooks",
        long,
        env = "TRACKER_WEBHOOK_BURST",
        default_value_t = 2000.0
    )]
    pub webhook_burst: f64,

    /// Deliveries applied at once.
    #[arg(
        help_heading = "Applying deliveries and outbound syncs",
        long,
        env = "TRACKER_DISPATCH_CONCURRENCY",
        default_value_t = 128
    )]
    pub dispatch_concurrency: usize,

    /// How often the dispatcher looks for due deliveries when not woken.
    #[arg(help_heading = "Applying deliveries and outbound syncs", long, env = "TRACKER_DISPATCH_POLL_INTERVAL", default_value = "1s", value_parser = parse_duration)]
    pub dispatch_poll_interval: Duration,

    /// How long a replica's claim on a delivery lasts unless renewed (it is
    /// renewed every third of this while the delivery is applied): a replica
    /// that dies frees its claims within this time.
    #[arg(help_heading = "Applying deliveries and outbound syncs", long, env = "TRACKER_DISPATCH_LEASE", default_value = "6s", value_parser = parse_duration)]
    pub dispatch_lease: Duration,

    /// The longest wait between attempts of a delivery.
    #[arg(help_heading = "Applying deliveries and outbound syncs", long, env = "TRACKER_DISPATCH_MAX_BACKOFF", default_value = "60s", value_parser = parse_duration)]
    pub dispatch_max_backoff: Duration,

    /// Outbound syncs (our changes carried to Jira) applied at once.
    #[arg(
        help_heading = "Applying deliveries and outbound syncs",
        long,
        env = "TRACKER_OUTBOUND_CONCURRENCY",
        default_value_t = 64
    )]
    pub outbound_concurrency: usize,

    /// Attempts of an outbound sync that keeps failing transiently (Jira
    /// unavailable, rate-limited) before it is stopped for an operator to
    /// retry; with the backoff capped at `--dispatch-max-backoff` the default
    /// spans about an hour and a half.
    #[arg(
        help_heading = "Applying deliveries and outbound syncs",
        long,
        env = "TRACKER_OUTBOUND_MAX_ATTEMPTS",
        default_value_t = 100
    )]
    pub outbound_max_attempts: i32,

    /// Deadline of one HTTP request to Jira.
    #[arg(help_heading = "Jira", long, env = "TRACKER_JIRA_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub jira_timeout: Duration,

    /// Most attempts of one Jira call (429/503/5xx retries included).
    #[arg(
        help_heading = "Jira",
        long,
        env = "TRACKER_JIRA_MAX_ATTEMPTS",
        default_value_t = 5
    )]
    pub jira_max_attempts: u32,

    /// Most total waiting between attempts of one Jira call.
    #[arg(help_heading = "Jira", long, env = "TRACKER_JIRA_MAX_RETRY_WAIT", default_value = "30s", value_parser = parse_duration)]
    pub jira_max_retry_wait: Duration,

    /// Allow integrations whose Jira is on a loopback or link-local address
    /// (a local simulator in tests and demos). Off: such targets are refused,
    /// so the tracker never sends credentials to itself or to a cloud metadata
    /// service; private networks are allowed either way.
    #[arg(help_heading = "Jira", long, env = "TRACKER_JIRA_ALLOW_LOOPBACK")]
    pub jira_allow_loopback: bool,

    /// Our Atlassian Connect app key (the `iss` of the JWTs we sign).
    #[arg(
        help_heading = "Jira",
        long,
        env = "TRACKER_CONNECT_APP_KEY",
        default_value = "jira-sync"
    )]
    pub connect_app_key: String,

    /// How long Jira create metadata and status lists are reused.
    #[arg(help_heading = "Jira", long, env = "TRACKER_JIRA_METADATA_TTL", default_value = "4m", value_parser = parse_duration)]
    pub jira_metadata_ttl: Duration,

    /// How long an integration read for a webhook or an outbound change is
    /// reused: a change made through another replica's API takes effect here
    /// within this time (through this replica's, at once). `0s` reads it
    /// every time.
    #[arg(help_heading = "Jira", long, env = "TRACKER_INTEGRATION_CACHE_TTL", default_value = "1s", value_parser = parse_duration)]
    pub integration_cache_ttl: Duration,

    /// After a create whose outcome is unknown, how long a retry waits before it
    /// may post again (Jira's search index lags behind creates).
    #[arg(help_heading = "Jira", long, env = "TRACKER_UNKNOWN_OUTCOME_GRACE", default_value = "30s", value_parser = parse_duration)]
    pub unknown_outcome_grace: Duration,

    /// Delivered webhooks are pruned after this age (failed ones are kept).
    #[arg(help_heading = "Retention", long, env = "TRACKER_INBOX_RETENTION", default_value = "7d", value_parser = parse_duration)]
    pub inbox_retention: Duration,

    /// How long stored responses of mutating calls are kept (AIP-155).
    #[arg(help_heading = "Retention", long, env = "TRACKER_REQUEST_ID_RETENTION", default_value = "7d", value_parser = parse_duration)]
    pub request_id_retention: Duration,

    /// How often retention runs.
    #[arg(help_heading = "Retention", long, env = "TRACKER_RETENTION_INTERVAL", default_value = "1h", value_parser = parse_duration)]
    pub retention_interval: Duration,

    /// This replica's name in delivery leases (default: host and process id).
    #[arg(help_heading = "Serving", long, env = "TRACKER_REPLICA_ID")]
    pub replica_id: Option<String>,

    /// Log format.
    #[arg(help_heading = "Serving", long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Pretty)]
    pub log_format: LogFormat,

    /// Span export (OpenTelemetry).
    #[command(flatten, next_help_heading = "Traces (OpenTelemetry)")]
    pub telemetry: TelemetryArgs,
}

impl Config {
    /// A configuration for tests and tools: both servers on port 0 of 127.0.0.1,
    /// the given database and assignment service, fast retries, defaults for the
    /// rest.
    pub fn for_tests(database_url: DatabaseUrl, assignment_url: String) -> Self {
        Self {
            grpc_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            grpc: GrpcServerArgs::default(),
            http_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            database_url,
            db_max_connections: 8,
            db_acquire_timeout: Duration::from_secs(5),
            bounds: BoundsArgs::default(),
            assignment_url,
            assignment_token: None,
            assignment_ca_cert: None,
            assignment_timeout: Duration::from_secs(5),
            assignment_batch: 64,
            webhook_max_in_flight: 256,
            inbox_max_pending: 100_000,
            inbox_max_wait: Duration::ZERO,
            webhook_read_timeout: Duration::from_secs(5),
            webhook_max_age: Duration::from_secs(6 * 3600),
            webhook_min_body_rate: 16 * 1024,
            webhook_rate: 1000.0,
            webhook_burst: 2000.0,
            webhook_body_limit: 1024 * 1024,
            dispatch_concurrency: 128,
            dispatch_poll_interval: Duration::from_millis(200),
            dispatch_lease: Duration::from_secs(6),
            dispatch_max_backoff: Duration::from_millis(500),
            outbound_concurrency: 64,
            outbound_max_attempts: 100,
            jira_timeout: Duration::from_secs(5),
            jira_max_attempts: 5,
            jira_max_retry_wait: Duration::from_secs(10),
            connect_app_key: "jira-sync".into(),
            jira_allow_loopback: true,
            jira_metadata_ttl: Duration::from_secs(240),
            integration_cache_ttl: Duration::from_secs(1),
            unknown_outcome_grace: Duration::from_secs(30),
            inbox_retention: Duration::from_secs(7 * 86_400),
            request_id_retention: Duration::from_secs(7 * 86_400),
            retention_interval: Duration::from_secs(3600),
            replica_id: None,
            log_format: LogFormat::Pretty,
            telemetry: TelemetryArgs::default(),
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
            "tracker-service",
            "--database-url",
            "postgres://app:db-password-1@db/tracker",
            "--assignment-token",
            "assignment-token-0123456789",
            "--auth-token",
            "ops:admin=ops-token-0123456789abcdef",
        ])
        .expect("the flags parse");
        let shown = format!("{config:?}");
        assert!(
            shown.contains("postgres://app:[redacted]@db/tracker"),
            "{shown}"
        );
        for secret in [
            "db-password-1",
            "assignment-token-0123456789",
            "ops-token-0123456789abcdef",
        ] {
            assert!(!shown.contains(secret), "{secret} shows in {shown}");
        }
    }
}
