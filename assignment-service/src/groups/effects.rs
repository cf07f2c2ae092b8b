//! What an effective group change writes: its activity (the audit trail's one
//! writer) and the notifications telling the people concerned.
//!
//! A caller decides *that* a group changed (a GroupService action, inbound
//! sync, linking); it records the change here with where it came from, and
//! writes everything recorded, in its transaction, with [`Effects::write`]: the
//! activities with multi-row inserts, then what linked Jira issues must now
//! show ([`crate::outbound`]), then the notifications, each pointing at the
//! activity that caused it. Who is told what is decided here and nowhere else:
//!
//! | change | told |
//! |---|---|
//! | assigned to U (replacing P) | P: unassigned; U: assigned |
//! | unassigned (P removed) | P: unassigned |
//! | resolved / reopened | the assignee, if any |
//! | linked / unlinked | nobody |
//!
//! The user who made the change (the acting user of a GroupService action) is
//! never told of it.

use sea_orm::{ActiveValue::Set, DatabaseTransaction, EntityTrait as _};
use service_runtime::ids::{IntegrationId, IssueKey, RequestId};
use service_runtime::time::now;

use crate::domain::{
    ActivityId, ActivityKind, GroupId, NotificationKind, OrganizationId, Sequence, UserId,
};
use crate::error::AssignmentError;
use crate::notification_log::{self, NotificationDraft};
use crate::outbound::{self, Direction, OutboundChange};
use crate::storage::entities::activity;

/// Rows per multi-row insert.
const ROWS_PER_STATEMENT: usize = 500;

/// The group a change is about, as its notifications name it.
#[derive(Debug, Clone, Copy)]
pub struct GroupFacts<'a> {
    /// The group.
    pub id: GroupId,
    /// Its organization.
    pub organization_id: OrganizationId,
    /// Its title, for the notification texts.
    pub title: &'a str,
}

/// Where a change came from, recorded on its activity and notifications.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    /// The integration the change came from (the loop guard: an outbound sync
    /// never sends a change back to its source).
    pub source_integration_id: Option<IntegrationId>,
    /// The integration of the external issue involved, named in notifications.
    pub integration_id: Option<IntegrationId>,
    /// The external issue involved.
    pub issue_key: Option<IssueKey>,
    /// The request that made the change.
    pub request_id: Option<RequestId>,
    /// The W3C trace context of that request, or empty.
    pub traceparent: String,
    /// The user who made the change, when a GroupService caller named one:
    /// recorded on the activity, never notified of their own change.
    pub actor: Option<UserId>,
}

/// An effective change to a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Assigned to `user`, replacing `previous` (if any).
    Assigned {
        /// The new assignee.
        user: UserId,
        /// The assignee replaced.
        previous: Option<UserId>,
    },
    /// The assignee `previous` was removed.
    Unassigned {
        /// The assignee removed.
        previous: UserId,
    },
    /// Resolved; `assignee` is told.
    Resolved {
        /// The group's assignee.
        assignee: Option<UserId>,
    },
    /// Reopened; `assignee` is told.
    Unresolved {
        /// The group's assignee.
        assignee: Option<UserId>,
    },
    /// Linked to the origin's external issue.
    Linked,
    /// Unlinked from the origin's external issue.
    Unlinked,
}

impl Change {
    fn kind(self) -> ActivityKind {
        match self {
            Self::Assigned { .. } => ActivityKind::Assigned,
            Self::Unassigned { .. } => ActivityKind::Unassigned,
            Self::Resolved { .. } => ActivityKind::Resolved,
            Self::Unresolved { .. } => ActivityKind::Unresolved,
            Self::Linked => ActivityKind::Linked,
            Self::Unlinked => ActivityKind::Unlinked,
        }
    }

    /// The activity's user and previous user.
    fn users(self) -> (Option<UserId>, Option<UserId>) {
        match self {
            Self::Assigned { user, previous } => (Some(user), previous),
            Self::Unassigned { previous } => (None, Some(previous)),
            Self::Resolved { assignee } | Self::Unresolved { assignee } => (assignee, None),
            Self::Linked | Self::Unlinked => (None, None),
        }
    }

