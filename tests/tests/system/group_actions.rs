//! Acting on groups from our side (issue 15, §1 and §2; docs/DESIGN.md
//! "Two-way sync"): GroupService actions change the group, write the activity
//! with the acting user, tell the people concerned (never the actor), repeat as
//! no-ops, and append to the outbound log what linked Jira issues must show.

use proto::assignment::v1 as pb;
use system_tests::fixtures::{all_off, assert_error, two_way};
use system_tests::{AssignmentApi, AssignmentApp, TestDatabase};
use tonic::Code;
use tonic_types::StatusExt as _;

/// An organization with one project and group, and Jess and Kim with access.
struct Team {
    group: i64,
    jess: i64,
    kim: i64,
    project: i64,
    org: i64,
}

async fn team(api: &AssignmentApi) -> Team {
    let org = api.create_org("acme").await;
    let project = api.create_project(org, "web").await;
    let jess = api
        .create_user("Jess", &[("jess@sentry.io", true), ("jess@old.io", false)])
        .await;
    let kim = api.create_user("Kim", &[("kim@sentry.io", true)]).await;
    api.grant(project, jess).await;
    api.grant(project, kim).await;
    let group = api.create_group(project, "TypeError in checkout").await;
    Team {
        group,
        jess,
        kim,
        project,
        org,
    }
}

fn told(notifications: &[pb::Notification]) -> Vec<(i64, pb::NotificationKind, bool)> {
    notifications
        .iter()
        .map(|n| (n.recipient_user_id, n.kind(), n.update))
        .collect()
}

