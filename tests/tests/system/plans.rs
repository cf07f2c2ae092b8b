//! The tracker's hot-path statements cost the same whatever the backlog and
//! however many deliveries retention keeps (DESIGN.md §3 "Guarantees"): each
//! is planned on the index made for it, with tight bounds, never a scan or a
//! sort of the pending or stored deliveries. PostgreSQL's plans are also
//! measured at 0 to 1 M pending deliveries by
//! `cargo xtask bench --db postgres --only plans`.

use sea_orm::{ConnectionTrait as _, DbBackend, Statement, TransactionTrait as _, Value};
use service_runtime::database::{Database, PoolSettings, placeholders};
use system_tests::TestDatabase;
use tracker_service::queue_heads::{Queue, statements};
use tracker_service::storage::migrations::{MIGRATION_LOCK_KEY, Migrator};
use tracker_service::webhooks::inbox::{delivered_update, duplicate_lookups};

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

/// A migrated SQLite tracker database, or None on the PostgreSQL suite
/// (statements differ there; their plans are the bench's `plans`).
async fn tracker_sqlite() -> Option<(TestDatabase, Database)> {
    if TestDatabase::on_postgres() {
        return None;
    }
    let file = TestDatabase::fresh().await;
    let db = Database::connect(&file.url(), &PoolSettings::default())
        .await
        .unwrap();
    db.migrate::<Migrator>(MIGRATION_LOCK_KEY).await.unwrap();
    Some((file, db))
}

