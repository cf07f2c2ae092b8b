//! The tracker's table of outbound entries (`outbound_syncs`) and the cursor
//! it read the assignment service's log up to (`outbound_cursor`).
//!
//! - **Storing** a batch inserts each entry once (the log's sequence is
//!   unique, so two replicas reading the same log store it once) and moves the
//!   cursor, in one transaction: what is stored is what was read.
//! - **Claiming** takes, under a lease, the head of each issue and direction's
//!   queue ([`crate::queue_heads`]), so entries of one issue apply one at a
//!   time in log order; the worker renews leases while it applies them.
//! - **Superseding**: when an issue is claimed, its newest pending entry is
//!   the one applied, and older pending ones are superseded (sync is
//!   state-based: the newest says what Jira must show).
//! - **Echoes**: an entry remembers what it sends (`sent_value`) before it
//!   sends it ([`expect_echo`]), so the webhook Jira sends about that change
//!   can be recognised once, even when it arrives before Jira's answer. A
//!   failed attempt forgets it (the next one says again).

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ActiveValue::Set, ColumnTrait as _, ConnectionTrait, EntityTrait as _, QueryFilter as _,
    QueryOrder as _, QuerySelect as _,
};
use service_runtime::database::Database;
use service_runtime::idempotency::{IdempotencyKey, idempotent_write};
use service_runtime::ids::{IntegrationId, IssueKey, JiraIssueId, RequestId};
use service_runtime::pagination::PageRequest;
use service_runtime::time::now;

use crate::domain::outbound::{
    OutboundIntent, OutboundIssue, OutboundRecord, OutboundState, OutboundTarget,
};
use crate::domain::sync::StatusAction;
use crate::error::{Reason, TrackerError};
use crate::queue_heads::{self, HeadId, IssueQueue, Leased, Queue, Settle};
use crate::storage::entities::{outbound_cursor, outbound_sync};

/// What the worker found when it applied an entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Done: Jira shows what the entry asked for (`result` says how), and
    /// `sent` is what was sent, when something was.
    Done {
        /// What was done, or why nothing was needed.
        result: String,
        /// The account id, user name or status id sent to Jira.
        sent: Option<String>,
    },
    /// Will not succeed as is.
    Stopped(String),
    /// Failed for now; try again at the given time.
    RetryLater(String, DateTime<Utc>),
}

/// The filters of [`list`].
#[derive(Debug, Clone, Default)]
pub struct OutboundFilter {
    /// Only this integration's entries.
    pub integration_id: Option<IntegrationId>,
    /// Only entries in this state.
    pub state: Option<OutboundState>,
    /// Only entries about this issue key.
    pub issue_key: Option<IssueKey>,
}

fn corrupt(what: &str) -> TrackerError {
    TrackerError::Corrupt(format!("outbound sync: {what}"))
}

fn record(row: outbound_sync::Model) -> Result<OutboundRecord, TrackerError> {
    let target = match (row.target.as_str(), row.assignee_user_id) {
        ("assignee", Some(user_id)) => OutboundTarget::Assignee {
            user_id,
            emails: serde_json::from_str(&row.assignee_emails)
                .map_err(|_| corrupt("e-mail list"))?,
        },
        ("unassigned", _) => OutboundTarget::Unassigned,
        ("status", _) => OutboundTarget::Status(match row.status_action.as_deref() {
            Some("resolve") => StatusAction::Resolve,
            Some("unresolve") => StatusAction::Unresolve,
            _ => return Err(corrupt("status action")),
        }),
        _ => return Err(corrupt("target")),
    };
    Ok(OutboundRecord {
        id: row.id,
        intent: OutboundIntent {
            source_sequence: u64::try_from(row.source_sequence).map_err(|_| corrupt("sequence"))?,
            organization_id: row.organization_id,
            group_id: row.group_id,
            issue: OutboundIssue {
                integration_id: IntegrationId::parse(&row.integration_id)
                    .map_err(|_| corrupt("integration id"))?,
                key: IssueKey::parse(&row.issue_key).map_err(|_| corrupt("issue key"))?,
                jira_issue_id: row
                    .jira_issue_id
                    .map(|id| JiraIssueId::parse(&id).map_err(|_| corrupt("Jira issue id")))
                    .transpose()?,
            },
            target,
            from_source: row.from_source,
            request_id: row.request_id,
            traceparent: row.traceparent,
        },
        state: OutboundState::from_stored(&row.state).ok_or_else(|| corrupt("state"))?,
        attempts: row.attempts,
        result: row.result,
        last_error: row.last_error,
        next_attempt_at: row.next_attempt_at,
        created_at: row.created_at,
        updated_at: row.updated_at,
    })
}

