//! `drain` (PostgreSQL): how fast 1 and 2 tracker replicas work off a backlog
//! built while the assignment service was unreachable (issue 18's recovery
//! after an outage).
//!
//! A loader tracker, pointed at an address where nothing listens, accepts the
//! backlog (each delivery fails to reach the assignment service and waits);
//! it stops, and `replicas` trackers calling the real assignment service
//! start together on the same database. From the moment all of them answer
//! `/healthz`, the delivered count is sampled every 100 ms until the backlog
//! is gone: the figures are deliveries/s and the longest time the count did
//! not move (the issue's "flat" periods: a claim stuck on a bad plan, a lock
//! wait, a dead replica's lease).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use sea_orm::ConnectionTrait as _;

use crate::bed::{Bed, BedOptions, Tenant};
use crate::procs::{cpu_of_command, free_addr, machine_cpu};

/// Issues the backlog is spread over.
const ISSUES: usize = 1_000;
/// Users the webhooks assign in turn.
const USERS: usize = 4;
/// How often the delivered count is sampled.
const SAMPLE: Duration = Duration::from_millis(100);

/// What one run measured.
#[derive(Debug, Clone)]
pub struct Drained {
    /// Tracker replicas that drained.
    pub replicas: usize,
    /// Accepted per second while the backlog was built.
    pub loaded_per_s: f64,
    /// Seconds from all replicas healthy to the backlog gone.
    pub seconds: f64,
    /// Deliveries applied per second over that time.
    pub per_s: f64,
    /// The longest stretch during which nothing was applied, in seconds.
    pub longest_flat_s: f64,
    /// CPU seconds of the trackers and of the assignment service while draining.
    pub tracker_cpu_s: f64,
    /// CPU seconds of the assignment service while draining.
    pub assignment_cpu_s: f64,
    /// CPU seconds of PostgreSQL's processes while draining (backends that
    /// ended meanwhile are not counted, so this is a lower bound).
    pub postgres_cpu_s: f64,
    /// How busy the machine's cores were while draining (0 to 1).
    pub machine_busy: f64,
}

async fn delivered(db: &sea_orm::DatabaseConnection) -> anyhow::Result<usize> {
    let row = db
        .query_one_raw(sea_orm::Statement::from_string(
            db.get_database_backend(),
            "SELECT COUNT(*) AS n FROM webhook_deliveries WHERE state = 'delivered'",
        ))
        .await?
        .context("a count")?;
    let n: i64 = row.try_get("", "n")?;
    Ok(usize::try_from(n)?)
}

/// Builds a backlog of `backlog` deliveries on a fresh bed, then drains it
/// with `replicas` trackers.
///
/// # Errors
/// When a process does not start or the backlog does not drain in 10 minutes.
pub async fn run(options: &BedOptions, backlog: usize, replicas: usize) -> anyhow::Result<Drained> {
    let mut bed = Bed::start(options, &format!("drain-{replicas}"), &[]).await?;
    Tenant::create(&bed, ISSUES, 1, USERS).await?;
    if let Some(tracker) = bed.tracker.take() {
        tracker.stop().await;
    }

    // The backlog, accepted by a tracker that cannot reach the assignment
    // service; its failed attempts wait at most 100 ms, so nothing is due
    // later than the drain's start.
    let nowhere = format!("http://{}", free_addr()?);
    let loader = bed
        .tracker_replica(
            &format!("drain-{replicas}-loader"),
            &nowhere,
            &[
                "--dispatch-max-backoff",
                "100ms",
                // One attempt at a time: the loader's failing attempts should
                // not compete with its intake.
                "--dispatch-concurrency",
                "1",
                // Nothing drains while loading: no bound on the inbox.
                "--inbox-max-pending",
                "0",
            ],
        )
        .await?;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(1024)
        .tcp_nodelay(true)
        .build()?;
    let url = format!(
        "http://{}/webhooks/jira/{}",
        loader.http,
        crate::bed::INTEGRATION
    );
    let next = Arc::new(AtomicUsize::new(0));
    let loading = Instant::now();
    let senders = (0..64).map(|_| {
        let (client, url, next) = (client.clone(), url.clone(), Arc::clone(&next));
        tokio::spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= backlog {
                    return;
                }
                crate::scenarios::ingest::send(
                    &client,
                    std::slice::from_ref(&url),
                    n,
                    ISSUES,
                    USERS,
                )
                .await;
            }
        })
    });
    for sender in futures_util::future::join_all(senders).await {
        sender?;
    }
    let loaded_per_s = backlog as f64 / loading.elapsed().as_secs_f64();
    loader.process.stop().await;

    let db = sea_orm::Database::connect(service_runtime::database::connect_options(
        bed.tracker_db.as_str(),
    ))
    .await?;
    let assignment_url = format!("http://{}", bed.assignment_grpc);
    let labels: Vec<String> = (0..replicas)
        .map(|i| format!("drain-{replicas}-replica-{i}"))
        .collect();
    let started = futures_util::future::join_all(
        labels
            .iter()
            .map(|label| bed.tracker_replica(label, &assignment_url, &[])),
    )
    .await;
    let trackers = started.into_iter().collect::<anyhow::Result<Vec<_>>>()?;
    let assignment_cpu = bed.assignment.usage().cpu_seconds;
    let postgres_cpu = cpu_of_command("postgres");
    let machine = machine_cpu();
    let start = Instant::now();
    let at_start = delivered(&db).await?;
    let (mut last, mut last_moved, mut longest_flat) = (at_start, start, Duration::ZERO);
    let deadline = start + Duration::from_secs(600);
    while last < backlog {
        anyhow::ensure!(
            Instant::now() < deadline,
            "{last} of {backlog} delivered after 10 minutes"
        );
        tokio::time::sleep(SAMPLE).await;
        let now_delivered = delivered(&db).await?;
        let now = Instant::now();
        if now_delivered > last {
            last = now_delivered;
            last_moved = now;
        } else {
            longest_flat = longest_flat.max(now - last_moved);
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    let tracker_cpu_s = trackers.iter().map(|t| t.process.usage().cpu_seconds).sum();
    let assignment_cpu_s = bed.assignment.usage().cpu_seconds - assignment_cpu;
    let postgres_cpu_s = cpu_of_command("postgres") - postgres_cpu;
    let machine_now = machine_cpu();
    let machine_busy = (machine_now.0 - machine.0) / (machine_now.1 - machine.1).max(1e-9);
    db.close().await?;
    for tracker in trackers {
        tracker.process.stop().await;
    }
    bed.stop().await?;
    Ok(Drained {
        replicas,
        loaded_per_s,
        seconds,
        per_s: (backlog - at_start) as f64 / seconds,
        longest_flat_s: longest_flat.as_secs_f64(),
        tracker_cpu_s,
        assignment_cpu_s,
        postgres_cpu_s,
        machine_busy,
    })
}
