//! The notification log: the table the stream reads, and how rows get into it.
//!
//! Sequences are commit-ordered: see [`crate::commit_log`].

use chrono::{DateTime, Utc};
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveValue::Set, ColumnTrait as _, ConnectionTrait, DatabaseConnection, DatabaseTransaction,
    EntityTrait as _, QueryFilter as _, QueryOrder as _, QuerySelect as _,
};
use service_runtime::database::Database;
use service_runtime::ids::{IntegrationId, IssueKey};
use service_runtime::shapes::{in_list, in_list_pair, shaped_chunks};
use service_runtime::time::now;

use crate::commit_log::{self, Log};
use crate::domain::messages::{MessageFacts, notification_text, thread_message_key};
use crate::domain::{ActivityId, GroupId, NotificationKind, OrganizationId, Sequence, UserId};
use crate::error::AssignmentError;
use crate::storage::entities::{notification, notification_thread};

pub use crate::commit_log::NOTIFY_CHANNEL;

/// A notification about to be written.
#[derive(Debug, Clone)]
pub struct NotificationDraft {
    /// Who to tell.
    pub recipient: UserId,
    /// The group's organization.
    pub organization_id: OrganizationId,
    /// The group.
    pub group_id: GroupId,
    /// The group's title, for the text.
    pub group_title: String,
    /// The Jira key involved.
    pub issue_key: Option<IssueKey>,
    /// The integration the change came from.
    pub integration_id: Option<IntegrationId>,
    /// What happened.
    pub kind: NotificationKind,
    /// The activity that caused it.
    pub activity_id: ActivityId,
    /// The W3C trace context of the causing request, or empty.
    pub traceparent: String,
    /// The recipient follows the group rather than being (or having been)
    /// its assignee in this change.
    pub follower: bool,
    /// For [`NotificationKind::AssigneeChanged`]: the new assignee, if any.
    pub subject: Option<UserId>,
}

/// A notification as stored, ready to stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredNotification {
    /// Position in the log.
    pub sequence: Sequence,
    /// Who to tell.
    pub recipient: UserId,
    /// The group's organization.
    pub organization_id: OrganizationId,
    /// The group.
    pub group_id: GroupId,
    /// The Jira key, or empty.
    pub external_issue_key: String,
    /// The integration, or empty.
    pub integration_id: String,
    /// What happened.
    pub kind: NotificationKind,
    /// The text.
    pub message: String,
    /// The thread's key.
    pub message_key: String,
    /// Whether to edit the thread's message rather than post.
    pub update: bool,
    /// When it was committed.
    pub created_at: DateTime<Utc>,
    /// The causing activity.
    pub activity_id: ActivityId,
    /// The W3C trace context, or empty.
    pub traceparent: String,
    /// Its encoding as a stream message, made by the first stream that sends
    /// it and shared by every other stream of the process.
    pub encoded: EncodedOnce,
}

/// Bytes computed once and shared by every holder of the value: the API edge
/// keeps a notification's stream encoding here, so fanning one notification
/// out to many streams encodes it once. Never part of the value: two
/// notifications compare equal whether or not either was encoded yet.
#[derive(Debug, Clone, Default)]
pub struct EncodedOnce(std::sync::OnceLock<bytes::Bytes>);

impl EncodedOnce {
    /// The bytes, made by `encode` if this is the first call.
    pub fn get_or_init(&self, encode: impl FnOnce() -> bytes::Bytes) -> bytes::Bytes {
        self.0.get_or_init(encode).clone()
    }
}