fn row(intent: &OutboundIntent, time: DateTime<Utc>) -> outbound_sync::ActiveModel {
    let (target, user, emails, status) = match &intent.target {
        OutboundTarget::Assignee { user_id, emails } => {
            ("assignee", Some(*user_id), emails.clone(), None)
        }
        OutboundTarget::Unassigned => ("unassigned", None, Vec::new(), None),
        OutboundTarget::Status(action) => (
            "status",
            None,
            Vec::new(),
            Some(match action {
                StatusAction::Resolve => "resolve",
                StatusAction::Unresolve => "unresolve",
            }),
        ),
    };
    let (state, result) = if intent.from_source {
        (
            OutboundState::Done,
            Some("the change came from this integration: Jira already shows it".to_owned()),
        )
    } else {
        (OutboundState::Pending, None)
    };
    outbound_sync::ActiveModel {
        source_sequence: Set(i64::try_from(intent.source_sequence).unwrap_or(i64::MAX)),
        organization_id: Set(intent.organization_id),
        group_id: Set(intent.group_id),
        integration_id: Set(intent.issue.integration_id.as_str().to_owned()),
        issue_key: Set(intent.issue.key.as_str().to_owned()),
        jira_issue_id: Set(intent
            .issue
            .jira_issue_id
            .as_ref()
            .map(|id| id.as_str().to_owned())),
        ordering_key: Set(intent.ordering_key()),
        target: Set(target.to_owned()),
        assignee_user_id: Set(user),
        assignee_emails: Set(serde_json::to_string(&emails).unwrap_or_else(|_| "[]".into())),
        status_action: Set(status.map(str::to_owned)),
        from_source: Set(intent.from_source),
        request_id: Set(intent.request_id.clone()),
        traceparent: Set(intent.traceparent.clone()),
        state: Set(state.as_str().to_owned()),
        result: Set(result),
        last_error: Set(None),
        attempts: Set(0),
        next_attempt_at: Set(None),
        sent_value: Set(None),
        echo_expected: Set(false),
        created_at: Set(time),
        updated_at: Set(time),
        ..Default::default()
    }
}

/// The last log sequence stored.
///
/// # Errors
/// Database errors.
pub async fn cursor<C: ConnectionTrait>(conn: &C) -> Result<u64, TrackerError> {
    let row = outbound_cursor::Entity::find_by_id(1)
        .one(conn)
        .await?
        .ok_or_else(|| corrupt("the cursor row is missing"))?;
    Ok(u64::try_from(row.last_sequence).unwrap_or(0))
}

/// Stores a batch read from the log (each entry once) and moves the cursor to
/// `through`, in one transaction; returns how many entries were new.
///
/// # Errors
/// Database errors.
pub async fn store(
    db: &Database,
    intents: &[OutboundIntent],
    through: u64,
) -> Result<u64, TrackerError> {
    let write = db.begin_write().await?;
    let txn = &*write;
    let time = now();
    let mut inserted = 0;
    for chunk in intents.chunks(ROWS_PER_STATEMENT) {
        let rows: Vec<outbound_sync::ActiveModel> = chunk.iter().map(|i| row(i, time)).collect();
        let result = outbound_sync::Entity::insert_many(rows)
            .on_conflict(
                OnConflict::column(outbound_sync::Column::SourceSequence)
                    .do_nothing()
                    .to_owned(),
            )
            .exec_without_returning(txn)
            .await;
        match result {
            Ok(n) => inserted += n,
            Err(sea_orm::DbErr::RecordNotInserted) => {}
            Err(error) => return Err(error.into()),
        }
    }
    let mut heads = Settle::new(Queue::Outbound);
    for intent in intents.iter().filter(|i| !i.from_source) {
        heads.stored(
            IssueQueue {
                integration_id: intent.issue.integration_id.as_str().to_owned(),
                ordering_key: intent.ordering_key(),
            },
            i64::try_from(intent.source_sequence).unwrap_or(i64::MAX),
        );
    }
    heads.lock(txn, None).await?;
    let through = i64::try_from(through).unwrap_or(i64::MAX);
    outbound_cursor::Entity::update_many()
        .col_expr(outbound_cursor::Column::LastSequence, Expr::value(through))
        .filter(outbound_cursor::Column::Id.eq(1))
        .filter(outbound_cursor::Column::LastSequence.lt(through))
        .exec(txn)
        .await?;
    write.commit().await?;
    Ok(inserted)
}

