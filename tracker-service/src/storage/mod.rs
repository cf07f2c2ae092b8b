//! The tracker's database: entities (one per table) and migrations.

pub mod entities;
pub mod migrations;

use sea_orm::sea_query::{Expr, ExprTrait, IntoColumnRef};

/// `column = 'state'`, the state written into the statement instead of bound.
///
/// The queue tables (`webhook_deliveries`, `outbound_syncs`) have partial
/// indexes `WHERE state = 'pending'`. When a statement compares `state` with a
/// bound parameter, SQLite's planner checks the bound value against that
/// predicate and marks the statement to be prepared again whenever the
/// parameter is bound (SQLite's `exprCompareVariable`), so every execution
/// would parse its SQL again (as `LIMIT ?` did; see
/// `service_runtime::database::unique`). A literal keeps the prepared
/// statement. States are the fixed names of the domain's enums.
pub fn state_is(column: impl IntoColumnRef, state: &'static str) -> Expr {
    debug_assert!(
        state.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
        "{state} is not a state name"
    );
    ExprTrait::eq(Expr::col(column), Expr::cust(format!("'{state}'")))
}

#[cfg(test)]
mod tests {
    use sea_orm::sea_query::{Query, SqliteQueryBuilder};

    #[test]
    fn a_state_is_written_into_the_statement_not_bound() {
        let (sql, values) = Query::select()
            .column("id")
            .from("webhook_deliveries")
            .and_where(super::state_is("state", "pending"))
            .build(SqliteQueryBuilder);
        assert!(sql.ends_with(r#"WHERE "state" = ('pending')"#), "{sql}");
        assert!(values.0.is_empty(), "{values:?}");
    }
}
