//! Group participants (issue 21, point 7; docs/DESIGN.md "Who is told what"):
//! users follow a group by subscribing or by being assigned it, and are told
//! of its assignment and status changes, except those they make themselves,
//! on their own thread per group.

use proto::assignment::v1 as pb;
use system_tests::fixtures::assert_error;
use system_tests::{AssignmentApp, TestDatabase};
use tonic::Code;
use tonic_types::StatusExt as _;

/// One project with a group and users able to be assigned it (Jess, Kim,
/// Lee), one without access (Olly) and one inactive (Ina).
struct Team {
    project: i64,
    group: i64,
    jess: i64,
    kim: i64,
    lee: i64,
    olly: i64,
    ina: i64,
}

async fn team(app: &AssignmentApp) -> Team {
    let org = app.create_org("acme").await;
    let project = app.create_project(org, "web").await;
    let group = app.create_group(project, "TypeError in checkout").await;
    let mut members = Vec::new();
    for name in ["Jess", "Kim", "Lee"] {
        let email = format!("{}@sentry.io", name.to_lowercase());
        let user = app.create_user(name, &[(&email, true)]).await;
        app.grant(project, user).await;
        members.push(user);
    }
    let olly = app.create_user("Olly", &[("olly@sentry.io", true)]).await;
    let ina = app
        .create_user_with("Ina", &[("ina@sentry.io", true)], false)
        .await;
    app.grant(project, ina).await;
    Team {
        project,
        group,
        jess: members[0],
        kim: members[1],
        lee: members[2],
        olly,
        ina,
    }
}

async fn subscribe(
    app: &AssignmentApp,
    group_id: i64,
    user_id: i64,
) -> Result<bool, tonic::Status> {
    app.groups()
        .subscribe_to_group(pb::SubscribeToGroupRequest { group_id, user_id })
        .await
        .map(|r| r.into_inner().changed)
}

async fn unsubscribe(app: &AssignmentApp, group_id: i64, user_id: i64) -> bool {
    app.groups()
        .unsubscribe_from_group(pb::UnsubscribeFromGroupRequest { group_id, user_id })
        .await
        .unwrap()
        .into_inner()
        .changed
}

async fn participants(app: &AssignmentApp, group_id: i64) -> Vec<(i64, pb::ParticipantReason)> {
    let mut all = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = app
            .groups()
            .list_group_participants(pb::ListGroupParticipantsRequest {
                group_id,
                page_size: 1000,
                page_token,
            })
            .await
            .unwrap()
            .into_inner();
        all.extend(page.participants.iter().map(|p| (p.user_id, p.reason())));
        if page.next_page_token.is_empty() {
            return all;
        }
        page_token = page.next_page_token;
    }
}

/// (recipient, kind, update, message) of the notifications after the first
/// `skip`.
async fn told_after(
    app: &AssignmentApp,
    skip: usize,
) -> Vec<(i64, pb::NotificationKind, bool, String)> {
    app.all_notifications()
        .await
        .into_iter()
        .skip(skip)
        .map(|n| (n.recipient_user_id, n.kind(), n.update, n.message))
        .collect()
}

async fn act(app: &AssignmentApp, group_id: i64, what: &str, actor: i64) {
    let mut groups = app.groups();
    let changed = match what {
        "unassign" => {
            groups
                .unassign_group(pb::UnassignGroupRequest {
                    group_id,
                    acting_user_id: actor,
                    request_id: String::new(),
                })
                .await
                .unwrap()
                .into_inner()
                .result
        }
        "unresolve" => {
            groups
                .unresolve_group(pb::UnresolveGroupRequest {
                    group_id,
                    acting_user_id: actor,
                    request_id: String::new(),
                })
                .await
                .unwrap()
                .into_inner()
                .result
        }
        _ => unreachable!("{what}"),
    };
    assert!(changed.unwrap().changed, "{what}");
}

