//! Queue heads: how both of the tracker's queues (the webhook inbox and the
//! outbound syncs) hand out work in per-issue order, at a cost that does not
//! grow with the backlog.
//!
//! Items of one issue (`integration_id`, `ordering_key`) apply one at a time,
//! in *position* order (a delivery's id; an outbound sync's log sequence). The
//! table `queue_heads` has one row per issue with pending items, naming the
//! issue's next item (`head`), when it is due (`due_at`) and who holds it
//! (`lease_owner`). Every statement on it is bounded by construction:
//!
//! - **Claiming** takes the heads due now in `due_at` order, by the index on
//!   (queue, due_at), `LIMIT n`, `FOR UPDATE SKIP LOCKED` (PostgreSQL): it
//!   reads only the rows it returns (and rows other replicas are claiming,
//!   which it skips instead of waiting), whatever the number of pending items
//!   or their distribution over issues. A claim sets `due_at` to the end of its
//!   lease, so a held head is simply not due; a replica that dies stops
//!   renewing, and its heads come due again.
//! - **Settling** (in the transaction that stores new items or records
//!   outcomes) first locks the heads of every issue it touches in one
//!   `INSERT … ON CONFLICT DO UPDATE`, rows in key order: a new issue gets its
//!   head, an existing one is locked. Only then does it look for an issue's
//!   next item (a correlated `MIN(position)` over the queue's partial index of
//!   pending items: one index probe per issue), so a concurrent store of a new
//!   item for that issue has either committed (and is seen) or waits for the
//!   lock (and then finds the head, or inserts it). Outcomes count only when
//!   the recorder still holds the head; a replica whose lease was taken over
//!   leaves the item to the new holder.
//!
//! Deadlocks cannot form: a transaction locks head rows in one statement, in
//! key order, before it touches the items they guard; claims and renewals skip
//! locked rows instead of waiting.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbBackend, FromQueryResult, Statement, Value};
use service_runtime::database::{Database, pin_index_plans, placeholders};
use service_runtime::time::now;

use crate::error::TrackerError;

/// The tracker's queues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Queue {
    /// Webhook deliveries (`webhook_deliveries`), by id.
    Inbox,
    /// Outbound syncs (`outbound_syncs`), by log sequence.
    Outbound,
}

impl Queue {
    /// The stored name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Inbox => "inbox",
            Self::Outbound => "outbound",
        }
    }

    /// The items' table.
    pub fn table(self) -> &'static str {
        match self {
            Self::Inbox => "webhook_deliveries",
            Self::Outbound => "outbound_syncs",
        }
    }

    /// The items' position column (unique in the table).
    pub fn position(self) -> &'static str {
        match self {
            Self::Inbox => "id",
            Self::Outbound => "source_sequence",
        }
    }
}

/// The issue an item belongs to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IssueQueue {
    /// The integration.
    pub integration_id: String,
    /// The issue's ordering key.
    pub ordering_key: String,
}

/// A claimed head: the item to apply, held until its lease ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimed {
    /// The head's row, which holds the lease.
    pub head: HeadId,
    /// The issue.
    pub issue: IssueQueue,
    /// The item's position.
    pub position: i64,
}

/// The row id of an issue's queue head: what a lease is renewed and
/// released by (one primary-key lookup each, whatever the backlog).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HeadId(pub i64);

/// An item claimed through its issue's queue head, which holds the lease
/// while the item is applied.
#[derive(Debug, Clone)]
pub struct Leased<T> {
    /// The head holding the lease.
    pub head: HeadId,
    /// The claimed item.
    pub item: T,
}

/// A row of `queue_heads` as statements return it.
#[derive(Debug, FromQueryResult)]
struct HeadRow {
    id: i64,
    integration_id: String,
    ordering_key: String,
    head: Option<i64>,
    lease_owner: Option<String>,
}

/// Rows per multi-row statement.
const ROWS_PER_STATEMENT: usize = 200;

fn sql(backend: DbBackend, text: &str, values: Vec<Value>) -> Statement {
    Statement::from_sql_and_values(backend, placeholders(backend, text), values)
}

