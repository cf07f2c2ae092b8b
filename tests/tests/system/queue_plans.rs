//! The tracker's queue statements cost the same whatever the backlog
//! (DESIGN.md §3 "Guarantees": claims bounded by their batch): on SQLite each is planned on the
//! index made for it, never a scan or a sort of the pending items.
//! PostgreSQL's plans are measured at 0 to 1 M pending deliveries by
//! `cargo xtask bench --db postgres --only plans`.

use sea_orm::{ConnectionTrait as _, DbBackend, Statement, Value};
use service_runtime::database::{Database, PoolSettings, placeholders};
use system_tests::TestDatabase;
use tracker_service::queue_heads::{Queue, statements};
use tracker_service::storage::migrations::{MIGRATION_LOCK_KEY, Migrator};

/// SQLite's plan for `sql` with `values`, one step per line.
async fn plan(db: &Database, sql: &str, values: Vec<Value>) -> String {
    let explained = Statement::from_sql_and_values(
        DbBackend::Sqlite,
        placeholders(DbBackend::Sqlite, &format!("EXPLAIN QUERY PLAN {sql}")),
        values,
    );
    db.conn()
        .query_all_raw(explained)
        .await
        .unwrap()
        .iter()
        .map(|row| row.try_get::<String>("", "detail").unwrap())
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn on_sqlite_advancing_a_head_reads_one_entry_of_the_pending_index() {
    if TestDatabase::on_postgres() {
        // The statement differs there; its plans are the bench's `plans`.
        return;
    }
    let file = TestDatabase::fresh().await;
    let db = Database::connect(&file.url(), &PoolSettings::default())
        .await
        .unwrap();
    db.migrate::<Migrator>(MIGRATION_LOCK_KEY).await.unwrap();
    for queue in [Queue::Inbox, Queue::Outbound] {
        let sql = statements::advance(DbBackend::Sqlite, queue, 2);
        let plan = plan(&db, &sql, vec!["2026-01-01".into(), 1.into(), 2.into()]).await;
        // Before the fix it read `ix_webhook_deliveries_completed (state=?)`,
        // every pending row, and sorted them: the dispatcher slowed from
        // 1,795 to 80 applied/s with 100 k deliveries parked in the inbox.
        assert!(
            plan.contains("(integration_id=? AND ordering_key=?)")
                && !plan.contains("TEMP B-TREE")
                && !plan.contains("SCAN"),
            "{queue:?} advance:\n{plan}"
        );
    }
}