#[tokio::test]
async fn participants_are_told_of_assignment_and_status_changes_except_their_own() {
    use pb::NotificationKind as N;
    let db = TestDatabase::fresh().await;
    let app = AssignmentApp::spawn(db.url()).await;
    let t = team(&app).await;

    // Lee subscribes; a second time changes nothing.
    assert!(subscribe(&app, t.group, t.lee).await.unwrap());
    assert!(!subscribe(&app, t.group, t.lee).await.unwrap());

    // Kim assigns Jess: Jess is told she was assigned, Lee that the group he
    // follows has a new assignee; Kim acted and is told nothing. Jess now
    // follows the group too.
    app.assign(t.group, t.jess, t.kim).await;
    let told = told_after(&app, 0).await;
    assert_eq!(
        told.iter()
            .map(|(u, k, up, _)| (*u, *k, *up))
            .collect::<Vec<_>>(),
        vec![
            (t.jess, N::Assigned, false),
            (t.lee, N::AssigneeChanged, false)
        ]
    );
    assert_eq!(
        told[1].3,
        format!(
            "\u{201c}TypeError in checkout\u{201d} (group {}), which you follow, is now assigned to Jess.",
            t.group
        )
    );
    assert_eq!(
        participants(&app, t.group).await,
        vec![
            (t.jess, pb::ParticipantReason::Assignee),
            (t.lee, pb::ParticipantReason::Subscribed)
        ]
    );

    // Lee resolves it himself: only Jess (the assignee) is told.
    app.resolve(t.group, t.lee).await;
    let told = told_after(&app, 2).await;
    assert_eq!(
        told.iter()
            .map(|(u, k, up, _)| (*u, *k, *up))
            .collect::<Vec<_>>(),
        vec![(t.jess, N::Resolved, true)]
    );

    // Reassigned to Kim by nobody in particular: Jess (replaced) and Kim as
    // concerned, Lee as follower, on the thread he already has (an edit).
    app.assign(t.group, t.kim, 0).await;
    let told = told_after(&app, 3).await;
    assert_eq!(
        told.iter()
            .map(|(u, k, up, _)| (*u, *k, *up))
            .collect::<Vec<_>>(),
        vec![
            (t.jess, N::Unassigned, true),
            (t.kim, N::Assigned, false),
            (t.lee, N::AssigneeChanged, true)
        ]
    );
    assert!(
        told[2].3.ends_with("is now assigned to Kim."),
        "{}",
        told[2].3
    );

    // Lee unsubscribes; reopening tells Kim (assignee) and Jess (who still
    // follows: being unassigned does not unsubscribe), not Lee.
    assert!(unsubscribe(&app, t.group, t.lee).await);
    assert!(!unsubscribe(&app, t.group, t.lee).await);
    act(&app, t.group, "unresolve", 0).await;
    let told = told_after(&app, 6).await;
    assert_eq!(
        told.iter()
            .map(|(u, k, up, _)| (*u, *k, *up))
            .collect::<Vec<_>>(),
        vec![(t.kim, N::Unresolved, true), (t.jess, N::Unresolved, true)]
    );
    assert!(
        told[1].3.contains("which you follow, was reopened"),
        "{}",
        told[1].3
    );

    // Jess loses access to the project: she stays listed but is not told;
    // unassigning tells Kim, and nobody follows to be told "no assignee".
    app.directory()
        .revoke_project_access(pb::RevokeProjectAccessRequest {
            project_id: t.project,
            user_id: t.jess,
            request_id: String::new(),
        })
        .await
        .unwrap();
    act(&app, t.group, "unassign", 0).await;
    let told = told_after(&app, 8).await;
    assert_eq!(
        told.iter()
            .map(|(u, k, up, _)| (*u, *k, *up))
            .collect::<Vec<_>>(),
        vec![(t.kim, N::Unassigned, true)]
    );
    assert_eq!(
        participants(&app, t.group)
            .await
            .iter()
            .map(|p| p.0)
            .collect::<Vec<_>>(),
        vec![t.jess, t.kim]
    );

    // With Lee following again, an unassignment reads "no longer assigned".
    subscribe(&app, t.group, t.lee).await.unwrap();
    app.assign(t.group, t.kim, t.kim).await;
    act(&app, t.group, "unassign", t.kim).await;
    let told = told_after(&app, 9).await;
    assert_eq!(
        told.iter()
            .map(|(u, k, _, m)| (*u, *k, m.ends_with("is no longer assigned to anyone.")))
            .collect::<Vec<_>>(),
        vec![
            (t.lee, N::AssigneeChanged, false),
            (t.lee, N::AssigneeChanged, true)
        ]
    );
}

