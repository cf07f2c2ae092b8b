//! The webhook inbox: acknowledged deliveries, durable until applied.
//!
//! A delivery is stored (one committed insert, deduplicated by integration and
//! delivery key) before Jira gets its `2xx`. The dispatcher then claims the
//! oldest pending delivery of each issue (`ordering_key`) with a lease: a later
//! delivery of the same issue is not eligible while an earlier one is pending, so
//! per-issue order holds across replicas, and a lease that expires (its replica
//! died) makes the delivery claimable again.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveValue::Set, ColumnTrait as _, ConnectionTrait as _, DbBackend, EntityTrait as _,
    QueryFilter as _, QueryOrder as _, QuerySelect as _, Statement,
};
use service_runtime::database::Database;
use service_runtime::ids::IntegrationId;
use service_runtime::pagination::PageRequest;
use service_runtime::time::now;

use crate::domain::delivery::{DeliveryAction, DeliveryState, IssueEvent};
use crate::error::TrackerError;
use crate::storage::entities::webhook_delivery;

/// A delivery about to be stored.
#[derive(Debug, Clone)]
pub struct NewDelivery {
    /// The integration it was posted for.
    pub integration_id: IntegrationId,
    /// The deduplication key.
    pub delivery_key: String,
    /// What the payload says.
    pub event: IssueEvent,
    /// Headers kept for operators (authentication removed).
    pub headers: Vec<(String, String)>,
    /// The raw body.
    pub body: String,
    /// The W3C trace context the delivery carries into the assignment service.
    pub traceparent: String,
}

/// Whether a delivery was new.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// Stored now, with this id.
    New(i64),
    /// Already stored earlier (a redelivery).
    Duplicate,
}

/// Stores a delivery in one committed statement.
///
/// # Errors
/// Database errors (the caller answers 503 so Jira retries).
pub async fn store(db: &Database, delivery: NewDelivery) -> Result<Stored, TrackerError> {
    let received = now();
    let delivery_key = delivery.delivery_key.clone();
    let model = webhook_delivery::ActiveModel {
        integration_id: Set(delivery.integration_id.as_str().to_owned()),
        delivery_key: Set(delivery.delivery_key.clone()),
        event_type: Set(delivery.event.event_type.clone()),
        issue_key: Set(delivery
            .event
            .key
            .as_ref()
            .map(|k| k.as_str().to_owned())
            .unwrap_or_default()),
        jira_issue_id: Set(delivery
            .event
            .jira_issue_id
            .as_ref()
            .map(|k| k.as_str().to_owned())
            .unwrap_or_default()),
        ordering_key: Set(delivery.event.ordering_key()),
        received_at: Set(received),
        headers: Set(serde_json::to_string(&delivery.headers).unwrap_or_default()),
        body: Set(delivery.body),
        traceparent: Set(delivery.traceparent),
        state: Set(DeliveryState::Pending.as_str().to_owned()),
        attempts: Set(0),
        last_error: Set(String::new()),
        next_attempt_at: Set(None),
        actions: Set("[]".to_owned()),
        completed_at: Set(None),
        lease_owner: Set(None),
        lease_until: Set(None),
        ..Default::default()
    };
    let integration_id = delivery.integration_id.as_str().to_owned();
    let inserted = webhook_delivery::Entity::insert(model)
        .on_conflict(
            OnConflict::columns([
                webhook_delivery::Column::IntegrationId,
                webhook_delivery::Column::DeliveryKey,
            ])
            .do_nothing()
            .to_owned(),
        )
        .exec_without_returning(db.conn())
        .await?;
    if inserted == 0 {
        return Ok(Stored::Duplicate);
    }
    let id = webhook_delivery::Entity::find()
        .filter(webhook_delivery::Column::IntegrationId.eq(integration_id))
        .filter(webhook_delivery::Column::DeliveryKey.eq(delivery_key))
        .one(db.conn())
        .await?
        .map(|row| row.id)
        .ok_or_else(|| TrackerError::Corrupt("a stored delivery vanished".into()))?;
    Ok(Stored::New(id))
}

/// Replaces `?` placeholders with `$1`, `$2`, ... on PostgreSQL.
fn placeholders(backend: DbBackend, sql: &str) -> String {
    if backend != DbBackend::Postgres {
        return sql.to_owned();
    }
    let mut out = String::with_capacity(sql.len() + 8);
    let mut n = 0;
    for c in sql.chars() {
        if c == '?' {
            n += 1;
            out.push_str(&format!("${n}"));
        } else {
            out.push(c);
        }
    }
    out
}

