//! Connecting to the service's database and migrating it.
//!
//! SQLite is the embedded default: a file, created on first use, in WAL mode so
//! readers never wait for the writer. Write transactions on SQLite begin
//! `IMMEDIATE`, so two writers queue on the database lock instead of one failing
//! when it upgrades from reading to writing. PostgreSQL is the production store;
//! several replicas may share it, so migrations run under an advisory lock.
//!
//! SQLite has one writer at a time, and a connection that finds the database
//! locked waits in SQLite's busy handler, which *sleeps* (in steps of up to
//! 100 ms) rather than queueing: under concurrent writes throughput collapses to
//! a few hundred transactions per second. So the writers of one process queue
//! in process instead, on a fair async lock (the *write gate*) taken by
//! [`Database::begin_write`] and [`Database::write_gate`]; SQLite then never sees
//! two writers from the same process. Every write goes through one of the two.

use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use sea_orm::{
    ConnAcquireErr, ConnectOptions, ConnectionTrait as _, DatabaseConnection, DatabaseTransaction,
    DbBackend, DbErr, SqliteTransactionMode, Statement, TransactionOptions, TransactionTrait as _,
};
use sea_orm_migration::MigratorTrait;

use crate::config::{DatabaseKind, DatabaseUrl};

/// Pool settings.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    /// Most connections the pool opens.
    pub max_connections: u32,
    /// How long a caller waits for a connection before the call fails.
    pub acquire_timeout: Duration,
    /// PostgreSQL: the longest a statement may run (`statement_timeout`) before
    /// the server cancels it; `None` leaves the server's default. Migrations
    /// are exempt.
    pub statement_timeout: Option<Duration>,
    /// PostgreSQL: the longest a statement waits for a lock (`lock_timeout`).
    pub lock_timeout: Option<Duration>,
    /// PostgreSQL: the `application_name` of the pool's connections, naming
    /// this process, so [`Database::cancel_own_queries`] finds them (and
    /// operators see who runs what in `pg_stat_activity`).
    pub application_name: String,
    /// Prepared statements each connection keeps (least recently used out):
    /// sqlx's 100 unless the service's statements come in fixed shapes
    /// ([`crate::shapes::STATEMENT_CACHE_CAPACITY`]); a larger cache of
    /// statements that change with every group size only holds more of them
    /// (the tracker's peak memory under ingest rose from 43 to 73 MiB so).
    pub statement_cache_capacity: usize,
}

impl Default for PoolSettings {
    fn default() -> Self {
        Self {
            max_connections: 16,
            acquire_timeout: Duration::from_secs(10),
            statement_timeout: Some(Duration::from_secs(30)),
            lock_timeout: Some(Duration::from_secs(10)),
            application_name: format!("service-{}", std::process::id()),
            statement_cache_capacity: 100,
        }
    }
}

/// How often PostgreSQL checks, during a long statement, that the client is
/// still connected (`client_connection_check_interval`, PostgreSQL 14+): a
/// process that died (`kill -9`) leaves no query running for long.
const CLIENT_CHECK_INTERVAL_MS: u64 = 1000;

/// A connection pool and the engine behind it.
#[derive(Debug, Clone)]
pub struct Database {
    conn: DatabaseConnection,
    kind: DatabaseKind,
    url: DatabaseUrl,
    /// SQLite only: the in-process queue of writers (see the module doc).
    gate: Option<Arc<tokio::sync::Mutex<()>>>,
    /// How long a writer waits for the gate before failing like a busy pool.
    acquire_timeout: Duration,
    /// The pool's `application_name` (PostgreSQL).
    application_name: String,
}

