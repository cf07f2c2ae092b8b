//! Idempotent mutations (AIP-155), shared by both services.
//!
//! A mutating call with a request id stores its response in `processed_requests`
//! in the same transaction as its effect. A repeat finds the stored response and
//! returns it without doing anything; a repeat with a different request body is
//! refused. Two concurrent calls with one id cannot both commit: the second one's
//! insert conflicts, it rolls back, and its retry returns the winner's response.
//!
//! Each service creates the table with [`create_table`] in its migrations and
//! maps [`IdempotencyError`] into its own error enum.

use sea_orm::sea_query::{Index, Table};
use sea_orm::{
    ActiveModelTrait as _, ActiveValue::Set, ConnectionTrait, DatabaseTransaction, DbErr,
    EntityTrait as _,
};
use sea_orm_migration::SchemaManager;
use sea_orm_migration::schema::{blob, string, timestamp_with_time_zone};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest as _, Sha256};

use crate::database::{Database, is_unique_violation};
use crate::ids::RequestId;
use crate::shapes::{in_list_pair, pairs_in_values, shaped_chunks};

/// The `processed_requests` table: one stored response per (method, request id).
pub mod processed_request {
    use sea_orm::entity::prelude::*;

    /// A stored response.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "processed_requests")]
    pub struct Model {
        /// The RPC.
        #[sea_orm(primary_key, auto_increment = false)]
        pub method: String,
        /// The caller's request id.
        #[sea_orm(primary_key, auto_increment = false)]
        pub request_id: String,
        /// SHA-256 of the request's content, to refuse reuse for another request.
        pub fingerprint: String,
        /// The response, as JSON of the service's domain value.
        pub response: Vec<u8>,
        /// When it was stored (retention prunes old ones).
        pub created_at: DateTimeUtc,
    }

