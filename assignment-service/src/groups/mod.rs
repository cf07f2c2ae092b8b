//! Groups and their audit trail: creating, reading and listing them.
//!
//! Groups change only through inbound sync ([`crate::inbound_sync`]) and linking
//! ([`crate::external_issues`]); this module reads them back with their assignee
//! and linked issues.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Query;
use sea_orm::{
    ActiveModelTrait as _, ActiveValue::Set, ColumnTrait as _, ConnectionTrait, EntityTrait as _,
    QueryFilter as _, QueryOrder as _, QuerySelect as _,
};
use serde::Serialize;
use service_runtime::database::Database;
use service_runtime::ids::{IntegrationId, IssueKey, RequestId};
use service_runtime::pagination::PageRequest;
use service_runtime::shapes::in_list;
use service_runtime::time::now;

use crate::directory::get_project;
use crate::domain::records::{Activity, Group, LinkedIssue, Page};
use crate::domain::{
    ActivityId, ActivityKind, GroupId, GroupStatus, OrganizationId, ProjectId, UserId,
};
use crate::error::AssignmentError;
use crate::storage::entities::{activity, external_issue, group, group_assignee, group_link};

pub mod actions;
pub mod effects;
pub mod participants;
use service_runtime::idempotency::{IdempotencyKey, idempotent_write};

/// A new group.
#[derive(Debug, Clone, Serialize)]
pub struct NewGroup {
    /// Its project.
    pub project_id: ProjectId,
    /// Its title.
    pub title: String,
}

/// How [`list_groups`] filters by assignee.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssigneeFilter {
    /// Only groups assigned to this user.
    User(UserId),
    /// Only unassigned groups.
    Unassigned,
}

/// Filters of [`list_groups`]; they combine with AND.
#[derive(Debug, Clone, Default)]
pub struct GroupFilter {
    /// Only this organization's groups.
    pub organization_id: Option<OrganizationId>,
    /// Only this project's groups.
    pub project_id: Option<ProjectId>,
    /// Only groups with this assignee (or none).
    pub assignee: Option<AssigneeFilter>,
    /// Only groups with this status.
    pub status: Option<GroupStatus>,
}

fn corrupt(what: &str) -> AssignmentError {
    AssignmentError::Corrupt(what.to_owned())
}

/// Turns group rows into groups with their assignee and linked issues.
pub(crate) async fn groups_with_details<C: ConnectionTrait>(
    conn: &C,
    rows: Vec<group::Model>,
) -> Result<Vec<Group>, AssignmentError> {
    let ids: Vec<i64> = rows.iter().map(|g| g.id).collect();
    let assignees: HashMap<i64, (UserId, DateTime<Utc>)> = group_assignee::Entity::find()
        .filter(group_assignee::Column::GroupId.is_in(in_list(ids.clone())))
        .all(conn)
        .await?
        .into_iter()
        .map(|a| (a.group_id, (UserId::from_row(a.user_id), a.assigned_at)))
        .collect();
    let links = group_link::Entity::find()
        .filter(group_link::Column::GroupId.is_in(in_list(ids)))
        .order_by_asc(group_link::Column::Id)
        .all(conn)
        .await?;
    let issues: HashMap<i64, external_issue::Model> = external_issue::Entity::find()
        .filter(
            external_issue::Column::Id.is_in(in_list(
                links
                    .iter()
                    .map(|l| l.external_issue_id)
                    .collect::<Vec<_>>(),
            )),
        )
        .all(conn)
        .await?
        .into_iter()
        .map(|i| (i.id, i))
        .collect();
    rows.into_iter()
        .map(|row| {
            let linked_issues = links
                .iter()
                .filter(|l| l.group_id == row.id)
                .filter_map(|l| issues.get(&l.external_issue_id))
                .map(|issue| {
                    Ok(LinkedIssue {
                        integration_id: IntegrationId::parse(&issue.integration_id)
                            .map_err(|_| corrupt("external issue integration id"))?,
                        key: IssueKey::parse(&issue.issue_key)
                            .map_err(|_| corrupt("external issue key"))?,
                        url: issue.url.clone(),
                    })
                })
                .collect::<Result<Vec<_>, AssignmentError>>()?;
            Ok(Group {
                id: GroupId::from_row(row.id),
                organization_id: OrganizationId::from_row(row.organization_id),
                project_id: ProjectId::from_row(row.project_id),
                status: GroupStatus::from_stored(&row.status)
                    .ok_or_else(|| corrupt("group status"))?,
                title: row.title,
                assignee: assignees.get(&row.id).copied(),
                linked_issues,
                created_at: row.created_at,
            })
        })
        .collect()
}

