//! Actions on a group from our side (GroupService): assign, unassign, resolve,
//! reopen.
//!
//! One transaction per action: the group row is locked, the action compared
//! with the group's state (the same state again changes nothing: no activity,
//! no notification, nothing for Jira), and an effective change recorded through
//! [`super::effects`] with the acting user, which writes its activity, what
//! linked Jira issues must now show (the outbound log) and the notifications.
//! An assignee must be active and have access to the group's project.

use sea_orm::{
    ActiveModelTrait as _, ActiveValue::Set, ColumnTrait as _, DatabaseTransaction,
    EntityTrait as _, QueryFilter as _, QuerySelect as _,
};
use serde::{Deserialize, Serialize};
use service_runtime::database::Database;
use service_runtime::idempotency::{IdempotencyKey, idempotent_write};
use service_runtime::ids::RequestId;
use service_runtime::time::now;

use super::effects::{Change, Effects, GroupFacts, Origin};
use super::get_group;
use crate::domain::records::Group;
use crate::domain::{GroupId, GroupStatus, OrganizationId, UserId};
use crate::error::{AssignmentError, Reason, Refusal};
use crate::storage::entities::{group, group_assignee, project_member, user};

/// What to do to a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Action {
    /// Assign it to this user.
    Assign(UserId),
    /// Remove its assignee.
    Unassign,
    /// Resolve it.
    Resolve,
    /// Reopen it.
    Unresolve,
}

/// An action, on a group, by an optional acting user.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct GroupAction {
    /// The group.
    pub group_id: GroupId,
    /// What to do.
    pub action: Action,
    /// Who acts (recorded on the activity, never told of their own change).
    pub actor: Option<UserId>,
}

/// The group after an action, and whether the action changed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionResult {
    /// The group as it is now.
    pub group: Group,
    /// False when the group already was in the requested state.
    pub changed: bool,
}

fn not_found(resource: &'static str, id: impl std::fmt::Display) -> AssignmentError {
    AssignmentError::NotFound {
        resource,
        id: id.to_string(),
    }
}

fn not_eligible(user: UserId, why: &str, message: String) -> AssignmentError {
    Refusal::new(Reason::AssigneeNotEligible, message)
        .with("why", why)
        .with("user_id", user.to_string())
        .into()
}

/// Applies `action`; a repeat of `request_id` returns the first result.
///
/// # Errors
/// NOT_FOUND (group, user, acting user), FAILED_PRECONDITION
/// (`ASSIGNEE_NOT_ELIGIBLE`), `RequestIdReused`, database errors.
pub async fn act(
    db: &Database,
    action: GroupAction,
    request_id: Option<&RequestId>,
    traceparent: &str,
) -> Result<ActionResult, AssignmentError> {
    let key = IdempotencyKey::new("GroupAction", request_id, &action);
    let request_id = request_id.cloned();
    let traceparent = traceparent.to_owned();
    idempotent_write(db, key, move |txn| {
        Box::pin(async move {
            let row = group::Entity::find_by_id(action.group_id.get())
                .lock_exclusive()
                .one(txn)
                .await?
                .ok_or_else(|| not_found("group", action.group_id))?;
            if let Some(actor) = action.actor
                && user::Entity::find_by_id(actor.get())
                    .one(txn)
                    .await?
                    .is_none()
            {
                return Err(not_found("user", actor));
            }
            let change = decide(txn, &row, action.action).await?;
            if let Some(change) = change {
                let mut effects = Effects::default();
                let facts = GroupFacts {
                    id: action.group_id,
                    organization_id: OrganizationId::from_row(row.organization_id),
                    title: &row.title,
                };
                let origin = Origin {
                    request_id: request_id.clone(),
                    traceparent: traceparent.clone(),
                    actor: action.actor,
                    ..Origin::default()
                };
                effects.record(facts, change, &origin);
                effects.write(txn).await?;
            }
            Ok(ActionResult {
                group: get_group(txn, action.group_id).await?,
                changed: change.is_some(),
            })
        })
    })
    .await
}

/// Writes the action's change to the group, if it changes anything, and says
/// what changed.
async fn decide(
    txn: &DatabaseTransaction,
    row: &group::Model,
    action: Action,
) -> Result<Option<Change>, AssignmentError> {
    let current = group_assignee::Entity::find_by_id(row.id)
        .one(txn)
        .await?
        .map(|a| UserId::from_row(a.user_id));
    match action {
        Action::Assign(user) => {
            check_eligible(txn, row, user).await?;
            if current == Some(user) {
                return Ok(None);
            }
            group_assignee::Entity::delete_by_id(row.id)
                .exec(txn)
                .await?;
            group_assignee::ActiveModel {
                group_id: Set(row.id),
                user_id: Set(user.get()),
                assigned_at: Set(now()),
            }
            .insert(txn)
            .await?;
            Ok(Some(Change::Assigned {
                user,
                previous: current,
            }))
        }
        Action::Unassign => {
            let Some(previous) = current else {
                return Ok(None);
            };
            group_assignee::Entity::delete_by_id(row.id)
                .exec(txn)
                .await?;
            Ok(Some(Change::Unassigned { previous }))
        }
        Action::Resolve | Action::Unresolve => {
            let wanted = if action == Action::Resolve {
                GroupStatus::Resolved
            } else {
                GroupStatus::Unresolved
            };
            if GroupStatus::from_stored(&row.status) == Some(wanted) {
                return Ok(None);
            }
            let mut active: group::ActiveModel = row.clone().into();
            active.status = Set(wanted.as_str().to_owned());
            active.update(txn).await?;
            Ok(Some(if wanted == GroupStatus::Resolved {
                Change::Resolved { assignee: current }
            } else {
                Change::Unresolved { assignee: current }
            }))
        }
    }
}

/// An assignee must exist, be active, and have access to the group's project.
async fn check_eligible(
    txn: &DatabaseTransaction,
    row: &group::Model,
    user_id: UserId,
) -> Result<(), AssignmentError> {
    let user = user::Entity::find_by_id(user_id.get())
        .one(txn)
        .await?
        .ok_or_else(|| not_found("user", user_id))?;
    if !user.active {
        return Err(not_eligible(
            user_id,
            "inactive",
            format!("user {user_id} is inactive and cannot be assigned"),
        ));
    }
    let member = project_member::Entity::find()
        .filter(project_member::Column::ProjectId.eq(row.project_id))
        .filter(project_member::Column::UserId.eq(user_id.get()))
        .one(txn)
        .await?;
    if member.is_none() {
        return Err(not_eligible(
            user_id,
            "no_project_access",
            format!(
                "user {user_id} has no access to project {} of group {}; grant it first (DirectoryService.GrantProjectAccess)",
                row.project_id, row.id
            ),
        ));
    }
    Ok(())
}
