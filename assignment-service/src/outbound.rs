//! The outbound log: what linked Jira issues must show after a group changed.
//!
//! Every effective assignee or status change of a group (a GroupService action
//! or inbound sync) is recorded by [`crate::groups::effects`]; when the
//! transaction writes its effects, this module appends one entry per linked
//! external issue whose organization installed the integration with the
//! matching forward setting on (`sync_forward_assignment`,
//! `sync_status_forward`). The entry carries the group's state as of the
//! transaction (sync is state-based: a reader applies the newest entry of an
//! issue and direction and may skip older ones), so two changes of one issue in
//! one transaction leave one entry.
//!
//! **Loop guard.** A change that came from integration X still appends an entry
//! for X's issue, marked `from_source`: Jira already shows it, so the reader
//! sends nothing, but the entry supersedes older entries of that issue (a local
//! change not yet sent loses to the Jira change applied after it). Other
//! integrations the group is linked through get ordinary entries.
//!
//! Sequences are commit-ordered ([`crate::commit_log`]); the tracker reads the
//! log with `WatchOutboundSyncs`, resuming after the last sequence it stored.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue::Set, ColumnTrait as _, ConnectionTrait, DatabaseConnection, DatabaseTransaction,
    EntityTrait as _, QueryFilter as _, QueryOrder as _, QuerySelect as _,
};
use service_runtime::database::Database;
use service_runtime::ids::{IntegrationId, IssueKey, JiraIssueId, RequestId};
use service_runtime::shapes::{in_list, in_list_pair, shaped_chunks};
use service_runtime::time::now;

use crate::commit_log::{self, Log, LogBounds};
use crate::domain::{GroupId, GroupStatus, OrganizationId, Sequence, StatusAction, UserId};
use crate::error::AssignmentError;
use crate::notification_log::Retention;
use crate::storage::entities::{
    external_issue, group, group_assignee, group_link, installation, outbound_sync, user_email,
};

/// Which part of a group's state changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// The assignee.
    Assignee,
    /// The status.
    Status,
}

/// A group change that linked issues must follow.
#[derive(Debug, Clone)]
pub struct OutboundChange {
    /// The group.
    pub group_id: GroupId,
    /// What changed.
    pub direction: Direction,
    /// The integration the change came from, if it came from one.
    pub source: Option<IntegrationId>,
    /// The request that made the change.
    pub request_id: Option<RequestId>,
    /// Its W3C trace context, or empty.
    pub traceparent: String,
}

/// What an external issue must show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutboundTarget {
    /// Assigned to this user, found in Jira by one of these addresses.
    Assignee {
        /// The user.
        user: UserId,
        /// Their verified addresses, in the order to try.
        emails: Vec<String>,
    },
    /// No assignee.
    Unassigned,
    /// Resolved or reopened.
    Status(StatusAction),
}

/// An entry of the outbound log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundSync {
    /// Its position.
    pub sequence: Sequence,
    /// The organization whose installation asks for it.
    pub organization_id: OrganizationId,
    /// The group whose change caused it.
    pub group_id: GroupId,
    /// The integration.
    pub integration_id: IntegrationId,
    /// The issue's key.
    pub issue_key: IssueKey,
    /// Jira's issue id, when known.
    pub jira_issue_id: Option<JiraIssueId>,
    /// What the issue must show.
    pub target: OutboundTarget,
    /// The change came from this integration: send nothing.
    pub from_source: bool,
    /// The request that made the change.
    pub request_id: Option<String>,
    /// Its W3C trace context, or empty.
    pub traceparent: String,
    /// When it was committed.
    pub created_at: DateTime<Utc>,
}

fn corrupt(what: &str) -> AssignmentError {
    AssignmentError::Corrupt(format!("outbound sync: {what}"))
}

/// The installations of `issues`' (organization, integration) pairs: both
/// columns of the unique index, so the read costs what the issues name. (By
/// organization alone it read every installation of the organization: with
/// 10 k integrations installed, 10 k rows per group commit, and ingest fell to
/// 0.42 of its rate with one.)
pub fn installations_of<'a>(
    issues: impl Iterator<Item = (i64, &'a str)> + Clone,
) -> sea_orm::Select<installation::Entity> {
    let organizations: BTreeSet<i64> = issues.clone().map(|(org, _)| org).collect();
    let integrations: BTreeSet<&str> = issues.map(|(_, integration)| integration).collect();
    let [organizations, integrations] = in_list_pair(organizations, integrations);
    installation::Entity::find()
        .filter(installation::Column::OrganizationId.is_in(organizations))
        .filter(installation::Column::IntegrationId.is_in(integrations))
}

