//! CreateIssue, exactly once.
//!
//! Jira's create is not idempotent, so the tracker makes it so:
//!
//! 1. A request id that already produced an issue returns that issue; Jira is not
//!    called again.
//! 2. Before posting, a row for the creation is committed (write-ahead), and the
//!    issue is posted with a marker label (`jirasync-<hash of the creation id>`)
//!    when the issue type's create screen takes labels.
//! 3. When the post's outcome is unknown (a timeout, a dropped connection, a 5xx),
//!    the tracker searches Jira for the marker before anything else: found means
//!    created. A retry with the same request id does the same search first, and
//!    only posts again when the marker is not found and the earlier attempt is
//!    older than a grace period (Jira's search index lags behind creates).
//!    Without a labels field there is nothing to search for, so such a retry is
//!    refused rather than risking a second issue.
//! 4. The groups are linked in the assignment service; if it is unavailable the
//!    link stays pending in the same row and the linker retries it.

use std::collections::BTreeMap;

use sea_orm::{ActiveModelTrait as _, ActiveValue::Set, EntityTrait as _};
use serde::Serialize;
use service_runtime::database::is_unique_violation;
use service_runtime::ids::{IntegrationId, IssueKey, JiraIssueId, RequestId};
use service_runtime::time::now;
use sha2::{Digest as _, Sha256};

use super::{CommentState, CreatedIssue, IssueCreation, IssueService, LinkState};
use crate::assignment_client::{CallContext, CallError};
use crate::domain::sync::LinkRequest;
use crate::domain::{AuthMode, Integration};
use crate::error::{Reason, TrackerError, request_field};
use crate::integrations;
use crate::jira::fields::{FormValue, IssueForm, UserIdField, transform};
use crate::jira::model::{CreateMeta, IssueTypeMeta};
use crate::jira::{JiraError, model};
use crate::storage::entities::issue_creation;

/// The prefix of the marker label that finds a creation in Jira.
pub const MARKER_PREFIX: &str = "jirasync-";

/// A parsed CreateIssue call.
#[derive(Debug, Clone, Serialize)]
pub struct CreateIssueCommand {
    /// The integration.
    pub integration_id: IntegrationId,
    /// The organization whose groups are linked.
    pub organization_id: i64,
    /// The groups.
    pub group_ids: Vec<i64>,
    /// The form values.
    pub form: FormSnapshot,
    /// The assignment service's user creating the issue, whose reporter
    /// choice is remembered for their next form.
    pub acting_user_id: Option<i64>,
}

/// The form values, serialisable for the request fingerprint.
#[derive(Debug, Clone, Serialize)]
pub struct FormSnapshot {
    /// The Jira project the issue is created in.
    pub project_id: String,
    /// The issue type it is created as.
    pub issue_type_id: String,
    /// The title (becomes the summary).
    pub title: String,
    /// The description.
    pub description: String,
    /// Every other form value, by field key.
    pub fields: BTreeMap<String, FormValue>,
}

impl FormSnapshot {
    fn to_form(&self) -> IssueForm {
        IssueForm {
            project_id: self.project_id.clone(),
            issue_type_id: self.issue_type_id.clone(),
            title: self.title.clone(),
            description: self.description.clone(),
            fields: self.fields.clone(),
        }
    }
}

fn fingerprint(command: &CreateIssueCommand) -> String {
    hex::encode(Sha256::digest(
        serde_json::to_vec(command).unwrap_or_default(),
    ))
}

fn marker_for(creation_id: &str) -> String {
    let digest = Sha256::digest(creation_id.as_bytes());
    format!("{MARKER_PREFIX}{}", hex::encode(&digest[..8]))
}

pub(super) fn generated_id() -> String {
    format!("generated-{:032x}", rand::random::<u128>())
}

/// The description with a line pointing back at each group first (as
/// Sentry's description starts with its link to the issue), in Jira's wiki
/// markup: `Error group: [group 12|https://…/12]`.
pub fn with_back_links(
    description: &str,
    template: &crate::domain::GroupLinkTemplate,
    organization_id: i64,
    group_ids: &[i64],
) -> String {
    let links: Vec<String> = group_ids
        .iter()
        .map(|g| {
            format!(
                "Error group: [group {g}|{}]",
                template.render(organization_id, *g)
            )
        })
        .collect();
    if description.trim().is_empty() {
        links.join("\n")
    } else {
        format!("{}\n\n{description}", links.join("\n"))
    }
}

