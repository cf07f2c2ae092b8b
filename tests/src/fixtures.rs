//! Setting up tenants through the public API, as an operator would with grpcurl.

use proto::assignment::v1 as pb;
use tokio_stream::StreamExt as _;
use tonic::Code;

use crate::apps::AssignmentApi;

/// Sync settings with everything inbound on (outbound off).
pub fn inbound_on() -> pb::SyncSettings {
    pb::SyncSettings {
        sync_reverse_assignment: true,
        sync_status_reverse: true,
        sync_forward_assignment: false,
        sync_status_forward: false,
    }
}

/// Sync settings with everything on, inbound and outbound.
pub fn two_way() -> pb::SyncSettings {
    pb::SyncSettings {
        sync_reverse_assignment: true,
        sync_status_reverse: true,
        sync_forward_assignment: true,
        sync_status_forward: true,
    }
}

/// Sync settings with everything off.
pub fn all_off() -> pb::SyncSettings {
    pb::SyncSettings::default()
}

impl AssignmentApi {
    /// Creates an organization; returns its id.
    pub async fn create_org(&self, slug: &str) -> i64 {
        self.directory()
            .create_organization(pb::CreateOrganizationRequest {
                slug: slug.into(),
                name: String::new(),
                request_id: String::new(),
            })
            .await
            .unwrap()
            .into_inner()
            .organization
            .unwrap()
            .id
    }

    /// Creates a project; returns its id.
    pub async fn create_project(&self, organization_id: i64, slug: &str) -> i64 {
        self.directory()
            .create_project(pb::CreateProjectRequest {
                organization_id,
                slug: slug.into(),
                name: String::new(),
                request_id: String::new(),
            })
            .await
            .unwrap()
            .into_inner()
            .project
            .unwrap()
            .id
    }

    /// Creates an active user with `(address, verified)` pairs; returns its id.
    pub async fn create_user(&self, name: &str, emails: &[(&str, bool)]) -> i64 {
        self.create_user_with(name, emails, true).await
    }

    /// Creates a user; returns its id.
    pub async fn create_user_with(&self, name: &str, emails: &[(&str, bool)], active: bool) -> i64 {
        self.directory()
            .create_user(pb::CreateUserRequest {
                display_name: name.into(),
                emails: emails
                    .iter()
                    .map(|(email, verified)| pb::UserEmail {
                        email: (*email).into(),
                        verified: *verified,
                    })
                    .collect(),
                active: Some(active),
                request_id: String::new(),
            })
            .await
            .unwrap()
            .into_inner()
            .user
            .unwrap()
            .id
    }

    /// Gives `user_id` access to `project_id`.
    pub async fn grant(&self, project_id: i64, user_id: i64) {
        self.directory()
            .grant_project_access(pb::GrantProjectAccessRequest {
                project_id,
                user_id,
                request_id: String::new(),
            })
            .await
            .unwrap();
    }

    /// Creates a group; returns its id.
    pub async fn create_group(&self, project_id: i64, title: &str) -> i64 {
        self.groups()
            .create_group(pb::CreateGroupRequest {
                project_id,
                title: title.into(),
                request_id: String::new(),
            })
            .await
            .unwrap()
            .into_inner()
            .group
            .unwrap()
            .id
    }

    /// Installs `integration_id` in an organization.
    pub async fn install(
        &self,
        organization_id: i64,
        integration_id: &str,
        settings: pb::SyncSettings,
    ) {
        self.directory()
            .install_integration(pb::InstallIntegrationRequest {
                organization_id,
                integration_id: integration_id.into(),
                sync_settings: Some(settings),
                request_id: String::new(),
                install_secret: String::new(),
            })
            .await
            .unwrap();
    }

    /// Links groups of an organization to a Jira issue.
    pub async fn link(
        &self,
        organization_id: i64,
        integration_id: &str,
        key: &str,
        jira_issue_id: &str,
        group_ids: &[i64],
    ) -> pb::ExternalIssue {
        self.external_issues()
            .link_external_issue(pb::LinkExternalIssueRequest {
                organization_id,
                issue: Some(pb::ExternalIssueRef {
                    integration_id: integration_id.into(),
                    key: key.into(),
                    jira_issue_id: jira_issue_id.into(),
                }),
                title: format!("Jira issue {key}"),
                url: format!("https://example.atlassian.net/browse/{key}"),
                group_ids: group_ids.to_vec(),
                request_id: String::new(),
            })
            .await
            .unwrap()
            .into_inner()
            .external_issue
            .unwrap()
    }

