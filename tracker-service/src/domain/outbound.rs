//! Outbound sync as domain values: what a Jira issue must show (an entry of
//! the assignment service's outbound log) and what became of it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use service_runtime::ids::{IntegrationId, IssueKey, JiraIssueId};

use super::sync::StatusAction;

/// The Jira issue an entry is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundIssue {
    /// The integration.
    pub integration_id: IntegrationId,
    /// The issue's key as last known.
    pub key: IssueKey,
    /// Jira's issue id, when known (it survives moves).
    pub jira_issue_id: Option<JiraIssueId>,
}

impl OutboundIssue {
    /// How to address the issue in Jira's REST API: its id when known, else
    /// its key.
    pub fn id_or_key(&self) -> &str {
        self.jira_issue_id
            .as_ref()
            .map_or(self.key.as_str(), JiraIssueId::as_str)
    }
}

/// Which part of an issue an entry sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Direction {
    /// The assignee.
    Assignee,
    /// The status.
    Status,
}

impl Direction {
    /// The spelling stored and shown to operators.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Assignee => "assignee",
            Self::Status => "status",
        }
    }
}

/// What the issue must show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutboundTarget {
    /// Assigned to the Jira user found by one of these addresses.
    Assignee {
        /// The assignment service's user.
        user_id: i64,
        /// The user's verified addresses, in the order to try.
        emails: Vec<String>,
    },
    /// No assignee.
    Unassigned,
    /// The status the organization mapped for a resolve or a reopen.
    Status(StatusAction),
}

impl OutboundTarget {
    /// Which part of the issue it sets.
    pub fn direction(&self) -> Direction {
        match self {
            Self::Assignee { .. } | Self::Unassigned => Direction::Assignee,
            Self::Status(_) => Direction::Status,
        }
    }
}

/// An entry of the assignment service's outbound log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundIntent {
    /// Its position in the outbound log.
    pub source_sequence: u64,
    /// The organization whose installation asks for it.
    pub organization_id: i64,
    /// The group whose change caused it.
    pub group_id: i64,
    /// The issue.
    pub issue: OutboundIssue,
    /// What the issue must show.
    pub target: OutboundTarget,
    /// The change came from this integration: Jira already shows it; nothing is
    /// sent, but older entries of the issue are superseded.
    pub from_source: bool,
    /// The request id of the change, when any.
    pub request_id: Option<String>,
    /// Its W3C trace context, or empty.
    pub traceparent: String,
}

impl OutboundIntent {
    /// Entries with the same key (and integration) apply one at a time, in
    /// source order; a newer one supersedes older ones not yet applied.
    pub fn ordering_key(&self) -> String {
        let issue = match &self.issue.jira_issue_id {
            Some(id) => format!("id:{}", id.as_str()),
            None => format!("key:{}", self.issue.key.as_str()),
        };
        format!("{}:{issue}", self.target.direction().as_str())
    }
}

/// Where an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboundState {
    /// To be applied (maybe after a retry time).
    Pending,
    /// Applied, or nothing was needed (Jira already showed it, the project has
    /// no mapping, the change came from Jira).
    Done,
    /// Will not be applied as is (no matching Jira user, no permission, no
    /// transition); operators may retry it.
    Stopped,
    /// A newer entry of the same issue and direction replaced it before it was
    /// applied.
    Superseded,
}

impl OutboundState {
    /// The spelling stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Done => "done",
            Self::Stopped => "stopped",
            Self::Superseded => "superseded",
        }
    }

    /// Reads a stored spelling.
    pub fn from_stored(raw: &str) -> Option<Self> {
        match raw {
            "pending" => Some(Self::Pending),
            "done" => Some(Self::Done),
            "stopped" => Some(Self::Stopped),
            "superseded" => Some(Self::Superseded),
            _ => None,
        }
    }
}

/// An entry and what became of it, as operators see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundRecord {
    /// The tracker's id of the entry.
    pub id: i64,
    /// The entry.
    pub intent: OutboundIntent,
    /// Where it is.
    pub state: OutboundState,
    /// Attempts made.
    pub attempts: i32,
    /// What was done, or why nothing was (done, stopped, superseded).
    pub result: Option<String>,
    /// The last failure, when an attempt failed.
    pub last_error: Option<String>,
    /// When the next attempt is due (pending after a failure).
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// When it was received.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}
