//! The worker loop both of the tracker's queues run (webhook deliveries in
//! [`crate::webhooks::dispatcher`], outbound syncs in [`crate::outbound`]).
//!
//! It claims due items under a lease (the queue decides which: the head of
//! each issue's queue), processes up to `concurrency` at once, renews the
//! leases of items in progress every third of the lease (so a replica that
//! dies frees its claims within one lease), and claims again only when there
//! may be due work: the waker rang, the poll interval passed, or a slot freed
//! while the last claim had filled every free slot (more may be waiting) or
//! the queue does not ring for successors ([`Queue::RINGS_FOR_SUCCESSORS`]).
//! A claim that finds nothing is a transaction on the single writer for
//! nothing: at light load the inbox's dispatcher ran two per webhook (one per
//! completion, one per outcome commit), about a quarter of the tracker's
//! statements. On shutdown it stops claiming and lets items in progress
//! finish until the shutdown deadline; those still running then are
//! abandoned and their leases released, so another replica takes them at
//! once (their request ids make a second application harmless).

use std::collections::HashSet;
use std::future::Future;
use std::time::Duration;

use service_runtime::shutdown::Shutdown;
use tokio::task::JoinSet;

use crate::error::TrackerError;
use crate::metrics::Metrics;
use crate::queue_heads::HeadId;
use crate::webhooks::waker::DispatchWaker;

/// A queue of leased work.
pub trait Queue: Clone + Send + Sync + 'static {
    /// One claimed item.
    type Item: Send + 'static;

    /// Whether whoever makes an item's successor due (its outcome's commit)
    /// rings the waker. If not, the loop claims after every completion.
    const RINGS_FOR_SUCCESSORS: bool;

    /// The queue head whose lease covers the item while it is processed.
    fn head(item: &Self::Item) -> HeadId;

    /// Claims up to `limit` due items for this replica.
    fn claim(
        &self,
        limit: u64,
    ) -> impl Future<Output = Result<Vec<Self::Item>, TrackerError>> + Send;

    /// Extends this replica's leases on `heads`.
    fn renew(&self, heads: &[HeadId]) -> impl Future<Output = Result<(), TrackerError>> + Send;

    /// Gives up this replica's leases on `heads` (abandoned at shutdown).
    fn release(&self, heads: &[HeadId]) -> impl Future<Output = Result<(), TrackerError>> + Send;

    /// Processes one item and records its outcome (releasing its lease).
    fn process(&self, item: Self::Item) -> impl Future<Output = ()> + Send;
}

/// How a worker loop runs.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// What the loop is called in logs.
    pub name: &'static str,
    /// Items processed at once.
    pub concurrency: usize,
    /// How often to look for due items when nothing woke the loop.
    pub poll_interval: Duration,
    /// How long a claim lasts unless renewed.
    pub lease: Duration,
    /// After shutdown began: how long items in progress may take to finish.
    pub shutdown_grace: Duration,
    /// Counts claims (found items or not) for `/metrics`.
    pub metrics: Metrics,
}

/// How long releasing abandoned leases may take at shutdown (within the
/// shutdown's wind-down reserve).
const RELEASE_TIMEOUT: Duration = Duration::from_millis(500);

/// Items claimed by one statement when the loop is busy.
const CLAIM_BATCH: usize = 32;

/// Runs `queue` until shutdown; items in progress finish first.
pub async fn run<Q: Queue>(
    queue: Q,
    waker: DispatchWaker,
    settings: WorkerSettings,
    shutdown: Shutdown,
) {
    let mut running: JoinSet<HeadId> = JoinSet::new();
    let mut in_flight: HashSet<HeadId> = HashSet::new();
    let mut renewal = tokio::time::interval((settings.lease / 3).max(Duration::from_millis(10)));
    renewal.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // An interval, not a sleep made anew each turn: other events would put a
    // sleep off forever, and a retry falling due rings no waker. Its first
    // tick is one period away (the loop claims at start anyway).
    let period = settings.poll_interval.max(Duration::from_millis(1));
    let mut poll = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Whether due work may be waiting unclaimed: true at start, when woken or
    // polled, and after a claim that filled every free slot.
    let mut may_be_due = true;
    loop {
        let free = settings.concurrency.saturating_sub(running.len());
        // Claim in batches (one statement for several items) unless little is
        // running (then at once, for latency).
        let worth_claiming =
            free >= CLAIM_BATCH.min(settings.concurrency) || running.len() < CLAIM_BATCH;
        if may_be_due && free > 0 && worth_claiming && !shutdown.is_triggered() {
            match queue.claim(free as u64).await {
                Ok(claimed) => {
                    settings
                        .metrics
                        .queue_claim(settings.name, !claimed.is_empty());
                    may_be_due = claimed.len() >= free;
                    for item in claimed {
                        let id = Q::head(&item);
                        in_flight.insert(id);
                        let queue = queue.clone();
                        running.spawn(async move {
                            queue.process(item).await;
                            id
                        });
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, worker = settings.name, "cannot claim work");
                }
            }
        }
        tokio::select! {
            () = shutdown.wait(), if !shutdown.is_triggered() => {}
            () = waker.woken() => may_be_due = true,
            _ = poll.tick() => may_be_due = true,
            Some(done) = running.join_next(), if !running.is_empty() => {
                if let Ok(id) = done {
                    in_flight.remove(&id);
                }
                may_be_due |= !Q::RINGS_FOR_SUCCESSORS;
            }
            _ = renewal.tick(), if !in_flight.is_empty() => {
                let ids: Vec<HeadId> = in_flight.iter().copied().collect();
                if let Err(error) = queue.renew(&ids).await {
                    tracing::warn!(%error, worker = settings.name, "could not renew leases; another replica may take this work over");
                }
            }
        }
        if shutdown.is_triggered() {
            let deadline = shutdown.work_deadline(settings.shutdown_grace);
            while let Ok(Some(done)) = tokio::time::timeout_at(deadline, running.join_next()).await
            {
                if let Ok(id) = done {
                    in_flight.remove(&id);
                }
            }
            running.shutdown().await;
            if !in_flight.is_empty() {
                let ids: Vec<HeadId> = in_flight.into_iter().collect();
                tracing::warn!(
                    worker = settings.name,
                    abandoned = ids.len(),
                    "items still in progress at the shutdown deadline were abandoned; their leases are released"
                );
                let released = tokio::time::timeout(RELEASE_TIMEOUT, queue.release(&ids)).await;
                if !matches!(released, Ok(Ok(()))) {
                    tracing::warn!(
                        worker = settings.name,
                        "could not release the abandoned leases; they expire within one lease"
                    );
                }
            }
            return;
        }
    }
}

/// Backoff before attempt `attempts + 1`: exponential from 200 ms, capped at
/// `max`, with full jitter.
pub fn backoff(attempts: i32, max: Duration) -> Duration {
    let exp = u32::try_from(attempts.clamp(0, 20)).unwrap_or(20);
    let base = Duration::from_millis(200).saturating_mul(2u32.saturating_pow(exp));
    let capped = base.min(max);
    let millis = u64::try_from(capped.as_millis()).unwrap_or(60_000).max(1);
    Duration::from_millis(rand::random_range(millis / 2..=millis))
}

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
