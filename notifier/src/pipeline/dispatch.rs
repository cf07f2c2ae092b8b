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

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use service_runtime::database::Database;
use service_runtime::shutdown::Shutdown;
use tokio::sync::Semaphore;
use tracing::Instrument as _;

use super::Wakers;
use super::pace::Pace;
use crate::channels::{Channels, Outcome, Send};
use crate::deliveries::{self, Delivery, Mark, Thread};
use crate::destinations;
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

/// Unfinished deliveries read per round.
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
    /// Recipients with a delivery in flight.
    in_flight: Arc<Mutex<HashSet<i64>>>,
    /// Destinations (tool, address) rate limited until the instant.
    limited: Arc<Mutex<HashMap<DestinationKey, chrono::DateTime<Utc>>>>,
    /// The pace of Slack and Discord channels.
    pace: Arc<Mutex<Pace<DestinationKey>>>,
}

/// Dispatches until shutdown.
pub async fn run(
    db: Database,
    channels: Channels,
    settings: DispatchSettings,
    metrics: Metrics,
    wakers: Wakers,
    shutdown: Shutdown,
) {
    let permits = Arc::new(Semaphore::new(settings.concurrency.max(1)));
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
        in_flight: Arc::default(),
        limited: Arc::default(),
    };
    let mut tasks = tokio::task::JoinSet::new();
    while !shutdown.is_triggered() {
        let next_due = match round(&shared, &permits, &mut tasks).await {
            Ok(next_due) => next_due,
            Err(error) => {
                tracing::warn!(%error, "dispatch round failed; trying again");
                Some(IDLE_POLL)
            }
        };
        let wait = next_due.unwrap_or(IDLE_POLL).min(IDLE_POLL);
        tokio::select! {
            () = shutdown.wait() => break,
            () = shared.wakers.dispatch.notified() => {}
            () = tokio::time::sleep(wait) => {}
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
        while tasks.try_join_next().is_some() {}
    }
    // Deliveries in flight finish their request (bounded by its timeout); the
    // process waits for them so none is left half-recorded without need.
    while tasks.join_next().await.is_some() {}
}

/// Starts what is due; returns how long until the next retry comes due.
async fn round(
    shared: &Shared,
    permits: &Arc<Semaphore>,
    tasks: &mut tokio::task::JoinSet<()>,
) -> Result<Option<Duration>, NotifierError> {
    let open = deliveries::unfinished(&shared.db, ROUND).await?;
    let now = Utc::now();
    let mut seen = HashSet::new();
    let mut next_due: Option<Duration> = None;
    for delivery in open {
        let recipient = delivery.notification.recipient;
        if !seen.insert(recipient) {
            continue;
        }
        if let Some(at) = delivery.next_attempt_at
            && at > now
        {
            let wait = (at - now).to_std().unwrap_or_default();
            next_due = Some(next_due.map_or(wait, |d| d.min(wait)));
            continue;
        }
        let Ok(permit) = Arc::clone(permits).try_acquire_owned() else {
            break;
        };
        if !shared
            .in_flight
            .lock()
            .is_ok_and(|mut set| set.insert(recipient))
        {
            continue;
        }
        let shared = shared.clone();
        tasks.spawn(async move {
            if let Err(error) = deliver(&shared, &delivery).await {
                tracing::warn!(%error, sequence = delivery.notification.sequence, "delivery could not be recorded; it is tried again");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            if let Ok(mut set) = shared.in_flight.lock() {
                set.remove(&recipient);
            }
            drop(permit);
            shared.wakers.dispatch.notify_one();
            shared.wakers.acknowledge.notify_one();
        });
    }
    Ok(next_due)
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
    let Some(destination) = destinations::load(db, n.recipient).await? else {
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
