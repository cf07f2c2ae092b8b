//! Inbound sync in the assignment service (DESIGN.md §2 "Sync in the assignment
//! service"): who gets assigned, in which organizations, in which order, once.

use pb::sync_assignee_inbound_request::Assignee;
use proto::assignment::v1 as pb;
use system_tests::fixtures::{all_off, assert_error, inbound_on};
use system_tests::{AssignmentApp, TestDatabase};
use tonic::Code;

const JIRA: &str = "acme-jira";

fn time(rfc3339: &str) -> Option<prost_types::Timestamp> {
    let t = chrono::DateTime::parse_from_rfc3339(rfc3339).unwrap();
    Some(prost_types::Timestamp {
        seconds: t.timestamp(),
        nanos: 0,
    })
}

fn issue(key: &str) -> Option<pb::ExternalIssueRef> {
    Some(pb::ExternalIssueRef {
        integration_id: JIRA.into(),
        key: key.into(),
        jira_issue_id: String::new(),
    })
}

async fn assign(
    app: &AssignmentApp,
    key: &str,
    email: &str,
    at: Option<&str>,
    request_id: &str,
) -> Vec<pb::GroupSyncResult> {
    app.external_issues()
        .sync_assignee_inbound(pb::SyncAssigneeInboundRequest {
            issue: issue(key),
            assignee: Some(Assignee::Email(email.into())),
            provider_update_time: at.and_then(time),
            request_id: request_id.into(),
            source_integration_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .results
}

async fn unassign(app: &AssignmentApp, key: &str, at: Option<&str>) -> Vec<pb::GroupSyncResult> {
    app.external_issues()
        .sync_assignee_inbound(pb::SyncAssigneeInboundRequest {
            issue: issue(key),
            assignee: Some(Assignee::Unassign(true)),
            provider_update_time: at.and_then(time),
            request_id: String::new(),
            source_integration_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .results
}

async fn set_status(
    app: &AssignmentApp,
    key: &str,
    action: pb::StatusAction,
    at: Option<&str>,
) -> Vec<pb::GroupSyncResult> {
    app.external_issues()
        .sync_status_inbound(pb::SyncStatusInboundRequest {
            issue: issue(key),
            action: action.into(),
            provider_update_time: at.and_then(time),
            request_id: String::new(),
            source_integration_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .results
}

fn outcomes(results: &[pb::GroupSyncResult]) -> Vec<(i64, pb::SyncOutcome)> {
    results.iter().map(|r| (r.group_id, r.outcome())).collect()
}

/// One organization, one project, a user with access, a group linked to APP-1.
struct Tenant {
    org: i64,
    project: i64,
    group: i64,
}

async fn tenant(app: &AssignmentApp, slug: &str, settings: pb::SyncSettings, key: &str) -> Tenant {
    let org = app.create_org(slug).await;
    let project = app.create_project(org, "web").await;
    let group = app
        .create_group(project, &format!("{slug}: TypeError in checkout"))
        .await;
    app.install(org, JIRA, settings).await;
    app.link(org, JIRA, key, "", &[group]).await;
    Tenant {
        org,
        project,
        group,
    }
}

#[tokio::test]
async fn one_key_in_two_organizations_assigns_both_and_skips_disabled_ones() {
    let db = TestDatabase::fresh().await;
    let app = AssignmentApp::spawn(db.url()).await;
    let a = tenant(&app, "alpha", inbound_on(), "APP-1").await;
    let b = tenant(&app, "beta", inbound_on(), "APP-1").await;
    let off = tenant(&app, "gamma", all_off(), "APP-1").await;
    let jess = app.create_user("Jess", &[("jess@sentry.io", true)]).await;
    for t in [&a, &b, &off] {
        app.grant(t.project, jess).await;
    }

    let results = assign(&app, "APP-1", "jess@sentry.io", None, "").await;

    assert_eq!(
        outcomes(&results),
        vec![
            (a.group, pb::SyncOutcome::Assigned),
            (b.group, pb::SyncOutcome::Assigned),
            (off.group, pb::SyncOutcome::SyncDisabled),
        ]
    );
    assert_eq!(app.group(a.group).await.assignee_user_id, Some(jess));
    assert_eq!(app.group(b.group).await.assignee_user_id, Some(jess));
    assert_eq!(app.group(off.group).await.assignee_user_id, None);
    assert!(
        app.activities(off.group)
            .await
            .iter()
            .all(|a| a.kind() == pb::ActivityKind::Linked)
    );
    let notified: Vec<i64> = app
        .all_notifications()
        .await
        .iter()
        .map(|n| n.group_id)
        .collect();
    assert_eq!(notified, vec![a.group, b.group]);
    let _ = (a.org, b.org, off.org);
    app.stop().await;
}

#[tokio::test]
async fn only_active_users_with_a_verified_matching_email_and_project_access_are_assigned() {
    let db = TestDatabase::fresh().await;
    let app = AssignmentApp::spawn(db.url()).await;
    let t = tenant(&app, "acme", inbound_on(), "APP-1").await;

    // Matches, but has no access to the group's project.
    let outsider = app
        .create_user("Outsider", &[("out@example.com", true)])
        .await;
    let results = assign(&app, "APP-1", "out@example.com", None, "").await;
    assert_eq!(
        outcomes(&results),
        vec![(t.group, pb::SyncOutcome::NoMatchingUser)]
    );
    let _ = outsider;

    // Unverified address: no match.
    let unverified = app
        .create_user("Unverified", &[("unv@example.com", false)])
        .await;
    app.grant(t.project, unverified).await;
    let results = assign(&app, "APP-1", "unv@example.com", None, "").await;
    assert_eq!(
        outcomes(&results),
        vec![(t.group, pb::SyncOutcome::NoMatchingUser)]
    );

    // Inactive user: no match.
    let inactive = app
        .create_user_with("Inactive", &[("gone@example.com", true)], false)
        .await;
    app.grant(t.project, inactive).await;
    let results = assign(&app, "APP-1", "gone@example.com", None, "").await;
    assert_eq!(
        outcomes(&results),
        vec![(t.group, pb::SyncOutcome::NoMatchingUser)]
    );
    assert_eq!(app.group(t.group).await.assignee_user_id, None);

    // Stored capitalised, matched case-insensitively.
    let jess = app.create_user("Jess", &[("Jess@Sentry.io", true)]).await;
    app.grant(t.project, jess).await;
    let results = assign(&app, "APP-1", "jess@sentry.io", None, "").await;
    assert_eq!(
        outcomes(&results),
        vec![(t.group, pb::SyncOutcome::Assigned)]
    );
    assert_eq!(results[0].user_id, Some(jess));

    // No notification for the attempts that did not match.
    let notifications = app.all_notifications().await;
    assert_eq!(notifications.len(), 1);
    assert_eq!(notifications[0].recipient_user_id, jess);
    app.stop().await;
}

#[tokio::test]
async fn two_matching_users_give_the_same_choice_every_time() {
    let db = TestDatabase::fresh().await;
    let app = AssignmentApp::spawn(db.url()).await;
    let t = tenant(&app, "acme", inbound_on(), "APP-1").await;
    let first = app
        .create_user("First", &[("shared@example.com", true)])
        .await;
    let second = app
        .create_user("Second", &[("SHARED@example.com", true)])
        .await;
    // Granted in the opposite order, to show the choice does not depend on it.
    app.grant(t.project, second).await;
    app.grant(t.project, first).await;
    let other = app
        .create_user("Other", &[("other@example.com", true)])
        .await;
    app.grant(t.project, other).await;

    for _ in 0..3 {
        let results = assign(&app, "APP-1", "shared@example.com", None, "").await;
        assert_eq!(results[0].user_id, Some(first.min(second)));
        // Move away so the next round is a real change again.
        assign(&app, "APP-1", "other@example.com", None, "").await;
    }
    app.stop().await;
}

#[tokio::test]
async fn repeats_change_nothing_and_deassigning_an_unassigned_group_is_a_no_op() {
    let db = TestDatabase::fresh().await;
    let app = AssignmentApp::spawn(db.url()).await;
    let t = tenant(&app, "acme", inbound_on(), "APP-1").await;
    let jess = app.create_user("Jess", &[("jess@sentry.io", true)]).await;
    app.grant(t.project, jess).await;

    // Deassigning an unassigned group: nothing to remove.
    let results = unassign(&app, "APP-1", None).await;
    assert_eq!(
        outcomes(&results),
        vec![(t.group, pb::SyncOutcome::Unchanged)]
    );

    // The same request id twice: the first response, no second effect.
    let first = assign(&app, "APP-1", "jess@sentry.io", None, "delivery-1").await;
    let again = assign(&app, "APP-1", "jess@sentry.io", None, "delivery-1").await;
    assert_eq!(first, again);
    assert_eq!(outcomes(&first), vec![(t.group, pb::SyncOutcome::Assigned)]);

    // A new request with the same assignee: unchanged.
    let same = assign(&app, "APP-1", "jess@sentry.io", None, "delivery-2").await;
    assert_eq!(outcomes(&same), vec![(t.group, pb::SyncOutcome::Unchanged)]);

    let assigned: Vec<_> = app
        .activities(t.group)
        .await
        .into_iter()
        .filter(|a| a.kind() == pb::ActivityKind::Assigned)
        .collect();
    assert_eq!(assigned.len(), 1);
    assert_eq!(assigned[0].request_id, "delivery-1");
    assert_eq!(assigned[0].source_integration_id, JIRA);
    assert_eq!(app.all_notifications().await.len(), 1);
    app.stop().await;
}

#[tokio::test]
async fn a_request_id_reused_for_another_request_is_refused() {
    let db = TestDatabase::fresh().await;
    let app = AssignmentApp::spawn(db.url()).await;
    let t = tenant(&app, "acme", inbound_on(), "APP-1").await;
    let jess = app.create_user("Jess", &[("jess@sentry.io", true)]).await;
    app.grant(t.project, jess).await;
    assign(&app, "APP-1", "jess@sentry.io", None, "r-1").await;
    let reused = app
        .external_issues()
        .sync_assignee_inbound(pb::SyncAssigneeInboundRequest {
            issue: issue("APP-1"),
            assignee: Some(Assignee::Unassign(true)),
            provider_update_time: None,
            request_id: "r-1".into(),
            source_integration_id: String::new(),
        })
        .await;
    assert_error(reused, Code::InvalidArgument, Some("request_id"));
    assert_eq!(app.group(t.group).await.assignee_user_id, Some(jess));
    app.stop().await;
}

#[tokio::test]
async fn watermarks_drop_older_events_reapply_equal_ones_and_never_move_back() {
    let db = TestDatabase::fresh().await;
    let app = AssignmentApp::spawn(db.url()).await;
    let t = tenant(&app, "acme", inbound_on(), "APP-1").await;
    let jess = app.create_user("Jess", &[("jess@sentry.io", true)]).await;
    let kim = app.create_user("Kim", &[("kim@sentry.io", true)]).await;
    app.grant(t.project, jess).await;
    app.grant(t.project, kim).await;

    let noon = "2023-01-01T12:00:00Z";
    let results = assign(&app, "APP-1", "jess@sentry.io", Some(noon), "").await;
    assert_eq!(
        outcomes(&results),
        vec![(t.group, pb::SyncOutcome::Assigned)]
    );

    // Older: dropped, the group keeps Jess.
    let results = assign(
        &app,
        "APP-1",
        "kim@sentry.io",
        Some("2023-01-01T11:00:00Z"),
        "",
    )
    .await;
    assert_eq!(outcomes(&results), vec![(t.group, pb::SyncOutcome::Stale)]);
    assert_eq!(app.group(t.group).await.assignee_user_id, Some(jess));

    // Equal: applied again.
    let results = assign(&app, "APP-1", "kim@sentry.io", Some(noon), "").await;
    assert_eq!(
        outcomes(&results),
        vec![(t.group, pb::SyncOutcome::Assigned)]
    );
    assert_eq!(app.group(t.group).await.assignee_user_id, Some(kim));

    // Status has its own watermark: an older status event still applies.
    let results = set_status(
        &app,
        "APP-1",
        pb::StatusAction::Resolve,
        Some("2023-01-01T08:00:00Z"),
    )
    .await;
    assert_eq!(
        outcomes(&results),
        vec![(t.group, pb::SyncOutcome::Resolved)]
    );
    let results = set_status(
        &app,
        "APP-1",
        pb::StatusAction::Unresolve,
        Some("2023-01-01T07:00:00Z"),
    )
    .await;
    assert_eq!(outcomes(&results), vec![(t.group, pb::SyncOutcome::Stale)]);

    // An event without a provider time applies and leaves the watermark alone.
    let results = unassign(&app, "APP-1", None).await;
    assert_eq!(
        outcomes(&results),
        vec![(t.group, pb::SyncOutcome::Deassigned)]
    );
    let record = app
        .external_issues()
        .get_external_issue(pb::GetExternalIssueRequest {
            organization_id: t.org,
            issue: issue("APP-1"),
        })
        .await
        .unwrap()
        .into_inner()
        .external_issue
        .unwrap();
    assert_eq!(record.assignee_watermark_time, time(noon));
    assert_eq!(record.status_watermark_time, time("2023-01-01T08:00:00Z"));
    app.stop().await;
}

#[tokio::test]
async fn status_changes_resolve_and_reopen_and_notify_the_assignee() {
    let db = TestDatabase::fresh().await;
    let app = AssignmentApp::spawn(db.url()).await;
    let t = tenant(&app, "acme", inbound_on(), "APP-1").await;
    let unassigned_group = app.create_group(t.project, "nobody's").await;
    app.link(t.org, JIRA, "APP-1", "", &[unassigned_group])
        .await;
    let jess = app.create_user("Jess", &[("jess@sentry.io", true)]).await;
    app.grant(t.project, jess).await;
    // Assign only the first group: link the second one after assigning.
    app.external_issues()
        .unlink_external_issue(pb::UnlinkExternalIssueRequest {
            organization_id: t.org,
            issue: issue("APP-1"),
            group_ids: vec![unassigned_group],
            request_id: String::new(),
            all: false,
        })
        .await
        .unwrap();
    assign(&app, "APP-1", "jess@sentry.io", None, "").await;
    app.link(t.org, JIRA, "APP-1", "", &[unassigned_group])
        .await;

    let results = set_status(&app, "APP-1", pb::StatusAction::Resolve, None).await;
    assert_eq!(
        outcomes(&results),
        vec![
            (t.group, pb::SyncOutcome::Resolved),
            (unassigned_group, pb::SyncOutcome::Resolved)
        ]
    );
    // Resolving a resolved group is a no-op.
    let results = set_status(&app, "APP-1", pb::StatusAction::Resolve, None).await;
    assert_eq!(
        outcomes(&results),
        vec![
            (t.group, pb::SyncOutcome::Unchanged),
            (unassigned_group, pb::SyncOutcome::Unchanged)
        ]
    );
    assert_eq!(app.group(t.group).await.status(), pb::GroupStatus::Resolved);
    set_status(&app, "APP-1", pb::StatusAction::Unresolve, None).await;
    assert_eq!(
        app.group(t.group).await.status(),
        pb::GroupStatus::Unresolved
    );

    let notifications = app.all_notifications().await;
    let kinds: Vec<_> = notifications
        .iter()
        .map(|n| (n.group_id, n.kind(), n.update))
        .collect();
    assert_eq!(
        kinds,
        vec![
            (t.group, pb::NotificationKind::Assigned, false),
            (t.group, pb::NotificationKind::Resolved, true),
            (t.group, pb::NotificationKind::Unresolved, true),
        ]
    );
    assert!(
        notifications
            .iter()
            .all(|n| n.message_key == notifications[0].message_key)
    );
    assert!(notifications[1].message.contains("APP-1"));
    assert!(notifications[1].message.contains("resolved"));
    app.stop().await;
}

#[tokio::test]
async fn reassignment_tells_both_users_in_their_own_threads() {
    let db = TestDatabase::fresh().await;
    let app = AssignmentApp::spawn(db.url()).await;
    let t = tenant(&app, "acme", inbound_on(), "APP-1").await;
    let jess = app.create_user("Jess", &[("jess@sentry.io", true)]).await;
    let kim = app.create_user("Kim", &[("kim@sentry.io", true)]).await;
    app.grant(t.project, jess).await;
    app.grant(t.project, kim).await;

    assign(&app, "APP-1", "jess@sentry.io", None, "").await;
    let results = assign(&app, "APP-1", "kim@sentry.io", None, "").await;
    assert_eq!(results[0].previous_user_id, Some(jess));

    let n = app.all_notifications().await;
    assert_eq!(n.len(), 3);
    let jess_first = &n[0];
    assert_eq!(
        (
            jess_first.recipient_user_id,
            jess_first.kind(),
            jess_first.update
        ),
        (jess, pb::NotificationKind::Assigned, false)
    );
    let jess_second = n
        .iter()
        .find(|x| x.recipient_user_id == jess && x.sequence != jess_first.sequence)
        .unwrap();
    assert_eq!(
        (jess_second.kind(), jess_second.update),
        (pb::NotificationKind::Unassigned, true)
    );
    assert_eq!(jess_second.message_key, jess_first.message_key);
    let kim_first = n.iter().find(|x| x.recipient_user_id == kim).unwrap();
    assert_eq!(
        (kim_first.kind(), kim_first.update),
        (pb::NotificationKind::Assigned, false)
    );
    assert_ne!(kim_first.message_key, jess_first.message_key);
    assert!(n.windows(2).all(|w| w[0].sequence < w[1].sequence));
    app.stop().await;
}

#[tokio::test]
async fn bad_sync_input_is_refused_naming_the_field_and_writes_nothing() {
    let db = TestDatabase::fresh().await;
    let app = AssignmentApp::spawn(db.url()).await;
    let t = tenant(&app, "acme", inbound_on(), "APP-1").await;
    let jess = app.create_user("Jess", &[("jess@sentry.io", true)]).await;
    app.grant(t.project, jess).await;
    let mut client = app.external_issues();

    let base = pb::SyncAssigneeInboundRequest {
        issue: issue("APP-1"),
        assignee: Some(Assignee::Email("jess@sentry.io".into())),
        provider_update_time: None,
        request_id: String::new(),
        source_integration_id: String::new(),
    };
    let cases: Vec<(pb::SyncAssigneeInboundRequest, &str)> = vec![
        (
            pb::SyncAssigneeInboundRequest {
                assignee: Some(Assignee::Email("not-an-email".into())),
                ..base.clone()
            },
            "email",
        ),
        (
            pb::SyncAssigneeInboundRequest {
                assignee: None,
                ..base.clone()
            },
            "email",
        ),
        (
            pb::SyncAssigneeInboundRequest {
                issue: Some(pb::ExternalIssueRef {
                    integration_id: JIRA.into(),
                    key: String::new(),
                    jira_issue_id: String::new(),
                }),
                ..base.clone()
            },
            "issue.key",
        ),
        (
            pb::SyncAssigneeInboundRequest {
                issue: Some(pb::ExternalIssueRef {
                    integration_id: JIRA.into(),
                    key: "not a key".into(),
                    jira_issue_id: String::new(),
                }),
                ..base.clone()
            },
            "issue.key",
        ),
        (
            pb::SyncAssigneeInboundRequest {
                issue: Some(pb::ExternalIssueRef {
                    integration_id: "Bad Id".into(),
                    key: "APP-1".into(),
                    jira_issue_id: String::new(),
                }),
                ..base.clone()
            },
            "issue.integration_id",
        ),
        (
            pb::SyncAssigneeInboundRequest {
                provider_update_time: Some(prost_types::Timestamp {
                    seconds: 1,
                    nanos: -5,
                }),
                ..base.clone()
            },
            "provider_update_time",
        ),
        (
            pb::SyncAssigneeInboundRequest {
                request_id: "has spaces".into(),
                ..base.clone()
            },
            "request_id",
        ),
    ];
    for (request, field) in cases {
        assert_error(
            client.sync_assignee_inbound(request).await,
            Code::InvalidArgument,
            Some(field),
        );
    }
    let status = pb::SyncStatusInboundRequest {
        issue: issue("APP-1"),
        action: 42,
        provider_update_time: None,
        request_id: String::new(),
        source_integration_id: String::new(),
    };
    assert_error(
        client.sync_status_inbound(status).await,
        Code::InvalidArgument,
        Some("action"),
    );
    let unspecified = pb::SyncStatusInboundRequest {
        issue: issue("APP-1"),
        action: pb::StatusAction::Unspecified.into(),
        provider_update_time: None,
        request_id: String::new(),
        source_integration_id: String::new(),
    };
    assert_error(
        client.sync_status_inbound(unspecified).await,
        Code::InvalidArgument,
        Some("action"),
    );

    // Nothing was written by any of them.
    assert_eq!(app.group(t.group).await.assignee_user_id, None);
    assert_eq!(
        app.group(t.group).await.status(),
        pb::GroupStatus::Unresolved
    );
    assert!(app.all_notifications().await.is_empty());
    app.stop().await;
}

#[tokio::test]
async fn an_unknown_issue_affects_nothing() {
    let db = TestDatabase::fresh().await;
    let app = AssignmentApp::spawn(db.url()).await;
    let _ = tenant(&app, "acme", inbound_on(), "APP-1").await;
    let results = assign(&app, "OTHER-9", "jess@sentry.io", None, "").await;
    assert!(results.is_empty());
    app.stop().await;
}

/// Concurrent calls are applied in groups (one transaction for many calls);
/// whatever the grouping, the result must be the one of some one-by-one order:
/// the latest provider time wins, stale calls lose only to later ones, a
/// repeated call is applied once, a reused request id is refused, and the audit
/// trail and notifications tell one unbroken story.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_concurrent_syncs_ends_as_some_one_by_one_order_would() {
    let db = TestDatabase::fresh().await;
    let app = AssignmentApp::spawn(db.url()).await;
    let t = tenant(&app, "acme", inbound_on(), "APP-1").await;
    let mut users = Vec::new();
    for i in 0..10 {
        let id = app
            .create_user(
                &format!("User {i}"),
                &[(&format!("u{i}@example.com"), true)],
            )
            .await;
        app.grant(t.project, id).await;
        users.push(id);
    }
    let call = |i: usize, email: String, request_id: String| {
        let mut client = app.external_issues();
        async move {
            client
                .sync_assignee_inbound(pb::SyncAssigneeInboundRequest {
                    issue: issue("APP-1"),
                    assignee: Some(Assignee::Email(email)),
                    provider_update_time: time(&format!("2026-11-26T10:00:{i:02}Z")),
                    request_id,
                    source_integration_id: String::new(),
                })
                .await
                .map(|r| r.into_inner().results)
        }
    };
    // Newest first, so most calls after the first are stale; call 3 twice; a
    // different body under call 5's request id.
    let mut calls = Vec::new();
    for i in (0..10).rev() {
        calls.push(call(i, format!("u{i}@example.com"), format!("burst-{i}")));
    }
    calls.push(call(3, "u3@example.com".into(), "burst-3".into()));
    calls.push(call(5, "u0@example.com".into(), "burst-5".into()));
    let results = futures_util::future::join_all(calls).await;

    // The newest event decides, whatever order the calls were applied in.
    assert_eq!(app.group(t.group).await.assignee_user_id, Some(users[9]));
    // Call 3 and its repeat got the same answer.
    assert_eq!(
        results[6].as_ref().expect("call 3"),
        results[10].as_ref().expect("repeat of call 3")
    );
    // Exactly one of the two bodies under "burst-5" was refused.
    let refused: Vec<&tonic::Status> = [&results[4], &results[11]]
        .into_iter()
        .filter_map(|r| r.as_ref().err())
        .collect();
    assert_eq!(refused.len(), 1, "{results:?}");
    assert_eq!(refused[0].code(), Code::InvalidArgument);
    // A call is stale only if a call with a later provider time applied first;
    // an applied call assigns its user.
    let mut applied = Vec::new();
    for (i, result) in results.iter().take(10).enumerate() {
        let time_index = 9 - i;
        let Ok(result) = result else { continue };
        assert_eq!(result.len(), 1);
        match result[0].outcome() {
            pb::SyncOutcome::Stale => {}
            pb::SyncOutcome::Assigned | pb::SyncOutcome::Unchanged => {
                assert_eq!(result[0].user_id, Some(users[time_index]));
                applied.push(time_index);
            }
            other => panic!("call at {time_index}: unexpected {other:?}"),
        }
    }
    assert!(applied.contains(&9));
    // The audit trail is one chain, and the notifications follow it, gapless.
    let assignments: Vec<pb::Activity> = app
        .activities(t.group)
        .await
        .into_iter()
        .filter(|a| a.kind() == pb::ActivityKind::Assigned)
        .collect();
    assert_eq!(assignments[0].previous_user_id, None);
    for pair in assignments.windows(2) {
        assert_eq!(pair[1].previous_user_id, pair[0].user_id);
    }
    assert_eq!(assignments.last().and_then(|a| a.user_id), Some(users[9]));
    let notifications = app.all_notifications().await;
    assert!(
        notifications
            .windows(2)
            .all(|w| w[1].sequence == w[0].sequence + 1)
    );
    let assigned: Vec<i64> = notifications
        .iter()
        .filter(|n| n.kind() == pb::NotificationKind::Assigned)
        .map(|n| n.recipient_user_id)
        .collect();
    let chain: Vec<i64> = assignments.iter().filter_map(|a| a.user_id).collect();
    assert_eq!(assigned, chain);
    app.stop().await;
}

/// One call that changes several groups writes their activities together; each
/// notification still names the activity that caused it, in its own group.
#[tokio::test]
async fn each_notification_names_the_activity_that_caused_it() {
    let db = TestDatabase::fresh().await;
    let app = AssignmentApp::spawn(db.url()).await;
    let org = app.create_org("acme").await;
    let project = app.create_project(org, "web").await;
    let mut groups = Vec::new();
    for i in 0..5 {
        groups.push(app.create_group(project, &format!("Error {i}")).await);
    }
    app.install(org, JIRA, inbound_on()).await;
    app.link(org, JIRA, "APP-1", "", &groups).await;
    let ann = app.create_user("Ann", &[("ann@example.com", true)]).await;
    let bob = app.create_user("Bob", &[("bob@example.com", true)]).await;
    app.grant(project, ann).await;
    app.grant(project, bob).await;

    assign(
        &app,
        "APP-1",
        "ann@example.com",
        Some("2026-11-26T10:00:00Z"),
        "r-1",
    )
    .await;
    assign(
        &app,
        "APP-1",
        "bob@example.com",
        Some("2026-11-26T10:00:01Z"),
        "r-2",
    )
    .await;

    // Five "assigned" to Ann, then five "unassigned" to Ann and five "assigned"
    // to Bob.
    let notifications = app.all_notifications().await;
    assert_eq!(notifications.len(), 15);
    for n in &notifications {
        let activities = app.activities(n.group_id).await;
        let cause = activities
            .iter()
            .find(|a| a.id == n.activity_id)
            .unwrap_or_else(|| {
                panic!(
                    "notification {} names activity {}, not one of group {}",
                    n.sequence, n.activity_id, n.group_id
                )
            });
        assert_eq!(cause.kind(), pb::ActivityKind::Assigned);
        let told = match n.kind() {
            pb::NotificationKind::Assigned => cause.user_id,
            _ => cause.previous_user_id,
        };
        assert_eq!(
            told,
            Some(n.recipient_user_id),
            "notification {}",
            n.sequence
        );
    }
    app.stop().await;
}

/// Issue 19, "grouping never changes an outcome": each change of a
/// SyncAssigneeInboundBatch call ends as its own SyncAssigneeInbound call
/// ends, whether applied, a no-op, stale, matching nobody, invalid or reusing a
/// request id. Two identical worlds of six issues: world A gets six single
/// calls, world B one batch of the same six changes.
#[tokio::test]
async fn a_batch_gives_each_change_the_outcome_its_own_call_gives() {
    use tonic_types::StatusExt as _;
    let db = TestDatabase::fresh().await;
    let app = AssignmentApp::spawn(db.url()).await;
    let jess = app.create_user("Jess", &[("jess@sentry.io", true)]).await;
    let change = |key: String, assignee: Assignee, at: Option<&str>, request_id: String| {
        pb::SyncAssigneeInboundRequest {
            issue: issue(&key),
            assignee: Some(assignee),
            provider_update_time: at.and_then(time),
            request_id,
            source_integration_id: String::new(),
        }
    };
    let mut groups = Vec::new();
    let mut changes = Vec::new();
    for world in ["A", "B"] {
        let mut world_groups = Vec::new();
        for n in 1..=6 {
            let key = format!("{world}-{n}");
            let t = tenant(
                &app,
                &format!("{world}{n}").to_lowercase(),
                inbound_on(),
                &key,
            )
            .await;
            app.grant(t.project, jess).await;
            world_groups.push(t.group);
        }
        // The history both worlds share: issue 3's watermark at 10:00, and
        // issue 6's request id used once.
        let earlier = format!("{world}-earlier");
        assign(
            &app,
            &format!("{world}-3"),
            "jess@sentry.io",
            Some("2026-11-01T10:00:00Z"),
            "",
        )
        .await;
        assign(
            &app,
            &format!("{world}-6"),
            "jess@sentry.io",
            None,
            &earlier,
        )
        .await;
        let email = |e: &str| Assignee::Email(e.into());
        changes.push(vec![
            change(
                format!("{world}-1"),
                email("jess@sentry.io"),
                None,
                format!("{world}-r1"),
            ),
            change(
                format!("{world}-2"),
                Assignee::Unassign(true),
                None,
                String::new(),
            ),
            change(
                format!("{world}-3"),
                email("jess@sentry.io"),
                Some("2026-11-01T09:00:00Z"),
                String::new(),
            ),
            change(
                format!("{world}-4"),
                email("nobody@sentry.io"),
                None,
                String::new(),
            ),
            change(
                format!("{world}-5"),
                email("not an address"),
                None,
                String::new(),
            ),
            change(
                format!("{world}-6"),
                Assignee::Unassign(true),
                None,
                earlier,
            ),
        ]);
        groups.push(world_groups);
    }

    let mut single = Vec::new();
    for c in changes[0].clone() {
        single.push(app.external_issues().sync_assignee_inbound(c).await);
    }
    let batched: Vec<_> = app
        .external_issues()
        .sync_assignee_inbound_batch(pb::SyncAssigneeInboundBatchRequest {
            changes: changes[1]
                .iter()
                .map(|c| pb::BatchedAssigneeChange {
                    change: Some(c.clone()),
                    traceparent: String::new(),
                })
                .collect(),
        })
        .await
        .unwrap()
        .into_inner()
        .outcomes
        .into_iter()
        .map(|o| match o.outcome {
            Some(pb::batched_assignee_outcome::Outcome::Response(r)) => Ok(r),
            Some(pb::batched_assignee_outcome::Outcome::Error(e)) => Err(
                tonic::Status::with_details(e.code.into(), e.message, e.details.into()),
            ),
            None => panic!("a change without an outcome"),
        })
        .collect();

    // What each call ended as: its outcomes, or its error's code and reason.
    let ended =
        |result: &Result<tonic::Response<pb::SyncAssigneeInboundResponse>, tonic::Status>| {
            result
                .as_ref()
                .map(|r| r.get_ref().clone())
                .map_err(Clone::clone)
        };
    let shape = |result: Result<pb::SyncAssigneeInboundResponse, tonic::Status>| match result {
        Ok(r) => format!(
            "{:?}",
            r.results.iter().map(|r| r.outcome()).collect::<Vec<_>>()
        ),
        Err(s) => format!(
            "{:?} {}",
            s.code(),
            s.get_details_error_info()
                .map(|i| i.reason)
                .unwrap_or_default()
        ),
    };
    let single: Vec<_> = single.iter().map(|r| shape(ended(r))).collect();
    let batched_shapes: Vec<_> = batched.iter().cloned().map(shape).collect();
    assert_eq!(batched_shapes, single);
    assert_eq!(
        single,
        [
            "[Assigned]",
            "[Unchanged]",
            "[Stale]",
            "[NoMatchingUser]",
            "InvalidArgument INVALID_ARGUMENT",
            "InvalidArgument REQUEST_ID_REUSED",
        ]
    );
    assert_error(batched[4].clone(), Code::InvalidArgument, Some("email"));
    for (a, b) in groups[0].iter().zip(&groups[1]) {
        assert_eq!(
            app.group(*a).await.assignee_user_id,
            app.group(*b).await.assignee_user_id
        );
    }
    app.stop().await;
}

/// A batch names 1 to 64 changes; outside that it is refused whole, and
/// nothing is applied.
#[tokio::test]
async fn a_batch_of_no_changes_or_more_than_64_is_refused_whole() {
    let db = TestDatabase::fresh().await;
    let app = AssignmentApp::spawn(db.url()).await;
    let t = tenant(&app, "acme", inbound_on(), "APP-1").await;
    let jess = app.create_user("Jess", &[("jess@sentry.io", true)]).await;
    app.grant(t.project, jess).await;
    let batch = |n: usize| pb::SyncAssigneeInboundBatchRequest {
        changes: (0..n)
            .map(|i| pb::BatchedAssigneeChange {
                change: Some(pb::SyncAssigneeInboundRequest {
                    issue: issue("APP-1"),
                    assignee: Some(Assignee::Email("jess@sentry.io".into())),
                    provider_update_time: None,
                    request_id: format!("r-{i}"),
                    source_integration_id: String::new(),
                }),
                traceparent: String::new(),
            })
            .collect(),
    };
    for n in [0, 65] {
        let refused = app
            .external_issues()
            .sync_assignee_inbound_batch(batch(n))
            .await;
        assert_error(refused, Code::InvalidArgument, Some("changes"));
    }
    assert_eq!(app.group(t.group).await.assignee_user_id, None);
    let applied = app
        .external_issues()
        .sync_assignee_inbound_batch(batch(64))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(applied.outcomes.len(), 64);
    assert_eq!(app.group(t.group).await.assignee_user_id, Some(jess));
    app.stop().await;
}