/// The form with the marker label added (when labels are on the screen).
fn with_marker(mut form: IssueForm, marker: &str) -> IssueForm {
    if marker.is_empty() {
        return form;
    }
    let labels = match form.fields.remove("labels") {
        Some(FormValue::Text(text)) if !text.trim().is_empty() => format!("{text},{marker}"),
        Some(FormValue::List(mut items)) => {
            items.push(marker.to_owned());
            items.join(",")
        }
        _ => marker.to_owned(),
    };
    form.fields.insert("labels".into(), FormValue::Text(labels));
    form
}

fn user_id_field(integration: &Integration) -> UserIdField {
    // Jira Server / Data Center addresses users by name; Cloud by account id.
    match integration.credentials.mode() {
        AuthMode::PersonalAccessToken => UserIdField::Name,
        AuthMode::ApiToken | AuthMode::Connect => UserIdField::AccountId,
    }
}

impl IssueService {
    /// Create metadata of a project, cached.
    pub(super) async fn create_meta(
        &self,
        integration: &Integration,
        project_id: &str,
    ) -> Result<std::sync::Arc<CreateMeta>, JiraError> {
        let key = (integration.id.clone(), project_id.to_owned());
        self.create_meta
            .get_or_fetch(key, self.jira.site(integration).create_meta(project_id))
            .await
    }

