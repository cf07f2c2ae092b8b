//! How cost grows with the work: each curve runs one scenario at a few sizes
//! on a fresh bed per point, and returns its points for a table and a plot.
//!
//! - apply rate vs inbox backlog: the closed-loop ingest while 0, 100 k or
//!   1 M other deliveries wait in the inbox (parked: due in a day, over
//!   100 k issues), so a claim that grew with the backlog would show;
//! - sync latency vs groups linked per issue: SyncAssigneeInbound at 64 in
//!   flight on issues linked to 1, 10 or 100 groups;
//! - catch-up: one subscriber reading from the oldest notification while
//!   1 M (100 k with `--quick`) are behind it, its rate and the service's
//!   memory;
//! - database bytes per webhook and per notification, from the same runs;
//! - ingest vs integrations: the closed-loop ingest over 1, 100 or 10 k
//!   integrations (each issue belongs to one; per-integration state such as
//!   the webhook rate limiter and the integration cache grows with them);
//! - sync latency vs organizations sharing an issue: SyncAssigneeInbound on
//!   issues linked in 1, 10 or 100 organizations;
//! - database bytes under retention: rounds of ingest with retention set to
//!   one second, each followed by a wait for retention to prune, so bytes
//!   that retention does not give back would grow round by round.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use proto::assignment::v1 as assignment;
use sea_orm::{ConnectionTrait as _, Statement, Value};
use tokio_stream::StreamExt as _;

use crate::bed::{
    Bed, BedOptions, DbKind, ExtraFlags, INTEGRATION, Shape, Tenant, database_bytes, vacuum,
};
use crate::report::Latency;
use crate::scenarios::fanout::{self, GROUPS_PER_ISSUE, SUBSCRIBE};
use crate::scenarios::ingest::{self, Load};
use crate::scenarios::{skim_stream, sync_rpc};

/// One point of a curve of webhooks applied (and accepted) per second.
#[derive(Debug, Clone, Copy)]
pub struct ApplyPoint {
    /// The x value: what grows along the curve.
    pub at: usize,
    /// Applied per second.
    pub applied_per_s: f64,
    /// Accepted per second.
    pub accepted_per_s: f64,
    /// The tracker's database bytes added per accepted webhook, where the
    /// curve measures them.
    pub bytes_per_webhook: Option<f64>,
}

/// One point of a curve of `SyncAssigneeInbound` calls.
#[derive(Debug, Clone, Copy)]
pub struct SyncPoint {
    /// The x value: what grows along the curve.
    pub at: usize,
    /// How many groups each call changes.
    pub groups_per_call: usize,
    /// Calls completed per second.
    pub calls_per_s: f64,
    /// Their latency.
    pub latency: Latency,
    /// Calls that failed.
    pub errors: usize,
}

/// Parks `count` pending deliveries over 100,000 issues (at most), due in a
/// day, with their queue heads, as the tracker would hold them.
async fn park(tracker_db: &str, count: usize) -> anyhow::Result<()> {
    if count == 0 {
        return Ok(());
    }
    let conn =
        sea_orm::Database::connect(service_runtime::database::connect_options(tracker_db)).await?;
    let backend = conn.get_database_backend();
    let now = chrono::Utc::now();
    let issues = count.min(100_000);
    let insert = format!(
        "WITH RECURSIVE g(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM g WHERE x < {count}) \
         INSERT INTO webhook_deliveries (integration_id, delivery_key, event_type, issue_key, \
           jira_issue_id, ordering_key, received_at, headers, body, traceparent, state, \
           attempts, last_error, actions) \
         SELECT '{INTEGRATION}', 'parked:' || x, 'jira:issue_updated', 'PARK-' || (x % {issues}), \
           '', 'parked-' || (x % {issues}), $1, '[]', '{{}}', '', 'pending', 0, '', '[]' FROM g"
    );
    conn.execute_raw(Statement::from_sql_and_values(
        backend,
        insert,
        [Value::ChronoDateTimeUtc(Some(now))],
    ))
    .await?;
    let due = now + chrono::Duration::days(1);
    conn.execute_raw(Statement::from_sql_and_values(
        backend,
        "INSERT INTO queue_heads (queue, integration_id, ordering_key, head, due_at) \
         SELECT 'inbox', integration_id, ordering_key, MIN(id), $1 FROM webhook_deliveries \
         WHERE state = 'pending' AND ordering_key LIKE 'parked-%' \
         GROUP BY integration_id, ordering_key",
        [Value::ChronoDateTimeUtc(Some(due))],
    ))
    .await?;
    // Counted as the tracker counts what it stores.
    conn.execute_unprepared(&format!(
        "INSERT INTO inbox_pending_deltas (delta) VALUES ({count})"
    ))
    .await?;
    if backend == sea_orm::DatabaseBackend::Postgres {
        conn.execute_unprepared("ANALYZE").await?;
    }
    conn.close().await?;
    Ok(())
}

