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
    // sequence order, each "unassigned" going to the previous assignee.
    let notifications = app.all_notifications().await;
    assert_eq!(notifications.len(), 99);
    assert!(
        notifications
            .windows(2)
            .all(|w| w[1].sequence == w[0].sequence + 1)
    );
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
                    after_sequence: Some(0),
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