fn activity_from_row(row: activity::Model) -> Result<Activity, AssignmentError> {
    Ok(Activity {
        id: ActivityId::from_row(row.id),
        group_id: GroupId::from_row(row.group_id),
        organization_id: OrganizationId::from_row(row.organization_id),
        kind: ActivityKind::from_stored(&row.kind).ok_or_else(|| corrupt("activity kind"))?,
        user_id: row.user_id.map(UserId::from_row),
        previous_user_id: row.previous_user_id.map(UserId::from_row),
        source_integration_id: row
            .source_integration_id
            .map(|s| IntegrationId::parse(&s).map_err(|_| corrupt("activity source")))
            .transpose()?,
        external_issue_key: row.external_issue_key,
        request_id: row.request_id,
        created_at: row.created_at,
        actor: row.actor_user_id.map(UserId::from_row),
    })
}

/// Reads a group with its assignee and linked issues, or NOT_FOUND.
///
/// # Errors
/// NOT_FOUND, or a database error.
pub async fn get_group<C: ConnectionTrait>(
    conn: &C,
    id: GroupId,
) -> Result<Group, AssignmentError> {
    let row = group::Entity::find_by_id(id.get())
        .one(conn)
        .await?
        .ok_or_else(|| AssignmentError::NotFound {
            resource: "group",
            id: id.to_string(),
        })?;
    groups_with_details(conn, vec![row])
        .await?
        .pop()
        .ok_or_else(|| corrupt("group vanished while reading"))
}

/// Creates an unresolved, unassigned group.
///
/// # Errors
/// NOT_FOUND for an unknown project.
pub async fn create_group(
    db: &Database,
    new: NewGroup,
    request_id: Option<&RequestId>,
) -> Result<Group, AssignmentError> {
    let key = IdempotencyKey::new("CreateGroup", request_id, &new);
    idempotent_write(db, key, move |txn| {
        Box::pin(async move {
            let project = get_project(txn, new.project_id).await?;
            let row = group::ActiveModel {
                organization_id: Set(project.organization_id.get()),
                project_id: Set(project.id.get()),
                title: Set(new.title),
                status: Set(GroupStatus::Unresolved.as_str().to_owned()),
                created_at: Set(now()),
                ..Default::default()
            }
            .insert(txn)
            .await?;
            get_group(txn, GroupId::from_row(row.id)).await
        })
    })
    .await
}

/// Lists groups by id.
///
/// # Errors
/// Database errors.
pub async fn list_groups(
    db: &Database,
    filter: &GroupFilter,
    page: &PageRequest<i64>,
) -> Result<Page<Group>, AssignmentError> {
    let mut query = group::Entity::find()
        .filter(group::Column::Id.gt(page.after.unwrap_or(0)))
        .order_by_asc(group::Column::Id)
        .limit(page.fetch_limit());
    if let Some(org) = filter.organization_id {
        query = query.filter(group::Column::OrganizationId.eq(org.get()));
    }
    if let Some(project) = filter.project_id {
        query = query.filter(group::Column::ProjectId.eq(project.get()));
    }
    if let Some(status) = filter.status {
        query = query.filter(group::Column::Status.eq(status.as_str()));
    }
    match filter.assignee {
        Some(AssigneeFilter::User(user)) => {
            let assigned = Query::select()
                .column(group_assignee::Column::GroupId)
                .from(group_assignee::Entity)
                .and_where(group_assignee::Column::UserId.eq(user.get()))
                .to_owned();
            query = query.filter(group::Column::Id.in_subquery(assigned));
        }
        Some(AssigneeFilter::Unassigned) => {
            let assigned = Query::select()
                .column(group_assignee::Column::GroupId)
                .from(group_assignee::Entity)
                .to_owned();
            query = query.filter(group::Column::Id.not_in_subquery(assigned));
        }
        None => {}
    }
    let mut rows = query.all(db.conn()).await?;
    let next_page_token = page.finish(&mut rows, |r| r.id);
    Ok(Page {
        items: groups_with_details(db.conn(), rows).await?,
        next_page_token,
    })
}

/// Lists a group's activities, oldest first.
///
/// # Errors
/// NOT_FOUND for an unknown group.
pub async fn list_activities(
    db: &Database,
    group_id: GroupId,
    page: &PageRequest<i64>,
) -> Result<Page<Activity>, AssignmentError> {
    if group::Entity::find_by_id(group_id.get())
        .one(db.conn())
        .await?
        .is_none()
    {
        return Err(AssignmentError::NotFound {
            resource: "group",
            id: group_id.to_string(),
        });
    }
    let mut rows = activity::Entity::find()
        .filter(activity::Column::GroupId.eq(group_id.get()))
        .filter(activity::Column::Id.gt(page.after.unwrap_or(0)))
        .order_by_asc(activity::Column::Id)
        .limit(page.fetch_limit())
        .all(db.conn())
        .await?;
    let next_page_token = page.finish(&mut rows, |r| r.id);
    Ok(Page {
        items: rows
            .into_iter()
            .map(activity_from_row)
            .collect::<Result<_, _>>()?,
        next_page_token,
    })
}