/// Claims up to `limit` heads of `queue` that are due, for `owner`, until
/// `lease` from now; oldest due first.
///
/// # Errors
/// Database errors.
pub async fn claim(
    db: &Database,
    queue: Queue,
    owner: &str,
    lease: Duration,
    limit: u64,
) -> Result<Vec<Claimed>, TrackerError> {
    let backend = db.backend();
    let time = now();
    let until = time + chrono::Duration::from_std(lease).unwrap_or_default();
    let statement = sql(
        backend,
        &statements::claim(backend, limit.min(i64::MAX as u64)),
        vec![queue.name().into(), time.into(), owner.into(), until.into()],
    );
    let txn = db.begin_write().await?;
    pin_index_plans(&*txn).await?;
    let rows = txn.query_all_raw(statement).await?;
    txn.commit().await?;
    let mut claimed = Vec::with_capacity(rows.len());
    for row in rows {
        let head = HeadRow::from_query_result(&row, "")?;
        if let Some(position) = head.head {
            claimed.push(Claimed {
                head: HeadId(head.id),
                issue: IssueQueue {
                    integration_id: head.integration_id,
                    ordering_key: head.ordering_key,
                },
                position,
            });
        }
    }
    claimed.sort_by_key(|c| c.position);
    Ok(claimed)
}

/// Extends `owner`'s leases on `heads` to `lease` from now (heads another
/// replica took over are left alone). A head locked by another transaction
/// this instant is skipped (its lease is renewed next time; renewals come
/// every third of a lease).
///
/// # Errors
/// Database errors.
pub async fn renew(
    db: &Database,
    owner: &str,
    heads: &[HeadId],
    lease: Duration,
) -> Result<u64, TrackerError> {
    let until = now() + chrono::Duration::from_std(lease).unwrap_or_default();
    set_due(db, owner, heads, until, false).await
}

/// Gives up `owner`'s leases on `heads` (work abandoned at shutdown): they
/// are due at once, for another replica.
///
/// # Errors
/// Database errors.
pub async fn release(db: &Database, owner: &str, heads: &[HeadId]) -> Result<u64, TrackerError> {
    set_due(db, owner, heads, now(), true).await
}

async fn set_due(
    db: &Database,
    owner: &str,
    heads: &[HeadId],
    due: DateTime<Utc>,
    release: bool,
) -> Result<u64, TrackerError> {
    let backend = db.backend();
    let mut changed = 0;
    for chunk in heads.chunks(ROWS_PER_STATEMENT) {
        let mut values: Vec<Value> = chunk.iter().map(|h| Value::from(h.0)).collect();
        values.push(owner.into());
        values.push(due.into());
        let statement = sql(
            backend,
            &statements::set_due(backend, release, chunk.len()),
            values,
        );
        let txn = db.begin_write().await?;
        pin_index_plans(&*txn).await?;
        changed += txn.execute_raw(statement).await?.rows_affected();
        txn.commit().await?;
    }
    Ok(changed)
}

/// The lowest position any issue's queue head of `queue` names: the oldest
/// pending item.
///
/// # Errors
/// Database errors.
pub async fn lowest_head(db: &Database, queue: Queue) -> Result<Option<i64>, TrackerError> {
    let backend = db.backend();
    let row = db
        .conn()
        .query_one_raw(sql(
            backend,
            "SELECT MIN(head) AS head FROM queue_heads WHERE queue = ?",
            vec![queue.name().into()],
        ))
        .await?;
    Ok(row.and_then(|r| r.try_get::<Option<i64>>("", "head").ok().flatten()))
}

/// Points `owner`'s head of `issue` at another pending item, `position` (the
/// outbound queue applies an issue's newest entry and supersedes the others).
///
/// # Errors
/// Database errors.
pub async fn repoint<C: ConnectionTrait>(
    conn: &C,
    queue: Queue,
    issue: &IssueQueue,
    owner: &str,
    position: i64,
) -> Result<(), TrackerError> {
    let backend = conn.get_database_backend();
    conn.execute_raw(sql(
        backend,
        statements::REPOINT,
        vec![
            position.into(),
            queue.name().into(),
            issue.integration_id.as_str().into(),
            issue.ordering_key.as_str().into(),
            owner.into(),
        ],
    ))
    .await?;
    Ok(())
}

