//! The inbox's writer: one task that commits new deliveries and delivery
//! outcomes in groups (group commit).
//!
//! Every webhook must be durable before Jira gets its `2xx`, and every outcome
//! before the next delivery may run. Committing each on its own costs a
//! transaction per row and, on SQLite, a turn at the single write lock per row;
//! under load that, not the work, is the ceiling. So callers queue their write
//! here and wait; the writer takes whatever is queued when it is free (one row
//! when traffic is light, up to [`MAX_BATCH`] under load), writes it all in one
//! transaction, and answers each caller after the commit. Nothing waits for a
//! batch to fill, so light traffic sees no added latency. A batch that fails
//! fails every caller in it (webhooks answer 503, outcomes are written again),
//! and nothing of it is kept.
//!
//! Lifecycle: started with the service, it stops once every handle is dropped,
//! or a few seconds after shutdown began (after in-flight requests drained).

use std::time::Duration;

use sea_orm::{ConnAcquireErr, DbErr};
use service_runtime::database::{Database, pin_index_plans};
use service_runtime::shutdown::Shutdown;
use service_runtime::telemetry::context;
use tokio::sync::{mpsc, oneshot};
use tracing::Instrument as _;

use super::inbox::{self, NewDelivery, Outcome, Stored, StoredBatch};
use super::waker::DispatchWaker;
use crate::error::TrackerError;

/// The most writes committed in one transaction.
pub const MAX_BATCH: usize = 256;

/// Writes waiting for the writer; callers beyond this wait to enqueue (the
/// webhook endpoint's own concurrency limit is far below it).
const QUEUE: usize = 4096;

/// How long the writer keeps serving after shutdown began.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

enum Write {
    Store(
        Box<NewDelivery>,
        oneshot::Sender<Result<Stored, TrackerError>>,
    ),
    Record(Outcome, oneshot::Sender<Result<(), TrackerError>>),
}

/// A handle to queue writes; cheap to clone.
#[derive(Debug, Clone)]
pub struct InboxWriter {
    queue: mpsc::Sender<Write>,
}

impl std::fmt::Debug for Write {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Store(d, _) => write!(f, "Store({})", d.delivery_key),
            Self::Record(o, _) => write!(f, "Record({})", o.id),
        }
    }
}

fn stopped() -> TrackerError {
    TrackerError::Database(DbErr::ConnectionAcquire(ConnAcquireErr::ConnectionClosed))
}

impl InboxWriter {
    /// Starts the writer's task (owned by the caller's task set); it records
    /// outcomes of deliveries `owner` (this replica) holds.
    pub fn start(
        db: Database,
        owner: String,
        waker: DispatchWaker,
        shutdown: Shutdown,
        tasks: &mut tokio::task::JoinSet<()>,
    ) -> Self {
        let (queue, receiver) = mpsc::channel(QUEUE);
        tasks.spawn(run(db, owner, receiver, waker, shutdown));
        Self { queue }
    }

    /// Stores a delivery; returns once it is committed.
    ///
    /// # Errors
    /// Database errors, or the writer stopped (both transient: answer 503).
    pub async fn store(&self, delivery: NewDelivery) -> Result<Stored, TrackerError> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Write::Store(Box::new(delivery), reply))
            .await
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    /// Records a delivery's outcome; returns once it is committed.
    ///
    /// # Errors
    /// Database errors, or the writer stopped.
    pub async fn record(&self, outcome: Outcome) -> Result<(), TrackerError> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Write::Record(outcome, reply))
            .await
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

async fn run(
    db: Database,
    owner: String,
    mut receiver: mpsc::Receiver<Write>,
    waker: DispatchWaker,
    shutdown: Shutdown,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    loop {
        let first = if shutdown.is_triggered() {
            match tokio::time::timeout(SHUTDOWN_GRACE, receiver.recv()).await {
                Ok(Some(write)) => write,
                Ok(None) | Err(_) => return,
            }
        } else {
            tokio::select! {
                write = receiver.recv() => match write {
                    Some(write) => write,
                    None => return,
                },
                () = shutdown.wait() => continue,
            }
        };
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match receiver.try_recv() {
                Ok(write) => batch.push(write),
                Err(_) => break,
            }
        }
        if commit(&db, &owner, &mut batch).await {
            waker.wake();
        }
    }
}

/// Writes `batch` in one transaction and answers every caller; returns
/// whether a delivery may have fallen due (the dispatcher is rung only then:
/// an outcome that emptied its issue's queue gives it nothing to claim).
async fn commit(db: &Database, owner: &str, batch: &mut Vec<Write>) -> bool {
    let mut deliveries = Vec::new();
    let mut store_replies = Vec::new();
    let mut outcomes = Vec::new();
    let mut record_replies = Vec::new();
    for write in batch.drain(..) {
        match write {
            Write::Store(delivery, reply) => {
                deliveries.push(*delivery);
                store_replies.push(reply);
            }
            Write::Record(outcome, reply) => {
                outcomes.push(outcome);
                record_replies.push(reply);
            }
        }
    }
    // Traced as the group commit of the stored deliveries (outcomes are
    // recorded by the dispatcher's span of each delivery, which ended).
    let span = context::group_span(
        "commit webhook deliveries",
        deliveries.iter().map(|d| d.traceparent.as_str()),
    );
    let written = async {
        let txn = db.begin_write().await?;
        // Every statement here must cost what its rows cost, whatever the
        // statistics (the dedupe lookups, the outcome updates, the heads).
        pin_index_plans(&*txn).await?;
        let stored = if deliveries.is_empty() {
            StoredBatch {
                answers: Vec::new(),
                queued: Vec::new(),
            }
        } else {
            inbox::store_batch(&*txn, deliveries).await?
        };
        let settled = inbox::settle(&*txn, owner, &stored.queued, &outcomes).await?;
        txn.commit().await?;
        if !settled.dropped.is_empty() {
            tracing::warn!(
                dropped = ?settled.dropped,
                "outcomes of deliveries whose lease another replica took over were dropped; that replica applies them"
            );
        }
        Ok::<_, TrackerError>((stored.answers, settled.due))
    }
    .instrument(span)
    .await;
    match written {
        Ok((stored, due)) => {
            for (reply, stored) in store_replies.into_iter().zip(stored) {
                let _ = reply.send(Ok(stored));
            }
            for reply in record_replies {
                let _ = reply.send(Ok(()));
            }
            due
        }
        Err(error) => {
            tracing::warn!(%error, "inbox write failed; every caller of the batch is told");
            // The error is not Clone; callers only need its kind and text.
            let text = error.to_string();
            let transient =
                || TrackerError::Database(DbErr::Custom(format!("inbox write failed: {text}")));
            for reply in store_replies {
                let _ = reply.send(Err(transient()));
            }
            for reply in record_replies {
                let _ = reply.send(Err(transient()));
            }
            false
        }
    }
}