impl PartialEq for EncodedOnce {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for EncodedOnce {}

/// Writes `drafts` in the caller's transaction, in order, and returns the last
/// sequence used (`None` when there was nothing to write). Call it last, right
/// before commit (see the module documentation).
///
/// # Errors
/// Database errors.
pub async fn append(
    txn: &DatabaseTransaction,
    drafts: Vec<NotificationDraft>,
) -> Result<Option<Sequence>, AssignmentError> {
    if drafts.is_empty() {
        return Ok(None);
    }
    let created_at = now();
    // Threads first: they decide `update` and the message key.
    let threads = open_threads(txn, &drafts, created_at).await?;
    let names = subject_names(txn, &drafts).await?;
    let mut rows = Vec::with_capacity(drafts.len());
    for (draft, (message_key, update)) in drafts.iter().zip(threads) {
        let message = notification_text(&MessageFacts {
            kind: draft.kind,
            group_id: draft.group_id,
            group_title: &draft.group_title,
            issue_key: draft.issue_key.as_ref().map(IssueKey::as_str),
            follower: draft.follower,
            assignee_name: draft
                .subject
                .and_then(|s| names.get(&s.get()))
                .map(String::as_str),
        });
        rows.push((message_key, update, message));
    }

    let (first, last) = commit_log::allocate(txn, Log::Notifications, drafts.len()).await?;

    let models = drafts
        .into_iter()
        .zip(rows)
        .zip(first.to_row()..=last.to_row())
        .map(
            |((draft, (message_key, update, message)), sequence)| notification::ActiveModel {
                sequence: Set(sequence),
                recipient_user_id: Set(draft.recipient.get()),
                organization_id: Set(draft.organization_id.get()),
                group_id: Set(draft.group_id.get()),
                external_issue_key: Set(draft
                    .issue_key
                    .map(|k| k.as_str().to_owned())
                    .unwrap_or_default()),
                integration_id: Set(draft
                    .integration_id
                    .map(|i| i.as_str().to_owned())
                    .unwrap_or_default()),
                kind: Set(draft.kind.as_str().to_owned()),
                message: Set(message),
                message_key: Set(message_key),
                is_update: Set(update),
                activity_id: Set(draft.activity_id.get()),
                traceparent: Set(draft.traceparent),
                created_at: Set(created_at),
            },
        );
    let models: Vec<notification::ActiveModel> = models.collect();
    for chunk in shaped_chunks(&models, ROWS_PER_INSERT) {
        notification::Entity::insert_many(chunk.to_vec())
            .exec_without_returning(txn)
            .await?;
    }

    commit_log::announce(txn, last).await?;
    Ok(Some(last))
}

/// The display names of the drafts' subjects (new assignees), by user id.
async fn subject_names(
    txn: &DatabaseTransaction,
    drafts: &[NotificationDraft],
) -> Result<std::collections::HashMap<i64, String>, AssignmentError> {
    let ids: std::collections::BTreeSet<i64> = drafts
        .iter()
        .filter_map(|d| d.subject)
        .map(UserId::get)
        .collect();
    if ids.is_empty() {
        return Ok(std::collections::HashMap::new());
    }
    Ok(crate::storage::entities::user::Entity::find()
        .filter(crate::storage::entities::user::Column::Id.is_in(in_list(ids)))
        .all(txn)
        .await?
        .into_iter()
        .map(|u| (u.id, u.display_name))
        .collect())
}

/// Rows per multi-row insert (well under both engines' bound-parameter limits).
const ROWS_PER_INSERT: usize = 1000;

/// Each draft's thread: its message key, and whether the draft edits the
/// thread's message (`update`) rather than opening the thread. Two statements
/// for any number of drafts: read the threads that exist, then insert the
/// missing ones if still absent. A thread another writer opened meanwhile is
/// skipped by the insert (on PostgreSQL it waits for that writer's commit), so
/// both end up with one thread and only the opener's message is not an update.
async fn open_threads(
    txn: &DatabaseTransaction,
    drafts: &[NotificationDraft],
    created_at: DateTime<Utc>,
) -> Result<Vec<(String, bool)>, AssignmentError> {
    use std::collections::{BTreeSet, HashMap, HashSet};
    let pairs: BTreeSet<(i64, i64)> = drafts
        .iter()
        .map(|d| (d.recipient.get(), d.group_id.get()))
        .collect();
    let recipients: BTreeSet<i64> = pairs.iter().map(|p| p.0).collect();
    let groups: BTreeSet<i64> = pairs.iter().map(|p| p.1).collect();
    let [recipients, groups] = in_list_pair(recipients, groups);
    let existing: HashMap<(i64, i64), String> = notification_thread::Entity::find()
        .filter(notification_thread::Column::RecipientUserId.is_in(recipients))
        .filter(notification_thread::Column::GroupId.is_in(groups))
        .all(txn)
        .await?
        .into_iter()
        .map(|t| ((t.recipient_user_id, t.group_id), t.message_key))
        .filter(|(pair, _)| pairs.contains(pair))
        .collect();
    let missing: Vec<notification_thread::ActiveModel> = pairs
        .iter()
        .filter(|pair| !existing.contains_key(pair))
        .map(|&(recipient, group)| notification_thread::ActiveModel {
            recipient_user_id: Set(recipient),
            group_id: Set(group),
            message_key: Set(thread_message_key(
                UserId::from_row(recipient),
                GroupId::from_row(group),
            )),
            created_at: Set(created_at),
        })
        .collect();
    let mut opened: HashSet<(i64, i64)> = HashSet::new();
    for chunk in shaped_chunks(&missing, ROWS_PER_INSERT) {
        let inserted = notification_thread::Entity::insert_many(chunk.to_vec())
            .on_conflict(
                OnConflict::columns([
                    notification_thread::Column::RecipientUserId,
                    notification_thread::Column::GroupId,
                ])
                .do_nothing()
                .to_owned(),
            )
            .exec_with_returning(txn)
            .await;
        match inserted {
            Ok(rows) => opened.extend(rows.into_iter().map(|t| (t.recipient_user_id, t.group_id))),
            Err(sea_orm::DbErr::RecordNotInserted) => {}
            Err(error) => return Err(error.into()),
        }
    }
    Ok(drafts
        .iter()
        .map(|d| {
            let pair = (d.recipient.get(), d.group_id.get());
            let key = existing
                .get(&pair)
                .cloned()
                .unwrap_or_else(|| thread_message_key(d.recipient, d.group_id));
            // The first draft of a thread opened here opens it; later ones edit.
            let update = !opened.remove(&pair);
            (key, update)
        })
        .collect())
}

fn from_row(row: notification::Model) -> Result<StoredNotification, AssignmentError> {
    Ok(StoredNotification {
        sequence: Sequence::from_row(row.sequence),
        recipient: UserId::from_row(row.recipient_user_id),
        organization_id: OrganizationId::from_row(row.organization_id),
        group_id: GroupId::from_row(row.group_id),
        external_issue_key: row.external_issue_key,
        integration_id: row.integration_id,
        kind: NotificationKind::from_stored(&row.kind)
            .ok_or_else(|| AssignmentError::Corrupt(format!("notification kind {:?}", row.kind)))?,
        message: row.message,
        message_key: row.message_key,
        update: row.is_update,
        created_at: row.created_at,
        activity_id: ActivityId::from_row(row.activity_id),
        traceparent: row.traceparent,
        encoded: EncodedOnce::default(),
    })
}

/// Reads up to `limit` notifications after `after`, in sequence order, by
/// the primary key however many are kept (plans pinned on PostgreSQL).
///
/// # Errors
/// Database errors.
pub async fn read_after(
    conn: &DatabaseConnection,
    after: Sequence,
    limit: u64,
) -> Result<Vec<StoredNotification>, AssignmentError> {
    let after = notification::Entity::find()
        .filter(notification::Column::Sequence.gt(after.to_row()))
        .order_by_asc(notification::Column::Sequence);
    service_runtime::database::first_rows_pinned(after, limit, conn)
        .await?
        .into_iter()
        .map(from_row)
        .collect()
}

pub use crate::commit_log::LogBounds;

/// Reads the notification log's bounds.
///
/// # Errors
/// Database errors.
pub async fn bounds<C: ConnectionTrait>(conn: &C) -> Result<LogBounds, AssignmentError> {
    commit_log::bounds(conn, Log::Notifications).await
}

/// Retention limits.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    /// Notifications older than this are pruned.
    pub max_age: std::time::Duration,
    /// At most this many notifications are kept.
    pub max_count: u64,
}

