//! The notification stream: serving the notification log to subscribers.
//!
//! # Shape
//!
//! One **tailer** task per process reads new rows of the log (see
//! [`crate::notification_log`] for why sequence order equals commit order) and
//! publishes them, in batches, on one bounded broadcast ring shared by every
//! subscriber of the process. It wakes when this process commits notifications
//! ([`LogWaker`]), when another replica does (PostgreSQL `LISTEN`), and on a
//! periodic poll that catches anything both missed.
//!
//! Each **subscription** is a task with a small bounded channel to its gRPC
//! stream. It first replays the log after its cursor from the database, then
//! follows the ring, skipping what it has already seen, so the hand-over has no
//! gap and no duplicate. Its cursor advances over every notification it
//! processes, matching its filter or not; when it has been silent for the
//! progress interval it sends a progress message carrying that cursor.
//!
//! # Slow subscribers
//!
//! A subscriber that reads slowly fills its own channel first; its task then
//! waits, and only it waits. Writers never wait for subscribers (they only commit
//! rows), the tailer never waits (the ring overwrites its oldest batch), and other
//! subscribers read the ring at their own pace. When the slow subscriber comes
//! back and finds that the ring moved past it (`Lagged`), it does not lose
//! anything: it switches back to reading the log from the database after its
//! cursor, then rejoins the ring. Only if retention pruned the notifications it
//! still needs does its stream end, with OUT_OF_RANGE and the oldest sequence
//! still available; a stream never ends with a clean OK after losing data.
//!
//! A subscriber that disconnects is noticed at once (its channel closes) and its
//! task ends. On shutdown every stream ends with UNAVAILABLE so clients reconnect
//! elsewhere with their cursor.

mod filter;
pub mod outbound;
mod retention;
mod subscription;
mod tailer;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use service_runtime::database::Database;
use service_runtime::shutdown::Shutdown;
use tokio::sync::{Notify, broadcast, watch};

pub use filter::NotificationFilter;
pub use retention::{RetentionSettings, run_retention};
pub use subscription::{EventReceiver, StartPosition, StreamEvent, SubscribeRequest, subscribe};
pub use tailer::run_tailer;

use crate::domain::Sequence;
use crate::error::{AssignmentError, Reason};
use crate::metrics::StreamMetrics;
use crate::notification_log::StoredNotification;

/// The most notifications the tailer publishes in one batch.
pub const BATCH_SIZE: u64 = 512;

/// Wakes the tailer after this process committed notifications, and keeps
/// `assignment_notification_head_sequence` current with this process's
/// commits (the tailer raises it for other replicas' commits as it reads them).
#[derive(Debug, Clone)]
pub struct LogWaker {
    notify: Arc<Notify>,
    /// The head gauge; only ever raised.
    head: prometheus_client::metrics::gauge::Gauge,
}

impl LogWaker {
    /// Tells the tailer there may be new rows. Cheap; wake-ups coalesce.
    pub fn wake(&self) {
        self.notify.notify_one();
    }

    /// Call after a commit that may have written notifications: raises the
    /// head gauge to the log's head (read now, so at least that commit's last
    /// sequence) before the caller answers, and wakes the tailer.
    pub async fn committed<C: sea_orm::ConnectionTrait>(&self, conn: &C) {
        self.wake();
        match crate::notification_log::bounds(conn).await {
            Ok(bounds) => raise(&self.head, bounds.head),
            // The tailer raises it when it reads the rows.
            Err(error) => tracing::debug!(%error, "cannot read the notification head"),
        }
    }

    async fn woken(&self) {
        self.notify.notified().await;
    }
}

/// Raises `gauge` to `sequence` unless it is already past it.
fn raise(gauge: &prometheus_client::metrics::gauge::Gauge, sequence: Sequence) {
    let value = i64::try_from(sequence.get()).unwrap_or(i64::MAX);
    gauge.inner().fetch_max(value, Ordering::Relaxed);
}

/// A run of consecutive notifications published by the tailer.
#[derive(Debug)]
pub struct Batch {
    /// The cursor the batch continues from: its first notification is the one
    /// after this sequence.
    pub after: Sequence,
    /// The last sequence in the batch.
    pub last: Sequence,
    /// The notifications, in sequence order.
    pub notifications: Vec<Arc<StoredNotification>>,
}

/// Stream settings.
#[derive(Debug, Clone)]
pub struct StreamSettings {
    /// Silence after which a stream gets a progress message.
    pub progress_interval: Duration,
    /// How many batches the shared ring holds before slow subscribers fall back
    /// to the database.
    pub ring_batches: usize,
    /// How often the tailer polls in case a wake-up was missed.
    pub poll_interval: Duration,
    /// Most streams open at once; one more is RESOURCE_EXHAUSTED.
    pub max_streams: usize,
    /// Most streams open at once on one client connection.
    pub max_streams_per_connection: usize,
}

