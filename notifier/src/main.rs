//! `notifier`: parse flags, set up logs and traces, run until SIGTERM / Ctrl-C.

use clap::Parser as _;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = notifier::Config::parse();
    let telemetry =
        service_runtime::telemetry::init(config.log_format, &config.telemetry, "notifier")?;
    // Secrets are redacted by their types' `Debug`.
    tracing::info!(?config, "effective configuration");
    let shutdown = service_runtime::shutdown::Shutdown::new();
    shutdown.trigger_on_signals();
    let app = notifier::Application::build(config).await?;
    let result = app.run_until_stopped(shutdown).await;
    telemetry.shutdown();
    result
}
