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
        let projects = site.projects().await?.values;
        let project_id = if request.project_id.is_empty() {
            projects.first().map(|p| p.id.clone()).ok_or_else(|| {
                TrackerError::refused(
                    Reason::NoJiraProjects,
                    "the integration's Jira account sees no project",
                )
            })?
        } else {
            request.project_id.clone()
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
            .find(|t| t.id == request.issue_type_id)
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
        let priorities = if issue_type.fields.contains("priority") {
            site.priorities().await?
        } else {
            Vec::new()
        };
        let versions = if issue_type.fields.contains("fixVersions") {
            site.versions(&project.key).await?
        } else {
            Vec::new()
        };
        let search_url = format!("/integrations/{}/search?field=", integration.id);
        let fields = build(&FormInput {
            projects: &projects,
            project,
            issue_type,
            priorities: &priorities,
            versions: &versions,
            search_url: &search_url,
        });
        Ok(IssueFormConfig {
            fields,
            project_id: project.id.clone(),
            issue_type_id: issue_type.id.clone(),
        })
    }
}