/// Rows per multi-row statement.
const ROWS_PER_STATEMENT: usize = 200;

/// Claims up to `limit` issues with due entries for `owner` for `lease`, and
/// returns for each the entry to apply: the newest pending one (sync is
/// state-based: it says what Jira must show), older pending ones of the issue
/// being superseded.
///
/// # Errors
/// Database errors.
pub async fn claim(
    db: &Database,
    owner: &str,
    lease: Duration,
    limit: u64,
) -> Result<Vec<Leased<OutboundRecord>>, TrackerError> {
    let claimed = queue_heads::claim(db, Queue::Outbound, owner, lease, limit).await?;
    if claimed.is_empty() {
        return Ok(Vec::new());
    }
    let write = db.begin_write().await?;
    let txn = &*write;
    // The heads first, in key order, as every writer of heads does.
    let mut heads = Settle::new(Queue::Outbound);
    for c in &claimed {
        heads.stored(c.issue.clone(), c.position);
    }
    heads.lock(txn, None).await?;
    let time = now();
    let mut positions: HashMap<i64, HeadId> = HashMap::with_capacity(claimed.len());
    let mut gone = Settle::new(Queue::Outbound);
    for c in &claimed {
        // The issue's newest entry, in any state: one that came from Jira
        // itself (stored done) replaces pending ones as well.
        let newest = outbound_sync::Entity::find()
            .filter(outbound_sync::Column::IntegrationId.eq(c.issue.integration_id.as_str()))
            .filter(outbound_sync::Column::OrderingKey.eq(c.issue.ordering_key.as_str()))
            .order_by_desc(outbound_sync::Column::SourceSequence)
            .one(txn)
            .await?;
        let Some(newest) = newest else {
            gone.finished(c.issue.clone(), c.position);
            continue;
        };
        let newest_pending = newest.state == OutboundState::Pending.as_str();
        let newest = newest.source_sequence;
        if newest != c.position {
            outbound_sync::Entity::update_many()
                .col_expr(
                    outbound_sync::Column::State,
                    Expr::value(OutboundState::Superseded.as_str()),
                )
                .col_expr(outbound_sync::Column::UpdatedAt, Expr::value(time))
                .col_expr(
                    outbound_sync::Column::Result,
                    Expr::value("a newer change of this issue replaced it before it was sent"),
                )
                .filter(crate::storage::state_is(
                    outbound_sync::Column::State,
                    OutboundState::Pending.as_str(),
                ))
                .filter(outbound_sync::Column::IntegrationId.eq(c.issue.integration_id.as_str()))
                .filter(outbound_sync::Column::OrderingKey.eq(c.issue.ordering_key.as_str()))
                .filter(outbound_sync::Column::SourceSequence.lt(newest))
                .exec(txn)
                .await?;
            if newest_pending {
                queue_heads::repoint(txn, Queue::Outbound, &c.issue, owner, newest).await?;
            }
        }
        if newest_pending {
            positions.insert(newest, c.head);
        } else {
            // Nothing left to send (or an operator's change raced the claim).
            gone.finished(c.issue.clone(), c.position);
        }
    }
    // `gone` names heads this claim still holds at their claimed position.
    let locked = gone.lock(txn, Some(owner)).await?;
    gone.advance(txn, &locked).await?;
    let rows = outbound_sync::Entity::find()
        .filter(outbound_sync::Column::SourceSequence.is_in(positions.keys().copied()))
        .filter(crate::storage::state_is(
            outbound_sync::Column::State,
            OutboundState::Pending.as_str(),
        ))
        .all(txn)
        .await?;
    write.commit().await?;
    let mut entries = Vec::with_capacity(rows.len());
    for row in rows {
        let head = positions.get(&row.source_sequence).copied();
        let item = record(row)?;
        if let Some(head) = head {
            entries.push(Leased { head, item });
        }
    }
    entries.sort_by_key(|e| e.item.intent.source_sequence);
    Ok(entries)
}

