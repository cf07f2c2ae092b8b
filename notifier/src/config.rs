//! The notifier's configuration: command-line flags, each with an
//! environment-variable fallback (`--help` lists both).

use std::net::SocketAddr;
use std::time::Duration;

use service_runtime::config::{
    BoundsArgs, DatabaseUrl, GrpcServerArgs, LogFormat, TelemetryArgs, parse_duration,
};
use service_runtime::secret::Secret;

/// Everything the notifier needs to start.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "notifier",
    about = "Delivers the assignment service's notifications to Slack, Discord and signed webhooks.",
    version
)]
pub struct Config {
    /// Address of the gRPC API (destinations, deliveries; port 0 picks a free
    /// port).
    #[arg(
        help_heading = "Serving",
        long,
        env = "NOTIFIER_GRPC_ADDR",
        default_value = "127.0.0.1:50071"
    )]
    pub grpc_addr: SocketAddr,

    /// Authentication, TLS and limits of the gRPC server.
    #[command(
        flatten,
        next_help_heading = "gRPC server: authentication, TLS, limits"
    )]
    pub grpc: GrpcServerArgs,

    /// Address of `/healthz`, `/livez`, `/readyz` and `/metrics`.
    #[arg(
        help_heading = "Serving",
        long,
        env = "NOTIFIER_HTTP_ADDR",
        default_value = "127.0.0.1:8081"
    )]
    pub http_addr: SocketAddr,

    /// Database URL for the notifier's own state (destinations, deliveries,
    /// threads): `sqlite://path?mode=rwc` or `postgres://user@host/db`.
    #[arg(
        help_heading = "Database",
        long,
        env = "NOTIFIER_DATABASE_URL",
        default_value = "sqlite://data/notifier.db?mode=rwc"
    )]
    pub database_url: DatabaseUrl,

    /// Most database connections.
    #[arg(
        help_heading = "Database",
        long,
        env = "NOTIFIER_DB_MAX_CONNECTIONS",
        default_value_t = 8
    )]
    pub db_max_connections: u32,

    /// Statement and lock timeouts, and the shutdown grace.
    #[command(flatten, next_help_heading = "Database and shutdown bounds")]
    pub bounds: BoundsArgs,

    /// The assignment service's gRPC URL.
    #[arg(
        help_heading = "Assignment service",
        long,
        env = "NOTIFIER_ASSIGNMENT_URL",
        default_value = "http://127.0.0.1:50061"
    )]
    pub assignment_url: String,

    /// Bearer token presented to the assignment service (a `service` token).
    #[arg(
        help_heading = "Assignment service",
        long,
        env = "NOTIFIER_ASSIGNMENT_TOKEN",
        hide_env_values = true
    )]
    pub assignment_token: Option<Secret<String>>,

    /// The durable subscriber this notifier acknowledges as (one notifier
    /// process per name).
    #[arg(
        help_heading = "Assignment service",
        long,
        env = "NOTIFIER_SUBSCRIBER_NAME",
        default_value = "notifier"
    )]
    pub subscriber_name: String,

    /// Deliveries in flight at once (to different recipients; one recipient's
    /// are sent one after another).
    #[arg(
        help_heading = "Delivery",
        long,
        env = "NOTIFIER_CONCURRENCY",
        default_value_t = 16
    )]
    pub concurrency: usize,

    /// The longest wait between attempts of a failing delivery.
    #[arg(help_heading = "Delivery", long, env = "NOTIFIER_MAX_BACKOFF", default_value = "5m", value_parser = parse_duration)]
    pub max_backoff: Duration,

    /// How long one request to a chat tool may take.
    #[arg(help_heading = "Delivery", long, env = "NOTIFIER_REQUEST_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub request_timeout: Duration,

    /// Messages per second to one Slack or Discord channel (paced before the
    /// tool rate limits us: Slack allows about one per second per channel);
    /// 0 for no pacing. Webhooks are not paced (only by their 429s).
    #[arg(
        help_heading = "Delivery",
        long,
        env = "NOTIFIER_CHANNEL_RATE",
        default_value_t = 1.0
    )]
    pub channel_rate: f64,

    /// Messages one channel may receive at once before the pace applies.
    #[arg(
        help_heading = "Delivery",
        long,
        env = "NOTIFIER_CHANNEL_BURST",
        default_value_t = 5
    )]
    pub channel_burst: u32,

    /// Slack's Web API base URL.
    #[arg(
        help_heading = "Delivery",
        long,
        env = "NOTIFIER_SLACK_API_URL",
        default_value = "https://slack.com/api"
    )]
    pub slack_api_url: String,

    /// Discord's API base URL.
    #[arg(
        help_heading = "Delivery",
        long,
        env = "NOTIFIER_DISCORD_API_URL",
        default_value = "https://discord.com/api/v10"
    )]
    pub discord_api_url: String,

    /// Accept `http://` webhook URLs (local development and tests); otherwise
    /// webhook destinations must be `https://`.
    #[arg(help_heading = "Delivery", long, env = "NOTIFIER_ALLOW_HTTP_WEBHOOKS")]
    pub allow_http_webhooks: bool,

    /// Log format.
    #[arg(help_heading = "Serving", long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Pretty)]
    pub log_format: LogFormat,

    /// Span export (OpenTelemetry).
    #[command(flatten, next_help_heading = "Traces (OpenTelemetry)")]
    pub telemetry: TelemetryArgs,
}

impl Config {
    /// A configuration for tests and tools: both servers on port 0 of
    /// 127.0.0.1, the given database, assignment service and chat tools, short
    /// back-offs, defaults for the rest.
    pub fn for_tests(database_url: DatabaseUrl, assignment_url: String) -> Self {
        Self {
            grpc_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            grpc: GrpcServerArgs::default(),
            http_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            database_url,
            db_max_connections: 8,
            bounds: BoundsArgs::default(),
            assignment_url,
            assignment_token: None,
            subscriber_name: "notifier".into(),
            concurrency: 16,
            max_backoff: Duration::from_millis(200),
            channel_rate: 0.0,
            channel_burst: 5,
            request_timeout: Duration::from_secs(5),
            slack_api_url: "http://127.0.0.1:9/slack/api".into(),
            discord_api_url: "http://127.0.0.1:9/discord/api/v10".into(),
            allow_http_webhooks: true,
            log_format: LogFormat::Pretty,
            telemetry: TelemetryArgs::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;

    #[test]
    fn defaults_parse_and_tokens_stay_redacted() {
        let config = Config::try_parse_from(["notifier", "--assignment-token", "s3cret-token"])
            .expect("defaults parse");
        assert_eq!(config.concurrency, 16);
        assert_eq!(config.subscriber_name, "notifier");
        assert!(!format!("{config:?}").contains("s3cret-token"));
    }
}
