//! Configuration types shared by both binaries.
//!
//! Each service defines its own `Config` (a `clap` parser whose flags fall back to
//! environment variables); the pieces they have in common live here.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use crate::secret::Secret;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable, coloured when the output is a terminal.
    #[default]
    Pretty,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Where a service keeps its data: a SQLite file (the embedded default) or a
/// PostgreSQL database.
///
/// The URL may carry a password, so `Debug` hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl {
    url: String,
    kind: DatabaseKind,
}

/// The database engines the services run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatabaseKind {
    /// An embedded SQLite file; one process writes it.
    Sqlite,
    /// A PostgreSQL server; several replicas may share it.
    Postgres,
}

/// Why a database URL was refused.
#[derive(Debug, thiserror::Error)]
#[error("database URL must start with sqlite: or postgres:// (got {scheme:?})")]
pub struct DatabaseUrlError {
    scheme: String,
}

impl DatabaseUrl {
    /// The URL as given, for the driver.
    pub fn as_str(&self) -> &str {
        &self.url
    }

    /// Which engine the URL points at.
    pub fn kind(&self) -> DatabaseKind {
        self.kind
    }

    /// A SQLite file URL that creates the file on first use.
    pub fn sqlite_file(path: &Path) -> Self {
        Self {
            url: format!("sqlite://{}?mode=rwc", path.display()),
            kind: DatabaseKind::Sqlite,
        }
    }

    /// For SQLite file URLs: the file's path, so its directory can be created.
    pub fn sqlite_path(&self) -> Option<&Path> {
        if self.kind != DatabaseKind::Sqlite {
            return None;
        }
        let rest = self
            .url
            .strip_prefix("sqlite://")
            .or_else(|| self.url.strip_prefix("sqlite:"))?;
        let path = rest.split('?').next().unwrap_or(rest);
        if path.is_empty() || path.starts_with(":memory:") {
            None
        } else {
            Some(Path::new(path))
        }
    }
}

impl FromStr for DatabaseUrl {
    type Err = DatabaseUrlError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let kind = if s.starts_with("sqlite:") {
            DatabaseKind::Sqlite
        } else if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            DatabaseKind::Postgres
        } else {
            return Err(DatabaseUrlError {
                scheme: s.split(':').next().unwrap_or_default().to_owned(),
            });
        };
        Ok(Self {
            url: s.to_owned(),
            kind,
        })
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // postgres://user:password@host/db -> postgres://user:[redacted]@host/db
        let shown = match (self.url.find("://"), self.url.rfind('@')) {
            (Some(scheme_end), Some(at)) if at > scheme_end => {
                let userinfo = &self.url[scheme_end + 3..at];
                match userinfo.split_once(':') {
                    Some((user, _)) => format!(
                        "{}{}:[redacted]{}",
                        &self.url[..scheme_end + 3],
                        user,
                        &self.url[at..]
                    ),
                    None => self.url.clone(),
                }
            }
            _ => self.url.clone(),
        };
        f.write_str(&shown)
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_url_hides_password() {
        let url: DatabaseUrl = "postgres://app:hunter2@db:5432/x"
            .parse()
            .expect("valid url");
        assert_eq!(url.kind(), DatabaseKind::Postgres);
        assert_eq!(format!("{url:?}"), "postgres://app:[redacted]@db:5432/x");
        assert!(!format!("{url}").contains("hunter2"));
    }

    #[test]
    fn sqlite_path_is_extracted() {
        let url: DatabaseUrl = "sqlite://data/a.db?mode=rwc".parse().expect("valid url");
        assert_eq!(url.sqlite_path(), Some(Path::new("data/a.db")));
        let mem: DatabaseUrl = "sqlite::memory:".parse().expect("valid url");
        assert_eq!(mem.sqlite_path(), None);
    }

    #[test]
    fn unknown_scheme_is_refused() {
        let err = "mysql://x".parse::<DatabaseUrl>().expect_err("refused");
        assert!(err.to_string().contains("mysql"));
    }
}

/// Parses a duration such as `250ms`, `10s`, `5m`, `2h` or `7d` (for flags).
///
/// # Errors
/// When the text is not a number followed by one of those units.
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("{s:?} has no unit (use ms, s, m, h or d)"))?;
    let (number, unit) = s.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{s:?} does not start with a number"))?;
    let seconds = |k: u64| std::time::Duration::from_secs(n.saturating_mul(k));
    match unit {
        "ms" => Ok(std::time::Duration::from_millis(n)),
        "s" => Ok(seconds(1)),
        "m" => Ok(seconds(60)),
        "h" => Ok(seconds(3600)),
        "d" => Ok(seconds(86_400)),
        other => Err(format!("unknown unit {other:?} (use ms, s, m, h or d)")),
    }
}

#[cfg(test)]
mod duration_tests {
    use std::time::Duration;

    use super::parse_duration;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert!(parse_duration("10").is_err());
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("3w").is_err());
    }
}

/// Flags for exporting traces, shared by both services.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TelemetryArgs {
    /// Export spans over OTLP/gRPC to this collector (`http://host:4317`, or
    /// `https://` with the system's roots); off when unset. `OTEL_SERVICE_NAME`,
    /// `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER(_ARG)` and
    /// `OTEL_EXPORTER_OTLP_HEADERS` apply.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
}

/// Flags bounding how long database work and shutdown may take, shared by both
/// services.
#[derive(Debug, Clone, clap::Args)]
pub struct BoundsArgs {
    /// PostgreSQL: the longest one statement may run before the server cancels
    /// it (it is then retried, or the call answers UNAVAILABLE); 0 for no limit.
    #[arg(long, env = "DB_STATEMENT_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub db_statement_timeout: std::time::Duration,