/// The right to write: held for the length of a write (SQLite); nothing on
/// PostgreSQL, whose writers need no queue.
#[derive(Debug)]
pub struct WriteGate(#[allow(dead_code)] Option<tokio::sync::OwnedMutexGuard<()>>);

/// A write transaction, holding the write gate until it commits or rolls back.
#[derive(Debug)]
pub struct WriteTransaction {
    txn: DatabaseTransaction,
    _gate: WriteGate,
    /// Open from the wait for the gate until commit or rollback; disabled
    /// unless exporting inside a traced piece of work.
    span: tracing::Span,
}

impl Deref for WriteTransaction {
    type Target = DatabaseTransaction;
    fn deref(&self) -> &DatabaseTransaction {
        &self.txn
    }
}

impl WriteTransaction {
    /// Commits, then lets the next writer in.
    ///
    /// # Errors
    /// When the commit fails (nothing is kept).
    pub async fn commit(self) -> Result<(), DbErr> {
        let result = self.txn.commit().await;
        self.span.record(
            "db.outcome",
            if result.is_ok() {
                "committed"
            } else {
                "failed"
            },
        );
        if result.is_err() {
            self.span.record("otel.status_code", "ERROR");
        }
        result
    }

    /// Rolls back, then lets the next writer in.
    ///
    /// # Errors
    /// When the database refuses.
    pub async fn rollback(self) -> Result<(), DbErr> {
        self.span.record("db.outcome", "rolled back");
        self.txn.rollback().await
    }
}

/// The options every pool of ours starts from, the services' and the
/// tests' and bench's short-lived ones alike: sqlx's idle and lifetime reaper
/// is off. In sqlx 0.9.0 a connection's release makes it acquirable before it
/// counts it idle, so a concurrent acquire can wrap the idle count to
/// `usize::MAX`; the reaper, reading that count, then loops about 10^19
/// times without yielding: one runtime worker at 100 % CPU for good, and a
/// hang at shutdown (sqlx issue #3645; seen here as a bench process that
/// never exited). Without the reaper, idle connections stay open (a pool
/// holds at most its `max_connections`) and PostgreSQL connections are not
/// recycled by age; a broken one is still dropped when a statement fails.
///
/// `min_connections` stays 0: without the reaper, sqlx keeps a minimum with a
/// task of its own that races `connect`'s first connection, and two
/// connections switching a fresh SQLite file to WAL at once fail with
/// "database is locked" (a bench bed's tracker failed to start so). The
/// first connection stays open anyway, as nothing closes idle ones.
pub fn connect_options(url: &str) -> ConnectOptions {
    let mut options = ConnectOptions::new(url.to_owned());
    options
        .idle_timeout(None::<Duration>)
        .max_lifetime(None::<Duration>)
        .min_connections(0);
    options
}

/// How long a pooled PostgreSQL connection may sit idle before the pool
/// pings it on its way out: long enough that connections in steady use never
/// are, short enough that one a server, proxy or firewall dropped overnight is
/// found before a statement fails on it.
const POSTGRES_PING_AFTER_IDLE: Duration = Duration::from_secs(30);

/// When the pool checks a connection's liveness before handing it out. sqlx
/// pings on *every* acquire by default: a network round trip on PostgreSQL, and
/// on SQLite a round trip to the connection's worker thread — one more thread
/// hand-off per transaction and per autocommit statement, on every hot path.
/// A SQLite connection is an open file in this process and cannot be hung up
/// on, so it is never pinged; a PostgreSQL connection is pinged only after
/// [`POSTGRES_PING_AFTER_IDLE`] unused. Either way a connection whose
/// statement fails on a broken link is dropped, not reused.
fn check_before_acquire(options: &mut ConnectOptions, kind: DatabaseKind) {
    match kind {
        DatabaseKind::Sqlite => options.test_before_acquire(false),
        DatabaseKind::Postgres => options.test_before_acquire_if_idle_for(POSTGRES_PING_AFTER_IDLE),
    };
}

impl Database {
    /// Connects (creating a SQLite file and its directory when needed).
    ///
    /// # Errors
    /// When the directory cannot be created or the database cannot be reached.
    pub async fn connect(url: &DatabaseUrl, pool: &PoolSettings) -> Result<Self, DbErr> {
        if let Some(parent) = url.sqlite_path().and_then(|p| p.parent())
            && !parent.as_os_str().is_empty()
        {
            std::fs::create_dir_all(parent)
                .map_err(|e| DbErr::Custom(format!("cannot create {}: {e}", parent.display())))?;
        }
        let mut options = connect_options(url.as_str());
        check_before_acquire(&mut options, url.kind());
        let statement_cache = pool.statement_cache_capacity;
        options
            .max_connections(pool.max_connections)
            .acquire_timeout(pool.acquire_timeout)
            .connect_timeout(pool.acquire_timeout)
            .sqlx_logging(false)
            .map_sqlx_sqlite_opts(move |o| {
                o.journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
                    .synchronous(sea_orm::sqlx::sqlite::SqliteSynchronous::Normal)
                    .foreign_keys(true)
                    .busy_timeout(Duration::from_secs(30))
                    // A larger page cache (32 MiB, allocated as used): the profile
                    // showed page reads through `pread` on every statement with
                    // the 2 MiB default. (Memory-mapped I/O was tried and
                    // dropped: the file grows under writes and every remap
                    // cost an munmap and a TLB shootdown.)
                    .pragma("cache_size", "-32768")
                    .statement_cache_capacity(statement_cache)
                    .create_if_missing(true)
            })
            .map_sqlx_postgres_opts({
                let pool = pool.clone();
                move |o| {
                    let mut settings = vec![(
                        "client_connection_check_interval",
                        CLIENT_CHECK_INTERVAL_MS.to_string(),
                    )];
                    if let Some(t) = pool.statement_timeout {
                        settings.push(("statement_timeout", t.as_millis().to_string()));
                    }
                    if let Some(t) = pool.lock_timeout {
                        settings.push(("lock_timeout", t.as_millis().to_string()));
                    }
                    o.application_name(&pool.application_name)
                        .options(settings)
                        .statement_cache_capacity(pool.statement_cache_capacity)
                }
            });
        let conn = sea_orm::Database::connect(options).await?;
        Ok(Self {
            conn,
            kind: url.kind(),
            url: url.clone(),
            gate: (url.kind() == DatabaseKind::Sqlite)
                .then(|| Arc::new(tokio::sync::Mutex::new(()))),
            acquire_timeout: pool.acquire_timeout,
            application_name: pool.application_name.clone(),
        })
    }

    /// The pool, for queries.
    pub fn conn(&self) -> &DatabaseConnection {
        &self.conn
    }

    /// The URL it was opened with, for connections outside the pool (such as a
    /// PostgreSQL `LISTEN` connection, which must not wait for a busy pool).
    pub fn url(&self) -> &DatabaseUrl {
        &self.url
    }

    /// The engine.
    pub fn kind(&self) -> DatabaseKind {
        self.kind
    }

    /// The SQL dialect.
    pub fn backend(&self) -> DbBackend {
        self.conn.get_database_backend()
    }

    /// Waits for the right to write (SQLite; immediate on PostgreSQL). Hold it
    /// across an autocommit write statement; transactions use [`Self::begin_write`].
    ///
    /// # Errors
    /// When the gate is not free within the pool's acquire timeout.
    pub async fn write_gate(&self) -> Result<WriteGate, DbErr> {
        match &self.gate {
            None => Ok(WriteGate(None)),
            Some(gate) => tokio::time::timeout(self.acquire_timeout, Arc::clone(gate).lock_owned())
                .await
                .map(|guard| WriteGate(Some(guard)))
                .map_err(|_| DbErr::ConnectionAcquire(ConnAcquireErr::Timeout)),
        }
    }

    /// Runs one autocommit write statement behind the write gate (the statement
    /// future is lazy: it starts only once the gate is held).
    ///
    /// # Errors
    /// The statement's error, or the gate's timeout.
    pub async fn gated<T>(
        &self,
        write: impl Future<Output = Result<T, DbErr>>,
    ) -> Result<T, DbErr> {
        let _gate = self.write_gate().await?;
        write.await
    }

    /// Begins a transaction that will write (`BEGIN IMMEDIATE` on SQLite, after
    /// the write gate).
    ///
    /// # Errors
    /// When no connection is available or the database refuses.
    pub async fn begin_write(&self) -> Result<WriteTransaction, DbErr> {
        let span = self.transaction_span();
        let gate = self.write_gate().await?;
        let options = TransactionOptions {
            sqlite_transaction_mode: (self.kind == DatabaseKind::Sqlite)
                .then_some(SqliteTransactionMode::Immediate),
            ..TransactionOptions::default()
        };
        Ok(WriteTransaction {
            txn: self.conn.begin_with_options(options).await?,
            _gate: gate,
            span,
        })
    }

    /// A client span for a write transaction (OpenTelemetry's database
    /// conventions), when exporting and inside a traced piece of work; work
    /// outside any span (background sweeps) is not traced.
    fn transaction_span(&self) -> tracing::Span {
        if !crate::telemetry::context::exporting() || tracing::Span::current().is_none() {
            return tracing::Span::none();
        }
        let system = match self.kind {
            DatabaseKind::Sqlite => "sqlite",
            DatabaseKind::Postgres => "postgresql",
        };
        tracing::info_span!(
            "db.transaction",
            otel.name = %format_args!("transaction {system}"),
            otel.kind = "client",
            otel.status_code = tracing::field::Empty,
            db.system.name = system,
            db.operation.name = "transaction",
            db.outcome = tracing::field::Empty,
        )
    }

    /// Applies pending migrations. On PostgreSQL they run in one transaction under
    /// an advisory lock, so replicas starting together migrate once.
    ///
    /// # Errors
    /// When a migration fails; nothing of it is kept.
    pub async fn migrate<M: MigratorTrait>(&self, lock_key: i64) -> Result<(), DbErr> {
        let txn = self.begin_write().await?;
        if self.kind == DatabaseKind::Postgres {
            // A migration may rewrite a large table, or wait for another
            // replica's migration: the pool's timeouts are for serving.
            txn.execute_unprepared("SET LOCAL statement_timeout = 0; SET LOCAL lock_timeout = 0")
                .await?;
            txn.execute_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT pg_advisory_xact_lock($1)",
                [lock_key.into()],
            ))
            .await?;
        }
        M::up(&*txn, None).await?;
        txn.commit().await
    }

    /// A `/readyz` check that every migration of `M` is applied (a replica
    /// of an older version may have started against a newer schema, or the
    /// schema been restored from an older backup).
    pub fn migrations_check<M: MigratorTrait>(&self) -> crate::ops_http::ReadinessCheck {
        let db = self.clone();
        crate::ops_http::ReadinessCheck::new("migrations", move || {
            let db = db.clone();
            async move {
                match M::get_pending_migrations(&db.conn).await {
                    Ok(pending) if pending.is_empty() => Ok(()),
                    Ok(pending) => Err(format!("{} not applied", pending.len())),
                    Err(error) => {
                        tracing::warn!(%error, "readiness: cannot read the applied migrations");
                        Err("cannot be read".to_owned())
                    }
                }
            }
        })
    }

    /// The pool's current size and how many of its connections are idle
    /// (at most its size: sqlx's idle count can wrap below zero for a moment,
    /// see [`connect_options`]).
    pub fn pool_usage(&self) -> (u32, u32) {
        match self.kind {
            DatabaseKind::Sqlite => {
                let pool = self.conn.get_sqlite_connection_pool();
                (pool.size(), idle_of(pool.size(), pool.num_idle()))
            }
            DatabaseKind::Postgres => {
                let pool = self.conn.get_postgres_connection_pool();
                (pool.size(), idle_of(pool.size(), pool.num_idle()))
            }
        }
    }

    /// Checks that the database answers.
    ///
    /// # Errors
    /// When it does not.
    pub async fn ping(&self) -> Result<(), DbErr> {
        self.conn.ping().await
    }

    /// PostgreSQL: asks the server to cancel every statement still running on
    /// this process's connections (found by `application_name`), from a
    /// connection of its own. Call at shutdown once the wait for in-flight work
    /// is over, so nothing this process started outlives it. Nothing on SQLite.
    ///
    /// # Errors
    /// When the server cannot be reached.
    pub async fn cancel_own_queries(&self) -> Result<u64, DbErr> {
        use sea_orm::sqlx::Connection as _;
        if self.kind != DatabaseKind::Postgres {
            return Ok(0);
        }
        let mut conn = sea_orm::sqlx::PgConnection::connect(self.url.as_str())
            .await
            .map_err(|e| DbErr::Custom(format!("connecting to cancel queries: {e}")))?;
        let cancelled: i64 = sea_orm::sqlx::query_scalar(
            "SELECT count(*) FROM (SELECT pg_cancel_backend(pid) FROM pg_stat_activity \
             WHERE application_name = $1 AND state = 'active' AND pid <> pg_backend_pid()) c",
        )
        .bind(&self.application_name)
        .fetch_one(&mut conn)
        .await
        .map_err(|e| DbErr::Custom(format!("cancelling queries: {e}")))?;
        let _ = conn.close().await;
        Ok(u64::try_from(cancelled).unwrap_or(0))
    }

    /// Closes the pool.
    ///
    /// # Errors
    /// When closing fails.
    pub async fn close(self) -> Result<(), DbErr> {
        self.conn.close().await
    }
}