#[tokio::test]
async fn actions_change_the_group_tell_everyone_but_the_actor_and_repeat_as_no_ops() {
    let db = TestDatabase::fresh().await;
    let app = AssignmentApp::spawn(db.url()).await;
    let t = team(&app).await;

    let assigned = app.assign(t.group, t.jess, t.kim).await;
    assert!(assigned.changed);
    assert_eq!(assigned.group.unwrap().assignee_user_id, Some(t.jess));
    // Again: nothing changes, nothing is written or told.
    let again = app.assign(t.group, t.jess, t.kim).await;
    assert!(!again.changed);
    // Kim takes it over herself: Jess's thread is edited, Kim is not told.
    assert!(app.assign(t.group, t.kim, t.kim).await.changed);
    // Jess resolves it: Kim (the assignee) is told, not Jess (who follows).
    assert!(app.resolve(t.group, t.jess).await.changed);
    assert!(!app.resolve(t.group, t.jess).await.changed);
    let reopened = app
        .groups()
        .unresolve_group(pb::UnresolveGroupRequest {
            group_id: t.group,
            acting_user_id: 0,
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .result
        .unwrap();
    assert_eq!(
        reopened.group.unwrap().status(),
        pb::GroupStatus::Unresolved
    );
    let unassigned = app
        .groups()
        .unassign_group(pb::UnassignGroupRequest {
            group_id: t.group,
            acting_user_id: t.jess,
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .result
        .unwrap();
    assert_eq!(unassigned.group.unwrap().assignee_user_id, None);

    use pb::ActivityKind as A;
    /// (kind, user, previous user, actor)
    type Entry = (A, Option<i64>, Option<i64>, Option<i64>);
    let trail: Vec<Entry> = app
        .activities(t.group)
        .await
        .iter()
        .map(|a| (a.kind(), a.user_id, a.previous_user_id, a.actor_user_id))
        .collect();
    assert_eq!(
        trail,
        vec![
            (A::Assigned, Some(t.jess), None, Some(t.kim)),
            (A::Assigned, Some(t.kim), Some(t.jess), Some(t.kim)),
            (A::Resolved, Some(t.kim), None, Some(t.jess)),
            (A::Unresolved, Some(t.kim), None, None),
            (A::Unassigned, None, Some(t.kim), Some(t.jess)),
        ]
    );
    use pb::NotificationKind as N;
    assert_eq!(
        told(&app.all_notifications().await),
        vec![
            (t.jess, N::Assigned, false),
            (t.jess, N::Unassigned, true),
            (t.kim, N::Resolved, false),
            (t.kim, N::Unresolved, true),
            // Jess was assigned once, so she follows the group; she resolved
            // it herself, so only the reopening reaches her.
            (t.jess, N::Unresolved, true),
            (t.kim, N::Unassigned, true),
        ]
    );
}

#[tokio::test]
async fn only_an_active_member_of_the_project_can_be_assigned() {
    let db = TestDatabase::fresh().await;
    let app = AssignmentApp::spawn(db.url()).await;
    let t = team(&app).await;
    let inactive = app
        .create_user_with("Ina", &[("ina@sentry.io", true)], false)
        .await;
    app.grant(t.project, inactive).await;
    let outsider = app.create_user("Otto", &[("otto@sentry.io", true)]).await;
    let assign = |user_id: i64, acting_user_id: i64, group_id: i64| pb::AssignGroupRequest {
        group_id,
        user_id,
        acting_user_id,
        request_id: String::new(),
    };
    for (user, why) in [(inactive, "inactive"), (outsider, "no_project_access")] {
        let refused = app.groups().assign_group(assign(user, 0, t.group)).await;
        let status = assert_error(refused, Code::FailedPrecondition, None);
        let info = status.get_details_error_info().unwrap();
        assert_eq!(info.reason, "ASSIGNEE_NOT_ELIGIBLE");
        assert_eq!(info.metadata.get("why").map(String::as_str), Some(why));
    }
    for request in [
        assign(t.jess, 0, 999_999),
        assign(999_999, 0, t.group),
        assign(t.jess, 999_999, t.group),
    ] {
        assert_error(
            app.groups().assign_group(request).await,
            Code::NotFound,
            None,
        );
    }
    // Nothing was written by the refusals.
    assert!(app.activities(t.group).await.is_empty());
    assert!(app.all_notifications().await.is_empty());
    assert_eq!(app.group(t.group).await.assignee_user_id, None);
    let _ = t.org;
}

#[tokio::test]
async fn the_outbound_log_says_what_each_forward_installation_must_show() {
    let db = TestDatabase::fresh().await;
    let app = AssignmentApp::spawn(db.url()).await;
    let t = team(&app).await;
    // jira-a and jira-b sync outbound; jira-c does not.
    for integration in ["jira-a", "jira-b"] {
        app.install(t.org, integration, two_way()).await;
    }
    app.install(t.org, "jira-c", all_off()).await;
    app.link(t.org, "jira-a", "A-1", "101", &[t.group]).await;
    app.link(t.org, "jira-b", "B-1", "", &[t.group]).await;
    app.link(t.org, "jira-c", "C-1", "301", &[t.group]).await;
    // Linking alone sends nothing.
    assert!(app.outbound_after(0).await.is_empty());

    app.assign(t.group, t.jess, 0).await;
    app.resolve(t.group, t.kim).await;
    use pb::outbound_sync::Target;
    let entries = app.outbound_after(0).await;
    let summary: Vec<(i64, String, Option<Target>, bool)> = entries
        .iter()
        .map(|e| {
            (
                e.sequence,
                e.issue.as_ref().unwrap().key.clone(),
                e.target.clone(),
                e.from_source,
            )
        })
        .collect();
    let jess = Target::Assignee(pb::OutboundAssignee {
        user_id: t.jess,
        // Verified addresses only.
        emails: vec!["jess@sentry.io".into()],
    });
    let resolve = Target::Status(pb::StatusAction::Resolve.into());
    assert_eq!(
        summary,
        vec![
            (1, "A-1".into(), Some(jess.clone()), false),
            (2, "B-1".into(), Some(jess), false),
            (3, "A-1".into(), Some(resolve.clone()), false),
            (4, "B-1".into(), Some(resolve), false),
        ]
    );
    assert_eq!(entries[0].issue.as_ref().unwrap().jira_issue_id, "101");
    assert_eq!(entries[0].organization_id, t.org);
    assert_eq!(entries[0].group_id, t.group);

    // A change that came from jira-a: jira-a's entry is marked (send
    // nothing), jira-b's is not.
    let synced = app
        .external_issues()
        .sync_assignee_inbound(pb::SyncAssigneeInboundRequest {
            issue: Some(pb::ExternalIssueRef {
                integration_id: "jira-a".into(),
                key: "A-1".into(),
                jira_issue_id: "101".into(),
            }),
            assignee: Some(pb::sync_assignee_inbound_request::Assignee::Email(
                "kim@sentry.io".into(),
            )),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(synced.results.len(), 1);
    let later: Vec<(String, bool)> = app
        .outbound_after(4)
        .await
        .iter()
        .map(|e| (e.issue.as_ref().unwrap().key.clone(), e.from_source))
        .collect();
    assert_eq!(later, vec![("A-1".into(), true), ("B-1".into(), false)]);

    // Resuming after the head waits; beyond it is refused.
    assert!(app.outbound_after(6).await.is_empty());
    let beyond = app
        .external_issues()
        .watch_outbound_syncs(pb::WatchOutboundSyncsRequest { after_sequence: 7 })
        .await;
    let status = assert_error(beyond.map(drop), Code::OutOfRange, None);
    assert_eq!(
        status.get_details_error_info().unwrap().reason,
        "CURSOR_BEYOND_HEAD"
    );
}
