//! Prometheus metrics: one registry per process, rendered at `/metrics`.
//!
//! Set-up registers every family in a [`MetricsBuilder`] (the runtime's own:
//! per-RPC counts and latencies, database pool usage; then each service's), and
//! [`MetricsBuilder::finish`] freezes it into a cheap, cloneable [`Metrics`] that
//! renders the text exposition.

use std::fmt;
use std::sync::Arc;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::database::Database;

/// Label sets are plain `(name, value)` pairs.
pub type Labels = Vec<(&'static str, String)>;

/// A histogram family with the latency buckets used everywhere (0.25 ms to ~8 s).
pub type LatencyFamily = Family<Labels, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.000_25, 2.0, 16))
}

/// A new latency histogram family.
pub fn latency_family() -> LatencyFamily {
    Family::new_with_constructor(latency_histogram)
}

/// Registers families during start-up.
pub struct MetricsBuilder {
    registry: Registry,
}

impl fmt::Debug for MetricsBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MetricsBuilder")
    }
}

impl MetricsBuilder {
    /// A registry whose metric names start with `prefix_`.
    pub fn new(prefix: &str) -> Self {
        Self {
            registry: Registry::with_prefix(prefix),
        }
    }

    /// The registry, to register a service's own families.
    pub fn registry(&mut self) -> &mut Registry {
        &mut self.registry
    }

    /// Freezes the registry.
    pub fn finish(self) -> Metrics {
        Metrics(Arc::new(self.registry))
    }
}

/// The frozen registry; renders the Prometheus text format.
#[derive(Clone)]
pub struct Metrics(Arc<Registry>);

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    /// The text exposition of every registered family.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Err(error) = encode(&mut out, &self.0) {
            tracing::error!(%error, "cannot render metrics");
        }
        out
    }
}

/// Per-RPC request counts (by status code) and latencies, recorded by the gRPC
/// gate for every call.
///
/// Only the contracts' own methods (and health and reflection) are labelled by
/// name; any other path, which only a client calling something that does not
/// exist sends, is counted as service and method `unknown`, so made-up names
/// cannot grow the label set.
#[derive(Clone)]
pub struct RpcMetrics {
    handled: Family<Labels, Counter>,
    seconds: LatencyFamily,
    known: Arc<std::collections::HashSet<String>>,
}

/// The operational services every server also answers.
const OPS_METHODS: &[&str] = &[
    "/grpc.health.v1.Health/Check",
    "/grpc.health.v1.Health/Watch",
    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
];

impl fmt::Debug for RpcMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RpcMetrics")
    }
}

impl RpcMetrics {
    /// Registers the families.
    pub fn register(builder: &mut MetricsBuilder) -> Self {
        let handled = Family::<Labels, Counter>::default();
        builder.registry().register(
            "grpc_server_handled",
            "RPCs completed, by service, method and status code",
            handled.clone(),
        );
        let seconds = latency_family();
        builder.registry().register(
            "grpc_server_handling_seconds",
            "RPC latency from request to the end of the response, by service, method and code",
            seconds.clone(),
        );
        let known = proto::method_paths()
            .into_iter()
            .chain(OPS_METHODS.iter().map(|p| (*p).to_owned()))
            .collect();
        Self {
            handled,
            seconds,
            known: Arc::new(known),
        }
    }

    /// Records one completed call of `path` (`/package.Service/Method`).
    pub fn record(&self, path: &str, code: tonic::Code, seconds: f64) {
        let (service, method) = if self.known.contains(path) {
            path.trim_start_matches('/')
                .split_once('/')
                .unwrap_or((path, ""))
        } else {
            ("unknown", "unknown")
        };
        let code = format!("{code:?}");
        let labels: Labels = vec![
            ("service", service.to_owned()),
            ("method", method.to_owned()),
            ("code", code),
        ];
        self.handled.get_or_create(&labels).inc();
        self.seconds.get_or_create(&labels).observe(seconds);
    }
}

/// Database pool usage, refreshed by [`PoolMetrics::refresh`].
#[derive(Clone)]
pub struct PoolMetrics {
    connections: Family<Labels, Gauge>,
}

impl fmt::Debug for PoolMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PoolMetrics")
    }
}

impl PoolMetrics {
    /// Registers the family.
    pub fn register(builder: &mut MetricsBuilder) -> Self {
        let connections = Family::<Labels, Gauge>::default();
        builder.registry().register(
            "db_pool_connections",
            "Database pool connections, by pool and state (idle, in_use)",
            connections.clone(),
        );
        Self { connections }
    }

    /// Reads the pool's current size and idle count.
    pub fn refresh(&self, pool: &str, db: &Database) {
        let (size, idle) = db.pool_usage();
        let set = |state: &str, value: u32| {
            self.connections
                .get_or_create(&vec![
                    ("pool", pool.to_owned()),
                    ("state", state.to_owned()),
                ])
                .set(i64::from(value));
        };
        set("idle", idle);
        set("in_use", size.saturating_sub(idle));
    }
}
