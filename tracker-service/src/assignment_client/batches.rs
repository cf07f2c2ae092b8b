//! Carries concurrent assignee changes to the assignment service together: each
//! [`super::AssignmentClient::sync_assignee`] queues its change here, and a task
//! sends whatever is queued when a call slot is free as one
//! `SyncAssigneeInboundBatch` call (one change when traffic is light, up to the
//! configured most under load), then hands each caller its own outcome.
//!
//! The assignment service applies each change of a batch exactly as its own
//! call (own request id, validation and result), so grouping changes no
//! outcome; it saves a call's HTTP/2, gate and span work per change on both
//! sides. A lone change waits for nothing. At most [`IN_FLIGHT`] batches are
//! outstanding; changes queue behind them, which is what lets a batch grow.
//!
//! An assignment service without the batch RPC (an older replica during a
//! rolling upgrade) answers UNIMPLEMENTED: that batch, and every later change,
//! goes as single `SyncAssigneeInbound` calls.
//!
//! Lifecycle: the task starts with the tracker's client and ends once every
//! handle (every clone of that client) is dropped and its last batches are
//! answered; so it serves the dispatcher's last calls during shutdown and never
//! holds shutdown up itself. A change whose task is gone fails as UNAVAILABLE
//! (transient: the delivery is retried).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use proto::assignment::v1 as pb;
use service_runtime::telemetry::context;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::task::JoinSet;
use tonic::{Code, Status};
use tracing::Instrument as _;

use super::{AssignmentClient, CallContext};

/// Batches outstanding at once.
const IN_FLIGHT: usize = 4;

/// Changes waiting for a batch; callers beyond this wait to queue.
const QUEUE: usize = 1024;

/// What a change's caller gets back.
type Answer = Result<pb::SyncAssigneeInboundResponse, Status>;

/// One queued change and where its answer goes.
struct Job {
    change: pb::SyncAssigneeInboundRequest,
    context: CallContext,
    reply: oneshot::Sender<Answer>,
}

/// A handle to queue changes; cheap to clone.
#[derive(Clone)]
pub(super) struct AssigneeBatches {
    queue: mpsc::Sender<Job>,
}

impl std::fmt::Debug for AssigneeBatches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AssigneeBatches").finish_non_exhaustive()
    }
}

impl AssigneeBatches {
    /// Starts the task that sends batches of at most `max` changes through
    /// `client` (which must not batch itself).
    pub(super) fn start(client: AssignmentClient, max: usize) -> Self {
        let (queue, receiver) = mpsc::channel(QUEUE);
        tokio::spawn(run(client, max.max(1), receiver));
        Self { queue }
    }

    /// Applies one change with whatever else is queued.
    pub(super) async fn sync(
        &self,
        change: pb::SyncAssigneeInboundRequest,
        context: &CallContext,
    ) -> Answer {
        let (reply, answer) = oneshot::channel();
        // The caller's span is the change's cause, as it is a single call's.
        let job = Job {
            change,
            context: CallContext {
                traceparent: context::current_or(&context.traceparent),
            },
            reply,
        };
        let gone = || Status::unavailable("the tracker's batching of assignee changes stopped");
        self.queue.send(job).await.map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }
}

/// Takes what is queued when a slot is free and sends it as one batch.
async fn run(client: AssignmentClient, max: usize, mut receiver: mpsc::Receiver<Job>) {
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    let unsupported = Arc::new(AtomicBool::new(false));
    let mut calls = JoinSet::new();
    loop {
        let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
            break;
        };
        let Some(first) = receiver.recv().await else {
            break;
        };
        let mut jobs = vec![first];
        while jobs.len() < max {
            match receiver.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        let client = client.clone();
        let unsupported = Arc::clone(&unsupported);
        calls.spawn(async move {
            send(&client, jobs, &unsupported).await;
            drop(slot);
        });
        while calls.try_join_next().is_some() {}
    }
    while calls.join_next().await.is_some() {}
}