    /// Who is told what, in the order the notifications are written.
    pub fn recipients(self) -> Vec<(UserId, NotificationKind)> {
        match self {
            Self::Assigned { user, previous } => previous
                .map(|p| (p, NotificationKind::Unassigned))
                .into_iter()
                .chain([(user, NotificationKind::Assigned)])
                .collect(),
            Self::Unassigned { previous } => vec![(previous, NotificationKind::Unassigned)],
            Self::Resolved { assignee } => assignee
                .map(|a| (a, NotificationKind::Resolved))
                .into_iter()
                .collect(),
            Self::Unresolved { assignee } => assignee
                .map(|a| (a, NotificationKind::Unresolved))
                .into_iter()
                .collect(),
            Self::Linked | Self::Unlinked => Vec::new(),
        }
    }

    /// Which part of the group's state linked issues must follow, if any.
    fn direction(self) -> Option<Direction> {
        match self {
            Self::Assigned { .. } | Self::Unassigned { .. } => Some(Direction::Assignee),
            Self::Resolved { .. } | Self::Unresolved { .. } => Some(Direction::Status),
            Self::Linked | Self::Unlinked => None,
        }
    }
}

/// Changes recorded in a transaction, written together by [`Effects::write`].
#[derive(Debug, Default)]
pub struct Effects {
    /// Activity rows to insert, in order.
    activities: Vec<activity::ActiveModel>,
    /// Notification drafts, each with the index in `activities` of the activity
    /// that caused it (its id is known only once the activities are inserted).
    notifications: Vec<(NotificationDraft, usize)>,
    /// Changes linked issues must follow, in order.
    outbound: Vec<OutboundChange>,
}

impl Effects {
    /// Records a change: its activity and its notifications.
    pub fn record(&mut self, group: GroupFacts<'_>, change: Change, origin: &Origin) {
        let (user_id, previous_user_id) = change.users();
        self.activities.push(activity::ActiveModel {
            organization_id: Set(group.organization_id.get()),
            group_id: Set(group.id.get()),
            kind: Set(change.kind().as_str().to_owned()),
            user_id: Set(user_id.map(UserId::get)),
            previous_user_id: Set(previous_user_id.map(UserId::get)),
            source_integration_id: Set(origin
                .source_integration_id
                .as_ref()
                .map(|i| i.as_str().to_owned())),
            external_issue_key: Set(origin.issue_key.as_ref().map(|k| k.as_str().to_owned())),
            request_id: Set(origin.request_id.as_ref().map(|r| r.as_str().to_owned())),
            created_at: Set(now()),
            actor_user_id: Set(origin.actor.map(UserId::get)),
            ..Default::default()
        });
        let activity = self.activities.len() - 1;
        if let Some(direction) = change.direction() {
            self.outbound.push(OutboundChange {
                group_id: group.id,
                direction,
                source: origin.source_integration_id.clone(),
                request_id: origin.request_id.clone(),
                traceparent: origin.traceparent.clone(),
            });
        }
        for (recipient, kind) in change.recipients() {
            if origin.actor == Some(recipient) {
                continue;
            }
            self.notifications.push((
                NotificationDraft {
                    recipient,
                    organization_id: group.organization_id,
                    group_id: group.id,
                    group_title: group.title.to_owned(),
                    issue_key: origin.issue_key.clone(),
                    integration_id: origin.integration_id.clone(),
                    kind,
                    // A stand-in until the activities are inserted.
                    activity_id: ActivityId::from_row(0),
                    traceparent: origin.traceparent.clone(),
                },
                activity,
            ));
        }
    }

    /// The activities recorded so far, as (kind, user, previous user), for
    /// tests of the deciding code.
    #[cfg(test)]
    pub fn recorded(&self) -> Vec<(ActivityKind, Option<i64>, Option<i64>)> {
        self.activities
            .iter()
            .map(|a| {
                let kind = match &a.kind {
                    sea_orm::ActiveValue::Set(k) => ActivityKind::from_stored(k),
                    _ => None,
                };
                let user = |v: &sea_orm::ActiveValue<Option<i64>>| match v {
                    sea_orm::ActiveValue::Set(u) => *u,
                    _ => None,
                };
                (
                    kind.unwrap_or(ActivityKind::Linked),
                    user(&a.user_id),
                    user(&a.previous_user_id),
                )
            })
            .collect()
    }