/// The closed-loop ingest for `duration` with `backlog` deliveries parked.
///
/// # Errors
/// When a process does not start or a request fails outright.
pub async fn apply_vs_backlog(
    options: &BedOptions,
    backlog: usize,
    concurrency: usize,
    duration: Duration,
) -> anyhow::Result<ApplyPoint> {
    let bed = Bed::start_with(
        options,
        &format!("backlog-{backlog}"),
        ExtraFlags {
            // The parked deliveries would fill any bound.
            tracker: &["--inbox-max-pending", "0"],
            ..ExtraFlags::default()
        },
    )
    .await?;
    let tenant = Tenant::create(&bed, 1_000, 1, 200).await?;
    park(&bed.tracker_db, backlog).await?;
    let before = database_bytes(&bed.tracker_db).await?;
    let outcome = ingest::run(&bed, &tenant, Load::Closed { concurrency }, duration).await?;
    let after = database_bytes(&bed.tracker_db).await?;
    bed.stop().await?;
    Ok(ApplyPoint {
        at: backlog,
        applied_per_s: outcome.applied_per_s,
        accepted_per_s: outcome.accepted_per_s,
        bytes_per_webhook: Some(
            after.saturating_sub(before) as f64 / outcome.accepted.max(1) as f64,
        ),
    })
}

/// SyncAssigneeInbound at `concurrency` in flight on 100 issues linked to
/// `groups_per_issue` groups each.
///
/// # Errors
/// When a process does not start.
pub async fn sync_vs_groups(
    options: &BedOptions,
    groups_per_issue: usize,
    concurrency: usize,
    duration: Duration,
) -> anyhow::Result<SyncPoint> {
    let bed = Bed::start(options, &format!("sync-groups-{groups_per_issue}"), &[]).await?;
    let tenant = Tenant::create(&bed, 100, groups_per_issue, 200).await?;
    let rate = sync_rpc::run(&bed, &tenant, concurrency, duration).await?;
    bed.stop().await?;
    Ok(SyncPoint {
        at: groups_per_issue,
        groups_per_call: groups_per_issue,
        calls_per_s: rate.per_s,
        latency: rate.latency,
        errors: rate.errors,
    })
}

/// What a subscriber catching up measured.
#[derive(Debug, Clone)]
pub struct CatchUp {
    /// Notifications behind it when it subscribed.
    pub behind: usize,
    /// Notifications written per second (to build the backlog).
    pub written_per_s: f64,
    /// Delivered to it per second, from subscribing to the last one.
    pub replayed_per_s: f64,
    /// Sequence gaps or repeats seen (must be zero).
    pub anomalies: usize,
    /// The assignment service's resident memory before and at the end of the
    /// replay, MiB.
    pub rss_before_mib: f64,
    /// See `rss_before_mib`.
    pub rss_after_mib: f64,
    /// Its peak resident memory over the whole run, MiB.
    pub peak_rss_mib: f64,
    /// The assignment database's bytes per notification.
    pub bytes_per_notification: f64,
    /// Each second of the replay: notifications delivered in it, and the
    /// service's resident memory at its end (MiB).
    pub per_second: Vec<(usize, f64)>,
}