    /// The issue type's create metadata, or a field violation naming what is
    /// missing.
    async fn issue_type_meta(
        &self,
        integration: &Integration,
        form: &FormSnapshot,
    ) -> Result<IssueTypeMeta, TrackerError> {
        let meta = self.create_meta(integration, &form.project_id).await?;
        let project = meta
            .projects
            .iter()
            .find(|p| p.id == form.project_id)
            .or_else(|| meta.projects.first())
            .ok_or_else(|| {
                TrackerError::invalid_field(
                    "project_id",
                    format!(
                        "Jira has no project {} that the integration's account may create issues in",
                        form.project_id
                    ),
                )
            })?;
        project
            .issuetypes
            .iter()
            .find(|t| t.id == form.issue_type_id)
            .cloned()
            .ok_or_else(|| {
                TrackerError::invalid_field(
                    "issue_type_id",
                    format!(
                        "project {} has no issue type {} (it has: {})",
                        project.key,
                        form.issue_type_id,
                        project
                            .issuetypes
                            .iter()
                            .map(|t| format!("{} {}", t.id, t.name))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                )
            })
    }

    /// The shaped `fields` object, or one violation per bad field.
    fn shape(
        integration: &Integration,
        issue_type: &IssueTypeMeta,
        command: &CreateIssueCommand,
        marker: &str,
    ) -> Result<serde_json::Value, TrackerError> {
        let mut form = with_marker(command.form.to_form(), marker);
        if let Some(template) = &integration.group_link_template {
            form.description = with_back_links(
                &form.description,
                template,
                command.organization_id,
                &command.group_ids,
            );
        }
        transform(&form, issue_type, user_id_field(integration))
            .map(serde_json::Value::Object)
            .map_err(|errors| {
                TrackerError::InvalidArgument(
                    errors
                        .into_iter()
                        .map(|e| {
                            service_runtime::status::FieldViolation::new(
                                request_field(&e.field),
                                e.message,
                            )
                        })
                        .collect(),
                )
            })
    }

    /// CreateIssue.
    ///
    /// # Errors
    /// Validation, Jira and database errors; `OutcomeUnknown` when Jira's answer
    /// was lost and the issue could not be found yet.
    pub async fn create(
        &self,
        command: CreateIssueCommand,
        request_id: Option<&RequestId>,
    ) -> Result<IssueCreation, TrackerError> {
        let integration = integrations::load(self.db.conn(), &command.integration_id).await?;
        let creation_id = request_id.map_or_else(generated_id, ToString::to_string);
        let fingerprint = fingerprint(&command);
        if let Some(row) = issue_creation::Entity::find_by_id(&creation_id)
            .one(self.db.conn())
            .await?
        {
            if row.fingerprint != fingerprint {
                return Err(TrackerError::RequestIdReused {
                    request_id: creation_id,
                });
            }
            return match row.state.as_str() {
                "created" => view(row),
                _ => {
                    let creation = self.resume(row, &command, &integration).await?;
                    self.remember_defaults(&command).await;
                    Ok(creation)
                }
            };
        }

        let issue_type = self.issue_type_meta(&integration, &command.form).await?;
        let marker = if issue_type.fields.contains("labels") {
            marker_for(&creation_id)
        } else {
            String::new()
        };
        let fields = Self::shape(&integration, &issue_type, &command, &marker)?;
        let time = now();
        let row = issue_creation::ActiveModel {
            id: Set(creation_id.clone()),
            fingerprint: Set(fingerprint),
            integration_id: Set(integration.id.as_str().to_owned()),
            organization_id: Set(command.organization_id),
            group_ids: Set(serde_json::to_string(&command.group_ids).unwrap_or_default()),
            marker: Set(marker),
            state: Set("posting".into()),
            jira_key: Set(None),
            jira_id: Set(None),
            url: Set(String::new()),
            title: Set(command.form.title.clone()),
            description: Set(command.form.description.clone()),
            link_state: Set("none".into()),
            link_error: Set(String::new()),
            link_attempts: Set(0),
            next_link_at: Set(None),
            created_at: Set(time),
            updated_at: Set(time),
            kind: Set("create".into()),
            comment: Set(String::new()),
            comment_state: Set(CommentState::None.as_str().into()),
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
        let creation = self.post(row, &integration, &fields).await?;
        self.remember_defaults(&command).await;
        Ok(creation)
    }

    /// Remembers the form's project, issue type, priority, labels and
    /// reporter for the next form; a failure only costs the pre-filling.
    async fn remember_defaults(&self, command: &CreateIssueCommand) {
        if let Err(error) = super::defaults::remember(
            &self.db,
            &command.integration_id,
            command.organization_id,
            command.acting_user_id,
            &command.form,
        )
        .await
        {
            tracing::warn!(%error, "could not remember the create form's defaults");
        }
    }

    /// Posts the issue for a `posting` row and records what happened.
    async fn post(
        &self,
        row: issue_creation::Model,
        integration: &Integration,
        fields: &serde_json::Value,
    ) -> Result<IssueCreation, TrackerError> {
        match self.jira.site(integration).create_issue(fields).await {
            Ok(created) => {
                self.record_created(row, integration, created.id, created.key)
                    .await
            }
            Err(error) if error.outcome_unknown() => {
                if let Some(hit) = self.find_marked(&row, integration).await? {
                    return self.record_created(row, integration, hit.id, hit.key).await;
                }
                let mut active: issue_creation::ActiveModel = row.into();
                active.updated_at = Set(now());
                self.db.gated(active.update(self.db.conn())).await?;
                Err(TrackerError::refused(
                    Reason::CreateOutcomeUnknown,
                    format!(
                        "Jira did not confirm the create ({error}); it may still have created the issue. \
                     Retry with the same request_id: the retry looks for that issue before creating one"
                    ),
                ))
            }
            Err(error) => {
                // Nothing was created: forget the attempt, so nothing is
                // half-written and the request id can be used again.
                self.db
                    .gated(issue_creation::Entity::delete_by_id(row.id).exec(self.db.conn()))
                    .await?;
                Err(error.into())
            }
        }
    }

    /// The issue an earlier attempt created, found by its marker.
    async fn find_marked(
        &self,
        row: &issue_creation::Model,
        integration: &Integration,
    ) -> Result<Option<model::SearchHit>, TrackerError> {
        if row.marker.is_empty() {
            return Ok(None);
        }
        match self.jira.site(integration).search_label(&row.marker).await {
            Ok(result) => Ok(result.issues.into_iter().next()),
            Err(error) => {
                tracing::warn!(%error, creation = %row.id, "could not search Jira for an earlier attempt");
                Ok(None)
            }
        }
    }

    /// Continues a creation whose earlier attempt's outcome is unknown.
    async fn resume(
        &self,
        row: issue_creation::Model,
        command: &CreateIssueCommand,
        integration: &Integration,
    ) -> Result<IssueCreation, TrackerError> {
        if row.marker.is_empty() {
            return Err(TrackerError::refused(Reason::CreateOutcomeUnknown,
                "an earlier attempt with this request_id has an unknown outcome, and this issue type's create screen has no labels field to find it by; \
                 check Jira, then retry with a new request_id if no issue was created"
                    .to_owned(),
            ));
        }
        if let Some(hit) = self.find_marked(&row, integration).await? {
            return self.record_created(row, integration, hit.id, hit.key).await;
        }
        let since = (now() - row.updated_at).to_std().unwrap_or_default();
        if since < self.settings.unknown_outcome_grace {
            let wait = self.settings.unknown_outcome_grace - since;
            return Err(TrackerError::refused(
                Reason::CreateOutcomeUnknown,
                format!(
                    "an earlier attempt with this request_id may still be completing in Jira; retry in {} s",
                    wait.as_secs().max(1)
                ),
            ));
        }
        let issue_type = self.issue_type_meta(integration, &command.form).await?;
        let fields = Self::shape(integration, &issue_type, command, &row.marker)?;
        self.post(row, integration, &fields).await
    }

    /// Records the created issue and links it.
    async fn record_created(
        &self,
        row: issue_creation::Model,
        integration: &Integration,
        jira_id: String,
        key: String,
    ) -> Result<IssueCreation, TrackerError> {
        let (title, description) = match self.jira.site(integration).issue(&key).await {
            Ok(issue) => (
                issue.fields.summary.unwrap_or_else(|| row.title.clone()),
                issue.fields.description.unwrap_or_default(),
            ),
            Err(error) => {
                tracing::warn!(%error, %key, "created, but could not read the issue back");
                (row.title.clone(), row.description.clone())
            }
        };
        let mut active: issue_creation::ActiveModel = row.into();
        active.state = Set("created".into());
        active.jira_key = Set(Some(key.clone()));
        active.jira_id = Set(Some(jira_id));
        active.url = Set(format!("{}/browse/{key}", integration.base_url));
        active.title = Set(title);
        active.description = Set(description);
        active.link_state = Set(LinkState::Pending.as_str().into());
        active.next_link_at = Set(Some(now()));
        active.updated_at = Set(now());
        let row = self.db.gated(active.update(self.db.conn())).await?;
        tracing::info!(%key, creation = %row.id, "created Jira issue");
        let row = self.try_link(row).await?;
        view(row)
    }

    /// One attempt to link a created issue's groups; records the outcome.
    pub(super) async fn try_link(
        &self,
        row: issue_creation::Model,
    ) -> Result<issue_creation::Model, TrackerError> {
        let corrupt =
            |what: &str| TrackerError::Corrupt(format!("issue creation {}: {what}", row.id));
        let group_ids: Vec<i64> = serde_json::from_str(&row.group_ids)
            .map_err(|e| corrupt(&format!("group ids: {e}")))?;
        let request = LinkRequest {
            organization_id: row.organization_id,
            integration_id: IntegrationId::parse(&row.integration_id)
                .map_err(|_| corrupt("integration id"))?,
            key: IssueKey::parse(row.jira_key.as_deref().unwrap_or_default())
                .map_err(|_| corrupt("issue key"))?,
            jira_issue_id: row
                .jira_id
                .as_deref()
                .map(JiraIssueId::parse)
                .transpose()
                .map_err(|_| corrupt("jira issue id"))?,
            title: row.title.clone(),
            url: row.url.clone(),
            group_ids,
            request_id: RequestId::derived(&[&row.id, "link"]),
        };
        let outcome = self
            .assignment
            .link(&request, &CallContext::default())
            .await;
        let attempts = row.link_attempts + 1;
        let mut active: issue_creation::ActiveModel = row.into();
        active.link_attempts = Set(attempts);
        active.updated_at = Set(now());
        match outcome {
            Ok(_) => {
                active.link_state = Set(LinkState::Linked.as_str().into());
                active.link_error = Set(String::new());
                active.next_link_at = Set(None);
            }
            Err(CallError::Transient(status)) => {
                let delay = super::linker::backoff(attempts);
                active.link_state = Set(LinkState::Pending.as_str().into());
                active.link_error = Set(format!("{}: {}", status.code(), status.message()));
                active.next_link_at = Set(Some(
                    now() + chrono::Duration::from_std(delay).unwrap_or_default(),
                ));
                self.links_due.notify_one();
            }
            Err(CallError::Permanent(status)) => {
                active.link_state = Set(LinkState::Failed.as_str().into());
                active.link_error = Set(format!("{}: {}", status.code(), status.message()));
                active.next_link_at = Set(None);
            }
        }
        Ok(self.db.gated(active.update(self.db.conn())).await?)
    }

    /// GetIssueCreation.
    ///
    /// # Errors
    /// NOT_FOUND when no creation used the id, or it has not produced an issue.
    pub async fn get(&self, request_id: &RequestId) -> Result<IssueCreation, TrackerError> {
        let row = issue_creation::Entity::find_by_id(request_id.as_str())
            .one(self.db.conn())
            .await?
            .filter(|r| r.state == "created")
            .ok_or_else(|| TrackerError::NotFound {
                resource: "issue creation",
                id: request_id.to_string(),
            })?;
        view(row)
    }
}

/// The API view of a created row.
pub(super) fn view(row: issue_creation::Model) -> Result<IssueCreation, TrackerError> {
    let corrupt = |what: &str| TrackerError::Corrupt(format!("issue creation {}: {what}", row.id));
    Ok(IssueCreation {
        issue: CreatedIssue {
            key: row.jira_key.clone().ok_or_else(|| corrupt("no key"))?,
            id: row.jira_id.clone().unwrap_or_default(),
            url: row.url.clone(),
            title: row.title.clone(),
            description: row.description.clone(),
        },
        link_state: LinkState::from_stored(&row.link_state).ok_or_else(|| corrupt("link state"))?,
        link_error: row.link_error.clone(),
        integration_id: IntegrationId::parse(&row.integration_id)
            .map_err(|_| corrupt("integration id"))?,
        organization_id: row.organization_id,
        group_ids: serde_json::from_str(&row.group_ids).map_err(|_| corrupt("group ids"))?,
        comment_state: CommentState::from_stored(&row.comment_state)
            .ok_or_else(|| corrupt("comment state"))?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_are_stable_and_short() {
        assert_eq!(marker_for("r-1"), marker_for("r-1"));
        assert_ne!(marker_for("r-1"), marker_for("r-2"));
        assert!(marker_for("r-1").starts_with(MARKER_PREFIX));
        assert_eq!(marker_for("r-1").len(), MARKER_PREFIX.len() + 16);
    }

    #[test]
    fn back_links_come_first_one_per_group() {
        let template = crate::domain::GroupLinkTemplate::parse(
            "https://errors.example.com/{organization}/issues/{group_id}",
        )
        .expect("template");
        assert_eq!(
            with_back_links("Steps to reproduce", &template, 7, &[12, 13]),
            "Error group: [group 12|https://errors.example.com/7/issues/12]\n\
             Error group: [group 13|https://errors.example.com/7/issues/13]\n\nSteps to reproduce"
        );
        assert_eq!(
            with_back_links("", &template, 7, &[12]),
            "Error group: [group 12|https://errors.example.com/7/issues/12]"
        );
        for bad in [
            "ftp://x/{group_id}",
            "https://x/issues",
            "https://x/{group_id} y",
        ] {
            assert!(
                crate::domain::GroupLinkTemplate::parse(bad).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_marker_joins_the_labels() {
        let mut form = IssueForm::default();
        form.fields
            .insert("labels".into(), FormValue::Text("a, b".into()));
        let marked = with_marker(form, "jirasync-1");
        assert_eq!(
            marked.fields["labels"],
            FormValue::Text("a, b,jirasync-1".into())
        );
        let empty = with_marker(IssueForm::default(), "jirasync-1");
        assert_eq!(empty.fields["labels"], FormValue::Text("jirasync-1".into()));
    }
}
