//! `plans`: how PostgreSQL plans the queue statements the tracker runs on
//! every claim and every recorded outcome, with statistics gathered while the
//! inbox was empty (the normal steady state) and generic plans forced, at 0,
//! 10 k and 1 M pending deliveries: the evidence that their cost follows the
//! work they do, not the backlog (issue 18).
//!
//! The statements are the tracker's own ([`tracker_service::queue_heads::statements`]),
//! prepared on one connection and run with `EXPLAIN (ANALYZE, BUFFERS)`
//! inside a transaction that is rolled back. Autovacuum is off for the two
//! tables, so nothing refreshes the statistics taken at empty.

use std::fmt::Write as _;

use anyhow::Context as _;
use sea_orm::DbBackend;
use sea_orm::sqlx::{AssertSqlSafe, Connection as _, Executor as _, PgConnection, Row as _};
use service_runtime::database::{Database, PoolSettings, placeholders};
use tracker_service::queue_heads::{Queue, statements};
use tracker_service::storage::migrations::{MIGRATION_LOCK_KEY, Migrator};

use crate::bed::create_database;

/// The configurations measured: (label, `plan_cache_mode`, whether the
/// statements run pinned to index plans as the tracker runs them).
pub const MODES: &[(&str, &str, bool)] = &[
    ("generic plan, unpinned", "force_generic_plan", false),
    (
        "generic plan, pinned (as the tracker runs)",
        "force_generic_plan",
        true,
    ),
    ("custom plan, pinned", "force_custom_plan", true),
];

/// Heads a claim takes at once, and issues an outcome batch touches.
const BATCH: usize = 32;

/// One statement's run at one size.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Measured {
    /// Pending deliveries.
    pub pending: u64,
    /// Issues they are spread over.
    pub issues: u64,
    /// The configuration (see [`MODES`]).
    pub mode: &'static str,
    /// The statement.
    pub statement: &'static str,
    /// PostgreSQL's execution time, in ms.
    pub execution_ms: f64,
    /// Shared buffers hit and read.
    pub buffers: u64,
    /// The plan, as EXPLAIN printed it.
    pub plan: String,
}

/// Runs the plans at `sizes` (pending, issues) on a fresh database of the
/// PostgreSQL server `admin`.
///
/// # Errors
/// Database errors.
pub async fn run(admin: &str, sizes: &[(u64, u64)]) -> anyhow::Result<Vec<Measured>> {
    let url = create_database(admin, "bench_plans").await?;
    let db = Database::connect(
        &url.parse().context("the plans database URL")?,
        &PoolSettings::default(),
    )
    .await?;
    db.migrate::<Migrator>(MIGRATION_LOCK_KEY).await?;
    db.close().await?;
    let mut conn = PgConnection::connect(&url).await?;
    for table in ["webhook_deliveries", "queue_heads"] {
        conn.execute(AssertSqlSafe(format!(
            "ALTER TABLE {table} SET (autovacuum_enabled = false)"
        )))
        .await?;
    }
    // Statistics of an empty inbox, the state PostgreSQL usually sees.
    conn.execute("ANALYZE").await?;
    let prepared: Vec<(&'static str, String)> = vec![
        ("claim", statements::claim(DbBackend::Postgres, 32)),
        ("lock", statements::lock(BATCH)),
        (
            "advance",
            statements::advance(DbBackend::Postgres, Queue::Inbox, BATCH),
        ),
        ("remove_emptied", statements::remove_emptied(BATCH)),
        (
            "renew",
            statements::set_due(DbBackend::Postgres, false, BATCH),
        ),
    ];
    // Each configuration's statements are prepared once, on the empty
    // inbox, and kept: a generic plan is made at its first execution and
    // reused as the backlog grows, as on a long-lived connection.
    for (m, _) in MODES.iter().enumerate() {
        for (name, sql) in &prepared {
            conn.execute(AssertSqlSafe(format!(
                "PREPARE {name}_{m} AS {}",
                placeholders(DbBackend::Postgres, sql)
            )))
            .await
            .with_context(|| format!("preparing {name}"))?;
        }
    }
    let mut measured = Vec::new();
    let mut filled = 0;
    for &(pending, issues) in sizes {
        fill(&mut conn, filled, pending, issues).await?;
        filled = pending;
        let heads: Vec<(i64, String, i64)> = sea_orm::sqlx::query_as(
            "SELECT id, ordering_key, head FROM queue_heads ORDER BY id LIMIT $1",
        )
        .bind(i64::try_from(BATCH)?)
        .fetch_all(&mut conn)
        .await?;
        for (m, &(mode, cache_mode, pinned)) in MODES.iter().enumerate() {
            conn.execute(AssertSqlSafe(format!("SET plan_cache_mode = {cache_mode}")))
                .await?;
            for (name, _) in &prepared {
                let execute = execute(name, &format!("{name}_{m}"), &heads);
                let (plan, execution_ms, buffers) = explain(&mut conn, &execute, pinned).await?;
                measured.push(Measured {
                    pending,
                    issues,
                    mode,
                    statement: name,
                    execution_ms,
                    buffers,
                    plan,
                });
            }
        }
    }
    conn.close().await?;
    Ok(measured)
}

