//! Inbound sync: Jira says who is assigned and whether the issue is done, and the
//! linked groups follow (Sentry's `sync_group_assignee_inbound` and
//! `sync_status_inbound`).
//!
//! For one call, in one transaction (assignee calls are grouped several to a
//! transaction, with the same effect as one after another: see [`batch`]):
//! 1. every organization's record of the issue is locked (id order), so calls for
//!    one issue apply one after another;
//! 2. per record, [`rule`] decides whether the event reaches the record's groups
//!    (sync enabled, not stale) and moves the record's watermark;
//! 3. the linked groups are locked (id order) and changed: each effective change
//!    writes an activity and its notifications ([`crate::groups::effects`]); a
//!    change to the state a group is already in writes nothing (`UNCHANGED`).
//!
//! Assignment picks, per group, the lowest-id user who is active, owns a
//! verified address equal (ignoring case) to Jira's, and has access to the group's
//! project. No such user: `NO_MATCHING_USER`, the group is untouched.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait as _, ActiveValue::Set, ColumnTrait as _, EntityTrait as _, QueryFilter as _,
    QueryOrder as _, QuerySelect as _,
};
use serde::Serialize;
use service_runtime::database::Database;
use service_runtime::idempotency::{IdempotencyKey, idempotent_write};
use service_runtime::ids::{IntegrationId, RequestId};
use service_runtime::shapes::in_list;

use crate::domain::records::GroupSyncResult;
use crate::domain::{
    Email, GroupId, GroupStatus, OrganizationId, StatusAction, SyncOutcome, UserId,
};
use crate::error::AssignmentError;
use crate::external_issues::{IssueRecord, IssueRef, lock_records, store_sync_state};
use crate::groups::effects::{Change, Effects, GroupFacts, Origin};
use crate::storage::entities::{group, group_assignee, group_link, installation};

mod batch;
pub mod batcher;
mod rule;

pub use batch::{AssigneeCall, sync_assignee_many};

use rule::{Direction, Event, admit};

/// Who Jira says is assigned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum AssigneeTarget {
    /// The user whose verified address matches.
    Email(Email),
    /// Nobody.
    Unassign,
}

/// An inbound assignee change.
#[derive(Debug, Clone, Serialize)]
pub struct AssigneeChange {
    /// The issue.
    pub issue: IssueRef,
    /// The new assignee.
    pub target: AssigneeTarget,
    /// Jira's `issue.fields.updated`; `None` applies without ordering.
    pub provider_time: Option<DateTime<Utc>>,
    /// The integration the change came from (the loop guard).
    pub source: IntegrationId,
    /// The causing request's W3C trace context; not part of the request's
    /// identity, so a retry with another trace is still a repeat.
    #[serde(skip)]
    pub traceparent: String,
}

/// An inbound status change.
#[derive(Debug, Clone, Serialize)]
pub struct StatusChange {
    /// The issue.
    pub issue: IssueRef,
    /// Resolve or reopen.
    pub action: StatusAction,
    /// Jira's `issue.fields.updated`; `None` applies without ordering.
    pub provider_time: Option<DateTime<Utc>>,
    /// The integration the change came from.
    pub source: IntegrationId,
    /// The causing request's W3C trace context (not part of its identity).
    #[serde(skip)]
    pub traceparent: String,
}

/// The outcome of a sync call: one result per linked group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct SyncResponse {
    /// One result per linked group, by organization then group.
    pub results: Vec<GroupSyncResult>,
}

fn result(
    organization_id: OrganizationId,
    group_id: GroupId,
    outcome: SyncOutcome,
    user_id: Option<UserId>,
    previous_user_id: Option<UserId>,
) -> GroupSyncResult {
    GroupSyncResult {
        organization_id,
        group_id,
        outcome,
        user_id,
        previous_user_id,
    }
}

/// Where a change applied to `record` came from.
fn origin(
    record: &IssueRecord,
    issue: &IssueRef,
    source: &IntegrationId,
    request_id: Option<&RequestId>,
    traceparent: &str,
) -> Origin {
    Origin {
        source_integration_id: Some(source.clone()),
        integration_id: Some(issue.integration_id.clone()),
        issue_key: Some(record.key.clone()),
        request_id: request_id.cloned(),
        traceparent: traceparent.to_owned(),
        actor: None,
    }
}

/// Applies an inbound assignee change (a group of one; see [`batch`]).
///
/// # Errors
/// Database errors; `RequestIdReused`.
pub async fn sync_assignee(
    db: &Database,
    change: AssigneeChange,
    request_id: Option<&RequestId>,
) -> Result<SyncResponse, AssignmentError> {
    let call = AssigneeCall {
        change,
        request_id: request_id.cloned(),
    };
    sync_assignee_many(db, std::slice::from_ref(&call))
        .await?
        .pop()
        .unwrap_or_else(|| Err(AssignmentError::Corrupt("a call got no answer".into())))
}

