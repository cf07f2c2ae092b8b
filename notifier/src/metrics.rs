//! The notifier's Prometheus metrics, rendered at `/metrics`.

use std::fmt;
use std::sync::Arc;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use service_runtime::metrics::{Labels, MetricsBuilder};

use crate::domain::DeliveryState;

/// Every metric the notifier exports; cheap to clone.
#[derive(Clone)]
pub struct Metrics(Arc<Inner>);

struct Inner {
    attempts: Family<Labels, Counter>,
    deliveries: Family<Labels, Gauge>,
    acknowledged: Gauge,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    /// Registers every family in `builder`.
    pub fn register(builder: &mut MetricsBuilder) -> Self {
        let registry = builder.registry();
        let attempts = Family::<Labels, Counter>::default();
        registry.register(
            "delivery_attempts",
            "Delivery attempts, by channel and outcome (sent, retrying, stopped, undeliverable)",
            attempts.clone(),
        );
        let deliveries = Family::<Labels, Gauge>::default();
        registry.register(
            "deliveries",
            "Deliveries in the record, by state",
            deliveries.clone(),
        );
        let acknowledged = Gauge::default();
        registry.register(
            "acknowledged_sequence",
            "The stream sequence acknowledged to the assignment service",
            acknowledged.clone(),
        );
        Self(Arc::new(Inner {
            attempts,
            deliveries,
            acknowledged,
        }))
    }

    /// Counts one attempt's outcome.
    pub fn attempt(&self, channel: &str, outcome: &'static str) {
        self.0
            .attempts
            .get_or_create(&vec![
                ("channel", channel.to_owned()),
                ("outcome", outcome.to_owned()),
            ])
            .inc();
    }

    /// Sets the per-state gauges.
    pub fn deliveries(&self, counts: &[(DeliveryState, i64)]) {
        for state in DeliveryState::ALL {
            let n = counts
                .iter()
                .find(|(s, _)| *s == state)
                .map_or(0, |(_, n)| *n);
            self.0
                .deliveries
                .get_or_create(&vec![("state", state.as_str().to_owned())])
                .set(n);
        }
    }

    /// Records the acknowledged position.
    pub fn acknowledged(&self, sequence: i64) {
        self.0.acknowledged.set(sequence);
    }
}
