//! Status mappings: per installation (integration and organization), which
//! Jira status a resolve and a reopen move an issue of each Jira project to
//! (Sentry's `sync_status_forward` configuration).
//!
//! A mapping names both statuses; both must be statuses of that project (as
//! Jira's `GET /rest/api/2/project/{id}/statuses` lists them), so a status of
//! another project's workflow, which Jira would refuse at the transition, is
//! refused when the mapping is set. Setting replaces the installation's whole
//! mapping, or nothing when any entry is invalid.

use std::collections::BTreeSet;

use sea_orm::{
    ActiveValue::Set, ColumnTrait as _, ConnectionTrait, EntityTrait as _, QueryFilter as _,
    QueryOrder as _,
};
use serde::{Deserialize, Serialize};
use service_runtime::database::Database;
use service_runtime::idempotency::{IdempotencyKey, idempotent_write};
use service_runtime::ids::{IntegrationId, RequestId};
use service_runtime::status::FieldViolation;
use service_runtime::time::now;

use crate::domain::Integration;
use crate::error::TrackerError;
use crate::jira::model::Status;
use crate::jira::{JiraClient, JiraError};
use crate::storage::entities::status_mapping;

/// One Jira project's mapping.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusMapping {
    /// The Jira project's id.
    pub jira_project_id: String,
    /// The status a resolve moves an issue to.
    pub on_resolve: String,
    /// The status a reopen moves an issue to.
    pub on_unresolve: String,
}

/// Whose mapping.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Installation {
    /// The integration.
    pub integration_id: IntegrationId,
    /// The organization.
    pub organization_id: i64,
}

/// The most projects one installation maps.
pub const MAX_MAPPED_PROJECTS: usize = 200;

/// The mapping of one project, if the installation has one.
///
/// # Errors
/// Database errors.
pub async fn for_project<C: ConnectionTrait>(
    conn: &C,
    installation: &Installation,
    jira_project_id: &str,
) -> Result<Option<StatusMapping>, TrackerError> {
    Ok(status_mapping::Entity::find()
        .filter(status_mapping::Column::IntegrationId.eq(installation.integration_id.as_str()))
        .filter(status_mapping::Column::OrganizationId.eq(installation.organization_id))
        .filter(status_mapping::Column::JiraProjectId.eq(jira_project_id))
        .one(conn)
        .await?
        .map(from_row))
}

fn from_row(row: status_mapping::Model) -> StatusMapping {
    StatusMapping {
        jira_project_id: row.jira_project_id,
        on_resolve: row.on_resolve_status_id,
        on_unresolve: row.on_unresolve_status_id,
    }
}

/// The installation's whole mapping, by project id.
///
/// # Errors
/// Database errors.
pub async fn list<C: ConnectionTrait>(
    conn: &C,
    installation: &Installation,
) -> Result<Vec<StatusMapping>, TrackerError> {
    Ok(status_mapping::Entity::find()
        .filter(status_mapping::Column::IntegrationId.eq(installation.integration_id.as_str()))
        .filter(status_mapping::Column::OrganizationId.eq(installation.organization_id))
        .order_by_asc(status_mapping::Column::JiraProjectId)
        .all(conn)
        .await?
        .into_iter()
        .map(from_row)
        .collect())
}

/// A project's statuses (each once, across its issue types), as Jira lists
/// them.
///
/// # Errors
/// Jira's error.
pub async fn project_statuses(
    jira: &JiraClient,
    integration: &Integration,
    jira_project_id: &str,
) -> Result<Vec<Status>, JiraError> {
    let per_type = jira
        .site(integration)
        .project_statuses(jira_project_id)
        .await?;
    let mut seen = BTreeSet::new();
    Ok(per_type
        .into_iter()
        .flat_map(|t| t.statuses)
        .filter(|s| seen.insert(s.id.clone()))
        .collect())
}

/// Checks each mapping's statuses against its project's, asking Jira; every
/// problem is a violation naming the field (`mappings[i].…`).
///
/// # Errors
/// Jira's error when it cannot be asked (not when a project is unknown: that
/// is a violation).
pub async fn check_against_jira(
    jira: &JiraClient,
    integration: &Integration,
    mappings: &[StatusMapping],
) -> Result<Vec<FieldViolation>, TrackerError> {
    let mut violations = Vec::new();
    for (i, mapping) in mappings.iter().enumerate() {
        let statuses = match project_statuses(jira, integration, &mapping.jira_project_id).await {
            Ok(statuses) => statuses,
            Err(JiraError::NotFound { .. }) => {
                violations.push(FieldViolation::new(
                    format!("mappings[{i}].jira_project_id"),
                    format!(
                        "Jira has no project {} (or the integration cannot see it)",
                        mapping.jira_project_id
                    ),
                ));
                continue;
            }
            Err(error) => return Err(error.into()),
        };
        for (field, status) in [
            ("on_resolve_status_id", &mapping.on_resolve),
            ("on_unresolve_status_id", &mapping.on_unresolve),
        ] {
            if !statuses.iter().any(|s| &s.id == status) {
                violations.push(FieldViolation::new(
                    format!("mappings[{i}].{field}"),
                    format!(
                        "status {status} is not one of project {}'s statuses ({})",
                        mapping.jira_project_id,
                        statuses
                            .iter()
                            .map(|s| format!("{} {}", s.id, s.name))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
        }
    }
    Ok(violations)
}

/// Replaces the installation's mapping (idempotent by `request_id`).
///
/// # Errors
/// Database errors; `RequestIdReused`.
pub async fn replace(
    db: &Database,
    installation: Installation,
    mappings: Vec<StatusMapping>,
    request_id: Option<&RequestId>,
) -> Result<Vec<StatusMapping>, TrackerError> {
    let key = IdempotencyKey::new("SetStatusMappings", request_id, &(&installation, &mappings));
    idempotent_write(db, key, move |txn| {
        Box::pin(async move {
            status_mapping::Entity::delete_many()
                .filter(
                    status_mapping::Column::IntegrationId.eq(installation.integration_id.as_str()),
                )
                .filter(status_mapping::Column::OrganizationId.eq(installation.organization_id))
                .exec(txn)
                .await?;
            let time = now();
            let rows: Vec<status_mapping::ActiveModel> = mappings
                .iter()
                .map(|m| status_mapping::ActiveModel {
                    integration_id: Set(installation.integration_id.as_str().to_owned()),
                    organization_id: Set(installation.organization_id),
                    jira_project_id: Set(m.jira_project_id.clone()),
                    on_resolve_status_id: Set(m.on_resolve.clone()),
                    on_unresolve_status_id: Set(m.on_unresolve.clone()),
                    updated_at: Set(time),
                })
                .collect();
            if !rows.is_empty() {
                status_mapping::Entity::insert_many(rows)
                    .exec_without_returning(txn)
                    .await?;
            }
            list(txn, &installation).await
        })
    })
    .await
}
