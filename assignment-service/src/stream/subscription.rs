//! One subscription: replay from the database, then follow the ring (see the
//! module documentation of [`crate::stream`] for the slow-subscriber policy).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use tokio::sync::{broadcast, mpsc};
use tokio::time::Instant;

use super::{NotificationFilter, StreamHub};
use crate::domain::Sequence;
use crate::error::AssignmentError;
use crate::notification_log::{self, LogBounds, StoredNotification};
use crate::subscribers::{self, SubscriberName};

/// How many stream messages wait for the client before the subscription's task
/// waits (and, if the ring moves on meanwhile, falls back to the database).
const CHANNEL_CAPACITY: usize = 64;

/// How many rows one catch-up read takes.
const CATCH_UP_BATCH: u64 = 1000;

/// Where a stream starts, as the caller asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartPosition {
    /// At the oldest retained notification.
    Oldest,
    /// After this sequence.
    After(Sequence),
    /// At the head: only what commits from now on.
    Head,
    /// After this durable subscriber's acknowledged cursor, else at the oldest
    /// retained notification.
    Durable(SubscriberName),
}

/// A parsed Subscribe call.
#[derive(Debug, Clone)]
pub struct SubscribeRequest {
    /// Where to start.
    pub start: StartPosition,
    /// What to send.
    pub filter: NotificationFilter,
    /// The client connection the stream goes to, for the per-connection cap.
    pub peer: Option<std::net::SocketAddr>,
}

/// One message of a stream.
#[derive(Debug, Clone)]
pub enum StreamEvent {
    /// A notification.
    Notification(Arc<StoredNotification>),
    /// The stream reached this sequence and was idle.
    Progress(Sequence, DateTime<Utc>),
}

/// The messages of a stream; it ends after an `Err`. The error is boxed so a
/// channel slot stays small: every idle subscriber holds a block of slots.
pub type EventReceiver = mpsc::Receiver<Result<StreamEvent, Box<AssignmentError>>>;

fn out_of_range(cursor: Sequence, bounds: LogBounds) -> AssignmentError {
    bounds.behind_retention(format!(
        "cursor {cursor} is behind retention: notifications up to {} were pruned; resume from {} (or start at the head) and reconcile what was missed",
        bounds.pruned_through,
        bounds.oldest_available().get().saturating_sub(1),
    ))
}

/// Resolves the start, checks it against retention, and starts the
/// subscription's task. A cursor that is out of range fails here, before any
/// message is streamed.
///
/// # Errors
/// OUT_OF_RANGE for a cursor behind retention or beyond the head; database errors.
pub async fn subscribe(
    hub: &StreamHub,
    request: SubscribeRequest,
) -> Result<EventReceiver, AssignmentError> {
    if hub.shutdown.is_triggered() {
        return Err(AssignmentError::ShuttingDown);
    }
    // Join the ring before reading the database, so nothing committed from now on
    // can fall between the replay and the live part.
    let ring = hub.ring.subscribe();
    let bounds = notification_log::bounds(hub.db.conn()).await?;
    let cursor = match &request.start {
        StartPosition::Oldest => bounds.pruned_through,
        StartPosition::After(cursor) => *cursor,
        StartPosition::Head => bounds.head,
        StartPosition::Durable(name) => subscribers::stored_cursor(hub.db.conn(), name)
            .await?
            .unwrap_or(bounds.pruned_through),
    };
    if cursor < bounds.pruned_through {
        return Err(out_of_range(cursor, bounds));
    }
    if cursor > bounds.head {
        return Err(bounds.beyond_head(format!(
            "cursor {cursor} is beyond the head {}; it does not come from this log",
            bounds.head
        )));
    }
    let (sender, receiver) = mpsc::channel(CHANNEL_CAPACITY);
    let position = Arc::new(AtomicU64::new(cursor.get()));
    let name = match &request.start {
        StartPosition::Durable(name) => Some(name.to_string()),
        _ => None,
    };
    let guard = hub.register(name, Arc::clone(&position), request.peer)?;
    let subscription = Subscription {
        hub: hub.clone(),
        filter: request.filter,
        cursor,
        position,
        _live: guard,
        sender,
        idle_deadline: Instant::now() + hub.settings.progress_interval,
    };
    tokio::spawn(subscription.run(ring));
    Ok(receiver)
}

/// Why a subscription's task stops.
enum Stop {
    /// The client went away; nothing to send.
    Disconnected,
    /// The stream ends with this error.
    Error(AssignmentError),
}

