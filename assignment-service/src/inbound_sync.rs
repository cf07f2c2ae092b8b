//! Inbound sync: Jira says who is assigned and whether the issue is done, and the
//! linked groups follow (Sentry's `sync_group_assignee_inbound` and
//! `sync_status_inbound`).
//!
//! For one call, in one transaction (assignee calls are grouped several to a
//! transaction, with the same effect as one after another: see [`batch`]):
//! 1. every organization's record of the issue is locked (id order), so calls for
//!    one issue apply one after another;
//! 2. per record, the installation decides whether this direction of sync is on
//!    (else every linked group is `SYNC_DISABLED`), and the record's watermark
//!    whether the event is current (older: `STALE`; equal: applied again; the
//!    watermark only moves forward);
//! 3. the linked groups are locked (id order) and changed: each effective change
//!    writes an activity and its notifications; a change to the state a group is
//!    already in writes nothing (`UNCHANGED`).
//!
//! Assignment picks, per group, the lowest-id user who is active, owns a
//! verified address equal (ignoring case) to Jira's, and has access to the group's
//! project. No such user: `NO_MATCHING_USER`, the group is untouched.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait as _, ActiveValue::Set, ColumnTrait as _, DatabaseTransaction,
    EntityTrait as _, QueryFilter as _, QueryOrder as _, QuerySelect as _,
};
use serde::Serialize;
use service_runtime::database::Database;
use service_runtime::ids::{IntegrationId, IssueKey, RequestId};
use service_runtime::time::now;

use crate::domain::records::GroupSyncResult;
use crate::domain::{
    ActivityId, ActivityKind, Email, GroupId, GroupStatus, NotificationKind, OrganizationId,
    StatusAction, SyncOutcome, UserId,
};
use crate::error::AssignmentError;
use crate::external_issues::{IssueRef, lock_records};
use crate::notification_log::{self, NotificationDraft};
use crate::storage::entities::{
    activity, external_issue, group, group_assignee, group_link, installation,
};
use service_runtime::idempotency::{IdempotencyKey, idempotent_write};

mod batch;
pub mod batcher;

pub use batch::{AssigneeCall, sync_assignee_many};

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

/// A locked record that sync may act on, with its linked groups.
#[derive(Debug)]
struct Target {
    record: external_issue::Model,
    groups: Vec<group::Model>,
    verdict: Option<SyncOutcome>,
}

/// Status sync: locks the issue's records and linked groups, and decides per
/// record whether sync applies (`verdict` is `SYNC_DISABLED` or `STALE` when it
/// does not). Advances the status watermarks of the records it applies to.
/// (Assignee sync does the same for many calls at once: see [`batch`].)
async fn lock_targets(
    txn: &DatabaseTransaction,
    issue: &IssueRef,
    provider_time: Option<DateTime<Utc>>,
) -> Result<Vec<Target>, AssignmentError> {
    let records = lock_records(txn, issue).await?;
    if records.is_empty() {
        return Ok(Vec::new());
    }
    let installations: HashMap<i64, installation::Model> = installation::Entity::find()
        .filter(installation::Column::IntegrationId.eq(issue.integration_id.as_str()))
        .filter(
            installation::Column::OrganizationId.is_in(
                records
                    .iter()
                    .map(|r| r.organization_id)
                    .collect::<Vec<_>>(),
            ),
        )
        .all(txn)
        .await?
        .into_iter()
        .map(|i| (i.organization_id, i))
        .collect();
    let links = group_link::Entity::find()
        .filter(
            group_link::Column::ExternalIssueId
                .is_in(records.iter().map(|r| r.id).collect::<Vec<_>>()),
        )
        .all(txn)
        .await?;
    let groups: HashMap<i64, group::Model> = group::Entity::find()
        .filter(group::Column::Id.is_in(links.iter().map(|l| l.group_id).collect::<Vec<_>>()))
        .order_by_asc(group::Column::Id)
        .lock_exclusive()
        .all(txn)
        .await?
        .into_iter()
        .map(|g| (g.id, g))
        .collect();

    let mut targets = Vec::with_capacity(records.len());
    for record in records {
        let mut linked: Vec<group::Model> = links
            .iter()
            .filter(|l| l.external_issue_id == record.id)
            .filter_map(|l| groups.get(&l.group_id).cloned())
            .collect();
        linked.sort_by_key(|g| g.id);
        let enabled = installations
            .get(&record.organization_id)
            .is_some_and(|i| i.sync_status_reverse);
        let watermark = record.status_watermark;
        let verdict = if !enabled {
            Some(SyncOutcome::SyncDisabled)
        } else if matches!((provider_time, watermark), (Some(t), Some(w)) if t < w) {
            Some(SyncOutcome::Stale)
        } else {
            None
        };
        let mut record = record;
        // Learn the Jira id from the call when the record lacks it.
        if record.jira_issue_id.is_none()
            && let Some(id) = &issue.jira_issue_id
        {
            let mut active: external_issue::ActiveModel = record.clone().into();
            active.jira_issue_id = Set(Some(id.as_str().to_owned()));
            record = active.update(txn).await?;
        }
        if verdict.is_none()
            && let Some(time) = provider_time
            && watermark.is_none_or(|w| time > w)
        {
            let mut active: external_issue::ActiveModel = record.clone().into();
            active.status_watermark = Set(Some(time));
            record = active.update(txn).await?;
        }
        targets.push(Target {
            record,
            groups: linked,
            verdict,
        });
    }
    Ok(targets)
}

