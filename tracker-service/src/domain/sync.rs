//! What the tracker asks of the assignment service, and what it hears back, as
//! domain values. [`crate::assignment_client`] converts them to and from
//! `assignment.v1` inside itself; nothing else sees the wire types.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use service_runtime::ids::{IntegrationId, IssueKey, JiraIssueId, RequestId};

/// A Jira issue within an integration: by Jira's issue id, its key, or both
/// (the id is tried first; it survives moves).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssueRef {
    /// The integration the issue lives in.
    pub integration_id: IntegrationId,
    /// The issue key.
    pub key: Option<IssueKey>,
    /// Jira's numeric issue id.
    pub jira_issue_id: Option<JiraIssueId>,
}

/// Who Jira says is assigned now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AssigneeTarget {
    /// The user whose verified address is this one.
    Email(String),
    /// Nobody.
    Unassign,
}

/// An assignee change to apply to the issue's linked groups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssigneeSync {
    /// The issue.
    pub issue: IssueRef,
    /// The new assignee.
    pub target: AssigneeTarget,
    /// Jira's `issue.fields.updated`, which orders events.
    pub provider_time: Option<DateTime<Utc>>,
    /// Makes a repeat harmless (derived from the delivery).
    pub request_id: RequestId,
}

/// The direction of a status change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusAction {
    /// Into Jira's done category: resolve the groups.
    Resolve,
    /// Out of it: reopen them.
    Unresolve,
}

/// A status change to apply to the issue's linked groups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusSync {
    /// The issue.
    pub issue: IssueRef,
    /// Resolve or reopen.
    pub action: StatusAction,
    /// Jira's `issue.fields.updated`.
    pub provider_time: Option<DateTime<Utc>>,
    /// Makes a repeat harmless.
    pub request_id: RequestId,
}

/// A key change (the issue moved to another project).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MoveSync {
    /// The issue before the move (its id and previous key).
    pub issue: IssueRef,
    /// The key after the move.
    pub new_key: IssueKey,
    /// Makes a repeat harmless.
    pub request_id: RequestId,
}

/// Groups of one organization to link to a Jira issue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkRequest {
    /// The organization whose groups are linked.
    pub organization_id: i64,
    /// The integration the issue lives in.
    pub integration_id: IntegrationId,
    /// The issue key.
    pub key: IssueKey,
    /// Jira's issue id, when known.
    pub jira_issue_id: Option<JiraIssueId>,
    /// The issue's summary, stored for display.
    pub title: String,
    /// The issue's browse URL.
    pub url: String,
    /// The groups.
    pub group_ids: Vec<i64>,
    /// Makes a repeat harmless (derived from the creation).
    pub request_id: RequestId,
}

/// What inbound sync did to one linked group. Stored with a delivery's actions
/// in this spelling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SyncOutcome {
    /// Assigned to the matching user.
    Assigned,
    /// Assignee removed.
    Deassigned,
    /// Already in the requested state.
    Unchanged,
    /// No active, verified user with access matches.
    NoMatchingUser,
    /// Older than the issue's watermark.
    Stale,
    /// The organization has this direction of sync off.
    SyncDisabled,
    /// The group was marked resolved.
    Resolved,
    /// The group was reopened.
    Unresolved,
}

/// What applying a change did to one group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupEffect {
    /// The group's organization.
    pub organization_id: i64,
    /// The group.
    pub group_id: i64,
    /// What happened to it.
    pub outcome: SyncOutcome,
}

/// An issue deleted in Jira: its records are retired everywhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteSync {
    /// The issue.
    pub issue: IssueRef,
    /// Makes a repeat harmless (derived from the delivery).
    pub request_id: RequestId,
}

/// What a deletion did to one organization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retired {
    /// The organization.
    pub organization_id: i64,
    /// Its groups that were linked, now unlinked.
    pub unlinked_group_ids: Vec<i64>,
}
