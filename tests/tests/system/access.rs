//! Scoped credentials (issue 14, finding 5; docs/DESIGN.md "Threat model"):
//! every RPC of both services has an access rule, checked here against a
//! literal matrix; an organization's token sees and changes only its own
//! organization's data (another's is NOT_FOUND); installing an integration
//! needs its install secret, so one organization cannot receive another's
//! Jira changes.

use proto::assignment::v1 as assignment;
use proto::tracker::v1 as tracker;
use service_runtime::secret::Secret;
use system_tests::fixtures::{assert_error, inbound_on};
use system_tests::pair::{API_TOKEN, WEBHOOK_SECRET};
use system_tests::{AssignmentApp, JiraSim, TestDatabase, TrackerApp, raw};
use tonic::Code;
use tonic_types::StatusExt as _;

const JIRA: &str = "acme-jira";
const ADMIN: &str = "admin-token-0a1b2c3d4e5f6071";
const SERVICE: &str = "service-token-9f8e7d6c5b4a3928";
const ACME: &str = "acme-token-5d4c3b2a19087f6e";
const GLOBEX: &str = "globex-token-1a2b3c4d5e6f7081";
const INSTALL_SECRET: &str = "install-secret-for-acme-jira";

/// The expected rules, written out independently of the services' tables:
/// `A` admin, `S` service, `O` organization. A new RPC fails
/// [`the_matrix_names_every_rpc_of_both_contracts`] until it is added here.
const MATRIX: &[(&str, &str)] = &[
    ("/assignment.v1.DirectoryService/CreateOrganization", "A"),
    ("/assignment.v1.DirectoryService/GetOrganization", "AO"),
    ("/assignment.v1.DirectoryService/ListOrganizations", "AO"),
    ("/assignment.v1.DirectoryService/CreateProject", "AO"),
    ("/assignment.v1.DirectoryService/GetProject", "AO"),
    ("/assignment.v1.DirectoryService/ListProjects", "AO"),
    ("/assignment.v1.DirectoryService/CreateUser", "AO"),
    ("/assignment.v1.DirectoryService/GetUser", "AO"),
    ("/assignment.v1.DirectoryService/ListUsers", "AO"),
    ("/assignment.v1.DirectoryService/UpdateUser", "AO"),
    ("/assignment.v1.DirectoryService/GrantProjectAccess", "AO"),
    ("/assignment.v1.DirectoryService/RevokeProjectAccess", "AO"),
    ("/assignment.v1.DirectoryService/ListProjectMembers", "AO"),
    ("/assignment.v1.DirectoryService/InstallIntegration", "AO"),
    ("/assignment.v1.DirectoryService/SetInstallSecret", "A"),
    ("/assignment.v1.DirectoryService/GetInstallation", "ASO"),
    ("/assignment.v1.DirectoryService/ListInstallations", "AO"),
    ("/assignment.v1.DirectoryService/UpdateInstallation", "AO"),
    ("/assignment.v1.DirectoryService/UninstallIntegration", "AO"),
    ("/assignment.v1.GroupService/CreateGroup", "AO"),
    ("/assignment.v1.GroupService/GetGroup", "AO"),
    ("/assignment.v1.GroupService/ListGroups", "AO"),
    ("/assignment.v1.GroupService/ListActivities", "AO"),
    ("/assignment.v1.GroupService/AssignGroup", "AO"),
    ("/assignment.v1.GroupService/UnassignGroup", "AO"),
    ("/assignment.v1.GroupService/ResolveGroup", "AO"),
    ("/assignment.v1.GroupService/UnresolveGroup", "AO"),
    ("/assignment.v1.GroupService/SubscribeToGroup", "AO"),
    ("/assignment.v1.GroupService/UnsubscribeFromGroup", "AO"),
    ("/assignment.v1.GroupService/ListGroupParticipants", "AO"),
    (
        "/assignment.v1.ExternalIssueService/LinkExternalIssue",
        "ASO",
    ),
    (
        "/assignment.v1.ExternalIssueService/UnlinkExternalIssue",
        "ASO",
    ),
    (
        "/assignment.v1.ExternalIssueService/GetExternalIssue",
        "ASO",
    ),
    (
        "/assignment.v1.ExternalIssueService/ListExternalIssues",
        "AO",
    ),
    (
        "/assignment.v1.ExternalIssueService/MoveExternalIssue",
        "AS",
    ),
    (
        "/assignment.v1.ExternalIssueService/SyncAssigneeInbound",
        "AS",
    ),
    (
        "/assignment.v1.ExternalIssueService/SyncAssigneeInboundBatch",
        "AS",
    ),
    (
        "/assignment.v1.ExternalIssueService/SyncStatusInbound",
        "AS",
    ),
    ("/assignment.v1.ExternalIssueService/ResetWatermarks", "A"),
    (
        "/assignment.v1.ExternalIssueService/DeleteExternalIssue",
        "AS",
    ),
    (
        "/assignment.v1.ExternalIssueService/WatchOutboundSyncs",
        "AS",
    ),
    ("/assignment.v1.NotificationService/Subscribe", "ASO"),
    (
        "/assignment.v1.NotificationService/AcknowledgeNotifications",
        "AS",
    ),
    ("/assignment.v1.NotificationService/GetSubscriber", "AS"),
    ("/assignment.v1.NotificationService/ListSubscribers", "AS"),
    ("/assignment.v1.NotificationService/DeleteSubscriber", "AS"),
    ("/tracker.v1.TrackerService/CreateIntegration", "A"),
    ("/tracker.v1.TrackerService/UpdateIntegration", "A"),
    ("/tracker.v1.TrackerService/GetIntegration", "AO"),
    ("/tracker.v1.TrackerService/ListIntegrations", "A"),
    ("/tracker.v1.TrackerService/GetCreateIssueConfig", "AO"),
    ("/tracker.v1.TrackerService/SearchJira", "AO"),
    ("/tracker.v1.TrackerService/CreateIssue", "AO"),
    ("/tracker.v1.TrackerService/GetIssueCreation", "AO"),
    ("/tracker.v1.TrackerService/GetLinkIssueConfig", "AO"),
    ("/tracker.v1.TrackerService/LinkIssue", "AO"),
    ("/tracker.v1.TrackerService/ListWebhookDeliveries", "A"),
    ("/tracker.v1.TrackerService/GetWebhookDelivery", "A"),
    ("/tracker.v1.TrackerService/RetryWebhookDelivery", "A"),
    ("/tracker.v1.TrackerService/GetStatusSyncConfig", "AO"),
    ("/tracker.v1.TrackerService/ListJiraProjectStatuses", "AO"),
    ("/tracker.v1.TrackerService/SetStatusMappings", "AO"),
    ("/tracker.v1.TrackerService/ListOutboundSyncs", "A"),
    ("/tracker.v1.TrackerService/GetOutboundSync", "A"),
    ("/tracker.v1.TrackerService/RetryOutboundSync", "A"),
];