/// Claims up to `limit` deliveries that are due and at the head of their issue,
/// for `owner`, for `lease`. Returns them in arrival order.
///
/// # Errors
/// Database errors.
pub async fn claim_ready(
    db: &Database,
    owner: &str,
    lease: Duration,
    limit: u64,
) -> Result<Vec<webhook_delivery::Model>, TrackerError> {
    let backend = db.backend();
    let time = now();
    let sql = placeholders(
        backend,
        "SELECT d.id FROM webhook_deliveries d \
         WHERE d.state = 'pending' \
           AND (d.next_attempt_at IS NULL OR d.next_attempt_at <= ?) \
           AND (d.lease_until IS NULL OR d.lease_until < ?) \
           AND NOT EXISTS (SELECT 1 FROM webhook_deliveries e \
                           WHERE e.integration_id = d.integration_id \
                             AND e.ordering_key = d.ordering_key \
                             AND e.state = 'pending' AND e.id < d.id) \
         ORDER BY d.id LIMIT ?",
    );
    let rows = db
        .conn()
        .query_all_raw(Statement::from_sql_and_values(
            backend,
            sql,
            [
                time.into(),
                time.into(),
                i64::try_from(limit).unwrap_or(i64::MAX).into(),
            ],
        ))
        .await?;
    let until = time + chrono::Duration::from_std(lease).unwrap_or_default();
    let mut claimed = Vec::with_capacity(rows.len());
    for row in rows {
        let id: i64 = row.try_get("", "id")?;
        // The lease is taken only if nobody took it in between.
        let taken = webhook_delivery::Entity::update_many()
            .col_expr(
                webhook_delivery::Column::LeaseOwner,
                sea_orm::sea_query::Expr::value(owner),
            )
            .col_expr(
                webhook_delivery::Column::LeaseUntil,
                sea_orm::sea_query::Expr::value(until),
            )
            .filter(webhook_delivery::Column::Id.eq(id))
            .filter(webhook_delivery::Column::State.eq(DeliveryState::Pending.as_str()))
            .filter(
                sea_orm::Condition::any()
                    .add(webhook_delivery::Column::LeaseUntil.is_null())
                    .add(webhook_delivery::Column::LeaseUntil.lt(time)),
            )
            .exec(db.conn())
            .await?
            .rows_affected;
        if taken == 1
            && let Some(model) = webhook_delivery::Entity::find_by_id(id)
                .one(db.conn())
                .await?
        {
            claimed.push(model);
        }
    }
    Ok(claimed)
}

/// Records a delivery as applied.
///
/// # Errors
/// Database errors.
pub async fn delivered(
    db: &Database,
    id: i64,
    attempts: i32,
    actions: &[DeliveryAction],
) -> Result<(), TrackerError> {
    finish(db, id, attempts, DeliveryState::Delivered, "", actions).await
}

/// Records a delivery as failed for good.
///
/// # Errors
/// Database errors.
pub async fn failed(
    db: &Database,
    id: i64,
    attempts: i32,
    error: &str,
    actions: &[DeliveryAction],
) -> Result<(), TrackerError> {
    finish(db, id, attempts, DeliveryState::Failed, error, actions).await
}

async fn finish(
    db: &Database,
    id: i64,
    attempts: i32,
    state: DeliveryState,
    error: &str,
    actions: &[DeliveryAction],
) -> Result<(), TrackerError> {
    webhook_delivery::Entity::update(webhook_delivery::ActiveModel {
        id: Set(id),
        state: Set(state.as_str().to_owned()),
        attempts: Set(attempts),
        last_error: Set(error.to_owned()),
        next_attempt_at: Set(None),
        actions: Set(serde_json::to_string(actions).unwrap_or_default()),
        completed_at: Set(Some(now())),
        lease_owner: Set(None),
        lease_until: Set(None),
        ..Default::default()
    })
    .exec(db.conn())
    .await?;
    Ok(())
}

/// Schedules another attempt after a transient failure and releases the lease.
///
/// # Errors
/// Database errors.
pub async fn retry_later(
    db: &Database,
    id: i64,
    attempts: i32,
    error: &str,
    at: DateTime<Utc>,
) -> Result<(), TrackerError> {
    webhook_delivery::Entity::update(webhook_delivery::ActiveModel {
        id: Set(id),
        attempts: Set(attempts),
        last_error: Set(error.to_owned()),
        next_attempt_at: Set(Some(at)),
        lease_owner: Set(None),
        lease_until: Set(None),
        ..Default::default()
    })
    .exec(db.conn())
    .await?;
    Ok(())
}

