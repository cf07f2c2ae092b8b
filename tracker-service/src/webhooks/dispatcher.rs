//! The dispatcher: applies inbox deliveries, in arrival order per Jira issue,
//! different issues in parallel.
//!
//! It claims the head delivery of each issue with a lease (see
//! [`super::inbox`]), applies it, and records the outcome. A transient failure
//! (the assignment service or Jira unavailable) schedules another attempt with
//! exponential backoff and jitter, forever; the issue's later deliveries wait
//! behind it, so order holds. A permanent failure marks the delivery failed and
//! the issue moves on. Deliveries survive restarts: on start, pending ones are
//! simply claimable again.

use std::collections::HashSet;
use std::time::Duration;

use service_runtime::database::Database;
use service_runtime::shutdown::Shutdown;
use service_runtime::time::now;
use tokio::task::JoinSet;
use tracing::Instrument as _;

use super::apply::{Applier, ApplyError};
use super::inbox::{self, ClaimScope, Outcome, OutcomeKind};
use super::inbox_writer::InboxWriter;
use super::waker::DispatchWaker;
use crate::domain::delivery::DeliveryRecord;
use crate::metrics::Metrics;

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
}

impl Default for DispatchSettings {
    fn default() -> Self {
        Self {
            concurrency: 128,
            poll_interval: Duration::from_secs(1),
            lease: Duration::from_secs(6),
            max_backoff: Duration::from_secs(60),
        }
    }
}

/// Backoff before attempt `attempts + 1`: exponential from 200 ms, capped, with
/// full jitter.
pub fn backoff(attempts: i32, max: Duration) -> Duration {
    let exp = u32::try_from(attempts.clamp(0, 20)).unwrap_or(20);
    let base = Duration::from_millis(200).saturating_mul(2u32.saturating_pow(exp));
    let capped = base.min(max);
    let millis = u64::try_from(capped.as_millis()).unwrap_or(60_000).max(1);
    Duration::from_millis(rand::random_range(millis / 2..=millis))
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
    } = dispatcher;
    let mut running: JoinSet<i64> = JoinSet::new();
    // When the whole backlog may be searched again (see `ClaimScope`): at once
    // while such searches find work, else once per poll interval, so an idle
    // dispatcher does not pay for two statements per wake-up.
    let mut backlog_scan_at = tokio::time::Instant::now();
    // Deliveries in progress, whose leases are renewed while they run.
    let mut in_flight: HashSet<i64> = HashSet::new();
    let mut renewal = tokio::time::interval((settings.lease / 3).max(Duration::from_millis(10)));
    renewal.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let free = settings.concurrency.saturating_sub(running.len());
        // Claim in batches: one statement for several deliveries, unless little
        // is running (then at once, for latency).
        let worth_claiming =
            free >= CLAIM_BATCH.min(settings.concurrency) || running.len() < CLAIM_BATCH;
        if free > 0 && worth_claiming && !shutdown.is_triggered() {
            let limit = free as u64;
            let mut claimed =
                inbox::claim_ready(&db, &owner, settings.lease, limit, ClaimScope::Oldest).await;
            if claimed.as_ref().is_ok_and(Vec::is_empty)
                && tokio::time::Instant::now() >= backlog_scan_at
            {
                claimed =
                    inbox::claim_ready(&db, &owner, settings.lease, limit, ClaimScope::Backlog)
                        .await;
                if claimed.as_ref().is_ok_and(Vec::is_empty) {
                    backlog_scan_at = tokio::time::Instant::now() + settings.poll_interval;
                }
            }
            match claimed {
                Ok(claimed) => {
                    for row in claimed {
                        let inbox_writer = inbox_writer.clone();
                        let applier = applier.clone();
                        let max_backoff = settings.max_backoff;
                        let metrics = metrics.clone();
                        in_flight.insert(row.id);
                        running.spawn(async move {
                            let id = row.id;
                            dispatch_one(&inbox_writer, &applier, row, max_backoff, &metrics).await;
                            id
                        });
                    }
                }
                Err(error) => tracing::warn!(%error, "dispatcher cannot claim deliveries"),
            }
        }
        tokio::select! {
            () = shutdown.wait(), if !shutdown.is_triggered() => {}
            () = waker.woken() => {}
            () = tokio::time::sleep(settings.poll_interval) => {}
            Some(done) = running.join_next(), if !running.is_empty() => {
                if let Ok(id) = done {
                    in_flight.remove(&id);
                }
            }
            _ = renewal.tick(), if !in_flight.is_empty() => {
                let ids: Vec<i64> = in_flight.iter().copied().collect();
                if let Err(error) = inbox::renew_leases(&db, &owner, &ids, settings.lease).await {
                    tracing::warn!(%error, "could not renew leases; another replica may take these deliveries over");
                }
            }
        }
        if shutdown.is_triggered() {
            // Let in-flight deliveries record their outcome; the rest stay
            // pending for the next start (or another replica).
            while running.join_next().await.is_some() {}
            return;
        }
    }
}

async fn dispatch_one(
    inbox_writer: &InboxWriter,
    applier: &Applier,
    row: DeliveryRecord,
    max_backoff: Duration,
    metrics: &Metrics,
) {
    let span = tracing::info_span!(
        "delivery",
        delivery_id = row.id,
        delivery_key = %row.delivery_key,
        jira_key = %row.issue_key,
        traceparent = %row.traceparent,
    );
    let attempts = row.attempts + 1;
    let outcome = applier.apply(&row).instrument(span.clone()).await;
    // Recording the outcome is retried for a while (a database blip); if it
    // still fails the lease expires and the delivery is applied again, which its
    // request ids make harmless.
    let mut tries = 0;
    loop {
        let kind = match &outcome {
            Ok(actions) => OutcomeKind::Delivered(actions.clone()),
            Err((ApplyError::Transient(error), _)) => {
                let wait = backoff(attempts, max_backoff);
                let at = now() + chrono::Duration::from_std(wait).unwrap_or_default();
                OutcomeKind::RetryLater(error.clone(), at)
            }
            Err((ApplyError::Permanent(error), actions)) => {
                OutcomeKind::Failed(error.clone(), actions.clone())
            }
        };
        let recorded = inbox_writer
            .record(Outcome {
                id: row.id,
                attempts,
                kind,
            })
            .await;
        let _entered = span.enter();
        match recorded {
            Ok(()) => {
                match &outcome {
                    Ok(_) => tracing::info!(attempts, "delivery applied"),
                    Err((ApplyError::Transient(error), _)) => {
                        metrics.dispatch_retry();
                        tracing::warn!(%error, attempts, "delivery will be retried");
                    }
                    Err((ApplyError::Permanent(error), _)) => {
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

/// Deliveries claimed by one statement when the dispatcher is busy.
const CLAIM_BATCH: usize = 32;

/// How often a delivery's outcome is written again before the lease is left to
/// expire.
const RECORD_TRIES: i32 = 8;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_bounded() {
        for attempts in 0..30 {
            let wait = backoff(attempts, Duration::from_secs(60));
            assert!(wait <= Duration::from_secs(60));
        }
        assert!(backoff(1, Duration::from_secs(60)) <= Duration::from_millis(400));
    }
}
