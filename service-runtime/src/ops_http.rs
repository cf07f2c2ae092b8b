//! The operations HTTP endpoint of each service: `GET /livez` (200 while the
//! process serves: restart it when this fails), `GET /readyz` (200 when it
//! can do its work: not shutting down, the database answers, its migrations
//! are applied, and whatever else the service checks, e.g. the tracker's
//! assignment service; 503 naming what is not, so a load balancer sends
//! traffic elsewhere), `GET /healthz` (the database answers; kept for
//! existing probes) and `GET /metrics` (Prometheus text). The tracker merges
//! its webhook routes into the same router.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
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

type CheckFuture = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;

/// One thing `/readyz` checks besides the database: a name for its answer,
/// and a check that says in a few words why the dependency is not usable
/// (never a secret: the answer is unauthenticated).
#[derive(Clone)]
pub struct ReadinessCheck {
    name: &'static str,
    check: Arc<dyn Fn() -> CheckFuture + Send + Sync>,
}

impl ReadinessCheck {
    /// A check named `name`, run on every `/readyz` request (bounded by
    /// [`CHECK_TIMEOUT`]).
    pub fn new<F, Fut>(name: &'static str, check: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        Self {
            name,
            check: Arc::new(move || Box::pin(check())),
        }
    }
}

impl std::fmt::Debug for ReadinessCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadinessCheck")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// The longest one readiness check may take before it counts as failed.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// What the operations routes serve.
#[derive(Clone)]
#[allow(missing_debug_implementations)] // holds the metrics renderer, a closure
pub struct OpsRoutes {
    /// The service's database (pinged by `/healthz` and `/readyz`).
    pub database: Database,
    /// The metrics renderer for `/metrics`.
    pub metrics: MetricsRenderer,
    /// The checks `/readyz` runs after the database's.
    pub readiness: Vec<ReadinessCheck>,
    /// Once it fires, `/readyz` answers 503 (traffic should go elsewhere).
    pub shutdown: Shutdown,
}

/// The `/livez`, `/readyz`, `/healthz` and `/metrics` routes.
pub fn router(routes: OpsRoutes) -> Router {
    Router::new()
        .route("/livez", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/healthz", get(healthz))
        .route("/metrics", get(render_metrics))
        .with_state(routes)
}

async fn readyz(State(state): State<OpsRoutes>) -> impl IntoResponse {
    if state.shutdown.is_triggered() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting down\n".to_owned(),
        );
    }
    let database = state.database.clone();
    let checks = std::iter::once(ReadinessCheck::new("database", move || {
        let database = database.clone();
        async move {
            database.ping().await.map_err(|error| {
                tracing::warn!(%error, "readiness: database unreachable");
                "unreachable".to_owned()
            })
        }
    }))
    .chain(state.readiness.iter().cloned());
    let mut body = String::new();
    let mut ready = true;
    for check in checks {
        let outcome = match tokio::time::timeout(CHECK_TIMEOUT, (check.check)()).await {
            Ok(outcome) => outcome,
            Err(_) => Err(format!("no answer within {CHECK_TIMEOUT:?}")),
        };
        match outcome {
            Ok(()) => body.push_str(&format!("{}: ok\n", check.name)),
            Err(why) => {
                ready = false;
                body.push_str(&format!("{}: {why}\n", check.name));
            }
        }
    }
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, body)
}

async fn healthz(State(state): State<OpsRoutes>) -> impl IntoResponse {
    match state.database.ping().await {
        Ok(()) => (StatusCode::OK, "ok\n"),
        Err(error) => {
            tracing::warn!(%error, "health check: database unreachable");
            (StatusCode::SERVICE_UNAVAILABLE, "database unreachable\n")
        }
    }
}

async fn render_metrics(State(state): State<OpsRoutes>) -> impl IntoResponse {
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
