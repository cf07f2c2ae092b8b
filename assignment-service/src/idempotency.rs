//! Idempotent mutations (AIP-155).
//!
//! A mutating call with a request id stores its response in `processed_requests`
//! in the same transaction as its effect. A repeat finds the stored response and
//! returns it without doing anything; a repeat with a different request body is
//! refused (`REQUEST_ID_REUSED`). Two concurrent calls with one id cannot both
//! commit: the second one's insert conflicts, it rolls back, and the caller's retry
//! returns the winner's response.

use sea_orm::{
    ActiveModelTrait as _, ActiveValue::Set, ConnectionTrait, DatabaseTransaction, EntityTrait as _,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use service_runtime::database::is_unique_violation;
use service_runtime::ids::RequestId;
use sha2::{Digest as _, Sha256};

use crate::error::AssignmentError;
use crate::storage::entities::processed_request;

/// The identity of one mutating call: method, request id, and a fingerprint of
/// the request's content.
#[derive(Debug, Clone)]
pub struct IdempotencyKey {
    method: &'static str,
    request_id: RequestId,
    fingerprint: String,
}

impl IdempotencyKey {
    /// The key of a call; `None` when the caller sent no request id.
    pub fn new(
        method: &'static str,
        request_id: Option<&RequestId>,
        command: &impl Serialize,
    ) -> Option<Self> {
        let request_id = request_id?.clone();
        let body = serde_json::to_vec(command).unwrap_or_default();
        let fingerprint = hex::encode(Sha256::digest(&body));
        Some(Self {
            method,
            request_id,
            fingerprint,
        })
    }

    /// The request id.
    pub fn request_id(&self) -> &RequestId {
        &self.request_id
    }
}

/// The stored response of an earlier call with the same key, if any.
///
/// # Errors
/// `RequestIdReused` when the earlier call had a different body; database errors.
pub async fn replay<T: DeserializeOwned, C: ConnectionTrait>(
    txn: &C,
    key: Option<&IdempotencyKey>,
) -> Result<Option<T>, AssignmentError> {
    let Some(key) = key else { return Ok(None) };
    let stored = processed_request::Entity::find_by_id((
        key.method.to_owned(),
        key.request_id.as_str().to_owned(),
    ))
    .one(txn)
    .await?;
    let Some(stored) = stored else {
        return Ok(None);
    };
    if stored.fingerprint != key.fingerprint {
        return Err(AssignmentError::RequestIdReused {
            request_id: key.request_id.to_string(),
        });
    }
    serde_json::from_slice(&stored.response)
        .map(Some)
        .map_err(|e| AssignmentError::Corrupt(format!("stored response of {}: {e}", key.method)))
}

/// Stores the response of a call, in the call's transaction.
///
/// # Errors
/// `ConcurrentDuplicate` when a concurrent call with the same key committed first
/// (retry the call); database errors.
pub async fn record<T: Serialize>(
    txn: &DatabaseTransaction,
    key: Option<&IdempotencyKey>,
    response: &T,
) -> Result<(), AssignmentError> {
    let Some(key) = key else { return Ok(()) };
    let response = serde_json::to_vec(response)
        .map_err(|e| AssignmentError::Corrupt(format!("response of {}: {e}", key.method)))?;
    let row = processed_request::ActiveModel {
        method: Set(key.method.to_owned()),
        request_id: Set(key.request_id.as_str().to_owned()),
        fingerprint: Set(key.fingerprint.clone()),
        response: Set(response),
        created_at: Set(service_runtime::time::now()),
    };
    match row.insert(txn).await {
        Ok(_) => Ok(()),
        Err(err) if is_unique_violation(&err) => Err(AssignmentError::ConcurrentDuplicate),
        Err(err) => Err(err.into()),
    }
}

/// The future a unit of work returns, borrowing the transaction.
pub type WorkFuture<'t, T> =
    std::pin::Pin<Box<dyn Future<Output = Result<T, AssignmentError>> + Send + 't>>;

/// Runs `work` in a write transaction, idempotently: a stored response for `key`
/// is returned without running it; otherwise its result is stored with its effect
/// and committed. When `work` fails with ALREADY_EXISTS because a concurrent call
/// with the same key committed first, that call's response is returned.
///
/// # Errors
/// The error of `work`, or of the database.
pub async fn idempotent_write<T, F>(
    db: &service_runtime::database::Database,
    key: Option<IdempotencyKey>,
    work: F,
) -> Result<T, AssignmentError>
where
    T: Serialize + DeserializeOwned + Send,
    F: for<'t> FnOnce(&'t DatabaseTransaction) -> WorkFuture<'t, T>,
{
    let txn = db.begin_write().await?;
    if let Some(previous) = replay(&txn, key.as_ref()).await? {
        return Ok(previous);
    }
    match work(&txn).await {
        Ok(response) => {
            record(&txn, key.as_ref(), &response).await?;
            txn.commit().await?;
            Ok(response)
        }
        Err(error @ AssignmentError::AlreadyExists { .. }) if key.is_some() => {
            txn.rollback().await?;
            match replay(db.conn(), key.as_ref()).await? {
                Some(previous) => Ok(previous),
                None => Err(error),
            }
        }
        Err(error) => Err(error),
    }
}
