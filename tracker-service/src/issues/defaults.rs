//! Remembered create-form defaults (Sentry's
//! `get_persisted_default_config_fields` and
//! `get_persisted_user_default_config_fields`): after a CreateIssue, the
//! project, issue type, priority and labels it used are remembered for its
//! organization, and the reporter for the acting user; the next form of that
//! organization (and user) is pre-filled with them. A value the caller passes
//! (a project, an issue type) wins over a remembered one.

use std::collections::BTreeMap;

use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveValue::Set, ColumnTrait as _, ConnectionTrait, EntityTrait as _, QueryFilter as _,
};
use service_runtime::database::Database;
use service_runtime::ids::IntegrationId;
use service_runtime::time::now;

use super::create::FormSnapshot;
use crate::error::TrackerError;
use crate::jira::fields::FormValue;
use crate::storage::entities::issue_default;

/// Fields remembered per organization.
pub const ORGANIZATION_FIELDS: &[&str] = &["project", "issuetype", "priority", "labels"];
/// Fields remembered per acting user.
pub const USER_FIELDS: &[&str] = &["reporter"];

const ORGANIZATION_SCOPE: &str = "organization";

fn user_scope(user: i64) -> String {
    format!("user:{user}")
}

fn text(value: Option<&FormValue>) -> Option<String> {
    match value? {
        FormValue::Text(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        FormValue::Number(n) => Some(n.to_string()),
        FormValue::List(items) if !items.is_empty() => Some(items.join(", ")),
        _ => None,
    }
}

/// The values a creation leaves behind, by (scope, field).
fn remembered(form: &FormSnapshot, actor: Option<i64>) -> Vec<(String, &'static str, String)> {
    let mut out = vec![
        (
            ORGANIZATION_SCOPE.to_owned(),
            "project",
            form.project_id.clone(),
        ),
        (
            ORGANIZATION_SCOPE.to_owned(),
            "issuetype",
            form.issue_type_id.clone(),
        ),
    ];
    for field in ["priority", "labels"] {
        if let Some(value) = text(form.fields.get(field)) {
            out.push((ORGANIZATION_SCOPE.to_owned(), field, value));
        }
    }
    if let Some(actor) = actor
        && let Some(reporter) = text(form.fields.get("reporter"))
    {
        out.push((user_scope(actor), "reporter", reporter));
    }
    out
}

/// Remembers what a creation used.
///
/// # Errors
/// Database errors.
pub async fn remember(
    db: &Database,
    integration: &IntegrationId,
    organization_id: i64,
    actor: Option<i64>,
    form: &FormSnapshot,
) -> Result<(), TrackerError> {
    let time = now();
    let rows: Vec<issue_default::ActiveModel> = remembered(form, actor)
        .into_iter()
        .map(|(scope, field, value)| issue_default::ActiveModel {
            integration_id: Set(integration.as_str().to_owned()),
            organization_id: Set(organization_id),
            scope: Set(scope),
            field: Set(field.to_owned()),
            value: Set(value),
            updated_at: Set(time),
        })
        .collect();
    let upsert = issue_default::Entity::insert_many(rows)
        .on_conflict(
            OnConflict::columns([
                issue_default::Column::IntegrationId,
                issue_default::Column::OrganizationId,
                issue_default::Column::Scope,
                issue_default::Column::Field,
            ])
            .update_columns([
                issue_default::Column::Value,
                issue_default::Column::UpdatedAt,
            ])
            .to_owned(),
        )
        .exec_without_returning(db.conn());
    db.gated(upsert).await?;
    Ok(())
}

/// The remembered defaults of an organization, with the acting user's on top.
///
/// # Errors
/// Database errors.
pub async fn recall<C: ConnectionTrait>(
    conn: &C,
    integration: &IntegrationId,
    organization_id: i64,
    actor: Option<i64>,
) -> Result<BTreeMap<String, String>, TrackerError> {
    let mut scopes = vec![ORGANIZATION_SCOPE.to_owned()];
    if let Some(actor) = actor {
        scopes.push(user_scope(actor));
    }
    let rows = issue_default::Entity::find()
        .filter(issue_default::Column::IntegrationId.eq(integration.as_str()))
        .filter(issue_default::Column::OrganizationId.eq(organization_id))
        .filter(issue_default::Column::Scope.is_in(scopes))
        .all(conn)
        .await?;
    let mut defaults = BTreeMap::new();
    // Organization first, the user's on top.
    for row in rows.iter().filter(|r| r.scope == ORGANIZATION_SCOPE) {
        if ORGANIZATION_FIELDS.contains(&row.field.as_str()) {
            defaults.insert(row.field.clone(), row.value.clone());
        }
    }
    for row in rows.iter().filter(|r| r.scope != ORGANIZATION_SCOPE) {
        if USER_FIELDS.contains(&row.field.as_str()) {
            defaults.insert(row.field.clone(), row.value.clone());
        }
    }
    Ok(defaults)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_creation_leaves_its_project_type_priority_labels_and_reporter_behind() {
        let form = FormSnapshot {
            project_id: "10000".into(),
            issue_type_id: "1".into(),
            title: "t".into(),
            description: String::new(),
            fields: BTreeMap::from([
                ("priority".to_owned(), FormValue::Text("2".into())),
                (
                    "labels".to_owned(),
                    FormValue::List(vec!["a".into(), "b".into()]),
                ),
                ("reporter".to_owned(), FormValue::Text("acc-1".into())),
                ("customfield_1".to_owned(), FormValue::Text("x".into())),
            ]),
        };
        let left: Vec<(String, &str, String)> = remembered(&form, Some(7));
        assert_eq!(
            left,
            vec![
                ("organization".to_owned(), "project", "10000".to_owned()),
                ("organization".to_owned(), "issuetype", "1".to_owned()),
                ("organization".to_owned(), "priority", "2".to_owned()),
                ("organization".to_owned(), "labels", "a, b".to_owned()),
                ("user:7".to_owned(), "reporter", "acc-1".to_owned()),
            ]
        );
        // Without an acting user, no reporter is remembered.
        assert_eq!(remembered(&form, None).len(), 4);
    }
}
