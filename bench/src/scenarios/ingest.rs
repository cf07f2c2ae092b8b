//! ingest and latency: signed assignee webhooks over many issues and users,
//! through the tracker into the assignment service, with one subscriber
//! measuring end-to-end latency (POST to notification).
//!
//! Every webhook of issue `i` in round `r` assigns [`crate::bed::assignee`]
//! (two users in turn), so each one is an effective change that produces
//! exactly one "assigned" notification; the k-th such notification of an issue's group answers the
//! issue's k-th accepted webhook.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use proto::assignment::v1 as assignment;
use tokio_stream::StreamExt as _;

use crate::bed::{Bed, Tenant, assignee_webhook, channel};
use crate::report::Latency;

/// How webhooks are sent.
#[derive(Debug, Clone, Copy)]
pub enum Load {
    /// As fast as they are accepted, by this many concurrent senders.
    Closed {
        /// Concurrent senders.
        concurrency: usize,
    },
    /// At a fixed rate, each request at its scheduled time (latency counts from
    /// that time, so a slow server cannot hide its queueing).
    Open {
        /// Requests per second.
        rate: f64,
    },
}

/// What a run measured.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Webhooks answered 200 "accepted".
    pub accepted: usize,
    /// Assignment changes committed (one "assigned" notification each).
    pub applied: usize,
    /// Accepted webhooks the tracker has not delivered (must be zero).
    pub lost: usize,
    /// Delivered but changing nothing: a webhook pushed back and sent again
    /// after a later one of its issue was applied is stale when it arrives
    /// (Jira's retries reorder the same way; the newer state stands).
    pub stale_or_unchanged: usize,
    /// Accepted per second of sending.
    pub accepted_per_s: f64,
    /// Applied per second, from the first send to the last notification.
    pub applied_per_s: f64,
    /// POST (or scheduled send) to notification.
    pub latency: Latency,
    /// POST (or scheduled send) to the tracker's 200: the intake's share of
    /// `latency` (authentication, the inbox's group commit, waits out of
    /// refusals); the rest is claim, apply and stream.
    pub intake: Latency,
    /// Requests answered 503 / 429 (or not answered) and sent again.
    pub refused: usize,
    /// Of those, answered with a `Retry-After` the sender waited out (the
    /// tracker pushing back).
    pub pushed_back: usize,
    /// Deliveries pending in the tracker's inbox at the end of the run's
    /// duration, read from its database at that instant (senders still
    /// finish the request they are in, waiting out a `Retry-After`, after
    /// it). Until stop 32 this was accepted minus notifications arrived once
    /// every sender had finished, which also counted the deliveries applied
    /// that changed nothing (`stale_or_unchanged`).
    pub backlog_at_stop: usize,
    /// Applied per second while sending (from the first send to the stop).
    pub applied_per_s_while_sending: f64,
}

/// When each accepted webhook was sent, per issue: (webhook number, sent or
/// scheduled, answered 200).
type SendTimes = Vec<Vec<(usize, Instant, Instant)>>;

/// Records notification arrival times per issue.
struct Arrivals {
    per_issue: Mutex<Vec<Vec<Instant>>>,
    total: AtomicUsize,
    last: Mutex<Option<Instant>>,
}