/// What subscriptions share: the database, the ring and the settings.
#[derive(Debug, Clone)]
pub struct StreamHub {
    /// A pool of its own, used only to read the log: writers holding every
    /// connection of the main pool (for instance queued on a row lock) must not
    /// delay the stream.
    db: Database,
    ring: broadcast::Sender<Arc<Batch>>,
    waker: LogWaker,
    settings: StreamSettings,
    shutdown: Shutdown,
    /// The newest sequence the tailer published.
    head: Arc<AtomicU64>,
    /// Live subscriptions and their cursors, for the lag metrics.
    live: Arc<LiveSubscriptions>,
    metrics: StreamMetrics,
    /// Counts the tailer's looks at the database (after each wake-up or poll):
    /// readers of the outbound log wait on it instead of running a tailer of
    /// their own.
    rounds: watch::Sender<u64>,
}

/// A live subscription: its durable name (if any), its cursor, and the client
/// connection it streams to.
type LiveEntry = (Option<String>, Arc<AtomicU64>, Option<SocketAddr>);

/// Live subscriptions' names and cursors, registered for their lifetime.
#[derive(Debug, Default)]
struct LiveSubscriptions {
    next_id: AtomicU64,
    entries: Mutex<HashMap<u64, LiveEntry>>,
}

/// Removes a subscription from [`LiveSubscriptions`] when it ends.
#[derive(Debug)]
struct LiveGuard {
    id: u64,
    live: Arc<LiveSubscriptions>,
}

impl Drop for LiveGuard {
    fn drop(&mut self) {
        self.live
            .entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.id);
    }
}

impl StreamHub {
    /// A hub reading through `db` (a pool reserved for the stream); start
    /// [`run_tailer`] with it to feed the ring.
    pub fn new(
        db: Database,
        settings: StreamSettings,
        metrics: StreamMetrics,
        shutdown: Shutdown,
    ) -> Self {
        let (ring, _) = broadcast::channel(settings.ring_batches.max(1));
        Self {
            db,
            ring,
            waker: LogWaker {
                notify: Arc::new(Notify::new()),
                head: metrics.head.clone(),
            },
            settings,
            shutdown,
            head: Arc::new(AtomicU64::new(0)),
            live: Arc::new(LiveSubscriptions::default()),
            metrics,
            rounds: watch::Sender::new(0),
        }
    }

    /// Registers a live subscription's cursor until the guard drops, unless
    /// the process or the client's connection already has as many streams as
    /// it may (each stalled stream holds buffers: the caps bound the memory a
    /// client can make the server hold).
    fn register(
        &self,
        name: Option<String>,
        cursor: Arc<AtomicU64>,
        peer: Option<SocketAddr>,
    ) -> Result<LiveGuard, AssignmentError> {
        let mut entries = self.live.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= self.settings.max_streams {
            return Err(AssignmentError::refused(
                Reason::TooManyStreams,
                format!(
                    "the server streams to {} subscribers, its limit; retry later or on another replica",
                    entries.len()
                ),
            ));
        }
        if let Some(peer) = peer {
            let on_connection = entries
                .values()
                .filter(|(_, _, p)| *p == Some(peer))
                .count();
            if on_connection >= self.settings.max_streams_per_connection {
                return Err(AssignmentError::refused(
                    Reason::TooManyStreams,
                    format!(
                        "this connection has {on_connection} streams open, the most one connection may; close one or open another connection"
                    ),
                ));
            }
        }
        let id = self.live.next_id.fetch_add(1, Ordering::Relaxed);
        entries.insert(id, (name, cursor, peer));
        Ok(LiveGuard {
            id,
            live: Arc::clone(&self.live),
        })
    }

    /// Refreshes the subscriber gauges (count, lags).
    pub fn refresh_gauges(&self) {
        let head = self.head.load(Ordering::Relaxed);
        let entries = self.live.entries.lock().unwrap_or_else(|e| e.into_inner());
        let mut max_lag = 0;
        self.metrics.lag_by_subscriber.clear();
        for (name, cursor, _) in entries.values() {
            let lag = head.saturating_sub(cursor.load(Ordering::Relaxed));
            max_lag = max_lag.max(lag);
            if let Some(name) = name {
                self.metrics
                    .lag_by_subscriber
                    .get_or_create(&vec![("subscriber", name.clone())])
                    .set(i64::try_from(lag).unwrap_or(i64::MAX));
            }
        }
        self.metrics
            .subscribers
            .set(i64::try_from(entries.len()).unwrap_or(i64::MAX));
        self.metrics
            .max_lag
            .set(i64::try_from(max_lag).unwrap_or(i64::MAX));
    }

    /// The waker writers use after committing notifications.
    pub fn waker(&self) -> LogWaker {
        self.waker.clone()
    }

    /// The number of live subscriptions.
    pub fn subscriber_count(&self) -> usize {
        self.ring.receiver_count()
    }
}
