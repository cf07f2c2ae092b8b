//! The operations HTTP endpoint of each service: `GET /healthz` (200 when the
//! database answers, 503 otherwise) and `GET /metrics` (Prometheus text). The
//! tracker merges its webhook routes into the same router.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

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

/// How the HTTP server treats slow or idle clients.
#[derive(Debug, Clone, Copy)]
pub struct HttpSettings {
    /// A client must send a request's headers within this time after the
    /// connection opens or the previous response; else the connection closes.
    /// (hyper has no limit without one, so a client sending a byte now and then
    /// would hold its connection for ever.)
    pub header_read_timeout: Duration,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(5),
        }
    }
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

    /// Serves `router` until `shutdown` fires, then stops accepting and drains
    /// in-flight requests (the caller bounds how long).
    ///
    /// # Errors
    /// When accepting fails for good.
    pub async fn serve(
        self,
        router: Router,
        settings: HttpSettings,
        shutdown: Shutdown,
    ) -> std::io::Result<()> {
        use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
        use hyper_util::server::conn::auto::Builder;
        use hyper_util::service::TowerToHyperService;
        use tower::ServiceExt as _;

        let mut builder = Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(Some(settings.header_read_timeout));
        builder
            .http2()
            .timer(TokioTimer::new())
            .keep_alive_interval(Some(settings.header_read_timeout))
            .keep_alive_timeout(settings.header_read_timeout);
        let graceful = hyper_util::server::graceful::GracefulShutdown::new();
        loop {
            let (stream, _) = tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        // Out of file descriptors and the like: wait, do not spin.
                        tracing::warn!(%error, "cannot accept an HTTP connection");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                () = shutdown.wait() => break,
            };
            let _ = stream.set_nodelay(true);
            let service = TowerToHyperService::new(router.clone().map_request(
                |request: http::Request<hyper::body::Incoming>| request.map(axum::body::Body::new),
            ));
            let connection = builder
                .serve_connection_with_upgrades(TokioIo::new(stream), service)
                .into_owned();
            let connection = graceful.watch(connection);
            tokio::spawn(async move {
                if let Err(error) = connection.await {
                    tracing::debug!(%error, "HTTP connection ended with an error");
                }
            });
        }
        drop(self.listener);
        graceful.shutdown().await;
        Ok(())
    }
}
