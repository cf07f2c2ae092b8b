//! GetCreateIssueConfig: the form a UI shows to create an issue.

use service_runtime::ids::IntegrationId;

use super::IssueService;
use crate::error::{Reason, TrackerError};
use crate::integrations;
use crate::jira::form::{FormField, FormInput, build};

/// A form request: the project and issue type the form is for (empty: Jira's
/// first).
#[derive(Debug, Clone)]
pub struct FormRequest {
    /// The integration.
    pub integration_id: IntegrationId,
    /// Project id, or empty.
    pub project_id: String,
    /// Issue type id, or empty.
    pub issue_type_id: String,
    /// The organization whose remembered defaults pre-fill the form.
    pub organization_id: Option<i64>,
    /// The user whose remembered reporter pre-fills the form.
    pub acting_user_id: Option<i64>,
}

/// The form and what it was built for.
#[derive(Debug, Clone)]
pub struct IssueFormConfig {
    /// The fields, in display order.
    pub fields: Vec<FormField>,
    /// The project.
    pub project_id: String,
    /// The issue type.
    pub issue_type_id: String,
}

impl IssueService {
    /// GetCreateIssueConfig.
    ///
    /// # Errors
    /// NOT_FOUND for an unknown integration; Jira errors; INVALID_ARGUMENT when
    /// the project has no issue types the account may create.
    pub async fn form_config(&self, request: FormRequest) -> Result<IssueFormConfig, TrackerError> {
        let integration = integrations::load(self.db.conn(), &request.integration_id).await?;
        let site = self.jira.site(&integration);
        let projects = site.all_projects().await?;
        let defaults = match request.organization_id {
            Some(org) => {
                super::defaults::recall(
                    self.db.conn(),
                    &integration.id,
                    org,
                    request.acting_user_id,
                )
                .await?
            }
            None => std::collections::BTreeMap::new(),
        };
        // A remembered project the account no longer sees is skipped.
        let remembered_project = defaults
            .get("project")
            .filter(|id| projects.iter().any(|p| &p.id == *id));
        let project_id = if !request.project_id.is_empty() {
            request.project_id.clone()
        } else if let Some(id) = remembered_project {
            id.clone()
        } else {
            projects.first().map(|p| p.id.clone()).ok_or_else(|| {
                TrackerError::refused(
                    Reason::NoJiraProjects,
                    "the integration's Jira account sees no project",
                )
            })?
        };
        let wanted_type = if request.issue_type_id.is_empty() {
            defaults.get("issuetype").cloned().unwrap_or_default()
        } else {
            request.issue_type_id.clone()
        };
        let meta = self.create_meta(&integration, &project_id).await?;
        let project = meta.projects.first().ok_or_else(|| {
            TrackerError::invalid_field(
                "project_id",
                format!("Jira has no project {project_id} that the integration's account may create issues in"),
            )
        })?;
        let issue_type = project
            .issuetypes
            .iter()
            .find(|t| t.id == wanted_type)
            .or_else(|| project.issuetypes.first())
            .ok_or_else(|| {
                TrackerError::invalid_field(
                    "project_id",
                    format!(
                        "project {} has no issue type the account may create",
                        project.key
                    ),
                )
            })?;
        let needs_global_priorities = issue_type
            .fields
            .get("priority")
            .is_some_and(|p| p.allowed_values.as_deref().unwrap_or_default().is_empty());
        let priorities = if needs_global_priorities {
            site.priorities().await?
        } else {
            Vec::new()
        };
        let versions = if issue_type.fields.contains("fixVersions") {
            site.versions(&project.key).await?
        } else {
            Vec::new()
        };
        let mut fields = build(&FormInput {
            projects: &projects,
            project,
            issue_type,
            priorities: &priorities,
            versions: &versions,
        });
        for field in &mut fields {
            let Some(value) = defaults.get(&field.name) else {
                continue;
            };
            match field.name.as_str() {
                "priority" | "labels" => field.default = value.clone(),
                "reporter" => {
                    // Labelled as Jira names the user; a user Jira no longer
                    // knows is not offered.
                    if let Ok(user) = site.user(value).await {
                        field.default = value.clone();
                        field.choices = vec![(
                            value.clone(),
                            user.display_name.unwrap_or_else(|| value.clone()),
                        )];
                    }
                }
                _ => {}
            }
        }
        Ok(IssueFormConfig {
            fields,
            project_id: project.id.clone(),
            issue_type_id: issue_type.id.clone(),
        })
    }
}