/// Sends `jobs` as one batch (or one by one, when the service has no batch
/// RPC) and answers each.
async fn send(client: &AssignmentClient, jobs: Vec<Job>, unsupported: &AtomicBool) {
    if !unsupported.load(Ordering::Relaxed) {
        let changes = jobs
            .iter()
            .map(|job| pb::BatchedAssigneeChange {
                change: Some(job.change.clone()),
                traceparent: job.context.traceparent.clone(),
            })
            .collect();
        // One call serves many traces: its span is the child of the first
        // change's context and links the others, as a group commit's.
        let span = context::group_span(
            "send assignee changes",
            jobs.iter().map(|job| job.context.traceparent.as_str()),
        );
        match client.sync_assignee_batch(changes).instrument(span).await {
            Ok(outcomes) => {
                answer_each(jobs, outcomes);
                return;
            }
            Err(status) if status.code() == Code::Unimplemented => {
                tracing::warn!(
                    "the assignment service has no SyncAssigneeInboundBatch; \
                     sending assignee changes one call each"
                );
                unsupported.store(true, Ordering::Relaxed);
            }
            Err(status) => {
                for job in jobs {
                    let _ = job.reply.send(Err(status.clone()));
                }
                return;
            }
        }
    }
    let singles = jobs.into_iter().map(|job| async move {
        let answer = client.sync_assignee_single(job.change, &job.context).await;
        let _ = job.reply.send(answer);
    });
    futures_util::future::join_all(singles).await;
}

/// Hands each job its outcome (the i-th outcome answers the i-th change).
fn answer_each(jobs: Vec<Job>, outcomes: Vec<pb::BatchedAssigneeOutcome>) {
    let count = outcomes.len();
    let mut outcomes = outcomes.into_iter();
    for job in jobs {
        let answer = match outcomes.next() {
            Some(outcome) => answer_of(outcome),
            None => Err(Status::unknown(format!(
                "the assignment service answered {count} outcomes for a batch of more changes"
            ))),
        };
        let _ = job.reply.send(answer);
    }
}

/// A batched outcome as its own call's result.
fn answer_of(outcome: pb::BatchedAssigneeOutcome) -> Answer {
    use pb::batched_assignee_outcome::Outcome;
    match outcome.outcome {
        Some(Outcome::Response(response)) => Ok(response),
        Some(Outcome::Error(error)) => Err(Status::with_details(
            Code::from(error.code),
            error.message,
            error.details.into(),
        )),
        None => Err(Status::unknown(
            "the assignment service answered a batched change with no outcome",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outcome_answers_as_its_own_call_would() {
        use pb::batched_assignee_outcome::Outcome;
        let refused = Status::invalid_argument("email: not an address");
        let outcome = pb::BatchedAssigneeOutcome {
            outcome: Some(Outcome::Error(pb::BatchedError {
                code: refused.code() as i32,
                message: refused.message().to_owned(),
                details: refused.details().to_vec(),
            })),
        };
        let answered = answer_of(outcome).expect_err("refused");
        assert_eq!(answered.code(), Code::InvalidArgument);
        assert_eq!(answered.message(), "email: not an address");

        let applied = pb::SyncAssigneeInboundResponse {
            results: vec![pb::GroupSyncResult {
                group_id: 7,
                ..Default::default()
            }],
        };
        let outcome = pb::BatchedAssigneeOutcome {
            outcome: Some(Outcome::Response(applied.clone())),
        };
        assert_eq!(answer_of(outcome).expect("applied"), applied);
        let empty = pb::BatchedAssigneeOutcome { outcome: None };
        assert_eq!(answer_of(empty).expect_err("empty").code(), Code::Unknown);
    }

    #[tokio::test]
    async fn a_short_answer_fails_the_changes_it_left_out_for_a_retry() {
        let (first, first_answer) = oneshot::channel();
        let (second, second_answer) = oneshot::channel();
        let job = |reply| Job {
            change: pb::SyncAssigneeInboundRequest::default(),
            context: CallContext::default(),
            reply,
        };
        let applied = pb::BatchedAssigneeOutcome {
            outcome: Some(pb::batched_assignee_outcome::Outcome::Response(
                pb::SyncAssigneeInboundResponse::default(),
            )),
        };
        answer_each(vec![job(first), job(second)], vec![applied]);
        assert!(first_answer.await.expect("answered").is_ok());
        let left_out = second_answer
            .await
            .expect("answered")
            .expect_err("left out");
        assert_eq!(left_out.code(), Code::Unknown, "transient for the tracker");
    }
}
