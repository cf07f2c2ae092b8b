//! Linking groups to Jira issues: tenant rules, at-most-once links, removal with
//! the last link, and moves that change the key.

use proto::assignment::v1 as pb;
use system_tests::fixtures::{assert_error, inbound_on};
use system_tests::{AssignmentApp, TestDatabase};
use tonic::Code;

const JIRA: &str = "acme-jira";

fn issue(key: &str, id: &str) -> Option<pb::ExternalIssueRef> {
    Some(pb::ExternalIssueRef {
        integration_id: JIRA.into(),
        key: key.into(),
        jira_issue_id: id.into(),
    })
}

fn link_request(org: i64, key: &str, groups: Vec<i64>) -> pb::LinkExternalIssueRequest {
    pb::LinkExternalIssueRequest {
        organization_id: org,
        issue: issue(key, ""),
        title: String::new(),
        url: String::new(),
        group_ids: groups,
        request_id: String::new(),
    }
}

#[tokio::test]
async fn links_need_an_installation_and_the_organizations_own_groups() {
    let db = TestDatabase::fresh().await;
    let app = AssignmentApp::spawn(db.url()).await;
    let acme = app.create_org("acme").await;
    let globex = app.create_org("globex").await;
    let acme_group = app
        .create_group(app.create_project(acme, "web").await, "a")
        .await;
    let globex_group = app
        .create_group(app.create_project(globex, "web").await, "b")
        .await;
    let mut links = app.external_issues();

    let not_installed = links
        .link_external_issue(link_request(acme, "APP-1", vec![acme_group]))
        .await;
    let status = assert_error(not_installed, Code::FailedPrecondition, None);
    assert!(status.message().contains("InstallIntegration"));

    app.install(acme, JIRA, inbound_on()).await;
    let foreign = links
        .link_external_issue(link_request(acme, "APP-1", vec![acme_group, globex_group]))
        .await;
    assert_error(foreign, Code::NotFound, None);
    let empty = links
        .link_external_issue(link_request(acme, "APP-1", vec![]))
        .await;
    assert_error(empty, Code::InvalidArgument, Some("group_ids"));
    let twice = links
        .link_external_issue(link_request(acme, "APP-1", vec![acme_group, acme_group]))
        .await;
    assert_error(twice, Code::InvalidArgument, Some("group_ids[1]"));

    // None of the refused links left anything behind.
    let listed = links
        .list_external_issues(pb::ListExternalIssuesRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(listed.external_issues.is_empty());
    assert!(app.group(acme_group).await.linked_issues.is_empty());
    app.stop().await;
}

#[tokio::test]
async fn a_group_is_linked_at_most_once_and_the_issue_goes_with_its_last_link() {
    let db = TestDatabase::fresh().await;
    let app = AssignmentApp::spawn(db.url()).await;
    let org = app.create_org("acme").await;
    let project = app.create_project(org, "web").await;
    let g1 = app.create_group(project, "one").await;
    let g2 = app.create_group(project, "two").await;
    app.install(org, JIRA, inbound_on()).await;
    let mut links = app.external_issues();

    let first = links
        .link_external_issue(link_request(org, "APP-1", vec![g1, g2]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.newly_linked_group_ids, vec![g1, g2]);
    let again = links
        .link_external_issue(link_request(org, "APP-1", vec![g1]))
        .await
        .unwrap()
        .into_inner();
    assert!(again.newly_linked_group_ids.is_empty());
    assert_eq!(again.external_issue.unwrap().group_ids, vec![g1, g2]);

    let partial = links
        .unlink_external_issue(pb::UnlinkExternalIssueRequest {
            organization_id: org,
            issue: issue("APP-1", ""),
            group_ids: vec![g1],
            request_id: String::new(),
            all: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(partial.external_issue.unwrap().group_ids, vec![g2]);
    // Unlinking every group takes an explicit `all`; no groups without it,
    // or groups with it, are refused.
    let nothing = links
        .unlink_external_issue(pb::UnlinkExternalIssueRequest {
            organization_id: org,
            issue: issue("APP-1", ""),
            group_ids: vec![],
            request_id: String::new(),
            all: false,
        })
        .await;
    assert_error(nothing, Code::InvalidArgument, Some("group_ids"));
    let both = links
        .unlink_external_issue(pb::UnlinkExternalIssueRequest {
            organization_id: org,
            issue: issue("APP-1", ""),
            group_ids: vec![g2],
            request_id: String::new(),
            all: true,
        })
        .await;
    assert_error(both, Code::InvalidArgument, Some("all"));
    let last = links
        .unlink_external_issue(pb::UnlinkExternalIssueRequest {
            organization_id: org,
            issue: issue("APP-1", ""),
            group_ids: vec![],
            request_id: String::new(),
            all: true,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(last.external_issue.is_none());
    assert_eq!(last.unlinked_group_ids, vec![g2]);
    let gone = links
        .get_external_issue(pb::GetExternalIssueRequest {
            organization_id: org,
            issue: issue("APP-1", ""),
        })
        .await;
    assert_error(gone, Code::NotFound, None);

    let kinds: Vec<_> = app.activities(g1).await.iter().map(|a| a.kind()).collect();
    assert_eq!(
        kinds,
        vec![pb::ActivityKind::Linked, pb::ActivityKind::Unlinked]
    );
    app.stop().await;
}

#[tokio::test]
async fn a_moved_issue_is_found_by_its_jira_id_under_its_new_key() {
    let db = TestDatabase::fresh().await;
    let app = AssignmentApp::spawn(db.url()).await;
    let org = app.create_org("acme").await;
    let project = app.create_project(org, "web").await;
    let group = app.create_group(project, "one").await;
    app.install(org, JIRA, inbound_on()).await;
    app.link(org, JIRA, "APP-123", "101", &[group]).await;
    let jess = app.create_user("Jess", &[("jess@sentry.io", true)]).await;
    app.grant(project, jess).await;
    let mut links = app.external_issues();

    let moved = links
        .move_external_issue(pb::MoveExternalIssueRequest {
            issue: issue("APP-123", "101"),
            new_key: "PLATFORM-45".into(),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(moved.external_issues.len(), 1);
    assert_eq!(moved.external_issues[0].key, "PLATFORM-45");

    let results = links
        .sync_assignee_inbound(pb::SyncAssigneeInboundRequest {
            issue: issue("PLATFORM-45", ""),
            assignee: Some(pb::sync_assignee_inbound_request::Assignee::Email(
                "jess@sentry.io".into(),
            )),
            provider_update_time: None,
            request_id: String::new(),
            source_integration_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .results;
    assert_eq!(results.len(), 1);
    assert_eq!(results[0].outcome(), pb::SyncOutcome::Assigned);
    assert_eq!(app.group(group).await.linked_issues[0].key, "PLATFORM-45");
    app.stop().await;
}
