//! The OTLP/gRPC span exporter and the `tracing` layer that feeds it.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::registry::LookupSpan;

/// Whether the standard variables already name the service.
fn service_named_by_env() -> bool {
    std::env::var_os("OTEL_SERVICE_NAME").is_some()
        || std::env::var("OTEL_RESOURCE_ATTRIBUTES")
            .is_ok_and(|attributes| attributes.contains("service.name="))
}

/// A layer exporting spans to `endpoint` in batches, and its provider (kept to
/// flush at exit). Must run inside the Tokio runtime (the channel's worker is
/// spawned on it).
pub(super) fn layer<S>(
    endpoint: &str,
    service: &str,
) -> Result<
    (
        tracing_opentelemetry::OpenTelemetryLayer<S, opentelemetry_sdk::trace::Tracer>,
        SdkTracerProvider,
    ),
    String,
>
where
    S: tracing::Subscriber + for<'span> LookupSpan<'span>,
{
    let mut builder = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint);
    if endpoint.starts_with("https://") {
        crate::tls::install_crypto_provider();
        use opentelemetry_otlp::WithTonicConfig as _;
        builder =
            builder.with_tls_config(tonic::transport::ClientTlsConfig::new().with_enabled_roots());
    }
    let exporter = builder.build().map_err(|error| error.to_string())?;
    let mut resource = Resource::builder();
    if !service_named_by_env() {
        resource = resource.with_service_name(service.to_owned());
    }
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource.build())
        .build();
    let tracer = provider.tracer(service.to_owned());
    let layer = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_tracked_inactivity(false);
    Ok((layer, provider))
}
