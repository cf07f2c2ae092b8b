//! Setting the system up through the admin RPCs: what an operator with grpcurl
//! relies on (ids, pagination, errors that name the problem, idempotent creates).

use proto::assignment::v1 as pb;
use system_tests::fixtures::{assert_error, inbound_on};
use system_tests::{AssignmentApp, TestDatabase};
use tonic::Code;

#[tokio::test]
async fn organizations_are_created_read_and_listed_page_by_page() {
    let db = TestDatabase::fresh().await;
    let app = AssignmentApp::spawn(db.url()).await;
    let mut directory = app.directory();
    let mut ids = Vec::new();
    for slug in ["acme", "globex", "initech"] {
        ids.push(app.create_org(slug).await);
    }
    let got = directory
        .get_organization(pb::GetOrganizationRequest {
            organization_id: ids[1],
        })
        .await
        .unwrap()
        .into_inner()
        .organization
        .unwrap();
    assert_eq!((got.slug.as_str(), got.name.as_str()), ("globex", "globex"));

    let first = directory
        .list_organizations(pb::ListOrganizationsRequest {
            page_size: 2,
            page_token: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.organizations.len(), 2);
    assert!(!first.next_page_token.is_empty());
    let second = directory
        .list_organizations(pb::ListOrganizationsRequest {
            page_size: 2,
            page_token: first.next_page_token,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(second.organizations.len(), 1);
    assert_eq!(second.next_page_token, "");
    let listed: Vec<i64> = first
        .organizations
        .iter()
        .chain(&second.organizations)
        .map(|o| o.id)
        .collect();
    assert_eq!(listed, ids);
    app.stop().await;
}

#[tokio::test]
async fn duplicates_unknown_ids_and_bad_input_get_clear_errors_and_write_nothing() {
    let db = TestDatabase::fresh().await;
    let app = AssignmentApp::spawn(db.url()).await;
    let mut directory = app.directory();
    let org = app.create_org("acme").await;

    let duplicate = directory
        .create_organization(pb::CreateOrganizationRequest {
            slug: "acme".into(),
            name: String::new(),
            request_id: String::new(),
        })
        .await;
    let status = assert_error(duplicate, Code::AlreadyExists, None);
    assert!(status.message().contains("acme"));

    let missing = directory
        .get_organization(pb::GetOrganizationRequest {
            organization_id: 999,
        })
        .await;
    assert_error(missing, Code::NotFound, None);
    let zero = directory
        .get_organization(pb::GetOrganizationRequest { organization_id: 0 })
        .await;
    assert_error(zero, Code::InvalidArgument, Some("organization_id"));

    let orphan = directory
        .create_project(pb::CreateProjectRequest {
            organization_id: 999,
            slug: "web".into(),
            name: String::new(),
            request_id: String::new(),
        })
        .await;
    assert_error(orphan, Code::NotFound, None);

    let bad_user = directory
        .create_user(pb::CreateUserRequest {
            display_name: String::new(),
            emails: vec![pb::UserEmail {
                email: "nope".into(),
                verified: true,
            }],
            active: None,
            request_id: String::new(),
        })
        .await;
    let status = assert_error(bad_user, Code::InvalidArgument, Some("emails[0].email"));
    assert!(
        status.message().contains("display_name"),
        "every field is named: {status:?}"
    );
    let twice = directory
        .create_user(pb::CreateUserRequest {
            display_name: "Jess".into(),
            emails: vec![
                pb::UserEmail {
                    email: "jess@sentry.io".into(),
                    verified: true,
                },
                pb::UserEmail {
                    email: "JESS@sentry.io".into(),
                    verified: false,
                },
            ],
            active: None,
            request_id: String::new(),
        })
        .await;
    assert_error(twice, Code::InvalidArgument, Some("emails[1].email"));

    app.install(org, "acme-jira", inbound_on()).await;
    let again = directory
        .install_integration(pb::InstallIntegrationRequest {
            organization_id: org,
            integration_id: "acme-jira".into(),
            sync_settings: None,
            ..Default::default()
        })
        .await;
    assert_error(again, Code::AlreadyExists, None);

    // Nothing of the refused calls was written.
    let projects = directory
        .list_projects(pb::ListProjectsRequest {
            organization_id: org,
            page_size: 0,
            page_token: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(projects.projects.is_empty());
    let users = directory
        .list_users(pb::ListUsersRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(users.users.is_empty());
    let orgs = directory
        .list_organizations(pb::ListOrganizationsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(orgs.organizations.len(), 1);
    app.stop().await;
}

#[tokio::test]
async fn a_repeated_request_id_returns_the_first_result_once() {
    let db = TestDatabase::fresh().await;
    let app = AssignmentApp::spawn(db.url()).await;
    let mut directory = app.directory();
    let request = pb::CreateOrganizationRequest {
        slug: "acme".into(),
        name: "Acme".into(),
        request_id: "5f0c6a1e-create-acme".into(),
    };
    let first = directory
        .create_organization(request.clone())
        .await
        .unwrap()
        .into_inner();
    let second = directory
        .create_organization(request)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first, second);
    let orgs = directory
        .list_organizations(pb::ListOrganizationsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(orgs.organizations.len(), 1);
    app.stop().await;
}

#[tokio::test]
async fn users_can_be_updated_and_listed_by_organization() {
    let db = TestDatabase::fresh().await;
    let app = AssignmentApp::spawn(db.url()).await;
    let acme = app.create_org("acme").await;
    let globex = app.create_org("globex").await;
    let acme_web = app.create_project(acme, "web").await;
    let globex_api = app.create_project(globex, "api").await;
    let jess = app.create_user("Jess", &[("jess@sentry.io", false)]).await;
    let kim = app.create_user("Kim", &[("kim@sentry.io", true)]).await;
    app.grant(acme_web, jess).await;
    app.grant(globex_api, kim).await;

    let mut directory = app.directory();
    let updated = directory
        .update_user(pb::UpdateUserRequest {
            user_id: jess,
            display_name: None,
            active: Some(false),
            emails: Some(pb::UserEmailList {
                emails: vec![pb::UserEmail {
                    email: "jess@sentry.io".into(),
                    verified: true,
                }],
            }),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .user
        .unwrap();
    assert_eq!(updated.display_name, "Jess");
    assert!(!updated.active);
    assert!(updated.emails[0].verified);

    let in_acme = directory
        .list_users(pb::ListUsersRequest {
            organization_id: acme,
            page_size: 0,
            page_token: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        in_acme.users.iter().map(|u| u.id).collect::<Vec<_>>(),
        vec![jess]
    );
    let members = directory
        .list_project_members(pb::ListProjectMembersRequest {
            project_id: globex_api,
            page_size: 0,
            page_token: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        members.users.iter().map(|u| u.id).collect::<Vec<_>>(),
        vec![kim]
    );

    // Granting twice is fine; revoking reports whether there was access.
    let granted = directory
        .grant_project_access(pb::GrantProjectAccessRequest {
            project_id: acme_web,
            user_id: jess,
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!granted.granted);
    let revoked = directory
        .revoke_project_access(pb::RevokeProjectAccessRequest {
            project_id: acme_web,
            user_id: jess,
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(revoked.revoked);
    app.stop().await;
}

#[tokio::test]
async fn installations_are_updated_and_removed() {
    let db = TestDatabase::fresh().await;
    let app = AssignmentApp::spawn(db.url()).await;
    let org = app.create_org("acme").await;
    app.install(org, "acme-jira", inbound_on()).await;
    let mut directory = app.directory();
    let updated = directory
        .update_installation(pb::UpdateInstallationRequest {
            organization_id: org,
            integration_id: "acme-jira".into(),
            sync_settings: Some(pb::SyncSettings {
                sync_status_reverse: true,
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .installation
        .unwrap();
    let settings = updated.sync_settings.unwrap();
    assert!(!settings.sync_reverse_assignment && settings.sync_status_reverse);
    let missing_settings = directory
        .update_installation(pb::UpdateInstallationRequest {
            organization_id: org,
            integration_id: "acme-jira".into(),
            sync_settings: None,
            request_id: String::new(),
        })
        .await;
    assert_error(
        missing_settings,
        Code::InvalidArgument,
        Some("sync_settings"),
    );

    let listed = directory
        .list_installations(pb::ListInstallationsRequest {
            integration_id: "acme-jira".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.installations.len(), 1);
    directory
        .uninstall_integration(pb::UninstallIntegrationRequest {
            organization_id: org,
            integration_id: "acme-jira".into(),
            request_id: String::new(),
        })
        .await
        .unwrap();
    let gone = directory
        .get_installation(pb::GetInstallationRequest {
            organization_id: org,
            integration_id: "acme-jira".into(),
        })
        .await;
    assert_error(gone, Code::NotFound, None);
    app.stop().await;
}

#[tokio::test]
async fn groups_are_listed_by_project_assignee_and_status_and_tokens_are_bound_to_filters() {
    let db = TestDatabase::fresh().await;
    let app = AssignmentApp::spawn(db.url()).await;
    let org = app.create_org("acme").await;
    let web = app.create_project(org, "web").await;
    let api = app.create_project(org, "api").await;
    let g1 = app.create_group(web, "one").await;
    let g2 = app.create_group(web, "two").await;
    let g3 = app.create_group(api, "three").await;
    app.install(org, "acme-jira", inbound_on()).await;
    app.link(org, "acme-jira", "APP-1", "", &[g1]).await;
    let jess = app.create_user("Jess", &[("jess@sentry.io", true)]).await;
    app.grant(web, jess).await;
    app.external_issues()
        .sync_assignee_inbound(pb::SyncAssigneeInboundRequest {
            issue: Some(pb::ExternalIssueRef {
                integration_id: "acme-jira".into(),
                key: "APP-1".into(),
                jira_issue_id: String::new(),
            }),
            assignee: Some(pb::sync_assignee_inbound_request::Assignee::Email(
                "jess@sentry.io".into(),
            )),
            provider_update_time: None,
            request_id: String::new(),
            source_integration_id: String::new(),
        })
        .await
        .unwrap();

    let mut groups = app.groups();
    let ids = |r: pb::ListGroupsResponse| r.groups.iter().map(|g| g.id).collect::<Vec<_>>();
    let by_project = groups
        .list_groups(pb::ListGroupsRequest {
            project_id: web,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ids(by_project), vec![g1, g2]);
    let assigned = groups
        .list_groups(pb::ListGroupsRequest {
            assignee_filter: Some(pb::list_groups_request::AssigneeFilter::AssigneeUserId(
                jess,
            )),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ids(assigned), vec![g1]);
    let unassigned = groups
        .list_groups(pb::ListGroupsRequest {
            assignee_filter: Some(pb::list_groups_request::AssigneeFilter::Unassigned(true)),
            status: pb::GroupStatus::Unresolved.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ids(unassigned), vec![g2, g3]);
    let group = app.group(g1).await;
    assert_eq!(group.linked_issues[0].key, "APP-1");

    let page = groups
        .list_groups(pb::ListGroupsRequest {
            organization_id: org,
            page_size: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let misused = groups
        .list_groups(pb::ListGroupsRequest {
            project_id: api,
            page_size: 1,
            page_token: page.next_page_token,
            ..Default::default()
        })
        .await;
    assert_error(misused, Code::InvalidArgument, Some("page_token"));
    let garbage = groups
        .list_groups(pb::ListGroupsRequest {
            page_token: "definitely-not-a-token".into(),
            ..Default::default()
        })
        .await;
    assert_error(garbage, Code::InvalidArgument, Some("page_token"));
    app.stop().await;
}
