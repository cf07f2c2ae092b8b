//! `assignment-service`: parse flags, set up logs and traces, run until SIGTERM / Ctrl-C.

use clap::Parser as _;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = assignment_service::Config::parse();
    let telemetry = service_runtime::telemetry::init(
        config.log_format,
        &config.telemetry,
        "assignment-service",
    )?;
    // Secrets are redacted by their types' `Debug`.
    tracing::info!(?config, "effective configuration");
    let shutdown = service_runtime::shutdown::Shutdown::new();
    shutdown.trigger_on_signals();
    let app = assignment_service::Application::build(config).await?;
    let result = app.run_until_stopped(shutdown).await;
    // Spans of the last moments are exported before the process exits.
    telemetry.shutdown();
    result
}
