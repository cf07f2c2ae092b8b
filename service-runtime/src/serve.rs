//! Running a service's two servers (gRPC and HTTP) until shutdown, with a bounded
//! drain.

use anyhow::Context as _;

use crate::grpc::{GrpcListener, GrpcServices};
use crate::grpc_gate::GateLayer;
use crate::ops_http::{HttpListener, HttpSettings};
use crate::shutdown::{DRAIN_TIMEOUT, Shutdown};

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
}

/// Serves gRPC and HTTP until `shutdown` fires, then waits for in-flight calls
/// for at most [`DRAIN_TIMEOUT`].
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
        tokio::time::sleep(DRAIN_TIMEOUT).await;
    };
    tokio::select! {
        result = serving => result?,
        () = drain_deadline => tracing::warn!("{name}: in-flight calls did not finish in time; stopping anyway"),
    }
    Ok(())
}