struct Subscription {
    hub: StreamHub,
    filter: NotificationFilter,
    /// Everything up to here was processed (sent, or filtered out).
    cursor: Sequence,
    /// The cursor as the lag metrics read it.
    position: Arc<AtomicU64>,
    /// Keeps the subscription listed as live until it ends.
    _live: super::LiveGuard,
    sender: mpsc::Sender<Result<StreamEvent, Box<AssignmentError>>>,
    /// When the stream gets a progress message if nothing else is sent.
    idle_deadline: Instant,
}

impl Subscription {
    async fn run(mut self, mut ring: broadcast::Receiver<Arc<super::Batch>>) {
        let stop = match self.follow(&mut ring).await {
            Ok(never) => match never {},
            Err(stop) => stop,
        };
        if let Stop::Error(error) = stop {
            // Never wait here: the client may not be reading. If the channel is
            // full the API edge still ends the stream with an error status,
            // never a clean OK.
            let _ = self.sender.try_send(Err(Box::new(error)));
        }
    }

    /// Replays from the database, then follows the ring; returns only to stop.
    async fn follow(
        &mut self,
        ring: &mut broadcast::Receiver<Arc<super::Batch>>,
    ) -> Result<std::convert::Infallible, Stop> {
        // Catch-up reads are boxed: inline, their database futures would make
        // every idle subscription's task about 3 KiB larger.
        Box::pin(self.catch_up()).await?;
        loop {
            let received = tokio::select! {
                biased;
                () = self.hub.shutdown.wait() => return Err(Stop::Error(AssignmentError::ShuttingDown)),
                () = self.sender.closed() => return Err(Stop::Disconnected),
                received = ring.recv() => received,
                () = tokio::time::sleep_until(self.idle_deadline) => {
                    self.send(StreamEvent::Progress(self.cursor, service_runtime::time::now())).await?;
                    continue;
                }
            };
            match received {
                Ok(batch) => {
                    for notification in &batch.notifications {
                        if notification.sequence <= self.cursor {
                            continue;
                        }
                        if notification.sequence != self.cursor.next() {
                            // A hole (rows pruned under us, or joined mid-way):
                            // the database decides what is still available.
                            Box::pin(self.catch_up()).await?;
                            break;
                        }
                        self.deliver(notification).await?;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(skipped)) => {
                    tracing::debug!(skipped, cursor = %self.cursor, "subscriber fell behind the ring; reading from the database");
                    Box::pin(self.catch_up()).await?;
                }
                Err(broadcast::error::RecvError::Closed) => {
                    return Err(Stop::Error(AssignmentError::ShuttingDown));
                }
            }
        }
    }

    /// Reads the log after the cursor until it is exhausted.
    async fn catch_up(&mut self) -> Result<(), Stop> {
        loop {
            let bounds = notification_log::bounds(self.hub.db.conn())
                .await
                .map_err(Stop::Error)?;
            if self.cursor < bounds.pruned_through {
                return Err(Stop::Error(out_of_range(self.cursor, bounds)));
            }
            let rows =
                notification_log::read_after(self.hub.db.conn(), self.cursor, CATCH_UP_BATCH)
                    .await
                    .map_err(Stop::Error)?;
            let exhausted = (rows.len() as u64) < CATCH_UP_BATCH;
            for row in rows {
                if row.sequence != self.cursor.next() {
                    // Pruned between reading the bounds and the rows.
                    let bounds = notification_log::bounds(self.hub.db.conn())
                        .await
                        .map_err(Stop::Error)?;
                    return Err(Stop::Error(out_of_range(self.cursor, bounds)));
                }
                self.deliver(&Arc::new(row)).await?;
            }
            if exhausted {
                return Ok(());
            }
        }
    }

    /// Sends a notification if it matches the filter; advances the cursor.
    async fn deliver(&mut self, notification: &Arc<StoredNotification>) -> Result<(), Stop> {
        if self.filter.matches(notification) {
            self.send(StreamEvent::Notification(Arc::clone(notification)))
                .await?;
        }
        self.cursor = notification.sequence;
        self.position.store(self.cursor.get(), Ordering::Relaxed);
        Ok(())
    }

    async fn send(&mut self, event: StreamEvent) -> Result<(), Stop> {
        tokio::select! {
            biased;
            () = self.hub.shutdown.wait() => Err(Stop::Error(AssignmentError::ShuttingDown)),
            sent = self.sender.send(Ok(event)) => {
                sent.map_err(|_| Stop::Disconnected)?;
                self.idle_deadline = Instant::now() + self.hub.settings.progress_interval;
                Ok(())
            }
        }
    }
}
