//! Each user's destination: set (idempotently, by request id), read without
//! its secret at the API, read with it for delivery, removed.

use chrono::Utc;
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::Set, EntityTrait as _};
use serde::{Deserialize, Serialize};
use service_runtime::database::Database;
use service_runtime::idempotency::{IdempotencyKey, idempotent_write};
use service_runtime::ids::RequestId;

use crate::domain::{Destination, Target};
use crate::error::NotifierError;
use crate::storage::entities::destination;

/// What SetDestination answers (and stores for a repeat): the destination
/// without its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DestinationView {
    /// The recipient.
    pub user_id: i64,
    /// The tool.
    pub channel: crate::domain::Channel,
    /// Channel id or URL.
    pub address: String,
    /// When it was set.
    pub updated_at: chrono::DateTime<Utc>,
}

impl DestinationView {
    fn of(row: &destination::Model) -> Result<Self, NotifierError> {
        Ok(Self {
            user_id: row.user_id,
            channel: crate::domain::Channel::parse(&row.channel)
                .ok_or_else(|| NotifierError::Corrupt(format!("channel {:?}", row.channel)))?,
            address: row.address.clone(),
            updated_at: row.updated_at,
        })
    }
}

/// The identity of a SetDestination call (the secret enters only as a digest).
#[derive(Serialize)]
struct SetCommand<'a> {
    user_id: i64,
    channel: &'static str,
    address: &'a str,
    secret: service_runtime::secret::Secret<String>,
}

/// Creates or replaces `user_id`'s destination.
///
/// # Errors
/// `RequestIdReused`; database errors.
pub async fn set(
    db: &Database,
    user_id: i64,
    target: &Target,
    request_id: &RequestId,
) -> Result<DestinationView, NotifierError> {
    let command = SetCommand {
        user_id,
        channel: target.channel().as_str(),
        address: target.address(),
        secret: service_runtime::secret::Secret::new(target.secret()),
    };
    let key = IdempotencyKey::new("SetDestination", Some(request_id), &command);
    let row = destination::ActiveModel {
        user_id: Set(user_id),
        channel: Set(target.channel().as_str().to_owned()),
        address: Set(target.address().to_owned()),
        secret: Set(target.secret()),
        updated_at: Set(Utc::now()),
    };
    idempotent_write(db, key, move |txn| {
        Box::pin(async move {
            destination::Entity::insert(row.clone())
                .on_conflict(
                    OnConflict::column(destination::Column::UserId)
                        .update_columns([
                            destination::Column::Channel,
                            destination::Column::Address,
                            destination::Column::Secret,
                            destination::Column::UpdatedAt,
                        ])
                        .to_owned(),
                )
                .exec(txn)
                .await?;
            let stored = destination::Entity::find_by_id(user_id)
                .one(txn)
                .await?
                .ok_or_else(|| NotifierError::Corrupt("destination vanished".into()))?;
            DestinationView::of(&stored)
        })
    })
    .await
}

/// `user_id`'s destination, without its secret.
///
/// # Errors
/// `NotFound`; database errors.
pub async fn view(db: &Database, user_id: i64) -> Result<DestinationView, NotifierError> {
    let row = destination::Entity::find_by_id(user_id)
        .one(db.conn())
        .await?
        .ok_or_else(|| NotifierError::NotFound {
            resource: "destination of user",
            id: user_id.to_string(),
        })?;
    DestinationView::of(&row)
}

/// `user_id`'s destination with its credential, for delivery; `None` when
/// the user has none.
///
/// # Errors
/// Database errors; a stored value that does not parse.
pub async fn load(db: &Database, user_id: i64) -> Result<Option<Destination>, NotifierError> {
    let Some(row) = destination::Entity::find_by_id(user_id)
        .one(db.conn())
        .await?
    else {
        return Ok(None);
    };
    let target = Target::from_stored(&row.channel, row.address, row.secret)
        .map_err(|why| NotifierError::Corrupt(format!("destination of user {user_id}: {why}")))?;
    Ok(Some(Destination {
        user_id,
        target,
        updated_at: row.updated_at,
    }))
}

/// Removes `user_id`'s destination; whether there was one.
///
/// # Errors
/// Database errors.
pub async fn delete(db: &Database, user_id: i64) -> Result<bool, NotifierError> {
    let deleted = db
        .gated(destination::Entity::delete_by_id(user_id).exec(db.conn()))
        .await?;
    Ok(deleted.rows_affected > 0)
}

/// Destinations read for delivery, kept in memory: the API of this process
/// is the only writer, and forgets a user's entry when it sets or deletes it.
#[derive(Debug, Clone, Default)]
pub struct Cache(
    std::sync::Arc<std::sync::Mutex<std::collections::HashMap<i64, Option<Destination>>>>,
);

/// Users kept at most (the cache is emptied beyond).
const CACHED_USERS: usize = 100_000;

impl Cache {
    /// `user_id`'s destination, from memory or the database.
    ///
    /// # Errors
    /// As [`load`].
    pub async fn load(
        &self,
        db: &Database,
        user_id: i64,
    ) -> Result<Option<Destination>, NotifierError> {
        if let Some(hit) = self.0.lock().ok().and_then(|c| c.get(&user_id).cloned()) {
            return Ok(hit);
        }
        let loaded = load(db, user_id).await?;
        if let Ok(mut cache) = self.0.lock() {
            if cache.len() >= CACHED_USERS {
                cache.clear();
            }
            cache.insert(user_id, loaded.clone());
        }
        Ok(loaded)
    }

    /// Forgets `user_id`'s entry (after a change).
    pub fn forget(&self, user_id: i64) {
        if let Ok(mut cache) = self.0.lock() {
            cache.remove(&user_id);
        }
    }
}
