//! The delivery record: every notification received, where its delivery
//! stands, each thread's message at its tool, and how far the stream was read
//! and acknowledged.
//!
//! A notification is stored once (by sequence) when it arrives, before the
//! stream is acknowledged past it; its delivery then moves
//! pending → sending → sent (or retrying, stopped, undeliverable). A thread's
//! message id is stored in the same transaction that marks its first
//! delivery sent, so an update never finds its thread missing after a crash.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ActiveValue::Set, ColumnTrait as _, Condition, EntityTrait as _, QueryFilter as _,
    QueryOrder as _, QuerySelect as _,
};
use service_runtime::database::Database;
use service_runtime::pagination::PageRequest;

use crate::domain::{Channel, DeliveryState, Notification};
use crate::error::{NotifierError, Reason};
use crate::storage::entities::{delivery, stream_position, thread};

/// One delivery as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The notification.
    pub notification: Notification,
    /// Where it stands.
    pub state: DeliveryState,
    /// The tool used, once tried.
    pub channel: Option<Channel>,
    /// Why it is retrying or stopped.
    pub reason: String,
    /// Attempts so far.
    pub attempts: u32,
    /// The message id at the tool, once sent.
    pub external_id: String,
    /// When it is tried again.
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

fn read(row: delivery::Model) -> Result<Delivery, NotifierError> {
    let notification: Notification = serde_json::from_str(&row.notification)
        .map_err(|e| NotifierError::Corrupt(format!("delivery {}: {e}", row.sequence)))?;
    Ok(Delivery {
        notification,
        state: DeliveryState::parse(&row.state)
            .ok_or_else(|| NotifierError::Corrupt(format!("state {:?}", row.state)))?,
        channel: Channel::parse(&row.channel),
        reason: row.reason,
        attempts: u32::try_from(row.attempts).unwrap_or(0),
        external_id: row.external_id,
        next_attempt_at: row.next_attempt_at,
        updated_at: row.updated_at,
    })
}

/// The stream position: `(received_through, acknowledged_through)`, `None`
/// before the first notification.
///
/// # Errors
/// Database errors.
pub async fn position(db: &Database) -> Result<Option<(i64, i64)>, NotifierError> {
    Ok(stream_position::Entity::find_by_id(1)
        .one(db.conn())
        .await?
        .map(|p| (p.received_through, p.acknowledged_through)))
}

async fn advance_received<C: sea_orm::ConnectionTrait>(
    conn: &C,
    through: i64,
) -> Result<(), NotifierError> {
    let moved = stream_position::Entity::update_many()
        .col_expr(
            stream_position::Column::ReceivedThrough,
            Expr::value(through),
        )
        .filter(stream_position::Column::Id.eq(1))
        .filter(stream_position::Column::ReceivedThrough.lt(through))
        .exec(conn)
        .await?;
    if moved.rows_affected == 0 {
        stream_position::Entity::insert(stream_position::ActiveModel {
            id: Set(1),
            received_through: Set(through),
            acknowledged_through: Set(0),
        })
        .on_conflict(
            OnConflict::column(stream_position::Column::Id)
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(conn)
        .await
        .or_else(|e| match e {
            sea_orm::DbErr::RecordNotInserted => Ok(0),
            e => Err(e),
        })?;
    }
    Ok(())
}

/// Stores a received notification (once: a repeat after a restart is
/// ignored) and moves the received position to it.
///
/// # Errors
/// Database errors.
pub async fn receive(db: &Database, notification: &Notification) -> Result<(), NotifierError> {
    let now = Utc::now();
    let txn = db.begin_write().await?;
    delivery::Entity::insert(delivery::ActiveModel {
        sequence: Set(notification.sequence),
        recipient: Set(notification.recipient),
        message_key: Set(notification.message_key.clone()),
        is_update: Set(notification.update),
        notification: Set(serde_json::to_string(notification)
            .map_err(|e| NotifierError::Corrupt(e.to_string()))?),
        state: Set(DeliveryState::Pending.as_str().to_owned()),
        channel: Set(String::new()),
        reason: Set(String::new()),
        attempts: Set(0),
        external_id: Set(String::new()),
        next_attempt_at: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
    })
    .on_conflict(
        OnConflict::column(delivery::Column::Sequence)
            .do_nothing()
            .to_owned(),
    )
    .exec_without_returning(&*txn)
    .await
    .or_else(|e| match e {
        sea_orm::DbErr::RecordNotInserted => Ok(0),
        e => Err(e),
    })?;
    advance_received(&*txn, notification.sequence).await?;
    txn.commit().await?;
    Ok(())
}

/// Moves the received position past sequences with nothing for us
/// (a progress message).
///
/// # Errors
/// Database errors.
pub async fn progress(db: &Database, through: i64) -> Result<(), NotifierError> {
    let txn = db.begin_write().await?;
    advance_received(&*txn, through).await?;
    txn.commit().await?;
    Ok(())
}

const UNFINISHED: [DeliveryState; 3] = [
    DeliveryState::Pending,
    DeliveryState::Sending,
    DeliveryState::Retrying,
];

fn unfinished_states() -> Vec<&'static str> {
    UNFINISHED.iter().map(|s| s.as_str()).collect()
}