    /// A group as the API returns it.
    pub async fn group(&self, group_id: i64) -> pb::Group {
        self.groups()
            .get_group(pb::GetGroupRequest { group_id })
            .await
            .unwrap()
            .into_inner()
            .group
            .unwrap()
    }

    /// A group's whole audit trail.
    pub async fn activities(&self, group_id: i64) -> Vec<pb::Activity> {
        let mut all = Vec::new();
        let mut page_token = String::new();
        loop {
            let page = self
                .groups()
                .list_activities(pb::ListActivitiesRequest {
                    group_id,
                    page_size: 100,
                    page_token,
                })
                .await
                .unwrap()
                .into_inner();
            all.extend(page.activities);
            if page.next_page_token.is_empty() {
                return all;
            }
            page_token = page.next_page_token;
        }
    }

    /// Assigns a group as `actor` (0: nobody); returns the action's result.
    pub async fn assign(&self, group_id: i64, user_id: i64, actor: i64) -> pb::GroupActionResult {
        self.groups()
            .assign_group(pb::AssignGroupRequest {
                group_id,
                user_id,
                acting_user_id: actor,
                request_id: String::new(),
            })
            .await
            .unwrap()
            .into_inner()
            .result
            .unwrap()
    }

    /// Resolves a group as `actor` (0: nobody); returns the action's result.
    pub async fn resolve(&self, group_id: i64, actor: i64) -> pb::GroupActionResult {
        self.groups()
            .resolve_group(pb::ResolveGroupRequest {
                group_id,
                acting_user_id: actor,
                request_id: String::new(),
            })
            .await
            .unwrap()
            .into_inner()
            .result
            .unwrap()
    }

    /// Every entry of the outbound log after `after`, read through
    /// WatchOutboundSyncs until its first heartbeat (it sends one only once it
    /// caught up). Needs no concurrent writers.
    pub async fn outbound_after(&self, after: i64) -> Vec<pb::OutboundSync> {
        let mut stream = self
            .external_issues()
            .watch_outbound_syncs(pb::WatchOutboundSyncsRequest {
                after_sequence: after,
            })
            .await
            .unwrap()
            .into_inner();
        let mut seen = Vec::new();
        loop {
            let message = tokio::time::timeout(crate::wait::DEFAULT_DEADLINE, stream.next())
                .await
                .expect("the stream answers within the deadline")
                .expect("the stream stays open")
                .expect("the stream does not fail");
            if message.syncs.is_empty() {
                return seen;
            }
            seen.extend(message.syncs);
        }
    }

    /// Every notification in the log (from the oldest retained), read through
    /// the stream until it reports that it caught up. Needs no concurrent writers.
    pub async fn all_notifications(&self) -> Vec<pb::Notification> {
        self.notifications_matching(pb::NotificationFilter::default())
            .await
    }

    /// Every notification passing `filter`, read as [`Self::all_notifications`].
    pub async fn notifications_matching(
        &self,
        filter: pb::NotificationFilter,
    ) -> Vec<pb::Notification> {
        let mut stream = self
            .notifications()
            .subscribe(pb::SubscribeRequest {
                start: None,
                filter: Some(filter),
            })
            .await
            .unwrap()
            .into_inner();
        let mut seen = Vec::new();
        loop {
            let message = tokio::time::timeout(crate::wait::DEFAULT_DEADLINE, stream.next())
                .await
                .expect("the stream answers within the deadline")
                .expect("the stream stays open")
                .expect("the stream does not fail");
            match message.event {
                Some(pb::subscribe_response::Event::Notification(n)) => seen.push(n),
                // The stream is idle only once it has replayed everything.
                Some(pb::subscribe_response::Event::Progress(_)) => return seen,
                None => panic!("empty stream message"),
            }
        }
    }
}

/// Asserts that a call failed with `code`, an `ErrorInfo`, and (for
/// INVALID_ARGUMENT) a field violation naming `field`.
pub fn assert_error<T: std::fmt::Debug>(
    result: Result<T, tonic::Status>,
    code: Code,
    field: Option<&str>,
) -> tonic::Status {
    use tonic_types::StatusExt as _;
    let status = result.expect_err("the call should fail");
    assert_eq!(status.code(), code, "unexpected status: {status:?}");
    let info = status
        .get_details_error_info()
        .unwrap_or_else(|| panic!("no ErrorInfo in {status:?}"));
    assert!(!info.reason.is_empty());
    if let Some(field) = field {
        let bad = status
            .get_details_bad_request()
            .unwrap_or_else(|| panic!("no BadRequest in {status:?}"));
        assert!(
            bad.field_violations.iter().any(|v| v.field == field),
            "no violation of {field} in {:?}",
            bad.field_violations
        );
    }
    status
}