/// PostgreSQL: for the rest of the caller's transaction, plans that scan a
/// whole table or sort it lose to index paths (`SET LOCAL enable_seqscan =
/// off, enable_sort = off`), and nothing is compiled just in time (`jit =
/// off`: a plan that must keep a sort or a scan carries the disabled node's
/// 10¹⁰ cost, over every JIT threshold, and was compiled on each execution,
/// 68 to 257 ms a statement in the bench's `sync-rpc`; docs/BENCHMARKS.md
/// "Stop 36"). For statements that must cost what their work
/// costs whatever the statistics say: with statistics gathered on an empty
/// table and a cached generic plan, PostgreSQL otherwise picks sequential
/// scans and sorts that are cheap for the empty table and grow with it
/// (docs/BENCHMARKS.md "Queue plans"). Nothing on SQLite.
///
/// # Errors
/// Database errors.
pub async fn pin_index_plans<C: sea_orm::ConnectionTrait>(conn: &C) -> Result<(), DbErr> {
    if conn.get_database_backend() == DbBackend::Postgres {
        conn.execute_unprepared(
            "SET LOCAL enable_seqscan = off; SET LOCAL enable_sort = off; SET LOCAL jit = off",
        )
        .await?;
    }
    Ok(())
}

/// PostgreSQL: for the rest of the caller's transaction, every statement is
/// planned for its own parameters and the tables' current size
/// (`plan_cache_mode = force_custom_plan`), never from a plan cached earlier
/// on the connection. For transactions whose statements come in a few fixed
/// shapes ([`crate::shapes`]) and are therefore reused: PostgreSQL switches a
/// reused statement to a generic plan after five executions, made for the
/// tables as they were then, and with no statistics gathered (autovacuum off)
/// the generic plans of the group commit's lookups filtered every record of
/// an integration and every stored response (2 to 9 ms each in the bench's
/// `sync-rpc`, docs/BENCHMARKS.md "Stop 36"). Nothing on SQLite.
///
/// # Errors
/// Database errors.
pub async fn plan_each_execution<C: sea_orm::ConnectionTrait>(conn: &C) -> Result<(), DbErr> {
    if conn.get_database_backend() == DbBackend::Postgres {
        conn.execute_unprepared("SET LOCAL plan_cache_mode = force_custom_plan")
            .await?;
    }
    Ok(())
}

