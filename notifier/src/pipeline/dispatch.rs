//! Sending stored deliveries.
//!
//! Each round reads the oldest unfinished deliveries and starts, per
//! recipient, only the oldest one, and only when none of that recipient's is
//! in flight and it is due; so a recipient's messages go out in sequence
//! order and a slow or failing recipient delays only itself. At most
//! `concurrency` deliveries are in flight. A tool's rate limit (a 429 with
//! `Retry-After`) holds every delivery to that destination (tool and
//! channel) until it passes.
//!
//! One delivery: load the recipient's destination (none: undeliverable);
//! mark it `sending` with the attempt's number; send (an edit of the
//! thread's message when it is an update and the thread went to this same
//! destination, a new message otherwise, also when the thread's message was
//! deleted at the tool); then record the outcome (sent with the thread's
//! message in one transaction, retrying with a back-off, or stopped).

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use service_runtime::database::Database;
use service_runtime::shutdown::Shutdown;
use tokio::sync::mpsc;
use tracing::Instrument as _;

use super::Wakers;
use super::pace::Pace;
use crate::channels::{Channels, Outcome, Send};
use crate::deliveries::{self, Delivery, Mark, Thread};
use crate::domain::{Channel, DeliveryState};
use crate::error::NotifierError;
use crate::metrics::Metrics;

/// How the dispatcher works.
#[derive(Debug, Clone)]
pub struct DispatchSettings {
    /// Deliveries in flight at once.
    pub concurrency: usize,
    /// The longest back-off between attempts.
    pub max_backoff: Duration,
    /// Messages per second to one Slack or Discord channel (0: unpaced).
    pub channel_rate: f64,
    /// Burst per channel.
    pub channel_burst: u32,
}

/// Recipients' head deliveries read per round.
const ROUND: u64 = 1000;

/// How long a round waits when nothing wakes it (a retry coming due).
const IDLE_POLL: Duration = Duration::from_secs(1);

/// The wait before attempt `attempts + 1`: 100 ms doubling, at most `max`.
pub fn backoff(attempts: u32, max: Duration) -> Duration {
    let exponent = attempts.saturating_sub(1).min(20);
    Duration::from_millis(100)
        .saturating_mul(1 << exponent)
        .min(max)
}

/// A destination as rate limits see it: the tool and the channel or URL.
type DestinationKey = (Channel, String);

/// What the delivery tasks share.
#[derive(Debug, Clone)]
struct Shared {
    db: Database,
    channels: Channels,
    settings: DispatchSettings,
    metrics: Metrics,
    wakers: Wakers,
    /// Destinations (tool, address) rate limited until the instant.
    limited: Arc<Mutex<HashMap<DestinationKey, chrono::DateTime<Utc>>>>,
    /// The pace of Slack and Discord channels.
    pace: Arc<Mutex<Pace<DestinationKey>>>,
}

/// Who is where: in flight, waiting for a slot, or waiting for a retry.
#[derive(Debug, Default)]
struct Board {
    /// Recipients with an attempt running.
    in_flight: HashSet<i64>,
    /// Recipients whose head may go, in arrival order.
    waiting: VecDeque<i64>,
    /// The same, for lookups.
    queued: HashSet<i64>,
    /// Recipients whose head is due later.
    delayed: BTreeSet<(tokio::time::Instant, i64)>,
    /// The same, by recipient.
    delayed_at: HashMap<i64, tokio::time::Instant>,
}

impl Board {
    /// Whether the dispatcher already tracks `recipient`.
    fn knows(&self, recipient: i64) -> bool {
        self.in_flight.contains(&recipient)
            || self.queued.contains(&recipient)
            || self.delayed_at.contains_key(&recipient)
    }

    fn enqueue(&mut self, recipient: i64) {
        if !self.in_flight.contains(&recipient) && self.queued.insert(recipient) {
            self.waiting.push_back(recipient);
        }
    }

    fn delay(&mut self, recipient: i64, at: tokio::time::Instant) {
        if let Some(old) = self.delayed_at.insert(recipient, at) {
            self.delayed.remove(&(old, recipient));
        }
        self.delayed.insert((at, recipient));
    }

    /// Moves recipients whose retry came due to the waiting line; returns
    /// when the next one comes due.
    fn promote(&mut self, now: tokio::time::Instant) -> Option<tokio::time::Instant> {
        while let Some(&(at, recipient)) = self.delayed.first() {
            if at > now {
                return Some(at);
            }
            self.delayed.pop_first();
            self.delayed_at.remove(&recipient);
            self.enqueue(recipient);
        }
        None
    }
}

/// When `at` (a stored retry time) is, on the runtime's clock.
fn instant_of(at: chrono::DateTime<Utc>) -> tokio::time::Instant {
    let wait = (at - Utc::now()).to_std().unwrap_or_default();
    tokio::time::Instant::now() + wait
}

