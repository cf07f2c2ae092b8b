//! PostgreSQL-only tests: concurrency that SQLite's single writer would hide.
//! They are ignored in the SQLite run and run by the PostgreSQL suite
//! (`TEST_DATABASE_URL=… cargo test -p system-tests -- --include-ignored`); without
//! `TEST_DATABASE_URL` they fail rather than pass vacuously.

use std::collections::HashSet;

use proto::assignment::v1 as pb;
use system_tests::fixtures::inbound_on;
use system_tests::{AssignmentApp, TestDatabase};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: run the PostgreSQL suite"]
async fn fifty_concurrent_assignee_syncs_leave_one_assignee_and_a_consistent_story() {
    let db = TestDatabase::fresh_postgres_required().await;
    let app = AssignmentApp::spawn(db.url()).await;
    let org = app.create_org("acme").await;
    let project = app.create_project(org, "web").await;
    let group = app.create_group(project, "contended").await;
    app.install(org, "acme-jira", inbound_on()).await;
    app.link(org, "acme-jira", "APP-1", "", &[group]).await;
    let mut users = Vec::new();
    for i in 0..50 {
        let id = app
            .create_user(
                &format!("User {i}"),
                &[(&format!("user{i}@example.com"), true)],
            )
            .await;
        app.grant(project, id).await;
        users.push(id);
    }

    let calls = (0..50).map(|i| {
        let mut client = app.external_issues();
        async move {
            client
                .sync_assignee_inbound(pb::SyncAssigneeInboundRequest {
                    issue: Some(pb::ExternalIssueRef {
                        integration_id: "acme-jira".into(),
                        key: "APP-1".into(),
                        jira_issue_id: String::new(),
                    }),
                    assignee: Some(pb::sync_assignee_inbound_request::Assignee::Email(format!(
                        "user{i}@example.com"
                    ))),
                    provider_update_time: None,
                    request_id: format!("concurrent-{i}"),
                    source_integration_id: String::new(),
                })
                .await
                .map(|r| r.into_inner().results)
        }
    });
    let results = futures_util::future::join_all(calls).await;
    for result in &results {
        let result = result.as_ref().expect("every call succeeds");
        assert_eq!(result.len(), 1);
        assert_eq!(result[0].outcome(), pb::SyncOutcome::Assigned);
    }

    // Exactly one assignee, and it is the last one the audit trail names.
    let final_assignee = app.group(group).await.assignee_user_id.expect("assigned");
    let assignments: Vec<pb::Activity> = app
        .activities(group)
        .await
        .into_iter()
        .filter(|a| a.kind() == pb::ActivityKind::Assigned)
        .collect();
    assert_eq!(assignments.len(), 50);
    assert_eq!(assignments.last().unwrap().user_id, Some(final_assignee));
    // Each assignment replaced the previous one: the chain is unbroken.
    assert_eq!(assignments[0].previous_user_id, None);
    for pair in assignments.windows(2) {
        assert_eq!(pair[1].previous_user_id, pair[0].user_id);
    }
    let assigned_users: HashSet<i64> = assignments.iter().filter_map(|a| a.user_id).collect();
    assert_eq!(assigned_users, users.iter().copied().collect());

    // Notifications tell the same story: 50 "assigned", 49 "unassigned", in
    // sequence order, each "unassigned" going to the previous assignee; and
    // every earlier assignee, who follows the group, hears of each later
    // change (the k-th assignment has k - 2 such followers).
    let all = app.all_notifications().await;
    assert!(all.windows(2).all(|w| w[1].sequence == w[0].sequence + 1));
    let followers = all
        .iter()
        .filter(|n| n.kind() == pb::NotificationKind::AssigneeChanged)
        .count();
    assert_eq!(followers, (2..=50).map(|k| k - 2).sum::<usize>());
    let notifications: Vec<&pb::Notification> = all
        .iter()
        .filter(|n| n.kind() != pb::NotificationKind::AssigneeChanged)
        .collect();
    assert_eq!(notifications.len(), 99);
    let assigned_order: Vec<i64> = notifications
        .iter()
        .filter(|n| n.kind() == pb::NotificationKind::Assigned)
        .map(|n| n.recipient_user_id)
        .collect();
    let activity_order: Vec<i64> = assignments.iter().filter_map(|a| a.user_id).collect();
    assert_eq!(assigned_order, activity_order);
    for pair in assigned_order.windows(2) {
        assert!(notifications.iter().any(
            |n| n.kind() == pb::NotificationKind::Unassigned && n.recipient_user_id == pair[0]
        ));
    }
    app.stop().await;
}