#[tokio::test]
async fn on_sqlite_advancing_a_head_reads_one_entry_of_the_pending_index() {
    let Some((_file, db)) = tracker_sqlite().await else {
        return;
    };
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

#[tokio::test]
async fn on_sqlite_marking_deliveries_delivered_reads_them_by_id() {
    let Some((_file, db)) = tracker_sqlite().await else {
        return;
    };
    let n = 3;
    let mut values: Vec<Value> = vec!["delivered".into(), "2026-01-01".into()];
    for _ in 0..2 {
        for id in 1..=n {
            values.push(i64::from(id).into());
            values.push("x".into());
        }
    }
    values.extend((1..=n).map(|id| Value::from(i64::from(id))));
    let plan = plan(
        &db,
        &delivered_update(DbBackend::Sqlite, n as usize),
        values,
    )
    .await;
    // With `AND state = 'pending'` SQLite read every pending row through
    // `ix_webhook_deliveries_completed (state=?)`: 814 applied/s with nothing
    // parked, 257 with 1 M.
    assert!(
        plan.contains("INTEGER PRIMARY KEY (rowid=?)")
            && !plan.contains("ix_webhook_deliveries_completed"),
        "{plan}"
    );
}

#[tokio::test]
async fn on_sqlite_forward_sync_settings_are_read_by_organization_and_integration() {
    use sea_orm::QueryTrait as _;
    if TestDatabase::on_postgres() {
        return;
    }
    let file = TestDatabase::fresh().await;
    let db = Database::connect(&file.url(), &PoolSettings::default())
        .await
        .unwrap();
    db.migrate::<assignment_service::storage::migrations::Migrator>(
        assignment_service::storage::migrations::MIGRATION_LOCK_KEY,
    )
    .await
    .unwrap();
    let query = assignment_service::outbound::installations_of(
        [(1, "acme-jira"), (1, "other-jira"), (2, "acme-jira")].into_iter(),
    )
    .build(DbBackend::Sqlite);
    let plan = plan(
        &db,
        &query.sql,
        query.values.map(|v| v.0).unwrap_or_default(),
    )
    .await;
    // By organization alone it read every installation of the organization
    // for each group commit: ingest over 10 k integrations fell to 0.42 of
    // its rate over one.
    assert!(
        plan.contains("(organization_id=? AND integration_id=?)"),
        "{}:\n{plan}",
        query.sql
    );
}

#[tokio::test]
async fn on_sqlite_finding_duplicates_reads_the_unique_indexes_by_key_and_digest() {
    let Some((_file, db)) = tracker_sqlite().await else {
        return;
    };
    let batch = [
        ("acme", "atlassian:1", "d1"),
        ("acme", "atlassian:2", "d2"),
        ("other", "derived:x", "d3"),
    ];
    let lookups = duplicate_lookups(DbBackend::Sqlite, &batch);
    for (lookup, index) in lookups.into_iter().zip([
        "ix_webhook_deliveries_dedup (integration_id=? AND delivery_key=?)",
        "ix_webhook_deliveries_body_digest (integration_id=? AND body_digest=?)",
    ]) {
        let values = lookup.values.map(|v| v.0).unwrap_or_default();
        let plan = plan(&db, &lookup.sql, values).await;
        let searches: Vec<&str> = plan.lines().filter(|l| l.contains("SEARCH")).collect();
        // One statement with `key IN … OR digest IN …` was served by
        // `(integration_id=?)` of the digest index: every delivery of the
        // integration read for each batch. Two statements per integration
        // made a batch over 100 integrations run 200 lookups. Now one
        // statement per column, one index search per integration.
        assert_eq!(searches.len(), 2, "{}:\n{plan}", lookup.sql);
        assert!(
            searches.iter().all(|s| s.contains(index)),
            "{}:\n{plan}",
            lookup.sql
        );
    }
}

#[tokio::test]
async fn on_postgres_advancing_a_head_bounds_the_index_scan_to_its_issue() {
    if !TestDatabase::on_postgres() {
        return;
    }
    let file = TestDatabase::fresh().await;
    let db = Database::connect(&file.url(), &PoolSettings::default())
        .await
        .unwrap();
    db.migrate::<Migrator>(MIGRATION_LOCK_KEY).await.unwrap();
    for queue in [Queue::Inbox, Queue::Outbound] {
        let sql = placeholders(
            DbBackend::Postgres,
            &statements::advance(DbBackend::Postgres, queue, 2),
        );
        // The generic plan, pinned as the tracker runs it.
        let txn = db.conn().begin().await.unwrap();
        txn.execute_unprepared(
            "SET LOCAL enable_seqscan = off; SET LOCAL enable_sort = off; \
             SET LOCAL plan_cache_mode = force_generic_plan",
        )
        .await
        .unwrap();
        txn.execute_unprepared(&format!(
            "PREPARE advance (timestamptz, bigint, bigint) AS {sql}"
        ))
        .await
        .unwrap();
        let plan = txn
            .query_all_raw(Statement::from_string(
                DbBackend::Postgres,
                "EXPLAIN EXECUTE advance (now(), 1, 2)",
            ))
            .await
            .unwrap()
            .iter()
            .map(|row| row.try_get::<String>("", "QUERY PLAN").unwrap())
            .collect::<Vec<_>>()
            .join("\n");
        txn.rollback().await.unwrap();
        // Before the fix the key was a row comparison, `ROW(integration_id,
        // ordering_key) <= ROW(…)`, which ends the scan only at the end of the
        // integration: advancing an issue with nothing left read every later
        // pending entry (8,646 pages, 140 ms, with 1 M pending), and the
        // dispatcher fell from 1,312 to 18 applied/s with 1 M parked.
        let cond = plan
            .lines()
            .find(|l| l.contains("Index Cond") && l.contains("ordering_key"))
            .unwrap_or_default();
        assert!(
            plan.contains("_pending_queue")
                && cond.contains("(integration_id = ")
                && cond.contains("(ordering_key <= ")
                && !cond.contains("ROW(")
                && !plan.contains("Sort")
                && !plan.contains("Seq Scan"),
            "{queue:?} advance:\n{plan}"
        );
    }
}

/// `seq_scan`, `idx_scan` and `n_tup_ins` of the `notifications` table, as
/// the server's statistics show them (a backend reports its counts once
/// idle, within a second or so).
async fn notification_scans(db: &Database) -> (i64, i64, i64) {
    let row = db
        .conn()
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT seq_scan, COALESCE(idx_scan, 0) AS idx_scan, n_tup_ins \
             FROM pg_stat_user_tables WHERE relname = 'notifications'",
        ))
        .await
        .unwrap()
        .expect("the notifications table has statistics");
    (
        row.try_get("", "seq_scan").unwrap(),
        row.try_get("", "idx_scan").unwrap(),
        row.try_get("", "n_tup_ins").unwrap(),
    )
}