/// Extends `owner`'s leases on the entries claimed through `heads`.
///
/// # Errors
/// Database errors.
pub async fn renew(
    db: &Database,
    owner: &str,
    heads: &[HeadId],
    lease: Duration,
) -> Result<(), TrackerError> {
    queue_heads::renew(db, owner, heads, lease).await?;
    Ok(())
}

/// Gives up `owner`'s entries claimed through `heads` (abandoned at shutdown).
///
/// # Errors
/// Database errors.
pub async fn release(db: &Database, owner: &str, heads: &[HeadId]) -> Result<(), TrackerError> {
    queue_heads::release(db, owner, heads).await?;
    Ok(())
}

/// Records the outcome of an attempt by `owner` (nothing, if another replica
/// took the entry over meanwhile), and moves its issue's queue on.
///
/// # Errors
/// Database errors.
pub async fn record_outcome(
    db: &Database,
    entry: &OutboundRecord,
    owner: &str,
    attempts: i32,
    outcome: &Outcome,
) -> Result<(), TrackerError> {
    let time = now();
    let issue = IssueQueue {
        integration_id: entry.intent.issue.integration_id.as_str().to_owned(),
        ordering_key: entry.intent.ordering_key(),
    };
    let position = i64::try_from(entry.intent.source_sequence).unwrap_or(i64::MAX);
    let mut heads = Settle::new(Queue::Outbound);
    let mut update = outbound_sync::Entity::update_many()
        .col_expr(outbound_sync::Column::Attempts, Expr::value(attempts))
        .col_expr(outbound_sync::Column::UpdatedAt, Expr::value(time));
    update = match outcome {
        Outcome::Done { result, sent } => {
            heads.finished(issue.clone(), position);
            update
                .col_expr(
                    outbound_sync::Column::State,
                    Expr::value(OutboundState::Done.as_str()),
                )
                .col_expr(outbound_sync::Column::Result, Expr::value(result.clone()))
                .col_expr(outbound_sync::Column::SentValue, Expr::value(sent.clone()))
            // The expectation was written before the change was sent; its
            // echo may already have been recognised.
        }
        Outcome::Stopped(reason) => {
            heads.finished(issue.clone(), position);
            update
                .col_expr(
                    outbound_sync::Column::State,
                    Expr::value(OutboundState::Stopped.as_str()),
                )
                .col_expr(outbound_sync::Column::Result, Expr::value(reason.clone()))
                .col_expr(outbound_sync::Column::EchoExpected, Expr::value(false))
        }
        Outcome::RetryLater(error, at) => {
            heads.retried(issue.clone(), position, *at);
            update
                .col_expr(outbound_sync::Column::EchoExpected, Expr::value(false))
                .col_expr(outbound_sync::Column::LastError, Expr::value(error.clone()))
                .col_expr(outbound_sync::Column::NextAttemptAt, Expr::value(*at))
        }
    };
    let write = db.begin_write().await?;
    let locked = heads.lock(&*write, Some(owner)).await?;
    if !locked.holds(&issue) {
        tracing::warn!(
            entry = entry.id,
            "another replica took this outbound sync over; its outcome is left to it"
        );
        write.rollback().await?;
        return Ok(());
    }
    update
        .filter(outbound_sync::Column::Id.eq(entry.id))
        .exec(&*write)
        .await?;
    heads.advance(&*write, &locked).await?;
    write.commit().await?;
    Ok(())
}

