//! The queue in front of [`sync_assignee_many`]: concurrent SyncAssigneeInbound
//! calls wait here and are applied in groups (group commit).
//!
//! A worker takes whatever is queued when it is free (one call when traffic is
//! light, up to [`MAX_GROUP`] under load), so a lone call waits for nothing and
//! a burst shares one transaction. If a group fails (a database error, or a
//! concurrent duplicate committed by another replica), its calls are applied
//! again one by one, so one failing call cannot fail the others. SQLite has one
//! writer, so one worker; on PostgreSQL a second worker overlaps one group's
//! reads with another's commit.
//!
//! Lifecycle: the workers start with the service and stop once every handle is
//! dropped, or a few seconds after shutdown began (after in-flight calls).

use std::sync::Arc;
use std::time::Duration;

use service_runtime::config::DatabaseKind;
use service_runtime::database::Database;
use service_runtime::shutdown::Shutdown;
use service_runtime::telemetry::context;
use tokio::sync::{Mutex, mpsc, oneshot};
use tokio::task::JoinSet;
use tracing::Instrument as _;

use super::{AssigneeCall, SyncResponse, sync_assignee_many};
use crate::error::AssignmentError;

/// The most calls applied in one transaction.
pub const MAX_GROUP: usize = 128;

/// Calls waiting; callers beyond this wait to enqueue.
const QUEUE: usize = 4096;

/// How long workers keep serving after shutdown began.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

struct Job {
    call: AssigneeCall,
    reply: oneshot::Sender<Result<SyncResponse, AssignmentError>>,
}

/// A handle to queue calls; cheap to clone.
#[derive(Clone)]
pub struct AssigneeBatcher {
    queue: mpsc::Sender<Job>,
}

impl std::fmt::Debug for AssigneeBatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AssigneeBatcher").finish_non_exhaustive()
    }
}

impl AssigneeBatcher {
    /// Starts the workers (owned by the caller's task set).
    pub fn start(db: &Database, shutdown: &Shutdown, tasks: &mut JoinSet<()>) -> Self {
        let (queue, receiver) = mpsc::channel(QUEUE);
        let receiver = Arc::new(Mutex::new(receiver));
        let workers = match db.kind() {
            DatabaseKind::Sqlite => 1,
            DatabaseKind::Postgres => 2,
        };
        for _ in 0..workers {
            tasks.spawn(work(db.clone(), Arc::clone(&receiver), shutdown.clone()));
        }
        Self { queue }
    }

    /// Applies one call, with whatever else is queued.
    ///
    /// # Errors
    /// The call's own error; `ShuttingDown` when the workers stopped.
    pub async fn sync(&self, call: AssigneeCall) -> Result<SyncResponse, AssignmentError> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Job { call, reply })
            .await
            .map_err(|_| AssignmentError::ShuttingDown)?;
        answer.await.map_err(|_| AssignmentError::ShuttingDown)?
    }
}

/// Takes the next group off the queue; `None` when the worker should stop.
async fn next_group(
    receiver: &Mutex<mpsc::Receiver<Job>>,
    shutdown: &Shutdown,
) -> Option<Vec<Job>> {
    let mut receiver = receiver.lock().await;
    let first = if shutdown.is_triggered() {
        tokio::time::timeout(SHUTDOWN_GRACE, receiver.recv())
            .await
            .ok()??
    } else {
        tokio::select! {
            job = receiver.recv() => job?,
            () = shutdown.wait() => tokio::time::timeout(SHUTDOWN_GRACE, receiver.recv()).await.ok()??,
        }
    };
    let mut group = vec![first];
    while group.len() < MAX_GROUP {
        match receiver.try_recv() {
            Ok(job) => group.push(job),
            Err(_) => break,
        }
    }
    Some(group)
}

async fn work(db: Database, receiver: Arc<Mutex<mpsc::Receiver<Job>>>, shutdown: Shutdown) {
    while let Some(group) = next_group(&receiver, &shutdown).await {
        let calls: Vec<AssigneeCall> = group.iter().map(|job| job.call.clone()).collect();
        let span = context::group_span(
            "apply SyncAssigneeInbound group",
            calls.iter().map(|c| c.change.traceparent.as_str()),
        );
        match sync_assignee_many(&db, &calls).instrument(span).await {
            Ok(answers) => {
                for (job, answer) in group.into_iter().zip(answers) {
                    let _ = job.reply.send(answer);
                }
            }
            Err(error) if group.len() == 1 => {
                if let Some(job) = group.into_iter().next() {
                    let _ = job.reply.send(Err(error));
                }
            }
            Err(error) => {
                tracing::debug!(%error, calls = group.len(), "group failed; applying its calls one by one");
                for job in group {
                    let answer =
                        match sync_assignee_many(&db, std::slice::from_ref(&job.call)).await {
                            Ok(mut answers) => answers.pop().unwrap_or_else(|| {
                                Err(AssignmentError::Corrupt("a call got no answer".into()))
                            }),
                            Err(error) => Err(error),
                        };
                    let _ = job.reply.send(answer);
                }
            }
        }
    }
}
