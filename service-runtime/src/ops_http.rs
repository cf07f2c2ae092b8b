//! The operations HTTP endpoint of each service: `GET /healthz` (200 when the
//! database answers, 503 otherwise) and `GET /metrics` (Prometheus text). The
//! tracker merges its webhook routes into the same router.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;

use crate::database::Database;
use crate::shutdown::Shutdown;

/// Renders the process's metrics in the Prometheus text format.
pub type MetricsRenderer = Arc<dyn Fn() -> String + Send + Sync>;

#[derive(Clone)]
struct OpsState {
    database: Database,
    metrics: MetricsRenderer,
}

/// The `/healthz` and `/metrics` routes.
pub fn router(database: Database, metrics: MetricsRenderer) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(render_metrics))
        .with_state(OpsState { database, metrics })
}

async fn healthz(State(state): State<OpsState>) -> impl IntoResponse {
    match state.database.ping().await {
        Ok(()) => (StatusCode::OK, "ok\n"),
        Err(error) => {
            tracing::warn!(%error, "health check: database unreachable");
            (StatusCode::SERVICE_UNAVAILABLE, "database unreachable\n")
        }
    }
}

async fn render_metrics(State(state): State<OpsState>) -> impl IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        (state.metrics)(),
    )
}

/// A bound HTTP listener, not serving yet.
#[derive(Debug)]
pub struct HttpListener {
    listener: tokio::net::TcpListener,
    local_addr: SocketAddr,
}

impl HttpListener {
    /// Binds `addr` (port 0 picks a free port).
    ///
    /// # Errors
    /// When the address cannot be bound.
    pub async fn bind(addr: SocketAddr) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let local_addr = listener.local_addr()?;
        Ok(Self {
            listener,
            local_addr,
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves `router` until `shutdown` fires, then drains in-flight requests.
    ///
    /// # Errors
    /// When the server fails.
    pub async fn serve(self, router: Router, shutdown: Shutdown) -> std::io::Result<()> {
        axum::serve(self.listener, router)
            .with_graceful_shutdown(shutdown.wait_owned())
            .await
    }
}
