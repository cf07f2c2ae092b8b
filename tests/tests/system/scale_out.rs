//! Scale-out on PostgreSQL (issue 18): two trackers and two assignment
//! replicas draining one backlog while a tracker dies, with no deadlock; and
//! a tracker that stops within its grace period while its database is stuck.
//! Ignored in the SQLite run; the PostgreSQL suite runs them.

use std::time::{Duration, Instant};

use proto::assignment::v1 as pb;
use sea_orm::ConnectionTrait as _;
use service_runtime::config::DatabaseUrl;
use system_tests::fixtures::inbound_on;
use system_tests::proxy::CuttableProxy;
use system_tests::{AssignmentApp, JiraSim, TestDatabase, TrackerApp, wait};

const ISSUES: usize = 100;
const ROUNDS: usize = 50;
const JIRA: &str = "acme-jira";

/// Runs `sql` (one row, one `bigint` column `n`) on the database at `url`.
async fn count(url: &DatabaseUrl, sql: &str) -> i64 {
    let db = sea_orm::Database::connect(service_runtime::database::connect_options(url.as_str()))
        .await
        .unwrap();
    let row = db
        .query_one_raw(sea_orm::Statement::from_string(
            db.get_database_backend(),
            sql,
        ))
        .await
        .unwrap()
        .unwrap();
    let n: i64 = row.try_get("", "n").unwrap();
    db.close().await.unwrap();
    n
}

async fn deliveries_in(url: &DatabaseUrl, state: &str) -> i64 {
    count(
        url,
        &format!("SELECT COUNT(*) AS n FROM webhook_deliveries WHERE state = '{state}'"),
    )
    .await
}

/// The deadlocks PostgreSQL counted in the database at `url`, read once every
/// other session on it ended (a backend reports its statistics by its exit at
/// the latest).
async fn deadlocks_after_everyone_left(url: &DatabaseUrl) -> i64 {
    wait::until(
        "the services' database sessions to end",
        wait::DEFAULT_DEADLINE,
        || async {
            let others = count(
                url,
                "SELECT COUNT(*)::bigint AS n FROM pg_stat_activity \
                 WHERE datname = current_database() AND pid <> pg_backend_pid()",
            )
            .await;
            (others == 0).then_some(())
        },
    )
    .await;
    count(
        url,
        "SELECT deadlocks AS n FROM pg_stat_database WHERE datname = current_database()",
    )
    .await
}

