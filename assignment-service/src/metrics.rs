//! The assignment service's own Prometheus families (beside the runtime's
//! per-RPC and pool metrics).

use std::fmt;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use service_runtime::metrics::{Labels, MetricsBuilder};

/// The stream's metrics; cheap to clone.
#[derive(Clone)]
pub struct StreamMetrics {
    /// Notifications committed, as this process's tailer saw them.
    pub notifications: Counter,
    /// The newest committed sequence this process knows of: its own commits
    /// as they commit, other replicas' as its tailer reads them.
    pub head: Gauge,
    /// Live subscriptions.
    pub subscribers: Gauge,
    /// The largest lag (head minus delivered) among live subscriptions.
    pub max_lag: Gauge,
    /// Lag of each live durable (named) subscriber.
    pub lag_by_subscriber: Family<Labels, Gauge>,
}

impl fmt::Debug for StreamMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StreamMetrics")
    }
}

impl StreamMetrics {
    /// Registers the families.
    pub fn register(builder: &mut MetricsBuilder) -> Self {
        let this = Self {
            notifications: Counter::default(),
            head: Gauge::default(),
            subscribers: Gauge::default(),
            max_lag: Gauge::default(),
            lag_by_subscriber: Family::default(),
        };
        let registry = builder.registry();
        registry.register(
            "notifications",
            "Notifications committed (counted by this process's stream as it reads them)",
            this.notifications.clone(),
        );
        registry.register(
            "notification_head_sequence",
            "The newest committed notification sequence this process knows of (its own commits at once, other replicas' as it reads them)",
            this.head.clone(),
        );
        registry.register(
            "stream_subscribers",
            "Subscriptions connected to this process",
            this.subscribers.clone(),
        );
        registry.register(
            "stream_subscriber_max_lag",
            "The largest lag (head minus delivered sequence) among connected subscriptions",
            this.max_lag.clone(),
        );
        registry.register(
            "stream_subscriber_lag",
            "Lag (head minus delivered sequence) of each connected durable subscriber, by name",
            this.lag_by_subscriber.clone(),
        );
        this
    }
}
