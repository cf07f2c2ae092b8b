//! Running a service's two servers (gRPC and HTTP) until shutdown, with a bounded
//! drain.

use anyhow::Context as _;

use crate::grpc::{GrpcListener, GrpcServices};
use crate::grpc_gate::GateLayer;
use crate::ops_http::{HttpListener, HttpSettings};
use crate::shutdown::Shutdown;

/// How the gRPC server runs: its gate and, optionally, TLS.
#[derive(Debug)]
pub struct GrpcOptions {
    /// Authentication, load shedding and metrics.
    pub gate: GateLayer,
    /// TLS, when configured.
    pub tls: Option<tonic::transport::server::ServerTlsConfig>,
}

/// What a service serves: its gRPC API and its HTTP endpoint.
#[derive(Debug)]
pub struct Servers {
    /// The service's name, for logs.
    pub name: &'static str,
    /// The bound gRPC listener.
    pub grpc: GrpcListener,
    /// The gRPC services.
    pub services: GrpcServices,
    /// The gate and TLS of the gRPC server.
    pub grpc_options: GrpcOptions,
    /// The bound HTTP listener.
    pub http: HttpListener,
    /// The HTTP routes (`/healthz`, `/metrics`, the tracker's webhooks).
    pub router: axum::Router,
    /// How the HTTP server treats slow clients.
    pub http_settings: HttpSettings,
    /// How long in-flight calls may take to finish once shutdown began.
    pub grace: std::time::Duration,
}

/// Serves gRPC and HTTP until `shutdown` fires, then waits for in-flight calls
/// until the shutdown grace is over.
///
/// # Errors
/// When a server fails.
pub async fn serve_until_stopped(servers: Servers, shutdown: Shutdown) -> anyhow::Result<()> {
    let Servers {
        name,
        grpc,
        services,
        grpc_options,
        http,
        router,
        http_settings,
        grace,
    } = servers;
    tracing::info!(grpc = %grpc.local_addr(), http = %http.local_addr(), "{name} serving");
    let serving = async {
        let (grpc_result, http_result) = tokio::join!(
            grpc.serve(
                services,
                grpc_options.gate,
                grpc_options.tls,
                shutdown.clone()
            ),
            http.serve(router, http_settings, shutdown.clone())
        );
        grpc_result.context("gRPC server")?;
        http_result.context("HTTP server")?;
        anyhow::Ok(())
    };
    let drain_deadline = async {
        shutdown.wait().await;
        tokio::time::sleep_until(shutdown.work_deadline(grace)).await;
    };
    tokio::select! {
        result = serving => result?,
        () = drain_deadline => tracing::warn!("{name}: in-flight calls did not finish in time; stopping anyway"),
    }
    Ok(())
}

/// After the servers stopped: waits for the service's background `tasks`
/// (which stop waiting for their own work at [`Shutdown::work_deadline`] and
/// then give it up), aborts those still running, asks PostgreSQL to cancel any
/// statement still running on the pools' connections, and closes the pools,
/// each step bounded, so that a slow or stuck database cannot hold the process
/// past its `grace`.
pub async fn wind_down(
    name: &str,
    mut tasks: tokio::task::JoinSet<()>,
    pools: Vec<crate::database::Database>,
    shutdown: &Shutdown,
    grace: std::time::Duration,
) {
    let step = std::time::Duration::from_millis(200);
    let tasks_deadline = shutdown.work_deadline(grace) + std::time::Duration::from_millis(700);
    let drained = tokio::time::timeout_at(tasks_deadline, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            "{name}: background work did not finish by the shutdown deadline; stopping it"
        );
    }
    tasks.shutdown().await;
    for pool in pools {
        match tokio::time::timeout(step, pool.cancel_own_queries()).await {
            Ok(Ok(0)) => {}
            Ok(Ok(n)) => tracing::warn!("{name}: cancelled {n} statement(s) still running"),
            Ok(Err(error)) => tracing::warn!(%error, "{name}: could not cancel running statements"),
            Err(_) => tracing::warn!("{name}: cancelling running statements timed out"),
        }
        match tokio::time::timeout(step, pool.close()).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::warn!(%error, "{name}: closing the database pool failed"),
            Err(_) => tracing::warn!("{name}: connections still in use at exit were dropped"),
        }
    }
}
