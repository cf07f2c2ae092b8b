//! Logging set-up: one global `tracing` subscriber per process.
//!
//! The filter follows `RUST_LOG` (default `info`, with chatty dependencies
//! quietened); the format is pretty for people or JSON for collectors. Colour
//! codes are written only when standard output is a terminal (never into
//! files, CI logs or journald), and never in JSON.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

use crate::config::LogFormat;

/// The filter used when `RUST_LOG` is not set.
pub const DEFAULT_FILTER: &str =
    "info,sqlx=warn,sea_orm=warn,sea_orm_migration=warn,h2=warn,hyper=warn,tower=warn";

/// Installs the global subscriber. Call it once, from `main`; tests leave logging
/// off (or install their own).
///
/// # Errors
/// When a global subscriber is already installed.
pub fn init(format: LogFormat) -> Result<(), tracing_subscriber::util::TryInitError> {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let registry = tracing_subscriber::registry().with(filter);
    match format {
        LogFormat::Pretty => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_target(true)
                    .with_ansi(colour(
                        format,
                        std::io::IsTerminal::is_terminal(&std::io::stdout()),
                    )),
            )
            .try_init(),
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(false)
                    .json()
                    .with_current_span(true)
                    .with_span_list(false),
            )
            .try_init(),
    }
}

/// Whether logs in `format` are coloured when standard output is (or is not)
/// a terminal.
fn colour(format: LogFormat, terminal: bool) -> bool {
    format == LogFormat::Pretty && terminal
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_pretty_logs_on_a_terminal_are_coloured() {
        assert!(colour(LogFormat::Pretty, true));
        assert!(!colour(LogFormat::Pretty, false));
        assert!(!colour(LogFormat::Json, true));
        assert!(!colour(LogFormat::Json, false));
    }
}