#[tokio::test]
async fn on_postgres_the_stream_reads_new_notifications_by_index_however_the_log_grew() {
    use assignment_service::domain::Sequence;
    use assignment_service::notification_log::read_after;
    use assignment_service::storage::migrations::{MIGRATION_LOCK_KEY, Migrator};
    if !TestDatabase::on_postgres() {
        return;
    }
    let file = TestDatabase::fresh().await;
    // One connection, so every read reuses its prepared statement and the plan
    // PostgreSQL cached for it, as the stream's long-lived connections do.
    let one = PoolSettings {
        max_connections: 1,
        ..PoolSettings::default()
    };
    let db = Database::connect(&file.url(), &one).await.unwrap();
    db.migrate::<Migrator>(MIGRATION_LOCK_KEY).await.unwrap();
    let observer = Database::connect(&file.url(), &PoolSettings::default())
        .await
        .unwrap();
    db.conn()
        .execute_unprepared("ANALYZE notifications")
        .await
        .unwrap();
    // Read while the log is empty, past the five executions after which
    // PostgreSQL settles on a generic plan.
    for _ in 0..8 {
        assert!(
            read_after(db.conn(), Sequence::ZERO, 256)
                .await
                .unwrap()
                .is_empty()
        );
    }
    db.conn()
        .execute_unprepared(
            "INSERT INTO notifications SELECT g, 1, 1, 1, 'PRJ-1', 'acme-jira', 'assigned', \
             'message', 'key', false, 1, '', now() FROM generate_series(1, 5000) AS g",
        )
        .await
        .unwrap();
    // The counts so far, once the connection has reported everything before
    // the insert (a backend reports all its counts at once: the migrations'
    // index builds, which count as sequential scans, and the eight reads).
    let (seq_before, idx_before) = system_tests::wait::until(
        "the insert to reach the statistics",
        system_tests::wait::DEFAULT_DEADLINE,
        || async {
            let (seq, idx, inserted) = notification_scans(&observer).await;
            (inserted >= 5000).then_some((seq, idx))
        },
    )
    .await;
    for _ in 0..5 {
        let rows = read_after(db.conn(), Sequence::new(4990), 256)
            .await
            .unwrap();
        assert_eq!(rows.len(), 10);
    }
    // Before the fix the cached plan was a sequential scan and a sort of every
    // notification kept (0.76 ms a read with 20,000 kept in the bench's
    // latency run on PostgreSQL), and the index was never used.
    let (seq_after, _) = system_tests::wait::until(
        "the five reads' index scans to reach the statistics",
        system_tests::wait::DEFAULT_DEADLINE,
        || async {
            let (seq, idx, _) = notification_scans(&observer).await;
            (idx >= idx_before + 5).then_some((seq, idx))
        },
    )
    .await;
    assert_eq!(seq_after, seq_before, "a read scanned the whole log");
}

#[tokio::test]
async fn on_postgres_a_pinned_transaction_compiles_nothing_just_in_time() {
    use service_runtime::database::pin_index_plans;
    if !TestDatabase::on_postgres() {
        return;
    }
    let file = TestDatabase::fresh().await;
    let db = Database::connect(&file.url(), &PoolSettings::default())
        .await
        .unwrap();
    let txn = db.conn().begin().await.unwrap();
    pin_index_plans(&txn).await.unwrap();
    // A sort nothing can avoid: pinned, it costs 10¹⁰, over every JIT
    // threshold. Before the fix each execution was compiled (68 to 257 ms for
    // the group commit's participants read in the bench).
    let explained: serde_json::Value = txn
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "EXPLAIN (ANALYZE, FORMAT JSON) \
             SELECT g FROM generate_series(1, 10) AS g ORDER BY g DESC",
        ))
        .await
        .unwrap()
        .expect("a plan")
        .try_get("", "QUERY PLAN")
        .unwrap();
    let plan = &explained[0];
    assert!(
        plan["Plan"]["Total Cost"].as_f64().unwrap() > 1e9,
        "the sort is disabled: {plan}"
    );
    assert!(plan.get("JIT").is_none(), "compiled just in time: {plan}");
    txn.rollback().await.unwrap();
}