/// Dispatches until shutdown. `arrivals` names the recipient of each newly
/// stored notification; a wake-up of [`Wakers::dispatch`] (an operator's
/// retry, a new destination) re-reads every recipient's head.
pub async fn run(
    db: Database,
    channels: Channels,
    settings: DispatchSettings,
    metrics: Metrics,
    wakers: Wakers,
    mut arrivals: mpsc::Receiver<i64>,
    shutdown: Shutdown,
) {
    let concurrency = settings.concurrency.max(1);
    let shared = Shared {
        db,
        channels,
        pace: Arc::new(Mutex::new(Pace::new(
            settings.channel_rate,
            settings.channel_burst,
        ))),
        settings,
        metrics,
        wakers,
        limited: Arc::default(),
    };
    let (done_tx, mut done) = mpsc::unbounded_channel::<i64>();
    let mut board = Board::default();
    let mut tasks = tokio::task::JoinSet::new();
    let mut full_round = true;
    let mut next_sweep = tokio::time::Instant::now();
    while !shutdown.is_triggered() {
        let now = tokio::time::Instant::now();
        if full_round || now >= next_sweep {
            // The safety net and the start: every recipient's head, from the
            // database (also finds what an operator put back in line).
            if let Err(error) = sweep(&shared.db, &mut board).await {
                tracing::warn!(%error, "reading the deliveries failed; trying again");
            }
            full_round = false;
            next_sweep = now + IDLE_POLL;
        }
        let next_due = board.promote(now);
        while board.in_flight.len() < concurrency {
            let Some(recipient) = board.waiting.pop_front() else {
                break;
            };
            board.queued.remove(&recipient);
            match deliveries::head_of(&shared.db, recipient).await {
                Ok(None) => {}
                Ok(Some(delivery)) => match delivery.next_attempt_at {
                    Some(at) if at > Utc::now() => board.delay(recipient, instant_of(at)),
                    _ => {
                        board.in_flight.insert(recipient);
                        let (shared, done_tx) = (shared.clone(), done_tx.clone());
                        tasks.spawn(async move {
                            if let Err(error) = deliver(&shared, &delivery).await {
                                tracing::warn!(%error, sequence = delivery.notification.sequence, "delivery could not be recorded; it is tried again");
                                tokio::time::sleep(Duration::from_millis(200)).await;
                            }
                            let _ = done_tx.send(recipient);
                            shared.wakers.acknowledge.notify_one();
                        });
                    }
                },
                Err(error) => {
                    tracing::warn!(%error, recipient, "reading a recipient's next delivery failed");
                    board.delay(recipient, now + Duration::from_millis(200));
                }
            }
        }
        let wake = next_due.map_or(next_sweep, |due| due.min(next_sweep));
        tokio::select! {
            () = shutdown.wait() => break,
            Some(recipient) = done.recv() => {
                board.in_flight.remove(&recipient);
                // Its next delivery, if any, goes next (read when it starts).
                board.enqueue(recipient);
            }
            Some(recipient) = arrivals.recv() => {
                if !board.knows(recipient) {
                    board.enqueue(recipient);
                }
            }
            () = shared.wakers.dispatch.notified() => full_round = true,
            () = tokio::time::sleep_until(wake) => {}
        }
        while tasks.try_join_next().is_some() {}
    }
    // Deliveries in flight finish their request (bounded by its timeout); the
    // process waits for them so none is left half-recorded without need.
    while tasks.join_next().await.is_some() {}
}

/// Puts every recipient with an unfinished delivery on the board.
async fn sweep(db: &Database, board: &mut Board) -> Result<(), NotifierError> {
    for delivery in deliveries::heads(db, ROUND).await? {
        let recipient = delivery.notification.recipient;
        if board.in_flight.contains(&recipient) || board.queued.contains(&recipient) {
            continue;
        }
        match delivery.next_attempt_at {
            Some(at) if at > Utc::now() => board.delay(recipient, instant_of(at)),
            _ => {
                if let Some(old) = board.delayed_at.remove(&recipient) {
                    board.delayed.remove(&(old, recipient));
                }
                board.enqueue(recipient);
            }
        }
    }
    Ok(())
}

/// One attempt at one delivery, in a span continuing the notification's trace.
async fn deliver(shared: &Shared, delivery: &Delivery) -> Result<(), NotifierError> {
    let n = &delivery.notification;
    let span = tracing::info_span!(
        "deliver",
        sequence = n.sequence,
        recipient = n.recipient,
        attempt = delivery.attempts + 1
    );
    service_runtime::telemetry::context::set_parent(&span, &n.traceparent);
    attempt(shared, delivery).instrument(span).await
}