/// Lists entries, newest first.
///
/// # Errors
/// Database errors.
pub async fn list(
    db: &Database,
    filter: &OutboundFilter,
    page: &PageRequest<i64>,
) -> Result<(Vec<OutboundRecord>, String), TrackerError> {
    let mut query = outbound_sync::Entity::find()
        .order_by_desc(outbound_sync::Column::Id)
        .limit(page.fetch_limit());
    if let Some(after) = page.after {
        query = query.filter(outbound_sync::Column::Id.lt(after));
    }
    if let Some(integration) = &filter.integration_id {
        query = query.filter(outbound_sync::Column::IntegrationId.eq(integration.as_str()));
    }
    if let Some(state) = filter.state {
        query = query.filter(crate::storage::state_is(
            outbound_sync::Column::State,
            state.as_str(),
        ));
    }
    if let Some(key) = &filter.issue_key {
        query = query.filter(outbound_sync::Column::IssueKey.eq(key.as_str()));
    }
    let mut rows = query.all(db.conn()).await?;
    let next = page.finish(&mut rows, |r| r.id);
    let records = rows.into_iter().map(record).collect::<Result<_, _>>()?;
    Ok((records, next))
}

/// Reads one entry.
///
/// # Errors
/// NOT_FOUND, or a database error.
pub async fn get<C: ConnectionTrait>(conn: &C, id: i64) -> Result<OutboundRecord, TrackerError> {
    let row = outbound_sync::Entity::find_by_id(id)
        .one(conn)
        .await?
        .ok_or_else(|| TrackerError::NotFound {
            resource: "outbound sync",
            id: id.to_string(),
        })?;
    record(row)
}

/// Queues a stopped entry again (idempotent by `request_id`: a repeat queues
/// nothing more); an entry already pending is returned as is.
///
/// # Errors
/// NOT_FOUND; FAILED_PRECONDITION (`OUTBOUND_SYNC_NOT_STOPPED`) for an entry
/// that is done or superseded; database errors.
pub async fn retry(
    db: &Database,
    id: i64,
    request_id: Option<&RequestId>,
) -> Result<OutboundRecord, TrackerError> {
    let key = IdempotencyKey::new("RetryOutboundSync", request_id, &id);
    idempotent_write(db, key, move |txn| {
        Box::pin(async move {
            // Its issue's queue first, as every writer of heads does.
            if let Some(row) = outbound_sync::Entity::find_by_id(id).one(txn).await?
                && row.state == OutboundState::Stopped.as_str()
            {
                let mut heads = Settle::new(Queue::Outbound);
                heads.stored(
                    IssueQueue {
                        integration_id: row.integration_id,
                        ordering_key: row.ordering_key,
                    },
                    row.source_sequence,
                );
                heads.lock(txn, None).await?;
            }
            let updated = outbound_sync::Entity::update_many()
                .col_expr(
                    outbound_sync::Column::State,
                    Expr::value(OutboundState::Pending.as_str()),
                )
                .col_expr(
                    outbound_sync::Column::NextAttemptAt,
                    Expr::value(Option::<DateTime<Utc>>::None),
                )
                .col_expr(outbound_sync::Column::UpdatedAt, Expr::value(now()))
                .filter(outbound_sync::Column::Id.eq(id))
                .filter(crate::storage::state_is(
                    outbound_sync::Column::State,
                    OutboundState::Stopped.as_str(),
                ))
                .exec(txn)
                .await?
                .rows_affected;
            let entry = get(txn, id).await?;
            if updated == 0 && entry.state != OutboundState::Pending {
                return Err(TrackerError::refused(
                    Reason::OutboundSyncNotStopped,
                    format!(
                        "outbound sync {id} is {}; only stopped ones can be retried",
                        entry.state.as_str()
                    ),
                ));
            }
            Ok(id)
        })
    })
    .await?;
    get(db.conn(), id).await
}

/// Records that entry `id` is about to send `value` (the account id, user
/// name or status id Jira will show), so that Jira's webhook about it is
/// recognised even when it arrives before Jira's answer does.
///
/// # Errors
/// Database errors.
pub async fn expect_echo(db: &Database, id: i64, value: &str) -> Result<(), TrackerError> {
    let update = outbound_sync::Entity::update_many()
        .col_expr(outbound_sync::Column::SentValue, Expr::value(value))
        .col_expr(outbound_sync::Column::EchoExpected, Expr::value(true))
        .filter(outbound_sync::Column::Id.eq(id))
        .exec(db.conn());
    db.gated(update).await?;
    Ok(())
}

