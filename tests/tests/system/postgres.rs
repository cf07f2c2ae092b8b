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
