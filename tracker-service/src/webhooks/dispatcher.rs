//! The dispatcher: applies inbox deliveries, in arrival order per Jira issue,
//! different issues in parallel, on the shared worker loop
//! ([`crate::worker`]).
//!
//! It claims the head delivery of each issue with a lease (see
//! [`super::inbox`]), applies it, and records the outcome. A transient failure
//! (the assignment service or Jira unavailable) schedules another attempt with
//! exponential backoff and jitter, forever; the issue's later deliveries wait
//! behind it, so order holds. A permanent failure marks the delivery failed and
//! the issue moves on. Deliveries survive restarts: on start, pending ones are
//! simply claimable again.

use std::sync::Arc;
use std::time::Duration;

use service_runtime::database::Database;
use service_runtime::shutdown::Shutdown;
use service_runtime::telemetry::context;
use service_runtime::time::now;
use tracing::Instrument as _;

use super::apply::{Applier, ApplyError};
use super::backlog::Backlog;
use super::inbox::{self, Outcome, OutcomeKind};
use super::inbox_writer::InboxWriter;
use super::waker::DispatchWaker;
use crate::domain::delivery::{DeliveryAction, DeliveryRecord};
use crate::error::TrackerError;
use crate::metrics::Metrics;
use crate::queue_heads::{HeadId, IssueQueue, Leased};
use crate::worker::{self, Queue, WorkerSettings, backoff};

/// Dispatcher settings.
#[derive(Debug, Clone)]
pub struct DispatchSettings {
    /// Deliveries applied at once.
    pub concurrency: usize,
    /// How often to look for due deliveries when nothing woke the dispatcher.
    pub poll_interval: Duration,
    /// How long a claim lasts unless renewed; the dispatcher renews the leases
    /// of deliveries in progress every third of it, so a replica that dies
    /// frees its claims within one lease.
    pub lease: Duration,
    /// The longest wait between attempts.
    pub max_backoff: Duration,
    /// After shutdown began: how long deliveries in progress may take.
    pub shutdown_grace: Duration,
}

