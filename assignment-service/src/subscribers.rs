//! Durable subscribers: named cursors the server stores when a subscriber
//! acknowledges, so it can resume without holding a cursor itself.

use std::fmt;

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue::Set, ColumnTrait as _, ConnectionTrait, EntityTrait as _, QueryFilter as _,
    QueryOrder as _, QuerySelect as _, sea_query::OnConflict,
};
use service_runtime::database::Database;
use service_runtime::pagination::PageRequest;
use service_runtime::time::now;

use crate::domain::Sequence;
use crate::domain::records::Page;
use crate::error::AssignmentError;
use crate::notification_log;
use crate::storage::entities::subscriber;

/// Why a subscriber name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidSubscriberName(String);

/// A durable subscriber's name: 1 to 128 letters, digits, `.`, `_` or `-`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SubscriberName(String);

impl SubscriberName {
    /// Parses a name.
    ///
    /// # Errors
    /// When `s` breaks the rule.
    pub fn parse(s: &str) -> Result<Self, InvalidSubscriberName> {
        if s.is_empty() || s.len() > 128 {
            return Err(InvalidSubscriberName(
                "must be 1 to 128 characters long".into(),
            ));
        }
        if !s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        {
            return Err(InvalidSubscriberName(format!(
                "{s:?} may only contain letters, digits, '.', '_' and '-'"
            )));
        }
        Ok(Self(s.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SubscriberName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A durable subscriber's stored cursor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DurableSubscriber {
    /// Its name.
    pub name: SubscriberName,
    /// Everything up to here was acknowledged.
    pub acknowledged: Sequence,
    /// When the cursor last moved.
    pub updated_at: DateTime<Utc>,
}

fn from_row(row: subscriber::Model) -> Result<DurableSubscriber, AssignmentError> {
    Ok(DurableSubscriber {
        name: SubscriberName::parse(&row.name)
            .map_err(|e| AssignmentError::Corrupt(format!("subscriber name: {e}")))?,
        acknowledged: Sequence::from_row(row.acknowledged_sequence),
        updated_at: row.updated_at,
    })
}

/// The stored cursor of `name`, if it ever acknowledged.
///
/// # Errors
/// Database errors.
pub async fn stored_cursor<C: ConnectionTrait>(
    conn: &C,
    name: &SubscriberName,
) -> Result<Option<Sequence>, AssignmentError> {
    Ok(subscriber::Entity::find_by_id(name.as_str())
        .one(conn)
        .await?
        .map(|row| Sequence::from_row(row.acknowledged_sequence)))
}

/// Moves `name`'s cursor forward to `sequence` (never backwards), creating the
/// subscriber on first use.
///
/// # Errors
/// OUT_OF_RANGE when `sequence` is beyond the head; database errors.
pub async fn acknowledge(
    db: &Database,
    name: &SubscriberName,
    sequence: Sequence,
) -> Result<DurableSubscriber, AssignmentError> {
    let write = db.begin_write().await?;
    let txn = &*write;
    let bounds = notification_log::bounds(txn).await?;
    if sequence > bounds.head {
        return Err(bounds.beyond_head(format!(
            "sequence {sequence} is beyond the head {}; acknowledge only what you received",
            bounds.head
        )));
    }
    let time = now();
    subscriber::Entity::insert(subscriber::ActiveModel {
        name: Set(name.as_str().to_owned()),
        acknowledged_sequence: Set(sequence.to_row()),
        created_at: Set(time),
        updated_at: Set(time),
    })
    .on_conflict(
        OnConflict::column(subscriber::Column::Name)
            .do_nothing()
            .to_owned(),
    )
    .exec_without_returning(txn)
    .await?;
    subscriber::Entity::update_many()
        .col_expr(
            subscriber::Column::AcknowledgedSequence,
            sea_orm::sea_query::Expr::value(sequence.to_row()),
        )
        .col_expr(
            subscriber::Column::UpdatedAt,
            sea_orm::sea_query::Expr::value(time),
        )
        .filter(subscriber::Column::Name.eq(name.as_str()))
        .filter(subscriber::Column::AcknowledgedSequence.lt(sequence.to_row()))
        .exec(txn)
        .await?;
    let row = subscriber::Entity::find_by_id(name.as_str())
        .one(txn)
        .await?
        .ok_or_else(|| AssignmentError::Corrupt("subscriber vanished".into()))?;
    write.commit().await?;
    from_row(row)
}

/// Reads a durable subscriber.
///
/// # Errors
/// NOT_FOUND when it never acknowledged.
pub async fn get(
    db: &Database,
    name: &SubscriberName,
) -> Result<DurableSubscriber, AssignmentError> {
    let row = subscriber::Entity::find_by_id(name.as_str())
        .one(db.conn())
        .await?
        .ok_or_else(|| AssignmentError::NotFound {
            resource: "subscriber",
            id: name.to_string(),
        })?;
    from_row(row)
}

/// Lists durable subscribers by name.
///
/// # Errors
/// Database errors.
pub async fn list(
    db: &Database,
    page: &PageRequest<String>,
) -> Result<Page<DurableSubscriber>, AssignmentError> {
    let mut query = subscriber::Entity::find()
        .order_by_asc(subscriber::Column::Name)
        .limit(page.fetch_limit());
    if let Some(after) = &page.after {
        query = query.filter(subscriber::Column::Name.gt(after.as_str()));
    }
    let mut rows = query.all(db.conn()).await?;
    let next_page_token = page.finish(&mut rows, |r| r.name.clone());
    Ok(Page {
        items: rows.into_iter().map(from_row).collect::<Result<_, _>>()?,
        next_page_token,
    })
}

/// Forgets a durable subscriber.
///
/// # Errors
/// NOT_FOUND when there is none by that name.
pub async fn delete(db: &Database, name: &SubscriberName) -> Result<(), AssignmentError> {
    let deleted = db
        .gated(subscriber::Entity::delete_by_id(name.as_str()).exec(db.conn()))
        .await?;
    if deleted.rows_affected == 0 {
        return Err(AssignmentError::NotFound {
            resource: "subscriber",
            id: name.to_string(),
        });
    }
    Ok(())
}