/// Prunes notifications beyond `retention` and raises the floor; returns how many
/// were removed.
///
/// # Errors
/// Database errors.
pub async fn prune(db: &Database, retention: Retention) -> Result<u64, AssignmentError> {
    let write = db.begin_write().await?;
    let txn = &*write;
    let bounds = bounds(txn).await?;
    let cutoff =
        now() - chrono::Duration::from_std(retention.max_age).unwrap_or(chrono::Duration::MAX);
    let by_age = notification::Entity::find()
        .filter(notification::Column::CreatedAt.lt(cutoff))
        .order_by_desc(notification::Column::Sequence)
        .limit(1)
        .one(txn)
        .await?
        .map_or(0, |row| Sequence::from_row(row.sequence).get());
    let Some(through) = commit_log::prune_target(bounds, retention.max_count, by_age) else {
        write.rollback().await?;
        return Ok(0);
    };
    let deleted = notification::Entity::delete_many()
        .filter(notification::Column::Sequence.lte(through.to_row()))
        .exec(txn)
        .await?
        .rows_affected;
    commit_log::raise_floor(txn, Log::Notifications, through).await?;
    write.commit().await?;
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::EncodedOnce;

    #[test]
    fn encoded_once_encodes_for_the_first_holder_only_and_never_counts_in_equality() {
        let fresh = EncodedOnce::default();
        let shared = std::sync::Arc::new(EncodedOnce::default());
        let mut encodings = 0;
        for _ in 0..3 {
            let bytes = shared.get_or_init(|| {
                encodings += 1;
                bytes::Bytes::from_static(b"encoded")
            });
            assert_eq!(&bytes[..], b"encoded");
        }
        assert_eq!(encodings, 1);
        assert_eq!(*shared, fresh);
    }
}