/// Both services with scoped tokens: organizations 1 (acme) and 2 (globex)
/// exist, acme installed the Jira integration and its group is linked.
struct Scoped {
    assignment: AssignmentApp,
    tracker: TrackerApp,
    jira: JiraSim,
    acme: Tenant,
    globex: Tenant,
    _dbs: (TestDatabase, TestDatabase),
}

/// One organization's set-up: its project, its group, its member.
struct Tenant {
    org: i64,
    project: i64,
    group: i64,
    member: i64,
}

fn tokens(entries: &[(&str, &str)]) -> Vec<Secret<String>> {
    entries
        .iter()
        .map(|(label, token)| Secret::new(format!("{label}={token}")))
        .collect()
}

impl Scoped {
    async fn start() -> Self {
        let assignment_db = TestDatabase::fresh().await;
        let tracker_db = TestDatabase::fresh().await;
        let jira = JiraSim::start().await;
        let mut config = AssignmentApp::config(assignment_db.url());
        config.grpc.auth_tokens = tokens(&[
            ("ops:admin", ADMIN),
            ("tracker:service", SERVICE),
            ("acme:org:1", ACME),
            ("globex:org:2", GLOBEX),
        ]);
        let assignment = AssignmentApp::spawn_with(config).await;
        let mut config = tracker_service::Config::for_tests(
            tracker_db.url(),
            format!("http://{}", assignment.grpc_addr),
        );
        config.assignment_token = Some(Secret::new(SERVICE.into()));
        config.grpc.auth_tokens = tokens(&[
            ("ops:admin", ADMIN),
            ("mailer:service", SERVICE),
            ("acme:org:1", ACME),
            ("globex:org:2", GLOBEX),
        ]);
        let tracker = TrackerApp::spawn_with(config).await;

        let admin = assignment.as_token(ADMIN);
        let mut tenants = Vec::new();
        for (slug, email) in [("acme", "jess@sentry.io"), ("globex", "gail@globex.io")] {
            let org = admin.create_org(slug).await;
            let project = admin.create_project(org, "web").await;
            let group = admin.create_group(project, &format!("{slug} error")).await;
            let member = admin.create_user(slug, &[(email, true)]).await;
            admin.grant(project, member).await;
            tenants.push(Tenant {
                org,
                project,
                group,
                member,
            });
        }
        let globex = tenants.pop().unwrap();
        let acme = tenants.pop().unwrap();
        assert_eq!(
            (acme.org, globex.org),
            (1, 2),
            "the tokens name organizations 1 and 2"
        );
        tracker
            .as_token(ADMIN)
            .tracker()
            .create_integration(tracker::CreateIntegrationRequest {
                integration_id: JIRA.into(),
                base_url: jira.base_url(),
                credentials: Some(tracker::Credentials {
                    credential: Some(tracker::credentials::Credential::ApiToken(
                        tracker::ApiTokenCredential {
                            account_email: "bot@example.com".into(),
                            api_token: API_TOKEN.into(),
                        },
                    )),
                }),
                webhook_secret: WEBHOOK_SECRET.into(),
                ..Default::default()
            })
            .await
            .unwrap();
        admin.install(acme.org, JIRA, inbound_on()).await;
        admin
            .link(acme.org, JIRA, "APP-123", "101", &[acme.group])
            .await;
        Self {
            assignment,
            tracker,
            jira,
            acme,
            globex,
            _dbs: (assignment_db, tracker_db),
        }
    }
}