/// Each recipient's oldest unfinished delivery (the only one that may go:
/// a recipient's deliveries go in order), oldest first, at most `limit`. The
/// grouping runs in the database, so a round costs what its recipients cost,
/// not what the backlog holds.
///
/// # Errors
/// Database errors.
pub async fn heads(db: &Database, limit: u64) -> Result<Vec<Delivery>, NotifierError> {
    let sql = service_runtime::database::placeholders(
        db.backend(),
        "SELECT d.* FROM deliveries d \
         JOIN (SELECT recipient, MIN(sequence) AS head FROM deliveries \
               WHERE state IN ('pending', 'sending', 'retrying') GROUP BY recipient) h \
         ON d.sequence = h.head \
         ORDER BY d.sequence LIMIT ?",
    );
    delivery::Entity::find()
        .from_raw_sql(sea_orm::Statement::from_sql_and_values(
            db.backend(),
            sql,
            [i64::try_from(limit).unwrap_or(i64::MAX).into()],
        ))
        .all(db.conn())
        .await?
        .into_iter()
        .map(read)
        .collect()
}

/// `recipient`'s oldest unfinished delivery: the one that goes next.
///
/// # Errors
/// Database errors.
pub async fn head_of(db: &Database, recipient: i64) -> Result<Option<Delivery>, NotifierError> {
    delivery::Entity::find()
        .filter(delivery::Column::Recipient.eq(recipient))
        .filter(delivery::Column::State.is_in(unfinished_states()))
        .order_by_asc(delivery::Column::Sequence)
        .limit(1)
        .one(db.conn())
        .await?
        .map(read)
        .transpose()
}

/// The highest sequence up to which every received notification is done
/// (sent, stopped or undeliverable): what may be acknowledged.
///
/// # Errors
/// Database errors.
pub async fn done_through(db: &Database) -> Result<i64, NotifierError> {
    let Some((received, _)) = position(db).await? else {
        return Ok(0);
    };
    let oldest_open: Option<i64> = delivery::Entity::find()
        .select_only()
        .column_as(delivery::Column::Sequence.min(), "oldest")
        .filter(delivery::Column::State.is_in(unfinished_states()))
        .into_tuple::<Option<i64>>()
        .one(db.conn())
        .await?
        .flatten();
    Ok(oldest_open.map_or(received, |oldest| oldest - 1))
}

/// Records an acknowledgement up to `through`.
///
/// # Errors
/// Database errors.
pub async fn acknowledged(db: &Database, through: i64) -> Result<(), NotifierError> {
    db.gated(
        stream_position::Entity::update_many()
            .col_expr(
                stream_position::Column::AcknowledgedThrough,
                Expr::value(through),
            )
            .filter(stream_position::Column::Id.eq(1))
            .exec(db.conn()),
    )
    .await?;
    Ok(())
}

