//! Queue heads: one row per issue with work waiting in a queue (the webhook
//! inbox, the outbound syncs), pointing at the item to apply next, with its
//! lease. Claiming reads only this table, by an index on when each head is
//! due, so its cost depends on how many items it claims, not on the backlog
//! (see `crate::queue_heads`). The per-row leases of both queues move here;
//! partial indexes on each queue's pending items find an issue's next item.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{
    big_integer_null, pk_auto, string, string_null, timestamp_with_time_zone,
};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// (queue name, item table, position column)
const QUEUES: [(&str, &str, &str); 2] = [
    ("inbox", "webhook_deliveries", "id"),
    ("outbound", "outbound_syncs", "source_sequence"),
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("queue_heads")
                    .col(pk_auto("id").big_integer())
                    .col(string("queue"))
                    .col(string("integration_id"))
                    .col(string("ordering_key"))
                    .col(big_integer_null("head"))
                    .col(timestamp_with_time_zone("due_at"))
                    .col(string_null("lease_owner"))
                    .to_owned(),
            )
            .await?;
        for (name, columns, unique) in [
            (
                "ux_queue_heads_key",
                &["queue", "integration_id", "ordering_key"][..],
                true,
            ),
            ("ix_queue_heads_due", &["queue", "due_at"][..], false),
            ("ix_queue_heads_head", &["queue", "head"][..], false),
        ] {
            let mut index = Index::create();
            index.name(name).table("queue_heads");
            for column in columns {
                index.col(*column);
            }
            if unique {
                index.unique();
            }
            manager.create_index(index.to_owned()).await?;
        }
        let db = manager.get_connection();
        let now = chrono::Utc::now();
        for (queue, table, position) in QUEUES {
            // An issue's next item: its pending items by position.
            db.execute_unprepared(&format!(
                "CREATE INDEX ix_{table}_pending_queue ON {table} \
                 (integration_id, ordering_key, {position}) WHERE state = 'pending'"
            ))
            .await?;
            // Every issue with pending work gets its head, due now.
            let backfill = Query::insert()
                .into_table("queue_heads")
                .columns(["queue", "integration_id", "ordering_key", "head", "due_at"])
                .select_from(
                    Query::select()
                        .expr(Expr::val(queue))
                        .column("integration_id")
                        .column("ordering_key")
                        .expr(Expr::col(position).min())
                        .expr(Expr::val(now))
                        .from(table)
                        .and_where(Expr::col("state").eq("pending"))
                        .group_by_col("integration_id")
                        .group_by_col("ordering_key")
                        .to_owned(),
                )
                .map_err(|e| DbErr::Migration(e.to_string()))?
                .to_owned();
            manager.exec_stmt(backfill).await?;
            for column in ["lease_owner", "lease_until"] {
                db.execute_unprepared(&format!("ALTER TABLE {table} DROP COLUMN {column}"))
                    .await?;
            }
        }
        // Both superseded by the partial index above (an issue's pending
        // deliveries, with the integration); the gauges' oldest pending
        // delivery is the lowest inbox head. No other index on pending
        // deliveries: one in id order would compete with it for the heads'
        // "next pending of this issue" lookup, and under statistics taken at
        // an empty inbox PostgreSQL may pick it and filter the whole backlog.
        for old in [
            "ix_webhook_deliveries_pending_by_id",
            "ix_webhook_deliveries_pending",
        ] {
            manager
                .drop_index(
                    Index::drop()
                        .name(old)
                        .table("webhook_deliveries")
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
