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
//! | change | told as concerned | told as followers |
//! |---|---|---|
//! | assigned to U (replacing P) | P: unassigned; U: assigned | others: assignee changed (to U) |
//! | unassigned (P removed) | P: unassigned | others: assignee changed (to nobody) |
//! | resolved / reopened | the assignee, if any | others: resolved / reopened |
//! | linked / unlinked | nobody | nobody |
//!
//! Followers are the group's participants ([`super::participants`]) who may be
//! told; a new assignee becomes one in the same transaction. Each user is told
//! of a change once, and the user who made the change (the acting user of a
//! GroupService action) never.

use sea_orm::{ActiveValue::Set, DatabaseTransaction, EntityTrait as _};
use service_runtime::ids::{IntegrationId, IssueKey, RequestId};
use service_runtime::time::now;

use super::participants::{self, Followers};
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

    /// What the group's followers are told, and whom the change is about
    /// (for an assignee change, the new assignee or none); `None` when they
    /// are not told.
    fn for_followers(self) -> Option<(NotificationKind, Option<UserId>)> {
        match self {
            Self::Assigned { user, .. } => Some((NotificationKind::AssigneeChanged, Some(user))),
            Self::Unassigned { .. } => Some((NotificationKind::AssigneeChanged, None)),
            Self::Resolved { .. } => Some((NotificationKind::Resolved, None)),
            Self::Unresolved { .. } => Some((NotificationKind::Unresolved, None)),
            Self::Linked | Self::Unlinked => None,
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
    /// Who is told of each change, in order.
    told: Vec<Told>,
    /// Changes linked issues must follow, in order.
    outbound: Vec<OutboundChange>,
}

/// Who is told of one change: those it concerns, known when it is recorded,
/// and the group's followers, known only when written.
#[derive(Debug)]
struct Told {
    /// The drafts for those concerned.
    concerned: Vec<NotificationDraft>,
    /// A draft to copy for each follower, if followers are told.
    followers: Option<NotificationDraft>,
    /// Users not told as followers: those concerned and the actor.
    not_followers: Vec<UserId>,
    /// The change's new assignee, who follows the group from now on.
    new_assignee: Option<UserId>,
    /// The index in `activities` of the causing activity (its id is known
    /// only once the activities are inserted).
    activity: usize,
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
        let draft = |recipient, kind, follower, subject| NotificationDraft {
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
            follower,
            subject,
        };
        let recipients = change.recipients();
        let not_followers = recipients
            .iter()
            .map(|(user, _)| *user)
            .chain(origin.actor)
            .collect();
        let concerned = recipients
            .into_iter()
            .filter(|(recipient, _)| origin.actor != Some(*recipient))
            .map(|(recipient, kind)| draft(recipient, kind, false, None))
            .collect();
        let followers = change
            .for_followers()
            .map(|(kind, subject)| draft(UserId::from_row(0), kind, true, subject));
        let new_assignee = match change {
            Change::Assigned { user, .. } => Some(user),
            _ => None,
        };
        self.told.push(Told {
            concerned,
            followers,
            not_followers,
            new_assignee,
            activity,
        });
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

    /// The notifications to those concerned recorded so far, as (recipient,
    /// kind).
    #[cfg(test)]
    pub fn told(&self) -> Vec<(i64, NotificationKind)> {
        self.told
            .iter()
            .flat_map(|t| &t.concerned)
            .map(|d| (d.recipient.get(), d.kind))
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
        let groups = self
            .told
            .iter()
            .filter_map(|t| t.followers.as_ref().map(|d| d.group_id.get()))
            .collect();
        let mut followers = Followers::load(txn, groups).await?;
        let mut new_followers = Vec::new();
        let mut notifications = Vec::new();
        for told in self.told {
            let activity_id = *ids.get(told.activity).ok_or_else(|| {
                AssignmentError::Corrupt("a notification lost its activity".into())
            })?;
            let mut drafts = told.concerned;
            if let Some(template) = told.followers {
                let to_tell: Vec<UserId> = followers
                    .to_tell(template.group_id)
                    .filter(|u| !told.not_followers.contains(u))
                    .collect();
                drafts.extend(to_tell.into_iter().map(|recipient| NotificationDraft {
                    recipient,
                    ..template.clone()
                }));
                if let Some(user) = told.new_assignee
                    && followers.add(template.group_id, user)
                {
                    new_followers.push((template.group_id, user));
                }
            }
            notifications.extend(drafts.into_iter().map(|mut d| {
                d.activity_id = activity_id;
                d
            }));
        }
        participants::add_assignees(txn, &new_followers).await?;
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
    for chunk in service_runtime::shapes::shaped_chunks(&rows, ROWS_PER_STATEMENT) {
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

    /// What followers are told, per change (the last column of the table).
    #[test]
    fn what_followers_are_told() {
        use NotificationKind::{AssigneeChanged, Resolved, Unresolved};
        let cases = [
            (
                Change::Assigned {
                    user: user(2),
                    previous: Some(user(1)),
                },
                Some((AssigneeChanged, Some(2))),
            ),
            (
                Change::Unassigned { previous: user(1) },
                Some((AssigneeChanged, None)),
            ),
            (Change::Resolved { assignee: None }, Some((Resolved, None))),
            (
                Change::Unresolved {
                    assignee: Some(user(3)),
                },
                Some((Unresolved, None)),
            ),
            (Change::Linked, None),
            (Change::Unlinked, None),
        ];
        for (change, expected) in cases {
            let told = change
                .for_followers()
                .map(|(kind, subject)| (kind, subject.map(UserId::get)));
            assert_eq!(told, expected, "{change:?}");
        }
    }
}