/// The row of a select by a unique key (primary key or unique index), or
/// none: what sea-orm's `one` returns, without its `LIMIT ?`. SQLite reads a
/// bound `LIMIT` while planning and marks the statement to be prepared again
/// whenever the parameter is bound, so a `one` on the hot path re-parsed its
/// SQL on every call (the tracker's integration lookup: 98 % of its
/// re-preparations, 14 % of its CPU under ingest). Only for unique keys:
/// without a limit every matching row is read.
///
/// # Errors
/// Database errors.
pub async fn unique<E, C>(select: sea_orm::Select<E>, conn: &C) -> Result<Option<E::Model>, DbErr>
where
    E: sea_orm::EntityTrait,
    C: sea_orm::ConnectionTrait,
{
    Ok(select.all(conn).await?.into_iter().next())
}

/// The first `n` rows of `select` (which must carry no limit or offset of its
/// own), the limit written into the statement rather than bound, for the
/// reason given at [`unique`]: the stream's reads of the logs ran with a
/// bound `LIMIT` and were parsed again on every read.
///
/// # Errors
/// Database errors.
pub async fn first_rows<E, C>(
    select: sea_orm::Select<E>,
    n: u64,
    conn: &C,
) -> Result<Vec<E::Model>, DbErr>
where
    E: sea_orm::EntityTrait,
    C: sea_orm::ConnectionTrait,
{
    use sea_orm::QueryTrait as _;
    let mut statement = select.build(conn.get_database_backend());
    statement.sql.push_str(&format!(" LIMIT {n}"));
    E::find().from_raw_sql(statement).all(conn).await
}