/// What one transaction does to a queue's heads: items it stores, and
/// outcomes it records. Build it, [`Settle::lock`] before writing the items'
/// outcomes, then [`Settle::advance`] after.
#[derive(Debug)]
pub struct Settle {
    queue: Queue,
    /// New items, the lowest position per issue.
    stored: BTreeMap<IssueQueue, i64>,
    /// Items done for good (applied, failed, stopped), by issue.
    finished: BTreeMap<IssueQueue, i64>,
    /// Items to try again at a time, by issue.
    retried: BTreeMap<IssueQueue, (i64, DateTime<Utc>)>,
}

/// The heads a [`Settle`] locked: for each issue, its row and whether the
/// recorder holds the item it reported on.
#[derive(Debug, Default)]
pub struct Locked {
    rows: HashMap<IssueQueue, (i64, bool)>,
}

impl Locked {
    /// Whether the outcome reported for `issue` counts: its recorder still
    /// holds the head, and the head is that item.
    pub fn holds(&self, issue: &IssueQueue) -> bool {
        self.rows.get(issue).is_some_and(|&(_, held)| held)
    }
}

impl Settle {
    /// Nothing yet, for `queue`.
    pub fn new(queue: Queue) -> Self {
        Self {
            queue,
            stored: BTreeMap::new(),
            finished: BTreeMap::new(),
            retried: BTreeMap::new(),
        }
    }

    /// An item stored now at `position`.
    pub fn stored(&mut self, issue: IssueQueue, position: i64) {
        let lowest = self.stored.entry(issue).or_insert(position);
        *lowest = (*lowest).min(position);
    }

    /// The item at `position` is done for good.
    pub fn finished(&mut self, issue: IssueQueue, position: i64) {
        self.finished.insert(issue, position);
    }

    /// The item at `position` is to be tried again at `at`.
    pub fn retried(&mut self, issue: IssueQueue, position: i64, at: DateTime<Utc>) {
        self.retried.insert(issue, (position, at));
    }

    /// Locks the head of every issue touched, in key order, creating the
    /// missing ones (a stored item with no head becomes one, due now), and
    /// says which reported outcomes `owner` holds (`None`: an operator, who
    /// holds none and reports none).
    ///
    /// # Errors
    /// Database errors.
    pub async fn lock<C: ConnectionTrait>(
        &self,
        conn: &C,
        owner: Option<&str>,
    ) -> Result<Locked, TrackerError> {
        // Each issue once, in key order, with the position its row names if
        // it has to be created.
        let mut issues: BTreeMap<&IssueQueue, i64> = BTreeMap::new();
        for (issue, &position) in &self.stored {
            issues.insert(issue, position);
        }
        for (issue, &position) in self
            .finished
            .iter()
            .chain(self.retried.iter().map(|(i, (p, _))| (i, p)))
        {
            issues.entry(issue).or_insert(position);
        }
        let mut locked = Locked::default();
        if issues.is_empty() {
            return Ok(locked);
        }
        pin_index_plans(conn).await?;
        let backend = conn.get_database_backend();
        let time = now();
        let entries: Vec<(&IssueQueue, i64)> = issues.into_iter().collect();
        for chunk in entries.chunks(ROWS_PER_STATEMENT) {
            let mut values = Vec::with_capacity(chunk.len() * 5);
            for (issue, position) in chunk {
                values.extend([
                    Value::from(self.queue.name()),
                    issue.integration_id.as_str().into(),
                    issue.ordering_key.as_str().into(),
                    (*position).into(),
                    time.into(),
                ]);
            }
            let statement = sql(backend, &statements::lock(chunk.len()), values);
            for row in conn.query_all_raw(statement).await? {
                let head = HeadRow::from_query_result(&row, "")?;
                let issue = IssueQueue {
                    integration_id: head.integration_id,
                    ordering_key: head.ordering_key,
                };
                let reported = self
                    .finished
                    .get(&issue)
                    .or_else(|| self.retried.get(&issue).map(|(p, _)| p));
                let held = owner.is_some()
                    && head.lease_owner.as_deref() == owner
                    && reported.is_some()
                    && head.head == reported.copied();
                locked.rows.insert(issue, (head.id, held));
            }
        }
        Ok(locked)
    }