/// The `EXECUTE` of a prepared statement, with values for `heads` (the
/// first heads of the queue; fewer when the inbox is smaller).
fn execute(name: &str, prepared: &str, heads: &[(i64, String, i64)]) -> String {
    let pad = |values: Vec<String>, filler: &str| -> Vec<String> {
        let mut values = values;
        while values.len() < BATCH {
            values.push(filler.to_owned());
        }
        values
    };
    match name {
        "claim" => format!(
            "EXECUTE {prepared}('inbox', now(), 'bench-replica', now() + interval '6 seconds')"
        ),
        "lock" => {
            let rows = pad(
                heads
                    .iter()
                    .map(|(_, key, head)| format!("'inbox', 'bench', '{key}', {head}, now()"))
                    .collect(),
                "'inbox', 'bench', 'issue-new', 1, now()",
            );
            // A filler repeated would hit the same new row twice.
            let rows: Vec<String> = rows
                .into_iter()
                .enumerate()
                .map(|(i, r)| r.replace("issue-new", &format!("issue-new-{i}")))
                .collect();
            format!("EXECUTE {prepared}({})", rows.join(", "))
        }
        "advance" | "remove_emptied" => {
            let ids = pad(heads.iter().map(|(id, _, _)| id.to_string()).collect(), "0");
            let due = if name == "advance" { "now(), " } else { "" };
            format!("EXECUTE {prepared}({due}{})", ids.join(", "))
        }
        "renew" => {
            let ids = pad(heads.iter().map(|(id, _, _)| id.to_string()).collect(), "0");
            format!(
                "EXECUTE {prepared}({}, 'bench-replica', now())",
                ids.join(", ")
            )
        }
        other => unreachable!("no statement {other}"),
    }
}

/// Runs `EXPLAIN (ANALYZE, BUFFERS)` of `execute` in a transaction rolled
/// back; returns the plan, the execution time and the buffers touched.
async fn explain(
    conn: &mut PgConnection,
    execute: &str,
    pinned: bool,
) -> anyhow::Result<(String, f64, u64)> {
    conn.execute("BEGIN").await?;
    if pinned {
        conn.execute("SET LOCAL enable_seqscan = off; SET LOCAL enable_sort = off")
            .await?;
    }
    let rows = sea_orm::sqlx::query(AssertSqlSafe(format!(
        "EXPLAIN (ANALYZE, BUFFERS) {execute}"
    )))
    .fetch_all(&mut *conn)
    .await;
    conn.execute("ROLLBACK").await?;
    let lines: Vec<String> = rows?
        .iter()
        .map(|row| row.try_get::<String, _>(0))
        .collect::<Result<_, _>>()?;
    let execution_ms = lines
        .iter()
        .find_map(|l| l.trim().strip_prefix("Execution Time: "))
        .and_then(|v| v.trim_end_matches(" ms").parse().ok())
        .unwrap_or(f64::NAN);
    // The first Buffers line is the top node's: everything under it.
    let buffers = lines
        .iter()
        .find_map(|l| l.trim().strip_prefix("Buffers: "))
        .map_or(0, |b| {
            b.split_whitespace()
                .filter_map(|part| {
                    part.split_once('=')
                        .and_then(|(_, n)| n.parse::<u64>().ok())
                })
                .sum()
        });
    Ok((lines.join("\n"), execution_ms, buffers))
}

/// Adds pending deliveries `from + 1 ..= to`, spread round-robin over
/// `issues` issues, and rebuilds the heads (as the tracker keeps them: each
/// issue's oldest pending delivery).
async fn fill(conn: &mut PgConnection, from: u64, to: u64, issues: u64) -> anyhow::Result<()> {
    if to > from {
        conn.execute(AssertSqlSafe(format!(
            "INSERT INTO webhook_deliveries (integration_id, delivery_key, event_type, issue_key, \
                   jira_issue_id, ordering_key, received_at, headers, body, traceparent, state, \
                   attempts, last_error, actions) \
                 SELECT 'bench', 'derived:' || g, 'jira:issue_updated', 'APP-' || (g % {issues}), \
                   '', 'issue-' || (g % {issues}), now(), '[]', '{{}}', '', 'pending', 0, '', '[]' \
                 FROM generate_series({}, {to}) g",
            from + 1
        )))
        .await?;
    }
    conn.execute("DELETE FROM queue_heads").await?;
    conn.execute(
        "INSERT INTO queue_heads (queue, integration_id, ordering_key, head, due_at) \
         SELECT 'inbox', integration_id, ordering_key, MIN(id), now() \
         FROM webhook_deliveries WHERE state = 'pending' GROUP BY integration_id, ordering_key",
    )
    .await?;
    Ok(())
}

/// The measurements as a Markdown section: a table per mode, and the plans at
/// the largest size.
pub fn markdown(measured: &[Measured]) -> String {
    let mut out = String::new();
    for &(mode, _, _) in MODES {
        let _ = writeln!(out, "\n{mode}:\n");
        let _ = writeln!(
            out,
            "| statement | pending (issues) | execution | buffers |"
        );
        let _ = writeln!(out, "|---|---|---|---|");
        for m in measured.iter().filter(|m| m.mode == mode) {
            let _ = writeln!(
                out,
                "| {} | {} ({}) | {:.3} ms | {} |",
                m.statement, m.pending, m.issues, m.execution_ms, m.buffers
            );
        }
    }
    if let Some(largest) = measured.iter().map(|m| m.pending).max() {
        for &(mode, _, _) in MODES {
            let _ = writeln!(out, "\nPlans at {largest} pending, {mode}:\n");
            for m in measured
                .iter()
                .filter(|m| m.pending == largest && m.mode == mode)
            {
                let _ = writeln!(out, "`{}`:\n\n```\n{}\n```\n", m.statement, m.plan);
            }
        }
    }
    out
}
