//! Serving gRPC: the service's own APIs plus `grpc.health.v1` and server
//! reflection (v1 and v1alpha, because grpcurl 1.8 speaks only v1alpha), on a
//! listener bound before serving so port 0 works and the address is known.
//!
//! Every request runs in a `grpc` span carrying the method and the RPC
//! attributes of OpenTelemetry's conventions (the child of the caller's
//! `traceparent`); handlers record the request id and the Jira key on it, the
//! gate its status code.

use std::convert::Infallible;
use std::net::SocketAddr;

use tonic::body::Body;
use tonic::server::NamedService;
use tonic::service::RoutesBuilder;
use tonic::transport::server::{ServerTlsConfig, TcpIncoming};
use tonic_health::ServingStatus;
use tower::Service;

use crate::grpc_gate::GateLayer;
use crate::shutdown::Shutdown;

/// The gRPC services a process serves, with their names (for health reporting).
#[derive(Debug, Default)]
pub struct GrpcServices {
    routes: RoutesBuilder,
    names: Vec<&'static str>,
}

impl GrpcServices {
    /// No services yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a generated tonic server.
    #[must_use]
    pub fn with<S>(mut self, service: S) -> Self
    where
        S: Service<http::Request<Body>, Error = Infallible>
            + NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        S::Response: axum::response::IntoResponse,
        S::Future: Send + 'static,
    {
        self.routes.add_service(service);
        self.names.push(S::NAME);
        self
    }

    /// The names of the services added so far.
    pub fn names(&self) -> &[&'static str] {
        &self.names
    }
}

/// A bound gRPC listener, not serving yet.
#[derive(Debug)]
pub struct GrpcListener {
    listener: tokio::net::TcpListener,
    local_addr: SocketAddr,
}

impl GrpcListener {
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

    /// Serves `services`, health and reflection behind `gate` (and TLS when
    /// given) until `shutdown` fires, then reports NOT_SERVING, stops accepting
    /// and waits for in-flight calls.
    ///
    /// # Errors
    /// When the server fails or TLS cannot be set up.
    pub async fn serve(
        self,
        services: GrpcServices,
        gate: GateLayer,
        tls: Option<ServerTlsConfig>,
        shutdown: Shutdown,
    ) -> Result<(), tonic::transport::Error> {
        let GrpcServices { mut routes, names } = services;
        let (health, health_service) = tonic_health::server::health_reporter();
        for name in &names {
            health
                .set_service_status(*name, ServingStatus::Serving)
                .await;
        }
        health.set_service_status("", ServingStatus::Serving).await;
        routes.add_service(health_service);

        let reflection = |builder: tonic_reflection::server::Builder<'static>| {
            let mut builder = builder
                .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
                .include_reflection_service(false)
                .register_encoded_file_descriptor_set(tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(
                    tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
                );
            // Advertise only what this process serves, not every service of the
            // shared descriptor set.
            for name in names.iter().copied().chain([
                "grpc.health.v1.Health",
                "grpc.reflection.v1.ServerReflection",
                "grpc.reflection.v1alpha.ServerReflection",
            ]) {
                builder = builder.with_service_name(name);
            }
            builder
        };
        let reflection_v1 = reflection(tonic_reflection::server::Builder::configure()).build_v1();
        let reflection_v1alpha =
            reflection(tonic_reflection::server::Builder::configure()).build_v1alpha();
        match (reflection_v1, reflection_v1alpha) {
            (Ok(v1), Ok(v1alpha)) => {
                routes.add_service(v1);
                routes.add_service(v1alpha);
            }
            (Err(error), _) | (_, Err(error)) => {
                // The descriptor set is generated at build time; failing here is a
                // build defect, but serving without reflection beats not serving.
                tracing::error!(%error, "reflection disabled: descriptor set rejected");
            }
        }

        let incoming = TcpIncoming::from(self.listener).with_nodelay(Some(true));
        let signal = async move {
            shutdown.wait().await;
            for name in &names {
                health
                    .set_service_status(*name, ServingStatus::NotServing)
                    .await;
            }
            health
                .set_service_status("", ServingStatus::NotServing)
                .await;
        };
        let mut builder = tonic::transport::Server::builder();
        if let Some(tls) = tls {
            builder = builder.tls_config(tls)?;
        }
        builder
            .trace_fn(|request| {
                let traceparent = request
                    .headers()
                    .get("traceparent")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default();
                crate::telemetry::rpc::grpc_server_span(request.uri().path(), traceparent)
            })
            .layer(gate)
            .add_routes(routes.routes())
            .serve_with_incoming_shutdown(incoming, signal)
            .await
    }
}

/// Reads a PEM certificate chain and private key for a TLS server.
///
/// # Errors
/// When a file cannot be read.
pub fn server_tls(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> std::io::Result<ServerTlsConfig> {
    let cert = std::fs::read(cert)?;
    let key = std::fs::read(key)?;
    crate::tls::install_crypto_provider();
    Ok(ServerTlsConfig::new().identity(tonic::transport::Identity::from_pem(cert, key)))
}