/// [`first_rows`] planned on indexes whatever the statistics: on PostgreSQL
/// in a read transaction of its own with [`pin_index_plans`] (three more
/// round trips), a single statement on SQLite. For reads of a table that
/// grows, on a long-lived connection: PostgreSQL caches the generic plan it
/// made while the table was small and reuses it as the table grows, and
/// made with an empty table's size it is a sequential scan and a sort of the
/// whole table, until statistics are next gathered (never, with autovacuum
/// off). The notification stream's read of new rows ran so: 0.76 ms a call
/// with 20,000 rows kept, growing with retention (docs/BENCHMARKS.md
/// "Stop 35").
///
/// # Errors
/// Database errors.
pub async fn first_rows_pinned<E>(
    select: sea_orm::Select<E>,
    n: u64,
    conn: &DatabaseConnection,
) -> Result<Vec<E::Model>, DbErr>
where
    E: sea_orm::EntityTrait,
{
    if conn.get_database_backend() != DbBackend::Postgres {
        return first_rows(select, n, conn).await;
    }
    let txn = conn.begin().await?;
    pin_index_plans(&txn).await?;
    let rows = first_rows(select, n, &txn).await?;
    txn.commit().await?;
    Ok(rows)
}

/// A PostgreSQL `application_name` for `service`'s replica `replica`, cut to
/// the 63 bytes the server keeps (so it matches what the server reports).
pub fn application_name(service: &str, replica: &str) -> String {
    let mut name = format!("{service}/{replica}");
    while name.len() > 63 {
        name.pop();
    }
    name
}

