//! Connecting to the service's database and migrating it.
//!
//! SQLite is the embedded default: a file, created on first use, in WAL mode so
//! readers never wait for the writer. Write transactions on SQLite begin
//! `IMMEDIATE`, so two writers queue on the database lock instead of one failing
//! when it upgrades from reading to writing. PostgreSQL is the production store;
//! several replicas may share it, so migrations run under an advisory lock.

use std::time::Duration;

use sea_orm::{
    ConnectOptions, ConnectionTrait as _, DatabaseConnection, DatabaseTransaction, DbBackend,
    DbErr, SqliteTransactionMode, Statement, TransactionOptions, TransactionTrait as _,
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
}

impl Default for PoolSettings {
    fn default() -> Self {
        Self {
            max_connections: 16,
            acquire_timeout: Duration::from_secs(10),
        }
    }
}

/// A connection pool and the engine behind it.
#[derive(Debug, Clone)]
pub struct Database {
    conn: DatabaseConnection,
    kind: DatabaseKind,
    url: DatabaseUrl,
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
        let mut options = ConnectOptions::new(url.as_str().to_owned());
        options
            .max_connections(pool.max_connections)
            .min_connections(1)
            .acquire_timeout(pool.acquire_timeout)
            .connect_timeout(pool.acquire_timeout)
            .sqlx_logging(false)
            .map_sqlx_sqlite_opts(|o| {
                o.journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
                    .synchronous(sea_orm::sqlx::sqlite::SqliteSynchronous::Normal)
                    .foreign_keys(true)
                    .busy_timeout(Duration::from_secs(30))
                    .create_if_missing(true)
            });
        let conn = sea_orm::Database::connect(options).await?;
        Ok(Self {
            conn,
            kind: url.kind(),
            url: url.clone(),
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

    /// Begins a transaction that will write (`BEGIN IMMEDIATE` on SQLite).
    ///
    /// # Errors
    /// When no connection is available or the database refuses.
    pub async fn begin_write(&self) -> Result<DatabaseTransaction, DbErr> {
        let options = TransactionOptions {
            sqlite_transaction_mode: (self.kind == DatabaseKind::Sqlite)
                .then_some(SqliteTransactionMode::Immediate),
            ..TransactionOptions::default()
        };
        self.conn.begin_with_options(options).await
    }

    /// Applies pending migrations. On PostgreSQL they run in one transaction under
    /// an advisory lock, so replicas starting together migrate once.
    ///
    /// # Errors
    /// When a migration fails; nothing of it is kept.
    pub async fn migrate<M: MigratorTrait>(&self, lock_key: i64) -> Result<(), DbErr> {
        let txn = self.begin_write().await?;
        if self.kind == DatabaseKind::Postgres {
            txn.execute_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT pg_advisory_xact_lock($1)",
                [lock_key.into()],
            ))
            .await?;
        }
        M::up(&txn, None).await?;
        txn.commit().await
    }

    /// The pool's current size and how many of its connections are idle.
    pub fn pool_usage(&self) -> (u32, u32) {
        match self.kind {
            DatabaseKind::Sqlite => {
                let pool = self.conn.get_sqlite_connection_pool();
                (
                    pool.size(),
                    u32::try_from(pool.num_idle()).unwrap_or(u32::MAX),
                )
            }
            DatabaseKind::Postgres => {
                let pool = self.conn.get_postgres_connection_pool();
                (
                    pool.size(),
                    u32::try_from(pool.num_idle()).unwrap_or(u32::MAX),
                )
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

    /// Closes the pool.
    ///
    /// # Errors
    /// When closing fails.
    pub async fn close(self) -> Result<(), DbErr> {
        self.conn.close().await
    }
}

/// Whether an error is a unique-constraint violation (on either engine).
pub fn is_unique_violation(err: &DbErr) -> bool {
    matches!(
        err.sql_err(),
        Some(sea_orm::SqlErr::UniqueConstraintViolation(_))
    )
}

/// Whether an error says the database could not be reached or the transaction
/// should simply be tried again (connection lost, pool exhausted, serialization
/// failure, deadlock). Callers answer UNAVAILABLE so clients retry.
pub fn is_transient(err: &DbErr) -> bool {
    match err {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => true,
        _ => {
            let text = err.to_string();
            // PostgreSQL: 40001 serialization_failure, 40P01 deadlock_detected,
            // 57P01 admin_shutdown, 08xxx connection exceptions.
            // SQLite: SQLITE_BUSY after busy_timeout.
            [
                "40001",
                "40P01",
                "57P01",
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
