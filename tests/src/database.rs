//! Fresh databases for tests: a SQLite file in a temporary directory, or, when
//! `TEST_DATABASE_URL` is set, a new PostgreSQL database dropped afterwards.

use std::sync::atomic::{AtomicU32, Ordering};

use sea_orm::{ConnectionTrait as _, Database as SeaDatabase};
use service_runtime::config::DatabaseUrl;

/// The environment variable that switches the tests to PostgreSQL.
pub const TEST_DATABASE_URL: &str = "TEST_DATABASE_URL";

/// A database that exists for one test.
#[derive(Debug)]
pub struct TestDatabase {
    url: DatabaseUrl,
    cleanup: Cleanup,
}

#[derive(Debug)]
enum Cleanup {
    /// The directory is removed when dropped.
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres {
        admin_url: String,
        name: String,
    },
}

impl TestDatabase {
    /// A fresh database of the kind the environment asks for.
    pub async fn fresh() -> Self {
        match std::env::var(TEST_DATABASE_URL) {
            Ok(admin_url) if !admin_url.is_empty() => Self::fresh_postgres(&admin_url).await,
            _ => Self::fresh_sqlite(),
        }
    }

    /// A fresh PostgreSQL database; panics when `TEST_DATABASE_URL` is not set,
    /// for tests that only make sense on PostgreSQL.
    pub async fn fresh_postgres_required() -> Self {
        let admin_url = std::env::var(TEST_DATABASE_URL).unwrap_or_default();
        assert!(
            !admin_url.is_empty(),
            "this test needs PostgreSQL: set {TEST_DATABASE_URL}=postgres://postgres@127.0.0.1:5432/test"
        );
        Self::fresh_postgres(&admin_url).await
    }

    /// Whether the tests run on PostgreSQL.
    pub fn on_postgres() -> bool {
        std::env::var(TEST_DATABASE_URL).is_ok_and(|u| !u.is_empty())
    }

    fn fresh_sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url = DatabaseUrl::sqlite_file(&dir.path().join("test.db"));
        Self {
            url,
            cleanup: Cleanup::Sqlite(dir),
        }
    }

    async fn fresh_postgres(admin_url: &str) -> Self {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "t_{}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .subsec_nanos()
        );
        let admin = SeaDatabase::connect(service_runtime::database::connect_options(admin_url))
            .await
            .unwrap_or_else(|e| panic!("cannot reach PostgreSQL at {admin_url}: {e}"));
        admin
            .execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
        admin.close().await.unwrap();
        let base = admin_url
            .rsplit_once('/')
            .map_or(admin_url, |(base, _)| base);
        let url: DatabaseUrl = format!("{base}/{name}").parse().unwrap();
        Self {
            url,
            cleanup: Cleanup::Postgres {
                admin_url: admin_url.to_owned(),
                name,
            },
        }
    }

    /// The database's URL.
    pub fn url(&self) -> DatabaseUrl {
        self.url.clone()
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Cleanup::Postgres { admin_url, name } = &self.cleanup {
            let (admin_url, name) = (admin_url.clone(), name.clone());
            // Drop runs inside the test's runtime; a helper thread with its own
            // runtime does the async cleanup without blocking that runtime's
            // worker on itself.
            let _ = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .ok()?;
                runtime.block_on(async {
                    let admin = SeaDatabase::connect(service_runtime::database::connect_options(
                        &admin_url,
                    ))
                    .await
                    .ok()?;
                    admin
                        .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .await
                        .ok()?;
                    admin.close().await.ok()
                })
            })
            .join();
        }
    }
}