    /// The notifications recorded so far, as (recipient, kind).
    #[cfg(test)]
    pub fn told(&self) -> Vec<(i64, NotificationKind)> {
        self.notifications
            .iter()
            .map(|(d, _)| (d.recipient.get(), d.kind))
            .collect()
    }

    /// Writes every recorded activity, outbound sync and notification in `txn`;
    /// returns the last notification sequence written, if any. Call it as the
    /// last write of the transaction, after the groups were changed (the
    /// outbound entries carry the groups' state as of now, and the logs'
    /// sequence locks are held to commit).
    ///
    /// # Errors
    /// Database errors.
    pub async fn write(
        self,
        txn: &DatabaseTransaction,
    ) -> Result<Option<Sequence>, AssignmentError> {
        let ids = insert_activities(txn, self.activities).await?;
        outbound::append(txn, &self.outbound).await?;
        let notifications = self
            .notifications
            .into_iter()
            .map(|(mut draft, activity)| {
                draft.activity_id = *ids.get(activity).ok_or_else(|| {
                    AssignmentError::Corrupt("a notification lost its activity".into())
                })?;
                Ok(draft)
            })
            .collect::<Result<Vec<_>, AssignmentError>>()?;
        notification_log::append(txn, notifications).await
    }
}

/// Inserts activity rows with multi-row statements; returns their ids in the
/// rows' order.
///
/// The ids come back through `RETURNING`, whose row order neither SQLite nor
/// PostgreSQL promises. What both do promise is that one `INSERT … VALUES`
/// gives its rows ids in the order of the VALUES list: SQLite allocates each
/// rowid above the largest so far as it inserts the rows in order, and
/// PostgreSQL evaluates the id column's `nextval` per row in order, so a
/// statement's ids increase along its list even when other sessions take
/// numbers in between. So each statement's ids are sorted, not trusted in the
/// order returned.
async fn insert_activities(
    txn: &DatabaseTransaction,
    rows: Vec<activity::ActiveModel>,
) -> Result<Vec<ActivityId>, AssignmentError> {
    let mut ids = Vec::with_capacity(rows.len());
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        let mut chunk_ids: Vec<i64> = activity::Entity::insert_many(chunk.to_vec())
            .exec_with_returning_keys(txn)
            .await?;
        if chunk_ids.len() != chunk.len() {
            return Err(AssignmentError::Corrupt(format!(
                "{} activities inserted, {} ids returned",
                chunk.len(),
                chunk_ids.len()
            )));
        }
        chunk_ids.sort_unstable();
        ids.extend(chunk_ids.into_iter().map(ActivityId::from_row));
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(id: i64) -> UserId {
        UserId::from_row(id)
    }

    /// Who is told what, per change (the table in the module doc).
    #[test]
    fn who_is_told_what() {
        use NotificationKind::{Assigned, Resolved, Unassigned, Unresolved};
        let cases: &[(Change, &[(i64, NotificationKind)])] = &[
            (
                Change::Assigned {
                    user: user(2),
                    previous: None,
                },
                &[(2, Assigned)],
            ),
            (
                Change::Assigned {
                    user: user(2),
                    previous: Some(user(1)),
                },
                &[(1, Unassigned), (2, Assigned)],
            ),
            (Change::Unassigned { previous: user(1) }, &[(1, Unassigned)]),
            (
                Change::Resolved {
                    assignee: Some(user(3)),
                },
                &[(3, Resolved)],
            ),
            (Change::Resolved { assignee: None }, &[]),
            (
                Change::Unresolved {
                    assignee: Some(user(3)),
                },
                &[(3, Unresolved)],
            ),
            (Change::Linked, &[]),
            (Change::Unlinked, &[]),
        ];
        for (change, expected) in cases {
            let told: Vec<(i64, NotificationKind)> = change
                .recipients()
                .into_iter()
                .map(|(u, k)| (u.get(), k))
                .collect();
            assert_eq!(&told, expected, "{change:?}");
        }
    }
}
