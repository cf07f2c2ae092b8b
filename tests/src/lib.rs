//! Test helpers: fresh databases, both services started in-process on port 0,
//! typed gRPC clients, and waiting on conditions with deadlines (never sleeps).
//!
//! Set `TEST_DATABASE_URL=postgres://…` to run everything on PostgreSQL; each test
//! then gets its own freshly created database.

#![allow(clippy::unwrap_used, clippy::print_stdout)]

pub mod apps;
pub mod database;
pub mod fixtures;
pub mod notifier;
pub mod pair;
pub mod proxy;
pub mod raw;
pub mod wait;

pub use apps::{AssignmentApi, AssignmentApp, TrackerApi, TrackerApp};
pub use database::TestDatabase;
pub use jira_sim::JiraSim;
pub use pair::Pair;

/// Installs a log subscriber when `TEST_LOG` is set (its value is the filter,
/// e.g. `TEST_LOG=info`), so a failing test can be rerun with the services'
/// logs. Called by every app start; later calls do nothing.
pub fn init_test_logs() {
    if let Ok(filter) = std::env::var("TEST_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_test_writer()
            .try_init();
    }
}

/// An HTTP client for tests (installs the TLS provider reqwest needs). One
/// client is built per test binary and shared: building one loads the root
/// certificates, which in a debug build costs more than a webhook's round
/// trip. It keeps no idle connections: each test has its own runtime, and a
/// pooled connection would belong to a runtime that may be gone.
pub fn http_client() -> reqwest::Client {
    static CLIENT: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    CLIENT
        .get_or_init(|| {
            service_runtime::tls::install_crypto_provider();
            reqwest::Client::builder()
                .pool_max_idle_per_host(0)
                .build()
                .expect("an HTTP client")
        })
        .clone()
}

/// The value of one series in a Prometheus text page: a metric's name, with
/// its labels as the page prints them (`name{label="value"}`), if any.
pub fn metric_value(page: &str, series: &str) -> Option<u64> {
    page.lines()
        .find_map(|line| line.strip_prefix(&format!("{series} ")))
        .and_then(|v| v.trim().parse().ok())
}

/// The Prometheus page a service serves at `{base_url}/metrics`.
pub async fn scrape_metrics(base_url: &str) -> String {
    http_client()
        .get(format!("{base_url}/metrics"))
        .send()
        .await
        .expect("/metrics answers")
        .text()
        .await
        .expect("/metrics has a body")
}