/// Appends the entries `changes` call for, in the caller's transaction, after
/// the groups were changed; returns the last sequence used (`None` when no
/// linked issue asks for anything). Call it after every change of the
/// transaction and before the notifications are written (see
/// [`crate::commit_log`] for the order).
///
/// # Errors
/// Database errors.
pub async fn append(
    txn: &DatabaseTransaction,
    changes: &[OutboundChange],
) -> Result<Option<Sequence>, AssignmentError> {
    if changes.is_empty() {
        return Ok(None);
    }
    let group_ids: BTreeSet<i64> = changes.iter().map(|c| c.group_id.get()).collect();
    let links = group_link::Entity::find()
        .filter(group_link::Column::GroupId.is_in(in_list(group_ids.iter().copied())))
        .order_by_asc(group_link::Column::Id)
        .all(txn)
        .await?;
    if links.is_empty() {
        return Ok(None);
    }
    let issues: HashMap<i64, external_issue::Model> = external_issue::Entity::find()
        .filter(
            external_issue::Column::Id.is_in(in_list(links.iter().map(|l| l.external_issue_id))),
        )
        .all(txn)
        .await?
        .into_iter()
        .map(|i| (i.id, i))
        .collect();
    let settings: HashMap<(i64, String), (bool, bool)> = installations_of(
        issues
            .values()
            .map(|i| (i.organization_id, i.integration_id.as_str())),
    )
    .all(txn)
    .await?
    .into_iter()
    .map(|i| {
        (
            (i.organization_id, i.integration_id),
            (i.sync_forward_assignment, i.sync_status_forward),
        )
    })
    .collect();
    let groups: HashMap<i64, group::Model> = group::Entity::find()
        .filter(group::Column::Id.is_in(in_list(group_ids.iter().copied())))
        .all(txn)
        .await?
        .into_iter()
        .map(|g| (g.id, g))
        .collect();
    let assignees: HashMap<i64, i64> = group_assignee::Entity::find()
        .filter(group_assignee::Column::GroupId.is_in(in_list(group_ids.iter().copied())))
        .all(txn)
        .await?
        .into_iter()
        .map(|a| (a.group_id, a.user_id))
        .collect();
    let mut emails: HashMap<i64, Vec<String>> = HashMap::new();
    for row in user_email::Entity::find()
        .filter(user_email::Column::UserId.is_in(in_list(assignees.values().copied())))
        .filter(user_email::Column::Verified.eq(true))
        .order_by_asc(user_email::Column::Id)
        .all(txn)
        .await?
    {
        emails.entry(row.user_id).or_default().push(row.email);
    }

    // The last change of each (issue, direction) decides its entry.
    let mut entries: Vec<outbound_sync::ActiveModel> = Vec::new();
    let mut slot: HashMap<(i64, Direction), usize> = HashMap::new();
    let created_at = now();
    for change in changes {
        let Some(group) = groups.get(&change.group_id.get()) else {
            return Err(corrupt("a changed group vanished"));
        };
        for link in links.iter().filter(|l| l.group_id == group.id) {
            let Some(issue) = issues.get(&link.external_issue_id) else {
                continue;
            };
            let (assignment_on, status_on) = settings
                .get(&(issue.organization_id, issue.integration_id.clone()))
                .copied()
                .unwrap_or((false, false));
            let on = match change.direction {
                Direction::Assignee => assignment_on,
                Direction::Status => status_on,
            };
            if !on {
                continue;
            }
            let (target, assignee_user_id, assignee_emails, status_action) = match change.direction
            {
                Direction::Assignee => match assignees.get(&group.id) {
                    Some(&user) => (
                        "assignee",
                        Some(user),
                        emails.get(&user).cloned().unwrap_or_default(),
                        None,
                    ),
                    None => ("unassigned", None, Vec::new(), None),
                },
                Direction::Status => {
                    let action = match GroupStatus::from_stored(&group.status) {
                        Some(GroupStatus::Resolved) => StatusAction::Resolve,
                        Some(GroupStatus::Unresolved) => StatusAction::Unresolve,
                        None => return Err(corrupt("group status")),
                    };
                    ("status", None, Vec::new(), Some(action.as_str().to_owned()))
                }
            };
            let entry = outbound_sync::ActiveModel {
                sequence: Set(0),
                organization_id: Set(issue.organization_id),
                group_id: Set(group.id),
                external_issue_id: Set(issue.id),
                integration_id: Set(issue.integration_id.clone()),
                issue_key: Set(issue.issue_key.clone()),
                jira_issue_id: Set(issue.jira_issue_id.clone()),
                target: Set(target.to_owned()),
                assignee_user_id: Set(assignee_user_id),
                assignee_emails: Set(
                    serde_json::to_string(&assignee_emails).map_err(|_| corrupt("e-mail list"))?
                ),
                status_action: Set(status_action),
                from_source: Set(change
                    .source
                    .as_ref()
                    .is_some_and(|s| s.as_str() == issue.integration_id)),
                request_id: Set(change.request_id.as_ref().map(|r| r.as_str().to_owned())),
                traceparent: Set(change.traceparent.clone()),
                created_at: Set(created_at),
            };
            match slot.get(&(issue.id, change.direction)) {
                Some(&at) => entries[at] = entry,
                None => {
                    slot.insert((issue.id, change.direction), entries.len());
                    entries.push(entry);
                }
            }
        }
    }
    if entries.is_empty() {
        return Ok(None);
    }
    let (first, last) = commit_log::allocate(txn, Log::Outbound, entries.len()).await?;
    for (entry, sequence) in entries.iter_mut().zip(first.to_row()..=last.to_row()) {
        entry.sequence = Set(sequence);
    }
    for chunk in shaped_chunks(&entries, ROWS_PER_INSERT) {
        outbound_sync::Entity::insert_many(chunk.to_vec())
            .exec_without_returning(txn)
            .await?;
    }
    commit_log::announce(txn, last).await?;
    Ok(Some(last))
}