/// What an inbound change of one issue and direction is, with respect to
/// what this tracker sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Echo {
    /// Not a change this tracker sent (or already recognised once).
    NotOurs,
    /// Jira reporting the change entry `id` sent, and nothing newer waits to be
    /// sent: apply it as usual (it is a no-op for the group that caused it).
    Ours {
        /// The entry that sent it.
        id: i64,
    },
    /// Jira reporting the change entry `id` sent, while a newer local change
    /// (`newer`) waits to be sent: skip it, or it would undo that change
    /// before it reaches Jira.
    Overtaken {
        /// The entry that sent it.
        id: i64,
        /// The newer entry waiting.
        newer: i64,
    },
}

/// Recognises (once) Jira's webhook about a change this tracker sent:
/// `ordering_keys` are the issue's possible keys for the direction (by Jira
/// id and by key), `value` what the webhook says the issue now shows.
///
/// # Errors
/// Database errors.
pub async fn recognise_echo(
    db: &Database,
    integration: &IntegrationId,
    ordering_keys: &[String],
    value: &str,
) -> Result<Echo, TrackerError> {
    let sent = outbound_sync::Entity::find()
        .filter(outbound_sync::Column::IntegrationId.eq(integration.as_str()))
        .filter(outbound_sync::Column::OrderingKey.is_in(ordering_keys.to_vec()))
        .filter(outbound_sync::Column::EchoExpected.eq(true))
        .filter(outbound_sync::Column::SentValue.eq(value))
        .order_by_desc(outbound_sync::Column::SourceSequence)
        .one(db.conn())
        .await?;
    let Some(sent) = sent else {
        return Ok(Echo::NotOurs);
    };
    let consumed = outbound_sync::Entity::update_many()
        .col_expr(outbound_sync::Column::EchoExpected, Expr::value(false))
        .filter(outbound_sync::Column::Id.eq(sent.id))
        .filter(outbound_sync::Column::EchoExpected.eq(true))
        .exec(db.conn());
    if db.gated(consumed).await?.rows_affected == 0 {
        // Another delivery recognised it first.
        return Ok(Echo::NotOurs);
    }
    let newer = outbound_sync::Entity::find()
        .filter(outbound_sync::Column::IntegrationId.eq(integration.as_str()))
        .filter(outbound_sync::Column::OrderingKey.is_in(ordering_keys.to_vec()))
        .filter(outbound_sync::Column::SourceSequence.gt(sent.source_sequence))
        .filter(crate::storage::state_is(
            outbound_sync::Column::State,
            OutboundState::Pending.as_str(),
        ))
        .order_by_desc(outbound_sync::Column::SourceSequence)
        .one(db.conn())
        .await?;
    Ok(match newer {
        Some(newer) => Echo::Overtaken {
            id: sent.id,
            newer: newer.id,
        },
        None => Echo::Ours { id: sent.id },
    })
}

/// Deletes done and superseded entries last changed before `cutoff`.
///
/// # Errors
/// Database errors.
pub async fn prune(db: &Database, cutoff: DateTime<Utc>) -> Result<u64, TrackerError> {
    let delete = outbound_sync::Entity::delete_many()
        .filter(outbound_sync::Column::State.is_in([
            OutboundState::Done.as_str(),
            OutboundState::Superseded.as_str(),
        ]))
        .filter(outbound_sync::Column::UpdatedAt.lt(cutoff))
        .exec(db.conn());
    Ok(db.gated(delete).await?.rows_affected)
}

/// How many entries are pending, and when the oldest was received.
///
/// # Errors
/// Database errors.
pub async fn pending_stats(db: &Database) -> Result<(u64, Option<DateTime<Utc>>), TrackerError> {
    let pending = outbound_sync::Entity::find().filter(crate::storage::state_is(
        outbound_sync::Column::State,
        OutboundState::Pending.as_str(),
    ));
    let count = sea_orm::PaginatorTrait::count(pending.clone(), db.conn()).await?;
    let oldest = pending
        .order_by_asc(outbound_sync::Column::Id)
        .one(db.conn())
        .await?
        .map(|r| r.created_at);
    Ok((count, oldest))
}
