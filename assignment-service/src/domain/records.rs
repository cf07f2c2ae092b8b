//! The resources the API returns, as domain values (serializable, so the first
//! response to a request id can be stored and replayed).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use service_runtime::ids::{IntegrationId, IssueKey, JiraIssueId};

use super::{
    ActivityId, ActivityKind, Email, ExternalIssueId, GroupId, GroupStatus, OrganizationId,
    ParticipantReason, ProjectId, Slug, SyncOutcome, UserId,
};

/// A tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Organization {
    /// Its id.
    pub id: OrganizationId,
    /// Its unique short name.
    pub slug: Slug,
    /// Its display name.
    pub name: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

/// A project of an organization.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Project {
    /// Its id.
    pub id: ProjectId,
    /// The owning organization.
    pub organization_id: OrganizationId,
    /// Its short name, unique in the organization.
    pub slug: Slug,
    /// Its display name.
    pub name: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

/// One address of a user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserEmail {
    /// The address.
    pub email: Email,
    /// Whether its owner proved it.
    pub verified: bool,
}

/// A user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// Its id.
    pub id: UserId,
    /// Display name.
    pub display_name: String,
    /// Addresses, in the order given.
    pub emails: Vec<UserEmail>,
    /// Inactive users are never assigned by sync.
    pub active: bool,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// The organization that created it through its own token, if any.
    pub owner_organization_id: Option<OrganizationId>,
}

/// The sync directions an installation enables.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncSettings {
    /// Jira assignee → group assignee.
    pub sync_reverse_assignment: bool,
    /// Jira done category → group status.
    pub sync_status_reverse: bool,
    /// Group assignee → Jira (recorded only).
    pub sync_forward_assignment: bool,
    /// Group status → Jira (recorded only).
    pub sync_status_forward: bool,
}

/// An integration installed in an organization.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Installation {
    /// The organization.
    pub organization_id: OrganizationId,
    /// The integration.
    pub integration_id: IntegrationId,
    /// Its sync settings.
    pub settings: SyncSettings,
    /// When it was installed.
    pub created_at: DateTime<Utc>,
    /// When its settings last changed.
    pub updated_at: DateTime<Utc>,
}

/// A group's reference to an external issue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkedIssue {
    /// The integration.
    pub integration_id: IntegrationId,
    /// The issue key.
    pub key: IssueKey,
    /// The browse URL, possibly empty.
    pub url: String,
}

/// An error group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    /// Its id.
    pub id: GroupId,
    /// Its organization.
    pub organization_id: OrganizationId,
    /// Its project.
    pub project_id: ProjectId,
    /// Its title.
    pub title: String,
    /// Its status.
    pub status: GroupStatus,
    /// Its assignee and when they were assigned.
    pub assignee: Option<(UserId, DateTime<Utc>)>,
    /// The external issues it is linked to.
    pub linked_issues: Vec<LinkedIssue>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

/// A user following a group: told of its assignment and status changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Participant {
    /// The user.
    pub user_id: UserId,
    /// Why they follow it.
    pub reason: ParticipantReason,
    /// Since when.
    pub since: DateTime<Utc>,
}

/// One entry of a group's audit trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Activity {
    /// Its id.
    pub id: ActivityId,
    /// The group.
    pub group_id: GroupId,
    /// The group's organization.
    pub organization_id: OrganizationId,
    /// What happened.
    pub kind: ActivityKind,
    /// The user the change is about.
    pub user_id: Option<UserId>,
    /// The user replaced or removed.
    pub previous_user_id: Option<UserId>,
    /// Where the change came from (the loop guard).
    pub source_integration_id: Option<IntegrationId>,
    /// The external issue involved.
    pub external_issue_key: Option<String>,
    /// The request that made the change.
    pub request_id: Option<String>,
    /// When it was committed.
    pub created_at: DateTime<Utc>,
    /// The user who made the change through the API, when one was named.
    pub actor: Option<UserId>,
}

/// One organization's record of an external issue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExternalIssue {
    /// Its id.
    pub id: ExternalIssueId,
    /// The organization.
    pub organization_id: OrganizationId,
    /// The integration.
    pub integration_id: IntegrationId,
    /// The current key.
    pub key: IssueKey,
    /// Jira's stable id, when known.
    pub jira_issue_id: Option<JiraIssueId>,
    /// The issue's title.
    pub title: String,
    /// The issue's browse URL.
    pub url: String,
    /// Linked groups, ascending.
    pub group_ids: Vec<GroupId>,
    /// Provider time of the newest assignee event applied.
    pub assignee_watermark: Option<DateTime<Utc>>,
    /// Provider time of the newest status event applied.
    pub status_watermark: Option<DateTime<Utc>>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

/// What inbound sync did to one group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupSyncResult {
    /// The group's organization.
    pub organization_id: OrganizationId,
    /// The group.
    pub group_id: GroupId,
    /// What happened.
    pub outcome: SyncOutcome,
    /// The assignee afterwards.
    pub user_id: Option<UserId>,
    /// The assignee replaced or removed.
    pub previous_user_id: Option<UserId>,
}

/// One page of a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// The token of the next page; empty on the last page.
    pub next_page_token: String,
}
