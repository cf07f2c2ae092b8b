//! Outbound sync: carrying our side's assignee and status changes to Jira.
//!
//! # Shape
//!
//! The assignment service appends, in the transaction of every effective
//! change, what each linked Jira issue must now show to its **outbound log**
//! (commit-ordered sequences; see `assignment.v1.WatchOutboundSyncs`). This
//! module reads it in two tasks:
//!
//! 1. The **receiver** ([`run_receiver`]) keeps a `WatchOutboundSyncs` stream
//!    open from the last sequence stored (`outbound_cursor`), checks that each
//!    batch continues it (no gap), and stores the entries with the cursor in one
//!    transaction ([`store`]). Nothing is lost across restarts of either
//!    service: the log keeps entries (retention: 7 days) until the tracker asks
//!    for what follows its cursor again; nothing is stored twice (the log's
//!    sequence is unique here, so replicas may all read).
//! 2. The **worker** ([`run_worker`], on [`crate::worker`]) claims, under a
//!    renewed lease, the oldest pending entry of each issue and direction,
//!    applies it to Jira ([`apply`]: Sentry's semantics, state-based), and
//!    records what happened: done, stopped with a reason (operators see and
//!    retry these: `ListOutboundSyncs`, `RetryOutboundSync`), or retried later
//!    with backoff.
//!
//! # State-based, loop-free, convergent
//!
//! - An entry carries the group's state at commit; a pending entry that a
//!   newer entry of the same issue and direction replaces is **superseded**
//!   before it is sent (two quick reassignments need not both reach Jira; the
//!   last one does).
//! - Applying reads the issue first and sends nothing when Jira already shows
//!   the target, so a second attempt after a crash sends nothing twice.
//! - **Loop guard**: a change that came from integration X is marked
//!   `from_source` for X's issue: nothing is sent (Jira already shows it), but
//!   it supersedes older local entries not yet sent (the Jira change, applied
//!   after them on our side, wins).
//! - **Echoes**: Jira answers our change with a webhook, which may arrive
//!   before Jira's answer to the request does; what an entry sends is recorded
//!   before it is sent. When that webhook reports exactly what an entry sent,
//!   it is recognised once
//!   ([`store::recognise_echo`]): if a newer local change of the issue is still
//!   waiting to be sent, the echo is not applied (it would undo that change on
//!   our side before it reaches Jira); otherwise it is applied as usual and is
//!   a no-op for the group (UNCHANGED: no activity, no notification, no new
//!   entry).
//!
//! So when a local change and a Jira change cross, both sides end in the state
//! of the change that reached Jira last, with at most one round trip.

pub mod apply;
pub mod mappings;
pub mod store;

use std::time::Duration;

use service_runtime::database::Database;
use service_runtime::shutdown::Shutdown;
use tracing::Instrument as _;

use crate::assignment_client::{AssignmentClient, WatchError};
use crate::domain::outbound::OutboundRecord;
use crate::error::TrackerError;
use crate::metrics::Metrics;
use crate::queue_heads::{HeadId, Leased};
use crate::webhooks::waker::DispatchWaker;
use crate::worker::{self, Queue, WorkerSettings, backoff};
use apply::OutboundApplier;
use store::Outcome;

/// What the receiver works with.
#[derive(Debug, Clone)]
pub struct Receiver {
    /// The tracker's database.
    pub db: Database,
    /// Reads the outbound log.
    pub assignment: AssignmentClient,
    /// Wakes the worker after new entries were stored.
    pub waker: DispatchWaker,
}

/// The longest wait before the receiver reconnects.
const MAX_RECONNECT_WAIT: Duration = Duration::from_secs(10);

/// Runs the receiver until shutdown.
pub async fn run_receiver(receiver: Receiver, shutdown: Shutdown) {
    let mut failures = 0;
    while !shutdown.is_triggered() {
        match receive(&receiver, &shutdown, &mut failures).await {
            Ok(()) => {}
            Err(error) => {
                failures += 1;
                tracing::warn!(%error, failures, "outbound receiver: reconnecting");
            }
        }
        tokio::select! {
            () = shutdown.wait() => return,
            () = tokio::time::sleep(backoff(failures, MAX_RECONNECT_WAIT)) => {}
        }
    }
}