/// A change to one delivery's row.
#[derive(Debug, Clone)]
pub enum Mark {
    /// About to call the tool (attempt `attempts`, with `channel`).
    Sending {
        /// The tool.
        channel: Channel,
        /// The attempt's number.
        attempts: u32,
    },
    /// Failed for now; try again at `at`.
    Retrying {
        /// Why.
        reason: String,
        /// When.
        at: DateTime<Utc>,
    },
    /// Refused for good.
    Stopped {
        /// Why.
        reason: String,
    },
    /// The recipient has no destination.
    Undeliverable,
}

/// Applies `mark` to delivery `sequence` if it is still in state `from`
/// (a compare-and-set: a round that read the row before another attempt
/// finished must not act on it again); whether it applied.
///
/// # Errors
/// Database errors.
pub async fn mark(
    db: &Database,
    sequence: i64,
    from: DeliveryState,
    mark: Mark,
) -> Result<bool, NotifierError> {
    let mut update = delivery::Entity::update_many()
        .col_expr(delivery::Column::UpdatedAt, Expr::value(Utc::now()))
        .filter(delivery::Column::Sequence.eq(sequence))
        .filter(delivery::Column::State.eq(from.as_str()));
    let (state, reason, next) = match &mark {
        Mark::Sending { channel, attempts } => {
            update = update
                .filter(
                    delivery::Column::Attempts
                        .eq(i32::try_from(attempts.saturating_sub(1)).unwrap_or(i32::MAX)),
                )
                .col_expr(delivery::Column::Channel, Expr::value(channel.as_str()))
                .col_expr(
                    delivery::Column::Attempts,
                    Expr::value(i32::try_from(*attempts).unwrap_or(i32::MAX)),
                );
            (DeliveryState::Sending, String::new(), None)
        }
        Mark::Retrying { reason, at } => (DeliveryState::Retrying, reason.clone(), Some(*at)),
        Mark::Stopped { reason } => (DeliveryState::Stopped, reason.clone(), None),
        Mark::Undeliverable => (
            DeliveryState::Undeliverable,
            "the recipient has no destination".to_owned(),
            None,
        ),
    };
    update = update
        .col_expr(delivery::Column::State, Expr::value(state.as_str()))
        .col_expr(delivery::Column::Reason, Expr::value(reason))
        .col_expr(delivery::Column::NextAttemptAt, Expr::value(next));
    let changed = db.gated(update.exec(db.conn())).await?;
    Ok(changed.rows_affected == 1)
}

/// A thread's message at its tool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Thread {
    /// The tool it was posted with.
    pub channel: Channel,
    /// The channel id or URL it was posted to.
    pub address: String,
    /// Its id there.
    pub external_id: String,
}

/// The message of `recipient`'s thread `message_key`, if one was sent.
///
/// # Errors
/// Database errors.
pub async fn thread(
    db: &Database,
    recipient: i64,
    message_key: &str,
) -> Result<Option<Thread>, NotifierError> {
    let row = thread::Entity::find_by_id((recipient, message_key.to_owned()))
        .one(db.conn())
        .await?;
    Ok(row.and_then(|row| {
        Some(Thread {
            channel: Channel::parse(&row.channel)?,
            address: row.address,
            external_id: row.external_id,
        })
    }))
}

/// Marks delivery `sequence` sent as `external_id`; when it started a
/// thread, stores the thread's message in the same transaction.
///
/// # Errors
/// Database errors.
pub async fn sent(
    db: &Database,
    notification: &Notification,
    external_id: &str,
    started: Option<&Thread>,
) -> Result<(), NotifierError> {
    let now = Utc::now();
    let txn = db.begin_write().await?;
    if let Some(started) = started {
        thread::Entity::insert(thread::ActiveModel {
            recipient: Set(notification.recipient),
            message_key: Set(notification.message_key.clone()),
            channel: Set(started.channel.as_str().to_owned()),
            address: Set(started.address.clone()),
            external_id: Set(started.external_id.clone()),
            updated_at: Set(now),
        })
        .on_conflict(
            OnConflict::columns([thread::Column::Recipient, thread::Column::MessageKey])
                .update_columns([
                    thread::Column::Channel,
                    thread::Column::Address,
                    thread::Column::ExternalId,
                    thread::Column::UpdatedAt,
                ])
                .to_owned(),
        )
        .exec(&*txn)
        .await?;
    }
    delivery::Entity::update_many()
        .col_expr(
            delivery::Column::State,
            Expr::value(DeliveryState::Sent.as_str()),
        )
        .col_expr(delivery::Column::Reason, Expr::value(""))
        .col_expr(delivery::Column::ExternalId, Expr::value(external_id))
        .col_expr(
            delivery::Column::NextAttemptAt,
            Expr::value(None::<DateTime<Utc>>),
        )
        .col_expr(delivery::Column::UpdatedAt, Expr::value(now))
        .filter(delivery::Column::Sequence.eq(notification.sequence))
        .filter(delivery::Column::State.eq(DeliveryState::Sending.as_str()))
        .exec(&*txn)
        .await?;
    txn.commit().await?;
    Ok(())
}