/// Writes `behind` notifications, then one subscriber reads them all from the
/// oldest.
///
/// # Errors
/// When a process does not start or the stream fails.
pub async fn catch_up(options: &BedOptions, behind: usize) -> anyhow::Result<CatchUp> {
    let bed = Bed::start(options, "catch-up", &[]).await?;
    // 50 issues: 50 writers in parallel, so the backlog builds in group commits.
    let tenant = Tenant::create(&bed, 50, GROUPS_PER_ISSUE, 200).await?;
    let empty = database_bytes(&bed.assignment_db).await?;
    let fanout::Written {
        notifications: written,
        per_s: written_per_s,
        ..
    } = fanout::write(&bed, &tenant, behind, 0).await?;
    let full = database_bytes(&bed.assignment_db).await?;
    let rss_before_mib = bed.assignment.usage().rss_mib;
    let channel = crate::bed::channel(bed.assignment_grpc)?;
    let start = Instant::now();
    let mut stream = skim_stream(channel, SUBSCRIBE, assignment::SubscribeRequest::default())
        .await
        .context("subscribing from the oldest")?;
    let (mut received, mut anomalies, mut last) = (0_usize, 0_usize, None::<u64>);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(600);
    let mut per_second = Vec::new();
    let (mut second_ends, mut at_second_start) = (start + Duration::from_secs(1), 0);
    while received < written {
        if Instant::now() >= second_ends {
            per_second.push((received - at_second_start, bed.assignment.usage().rss_mib));
            at_second_start = received;
            second_ends += Duration::from_secs(1);
        }
        let message = tokio::time::timeout_at(deadline, stream.next())
            .await
            .context("the replay took over 10 minutes")?;
        let Some(message) = message else { break };
        if let Some(notification) = message?.notification {
            if last.is_some_and(|l| notification.sequence != l + 1) {
                anomalies += 1;
            }
            last = Some(notification.sequence);
            received += 1;
        }
    }
    let replayed_per_s = received as f64 / start.elapsed().as_secs_f64();
    let usage = bed.assignment.usage();
    bed.stop().await?;
    Ok(CatchUp {
        behind: written,
        written_per_s,
        replayed_per_s,
        anomalies: anomalies + written.abs_diff(received),
        rss_before_mib,
        rss_after_mib: usage.rss_mib,
        peak_rss_mib: usage.peak_rss_mib,
        bytes_per_notification: full.saturating_sub(empty) as f64 / written.max(1) as f64,
        per_second,
    })
}

/// The closed-loop ingest for `duration` on `issues` issues spread over
/// `integrations` integrations (webhooks of issue `i` signed for and sent to
/// integration `i % integrations`).
///
/// # Errors
/// When a process does not start or a request fails outright.
pub async fn ingest_vs_integrations(
    options: &BedOptions,
    integrations: usize,
    issues: usize,
    concurrency: usize,
    duration: Duration,
) -> anyhow::Result<ApplyPoint> {
    let bed = Bed::start_with(
        options,
        &format!("integrations-{integrations}"),
        ExtraFlags {
            // As the backlog curve: nothing pushed back, the apply rate alone.
            tracker: &["--inbox-max-pending", "0"],
            ..ExtraFlags::default()
        },
    )
    .await?;
    let tenant = Tenant::create_shaped(
        &bed,
        Shape {
            issues,
            groups_per_issue: 1,
            users: 200,
            integrations,
            organizations: 1,
        },
    )
    .await?;
    let outcome = ingest::run(&bed, &tenant, Load::Closed { concurrency }, duration).await?;
    bed.stop().await?;
    Ok(ApplyPoint {
        at: integrations,
        applied_per_s: outcome.applied_per_s,
        accepted_per_s: outcome.accepted_per_s,
        bytes_per_webhook: None,
    })
}

/// SyncAssigneeInbound at `concurrency` in flight on 100 issues, each linked
/// to one group in each of `organizations` organizations (two users, who
/// take turns, have access to all of them).
///
/// # Errors
/// When a process does not start.
pub async fn sync_vs_organizations(
    options: &BedOptions,
    organizations: usize,
    concurrency: usize,
    duration: Duration,
) -> anyhow::Result<SyncPoint> {
    let bed = Bed::start(options, &format!("sync-orgs-{organizations}"), &[]).await?;
    let tenant = Tenant::create_shaped(
        &bed,
        Shape {
            issues: 100,
            groups_per_issue: 1,
            users: 2,
            integrations: 1,
            organizations,
        },
    )
    .await?;
    let rate = sync_rpc::run(&bed, &tenant, concurrency, duration).await?;
    bed.stop().await?;
    Ok(SyncPoint {
        at: organizations,
        groups_per_call: organizations,
        calls_per_s: rate.per_s,
        latency: rate.latency,
        errors: rate.errors,
    })
}

