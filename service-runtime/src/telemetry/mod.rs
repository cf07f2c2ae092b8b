//! Logs and traces: one global `tracing` subscriber per process.
//!
//! **Logs.** The filter follows `RUST_LOG` (default `info`, with chatty
//! dependencies quietened); the format is pretty for people or JSON for
//! collectors. Colour codes are written only when standard output is a terminal
//! (never into files, CI logs or journald), and never in JSON.
//!
//! **Traces.** With `--otlp-endpoint` (or `OTEL_EXPORTER_OTLP_ENDPOINT`) and the
//! `otel` feature (on by default in both services), spans are exported over
//! OTLP/gRPC in batches. The standard variables apply: `OTEL_SERVICE_NAME` and
//! `OTEL_RESOURCE_ATTRIBUTES` (the service name defaults to the binary's),
//! `OTEL_TRACES_SAMPLER` / `OTEL_TRACES_SAMPLER_ARG` (default: parent-based,
//! always on), `OTEL_EXPORTER_OTLP_HEADERS` (never logged). The span filter is
//! the default one, independent of `RUST_LOG`, so quieter logs do not break
//! traces. Export is off by default; then the extra spans of [`context`] are
//! not even created.
//!
//! Lifecycle: [`init`] once from `main`; the returned [`Telemetry`] flushes the
//! spans still buffered when it is shut down (or dropped) as the process exits.

pub mod context;
#[cfg(feature = "otel")]
mod otlp;
pub mod rpc;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

use crate::config::{LogFormat, TelemetryArgs};

/// The filter used when `RUST_LOG` is not set, and always for exported spans.
pub const DEFAULT_FILTER: &str =
    "info,sqlx=warn,sea_orm=warn,sea_orm_migration=warn,h2=warn,hyper=warn,tower=warn";

/// Why telemetry could not start.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    /// A global subscriber is already installed.
    #[error(transparent)]
    Subscriber(#[from] tracing_subscriber::util::TryInitError),
    /// The OTLP exporter could not be built (an invalid endpoint).
    #[error("OTLP exporter: {0}")]
    Exporter(String),
}

/// The running telemetry; flushes exported spans when shut down or dropped.
#[derive(Debug)]
pub struct Telemetry {
    #[cfg(feature = "otel")]
    provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

impl Telemetry {
    /// Exports the spans buffered so far (blocks until the collector answered
    /// or the export timed out); for tests and tools.
    pub fn flush(&self) {
        #[cfg(feature = "otel")]
        if let Some(provider) = &self.provider
            && let Err(error) = provider.force_flush()
        {
            tracing::warn!(%error, "OTLP export failed");
        }
    }

    /// Exports the spans still buffered and stops the exporter (waits at most
    /// the exporter's timeout).
    pub fn shutdown(mut self) {
        self.flush_and_stop();
    }

    fn flush_and_stop(&mut self) {
        #[cfg(feature = "otel")]
        if let Some(provider) = self.provider.take() {
            context::set_exporting(false);
            if let Err(error) = provider.shutdown() {
                tracing::warn!(%error, "OTLP exporter did not shut down cleanly");
            }
        }
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        self.flush_and_stop();
    }
}

/// Installs the global subscriber (logs, and span export when configured).
/// Call it once, from `main`, inside the Tokio runtime; tests leave logging off
/// (or install their own). `service` names the process when
/// `OTEL_SERVICE_NAME` does not.
///
/// # Errors
/// When a global subscriber is already installed, or the exporter cannot be
/// built.
pub fn init(
    format: LogFormat,
    traces: &TelemetryArgs,
    service: &str,
) -> Result<Telemetry, InitError> {
    install(Some(format), traces, service)
}

/// [`init`] without logs: span export only, for tests and tools that print
/// their own output.
///
/// # Errors
/// As [`init`].
pub fn init_without_logs(traces: &TelemetryArgs, service: &str) -> Result<Telemetry, InitError> {
    install(None, traces, service)
}

fn install(
    format: Option<LogFormat>,
    traces: &TelemetryArgs,
    service: &str,
) -> Result<Telemetry, InitError> {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let logs = format.map(|format| match format {
        LogFormat::Pretty => tracing_subscriber::fmt::layer()
            .with_target(true)
            .with_ansi(colour(
                format,
                std::io::IsTerminal::is_terminal(&std::io::stdout()),
            ))
            .with_filter(filter)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .with_filter(filter)
            .boxed(),
    });
    let registry = tracing_subscriber::registry().with(logs);

    #[cfg(feature = "otel")]
    {
        let (layer, provider) = match &traces.otlp_endpoint {
            Some(endpoint) => {
                let (layer, provider) =
                    otlp::layer(endpoint, service).map_err(InitError::Exporter)?;
                (
                    Some(layer.with_filter(EnvFilter::new(DEFAULT_FILTER))),
                    Some(provider),
                )
            }
            None => (None, None),
        };
        registry.with(layer).try_init()?;
        if provider.is_some() {
            context::set_exporting(true);
        }
        Ok(Telemetry { provider })
    }
    #[cfg(not(feature = "otel"))]
    {
        registry.try_init()?;
        if traces.otlp_endpoint.is_some() {
            tracing::warn!(
                service,
                "--otlp-endpoint is set but this build has no OpenTelemetry export (the `otel` feature); spans are not exported"
            );
        }
        Ok(Telemetry {})
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