#[tokio::test]
async fn only_users_who_could_be_assigned_may_follow_and_bad_input_is_refused() {
    let db = TestDatabase::fresh().await;
    let app = AssignmentApp::spawn(db.url()).await;
    let t = team(&app).await;

    for (user, why) in [(t.olly, "no_project_access"), (t.ina, "inactive")] {
        let status = assert_error(
            subscribe(&app, t.group, user).await,
            Code::FailedPrecondition,
            None,
        );
        let info = status.get_details_error_info().unwrap();
        assert_eq!(info.reason, "PARTICIPANT_NOT_ELIGIBLE");
        assert_eq!(info.metadata["why"], why);
    }
    assert_error(subscribe(&app, t.group, 999).await, Code::NotFound, None);
    assert_error(subscribe(&app, 999, t.jess).await, Code::NotFound, None);
    assert_error(
        subscribe(&app, 0, -1).await,
        Code::InvalidArgument,
        Some("user_id"),
    );
    assert_error(
        app.groups()
            .list_group_participants(pb::ListGroupParticipantsRequest {
                group_id: t.group,
                page_size: -1,
                page_token: String::new(),
            })
            .await,
        Code::InvalidArgument,
        Some("page_size"),
    );
    // Nothing refused was written.
    assert!(participants(&app, t.group).await.is_empty());
}

#[tokio::test]
async fn a_group_has_at_most_1000_participants() {
    use sea_orm::ConnectionTrait as _;
    let db = TestDatabase::fresh().await;
    let app = AssignmentApp::spawn(db.url()).await;
    let t = team(&app).await;
    // 998 followers written directly (creating 998 users through the API
    // would only slow the test down); Jess makes 999, Kim 1000.
    let conn = sea_orm::Database::connect(service_runtime::database::connect_options(
        db.url().as_str(),
    ))
    .await
    .unwrap();
    let values: Vec<String> = (0..998)
        .map(|i| {
            format!(
                "({}, {}, 'subscribed', '2026-01-01T00:00:00Z')",
                t.group,
                100_000 + i
            )
        })
        .collect();
    conn.execute_unprepared(&format!(
        "INSERT INTO group_participants (group_id, user_id, reason, created_at) VALUES {}",
        values.join(", ")
    ))
    .await
    .unwrap();
    conn.close().await.unwrap();
    assert!(subscribe(&app, t.group, t.jess).await.unwrap());
    app.assign(t.group, t.kim, 0).await;
    let status = assert_error(
        subscribe(&app, t.group, t.lee).await,
        Code::FailedPrecondition,
        None,
    );
    let info = status.get_details_error_info().unwrap();
    assert_eq!(
        (info.reason.as_str(), info.metadata["limit"].as_str()),
        ("PARTICIPANT_LIMIT_REACHED", "1000")
    );
    // A new assignee of a full group is told as assignee, not added.
    app.assign(t.group, t.lee, 0).await;
    let listed = participants(&app, t.group).await;
    assert_eq!(listed.len(), 1000);
    assert!(!listed.iter().any(|p| p.0 == t.lee));
    let lee_told: Vec<pb::NotificationKind> = app
        .all_notifications()
        .await
        .iter()
        .filter(|n| n.recipient_user_id == t.lee)
        .map(|n| n.kind())
        .collect();
    assert_eq!(lee_told, vec![pb::NotificationKind::Assigned]);
}
