//! `tracker-service`: parse flags, set up logging, run until SIGTERM / Ctrl-C.

use clap::Parser as _;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = tracker_service::Config::parse();
    service_runtime::telemetry::init(config.log_format)?;
    // Secrets are redacted by their types' `Debug`.
    tracing::info!(?config, "effective configuration");
    let shutdown = service_runtime::shutdown::Shutdown::new();
    shutdown.trigger_on_signals();
    let app = tracker_service::Application::build(config).await?;
    app.run_until_stopped(shutdown).await
}