/// Filters of [`list`].
#[derive(Debug, Clone, Default)]
pub struct DeliveryFilter {
    /// Only this integration's.
    pub integration_id: Option<IntegrationId>,
    /// Only in this state.
    pub state: Option<DeliveryState>,
    /// Only about this issue key.
    pub issue_key: Option<String>,
}

/// Lists deliveries, newest first.
///
/// # Errors
/// Database errors.
pub async fn list(
    db: &Database,
    filter: &DeliveryFilter,
    page: &PageRequest<i64>,
) -> Result<(Vec<webhook_delivery::Model>, String), TrackerError> {
    let mut query = webhook_delivery::Entity::find()
        .order_by_desc(webhook_delivery::Column::Id)
        .limit(page.fetch_limit());
    if let Some(after) = page.after {
        query = query.filter(webhook_delivery::Column::Id.lt(after));
    }
    if let Some(integration) = &filter.integration_id {
        query = query.filter(webhook_delivery::Column::IntegrationId.eq(integration.as_str()));
    }
    if let Some(state) = filter.state {
        query = query.filter(webhook_delivery::Column::State.eq(state.as_str()));
    }
    if let Some(key) = &filter.issue_key {
        query = query.filter(webhook_delivery::Column::IssueKey.eq(key.as_str()));
    }
    let mut rows = query.all(db.conn()).await?;
    let next = page.finish(&mut rows, |r| r.id);
    Ok((rows, next))
}

/// Reads one delivery.
///
/// # Errors
/// NOT_FOUND, or a database error.
pub async fn get(db: &Database, id: i64) -> Result<webhook_delivery::Model, TrackerError> {
    webhook_delivery::Entity::find_by_id(id)
        .one(db.conn())
        .await?
        .ok_or_else(|| TrackerError::NotFound {
            resource: "webhook delivery",
            id: id.to_string(),
        })
}

/// Queues a failed delivery again (RetryWebhookDelivery).
///
/// # Errors
/// NOT_FOUND; FAILED_PRECONDITION unless it failed.
pub async fn requeue(db: &Database, id: i64) -> Result<webhook_delivery::Model, TrackerError> {
    let updated = webhook_delivery::Entity::update_many()
        .col_expr(
            webhook_delivery::Column::State,
            sea_orm::sea_query::Expr::value(DeliveryState::Pending.as_str()),
        )
        .col_expr(
            webhook_delivery::Column::NextAttemptAt,
            sea_orm::sea_query::Expr::value(Option::<DateTime<Utc>>::None),
        )
        .col_expr(
            webhook_delivery::Column::CompletedAt,
            sea_orm::sea_query::Expr::value(Option::<DateTime<Utc>>::None),
        )
        .filter(webhook_delivery::Column::Id.eq(id))
        .filter(webhook_delivery::Column::State.eq(DeliveryState::Failed.as_str()))
        .exec(db.conn())
        .await?
        .rows_affected;
    let row = get(db, id).await?;
    if updated == 0 && row.state != DeliveryState::Pending.as_str() {
        return Err(TrackerError::FailedPrecondition {
            reason: "DELIVERY_NOT_FAILED",
            message: format!(
                "webhook delivery {id} is {}; only failed deliveries can be retried",
                row.state
            ),
        });
    }
    Ok(row)
}

/// Deletes delivered entries completed before `cutoff`; returns how many.
///
/// # Errors
/// Database errors.
pub async fn prune_delivered(db: &Database, cutoff: DateTime<Utc>) -> Result<u64, TrackerError> {
    Ok(webhook_delivery::Entity::delete_many()
        .filter(webhook_delivery::Column::State.eq(DeliveryState::Delivered.as_str()))
        .filter(webhook_delivery::Column::CompletedAt.lt(cutoff))
        .exec(db.conn())
        .await?
        .rows_affected)
}

/// Counts of pending deliveries and the age of the oldest (for metrics).
///
/// # Errors
/// Database errors.
pub async fn pending_stats(db: &Database) -> Result<(u64, Option<DateTime<Utc>>), TrackerError> {
    use sea_orm::PaginatorTrait as _;
    let pending = webhook_delivery::Entity::find()
        .filter(webhook_delivery::Column::State.eq(DeliveryState::Pending.as_str()));
    let count = pending.clone().count(db.conn()).await?;
    let oldest = pending
        .order_by_asc(webhook_delivery::Column::Id)
        .one(db.conn())
        .await?
        .map(|r| r.received_at);
    Ok((count, oldest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_placeholders_are_numbered() {
        assert_eq!(
            placeholders(DbBackend::Postgres, "a = ? AND b < ?"),
            "a = $1 AND b < $2"
        );
        assert_eq!(placeholders(DbBackend::Sqlite, "a = ?"), "a = ?");
    }
}