/// Which deliveries to list.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    /// Only this state.
    pub state: Option<DeliveryState>,
    /// Only this recipient.
    pub recipient: Option<i64>,
}

impl ListFilter {
    /// A stable description, for page-token fingerprints.
    pub fn describe(&self) -> String {
        format!(
            "state={};recipient={}",
            self.state.map_or("", DeliveryState::as_str),
            self.recipient.unwrap_or(0)
        )
    }
}

/// A page of deliveries, newest first, and the next page's token.
///
/// # Errors
/// Database errors.
pub async fn list(
    db: &Database,
    filter: &ListFilter,
    page: &PageRequest<i64>,
) -> Result<(Vec<Delivery>, String), NotifierError> {
    let mut condition = Condition::all();
    if let Some(state) = filter.state {
        condition = condition.add(delivery::Column::State.eq(state.as_str()));
    }
    if let Some(recipient) = filter.recipient {
        condition = condition.add(delivery::Column::Recipient.eq(recipient));
    }
    if let Some(after) = page.after {
        condition = condition.add(delivery::Column::Sequence.lt(after));
    }
    let mut rows = delivery::Entity::find()
        .filter(condition)
        .order_by_desc(delivery::Column::Sequence)
        .limit(page.fetch_limit())
        .all(db.conn())
        .await?;
    let next = page.finish(&mut rows, |row| row.sequence);
    let deliveries = rows.into_iter().map(read).collect::<Result<_, _>>()?;
    Ok((deliveries, next))
}

/// Puts a stopped delivery back in line.
///
/// # Errors
/// `NotFound`, `DeliveryNotStopped`; database errors.
pub async fn retry(db: &Database, sequence: i64) -> Result<Delivery, NotifierError> {
    let txn = db.begin_write().await?;
    let Some(row) = delivery::Entity::find_by_id(sequence).one(&*txn).await? else {
        return Err(NotifierError::NotFound {
            resource: "delivery",
            id: sequence.to_string(),
        });
    };
    if row.state != DeliveryState::Stopped.as_str() {
        return Err(NotifierError::refused(
            Reason::DeliveryNotStopped,
            format!(
                "delivery {sequence} is {}; only stopped deliveries are retried",
                row.state
            ),
        ));
    }
    delivery::Entity::update_many()
        .col_expr(
            delivery::Column::State,
            Expr::value(DeliveryState::Pending.as_str()),
        )
        .col_expr(delivery::Column::Reason, Expr::value(""))
        .col_expr(delivery::Column::UpdatedAt, Expr::value(Utc::now()))
        .filter(delivery::Column::Sequence.eq(sequence))
        .exec(&*txn)
        .await?;
    let row = delivery::Entity::find_by_id(sequence)
        .one(&*txn)
        .await?
        .ok_or_else(|| NotifierError::Corrupt("delivery vanished".into()))?;
    txn.commit().await?;
    read(row)
}

/// Deliveries per state (for `/metrics`).
///
/// # Errors
/// Database errors.
pub async fn counts(db: &Database) -> Result<Vec<(DeliveryState, i64)>, NotifierError> {
    let rows: Vec<(String, i64)> = delivery::Entity::find()
        .select_only()
        .column(delivery::Column::State)
        .column_as(delivery::Column::Sequence.count(), "n")
        .group_by(delivery::Column::State)
        .into_tuple()
        .all(db.conn())
        .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(state, n)| Some((DeliveryState::parse(&state)?, n)))
        .collect())
}