/// The assignee webhook of `key` in round `round` (later rounds, later times).
fn assignee_webhook(key: &str, jira_id: &str, email: &str, round: usize) -> Vec<u8> {
    let updated = format!("2023-01-01T{:02}:{:02}:00.000+0000", round / 60, round % 60);
    crate::postgres::assignee_webhook(key, jira_id, email, &updated)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: run the PostgreSQL suite"]
async fn two_trackers_drain_a_5000_delivery_backlog_once_in_order_when_one_dies_midway() {
    let assignment_db = TestDatabase::fresh_postgres_required().await;
    let tracker_db = TestDatabase::fresh_postgres_required().await;
    let jira = JiraSim::start().await;
    let a1 = AssignmentApp::spawn(assignment_db.url()).await;
    let a2 = AssignmentApp::spawn(assignment_db.url()).await;
    // The trackers reach the assignment replicas through proxies that keep
    // the service "down" while the backlog builds.
    let p1 = CuttableProxy::start(a1.grpc_addr).await;
    let p2 = CuttableProxy::start(a2.grpc_addr).await;
    p1.cut();
    p2.cut();
    let tracker_config = |proxy: &CuttableProxy| {
        let mut config =
            tracker_service::Config::for_tests(tracker_db.url(), format!("http://{}", proxy.addr));
        // Intake is not what this test measures.
        config.webhook_rate = 100_000.0;
        config.webhook_burst = 100_000.0;
        // Attempts while the assignment service is down back off as in
        // production, if not as far (its 60 s cap would dominate the drain).
        config.dispatch_max_backoff = Duration::from_secs(2);
        config
    };
    let t1 = TrackerApp::spawn_with(tracker_config(&p1)).await;
    let t2 = TrackerApp::spawn_with(tracker_config(&p2)).await;

    let org = a1.create_org("acme").await;
    let project = a1.create_project(org, "web").await;
    a1.install(org, JIRA, inbound_on()).await;
    let mut users = Vec::new();
    for email in ["jess@sentry.io", "kim@sentry.io"] {
        let user = a1.create_user(email, &[(email, true)]).await;
        a1.grant(project, user).await;
        users.push(user);
    }
    let mut issues = Vec::new();
    for i in 0..ISSUES {
        let group = a1.create_group(project, &format!("group {i}")).await;
        let (key, id) = (format!("SCALE-{}", i + 1), format!("{}", 9000 + i));
        a1.link(org, JIRA, &key, &id, &[group]).await;
        issues.push((key, id, group));
    }
    t1.create_pat_integration(JIRA, jira.base_url()).await;

    let building = Instant::now();
    // The backlog: each round posts one delivery per issue, half to each
    // tracker; a round is answered before the next starts, so each issue's
    // deliveries are received in round order.
    for round in 0..ROUNDS {
        let email = ["jess@sentry.io", "kim@sentry.io"][round % 2];
        let posts = issues.iter().enumerate().map(|(i, (key, id, _))| {
            let body = assignee_webhook(key, id, email, round);
            let target = if (i + round) % 2 == 0 { &t1 } else { &t2 };
            async move {
                let (status, json) = target
                    .post_webhook(JIRA, &body, Some(&format!("scale-{i}-{round}")))
                    .await;
                assert_eq!(status, 200, "{json}");
            }
        });
        futures_util::future::join_all(posts).await;
    }
    println!("backlog accepted in {:?}", building.elapsed());
    let total = i64::try_from(ISSUES * ROUNDS).unwrap();
    let url = tracker_db.url();
    assert_eq!(deliveries_in(&url, "pending").await, total);

    // The assignment service comes back; halfway through, one tracker dies
    // with whatever it had claimed.
    let started = Instant::now();
    p1.restore();
    p2.restore();
    wait::until(
        "a third of the backlog to be applied",
        wait::DEFAULT_DEADLINE * 6,
        || async { (deliveries_in(&url, "delivered").await >= total / 3).then_some(()) },
    )
    .await;
    t1.kill().await;
    let killed = started.elapsed();
    wait::until(
        "the whole backlog to be applied by the surviving tracker",
        Duration::from_secs(90),
        || async { (deliveries_in(&url, "delivered").await == total).then_some(()) },
    )
    .await;
    println!(
        "drained {total} deliveries in {:?} (one tracker killed at {killed:?})",
        started.elapsed()
    );

    for (_, _, group) in &issues {
        let assigned: Vec<Option<i64>> = a2
            .activities(*group)
            .await
            .into_iter()
            .filter(|a| a.kind() == pb::ActivityKind::Assigned)
            .map(|a| a.user_id)
            .collect();
        let expected: Vec<Option<i64>> = (0..ROUNDS).map(|r| Some(users[r % 2])).collect();
        assert_eq!(
            assigned, expected,
            "group {group}: every delivery applied once, in the order received"
        );
    }
    t2.stop().await;
    a1.stop().await;
    a2.stop().await;
    assert_eq!(
        deadlocks_after_everyone_left(&url).await,
        0,
        "no deadlock among the trackers' claims and outcome writes"
    );
    assert_eq!(
        deadlocks_after_everyone_left(&assignment_db.url()).await,
        0,
        "no deadlock among the assignment replicas"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: run the PostgreSQL suite"]
async fn a_tracker_stops_within_its_grace_period_while_its_database_is_stuck() {
    let assignment_db = TestDatabase::fresh_postgres_required().await;
    let tracker_db = TestDatabase::fresh_postgres_required().await;
    let jira = JiraSim::start().await;
    let assignment = AssignmentApp::spawn(assignment_db.url()).await;
    let grace = Duration::from_secs(3);
    let mut config = tracker_service::Config::for_tests(
        tracker_db.url(),
        format!("http://{}", assignment.grpc_addr),
    );
    config.bounds.shutdown_grace = grace;
    // Neither bound would end the wait before the grace period does.
    config.bounds.db_lock_timeout = Duration::from_secs(120);
    config.bounds.db_statement_timeout = Duration::from_secs(120);
    let app = TrackerApp::spawn_with(config).await;
    let org = assignment.create_org("acme").await;
    let project = assignment.create_project(org, "web").await;
    assignment.install(org, JIRA, inbound_on()).await;
    let group = assignment.create_group(project, "group").await;
    assignment
        .link(org, JIRA, "STUCK-1", "7001", &[group])
        .await;
    app.create_pat_integration(JIRA, jira.base_url()).await;

    // Another session holds the inbox's tables: every write of the tracker
    // (storing a webhook, claiming, recording an outcome) waits on it.
    use sea_orm::sqlx::{Connection as _, Executor as _};
    let mut blocker = sea_orm::sqlx::PgConnection::connect(tracker_db.url().as_str())
        .await
        .unwrap();
    blocker
        .execute("BEGIN; LOCK TABLE webhook_deliveries, queue_heads IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let body = assignee_webhook("STUCK-1", "7001", "jess@sentry.io", 1);
    let url = app.http_url();
    let post = tokio::spawn(async move {
        system_tests::http_client()
            .post(format!("{url}/webhooks/jira/{JIRA}"))
            .header("content-type", "application/json")
            .header(
                "x-hub-signature",
                system_tests::pair::signature(system_tests::pair::WEBHOOK_SECRET, &body),
            )
            .body(body)
            .send()
            .await
            .map(|r| r.status().as_u16())
    });
    wait::until(
        "the tracker's statements to wait on the lock",
        wait::DEFAULT_DEADLINE,
        || async {
            let waiting = count(
                &tracker_db.url(),
                "SELECT COUNT(*)::bigint AS n FROM pg_stat_activity \
                 WHERE datname = current_database() AND wait_event_type = 'Lock'",
            )
            .await;
            (waiting >= 1).then_some(())
        },
    )
    .await;

    let stopping = Instant::now();
    app.stop().await;
    let took = stopping.elapsed();
    println!("stopped {took:?} after SIGTERM, grace {grace:?}");
    assert!(
        took < grace + Duration::from_millis(500),
        "stopped {took:?} after SIGTERM with a {grace:?} grace period"
    );
    let waiting = count(
        &tracker_db.url(),
        "SELECT COUNT(*)::bigint AS n FROM pg_stat_activity \
         WHERE datname = current_database() AND wait_event_type = 'Lock'",
    )
    .await;
    assert_eq!(
        waiting, 0,
        "no statement of the stopped tracker still waits"
    );
    let answered = post.await.unwrap();
    assert_ne!(
        answered.ok(),
        Some(200),
        "a webhook that was never stored is not acknowledged"
    );
    blocker.execute("ROLLBACK").await.unwrap();
    blocker.close().await.unwrap();
    assignment.stop().await;
}