/// A cheap deterministic "random" delay per index (no extra dependency).
fn jitter_ms(i: u64) -> u64 {
    let mut x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
    x ^= x >> 29;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^= x >> 32;
    x % 25
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: run the PostgreSQL suite"]
async fn two_replicas_deliver_every_notification_once_in_order_despite_late_commits() {
    use assignment_service::domain::{
        ActivityId, GroupId, NotificationKind, OrganizationId, UserId,
    };
    use assignment_service::notification_log::{self, NotificationDraft};
    use pb::subscribe_response::Event;
    use service_runtime::database::{Database, PoolSettings};
    use tokio_stream::StreamExt as _;

    let db = TestDatabase::fresh_postgres_required().await;
    let first = AssignmentApp::spawn(db.url()).await;
    let second = AssignmentApp::spawn(db.url()).await;
    let org = first.create_org("acme").await;
    let project = first.create_project(org, "web").await;
    first.install(org, "acme-jira", inbound_on()).await;
    let mut groups = Vec::new();
    for i in 0..5 {
        groups.push(first.create_group(project, &format!("g{i}")).await);
    }
    first.link(org, "acme-jira", "APP-1", "", &groups).await;
    for i in 0..4 {
        let user = first
            .create_user(&format!("u{i}"), &[(&format!("u{i}@example.com"), true)])
            .await;
        first.grant(project, user).await;
    }

    let subscribe = |app: &AssignmentApp| {
        let mut client = app.notifications();
        async move {
            client
                .subscribe(pb::SubscribeRequest {
                    start: Some(pb::subscribe_request::Start::AfterSequence(0)),
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner()
        }
    };
    // Readers consume both streams while the writers run, as live subscribers do.
    let reader = |mut stream: tonic::Streaming<pb::SubscribeResponse>| {
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<u64>::new()));
        let sink = std::sync::Arc::clone(&seen);
        let task = tokio::spawn(async move {
            while let Some(message) = stream.next().await {
                match message {
                    Ok(pb::SubscribeResponse {
                        event: Some(Event::Notification(n)),
                        ..
                    }) => sink.lock().unwrap().push(n.sequence),
                    Ok(_) => {}
                    Err(status) => return Err(status),
                }
            }
            Ok(())
        });
        (seen, task)
    };
    let (seen_first, reading_first) = reader(subscribe(&first).await);
    let (seen_second, reading_second) = reader(subscribe(&second).await);

    // Writers on both replicas (sync calls), and raw transactions that hold
    // their sequence numbers for a random moment before committing.
    let sync_calls = (0..40u64).map(|i| {
        let mut client = if i % 2 == 0 {
            first.external_issues()
        } else {
            second.external_issues()
        };
        async move {
            client
                .sync_assignee_inbound(pb::SyncAssigneeInboundRequest {
                    issue: Some(pb::ExternalIssueRef {
                        integration_id: "acme-jira".into(),
                        key: "APP-1".into(),
                        jira_issue_id: String::new(),
                    }),
                    assignee: Some(pb::sync_assignee_inbound_request::Assignee::Email(format!(
                        "u{}@example.com",
                        i % 4
                    ))),
                    provider_update_time: None,
                    request_id: format!("replica-sync-{i}"),
                    source_integration_id: String::new(),
                })
                .await
                .unwrap();
        }
    });
    let raw = Database::connect(&db.url(), &PoolSettings::default())
        .await
        .unwrap();
    let late_commits = (0..60u64).map(|i| {
        let raw = raw.clone();
        async move {
            let txn = raw.begin_write().await.unwrap();
            let drafts = (0..3)
                .map(|_| NotificationDraft {
                    // A recipient of its own, so the writers do not queue on a
                    // shared notification thread and really commit out of order.
                    recipient: UserId::parse(1000 + i64::try_from(i).unwrap()).unwrap(),
                    organization_id: OrganizationId::parse(org).unwrap(),
                    group_id: GroupId::parse(groups_first(i)).unwrap(),
                    group_title: format!("raw {i}"),
                    issue_key: None,
                    integration_id: None,
                    kind: NotificationKind::Resolved,
                    activity_id: ActivityId::parse(1).unwrap(),
                    traceparent: String::new(),
                    follower: false,
                    subject: None,
                })
                .collect();
            notification_log::append(&txn, drafts).await.unwrap();
            tokio::time::sleep(std::time::Duration::from_millis(jitter_ms(i))).await;
            txn.commit().await.unwrap();
        }
    });
    fn groups_first(i: u64) -> i64 {
        i64::try_from(i % 5).unwrap() + 1
    }
    tokio::join!(
        futures_util::future::join_all(sync_calls),
        futures_util::future::join_all(late_commits)
    );

    // What is in the log, read directly: gap-free sequences 1..=N.
    let stored: Vec<u64> = notification_log::read_after(
        raw.conn(),
        assignment_service::domain::Sequence::ZERO,
        1_000_000,
    )
    .await
    .unwrap()
    .iter()
    .map(|n| n.sequence.get())
    .collect();
    let total = stored.len();
    assert!(total >= 60 * 3 + 5, "writers wrote {total}");
    assert_eq!(stored, (1..=total as u64).collect::<Vec<_>>());
    for (seen, reading) in [
        (&seen_first, &reading_first),
        (&seen_second, &reading_second),
    ] {
        system_tests::wait::until(
            "every notification to reach the subscriber",
            system_tests::wait::DEFAULT_DEADLINE,
            || {
                let len = seen.lock().unwrap().len();
                let failed = reading.is_finished();
                async move { (len >= total || failed).then_some(()) }
            },
        )
        .await;
        assert!(
            !reading.is_finished(),
            "the stream ended while following the writers (a notification was skipped or reported lost)"
        );
        assert_eq!(
            *seen.lock().unwrap(),
            stored,
            "each replica delivers every notification once, in order"
        );
    }
    first.stop().await;
    second.stop().await;
}

/// An assignee webhook of Jira issue `key` (`jira_id`) assigning `email`, as
/// of `updated`.
pub(crate) fn assignee_webhook(key: &str, jira_id: &str, email: &str, updated: &str) -> Vec<u8> {
    let mut payload = jira_sim::fixture_json("edit_issue_assignee_payload.json");
    payload["issue"]["key"] = serde_json::json!(key);
    payload["issue"]["id"] = serde_json::json!(jira_id);
    payload["issue"]["fields"]["assignee"]["emailAddress"] = serde_json::json!(email);
    payload["issue"]["fields"]["updated"] = serde_json::json!(updated);
    serde_json::to_vec(&payload).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: run the PostgreSQL suite"]
async fn two_trackers_and_two_assignment_services_apply_every_webhook_once_in_order_when_a_tracker_dies()
 {
    use proto::tracker::v1 as tracker;
    use system_tests::{JiraSim, TrackerApp, wait};

    let assignment_db = TestDatabase::fresh_postgres_required().await;
    let tracker_db = TestDatabase::fresh_postgres_required().await;
    let jira = JiraSim::start().await;
    let a1 = AssignmentApp::spawn(assignment_db.url()).await;
    let a2 = AssignmentApp::spawn(assignment_db.url()).await;
    let tracker_config = |assignment: &AssignmentApp| {
        let mut config = tracker_service::Config::for_tests(
            tracker_db.url(),
            format!("http://{}", assignment.grpc_addr),
        );
        // A dead replica's claims expire quickly.
        config.dispatch_lease = std::time::Duration::from_secs(2);
        config
    };
    let t1 = TrackerApp::spawn_with(tracker_config(&a1)).await;
    let t2 = TrackerApp::spawn_with(tracker_config(&a2)).await;

    let org = a1.create_org("acme").await;
    let project = a1.create_project(org, "web").await;
    a1.install(org, "acme-jira", inbound_on()).await;
    let mut users = Vec::new();
    for email in ["jess@sentry.io", "kim@sentry.io"] {
        let user = a1.create_user(email, &[(email, true)]).await;
        a1.grant(project, user).await;
        users.push(user);
    }
    let mut issues = Vec::new();
    for i in 0..50 {
        let group = a1.create_group(project, &format!("group {i}")).await;
        let (key, id) = (format!("SCALE-{}", i + 1), format!("{}", 9000 + i));
        a1.link(org, "acme-jira", &key, &id, &[group]).await;
        issues.push((key, id, group));
    }
    t1.create_pat_integration("acme-jira", jira.base_url())
        .await;

    // 20 rounds; each round posts one delivery per issue, alternating between
    // the trackers; a round completes before the next starts, so each issue's
    // deliveries are received in round order.
    let mut t1 = Some(t1);
    for round in 0..20 {
        if round == 10 {
            // Halfway: one tracker dies with whatever it had claimed.
            t1.take().unwrap().kill().await;
        }
        let email = if round % 2 == 0 {
            "jess@sentry.io"
        } else {
            "kim@sentry.io"
        };
        let posts = issues.iter().enumerate().map(|(i, (key, id, _))| {
            let body = assignee_webhook(
                key,
                id,
                email,
                &format!("2023-01-01T00:{round:02}:00.000+0000"),
            );
            let target = match (&t1, (i + round) % 2) {
                (Some(t1), 0) => t1,
                _ => &t2,
            };
            async move {
                let (status, json) = target
                    .post_webhook("acme-jira", &body, Some(&format!("scale-{i}-{round}")))
                    .await;
                assert_eq!(status, 200, "{json}");
            }
        });
        futures_util::future::join_all(posts).await;
    }

    wait::until(
        "all 1,000 deliveries to be applied",
        wait::DEFAULT_DEADLINE * 6,
        || async {
            let deliveries = t2.deliveries().await;
            (deliveries.len() == 1000
                && deliveries
                    .iter()
                    .all(|d| d.state() == tracker::DeliveryState::Delivered))
            .then_some(())
        },
    )
    .await;
    for (_, _, group) in &issues {
        let assigned: Vec<Option<i64>> = a2
            .activities(*group)
            .await
            .into_iter()
            .filter(|a| a.kind() == pb::ActivityKind::Assigned)
            .map(|a| a.user_id)
            .collect();
        let expected: Vec<Option<i64>> = (0..20).map(|r| Some(users[r % 2])).collect();
        assert_eq!(
            assigned, expected,
            "group {group}: once each, in the order received"
        );
    }
    t2.stop().await;
    a1.stop().await;
    a2.stop().await;
}

/// The database URL with its host and port replaced by `addr`.
fn through(
    url: &service_runtime::config::DatabaseUrl,
    addr: std::net::SocketAddr,
) -> service_runtime::config::DatabaseUrl {
    let text = url.as_str();
    let (scheme, rest) = text.split_once("://").unwrap();
    let (userinfo, path) = rest.split_once('@').map_or(("", rest), |(u, p)| (u, p));
    let path = path.split_once('/').map_or("", |(_, p)| p);
    let user = if userinfo.is_empty() {
        String::new()
    } else {
        format!("{userinfo}@")
    };
    format!("{scheme}://{user}{addr}/{path}").parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: run the PostgreSQL suite"]
async fn a_database_outage_is_answered_503_and_the_tracker_recovers_by_itself() {
    use proto::tracker::v1 as tracker;
    use system_tests::proxy::CuttableProxy;
    use system_tests::{JiraSim, TrackerApp, wait};

    let assignment_db = TestDatabase::fresh_postgres_required().await;
    let tracker_db = TestDatabase::fresh_postgres_required().await;
    let jira = JiraSim::start().await;
    let assignment = AssignmentApp::spawn(assignment_db.url()).await;
    let org = assignment.create_org("acme").await;
    let project = assignment.create_project(org, "web").await;
    let group = assignment.create_group(project, "outage").await;
    assignment.install(org, "acme-jira", inbound_on()).await;
    assignment
        .link(org, "acme-jira", "APP-123", "101", &[group])
        .await;
    let jess = assignment
        .create_user("Jess", &[("jess@sentry.io", true)])
        .await;
    let kim = assignment
        .create_user("Kim", &[("kim@sentry.io", true)])
        .await;
    assignment.grant(project, jess).await;
    assignment.grant(project, kim).await;

    let proxy = CuttableProxy::start("127.0.0.1:5432".parse().unwrap()).await;
    let mut config = tracker_service::Config::for_tests(
        through(&tracker_db.url(), proxy.addr),
        format!("http://{}", assignment.grpc_addr),
    );
    config.db_acquire_timeout = std::time::Duration::from_secs(1);
    config.dispatch_lease = std::time::Duration::from_secs(3);
    let tracker_app = TrackerApp::spawn_with(config).await;
    tracker_app
        .tracker()
        .create_integration(tracker::CreateIntegrationRequest {
            integration_id: "acme-jira".into(),
            base_url: jira.base_url(),
            credentials: Some(tracker::Credentials {
                credential: Some(tracker::credentials::Credential::PersonalAccessToken(
                    tracker::PersonalAccessTokenCredential {
                        token: "pat-0123456789".into(),
                    },
                )),
            }),
            webhook_secret: system_tests::pair::WEBHOOK_SECRET.into(),
            ..Default::default()
        })
        .await
        .unwrap();

    let mut acknowledged = Vec::new();
    let (status, _) = tracker_app
        .post_webhook(
            "acme-jira",
            &assignee_webhook(
                "APP-123",
                "101",
                "jess@sentry.io",
                "2023-01-01T00:00:00.000+0000",
            ),
            Some("before"),
        )
        .await;
    assert_eq!(status, 200);
    acknowledged.push("before");

    // The database goes away: webhooks are refused with 503 (Jira retries
    // them), never acknowledged and lost.
    proxy.cut();
    proxy.closed().await;
    for i in 0..3 {
        let (status, json) = tracker_app
            .post_webhook(
                "acme-jira",
                &assignee_webhook(
                    "APP-123",
                    "101",
                    "kim@sentry.io",
                    "2023-01-01T00:01:00.000+0000",
                ),
                Some(&format!("during-{i}")),
            )
            .await;
        assert_eq!(status, 503, "{json}");
    }

    // It comes back: Jira's retry is accepted without anyone restarting the
    // tracker, and everything acknowledged is applied.
    proxy.restore();
    wait::until(
        "the tracker to accept webhooks again",
        wait::DEFAULT_DEADLINE,
        || async {
            let (status, _) = tracker_app
                .post_webhook(
                    "acme-jira",
                    &assignee_webhook(
                        "APP-123",
                        "101",
                        "kim@sentry.io",
                        "2023-01-01T00:01:00.000+0000",
                    ),
                    Some("during-retry"),
                )
                .await;
            (status == 200).then_some(())
        },
    )
    .await;
    wait::until(
        "every acknowledged webhook to be applied",
        wait::DEFAULT_DEADLINE,
        || async {
            let deliveries = tracker_app.deliveries().await;
            (deliveries.len() == 2
                && deliveries
                    .iter()
                    .all(|d| d.state() == tracker::DeliveryState::Delivered))
            .then_some(())
        },
    )
    .await;
    assert_eq!(assignment.group(group).await.assignee_user_id, Some(kim));
    tracker_app.stop().await;
    assignment.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: run the PostgreSQL suite"]
async fn killing_the_assignment_service_mid_transaction_leaves_no_half_applied_change() {
    use system_tests::wait;

    let db = TestDatabase::fresh_postgres_required().await;
    let app = AssignmentApp::spawn(db.url()).await;
    let org = app.create_org("acme").await;
    let project = app.create_project(org, "web").await;
    app.install(org, "acme-jira", inbound_on()).await;
    let mut groups = Vec::new();
    for i in 0..30 {
        groups.push(app.create_group(project, &format!("g{i}")).await);
    }
    app.link(org, "acme-jira", "APP-1", "", &groups).await;
    let mut users = Vec::new();
    for i in 0..2 {
        let user = app
            .create_user(&format!("u{i}"), &[(&format!("u{i}@example.com"), true)])
            .await;
        app.grant(project, user).await;
        users.push(user);
    }

    // Many syncs, each changing all 30 groups in one transaction; the service
    // dies while some are in flight.
    let calls = tokio::spawn({
        let channel = app.channel();
        async move {
            let mut handles = Vec::new();
            for i in 0..60 {
                let mut client = pb::external_issue_service_client::ExternalIssueServiceClient::new(
                    channel.clone(),
                );
                handles.push(tokio::spawn(async move {
                    let _ = client
                        .sync_assignee_inbound(pb::SyncAssigneeInboundRequest {
                            issue: Some(pb::ExternalIssueRef {
                                integration_id: "acme-jira".into(),
                                key: "APP-1".into(),
                                jira_issue_id: String::new(),
                            }),
                            assignee: Some(pb::sync_assignee_inbound_request::Assignee::Email(
                                format!("u{}@example.com", i % 2),
                            )),
                            provider_update_time: None,
                            request_id: format!("kill-{i}"),
                            source_integration_id: String::new(),
                        })
                        .await;
                }));
            }
            for handle in handles {
                let _ = handle.await;
            }
        }
    });
    wait::until(
        "some syncs to have committed",
        wait::DEFAULT_DEADLINE,
        || async {
            let assigned = app
                .activities(groups[0])
                .await
                .iter()
                .filter(|a| a.kind() == pb::ActivityKind::Assigned)
                .count();
            (assigned >= 3).then_some(())
        },
    )
    .await;
    app.kill().await;
    let _ = calls.await;

    // Back up: every sync either changed all 30 groups or none.
    let app = AssignmentApp::spawn(db.url()).await;
    let mut per_request: std::collections::HashMap<String, usize> = Default::default();
    for group in &groups {
        let activities: Vec<pb::Activity> = app
            .activities(*group)
            .await
            .into_iter()
            .filter(|a| a.kind() == pb::ActivityKind::Assigned)
            .collect();
        for a in &activities {
            *per_request.entry(a.request_id.clone()).or_default() += 1;
        }
        // The group's assignee is the last assignment its audit trail shows.
        assert_eq!(
            app.group(*group).await.assignee_user_id,
            activities.last().and_then(|a| a.user_id),
            "group {group}"
        );
    }
    assert!(!per_request.is_empty());
    for (request, count) in &per_request {
        assert_eq!(
            *count,
            groups.len(),
            "sync {request} was applied to only some groups"
        );
    }
    // And its notifications were committed with it: one "assigned" per change.
    let notifications = app.all_notifications().await;
    let assigned = notifications
        .iter()
        .filter(|n| n.kind() == pb::NotificationKind::Assigned)
        .count();
    assert_eq!(assigned, per_request.len() * groups.len());
    app.stop().await;
}