    /// After the held outcomes were written to their items: a finished
    /// issue's head moves to its next pending item (or goes, when none is
    /// left), due now; a retried one stays, due at its retry time; both are
    /// released. Returns whether a head moved on to a next item (work due
    /// now, for whoever claims: the caller rings the worker's waker).
    ///
    /// # Errors
    /// Database errors.
    pub async fn advance<C: ConnectionTrait>(
        &self,
        conn: &C,
        locked: &Locked,
    ) -> Result<bool, TrackerError> {
        let backend = conn.get_database_backend();
        let mut moved_on = false;
        let held_rows = |issues: &mut dyn Iterator<Item = &IssueQueue>| -> Vec<i64> {
            issues
                .filter_map(|issue| locked.rows.get(issue))
                .filter(|(_, held)| *held)
                .map(|(id, _)| *id)
                .collect()
        };
        let finished = held_rows(&mut self.finished.keys());
        for chunk in finished.chunks(ROWS_PER_STATEMENT) {
            let mut values: Vec<Value> = vec![now().into()];
            values.extend(chunk.iter().map(|&id| Value::from(id)));
            let advanced = conn
                .query_all_raw(sql(
                    backend,
                    &statements::advance(backend, self.queue, chunk.len()),
                    values,
                ))
                .await?;
            let mut emptied = Vec::new();
            for row in advanced {
                if row.try_get::<Option<i64>>("", "head")?.is_none() {
                    emptied.push(Value::from(row.try_get::<i64>("", "id")?));
                } else {
                    moved_on = true;
                }
            }
            if !emptied.is_empty() {
                conn.execute_raw(sql(
                    backend,
                    &statements::remove_emptied(emptied.len()),
                    emptied,
                ))
                .await?;
            }
        }
        let retried: Vec<(i64, DateTime<Utc>)> = self
            .retried
            .iter()
            .filter_map(|(issue, (_, at))| match locked.rows.get(issue) {
                Some(&(id, true)) => Some((id, *at)),
                _ => None,
            })
            .collect();
        for chunk in retried.chunks(ROWS_PER_STATEMENT) {
            let mut values = Vec::with_capacity(chunk.len() * 3);
            for (id, at) in chunk {
                values.push(Value::from(*id));
                values.push(Value::from(*at));
            }
            values.extend(chunk.iter().map(|(id, _)| Value::from(*id)));
            conn.execute_raw(sql(backend, &statements::reschedule(chunk.len()), values))
                .await?;
        }
        Ok(moved_on)
    }
}

/// The statements on `queue_heads`, with `?` placeholders (numbered for
/// PostgreSQL by [`placeholders`]); public so `cargo xtask bench --only plans`
/// can show how PostgreSQL plans exactly these.
pub mod statements {
    use sea_orm::DbBackend;

    use super::Queue;