    /// PostgreSQL: the longest a statement waits for a row or table lock; 0
    /// for no limit.
    #[arg(long, env = "DB_LOCK_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub db_lock_timeout: std::time::Duration,

    /// After SIGTERM: how long in-flight requests and work may take to finish
    /// before the process stops waiting, cancels its queries and exits.
    #[arg(long, env = "SHUTDOWN_GRACE", default_value = "10s", value_parser = parse_duration)]
    pub shutdown_grace: std::time::Duration,
}

impl Default for BoundsArgs {
    fn default() -> Self {
        Self {
            db_statement_timeout: std::time::Duration::from_secs(30),
            db_lock_timeout: std::time::Duration::from_secs(10),
            shutdown_grace: std::time::Duration::from_secs(10),
        }
    }
}

impl BoundsArgs {
    /// A pool with these timeouts, `max_connections` and `acquire_timeout`,
    /// its connections named `application_name`.
    pub fn pool(
        &self,
        max_connections: u32,
        acquire_timeout: std::time::Duration,
        application_name: String,
    ) -> crate::database::PoolSettings {
        let nonzero = |d: std::time::Duration| (!d.is_zero()).then_some(d);
        crate::database::PoolSettings {
            max_connections,
            acquire_timeout,
            statement_timeout: nonzero(self.db_statement_timeout),
            lock_timeout: nonzero(self.db_lock_timeout),
            application_name,
            ..crate::database::PoolSettings::default()
        }
    }
}

/// Flags of a gRPC server shared by both services: authentication, TLS and
/// limits.
#[derive(Debug, Clone, clap::Args)]
pub struct GrpcServerArgs {
    /// A bearer token the gRPC server accepts, as NAME:ROLE=TOKEN, ROLE being
    /// admin, service or org:<organization id> (repeatable; in the environment,
    /// comma-separated). None configured: authentication is off and every call
    /// acts as admin.
    #[arg(
        long = "auth-token",
        env = "GRPC_AUTH_TOKENS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub auth_tokens: Vec<Secret<String>>,

    /// A file of NAME:ROLE=TOKEN lines, added to `--auth-token`; a token may be
    /// stored hashed as `sha256:<hex digest>`.
    #[arg(long, env = "GRPC_AUTH_TOKENS_FILE")]
    pub auth_tokens_file: Option<std::path::PathBuf>,

    /// Require a token for health checks and reflection too.
    #[arg(long, env = "GRPC_PROTECT_HEALTH_AND_REFLECTION")]
    pub protect_health_and_reflection: bool,

    /// PEM certificate chain: serve gRPC over TLS (with `--tls-key`).
    #[arg(long, env = "GRPC_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<std::path::PathBuf>,

    /// PEM private key of `--tls-cert`.
    #[arg(long, env = "GRPC_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<std::path::PathBuf>,

    /// Most unary calls in flight; one more is answered RESOURCE_EXHAUSTED.
    #[arg(long, env = "GRPC_MAX_IN_FLIGHT", default_value_t = 512)]
    pub max_in_flight: usize,

    /// Largest request message accepted, in bytes.
    #[arg(long, env = "GRPC_MAX_MESSAGE_BYTES", default_value_t = 4 * 1024 * 1024)]
    pub max_message_bytes: usize,
}

impl Default for GrpcServerArgs {
    fn default() -> Self {
        Self {
            auth_tokens: Vec::new(),
            auth_tokens_file: None,
            protect_health_and_reflection: false,
            tls_cert: None,
            tls_key: None,
            max_in_flight: 512,
            max_message_bytes: 4 * 1024 * 1024,
        }
    }
}

impl GrpcServerArgs {
    /// The gate configuration; `unlimited` lists the streaming paths that do not
    /// count against the in-flight limit.
    ///
    /// # Errors
    /// When a token entry or the tokens file is invalid.
    pub fn gate(
        &self,
        unlimited: &[&str],
        rules: crate::auth::AccessRules,
    ) -> anyhow::Result<crate::grpc_gate::GateConfig> {
        let mut entries: Vec<String> = self
            .auth_tokens
            .iter()
            .map(|t| t.expose().clone())
            .collect();
        if let Some(path) = &self.auth_tokens_file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
            entries.extend(text.lines().map(str::to_owned));
        }
        let tokens = crate::auth::AuthTokens::parse(entries.iter().map(String::as_str))?;
        if tokens.enabled() {
            tracing::info!(tokens = ?tokens, "gRPC authentication on");
        } else {
            tracing::warn!(
                "gRPC authentication is off: no --auth-token given, every caller acts as admin; configure tokens outside a local set-up"
            );
        }
        Ok(crate::grpc_gate::GateConfig {
            tokens,
            rules,
            protect_health_and_reflection: self.protect_health_and_reflection,
            max_in_flight: Some(self.max_in_flight),
            unlimited: unlimited.iter().map(|p| (*p).to_owned()).collect(),
        })
    }

    /// The TLS configuration, when a certificate is configured.
    ///
    /// # Errors
    /// When the files cannot be read.
    pub fn tls(&self) -> anyhow::Result<Option<tonic::transport::server::ServerTlsConfig>> {
        match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => {
                Ok(Some(crate::grpc::server_tls(cert, key).map_err(|e| {
                    anyhow::anyhow!("reading the TLS certificate or key: {e}")
                })?))
            }
            _ => Ok(None),
        }
    }
}