/// One round of the retention curve.
#[derive(Debug, Clone, Copy)]
pub struct RetentionRound {
    /// Webhooks accepted in this round.
    pub accepted: usize,
    /// The tracker's database bytes at the end of the round's ingest.
    pub tracker_bytes_loaded: u64,
    /// The tracker's database bytes once retention pruned the round.
    pub tracker_bytes_pruned: u64,
    /// The assignment database's bytes once retention pruned the round.
    pub assignment_bytes_pruned: u64,
    /// On PostgreSQL, the tracker's and the assignment database's bytes
    /// after a plain `VACUUM` that followed the pruning (autovacuum's nap is
    /// longer than a round).
    pub vacuumed_bytes: Option<(u64, u64)>,
    /// Deliveries and notifications still stored when the wait for retention
    /// ended (zero unless retention fell behind).
    pub rows_left: u64,
}

/// Counts rows of `table`.
async fn rows(url: &str, table: &str) -> anyhow::Result<u64> {
    let conn = sea_orm::Database::connect(service_runtime::database::connect_options(url)).await?;
    let row = conn
        .query_one_raw(Statement::from_string(
            conn.get_database_backend(),
            format!("SELECT COUNT(*) AS n FROM {table}"),
        ))
        .await?
        .context("a count")?;
    let n: i64 = row.try_get("", "n")?;
    conn.close().await?;
    Ok(u64::try_from(n)?)
}

/// `rounds` rounds of the closed-loop ingest for `duration` with every
/// retention at one second, each followed by a wait (up to 60 s) until the
/// tracker's deliveries and the assignment service's notifications are
/// pruned, and on PostgreSQL by a `VACUUM` of both databases.
///
/// # Errors
/// When a process does not start or a request fails outright.
pub async fn bytes_under_retention(
    options: &BedOptions,
    rounds: usize,
    concurrency: usize,
    duration: Duration,
) -> anyhow::Result<Vec<RetentionRound>> {
    let bed = Bed::start_with(
        options,
        "retention",
        ExtraFlags {
            assignment: &[
                "--retention-max-age",
                "1s",
                "--retention-interval",
                "1s",
                "--request-id-retention",
                "1s",
            ],
            tracker: &[
                "--inbox-max-pending",
                "0",
                "--inbox-retention",
                "1s",
                "--retention-interval",
                "1s",
                "--request-id-retention",
                "1s",
            ],
        },
    )
    .await?;
    let tenant = Tenant::create(&bed, 1_000, 1, 200).await?;
    let mut out = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let outcome = ingest::run(&bed, &tenant, Load::Closed { concurrency }, duration).await?;
        let tracker_bytes_loaded = database_bytes(&bed.tracker_db).await?;
        let give_up = Instant::now() + Duration::from_secs(60);
        let mut rows_left;
        loop {
            rows_left = rows(&bed.tracker_db, "webhook_deliveries").await?
                + rows(&bed.assignment_db, "notifications").await?;
            if rows_left == 0 || Instant::now() >= give_up {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let tracker_bytes_pruned = database_bytes(&bed.tracker_db).await?;
        let assignment_bytes_pruned = database_bytes(&bed.assignment_db).await?;
        let vacuumed_bytes = if options.db == DbKind::Postgres {
            vacuum(&bed.tracker_db).await?;
            vacuum(&bed.assignment_db).await?;
            Some((
                database_bytes(&bed.tracker_db).await?,
                database_bytes(&bed.assignment_db).await?,
            ))
        } else {
            None
        };
        out.push(RetentionRound {
            accepted: outcome.accepted,
            tracker_bytes_loaded,
            tracker_bytes_pruned,
            assignment_bytes_pruned,
            vacuumed_bytes,
            rows_left,
        });
    }
    bed.stop().await?;
    Ok(out)
}
