//! Creating Jira issues for groups: the create form, creation exactly once, and
//! the durable link to the assignment service.

mod create;
mod defaults;
mod form_config;
mod link;
mod linker;
mod search;

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use service_runtime::database::Database;
use service_runtime::ids::IntegrationId;
use tokio::sync::Notify;

pub use create::{CreateIssueCommand, FormSnapshot, MARKER_PREFIX};
pub use form_config::{FormRequest, IssueFormConfig};
pub use link::{LinkIssueCommand, link_form};
pub use linker::run_linker;
pub use search::SearchRequest;

use crate::assignment_client::AssignmentClient;
use crate::cache::TtlCache;
use crate::jira::JiraClient;
use crate::jira::model::CreateMeta;

/// Where a creation's link to the assignment service stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LinkState {
    /// The assignment service accepted the link.
    Linked,
    /// Stored; retried until the assignment service accepts it.
    Pending,
    /// Refused by the assignment service; `link_error` says why.
    Failed,
}

impl LinkState {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Linked => "linked",
            Self::Pending => "pending",
            Self::Failed => "failed",
        }
    }

    /// Reads the stored spelling back (`none` before the issue exists).
    pub fn from_stored(s: &str) -> Option<Self> {
        match s {
            "linked" => Some(Self::Linked),
            "pending" => Some(Self::Pending),
            "failed" => Some(Self::Failed),
            _ => None,
        }
    }
}

/// Whether the comment a LinkIssue asked for is on the Jira issue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CommentState {
    /// No comment was asked for.
    None,
    /// Not posted yet (a repeat of the LinkIssue call posts it).
    Pending,
    /// Posted.
    Posted,
}

impl CommentState {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Pending => "pending",
            Self::Posted => "posted",
        }
    }

    /// Reads the stored spelling back.
    pub fn from_stored(s: &str) -> Option<Self> {
        match s {
            "none" => Some(Self::None),
            "pending" => Some(Self::Pending),
            "posted" => Some(Self::Posted),
            _ => None,
        }
    }
}

/// A created Jira issue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatedIssue {
    /// The issue key (`APP-123`).
    pub key: String,
    /// Jira's numeric issue id (stable across moves).
    pub id: String,
    /// Where people open it: `<base url>/browse/<key>`.
    pub url: String,
    /// Summary as Jira stored it.
    pub title: String,
    /// Description as Jira stored it.
    pub description: String,
}

/// A CreateIssue's result, with the link's current state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssueCreation {
    /// The issue.
    pub issue: CreatedIssue,
    /// The link's state.
    pub link_state: LinkState,
    /// Why linking failed, when it did.
    pub link_error: String,
    /// The integration.
    pub integration_id: IntegrationId,
    /// The organization whose groups are linked.
    pub organization_id: i64,
    /// The groups.
    pub group_ids: Vec<i64>,
    /// The comment a LinkIssue asked for (`None` for creations).
    pub comment_state: CommentState,
}

/// Settings of issue creation.
#[derive(Debug, Clone)]
pub struct IssueSettings {
    /// How long create metadata is reused.
    pub create_meta_ttl: Duration,
    /// How long after an attempt with an unknown outcome a retry may post again
    /// (Jira's search index lags behind creates).
    pub unknown_outcome_grace: Duration,
    /// How often the linker looks for due links.
    pub link_poll_interval: Duration,
}

impl Default for IssueSettings {
    fn default() -> Self {
        Self {
            create_meta_ttl: Duration::from_secs(240),
            unknown_outcome_grace: Duration::from_secs(30),
            link_poll_interval: Duration::from_secs(1),
        }
    }
}

/// What issue creation needs; cheap to clone.
#[derive(Debug, Clone)]
pub struct IssueService {
    db: Database,
    jira: JiraClient,
    assignment: AssignmentClient,
    create_meta: Arc<TtlCache<(IntegrationId, String), CreateMeta>>,
    links_due: Arc<Notify>,
    settings: IssueSettings,
}

impl IssueService {
    /// The service over its dependencies.
    pub fn new(
        db: Database,
        jira: JiraClient,
        assignment: AssignmentClient,
        settings: IssueSettings,
    ) -> Self {
        Self {
            db,
            jira,
            assignment,
            create_meta: Arc::new(TtlCache::new(
                settings.create_meta_ttl,
                crate::cache::METADATA_CACHE_CAPACITY,
            )),
            links_due: Arc::new(Notify::new()),
            settings,
        }
    }

    /// Forgets cached metadata of an integration (after it changed).
    pub fn forget_integration(&self, id: &IntegrationId) {
        self.create_meta
            .forget(|(integration, _)| integration == id);
    }
}