/// One effective change to write: its activity, then notifications.
struct ActivityDraft<'a> {
    group: &'a group::Model,
    kind: ActivityKind,
    user_id: Option<i64>,
    previous_user_id: Option<i64>,
    source: &'a IntegrationId,
    issue_key: &'a str,
    request_id: Option<&'a RequestId>,
}

async fn write_activity(
    txn: &DatabaseTransaction,
    draft: ActivityDraft<'_>,
) -> Result<ActivityId, AssignmentError> {
    let row = activity_row(draft).insert(txn).await?;
    Ok(ActivityId::from_row(row.id))
}

/// The row `draft` describes, not yet written.
fn activity_row(draft: ActivityDraft<'_>) -> activity::ActiveModel {
    activity::ActiveModel {
        organization_id: Set(draft.group.organization_id),
        group_id: Set(draft.group.id),
        kind: Set(draft.kind.as_str().to_owned()),
        user_id: Set(draft.user_id),
        previous_user_id: Set(draft.previous_user_id),
        source_integration_id: Set(Some(draft.source.as_str().to_owned())),
        external_issue_key: Set(Some(draft.issue_key.to_owned())),
        request_id: Set(draft.request_id.map(|r| r.as_str().to_owned())),
        created_at: Set(now()),
        ..Default::default()
    }
}

fn result(
    group: &group::Model,
    outcome: SyncOutcome,
    user_id: Option<i64>,
    previous_user_id: Option<i64>,
) -> GroupSyncResult {
    GroupSyncResult {
        organization_id: OrganizationId::from_row(group.organization_id),
        group_id: GroupId::from_row(group.id),
        outcome,
        user_id: user_id.map(UserId::from_row),
        previous_user_id: previous_user_id.map(UserId::from_row),
    }
}

/// The notification drafts' common part for one group.
struct Notifier<'a> {
    issue_key: Option<IssueKey>,
    integration_id: &'a IntegrationId,
    traceparent: &'a str,
}

impl Notifier<'_> {
    fn draft(
        &self,
        group: &group::Model,
        recipient: i64,
        kind: NotificationKind,
        activity_id: ActivityId,
    ) -> NotificationDraft {
        NotificationDraft {
            recipient: UserId::from_row(recipient),
            organization_id: OrganizationId::from_row(group.organization_id),
            group_id: GroupId::from_row(group.id),
            group_title: group.title.clone(),
            issue_key: self.issue_key.clone(),
            integration_id: Some(self.integration_id.clone()),
            kind,
            activity_id,
            traceparent: self.traceparent.to_owned(),
        }
    }
}

/// The outcome of a sync call, plus the last notification sequence it wrote (to
/// wake the stream).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct SyncResponse {
    /// One result per linked group, by organization then group.
    pub results: Vec<GroupSyncResult>,
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
            let targets = lock_targets(txn, &change.issue, change.provider_time).await?;
            let all_groups: Vec<i64> = targets
                .iter()
                .flat_map(|t| t.groups.iter().map(|g| g.id))
                .collect();
            let assignees: HashMap<i64, i64> = group_assignee::Entity::find()
                .filter(group_assignee::Column::GroupId.is_in(all_groups))
                .all(txn)
                .await?
                .into_iter()
                .map(|a| (a.group_id, a.user_id))
                .collect();
            let wanted = change.action.target_status();
            let (activity_kind, notification_kind, outcome) = match change.action {
                StatusAction::Resolve => (
                    ActivityKind::Resolved,
                    NotificationKind::Resolved,
                    SyncOutcome::Resolved,
                ),
                StatusAction::Unresolve => (
                    ActivityKind::Unresolved,
                    NotificationKind::Unresolved,
                    SyncOutcome::Unresolved,
                ),
            };

            let mut results = Vec::new();
            let mut notifications = Vec::new();
            for target in &targets {
                let notifier = Notifier {
                    issue_key: IssueKey::parse(&target.record.issue_key).ok(),
                    integration_id: &change.issue.integration_id,
                    traceparent: &change.traceparent,
                };
                for group in &target.groups {
                    let assignee = assignees.get(&group.id).copied();
                    if let Some(verdict) = target.verdict {
                        results.push(result(group, verdict, assignee, None));
                        continue;
                    }
                    if GroupStatus::from_stored(&group.status) == Some(wanted) {
                        results.push(result(group, SyncOutcome::Unchanged, assignee, None));
                        continue;
                    }
                    let mut active: group::ActiveModel = group.clone().into();
                    active.status = Set(wanted.as_str().to_owned());
                    active.update(txn).await?;
                    let activity = write_activity(
                        txn,
                        ActivityDraft {
                            group,
                            kind: activity_kind,
                            user_id: assignee,
                            previous_user_id: None,
                            source: &change.source,
                            issue_key: &target.record.issue_key,
                            request_id: request_id.as_ref(),
                        },
                    )
                    .await?;
                    if let Some(user) = assignee {
                        notifications.push(notifier.draft(
                            group,
                            user,
                            notification_kind,
                            activity,
                        ));
                    }
                    results.push(result(group, outcome, assignee, None));
                }
            }
            notification_log::append(txn, notifications).await?;
            Ok(SyncResponse { results })
        })
    })
    .await
}
