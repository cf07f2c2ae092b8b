//! Running a service's two servers (gRPC and HTTP) until shutdown, with a bounded
//! drain.

use anyhow::Context as _;

use crate::grpc::{GrpcListener, GrpcServices};
use crate::grpc_gate::GateLayer;
use crate::ops_http::HttpListener;
use crate::shutdown::{DRAIN_TIMEOUT, Shutdown};

/// How the gRPC server runs: its gate and, optionally, TLS.
#[derive(Debug)]
pub struct GrpcOptions {
    /// Authentication, load shedding and metrics.
    pub gate: GateLayer,
    /// TLS, when configured.
    pub tls: Option<tonic::transport::server::ServerTlsConfig>,
}

/// Serves gRPC and HTTP until `shutdown` fires, then waits for in-flight calls
/// for at most [`DRAIN_TIMEOUT`].
///
/// # Errors
/// When a server fails.
pub async fn serve_until_stopped(
    name: &str,
    grpc: GrpcListener,
    services: GrpcServices,
    grpc_options: GrpcOptions,
    http: HttpListener,
    router: axum::Router,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    tracing::info!(grpc = %grpc.local_addr(), http = %http.local_addr(), "{name} serving");
    let serving = async {
        let (grpc_result, http_result) = tokio::join!(
            grpc.serve(
                services,
                grpc_options.gate,
                grpc_options.tls,
                shutdown.clone()
            ),
            http.serve(router, shutdown.clone())
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