/// Rows per multi-row insert (well under both engines' parameter limits).
const ROWS_PER_INSERT: usize = 500;

fn from_row(row: outbound_sync::Model) -> Result<OutboundSync, AssignmentError> {
    let target = match (row.target.as_str(), row.assignee_user_id) {
        ("assignee", Some(user)) => OutboundTarget::Assignee {
            user: UserId::from_row(user),
            emails: serde_json::from_str(&row.assignee_emails)
                .map_err(|_| corrupt("e-mail list"))?,
        },
        ("unassigned", _) => OutboundTarget::Unassigned,
        ("status", _) => OutboundTarget::Status(
            row.status_action
                .as_deref()
                .and_then(StatusAction::from_stored)
                .ok_or_else(|| corrupt("status action"))?,
        ),
        _ => return Err(corrupt("target")),
    };
    Ok(OutboundSync {
        sequence: Sequence::from_row(row.sequence),
        organization_id: OrganizationId::from_row(row.organization_id),
        group_id: GroupId::from_row(row.group_id),
        integration_id: IntegrationId::parse(&row.integration_id)
            .map_err(|_| corrupt("integration id"))?,
        issue_key: IssueKey::parse(&row.issue_key).map_err(|_| corrupt("issue key"))?,
        jira_issue_id: row
            .jira_issue_id
            .map(|id| JiraIssueId::parse(&id).map_err(|_| corrupt("Jira issue id")))
            .transpose()?,
        target,
        from_source: row.from_source,
        request_id: row.request_id,
        traceparent: row.traceparent,
        created_at: row.created_at,
    })
}

/// Reads up to `limit` entries after `after`, in sequence order, by the
/// primary key however many are kept (plans pinned on PostgreSQL).
///
/// # Errors
/// Database errors.
pub async fn read_after(
    conn: &DatabaseConnection,
    after: Sequence,
    limit: u64,
) -> Result<Vec<OutboundSync>, AssignmentError> {
    let after = outbound_sync::Entity::find()
        .filter(outbound_sync::Column::Sequence.gt(after.to_row()))
        .order_by_asc(outbound_sync::Column::Sequence);
    service_runtime::database::first_rows_pinned(after, limit, conn)
        .await?
        .into_iter()
        .map(from_row)
        .collect()
}

/// The outbound log's bounds.
///
/// # Errors
/// Database errors.
pub async fn bounds<C: ConnectionTrait>(conn: &C) -> Result<LogBounds, AssignmentError> {
    commit_log::bounds(conn, Log::Outbound).await
}

/// Prunes entries beyond `retention`; returns how many were removed.
///
/// # Errors
/// Database errors.
pub async fn prune(db: &Database, retention: Retention) -> Result<u64, AssignmentError> {
    let write = db.begin_write().await?;
    let txn = &*write;
    let bounds = bounds(txn).await?;
    let cutoff =
        now() - chrono::Duration::from_std(retention.max_age).unwrap_or(chrono::Duration::MAX);
    let by_age = outbound_sync::Entity::find()
        .filter(outbound_sync::Column::CreatedAt.lt(cutoff))
        .order_by_desc(outbound_sync::Column::Sequence)
        .limit(1)
        .one(txn)
        .await?
        .map_or(0, |row| Sequence::from_row(row.sequence).get());
    let Some(through) = commit_log::prune_target(bounds, retention.max_count, by_age) else {
        write.rollback().await?;
        return Ok(0);
    };
    let deleted = outbound_sync::Entity::delete_many()
        .filter(outbound_sync::Column::Sequence.lte(through.to_row()))
        .exec(txn)
        .await?
        .rows_affected;
    commit_log::raise_floor(txn, Log::Outbound, through).await?;
    write.commit().await?;
    Ok(deleted)
}
