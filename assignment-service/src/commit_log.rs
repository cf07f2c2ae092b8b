//! Commit-ordered logs: the notification log and the outbound log take their
//! sequences here.
//!
//! # Sequence order equals commit order
//!
//! A reader resumes with "everything after sequence N", so an entry must never
//! become visible with a sequence lower than one already visible. A database
//! sequence cannot promise that on PostgreSQL: its value is taken at insert,
//! not at commit, so a transaction that took 7 may commit after one that took
//! 8, and a reader that saw 8 would skip 7 forever.
//!
//! Here each log's sequences come from its row of `notification_log` (id 1:
//! notifications, id 2: outbound syncs): a writer adds its count to
//! `last_sequence` with an `UPDATE … RETURNING` near the end of its
//! transaction. The row lock it takes is held until commit, so the next writer
//! gets its numbers only after this one committed (or rolled back, which also
//! rolls the counter back). Visible sequences are therefore always a gap-free
//! prefix. SQLite has one writer at a time anyway. A transaction that writes
//! both logs takes the outbound row first, then the notification row (always in
//! that order, so two writers cannot wait on each other), as the last
//! statements before commit.
//!
//! On PostgreSQL the transaction also sends `NOTIFY assignment_notifications`,
//! delivered at commit, which wakes the readers of every replica.

use sea_orm::{
    ColumnTrait as _, ConnectionTrait, DatabaseTransaction, DbBackend, EntityTrait as _,
    QueryFilter as _, Statement,
};

use crate::domain::Sequence;
use crate::error::{AssignmentError, Reason, Refusal};
use crate::storage::entities::notification_log;

/// The PostgreSQL channel on which commits to either log are announced.
pub const NOTIFY_CHANNEL: &str = "assignment_notifications";

/// One of the commit-ordered logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Log {
    /// Notifications to people (the Subscribe stream).
    Notifications,
    /// What linked Jira issues must show (the WatchOutboundSyncs stream).
    Outbound,
}

impl Log {
    fn row(self) -> i32 {
        match self {
            Self::Notifications => 1,
            Self::Outbound => 2,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Notifications => "notification",
            Self::Outbound => "outbound",
        }
    }
}

/// Takes `count` sequences of `log` in the caller's transaction and returns the
/// first and the last; call it near the end of the transaction (see the module
/// documentation).
///
/// # Errors
/// Database errors.
pub async fn allocate(
    txn: &DatabaseTransaction,
    log: Log,
    count: usize,
) -> Result<(Sequence, Sequence), AssignmentError> {
    let count = i64::try_from(count).unwrap_or(i64::MAX);
    let backend = txn.get_database_backend();
    let (a, b) = if backend == DbBackend::Postgres {
        ("$1", "$2")
    } else {
        ("?", "?")
    };
    let last = txn
        .query_one_raw(Statement::from_sql_and_values(
            backend,
            format!(
                "UPDATE notification_log SET last_sequence = last_sequence + {a} \
                 WHERE id = {b} RETURNING last_sequence"
            ),
            [count.into(), log.row().into()],
        ))
        .await?
        .ok_or_else(|| AssignmentError::Corrupt(format!("the {} log row is missing", log.name())))?
        .try_get::<i64>("", "last_sequence")?;
    Ok((
        Sequence::from_row(last - count + 1),
        Sequence::from_row(last),
    ))
}

/// Announces a commit to the readers of other replicas (PostgreSQL; delivered
/// at commit).
///
/// # Errors
/// Database errors.
pub async fn announce(txn: &DatabaseTransaction, last: Sequence) -> Result<(), AssignmentError> {
    let backend = txn.get_database_backend();
    if backend == DbBackend::Postgres {
        txn.execute_raw(Statement::from_sql_and_values(
            backend,
            "SELECT pg_notify($1, $2)",
            [NOTIFY_CHANNEL.into(), last.get().to_string().into()],
        ))
        .await?;
    }
    Ok(())
}

/// A log's bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogBounds {
    /// The last sequence committed (0 when nothing was ever written).
    pub head: Sequence,
    /// Everything up to this sequence was pruned; a cursor below it is out of
    /// range.
    pub pruned_through: Sequence,
}

impl LogBounds {
    /// The oldest sequence still available (it may not exist yet).
    pub fn oldest_available(self) -> Sequence {
        self.pruned_through.next()
    }

    /// OUT_OF_RANGE for a cursor behind retention, with the bounds in the
    /// metadata.
    pub fn behind_retention(self, message: String) -> AssignmentError {
        self.refusal(Reason::CursorOutOfRange, message)
    }

    /// OUT_OF_RANGE for a sequence beyond the head, with the bounds in the
    /// metadata.
    pub fn beyond_head(self, message: String) -> AssignmentError {
        self.refusal(Reason::CursorBeyondHead, message)
    }

    fn refusal(self, reason: Reason, message: String) -> AssignmentError {
        Refusal::new(reason, message)
            .with(
                "oldest_available_sequence",
                self.oldest_available().get().to_string(),
            )
            .with("head_sequence", self.head.get().to_string())
            .into()
    }
}

/// Reads a log's bounds.
///
/// # Errors
/// Database errors.
pub async fn bounds<C: ConnectionTrait>(conn: &C, log: Log) -> Result<LogBounds, AssignmentError> {
    let row = notification_log::Entity::find_by_id(log.row())
        .one(conn)
        .await?
        .ok_or_else(|| {
            AssignmentError::Corrupt(format!("the {} log row is missing", log.name()))
        })?;
    Ok(LogBounds {
        head: Sequence::from_row(row.last_sequence),
        pruned_through: Sequence::from_row(row.pruned_through),
    })
}

/// Records that a log was pruned through `through`.
///
/// # Errors
/// Database errors.
pub async fn raise_floor(
    txn: &DatabaseTransaction,
    log: Log,
    through: Sequence,
) -> Result<(), AssignmentError> {
    notification_log::Entity::update_many()
        .col_expr(
            notification_log::Column::PrunedThrough,
            sea_orm::sea_query::Expr::value(through.to_row()),
        )
        .filter(notification_log::Column::Id.eq(log.row()))
        .exec(txn)
        .await?;
    Ok(())
}

/// The sequence through which a log may be pruned: the larger of "keep at most
/// `max_count`" and "drop what is older than the age limit" (`by_age`: the
/// newest sequence older than it), never below the current floor.
pub fn prune_target(bounds: LogBounds, max_count: u64, by_age: u64) -> Option<Sequence> {
    let by_count = bounds.head.get().saturating_sub(max_count);
    let through = by_count.max(by_age).max(bounds.pruned_through.get());
    (through != bounds.pruned_through.get()).then(|| Sequence::new(through))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prune_target_keeps_the_newest_and_never_lowers_the_floor() {
        let bounds = |head, floor| LogBounds {
            head: Sequence::new(head),
            pruned_through: Sequence::new(floor),
        };
        // (head, floor, max_count, by_age) -> new floor
        let cases: &[(u64, u64, u64, u64, Option<u64>)] = &[
            (100, 0, 1000, 0, None),
            (100, 0, 10, 0, Some(90)),
            (100, 0, 1000, 42, Some(42)),
            (100, 95, 10, 42, None),
            (100, 50, 10, 60, Some(90)),
        ];
        for &(head, floor, max_count, by_age, expected) in cases {
            assert_eq!(
                prune_target(bounds(head, floor), max_count, by_age).map(Sequence::get),
                expected,
                "{head} {floor} {max_count} {by_age}"
            );
        }
    }
}