impl Default for DispatchSettings {
    fn default() -> Self {
        Self {
            concurrency: 128,
            poll_interval: Duration::from_secs(1),
            lease: Duration::from_secs(6),
            max_backoff: Duration::from_secs(60),
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// What the dispatcher works with; it runs from start-up to shutdown.
#[derive(Debug)]
pub struct Dispatcher {
    /// The tracker's database, to claim deliveries.
    pub db: Database,
    /// Records outcomes (group commit).
    pub inbox_writer: InboxWriter,
    /// Applies one delivery.
    pub applier: Applier,
    /// Wakes the dispatcher when work arrives.
    pub waker: DispatchWaker,
    /// Concurrency, poll interval, lease, backoff.
    pub settings: DispatchSettings,
    /// This replica's name on its leases.
    pub owner: String,
    /// Counts retries for `/metrics`.
    pub metrics: Metrics,
    /// Told of each delivery finished (delivered or failed).
    pub backlog: Arc<Backlog>,
}

/// The inbox as a worker queue.
#[derive(Debug, Clone)]
struct InboxQueue {
    db: Database,
    waker: DispatchWaker,
    inbox_writer: InboxWriter,
    applier: Applier,
    owner: String,
    lease: Duration,
    max_backoff: Duration,
    metrics: Metrics,
    backlog: Arc<Backlog>,
}

impl Queue for InboxQueue {
    type Item = Leased<DeliveryRecord>;

    /// The inbox writer rings after a commit that made deliveries due.
    const RINGS_FOR_SUCCESSORS: bool = true;

    fn head(item: &Leased<DeliveryRecord>) -> HeadId {
        item.head
    }

    async fn claim(&self, limit: u64) -> Result<Vec<Leased<DeliveryRecord>>, TrackerError> {
        inbox::claim(&self.db, &self.owner, self.lease, limit, &self.waker).await
    }

    async fn renew(&self, heads: &[HeadId]) -> Result<(), TrackerError> {
        inbox::renew_leases(&self.db, &self.owner, heads, self.lease).await?;
        Ok(())
    }

    async fn release(&self, heads: &[HeadId]) -> Result<(), TrackerError> {
        inbox::release(&self.db, &self.owner, heads).await?;
        Ok(())
    }

    async fn process(&self, Leased { item: row, .. }: Leased<DeliveryRecord>) {
        dispatch_one(
            &self.inbox_writer,
            &self.applier,
            row,
            self.max_backoff,
            &self.metrics,
            &self.backlog,
        )
        .await;
    }
}

/// Runs the dispatcher until shutdown; in-flight deliveries finish first.
pub async fn run_dispatcher(dispatcher: Dispatcher, shutdown: Shutdown) {
    let Dispatcher {
        db,
        inbox_writer,
        applier,
        waker,
        settings,
        owner,
        metrics,
        backlog,
    } = dispatcher;
    let queue = InboxQueue {
        db,
        waker: waker.clone(),
        inbox_writer,
        applier,
        owner,
        lease: settings.lease,
        max_backoff: settings.max_backoff,
        metrics: metrics.clone(),
        backlog,
    };
    worker::run(
        queue,
        waker,
        WorkerSettings {
            name: "dispatcher",
            concurrency: settings.concurrency,
            poll_interval: settings.poll_interval,
            lease: settings.lease,
            shutdown_grace: settings.shutdown_grace,
            metrics,
        },
        shutdown,
    )
    .await;
}

async fn dispatch_one(
    inbox_writer: &InboxWriter,
    applier: &Applier,
    row: DeliveryRecord,
    max_backoff: Duration,
    metrics: &Metrics,
    backlog: &Backlog,
) {
    let span = tracing::info_span!(
        "delivery",
        otel.name = "dispatch webhook delivery",
        delivery_id = row.id,
        delivery_key = %row.delivery_key,
        jira_key = %row.issue_key,
        traceparent = %row.traceparent,
    );
    context::set_parent(&span, &row.traceparent);
    let attempts = row.attempts + 1;
    let outcome = applier.apply(&row).instrument(span.clone()).await;
    // Recording the outcome is retried for a while (a database blip); if it
    // still fails the lease expires and the delivery is applied again, which its
    // request ids make harmless.
    let mut tries = 0;
    loop {
        let kind = match &outcome {
            Ok(actions) => OutcomeKind::Delivered(actions.clone()),
            Err((ApplyError::Transient(error), done)) => {
                let wait = backoff(attempts, max_backoff);
                let at = now() + chrono::Duration::from_std(wait).unwrap_or_default();
                let mut attempted = done.clone();
                attempted.push(DeliveryAction {
                    summary: format!(
                        "attempt {attempts} failed, retried at {}: {error}",
                        at.format("%Y-%m-%dT%H:%M:%S%.3fZ")
                    ),
                    group_effects: Vec::new(),
                });
                OutcomeKind::RetryLater(error.clone(), at, attempted)
            }
            Err((ApplyError::Permanent(error), actions)) => {
                OutcomeKind::Failed(error.clone(), actions.clone())
            }
        };
        let recorded = inbox_writer
            .record(Outcome {
                id: row.id,
                issue: IssueQueue {
                    integration_id: row.integration_id.as_str().to_owned(),
                    ordering_key: row.ordering_key.clone(),
                },
                attempts,
                kind,
            })
            .await;
        let _entered = span.enter();
        match recorded {
            Ok(()) => {
                match &outcome {
                    Ok(_) => {
                        backlog.finished();
                        tracing::info!(attempts, "delivery applied");
                    }
                    Err((ApplyError::Transient(error), _)) => {
                        metrics.dispatch_retry();
                        tracing::warn!(%error, attempts, "delivery will be retried");
                    }
                    Err((ApplyError::Permanent(error), _)) => {
                        backlog.finished();
                        tracing::warn!(%error, attempts, "delivery failed");
                    }
                }
                return;
            }
            Err(error) if tries < RECORD_TRIES => {
                tracing::warn!(%error, "could not record a delivery's outcome; trying again");
            }
            Err(error) => {
                tracing::error!(%error, "could not record a delivery's outcome; its lease will expire");
                return;
            }
        }
        drop(_entered);
        tries += 1;
        tokio::time::sleep(backoff(tries, Duration::from_secs(2))).await;
    }
}

/// How often a delivery's outcome is written again before the lease is left to
/// expire.
const RECORD_TRIES: i32 = 8;