/// Applies an inbound status change.
///
/// # Errors
/// Database errors.
pub async fn sync_status(
    db: &Database,
    change: StatusChange,
    request_id: Option<&RequestId>,
) -> Result<SyncResponse, AssignmentError> {
    let key = IdempotencyKey::new("SyncStatusInbound", request_id, &change);
    let request_id = request_id.cloned();
    idempotent_write(db, key, move |txn| {
        Box::pin(async move {
            let mut records = lock_records(txn, &change.issue).await?;
            if records.is_empty() {
                return Ok(SyncResponse {
                    results: Vec::new(),
                });
            }
            let enabled: HashSet<i64> = installation::Entity::find()
                .filter(
                    installation::Column::IntegrationId.eq(change.issue.integration_id.as_str()),
                )
                .filter(
                    installation::Column::OrganizationId
                        .is_in(in_list(records.iter().map(|r| r.organization_id.get()))),
                )
                .filter(installation::Column::SyncStatusReverse.eq(true))
                .all(txn)
                .await?
                .into_iter()
                .map(|i| i.organization_id)
                .collect();
            let event = Event {
                direction: Direction::Status,
                provider_time: change.provider_time,
                jira_issue_id: change.issue.jira_issue_id.as_ref(),
            };
            let mut verdicts = Vec::with_capacity(records.len());
            let mut changed = Vec::new();
            for record in &mut records {
                let admission = admit(
                    record,
                    enabled.contains(&record.organization_id.get()),
                    &event,
                );
                if admission.changed {
                    changed.push(record.clone());
                }
                verdicts.push(admission.verdict);
            }
            store_sync_state(txn, &changed).await?;

            let links = group_link::Entity::find()
                .filter(
                    group_link::Column::ExternalIssueId
                        .is_in(in_list(records.iter().map(|r| r.id.get()))),
                )
                .all(txn)
                .await?;
            let groups: HashMap<i64, group::Model> = group::Entity::find()
                .filter(group::Column::Id.is_in(in_list(links.iter().map(|l| l.group_id))))
                .order_by_asc(group::Column::Id)
                .lock_exclusive()
                .all(txn)
                .await?
                .into_iter()
                .map(|g| (g.id, g))
                .collect();
            let assignees: HashMap<i64, UserId> = group_assignee::Entity::find()
                .filter(group_assignee::Column::GroupId.is_in(in_list(groups.keys().copied())))
                .all(txn)
                .await?
                .into_iter()
                .map(|a| (a.group_id, UserId::from_row(a.user_id)))
                .collect();
            let wanted = change.action.target_status();

            let mut results = Vec::new();
            let mut effects = Effects::default();
            for (record, verdict) in records.iter().zip(verdicts) {
                let origin = origin(
                    record,
                    &change.issue,
                    &change.source,
                    request_id.as_ref(),
                    &change.traceparent,
                );
                let mut linked: Vec<&group::Model> = links
                    .iter()
                    .filter(|l| l.external_issue_id == record.id.get())
                    .filter_map(|l| groups.get(&l.group_id))
                    .collect();
                linked.sort_by_key(|g| g.id);
                for group in linked {
                    let group_id = GroupId::from_row(group.id);
                    let organization_id = OrganizationId::from_row(group.organization_id);
                    let assignee = assignees.get(&group.id).copied();
                    let outcome = match verdict {
                        Some(verdict) => verdict,
                        None if GroupStatus::from_stored(&group.status) == Some(wanted) => {
                            SyncOutcome::Unchanged
                        }
                        None => {
                            let mut active: group::ActiveModel = group.clone().into();
                            active.status = Set(wanted.as_str().to_owned());
                            active.update(txn).await?;
                            let (change, outcome) = match change.action {
                                StatusAction::Resolve => {
                                    (Change::Resolved { assignee }, SyncOutcome::Resolved)
                                }
                                StatusAction::Unresolve => {
                                    (Change::Unresolved { assignee }, SyncOutcome::Unresolved)
                                }
                            };
                            let facts = GroupFacts {
                                id: group_id,
                                organization_id,
                                title: &group.title,
                            };
                            effects.record(facts, change, &origin);
                            outcome
                        }
                    };
                    results.push(result(organization_id, group_id, outcome, assignee, None));
                }
            }
            effects.write(txn).await?;
            Ok(SyncResponse { results })
        })
    })
    .await
}
