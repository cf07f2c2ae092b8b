//! The tracker's Prometheus metrics, rendered at `/metrics`.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use service_runtime::metrics::{Labels, MetricsBuilder};

/// Every metric the tracker exports; cheap to clone.
#[derive(Clone)]
pub struct Metrics(Arc<Inner>);

struct Inner {
    webhook_deliveries: Family<Labels, Counter>,
    dispatch_retries: Counter,
    jira_calls: Family<Labels, Counter>,
    inbox_pending: Gauge,
    inbox_oldest_pending_seconds: Gauge<f64, AtomicU64>,
    outbound_syncs: Family<Labels, Counter>,
    outbound_pending: Gauge,
    outbound_oldest_pending_seconds: Gauge<f64, AtomicU64>,
    queue_claims: Family<Labels, Counter>,
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
        let webhook_deliveries = Family::<Labels, Counter>::default();
        registry.register(
            "webhook_deliveries",
            "Webhook deliveries received, by outcome (accepted, duplicate, ignored, malformed, unauthentic, too_large, unknown_integration, unavailable, rate_limited, overloaded, backlog_full, too_slow, too_old)",
            webhook_deliveries.clone(),
        );
        let dispatch_retries = Counter::default();
        registry.register(
            "dispatch_retries",
            "Delivery attempts that failed transiently and were scheduled again",
            dispatch_retries.clone(),
        );
        let jira_calls = Family::<Labels, Counter>::default();
        registry.register(
            "jira_calls",
            "HTTP calls to Jira, by endpoint and status (or error)",
            jira_calls.clone(),
        );
        let inbox_pending = Gauge::default();
        registry.register(
            "inbox_pending",
            "Deliveries stored and not yet applied",
            inbox_pending.clone(),
        );
        let inbox_oldest_pending_seconds = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "inbox_oldest_pending_age_seconds",
            "Age of the oldest delivery not yet applied (0 when none)",
            inbox_oldest_pending_seconds.clone(),
        );
        let outbound_syncs = Family::<Labels, Counter>::default();
        registry.register(
            "outbound_syncs",
            "Attempts to apply outbound entries to Jira, by outcome (done, stopped, retry)",
            outbound_syncs.clone(),
        );
        let outbound_pending = Gauge::default();
        registry.register(
            "outbound_pending",
            "Outbound entries stored and not yet applied",
            outbound_pending.clone(),
        );
        let outbound_oldest_pending_seconds = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "outbound_oldest_pending_age_seconds",
            "Age of the oldest outbound entry not yet applied (0 when none)",
            outbound_oldest_pending_seconds.clone(),
        );
        let queue_claims = Family::<Labels, Counter>::default();
        registry.register(
            "queue_claims",
            "Claims of due work by the worker loops, by queue (dispatcher, outbound) and whether they found any (items, none)",
            queue_claims.clone(),
        );
        Self(Arc::new(Inner {
            webhook_deliveries,
            dispatch_retries,
            jira_calls,
            inbox_pending,
            inbox_oldest_pending_seconds,
            outbound_syncs,
            outbound_pending,
            outbound_oldest_pending_seconds,
            queue_claims,
        }))
    }

    /// Counts a webhook delivery's outcome.
    pub fn webhook_outcome(&self, outcome: &'static str) {
        self.0
            .webhook_deliveries
            .get_or_create(&vec![("outcome", outcome.to_owned())])
            .inc();
    }

    /// Counts a transient dispatch failure.
    pub fn dispatch_retry(&self) {
        self.0.dispatch_retries.inc();
    }

    /// Counts a Jira call.
    pub fn jira_call(&self, endpoint: &'static str, status: String) {
        self.0
            .jira_calls
            .get_or_create(&vec![("endpoint", endpoint.to_owned()), ("status", status)])
            .inc();
    }

    /// Sets the inbox gauges.
    pub fn inbox(&self, pending: u64, oldest_age_seconds: f64) {
        self.0
            .inbox_pending
            .set(i64::try_from(pending).unwrap_or(i64::MAX));
        self.0.inbox_oldest_pending_seconds.set(oldest_age_seconds);
    }

    /// Counts a worker loop's claim of due work, by whether it found any.
    pub fn queue_claim(&self, queue: &'static str, found: bool) {
        self.0
            .queue_claims
            .get_or_create(&vec![
                ("queue", queue.to_owned()),
                ("found", if found { "items" } else { "none" }.to_owned()),
            ])
            .inc();
    }

    /// Counts an attempt to apply an outbound entry.
    pub fn outbound_outcome(&self, outcome: &'static str) {
        self.0
            .outbound_syncs
            .get_or_create(&vec![("outcome", outcome.to_owned())])
            .inc();
    }

    /// Sets the outbound gauges.
    pub fn outbound(&self, pending: u64, oldest_age_seconds: f64) {
        self.0
            .outbound_pending
            .set(i64::try_from(pending).unwrap_or(i64::MAX));
        self.0
            .outbound_oldest_pending_seconds
            .set(oldest_age_seconds);
    }
}