/// Writes raw SQL once for both engines: replaces `?` placeholders with `$1`,
/// `$2`, ... on PostgreSQL (SQLite takes `?` as is).
pub fn placeholders(backend: DbBackend, sql: &str) -> String {
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

/// Whether an error is a unique-constraint violation (on either engine).
pub fn is_unique_violation(err: &DbErr) -> bool {
    matches!(
        err.sql_err(),
        Some(sea_orm::SqlErr::UniqueConstraintViolation(_))
    )
}

/// SQLSTATEs after which the same work, tried again, may well succeed:
/// serialization_failure, deadlock_detected, admin_shutdown, query_canceled
/// (`statement_timeout`, or a cancel at shutdown), lock_not_available
/// (`lock_timeout`), and connection exceptions.
const TRANSIENT_SQLSTATES: &[&str] = &[
    "40001", "40P01", "57P01", "57014", "55P03", "08000", "08001", "08003", "08006",
];

/// Whether an error says the database could not be reached or the transaction
/// should simply be tried again (connection lost, pool exhausted, serialization
/// failure, deadlock). Callers answer UNAVAILABLE so clients retry.
pub fn is_transient(err: &DbErr) -> bool {
    // PostgreSQL's SQLSTATE, when the error carries one.
    if let DbErr::Exec(sea_orm::RuntimeErr::SqlxError(e))
    | DbErr::Query(sea_orm::RuntimeErr::SqlxError(e)) = err
        && let sea_orm::sqlx::Error::Database(db) = e.as_ref()
        && let Some(code) = db.code()
        && TRANSIENT_SQLSTATES.iter().any(|c| code.as_ref() == *c)
    {
        return true;
    }
    match err {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => true,
        _ => {
            let text = err.to_string();
            // PostgreSQL: 40001 serialization_failure, 40P01 deadlock_detected,
            // 57P01 admin_shutdown, 57014 query_canceled (statement_timeout),
            // 55P03 lock_not_available (lock_timeout), 08xxx connection
            // exceptions. SQLite: SQLITE_BUSY after busy_timeout.
            [
                "40001",
                "40P01",
                "57P01",
                "57014",
                "55P03",
                "08006",
                "08001",
                "08003",
                "database is locked",
                "connection closed",
                "Connection refused",
                "PoolTimedOut",
                "pool timed out",
            ]
            .iter()
            .any(|needle| text.contains(needle))
        }
    }
}

/// A pool's idle connections for the gauge: sqlx's count, at most `size`
/// (the count can wrap to near `usize::MAX` for a moment).
fn idle_of(size: u32, idle: usize) -> u32 {
    u32::try_from(idle).map_or(size, |idle| idle.min(size))
}

#[cfg(test)]
mod placeholder_tests {
    use super::*;

    #[test]
    fn the_idle_gauge_never_exceeds_the_pool() {
        for (size, idle, gauge) in [
            (4, 0, 0),
            (4, 3, 3),
            (4, 4, 4),
            (4, 5, 4),
            (4, usize::MAX, 4),
        ] {
            assert_eq!(idle_of(size, idle), gauge, "size {size}, idle {idle}");
        }
    }

    #[test]
    fn only_idle_postgres_connections_are_pinged_before_use() {
        for (kind, url, every_acquire, after_idle) in [
            (DatabaseKind::Sqlite, "sqlite::memory:", false, None),
            (
                DatabaseKind::Postgres,
                "postgres://localhost/db",
                false,
                Some(POSTGRES_PING_AFTER_IDLE),
            ),
        ] {
            let mut options = connect_options(url);
            check_before_acquire(&mut options, kind);
            assert_eq!(options.get_test_before_acquire(), every_acquire, "{kind:?}");
            assert_eq!(
                options.get_test_before_acquire_if_idle_for(),
                after_idle,
                "{kind:?}"
            );
        }
    }

    #[test]
    fn postgres_placeholders_are_numbered() {
        assert_eq!(
            placeholders(DbBackend::Postgres, "a = ? AND b < ?"),
            "a = $1 AND b < $2"
        );
        assert_eq!(placeholders(DbBackend::Sqlite, "a = ?"), "a = ?");
    }
}
