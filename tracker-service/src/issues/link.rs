//! LinkIssue: linking groups to a Jira issue that already exists (the other
//! half of Sentry's issue flow), found with SearchJira.
//!
//! 1. The issue is read from Jira first: an unknown key is NOT_FOUND and
//!    nothing is stored or linked. Its title and URL come from Jira, never from
//!    the caller.
//! 2. A row like a creation's records the link (kind `link`), and the groups
//!    are linked through the same durable pending-link machinery as CreateIssue
//!    (the linker retries while the assignment service is unavailable).
//! 3. When a comment is given, it is posted to the issue (Sentry's
//!    `after_link_issue`) with an entity property naming the request, and the
//!    row records that it was posted. A repeat of the call (same request id)
//!    returns the first result; if the comment was not confirmed posted, it
//!    looks for the property on the issue's comments before posting, so the
//!    comment appears once.

use sea_orm::{ActiveModelTrait as _, ActiveValue::Set, EntityTrait as _};
use serde::Serialize;
use service_runtime::database::is_unique_violation;
use service_runtime::ids::{IntegrationId, IssueKey, RequestId};
use service_runtime::time::now;
use sha2::{Digest as _, Sha256};

use super::create::view;
use super::{CommentState, IssueCreation, IssueService, LinkState};
use crate::domain::Integration;
use crate::error::TrackerError;
use crate::integrations;
use crate::storage::entities::issue_creation;

/// The entity property that marks a comment this tracker posted.
pub const COMMENT_PROPERTY: &str = "jira-sync";

/// A parsed LinkIssue call.
#[derive(Debug, Clone, Serialize)]
pub struct LinkIssueCommand {
    /// The integration.
    pub integration_id: IntegrationId,
    /// The organization whose groups are linked.
    pub organization_id: i64,
    /// The groups.
    pub group_ids: Vec<i64>,
    /// The existing Jira issue.
    pub key: IssueKey,
    /// A comment to post on the issue, or empty.
    pub comment: String,
}

fn fingerprint(command: &LinkIssueCommand) -> String {
    let json = serde_json::to_vec(&("LinkIssue", command)).unwrap_or_default();
    hex::encode(Sha256::digest(json))
}

impl IssueService {
    /// LinkIssue.
    ///
    /// # Errors
    /// NOT_FOUND (integration, or the key in Jira); `RequestIdReused`; Jira
    /// and database errors.
    pub async fn link_existing(
        &self,
        command: LinkIssueCommand,
        request_id: Option<&RequestId>,
    ) -> Result<IssueCreation, TrackerError> {
        let integration = integrations::load(self.db.conn(), &command.integration_id).await?;
        let id = request_id.map_or_else(super::create::generated_id, ToString::to_string);
        let fingerprint = fingerprint(&command);
        if let Some(row) = issue_creation::Entity::find_by_id(&id)
            .one(self.db.conn())
            .await?
        {
            if row.fingerprint != fingerprint {
                return Err(TrackerError::RequestIdReused { request_id: id });
            }
            let row = self.post_comment(row, &integration).await?;
            return view(row);
        }
        let issue = self
            .jira
            .site(&integration)
            .issue(command.key.as_str())
            .await?;
        let time = now();
        let comment_state = if command.comment.trim().is_empty() {
            CommentState::None
        } else {
            CommentState::Pending
        };
        let row = issue_creation::ActiveModel {
            id: Set(id),
            fingerprint: Set(fingerprint),
            integration_id: Set(integration.id.as_str().to_owned()),
            organization_id: Set(command.organization_id),
            group_ids: Set(serde_json::to_string(&command.group_ids).unwrap_or_default()),
            marker: Set(String::new()),
            state: Set("created".into()),
            jira_key: Set(Some(issue.key.clone())),
            jira_id: Set(Some(issue.id.clone())),
            url: Set(format!("{}/browse/{}", integration.base_url, issue.key)),
            title: Set(issue.fields.summary.unwrap_or_default()),
            description: Set(issue.fields.description.unwrap_or_default()),
            link_state: Set(LinkState::Pending.as_str().into()),
            link_error: Set(String::new()),
            link_attempts: Set(0),
            next_link_at: Set(Some(time)),
            created_at: Set(time),
            updated_at: Set(time),
            kind: Set("link".into()),
            comment: Set(command.comment.clone()),
            comment_state: Set(comment_state.as_str().into()),
        };
        let row = self
            .db
            .gated(row.insert(self.db.conn()))
            .await
            .map_err(|e| {
                if is_unique_violation(&e) {
                    TrackerError::ConcurrentDuplicate
                } else {
                    e.into()
                }
            })?;
        let row = self.try_link(row).await?;
        let row = self.post_comment(row, &integration).await?;
        view(row)
    }

    /// Posts the row's comment unless it is already on the issue; records it
    /// posted. A failure leaves it pending (the answer says so; a repeat of the
    /// call tries again).
    async fn post_comment(
        &self,
        row: issue_creation::Model,
        integration: &Integration,
    ) -> Result<issue_creation::Model, TrackerError> {
        if row.comment_state != CommentState::Pending.as_str() {
            return Ok(row);
        }
        let key = row.jira_key.clone().unwrap_or_default();
        let site = self.jira.site(integration);
        let marker = serde_json::json!({ "request": row.id });
        let already = match site.comments(&key).await {
            Ok(comments) => comments.comments.iter().any(|c| {
                c.properties
                    .iter()
                    .any(|p| p.key == COMMENT_PROPERTY && p.value == marker)
            }),
            Err(error) => {
                tracing::warn!(%error, %key, "could not read the issue's comments; the comment stays pending");
                return Ok(row);
            }
        };
        if !already
            && let Err(error) = site
                .add_comment(&key, &row.comment, COMMENT_PROPERTY, &marker)
                .await
        {
            tracing::warn!(%error, %key, "could not post the link comment; it stays pending");
            return Ok(row);
        }
        let mut active: issue_creation::ActiveModel = row.into();
        active.comment_state = Set(CommentState::Posted.as_str().into());
        active.updated_at = Set(now());
        Ok(self.db.gated(active.update(self.db.conn())).await?)
    }
}

/// The link form (Sentry's `get_link_issue_config`): the issue, searched with
/// SearchJira (`externalIssue`), and a comment prefilled with the links back to
/// the groups when the integration has a link template.
pub fn link_form(
    integration: &Integration,
    organization_id: i64,
    group_ids: &[i64],
) -> Vec<crate::jira::form::FormField> {
    use crate::jira::form::{FieldKind, FormField};
    let mut issue = FormField::new("externalIssue", "Issue", FieldKind::AsyncSelect);
    issue.required = true;
    issue.search_field = "externalIssue".into();
    let mut comment = FormField::new("comment", "Comment", FieldKind::Textarea);
    if let Some(template) = &integration.group_link_template {
        comment.default = group_ids
            .iter()
            .map(|g| {
                format!(
                    "Linked error group: {}",
                    template.render(organization_id, *g)
                )
            })
            .collect::<Vec<_>>()
            .join("\n");
    }
    vec![issue, comment]
}

impl IssueService {
    /// GetLinkIssueConfig.
    ///
    /// # Errors
    /// NOT_FOUND for an unknown integration.
    pub async fn link_config(
        &self,
        integration_id: &IntegrationId,
        organization_id: i64,
        group_ids: &[i64],
    ) -> Result<Vec<crate::jira::form::FormField>, TrackerError> {
        let integration = integrations::load(self.db.conn(), integration_id).await?;
        Ok(link_form(&integration, organization_id, group_ids))
    }
}