async fn attempt(shared: &Shared, delivery: &Delivery) -> Result<(), NotifierError> {
    let db = &shared.db;
    let n = &delivery.notification;
    let Some(destination) = shared.wakers.destinations.load(db, n.recipient).await? else {
        if deliveries::mark(db, n.sequence, delivery.state, Mark::Undeliverable).await? {
            shared.metrics.attempt("none", "undeliverable");
        }
        return Ok(());
    };
    let target = &destination.target;
    let channel = target.channel();
    let key = (channel, target.address().to_owned());
    let limited_until = shared
        .limited
        .lock()
        .ok()
        .and_then(|limited| limited.get(&key).copied());
    if let Some(until) = limited_until
        && until > Utc::now()
    {
        deliveries::mark(
            db,
            n.sequence,
            delivery.state,
            Mark::Retrying {
                reason: "waiting out the destination's rate limit".into(),
                at: until,
            },
        )
        .await?;
        return Ok(());
    }
    if channel != Channel::Webhook {
        let paced = shared.pace.lock().map_or(Ok(()), |mut pace| {
            pace.take(key.clone(), tokio::time::Instant::now())
        });
        if let Err(at) = paced {
            let wait = at.saturating_duration_since(tokio::time::Instant::now());
            let at = Utc::now() + chrono::Duration::from_std(wait).unwrap_or_default();
            deliveries::mark(
                db,
                n.sequence,
                delivery.state,
                Mark::Retrying {
                    reason: "paced: the channel's message rate".into(),
                    at,
                },
            )
            .await?;
            return Ok(());
        }
    }
    let thread = if n.update {
        deliveries::thread(db, n.recipient, &n.message_key)
            .await?
            .filter(|t| t.channel == channel && t.address == target.address())
    } else {
        None
    };
    let attempts = delivery.attempts + 1;
    // Any earlier attempt may have reached the tool: the notifier stopped
    // while sending, or the answer was lost (a timeout, a 5xx from a proxy).
    let maybe_sent = delivery.attempts > 0;
    // The claim: only if no other attempt acted on the row since it was read.
    if !deliveries::mark(
        db,
        n.sequence,
        delivery.state,
        Mark::Sending { channel, attempts },
    )
    .await?
    {
        return Ok(());
    }
    let mut edit = thread.as_ref();
    let mut outcome = shared
        .channels
        .send(
            target,
            Send {
                notification: n,
                edit,
                maybe_sent,
            },
        )
        .await;
    if outcome == Outcome::ThreadGone {
        tracing::info!(
            sequence = n.sequence,
            "the thread's message is gone at the tool; posting a new one"
        );
        edit = None;
        outcome = shared
            .channels
            .send(
                target,
                Send {
                    notification: n,
                    edit: None,
                    maybe_sent,
                },
            )
            .await;
    }
    match outcome {
        Outcome::Sent { external_id } => {
            let started = edit.is_none().then(|| Thread {
                channel,
                address: target.address().to_owned(),
                external_id: external_id.clone(),
            });
            deliveries::sent(db, n, &external_id, started.as_ref()).await?;
            shared.metrics.attempt(channel.as_str(), "sent");
        }
        Outcome::Retry { reason, after } => {
            let wait =
                backoff(attempts, shared.settings.max_backoff).max(after.unwrap_or_default());
            let at = Utc::now() + chrono::Duration::from_std(wait).unwrap_or_default();
            if after.is_some()
                && let Ok(mut limited) = shared.limited.lock()
            {
                limited.insert(key, at);
            }
            tracing::info!(sequence = n.sequence, %reason, ?wait, "delivery failed for now");
            deliveries::mark(
                db,
                n.sequence,
                DeliveryState::Sending,
                Mark::Retrying { reason, at },
            )
            .await?;
            shared.metrics.attempt(channel.as_str(), "retrying");
        }
        Outcome::Stop { reason } => {
            tracing::warn!(sequence = n.sequence, %reason, "delivery refused for good");
            deliveries::mark(
                db,
                n.sequence,
                DeliveryState::Sending,
                Mark::Stopped { reason },
            )
            .await?;
            shared.metrics.attempt(channel.as_str(), "stopped");
        }
        Outcome::ThreadGone => {
            deliveries::mark(
                db,
                n.sequence,
                DeliveryState::Sending,
                Mark::Stopped {
                    reason: "the tool lost the message twice".into(),
                },
            )
            .await?;
            shared.metrics.attempt(channel.as_str(), "stopped");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_ceiling() {
        let max = Duration::from_secs(5);
        assert_eq!(backoff(1, max), Duration::from_millis(100));
        assert_eq!(backoff(2, max), Duration::from_millis(200));
        assert_eq!(backoff(4, max), Duration::from_millis(800));
        assert_eq!(backoff(10, max), max);
        assert_eq!(backoff(u32::MAX, max), max);
    }
}