    /// `FOR UPDATE SKIP LOCKED` where the engine has it (PostgreSQL; SQLite
    /// has one writer at a time, so there is nothing to skip).
    fn skip_locked(backend: DbBackend) -> &'static str {
        if backend == DbBackend::Postgres {
            " FOR UPDATE SKIP LOCKED"
        } else {
            ""
        }
    }

    fn marks(n: usize) -> String {
        vec!["?"; n].join(", ")
    }

    /// Claims up to `limit` heads. The heads are chosen once, in a
    /// materialized CTE (a subquery under `IN` may be run again per row, and
    /// take other rows). The limit is written into the statement: SQLite
    /// reads a bound `LIMIT` while planning and then prepares the statement
    /// again every time it is bound. Values: queue, now, owner, lease end.
    pub fn claim(backend: DbBackend, limit: u64) -> String {
        format!(
            "WITH due AS MATERIALIZED (SELECT id FROM queue_heads \
                                       WHERE queue = ? AND due_at <= ? \
                                       ORDER BY due_at LIMIT {limit}{}) \
             UPDATE queue_heads SET lease_owner = ?, due_at = ? \
             WHERE id IN (SELECT id FROM due) \
             RETURNING id, integration_id, ordering_key, head, lease_owner",
            skip_locked(backend)
        )
    }

    /// Renews (or, `release`, gives up) an owner's leases on `n` heads, by
    /// row id: the primary key is the only index these conditions can use.
    /// Values: the head ids, owner, due time.
    pub fn set_due(backend: DbBackend, release: bool, n: usize) -> String {
        let lease = if release { ", lease_owner = NULL" } else { "" };
        format!(
            "WITH held AS MATERIALIZED (SELECT id FROM queue_heads \
                                        WHERE id IN ({}) AND lease_owner = ?{}) \
             UPDATE queue_heads SET due_at = ?{lease} WHERE id IN (SELECT id FROM held)",
            marks(n),
            skip_locked(backend)
        )
    }

    /// Locks (creating the missing ones) the heads of `n` issues, given in
    /// key order: the no-op update locks an existing head (PostgreSQL takes
    /// the rows in VALUES order) and writes a column no index covers. Values
    /// per issue: queue, integration, ordering key, position, due time.
    pub fn lock(n: usize) -> String {
        format!(
            "INSERT INTO queue_heads (queue, integration_id, ordering_key, head, due_at) \
             VALUES {} \
             ON CONFLICT (queue, integration_id, ordering_key) \
             DO UPDATE SET lease_owner = queue_heads.lease_owner \
             RETURNING id, integration_id, ordering_key, head, lease_owner",
            vec!["(?, ?, ?, ?, ?)"; n].join(", ")
        )
    }

    /// Moves `n` heads (by row id) to their issues' next pending items,
    /// released and due at a time; returns each head's id and new position
    /// (NULL: the issue has nothing pending). Values: due time, the ids.
    ///
    /// The next item is the first entry of the queue's partial index of
    /// pending items (integration, key, position) at the issue's key. On
    /// PostgreSQL the key is bounded by a range, not an equality, on purpose:
    /// with equalities on both columns PostgreSQL may serve the `MIN` from
    /// any index in position order (the primary key) and filter the whole
    /// backlog, and with statistics of an empty table it cannot tell the two
    /// apart; this way only that index delivers the requested order without a
    /// sort. The integration is an equality and the key a scalar range, both
    /// tight index bounds. (Row comparisons, used before, bound the scan's
    /// end by the integration only: advancing an issue with nothing left read
    /// every later pending entry of its integration, 8,646 pages with 1 M
    /// pending.) SQLite is the other way round: it turns range conditions
    /// into a wider scan (or picks the `state` index and sorts every pending
    /// row, as it did), and serves the equalities from the partial index
    /// directly.
    pub fn advance(backend: DbBackend, queue: Queue, n: usize) -> String {
        let (table, position) = (queue.table(), queue.position());
        let issue = if backend == DbBackend::Postgres {
            "t.integration_id = queue_heads.integration_id \
             AND t.ordering_key >= queue_heads.ordering_key \
             AND t.ordering_key <= queue_heads.ordering_key"
        } else {
            "t.integration_id = queue_heads.integration_id \
             AND t.ordering_key = queue_heads.ordering_key"
        };
        format!(
            "UPDATE queue_heads SET lease_owner = NULL, due_at = ?, \
               head = (SELECT t.{position} FROM {table} t \
                       WHERE t.state = 'pending' AND {issue} \
                       ORDER BY t.integration_id, t.ordering_key, t.{position} LIMIT 1) \
             WHERE id IN ({}) \
             RETURNING id, head",
            marks(n)
        )
    }

    /// Removes `n` heads by row id: those [`advance`] just left without
    /// items, still locked by the caller's transaction (nothing can have
    /// queued behind them since). Values: the ids.
    pub fn remove_emptied(n: usize) -> String {
        format!("DELETE FROM queue_heads WHERE id IN ({})", marks(n))
    }

    /// Releases `n` heads due again at their own times. Values: (id, time)
    /// per head, then the ids.
    pub fn reschedule(n: usize) -> String {
        format!(
            "UPDATE queue_heads SET lease_owner = NULL, due_at = CASE id {} END \
             WHERE id IN ({})",
            vec!["WHEN ? THEN ?"; n].join(" "),
            marks(n)
        )
    }

    /// Points an owner's head of an issue at another item. Values: position,
    /// queue, integration, ordering key, owner.
    pub const REPOINT: &str = "UPDATE queue_heads SET head = ? \
         WHERE queue = ? AND integration_id = ? AND ordering_key = ? AND lease_owner = ?";
}