/// Why the receiver stopped reading; it reconnects after any of them.
#[derive(Debug, thiserror::Error)]
enum ReceiveError {
    #[error(transparent)]
    Watch(#[from] WatchError),
    #[error(transparent)]
    Store(#[from] TrackerError),
    #[error("the outbound log skipped from {cursor} to {next}")]
    Gap { cursor: u64, next: u64 },
    #[error("the assignment service closed the outbound stream")]
    Closed,
}

/// Reads from the stored cursor until the stream ends or fails.
async fn receive(
    receiver: &Receiver,
    shutdown: &Shutdown,
    failures: &mut i32,
) -> Result<(), ReceiveError> {
    let mut cursor = store::cursor(receiver.db.conn()).await?;
    let mut watch = match receiver.assignment.watch_outbound(cursor).await {
        Ok(watch) => watch,
        Err(WatchError::OutOfRange { oldest_available }) => {
            return skip_pruned(receiver, cursor, oldest_available).await;
        }
        Err(error) => return Err(error.into()),
    };
    loop {
        let next = tokio::select! {
            () = shutdown.wait() => return Ok(()),
            next = watch.next() => next,
        };
        let batch = match next {
            Ok(Some(batch)) => batch,
            Ok(None) => return Err(ReceiveError::Closed),
            Err(WatchError::OutOfRange { oldest_available }) => {
                return skip_pruned(receiver, cursor, oldest_available).await;
            }
            Err(error) => return Err(error.into()),
        };
        *failures = 0;
        let Some(last) = batch.intents.last().map(|i| i.source_sequence) else {
            continue;
        };
        let first = batch.intents.first().map_or(last, |i| i.source_sequence);
        if first != cursor + 1 {
            return Err(ReceiveError::Gap {
                cursor,
                next: first,
            });
        }
        let stored = store::store(&receiver.db, &batch.intents, last).await?;
        tracing::debug!(stored, through = last, "outbound entries stored");
        cursor = last;
        receiver.waker.wake();
    }
}

/// The log pruned entries this tracker never read (it was stopped for longer
/// than the log's retention): they are lost to it, which is logged as an
/// error; reading resumes at the oldest entry left. A later change of each
/// affected group brings Jira up to date again (sync is state-based).
async fn skip_pruned(
    receiver: &Receiver,
    cursor: u64,
    oldest_available: u64,
) -> Result<(), ReceiveError> {
    tracing::error!(
        cursor,
        oldest_available,
        "outbound entries were pruned before this tracker read them; resuming at the oldest left"
    );
    store::store(&receiver.db, &[], oldest_available.saturating_sub(1)).await?;
    Ok(())
}

/// What the worker works with.
#[derive(Debug, Clone)]
pub struct Worker {
    /// The tracker's database.
    pub db: Database,
    /// Applies entries to Jira.
    pub applier: OutboundApplier,
    /// Rung by the receiver and the retry RPC.
    pub waker: DispatchWaker,
    /// This replica's name on its leases.
    pub owner: String,
    /// Entries applied at once.
    pub concurrency: usize,
    /// How often to look for due entries when nothing woke the worker.
    pub poll_interval: Duration,
    /// How long a claim lasts unless renewed.
    pub lease: Duration,
    /// After shutdown began: how long entries in progress may take.
    pub shutdown_grace: Duration,
    /// Counts outcomes for `/metrics`.
    pub metrics: Metrics,
}

impl Queue for Worker {
    type Item = Leased<OutboundRecord>;

    /// An outcome's commit rings nobody: the loop claims after each one.
    const RINGS_FOR_SUCCESSORS: bool = false;

    fn head(item: &Leased<OutboundRecord>) -> HeadId {
        item.head
    }

    async fn claim(&self, limit: u64) -> Result<Vec<Leased<OutboundRecord>>, TrackerError> {
        store::claim(&self.db, &self.owner, self.lease, limit).await
    }

    async fn renew(&self, heads: &[HeadId]) -> Result<(), TrackerError> {
        store::renew(&self.db, &self.owner, heads, self.lease).await
    }

    async fn release(&self, heads: &[HeadId]) -> Result<(), TrackerError> {
        store::release(&self.db, &self.owner, heads).await
    }

    async fn process(&self, Leased { item: entry, .. }: Leased<OutboundRecord>) {
        let span = tracing::info_span!(
            "outbound_sync",
            outbound_id = entry.id,
            sequence = entry.intent.source_sequence,
            jira_key = %entry.intent.issue.key,
            traceparent = %entry.intent.traceparent,
        );
        let attempts = entry.attempts + 1;
        let outcome = self
            .applier
            .apply(&entry, attempts)
            .instrument(span.clone())
            .await;
        let _entered = span.enter();
        let label = match &outcome {
            Outcome::Done { result, .. } => {
                tracing::info!(%result, attempts, "outbound sync done");
                "done"
            }
            Outcome::Stopped(reason) => {
                tracing::warn!(%reason, attempts, "outbound sync stopped");
                "stopped"
            }
            Outcome::RetryLater(error, at) => {
                tracing::warn!(%error, attempts, %at, "outbound sync will be retried");
                "retry"
            }
        };
        self.metrics.outbound_outcome(label);
        for tries in 0..RECORD_TRIES {
            match store::record_outcome(&self.db, &entry, &self.owner, attempts, &outcome).await {
                Ok(()) => return,
                Err(error) => {
                    tracing::warn!(%error, tries, "could not record an outbound outcome");
                    tokio::time::sleep(backoff(tries, Duration::from_secs(2))).await;
                }
            }
        }
        tracing::error!(
            "could not record an outbound outcome; its lease will expire and it will be applied again (harmlessly: Jira is read first)"
        );
    }
}

/// How often an outcome is written again before the lease is left to expire.
const RECORD_TRIES: i32 = 8;

/// Runs the worker until shutdown.
pub async fn run_worker(worker: Worker, shutdown: Shutdown) {
    let settings = WorkerSettings {
        name: "outbound",
        concurrency: worker.concurrency,
        poll_interval: worker.poll_interval,
        lease: worker.lease,
        shutdown_grace: worker.shutdown_grace,
        metrics: worker.metrics.clone(),
    };
    let waker = worker.waker.clone();
    worker::run(worker, waker, settings, shutdown).await;
}