fn reason(status: &tonic::Status) -> String {
    status
        .get_details_error_info()
        .map(|i| i.reason)
        .unwrap_or_default()
}

/// Asserts a NOT_FOUND, as for a resource that does not exist.
fn not_found<T: std::fmt::Debug>(result: Result<T, tonic::Status>) {
    let status = assert_error(result, Code::NotFound, None);
    assert_eq!(reason(&status), "NOT_FOUND", "{status:?}");
}

#[test]
fn the_matrix_names_every_rpc_of_both_contracts() {
    let mut served: Vec<String> = proto::method_paths()
        .into_iter()
        .filter(|p| p.starts_with("/assignment.v1.") || p.starts_with("/tracker.v1."))
        .collect();
    let mut listed: Vec<String> = MATRIX.iter().map(|(p, _)| (*p).to_owned()).collect();
    served.sort();
    listed.sort();
    assert_eq!(served, listed);
}

/// Every RPC of both services, called by every role with an empty request:
/// the roles the matrix omits are refused by the gate (PERMISSION_DENIED,
/// ROLE_FORBIDDEN) before the handler runs; the others reach the handler
/// (which may well find the empty request invalid).
#[tokio::test]
async fn every_role_may_call_exactly_the_rpcs_its_rule_lists() {
    let s = Scoped::start().await;
    let mut wrong = Vec::new();
    for (path, allowed) in MATRIX {
        let channel = if path.starts_with("/tracker.v1.") {
            s.tracker.channel()
        } else {
            s.assignment.channel()
        };
        for (letter, token) in [('A', ADMIN), ('S', SERVICE), ('O', GLOBEX)] {
            let streaming = path.ends_with("/Subscribe") || path.ends_with("/WatchOutboundSyncs");
            let result = if streaming {
                raw::open_stream(channel.clone(), path, Vec::new(), Some(token)).await
            } else {
                raw::unary(channel.clone(), path, Vec::new(), Some(token))
                    .await
                    .map(drop)
            };
            let forbidden = matches!(&result, Err(status)
                if status.code() == Code::PermissionDenied && reason(status) == "ROLE_FORBIDDEN");
            if forbidden == allowed.contains(letter) {
                wrong.push(format!("{path} as {letter}: {result:?}"));
            }
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

#[tokio::test]
async fn an_organization_sees_nothing_of_another() {
    let s = Scoped::start().await;
    let (acme, globex) = (&s.acme, &s.globex);
    let api = s.assignment.as_token(GLOBEX);

    let mut directory = api.directory();
    not_found(
        directory
            .get_organization(assignment::GetOrganizationRequest {
                organization_id: acme.org,
            })
            .await,
    );
    let organizations = directory
        .list_organizations(assignment::ListOrganizationsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .organizations;
    assert_eq!(
        organizations.iter().map(|o| o.id).collect::<Vec<_>>(),
        vec![globex.org]
    );
    not_found(
        directory
            .get_project(assignment::GetProjectRequest {
                project_id: acme.project,
            })
            .await,
    );
    not_found(
        directory
            .list_projects(assignment::ListProjectsRequest {
                organization_id: acme.org,
                ..Default::default()
            })
            .await,
    );
    not_found(
        directory
            .create_project(assignment::CreateProjectRequest {
                organization_id: acme.org,
                slug: "intruder".into(),
                ..Default::default()
            })
            .await,
    );
    not_found(
        directory
            .get_user(assignment::GetUserRequest {
                user_id: acme.member,
            })
            .await,
    );
    // Every user listed is one of globex's: no other organization's e-mail.
    let users = directory
        .list_users(assignment::ListUsersRequest::default())
        .await
        .unwrap()
        .into_inner()
        .users;
    assert_eq!(
        users.iter().map(|u| u.id).collect::<Vec<_>>(),
        vec![globex.member]
    );
    not_found(
        directory
            .list_users(assignment::ListUsersRequest {
                organization_id: acme.org,
                ..Default::default()
            })
            .await,
    );
    not_found(
        directory
            .grant_project_access(assignment::GrantProjectAccessRequest {
                project_id: acme.project,
                user_id: globex.member,
                ..Default::default()
            })
            .await,
    );
    not_found(
        directory
            .list_project_members(assignment::ListProjectMembersRequest {
                project_id: acme.project,
                ..Default::default()
            })
            .await,
    );
    not_found(
        directory
            .get_installation(assignment::GetInstallationRequest {
                organization_id: acme.org,
                integration_id: JIRA.into(),
            })
            .await,
    );
    let installations = directory
        .list_installations(assignment::ListInstallationsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .installations;
    assert!(installations.is_empty(), "{installations:?}");

    let mut groups = api.groups();
    not_found(
        groups
            .get_group(assignment::GetGroupRequest {
                group_id: acme.group,
            })
            .await,
    );
    not_found(
        groups
            .list_activities(assignment::ListActivitiesRequest {
                group_id: acme.group,
                ..Default::default()
            })
            .await,
    );
    not_found(
        groups
            .list_group_participants(assignment::ListGroupParticipantsRequest {
                group_id: acme.group,
                ..Default::default()
            })
            .await,
    );
    // Neither following another's group, nor making another's user follow
    // one's own.
    for (group_id, user_id) in [(acme.group, globex.member), (globex.group, acme.member)] {
        not_found(
            groups
                .subscribe_to_group(assignment::SubscribeToGroupRequest { group_id, user_id })
                .await,
        );
        not_found(
            groups
                .unsubscribe_from_group(assignment::UnsubscribeFromGroupRequest {
                    group_id,
                    user_id,
                })
                .await,
        );
    }
    not_found(
        groups
            .create_group(assignment::CreateGroupRequest {
                project_id: acme.project,
                title: "planted".into(),
                request_id: String::new(),
            })
            .await,
    );
    not_found(
        groups
            .list_groups(assignment::ListGroupsRequest {
                organization_id: acme.org,
                ..Default::default()
            })
            .await,
    );
    let listed = groups
        .list_groups(assignment::ListGroupsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .groups;
    assert_eq!(
        listed.iter().map(|g| g.id).collect::<Vec<_>>(),
        vec![globex.group]
    );

    let mut issues = api.external_issues();
    let app_123 = || {
        Some(assignment::ExternalIssueRef {
            integration_id: JIRA.into(),
            key: "APP-123".into(),
            jira_issue_id: "101".into(),
        })
    };
    not_found(
        issues
            .get_external_issue(assignment::GetExternalIssueRequest {
                organization_id: acme.org,
                issue: app_123(),
            })
            .await,
    );
    not_found(
        issues
            .unlink_external_issue(assignment::UnlinkExternalIssueRequest {
                organization_id: acme.org,
                issue: app_123(),
                all: true,
                ..Default::default()
            })
            .await,
    );
    let records = issues
        .list_external_issues(assignment::ListExternalIssuesRequest::default())
        .await
        .unwrap()
        .into_inner()
        .external_issues;
    assert!(records.is_empty(), "{records:?}");

    // The stream: another organization's filter is NOT_FOUND; a durable
    // cursor is the services' own.
    let mut notifications = api.notifications();
    not_found(
        notifications
            .subscribe(assignment::SubscribeRequest {
                filter: Some(assignment::NotificationFilter {
                    organization_ids: vec![acme.org],
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await,
    );
    let durable = notifications
        .subscribe(assignment::SubscribeRequest {
            start: Some(assignment::subscribe_request::Start::SubscriberName(
                "mailer".into(),
            )),
            ..Default::default()
        })
        .await;
    let status = assert_error(durable.map(drop), Code::PermissionDenied, None);
    assert_eq!(reason(&status), "ROLE_FORBIDDEN");

    // Its own data it sees, and acme's link stayed.
    api.group(globex.group).await;
    let acme_group = s.assignment.as_token(ACME).group(acme.group).await;
    assert_eq!(acme_group.linked_issues.len(), 1);
}

#[tokio::test]
async fn an_organization_changes_only_the_users_it_created() {
    let s = Scoped::start().await;
    let api = s.assignment.as_token(GLOBEX);
    // Gail was created by an operator and shares globex's project: visible,
    // not globex's to change.
    let refused = api
        .directory()
        .update_user(assignment::UpdateUserRequest {
            user_id: s.globex.member,
            display_name: Some("Not Gail".into()),
            ..Default::default()
        })
        .await;
    let status = assert_error(refused.map(drop), Code::PermissionDenied, None);
    assert_eq!(reason(&status), "ROLE_FORBIDDEN");
    let own = api.create_user("Gus", &[("gus@globex.io", true)]).await;
    let user = api
        .directory()
        .update_user(assignment::UpdateUserRequest {
            user_id: own,
            display_name: Some("Gustav".into()),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .user
        .unwrap();
    assert_eq!(user.display_name, "Gustav");
    assert_eq!(user.owner_organization_id, s.globex.org);
    // Acme does not see globex's user.
    let hidden = s
        .assignment
        .as_token(ACME)
        .directory()
        .get_user(assignment::GetUserRequest { user_id: own })
        .await;
    assert_error(hidden.map(drop), Code::NotFound, None);
}

#[tokio::test]
async fn two_organizations_using_the_same_request_id_get_their_own_results() {
    let s = Scoped::start().await;
    let create = |project_id: i64, title: &str| assignment::CreateGroupRequest {
        project_id,
        title: title.into(),
        request_id: "create-group-1".into(),
    };
    let acme = s
        .assignment
        .as_token(ACME)
        .groups()
        .create_group(create(s.acme.project, "acme's"))
        .await
        .unwrap()
        .into_inner()
        .group
        .unwrap();
    let globex = s
        .assignment
        .as_token(GLOBEX)
        .groups()
        .create_group(create(s.globex.project, "globex's"))
        .await
        .unwrap()
        .into_inner()
        .group
        .unwrap();
    assert_ne!(acme.id, globex.id);
    assert_eq!(globex.organization_id, s.globex.org);
    assert_eq!(globex.title, "globex's");
}

/// The probe's attack: globex installs acme's integration and links its own
/// group to acme's issue, so acme's webhooks change globex's group. Without
/// the install secret it cannot.
#[tokio::test]
async fn installing_another_organizations_integration_needs_its_install_secret() {
    let s = Scoped::start().await;
    let globex = s.assignment.as_token(GLOBEX);
    let install = |secret: &str| assignment::InstallIntegrationRequest {
        organization_id: s.globex.org,
        integration_id: JIRA.into(),
        sync_settings: Some(inbound_on()),
        install_secret: secret.into(),
        ..Default::default()
    };
    for secret in ["", "guessed-secret-0000000000"] {
        let refused = globex
            .directory()
            .install_integration(install(secret))
            .await;
        let status = assert_error(refused.map(drop), Code::PermissionDenied, None);
        assert_eq!(reason(&status), "INSTALL_NOT_AUTHORIZED");
    }
    let link = globex
        .external_issues()
        .link_external_issue(assignment::LinkExternalIssueRequest {
            organization_id: s.globex.org,
            issue: Some(assignment::ExternalIssueRef {
                integration_id: JIRA.into(),
                key: "APP-123".into(),
                jira_issue_id: "101".into(),
            }),
            title: "hijack".into(),
            url: "https://example.atlassian.net/browse/APP-123".into(),
            group_ids: vec![s.globex.group],
            request_id: String::new(),
        })
        .await;
    assert_error(link.map(drop), Code::FailedPrecondition, None);

    // Acme's signed webhook assigns acme's group only.
    let body = jira_sim::fixture("edit_issue_assignee_payload.json");
    let (status, json) = s.tracker.post_webhook(JIRA, &body, Some("acme-1")).await;
    assert_eq!(status, 200, "{json}");
    let id = json["delivery_id"].as_i64().unwrap();
    let delivery = s.tracker.as_token(ADMIN).settled(id).await;
    assert_eq!(delivery.state(), tracker::DeliveryState::Delivered);
    let admin = s.assignment.as_token(ADMIN);
    assert!(admin.group(s.acme.group).await.assignee_user_id.is_some());
    let untouched = admin.group(s.globex.group).await;
    assert_eq!(untouched.assignee_user_id, None);
    assert!(untouched.linked_issues.is_empty());
    assert!(admin.activities(s.globex.group).await.is_empty());

    // With the secret an operator shared, the install succeeds; the secret is
    // never returned.
    admin
        .directory()
        .set_install_secret(assignment::SetInstallSecretRequest {
            integration_id: JIRA.into(),
            install_secret: INSTALL_SECRET.into(),
            request_id: String::new(),
        })
        .await
        .unwrap();
    let installed = globex
        .directory()
        .install_integration(install(INSTALL_SECRET))
        .await
        .unwrap()
        .into_inner();
    assert!(!format!("{installed:?}").contains(INSTALL_SECRET));
}

#[tokio::test]
async fn an_organization_uses_only_integrations_it_installed_and_its_own_creations() {
    let s = Scoped::start().await;
    let get = || tracker::GetIntegrationRequest {
        integration_id: JIRA.into(),
    };
    let acme = s.tracker.as_token(ACME);
    let globex = s.tracker.as_token(GLOBEX);
    acme.tracker().get_integration(get()).await.unwrap();
    assert_error(
        globex.tracker().get_integration(get()).await.map(drop),
        Code::NotFound,
        None,
    );
    assert_error(
        globex
            .tracker()
            .get_create_issue_config(tracker::GetCreateIssueConfigRequest {
                integration_id: JIRA.into(),
                ..Default::default()
            })
            .await
            .map(drop),
        Code::NotFound,
        None,
    );
    let create = |org: i64, group: i64| tracker::CreateIssueRequest {
        integration_id: JIRA.into(),
        organization_id: org,
        group_ids: vec![group],
        project_id: "10000".into(),
        issue_type_id: "1".into(),
        title: "scoped".into(),
        request_id: "create-1".into(),
        ..Default::default()
    };
    // Acme acting for globex's organization: NOT_FOUND, nothing sent to Jira.
    assert_error(
        acme.tracker()
            .create_issue(create(s.globex.org, s.globex.group))
            .await
            .map(drop),
        Code::NotFound,
        None,
    );
    assert!(
        s.jira
            .requests_to(axum::http::Method::POST, "/rest/api/2/issue")
            .is_empty()
    );
    let created = acme
        .tracker()
        .create_issue(create(s.acme.org, s.acme.group))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(created.link_state(), tracker::LinkState::Linked);
    let lookup = || tracker::GetIssueCreationRequest {
        request_id: "create-1".into(),
    };
    let found = acme
        .tracker()
        .get_issue_creation(lookup())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(found.organization_id, s.acme.org);
    assert_error(
        globex
            .tracker()
            .get_issue_creation(lookup())
            .await
            .map(drop),
        Code::NotFound,
        None,
    );
}