async fn subscribe(bed: &Bed, tenant: &Tenant) -> anyhow::Result<Arc<Arrivals>> {
    let group_index: HashMap<i64, usize> = tenant
        .groups
        .iter()
        .enumerate()
        .map(|(i, g)| (*g, i))
        .collect();
    let arrivals = Arc::new(Arrivals {
        per_issue: Mutex::new(vec![Vec::new(); tenant.groups.len()]),
        total: AtomicUsize::new(0),
        last: Mutex::new(None),
    });
    let mut stream = assignment::notification_service_client::NotificationServiceClient::new(
        channel(bed.assignment_grpc)?,
    )
    .max_decoding_message_size(64 * 1024 * 1024)
    .subscribe(assignment::SubscribeRequest {
        start: Some(proto::assignment::v1::subscribe_request::Start::StartAtHead(true)),
        ..Default::default()
    })
    .await?
    .into_inner();
    let sink = Arc::clone(&arrivals);
    tokio::spawn(async move {
        while let Some(Ok(message)) = stream.next().await {
            if let Some(assignment::subscribe_response::Event::Notification(n)) = message.event
                && n.kind() == assignment::NotificationKind::Assigned
                && let Some(&issue) = group_index.get(&n.group_id)
            {
                let now = Instant::now();
                sink.per_issue.lock().unwrap_or_else(|e| e.into_inner())[issue].push(now);
                *sink.last.lock().unwrap_or_else(|e| e.into_inner()) = Some(now);
                sink.total.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    Ok(arrivals)
}

/// What sending one webhook met before it was accepted.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Refusals {
    /// Refused or failed attempts, all sent again.
    pub refused: usize,
    /// Of those, refusals with a `Retry-After` the sender waited out.
    pub pushed_back: usize,
}

/// Sends webhook `n` until it is accepted, waiting out a `Retry-After` as Jira
/// would; returns its issue and what it met. Issue `i`'s webhooks go to
/// `urls[i % urls.len()]` (its integration's endpoint).
pub(crate) async fn send(
    client: &reqwest::Client,
    urls: &[String],
    n: usize,
    issues: usize,
    users: usize,
) -> (usize, Refusals) {
    let (issue, round) = (n % issues, n / issues);
    let url = &urls[issue % urls.len()];
    let (body, signature) =
        assignee_webhook(issue, crate::bed::assignee(issue, round, users), round);
    let mut refusals = Refusals::default();
    loop {
        let response = client
            .post(url)
            .header("content-type", "application/json")
            .header("x-hub-signature", &signature)
            .header("x-atlassian-webhook-identifier", format!("bench-{n}"))
            .body(body.clone())
            .send()
            .await;
        let retry_after = match response {
            Ok(r) if r.status().is_success() => return (issue, refusals),
            Ok(r) => r
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok())
                .map(Duration::from_secs),
            Err(_) => None,
        };
        refusals.refused += 1;
        if retry_after.is_some() {
            refusals.pushed_back += 1;
        }
        tokio::time::sleep(retry_after.unwrap_or(Duration::from_millis(5))).await;
    }
}

/// Runs the load for `duration`, then waits for everything accepted to apply.
pub async fn run(
    bed: &Bed,
    tenant: &Tenant,
    load: Load,
    duration: Duration,
) -> anyhow::Result<Outcome> {
    service_runtime::tls::install_crypto_provider();
    let issues = tenant.groups.len();
    let users = tenant.users.len();
    let arrivals = subscribe(bed, tenant).await?;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(1024)
        .tcp_nodelay(true)
        .build()?;
    let urls: Arc<[String]> = (0..tenant.integrations)
        .map(|k| {
            format!(
                "http://{}/webhooks/jira/{}",
                bed.tracker_http,
                crate::bed::integration(k)
            )
        })
        .collect();
    let sends: Arc<Mutex<SendTimes>> = Arc::new(Mutex::new(vec![Vec::new(); issues]));
    let refused = Arc::new(AtomicUsize::new(0));
    let pushed_back = Arc::new(AtomicUsize::new(0));
    // Opened before the clock starts, so the count at the end of the
    // duration is read at that instant.
    let tracker_db = sea_orm::Database::connect(service_runtime::database::connect_options(
        bed.tracker_db.as_str(),
    ))
    .await?;
    let start = Instant::now();
    let end = start + duration;
    let at_end = tokio::spawn(async move {
        tokio::time::sleep_until(end.into()).await;
        let counts = TrackerCounts::read(&tracker_db).await;
        (counts, tracker_db)
    });
    let accepted = match load {
        Load::Closed { concurrency } => {
            let next = Arc::new(AtomicUsize::new(0));
            let workers = (0..concurrency).map(|_| {
                let (client, urls, next, sends, refused, pushed_back) = (
                    client.clone(),
                    Arc::clone(&urls),
                    Arc::clone(&next),
                    Arc::clone(&sends),
                    Arc::clone(&refused),
                    Arc::clone(&pushed_back),
                );
                tokio::spawn(async move {
                    let mut accepted = 0;
                    while Instant::now() < end {
                        let n = next.fetch_add(1, Ordering::Relaxed);
                        let sent = Instant::now();
                        let (issue, refusals) = send(&client, &urls, n, issues, users).await;
                        refused.fetch_add(refusals.refused, Ordering::Relaxed);
                        pushed_back.fetch_add(refusals.pushed_back, Ordering::Relaxed);
                        let answered = Instant::now();
                        sends.lock().unwrap_or_else(|e| e.into_inner())[issue]
                            .push((n, sent, answered));
                        accepted += 1;
                    }
                    accepted
                })
            });
            let mut total = 0;
            for worker in futures_util::future::join_all(workers).await {
                total += worker?;
            }
            total
        }
        Load::Open { rate } => {
            let count = (duration.as_secs_f64() * rate) as usize;
            let mut tasks = Vec::with_capacity(count);
            for n in 0..count {
                let scheduled = start + Duration::from_secs_f64(n as f64 / rate);
                tokio::time::sleep_until(scheduled.into()).await;
                let (client, urls, sends, refused, pushed_back) = (
                    client.clone(),
                    Arc::clone(&urls),
                    Arc::clone(&sends),
                    Arc::clone(&refused),
                    Arc::clone(&pushed_back),
                );
                tasks.push(tokio::spawn(async move {
                    let (issue, refusals) = send(&client, &urls, n, issues, users).await;
                    refused.fetch_add(refusals.refused, Ordering::Relaxed);
                    pushed_back.fetch_add(refusals.pushed_back, Ordering::Relaxed);
                    let answered = Instant::now();
                    sends.lock().unwrap_or_else(|e| e.into_inner())[issue]
                        .push((n, scheduled, answered));
                }));
            }
            for task in tasks {
                task.await?;
            }
            count
        }
    };
    let sent_for = start.elapsed();
    let applied_at_stop = arrivals.total.load(Ordering::Relaxed);
    let (at_end, tracker_db) = at_end.await?;
    let at_end = at_end?;

    // Drain: wait until the tracker has delivered everything it accepted and
    // every change it reports reached the subscriber.
    let drain_deadline = Instant::now() + Duration::from_secs(180);
    let mut delivered = TrackerCounts::default();
    while Instant::now() < drain_deadline {
        delivered = TrackerCounts::read(&tracker_db).await?;
        if delivered.pending == 0 && arrivals.total.load(Ordering::Relaxed) >= delivered.assigned {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tracker_db.close().await?;
    let applied = arrivals.total.load(Ordering::Relaxed);
    let last = arrivals
        .last
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .unwrap_or_else(Instant::now);

    let mut latencies = Vec::with_capacity(accepted);
    let mut intake = Vec::with_capacity(accepted);
    let sends = sends.lock().unwrap_or_else(|e| e.into_inner());
    let received = arrivals.per_issue.lock().unwrap_or_else(|e| e.into_inner());
    for (issue, sent) in sends.iter().enumerate() {
        let mut sent = sent.clone();
        sent.sort_by_key(|(n, _, _)| *n);
        intake.extend(
            sent.iter()
                .map(|(_, at, answered)| answered.saturating_duration_since(*at)),
        );
        for ((_, at, _), got) in sent.iter().zip(received[issue].iter()) {
            latencies.push(got.saturating_duration_since(*at));
        }
    }
    Ok(Outcome {
        accepted,
        applied,
        accepted_per_s: accepted as f64 / sent_for.as_secs_f64(),
        applied_per_s: applied as f64
            / last
                .saturating_duration_since(start)
                .as_secs_f64()
                .max(1e-9),
        latency: Latency::of(latencies),
        intake: Latency::of(intake),
        refused: refused.load(Ordering::Relaxed),
        lost: accepted.saturating_sub(delivered.delivered),
        stale_or_unchanged: delivered.delivered.saturating_sub(delivered.assigned),
        pushed_back: pushed_back.load(Ordering::Relaxed),
        backlog_at_stop: at_end.pending,
        applied_per_s_while_sending: applied_at_stop as f64 / sent_for.as_secs_f64(),
    })
}

/// What the tracker's inbox says about a run's deliveries (not those the
/// backlog curve parked).
#[derive(Debug, Default, Clone, Copy)]
struct TrackerCounts {
    /// Still pending.
    pending: usize,
    /// Delivered.
    delivered: usize,
    /// Delivered and assigning a group (one "assigned" notification each).
    assigned: usize,
}

impl TrackerCounts {
    async fn read(db: &sea_orm::DatabaseConnection) -> anyhow::Result<Self> {
        use anyhow::Context as _;
        use sea_orm::ConnectionTrait as _;
        let row = db
            .query_one_raw(sea_orm::Statement::from_string(
                db.get_database_backend(),
                "SELECT \
                   COALESCE(SUM(CASE WHEN state = 'pending' THEN 1 ELSE 0 END), 0) AS pending, \
                   COALESCE(SUM(CASE WHEN state = 'delivered' THEN 1 ELSE 0 END), 0) AS delivered, \
                   COALESCE(SUM(CASE WHEN state = 'delivered' \
                     AND actions LIKE '%\"outcome\":\"ASSIGNED\"%' THEN 1 ELSE 0 END), 0) AS assigned \
                 FROM webhook_deliveries WHERE delivery_key NOT LIKE 'parked:%'",
            ))
            .await?
            .context("counts")?;
        let count = |name: &str| -> anyhow::Result<usize> {
            Ok(usize::try_from(row.try_get::<i64>("", name)?)?)
        };
        Ok(Self {
            pending: count("pending")?,
            delivered: count("delivered")?,
            assigned: count("assigned")?,
        })
    }
}