    /// No relations.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Creates the `processed_requests` table (call from a migration).
///
/// # Errors
/// When the table cannot be created.
pub async fn create_table(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    manager
        .create_table(
            Table::create()
                .table("processed_requests")
                .col(string("method"))
                .col(string("request_id"))
                .col(string("fingerprint"))
                .col(blob("response"))
                .col(timestamp_with_time_zone("created_at"))
                .primary_key(Index::create().col("method").col("request_id"))
                .to_owned(),
        )
        .await?;
    manager
        .create_index(
            Index::create()
                .name("ix_processed_requests_created")
                .table("processed_requests")
                .col("created_at")
                .to_owned(),
        )
        .await
}

/// Why an idempotent call could not proceed.
#[derive(Debug, thiserror::Error)]
pub enum IdempotencyError {
    /// The request id was used before for a request with other content.
    #[error("request id {0} was already used for a different request")]
    Reused(String),
    /// A concurrent call with the same key committed first; retry the call.
    #[error("a concurrent request with the same request id won")]
    ConcurrentDuplicate,
    /// The stored response could not be read back.
    #[error("stored response unreadable: {0}")]
    Corrupt(String),
    /// The database failed.
    #[error(transparent)]
    Database(#[from] DbErr),
}

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
        let digest = Sha256::digest(&body);
        let fingerprint = digest.iter().map(|b| format!("{b:02x}")).collect();
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
/// `Reused` when the earlier call had a different body; database errors.
pub async fn replay<T: DeserializeOwned, C: ConnectionTrait>(
    conn: &C,
    key: Option<&IdempotencyKey>,
) -> Result<Option<T>, IdempotencyError> {
    let Some(key) = key else { return Ok(None) };
    let stored = crate::database::unique(
        processed_request::Entity::find_by_id((
            key.method.to_owned(),
            key.request_id.as_str().to_owned(),
        )),
        conn,
    )
    .await?;
    let Some(stored) = stored else {
        return Ok(None);
    };
    if stored.fingerprint != key.fingerprint {
        return Err(IdempotencyError::Reused(key.request_id.to_string()));
    }
    serde_json::from_slice(&stored.response)
        .map(Some)
        .map_err(|e| IdempotencyError::Corrupt(format!("{}: {e}", key.method)))
}

/// [`replay`] for several keys in one query (a group commit's calls): per key,
/// `None` when there is no key or no stored response.
///
/// # Errors
/// Database errors; `Reused` and unreadable responses are per key.
pub async fn replay_many<T: DeserializeOwned, C: ConnectionTrait>(
    conn: &C,
    keys: &[Option<&IdempotencyKey>],
) -> Result<Vec<Option<Result<T, IdempotencyError>>>, DbErr> {
    let present: Vec<&IdempotencyKey> = keys.iter().flatten().copied().collect();
    if present.is_empty() {
        return Ok(keys.iter().map(|_| None).collect());
    }
    let mut stored: std::collections::HashMap<(String, String), processed_request::Model> =
        std::collections::HashMap::new();
    for chunk in present.chunks(KEYS_PER_LOOKUP) {
        stored.extend(
            stored_responses(conn, chunk)
                .await?
                .into_iter()
                .map(|row| ((row.method.clone(), row.request_id.clone()), row)),
        );
    }
    Ok(keys
        .iter()
        .map(|key| {
            let key = (*key)?;
            let row = stored.get(&(key.method.to_owned(), key.request_id.as_str().to_owned()))?;
            if row.fingerprint != key.fingerprint {
                return Some(Err(IdempotencyError::Reused(key.request_id.to_string())));
            }
            Some(
                serde_json::from_slice(&row.response)
                    .map_err(|e| IdempotencyError::Corrupt(format!("{}: {e}", key.method))),
            )
        })
        .collect())
}

/// Keys looked up by one statement at most.
const KEYS_PER_LOOKUP: usize = 256;

/// The stored rows of `keys` (a row may come twice).
///
/// On PostgreSQL the keys are a `VALUES` list joined on the whole primary
/// key. As `method IN (…) AND request_id IN (…)`, a table without
/// statistics (autovacuum off, or not yet run) made the planner guess one
/// method matched a handful of rows, use the key's first column only and
/// filter every stored response of the method: 2 to 9 ms a lookup in the
/// bench's `sync-rpc`, growing with the table (docs/BENCHMARKS.md "Stop 36").
/// Joined, each key is one index probe on both columns. SQLite plans the
/// lists on both columns, and scans the table for a `VALUES` join, so it
/// keeps the lists.
async fn stored_responses<C: ConnectionTrait>(
    conn: &C,
    keys: &[&IdempotencyKey],
) -> Result<Vec<processed_request::Model>, DbErr> {
    use sea_orm::{ColumnTrait as _, DbBackend, QueryFilter as _, Statement};
    let backend = conn.get_database_backend();
    if backend != DbBackend::Postgres {
        let methods: std::collections::BTreeSet<&str> = keys.iter().map(|k| k.method).collect();
        let [methods, request_ids] =
            in_list_pair(methods, keys.iter().map(|k| k.request_id.as_str()));
        return processed_request::Entity::find()
            .filter(processed_request::Column::Method.is_in(methods))
            .filter(processed_request::Column::RequestId.is_in(request_ids))
            .all(conn)
            .await;
    }
    let pairs: Vec<(&str, &str)> = keys
        .iter()
        .map(|k| (k.method, k.request_id.as_str()))
        .collect();
    let (keys_in, values) = pairs_in_values("method", "request_id", &pairs);
    let sql = format!(
        "SELECT method, request_id, fingerprint, response, created_at FROM processed_requests \
         WHERE {keys_in}"
    );
    processed_request::Entity::find()
        .from_raw_sql(Statement::from_sql_and_values(
            backend,
            crate::database::placeholders(backend, &sql),
            values,
        ))
        .all(conn)
        .await
}

/// Whether two keys are the same call (same method, id and content).
pub fn same_call(a: &IdempotencyKey, b: &IdempotencyKey) -> bool {
    a.method == b.method && a.request_id == b.request_id && a.fingerprint == b.fingerprint
}

/// [`record`] for several calls in one statement.
///
/// # Errors
/// `ConcurrentDuplicate` when a concurrent call with one of the keys committed
/// first; database errors.
pub async fn record_many<T: Serialize>(
    txn: &DatabaseTransaction,
    entries: &[(&IdempotencyKey, &T)],
) -> Result<(), IdempotencyError> {
    if entries.is_empty() {
        return Ok(());
    }
    let created_at = crate::time::now();
    let mut rows = Vec::with_capacity(entries.len());
    for (key, response) in entries {
        let response = serde_json::to_vec(response)
            .map_err(|e| IdempotencyError::Corrupt(format!("{}: {e}", key.method)))?;
        rows.push(processed_request::ActiveModel {
            method: Set(key.method.to_owned()),
            request_id: Set(key.request_id.as_str().to_owned()),
            fingerprint: Set(key.fingerprint.clone()),
            response: Set(response),
            created_at: Set(created_at),
        });
    }
    for chunk in shaped_chunks(&rows, ROWS_PER_INSERT) {
        match processed_request::Entity::insert_many(chunk.to_vec())
            .exec_without_returning(txn)
            .await
        {
            Ok(_) => {}
            Err(err) if is_unique_violation(&err) => {
                return Err(IdempotencyError::ConcurrentDuplicate);
            }
            Err(err) => return Err(err.into()),
        }
    }
    Ok(())
}

/// Stored responses per multi-row insert (well under both engines' parameter
/// limits).
const ROWS_PER_INSERT: usize = 256;

/// Stores the response of a call, in the call's transaction.
///
/// # Errors
/// `ConcurrentDuplicate` when a concurrent call with the same key committed first;
/// database errors.
pub async fn record<T: Serialize>(
    txn: &DatabaseTransaction,
    key: Option<&IdempotencyKey>,
    response: &T,
) -> Result<(), IdempotencyError> {
    let Some(key) = key else { return Ok(()) };
    let response = serde_json::to_vec(response)
        .map_err(|e| IdempotencyError::Corrupt(format!("{}: {e}", key.method)))?;
    let row = processed_request::ActiveModel {
        method: Set(key.method.to_owned()),
        request_id: Set(key.request_id.as_str().to_owned()),
        fingerprint: Set(key.fingerprint.clone()),
        response: Set(response),
        created_at: Set(crate::time::now()),
    };
    match row.insert(txn).await {
        Ok(_) => Ok(()),
        Err(err) if is_unique_violation(&err) => Err(IdempotencyError::ConcurrentDuplicate),
        Err(err) => Err(err.into()),
    }
}

/// A service error that idempotent writes can produce and recognise.
pub trait WriteError: From<IdempotencyError> + From<DbErr> + Send {
    /// Whether the error says the resource already exists (a create that lost
    /// a race may have lost it to a concurrent call with the same key).
    fn is_already_exists(&self) -> bool;
}

/// The future a unit of work returns, borrowing the transaction.
pub type WorkFuture<'t, T, E> = std::pin::Pin<Box<dyn Future<Output = Result<T, E>> + Send + 't>>;

/// Runs `work` in a write transaction, idempotently: a stored response for `key`
/// is returned without running it; otherwise its result is stored with its effect
/// and committed. When `work` fails with "already exists" because a concurrent
/// call with the same key committed first, that call's response is returned.
///
/// # Errors
/// The error of `work`, or of the database.
pub async fn idempotent_write<T, E, F>(
    db: &Database,
    key: Option<IdempotencyKey>,
    work: F,
) -> Result<T, E>
where
    T: Serialize + DeserializeOwned + Send,
    E: WriteError,
    F: for<'t> FnOnce(&'t DatabaseTransaction) -> WorkFuture<'t, T, E>,
{
    let txn = db.begin_write().await?;
    if let Some(previous) = replay(&*txn, key.as_ref()).await? {
        // Roll back explicitly (not on drop) so the write gate opens only once
        // the connection is free.
        txn.rollback().await?;
        return Ok(previous);
    }
    match work(&txn).await {
        Ok(response) => {
            record(&txn, key.as_ref(), &response).await?;
            txn.commit().await?;
            Ok(response)
        }
        Err(error) if error.is_already_exists() && key.is_some() => {
            txn.rollback().await?;
            match replay(db.conn(), key.as_ref()).await? {
                Some(previous) => Ok(previous),
                None => Err(error),
            }
        }
        Err(error) => {
            txn.rollback().await?;
            Err(error)
        }
    }
}

/// Deletes stored responses older than `cutoff`; returns how many.
///
/// # Errors
/// Database errors.
pub async fn prune(db: &Database, cutoff: chrono::DateTime<chrono::Utc>) -> Result<u64, DbErr> {
    use sea_orm::{ColumnTrait as _, QueryFilter as _};
    let _gate = db.write_gate().await?;
    Ok(processed_request::Entity::delete_many()
        .filter(processed_request::Column::CreatedAt.lt(cutoff))
        .exec(db.conn())
        .await?
        .rows_affected)
}
